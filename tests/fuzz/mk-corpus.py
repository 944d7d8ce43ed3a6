#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Run from anywhere: python3 tests/fuzz/mk-corpus.py. The files are checked in;
this script says how each was made. Inputs that once crashed a target are
added by hand as corpus/<target>/crash-<what> and are not regenerated here."""
import gzip
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
D = "sha256:" + "ab" * 32


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def refs():
    for i, s in enumerate([
        "docker://public.ecr.aws/lambda/python:3.11",
        "python:3.11-slim",
        "127.0.0.1:5000/a/b@" + D,
        "localhost/x:y@" + D,
        "oci:/tmp/layout:tag",
        "oci:dir",
        "docker-archive:/tmp/x.tar:repo:tag",
        "linux/arm64/v8",
        D,
        "sha256:../../x",
        "docker://UPPER/Case",
        "a" * 300 + ":t",
        "x:" + "t" * 129,
        "docker://h/..:t",
    ]):
        put("ref", "seed-%02d" % i, s)


def manifests():
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 10}
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 5}
    docs = {
        "oci-manifest": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "config": cfg, "layers": [layer]},
        "oci-manifest-notype": {"schemaVersion": 2, "config": cfg, "layers": [layer, layer]},
        "docker-manifest": {"schemaVersion": 2,
                            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                            "config": dict(cfg, mediaType="application/vnd.docker.container.image.v1+json"),
                            "layers": [dict(layer, mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")]},
        "index": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [
                      dict(cfg, mediaType="application/vnd.oci.image.manifest.v1+json",
                           platform={"os": "linux", "architecture": "amd64"}),
                      dict(cfg, mediaType="application/vnd.oci.image.manifest.v1+json",
                           platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
                      dict(cfg, mediaType="application/vnd.oci.image.manifest.v1+json",
                           platform={"os": "unknown", "architecture": "unknown"},
                           annotations={"vnd.docker.reference.type": "attestation-manifest"})]},
        "config": {"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [D]},
                   "config": {"Env": ["PATH=/usr/bin"], "Entrypoint": ["/lambda-entrypoint.sh"]}},
        "bad-digest": {"schemaVersion": 2, "config": dict(cfg, digest="sha256:../../etc/passwd"),
                       "layers": []},
        "negative-size": {"schemaVersion": 2, "config": dict(cfg, size=-1), "layers": []},
    }
    for name, doc in docs.items():
        put("manifest", name, json.dumps(doc))
    put("manifest", "duplicate-key", '{"schemaVersion": 2, "schemaVersion": 2, "layers": []}')
    put("manifest", "deep", "[" * 3000 + "]" * 3000)
    put("manifest", "huge-number", '{"schemaVersion": 2, "config": {"size": 1e999}}')
    put("manifest", "not-utf8", b'{"schemaVersion": 2, "mediaType": "\xff\xfe"}')
    put("manifest", "nul", '{"a": "\\u0000"}')


def challenges():
    for i, s in enumerate([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"',
        'Basic realm="Registry Realm"',
        'Bearer realm=https://x/token, service=x, Basic realm=y',
        'Negotiate abc==',
        'Bearer realm="unterminated',
        'Bearer realm="a\\"b", realm="c"',
        'Bearer ,,, realm = "x" ,',
        '',
        'Bearer realm',
    ]):
        put("challenge", "seed-%02d" % i, s)
    put("challenge", "base64", "dXNlcjpwYXNz")


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT, comp=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            ti = tarfile.TarInfo(e[0])
            kind = e[1]
            if kind == "f":
                data = e[2].encode() if len(e) > 2 else b"x"
                ti.size = len(data)
                ti.mode = e[3] if len(e) > 3 else 0o644
                t.addfile(ti, io.BytesIO(data))
                continue
            if kind == "d":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e[2]
            elif kind == "h":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e[2]
            elif kind == "c":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = 1, 3
            t.addfile(ti)
    raw = buf.getvalue()
    # trim the zero padding tarfile adds up to 10 KiB: two zero blocks end it
    end = len(raw)
    while end >= 512 and raw[end - 512:end] == b"\0" * 512:
        end -= 512
    raw = raw[:end] + b"\0" * 1024
    if comp == "gzip":
        return gzip.compress(raw, mtime=0)
    return raw


def tars():
    cases = {
        "simple": [("usr/", "d"), ("usr/bin/", "d"), ("usr/bin/python3.11", "f", "ELF", 0o755),
                   ("usr/bin/python", "l", "python3.11")],
        "whiteout": [("usr/bin/.wh.python", "f", ""), ("etc/.wh..wh..opq", "f", ""), ("etc/new", "f")],
        "whiteout-root-python": [(".wh.usr", "f", "")],
        "hardlinks": [("a", "f", "data"), ("b", "h", "a"), ("c", "h", "missing"), ("d", "h", "../../x")],
        "dotdot": [("../../etc/passwd", "f")],
        "absolute": [("/etc/passwd", "f", "root"), ("/abs/link", "l", "/etc/shadow")],
        "escape-symlink": [("lib", "l", "../../../../"), ("lib/x", "f")],
        "loop": [("a", "l", "b"), ("b", "l", "a"), ("c", "l", "c/x")],
        "device-setuid": [("dev/null", "c"), ("bin/su", "f", "x", 0o4755)],
        "duplicates": [("a", "f", "1"), ("a", "f", "2"), ("a", "d"), ("a/b", "f")],
        "file-over-dir": [("usr/lib/x", "f"), ("usr/lib", "f"), ("usr", "l", "/")],
    }
    for name, ents in cases.items():
        put("tar", name + ".tar.gz", tar_bytes(ents, comp="gzip"))
    put("tar", "ustar.tar", tar_bytes(cases["simple"], fmt=tarfile.USTAR_FORMAT))
    put("tar", "gnu-longname.tar.gz",
        tar_bytes([("d/" + "n" * 300, "f")], fmt=tarfile.GNU_FORMAT, comp="gzip"))
    full = tar_bytes(cases["simple"])
    put("tar", "truncated.tar", full[:700])
    put("tar", "truncated.tar.gz", gzip.compress(full, mtime=0)[:60])
    # declares a huge size but has no data
    ti = tarfile.TarInfo("big")
    ti.size = 1 << 40
    put("tar", "huge-size.tar", ti.tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024)
    put("tar", "bomb.tar.gz", gzip.compress(tar_bytes([("zeros", "f", "\0" * 60000)]), mtime=0))
    put("tar", "not-a-tar", "hello, world\n")
    put("tar", "zip-magic", b"PK\x03\x04" + b"\0" * 100)


def paths():
    for i, s in enumerate([
        b"f/usr/bin/python", b"d./a//b/./c/", b"f../x", b"l/x\0/../../etc/passwd",
        b"lusr/bin/python\0/loop/a", b"h/y\0/usr/lib/hard", b"f" + b"a/" * 200,
        b"f/" + b"n" * 256, b"f/lib/libc.so", b"f/.wh.usr", b"f/etc/.wh..wh..opq",
        b"l/lib\0/usr/bin/up/../../etc",
    ]):
        put("path", "seed-%02d" % i, s)


def conda():
    recs = {
        "plain": {"name": "zlib", "version": "1.2.13", "build": "h0", "subdir": "linux-64",
                  "files": ["lib/python3.11/site-packages/x.py"]},
        "paths-data": {"name": "pkg", "version": "1", "build": "0", "channel": "conda-forge",
                       "sha256": "ab" * 32, "size": 3,
                       "paths_data": {"paths_version": 1, "paths": [
                           {"_path": "lib/python3.11/site-packages/x.py", "path_type": "hardlink",
                            "sha256": "cd" * 32, "size_in_bytes": 6,
                            "prefix_placeholder": "/opt/env", "file_mode": "text"}]}},
        "escape": {"name": "evil", "version": "1", "build": "0", "files": ["../../etc/passwd"]},
        "wrong-types": {"name": 1, "version": [], "build": {}},
        "osx": {"name": "x", "version": "1", "build": "0", "subdir": "osx-64", "files": []},
    }
    for name, r in recs.items():
        put("conda_meta", name, json.dumps(r))
    put("conda_meta", "duplicate-key", '{"name": "a", "name": "b", "version": "1", "build": "0"}')
    put("conda_meta", "truncated", '{"name": "a", "files": ["x"')


refs()
manifests()
challenges()
tars()
paths()
conda()
