#!/usr/bin/python3
"""mkindex.py: helpers of multiarch_seed (lib.sh) for OCI image layouts (stdlib only).

  mkindex.py --platform-tar OUT.tar linux/ARCH   tar with /etc/ocilambda-platform ("linux/ARCH")
  mkindex.py --arch-of LAYOUT TAG                print the config architecture of LAYOUT:TAG
  mkindex.py --compose LAYOUT INDEX_TAG          compose LAYOUT:amd64 and LAYOUT:arm64 into an
      OCI index tagged INDEX_TAG: linux/amd64, linux/arm64/v8 (the arm64 config gets
      "variant": "v8"), and a buildx-style attestation manifest (platform unknown/unknown,
      annotations vnd.docker.reference.type=attestation-manifest and
      vnd.docker.reference.digest=<amd64 digest>, one application/vnd.in-toto+json layer).
      Prints "INDEX_DIGEST AMD64_DIGEST ARM64_DIGEST ATTESTATION_DIGEST".
"""
import hashlib
import io
import json
import os
import sys
import tarfile

REF = "org.opencontainers.image.ref.name"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def blob_path(layout, digest):
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def read_json(layout, digest):
    with open(blob_path(layout, digest), "rb") as f:
        return json.load(f)


def write_blob(layout, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_path(layout, digest)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def dump(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def load_index(layout):
    with open(os.path.join(layout, "index.json")) as f:
        return json.load(f)


def tagged(index, tag):
    for m in index["manifests"]:
        if m.get("annotations", {}).get(REF) == tag:
            return m
    sys.exit("mkindex.py: tag %s not in the layout" % tag)


def platform_tar(out, platform):
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("etc/")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1704067200
        tf.addfile(d)
        data = (platform + "\n").encode()
        f = tarfile.TarInfo("etc/ocilambda-platform")
        f.size, f.mode, f.mtime = len(data), 0o644, 1704067200
        tf.addfile(f, io.BytesIO(data))


def compose(layout, index_tag):
    index = load_index(layout)
    amd = dict(tagged(index, "amd64"))
    arm = dict(tagged(index, "arm64"))
    # arm64/v8: put the variant in the arm64 config (new config -> new manifest)
    man = read_json(layout, arm["digest"])
    cfg = read_json(layout, man["config"]["digest"])
    if cfg.get("variant") != "v8":
        cfg["variant"] = "v8"
        man["config"] = write_blob(layout, dump(cfg), man["config"]["mediaType"])
        new = write_blob(layout, dump(man), arm.get("mediaType", OCI_MANIFEST))
        for m in index["manifests"]:
            if m.get("annotations", {}).get(REF) == "arm64":
                m.update(digest=new["digest"], size=new["size"])
        arm.update(digest=new["digest"], size=new["size"])
    # attestation manifest, as docker buildx writes it
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "pkg:docker/ocilambda-fixture", "digest": {"sha256": amd["digest"].split(":")[1]}}],
        "predicate": {"spdxVersion": "SPDX-2.3", "name": "ocilambda-fixture-sbom", "packages": []},
    }
    layer = write_blob(layout, dump(statement), "application/vnd.in-toto+json")
    layer["annotations"] = {"in-toto.io/predicate-type": "https://spdx.dev/Document"}
    acfg = write_blob(layout, dump({"architecture": "unknown", "os": "unknown", "config": {},
                                    "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}),
                      OCI_CONFIG)
    att = write_blob(layout, dump({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                   "config": acfg, "layers": [layer]}), OCI_MANIFEST)

    def entry(desc, platform, annotations=None):
        e = {"mediaType": desc.get("mediaType", OCI_MANIFEST), "digest": desc["digest"],
             "size": desc["size"], "platform": platform}
        if annotations:
            e["annotations"] = annotations
        return e

    idx = write_blob(layout, dump({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            entry(amd, {"architecture": "amd64", "os": "linux"}),
            entry(arm, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
            entry(att, {"architecture": "unknown", "os": "unknown"},
                  {"vnd.docker.reference.digest": amd["digest"],
                   "vnd.docker.reference.type": "attestation-manifest"}),
        ]}), OCI_INDEX)
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF) != index_tag]
    idx["annotations"] = {REF: index_tag}
    index["manifests"].append(idx)
    with open(os.path.join(layout, "index.json.tmp"), "w") as f:
        json.dump(index, f)
    os.replace(os.path.join(layout, "index.json.tmp"), os.path.join(layout, "index.json"))
    print(idx["digest"], amd["digest"], arm["digest"], att["digest"])


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--platform-tar":
        platform_tar(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "--arch-of":
        index = load_index(sys.argv[2])
        man = read_json(sys.argv[2], tagged(index, sys.argv[3])["digest"])
        print(read_json(sys.argv[2], man["config"]["digest"]).get("architecture", ""))
    elif len(sys.argv) == 4 and sys.argv[1] == "--compose":
        compose(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
