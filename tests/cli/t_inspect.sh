#!/usr/bin/env bash
# ocilambda inspect: the summary, --json (checked against what skopeo and
# the fixture's conda-meta say), --sbom (validated against the official
# SPDX 2.3 JSON schema kept in testdata/spdx), every transport, bad input.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache
unset SOURCE_DATE_EPOCH

B=$FIXTURES/base38
P=$FIXTURES/prefix38
SCHEMA=$TD/spdx/spdx-schema-2.3.json
"$PY" -c 'import jsonschema' 2>/dev/null ||
	fail "python3-jsonschema is needed (apt-get install python3-jsonschema)"
make_code "$T/code"
digest=$($OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/out:latest")
IMG=oci:$T/out:latest
skopeo inspect --raw "$IMG" >"$T/manifest.json"
skopeo inspect --config "$IMG" >"$T/config.json"

# ---- the summary ----
$OCILAMBDA inspect "$IMG" >"$T/text" 2>"$T/text.err"
[ ! -s "$T/text.err" ] || fail "inspect is quiet on stderr: $(cat "$T/text.err")"
# line LABEL VALUE: the summary has "LABEL<spaces>VALUE" as a whole line.
line() {
	grep -qxE -- "$1 +$(printf '%s' "$2" | sed 's/[][\.*^$+?(){}|]/\\&/g')" "$T/text" ||
		fail "no line '$1 $2' in: $(cat "$T/text")"
}
line "Image:" "$IMG"
line "Manifest:" "$digest (application/vnd.oci.image.manifest.v1+json, $(stat -c %s "$T/manifest.json") bytes)"
line "Platform:" "linux/amd64"
line "Created:" "1970-01-01T00:00:00Z"
line "Env:" "LANG=en_US.UTF-8"
line "" "PYTHONPATH=/var/lang/lib/python3.8/site-packages:/opt/my-code"
line "Entrypoint:" '["/lambda-entrypoint.sh"]'
line "Cmd:" '["example.lambda_handler"]'
line "WorkingDir:" "/var/task"
line "Python:" "/var/lang/bin/python3.8 -> /opt/conda-env/bin/python (/opt/conda-env/bin/python3.8)"
line "Conda:" "/opt/conda-env, 1 package"
line "Bytecode:" "0 .pyc files for python 3.8, 0 stale"
grep -qE '^  python +3\.8\.16 +h_fixture_0 +conda-forge$' "$T/text" || fail "package row: $(cat "$T/text")"
# 3 base layers, 2 conda layers (python's record, the files no record owns), code, runtime
grep -qE '^Layers: +7, [0-9.]+ (B|KiB|MiB) as stored$' "$T/text" || fail "layer count line: $(cat "$T/text")"
# one row per layer, in manifest order, with the history that made it
"$PY" - "$T" <<'PYEOF' || fail "layer rows"
import json, re, sys
t = sys.argv[1]
m = json.load(open(t + "/manifest.json"))
c = json.load(open(t + "/config.json"))
rows = [l for l in open(t + "/text").read().splitlines() if re.match(r"^  \d+ +sha256:", l)]
made = [h["created_by"] for h in c["history"] if not h.get("empty_layer")]
assert len(rows) == len(m["layers"]) == 7, rows
for i, (row, layer) in enumerate(zip(rows, m["layers"])):
    f = row.split()
    assert f[0] == str(i) and f[1] == layer["digest"], (row, layer)
    assert row.endswith(made[i][:100]), (row, made[i])
assert rows[3].endswith("ocilambda: conda packages, group 2 of 8: python, at /opt/conda-env"), rows[3]
assert rows[4].endswith("ocilambda: prefix files no conda record owns at /opt/conda-env"), rows[4]
PYEOF
ok "summary: ref, digest, platform, Env, Entrypoint, Cmd, WorkingDir, python link, conda packages, layers"

# ---- --json ----
$OCILAMBDA inspect --json "$IMG" >"$T/inspect.json"
"$PY" - "$T" "$P" "$IMG" "$digest" <<'PYEOF' || fail "--json content"
import glob, json, sys
t, prefix, img, digest = sys.argv[1:5]
j = json.load(open(t + "/inspect.json"))
m = json.load(open(t + "/manifest.json"))
c = json.load(open(t + "/config.json"))
def check(cond, what):
    if not cond:
        sys.exit("check failed: %s\n%s" % (what, json.dumps(j, indent=1)[:3000]))
keys = ["schemaVersion", "ref", "manifest", "config", "platform", "created", "layers",
        "layersSize", "env", "entrypoint", "cmd", "workingDir", "user", "pythons", "conda",
        "bytecode"]
check(list(j) == keys, "top-level keys, in order: %s" % list(j))
check(j["schemaVersion"] == 1 and j["ref"] == img, "schemaVersion, ref")
check(j["manifest"] == {"digest": digest, "mediaType": m["mediaType"],
                        "size": len(open(t + "/manifest.json", "rb").read())}, "manifest")
check(j["config"] == {"digest": m["config"]["digest"], "mediaType": m["config"]["mediaType"],
                      "size": m["config"]["size"]}, "config")
check(j["platform"] == {"os": "linux", "architecture": "amd64", "variant": None}, "platform")
check(j["created"] == c["created"], "created")
made = [h for h in c["history"] if not h.get("empty_layer")]
check(len(j["layers"]) == len(m["layers"]), "one entry per layer")
for i, (l, d) in enumerate(zip(j["layers"], m["layers"])):
    check(list(l) == ["digest", "mediaType", "size", "diffId", "createdBy", "comment"], "layer keys")
    check(l["digest"] == d["digest"] and l["size"] == d["size"] and l["mediaType"] == d["mediaType"], "layer %d" % i)
    check(l["diffId"] == c["rootfs"]["diff_ids"][i], "diffId %d" % i)
    check(l["createdBy"] == made[i]["created_by"], "createdBy %d" % i)
    check(l["comment"] == (made[i].get("comment") or None), "comment %d" % i)
check(j["layersSize"] == sum(d["size"] for d in m["layers"]), "layersSize")
cc = c["config"]
check(j["env"] == cc["Env"] and j["entrypoint"] == cc["Entrypoint"] and j["cmd"] == cc["Cmd"], "env/entrypoint/cmd")
check(j["workingDir"] == "/var/task" and j["user"] is None, "workingDir, user")
check(j["pythons"] == [{"path": "/var/lang/bin/python3.8", "minor": "3.8",
                        "link": "/opt/conda-env/bin/python",
                        "target": "/opt/conda-env/bin/python3.8", "missing": None}], "pythons")
recs = [json.load(open(f)) for f in sorted(glob.glob(prefix + "/conda-meta/*.json"))]
want = [{"name": r["name"], "version": r["version"], "build": r["build"],
         "channel": "conda-forge", "subdir": r["subdir"], "license": r.get("license"),
         "sha256": r.get("sha256"), "url": r.get("url")} for r in recs]
want.sort(key=lambda p: (p["name"], p["version"], p["build"]))
check(j["conda"] == {"prefix": "/opt/conda-env", "packages": want}, "conda packages")
check(any(p["name"] == "python" and p["version"] == "3.8.16" for p in want), "fixture has python 3.8.16")
check(j["bytecode"] == {"python": "3.8", "pycs": 0, "stale": 0, "biggestStale": []}, "bytecode")
PYEOF
ok "--json: stable keys; manifest, config, layers, history, env agree with skopeo; conda agrees with conda-meta"

# ---- --sbom ----
mkdir "$T/sbom"
$OCILAMBDA inspect --sbom "$T/sbom/a.spdx.json" "$IMG" >"$T/text2"
cmp -s "$T/text" "$T/text2" || fail "--sbom does not change the summary"
$OCILAMBDA inspect --json --sbom "$T/sbom/b.spdx.json" "$IMG" >/dev/null
cmp "$T/sbom/a.spdx.json" "$T/sbom/b.spdx.json" || fail "the same image gives the same SBOM bytes"
SOURCE_DATE_EPOCH=1677628800 $OCILAMBDA inspect --sbom "$T/sbom/c.spdx.json" "$IMG" >/dev/null
[ "$(ls "$T/sbom")" = "$(printf 'a.spdx.json\nb.spdx.json\nc.spdx.json')" ] || fail "no temporary files: $(ls -a "$T/sbom")"
"$PY" - "$SCHEMA" "$T/sbom" "$P" "$digest" <<'PYEOF' || fail "SBOM content"
import copy, glob, json, sys
import jsonschema
schema_path, d, prefix, digest = sys.argv[1:5]
schema = json.load(open(schema_path))
jsonschema.Draft7Validator.check_schema(schema)
v = jsonschema.Draft7Validator(schema)
a = json.load(open(d + "/a.spdx.json"))
c = json.load(open(d + "/c.spdx.json"))
for doc in (a, c):
    v.validate(doc)
# the validator is live: it rejects what SPDX 2.3 rejects
for breakage in ("spdxVersion", "SPDXID"):
    bad = copy.deepcopy(a); del bad[breakage]
    assert not v.is_valid(bad), breakage
bad = copy.deepcopy(a); bad["packages"][0]["checksums"][0]["algorithm"] = "sha256"
assert not v.is_valid(bad), "checksum algorithm enum"
bad = copy.deepcopy(a); bad["relationships"][0]["relationshipType"] = "HAS"
assert not v.is_valid(bad), "relationship enum"

assert a["spdxVersion"] == "SPDX-2.3" and a["dataLicense"] == "CC0-1.0"
assert a["SPDXID"] == "SPDXRef-DOCUMENT"
assert a["creationInfo"]["created"] == "1970-01-01T00:00:00Z"
assert c["creationInfo"]["created"] == "2023-03-01T00:00:00Z"
assert a["creationInfo"]["creators"][0].startswith("Tool: ocilambda-")
assert digest in a["comment"], a["comment"]
assert a["documentNamespace"] != c["documentNamespace"], "namespace follows the content"
recs = sorted((json.load(open(f)) for f in glob.glob(prefix + "/conda-meta/*.json")),
              key=lambda r: r["name"])
assert [(p["name"], p["versionInfo"]) for p in a["packages"]] == \
       [(r["name"], r["version"]) for r in recs], a["packages"]
for p, r in zip(a["packages"], recs):
    assert p["SPDXID"] == "SPDXRef-Package-%s-%s" % (r["name"], r["version"]), p["SPDXID"]
    assert p["checksums"] == [{"algorithm": "SHA256", "checksumValue": r["sha256"]}]
    assert p["downloadLocation"] == r["url"]
    assert p["licenseDeclared"] == r["license"]
    assert p["licenseConcluded"] == "NOASSERTION" and p["filesAnalyzed"] is False
    assert p["externalRefs"] == [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
        "referenceLocator": "pkg:conda/%s@%s?build=%s&channel=conda-forge&subdir=%s&type=tar.bz2"
        % (r["name"], r["version"], r["build"], r["subdir"])}], p["externalRefs"]
assert [(x["spdxElementId"], x["relationshipType"], x["relatedSpdxElement"]) for x in a["relationships"]] == \
       [("SPDXRef-DOCUMENT", "DESCRIBES", p["SPDXID"]) for p in a["packages"]]
PYEOF
ok "--sbom: valid SPDX 2.3 (official schema), the fixture's packages, deterministic, SOURCE_DATE_EPOCH"

# ---- other transports ----
$OCILAMBDA inspect --json "oci:$B:3.8" >"$T/base.json"
skopeo copy -q "$IMG" "docker-archive:$T/out.tar:fn:v1"
$OCILAMBDA inspect --json "docker-archive:$T/out.tar" >"$T/archive.json"
registry_start reg
registry_seed reg "$IMG" fn:v1
$OCILAMBDA inspect --json "$reg_HOST/fn:v1" >"$T/registry.json" 2>"$T/registry.err"
$OCILAMBDA inspect --json --sbom "$T/sbom/r.spdx.json" "docker://$reg_HOST/fn:v1" >"$T/registry2.json" 2>/dev/null
"$PY" - "$T" <<'PYEOF' || fail "transports"
import json, sys
t = sys.argv[1]
base, oci, arc, reg, reg2 = (json.load(open("%s/%s.json" % (t, n)))
                             for n in ("base", "inspect", "archive", "registry", "registry2"))
assert base["conda"] is None, base["conda"]
assert base["pythons"] == [{"path": "/var/lang/bin/python3.8", "minor": "3.8", "link": None,
                            "target": "/var/lang/bin/python3.8", "missing": None}], base["pythons"]
assert base["cmd"] is None and base["entrypoint"] == ["/lambda-entrypoint.sh"]
for other in (arc, reg, reg2):
    assert other["config"]["digest"] == oci["config"]["digest"], other["ref"]
    for k in ("platform", "created", "env", "entrypoint", "cmd", "workingDir", "pythons", "conda"):
        assert other[k] == oci[k], (other["ref"], k, other[k], oci[k])
    assert [l["createdBy"] for l in other["layers"]] == [l["createdBy"] for l in oci["layers"]]
# docker-archive keeps layers uncompressed: other blobs, the same diff_ids
assert [l["diffId"] for l in arc["layers"]] == [l["diffId"] for l in oci["layers"]]
assert arc["manifest"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
assert [l["digest"] for l in reg["layers"]] == [l["digest"] for l in oci["layers"]]
PYEOF
"$PY" -c 'import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))' \
	"$SCHEMA" "$T/sbom/r.spdx.json" || fail "registry SBOM validates"
grep -q python "$T/sbom/r.spdx.json" || fail "registry SBOM lists python"
reg_layers=$(json "$T/registry.json" '" ".join(l["digest"][7:] for l in j["layers"])')
nonempty "the registry image's layers" $reg_layers
for l in $reg_layers; do
	[ -f "$T/cache/ocilambda/blobs/sha256/$l" ] || fail "registry layer $l read through the blob cache"
done
$OCILAMBDA inspect "oci:$B:3.8" >"$T/base.txt"
grep -qx "Conda: *(no conda prefix found)" "$T/base.txt" || fail "base: no conda"
grep -qx "Python: */var/lang/bin/python3.8 (regular file)" "$T/base.txt" || fail "base: plain python"
left=$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'ocilambda-inspect.*' -newer "$T/out.tar" 2>/dev/null)
[ -z "$left" ] || fail "temporary layer copies left: $left"
ok "base layout (no conda), docker-archive (temporary copy, removed) and docker:// (blob cache) agree"

# ---- a prefix the python does not point at: found under /opt ----
mk_layer() { # OUT.tar then NAME CONTENT pairs (files under opt/env/conda-meta/)
	"$PY" - "$@" <<'PYEOF'
import io, sys, tarfile
out, args = sys.argv[1], sys.argv[2:]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
    for d in ("opt/env/", "opt/env/conda-meta/"):
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; tf.addfile(ti)
    for name, content in zip(args[::2], args[1::2]):
        data = content.encode()
        ti = tarfile.TarInfo("opt/env/conda-meta/" + name); ti.size = len(data); ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(data))
PYEOF
}
cp -a "$B" "$T/plain"
mk_layer "$T/l.tar" zlib-1.2.13-h_0.json \
	'{"name":"zlib","version":"1.2.13","build":"h_0","channel":"https://repo.anaconda.com/pkgs/main","subdir":"linux-64","fn":"zlib-1.2.13-h_0.conda","license":"Zlib"}' \
	openssl-3.0.8-h_1.json \
	'{"name":"openssl","version":"3.0.8","build":"h_1","license":"Apache 2.0","sha256":null}'
umoci raw add-layer --image "$T/plain:3.8" --tag plain "$T/l.tar"
$OCILAMBDA inspect --json --sbom "$T/sbom/plain.json" "oci:$T/plain:plain" >"$T/plain.json"
"$PY" - "$T" "$SCHEMA" <<'PYEOF' || fail "prefix under /opt"
import json, sys, jsonschema
t, schema = sys.argv[1:3]
j = json.load(open(t + "/plain.json"))
assert j["conda"]["prefix"] == "/opt/env", j["conda"]
assert [(p["name"], p["channel"]) for p in j["conda"]["packages"]] == [("openssl", None), ("zlib", "main")]
s = json.load(open(t + "/sbom/plain.json"))
jsonschema.validate(s, json.load(open(schema)))
by = {p["name"]: p for p in s["packages"]}
assert by["zlib"]["downloadLocation"] == "https://repo.anaconda.com/pkgs/main/linux-64/zlib-1.2.13-h_0.conda"
assert by["openssl"]["downloadLocation"] == "NOASSERTION" and "checksums" not in by["openssl"]
assert by["openssl"]["licenseDeclared"] == "LicenseRef-Apache-2.0"
assert s["hasExtractedLicensingInfos"] == [{"licenseId": "LicenseRef-Apache-2.0",
    "extractedText": "Apache 2.0", "name": "Apache 2.0",
    "comment": "license as recorded in conda-meta; not an SPDX license expression"}]
PYEOF
ok "a conda prefix under /opt is found without a python link; free-text licenses become LicenseRefs"

# ---- bad input ----
expect_fail 2 "$T/nope" $OCILAMBDA inspect "oci:$T/nope:x"
expect_fail 2 "empty image reference" $OCILAMBDA inspect ""
expect_fail 2 "lambda/none" $OCILAMBDA inspect "docker-archive:$T/out.tar:lambda/none:v9"
expect_fail 1 "missing the image reference" $OCILAMBDA inspect
expect_fail 1 "unexpected argument 'extra'" $OCILAMBDA inspect "$IMG" extra
expect_fail 1 "unknown option '--bogus'" $OCILAMBDA inspect --bogus "$IMG"
expect_fail 1 "needs an argument" $OCILAMBDA inspect "$IMG" --sbom
expect_fail 2 "not linux/arm64" $OCILAMBDA inspect --platform linux/arm64 "$IMG"
SOURCE_DATE_EPOCH=yesterday expect_fail 1 "SOURCE_DATE_EPOCH" $OCILAMBDA inspect "$IMG"
expect_fail 5 "$T/no/such/dir/s.json" $OCILAMBDA inspect --sbom "$T/no/such/dir/s.json" "$IMG"
[ ! -e "$T/no" ] || fail "nothing created for a failed --sbom"
ok "bad refs exit 2, usage errors 1, an unwritable --sbom 5"

# A layer blob that is not what the manifest says.
cp -a "$T/out" "$T/corrupt"
L0=$(json "$T/manifest.json" 'j["layers"][4]["digest"]')
f=$T/corrupt/blobs/sha256/${L0#sha256:}
chmod u+w "$f"
printf 'x' >>"$f"
expect_fail 2 "layer 4 ($L0): size mismatch" $OCILAMBDA inspect "oci:$T/corrupt:latest"
truncate -s -1 "$f" && printf 'X' | dd of="$f" bs=1 seek=20 conv=notrunc status=none
expect_fail 2 "layer 4 ($L0): digest mismatch" $OCILAMBDA inspect "oci:$T/corrupt:latest"
rm "$f"
expect_fail 2 "layer 4 ($L0): blob missing" $OCILAMBDA inspect "oci:$T/corrupt:latest"
ok "a layer blob that was changed or removed is refused, naming the layer"

# A malformed conda record inside the image.
cp -a "$B" "$T/badrec"
mk_layer "$T/bad.tar" broken-1-0.json '{"name":"broken","version":"1"}'
umoci raw add-layer --image "$T/badrec:3.8" --tag bad "$T/bad.tar"
expect_fail 2 "/opt/env/conda-meta/broken-1-0.json: malformed conda record: no \"build\"" \
	$OCILAMBDA inspect --sbom "$T/sbom/bad.json" "oci:$T/badrec:bad"
[ ! -e "$T/sbom/bad.json" ] || fail "no SBOM from a malformed record"
ok "a malformed conda record in the image is an error naming it; no SBOM is written"

$OCILAMBDA help inspect >"$T/help"
for o in --json --sbom --platform --tls-verify --cache-dir "schemaVersion 1"; do
	grep -q -- "$o" "$T/help" || fail "help mentions $o"
done
$OCILAMBDA --help | grep -q '^  inspect ' || fail "inspect is in the command list"
ok "help inspect is generated from the option table and documents the JSON keys"
done_testing
