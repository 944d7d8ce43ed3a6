#!/usr/bin/env bash
# assemble on the small fixture with the blog's 3.8 names; skopeo and umoci
# judge the result.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
ORIGIN=/tmp/build/envs/blog-test
make_code "$T/code"
digest=$($OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/out:latest")
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || fail "stdout is the manifest digest: $digest"
no_litter "$T"
ok "assemble prints the manifest digest"

skopeo inspect --raw "oci:$T/out:latest" >"$T/manifest.json"
skopeo inspect --raw "oci:$B:3.8" >"$T/base-manifest.json"
skopeo inspect --config "oci:$T/out:latest" >"$T/config.json"
skopeo inspect --config "oci:$B:3.8" >"$T/base-config.json"
skopeo inspect "oci:$T/out:latest" >"$T/inspect.json"
[ "$(sha256_of "$T/manifest.json")" = "$digest" ] || fail "printed digest is the manifest's"
"$PY" - "$T" <<'PYEOF' || fail "manifest/config checks"
import json, sys
t = sys.argv[1]
m = json.load(open(t + "/manifest.json"))
bm = json.load(open(t + "/base-manifest.json"))
c = json.load(open(t + "/config.json"))
bc = json.load(open(t + "/base-config.json"))
ins = json.load(open(t + "/inspect.json"))
def check(cond, what):
    if not cond:
        sys.exit("check failed: " + what)
check(m["mediaType"] == "application/vnd.oci.image.manifest.v1+json", "OCI manifest, like the base")
check(m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json", "config media type")
n = len(bm["layers"])
# the fixture's one record (python, small: a group of its own) and the files no record
# owns (per-package layers, issue 17), the code, the python link
check(len(m["layers"]) == n + 4, "four new layers")
check(m["layers"][:n] == bm["layers"], "base layers byte for byte (same descriptors)")
for l in m["layers"][n:]:
    check(l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", "new layers are gzip")
cc, bcc = c["config"], bc["config"]
want_env = bcc["Env"] + ["PYTHONPATH=/var/lang/lib/python3.8/site-packages:/opt/my-code"]
check(cc["Env"] == want_env, "Env = base Env + PYTHONPATH: %r" % cc["Env"])
check(cc["Entrypoint"] == ["/lambda-entrypoint.sh"], "Entrypoint kept")
check(cc["Cmd"] == ["example.lambda_handler"], "Cmd in exec form")
check(cc.get("WorkingDir") == "/var/task", "WorkingDir kept")
check(cc.get("Labels") == bcc.get("Labels"), "labels kept")
check(c["os"] == "linux" and c["architecture"] == "amd64", "platform kept")
check(c["rootfs"]["diff_ids"][:n] == bc["rootfs"]["diff_ids"], "base diff_ids kept")
check(len(c["rootfs"]["diff_ids"]) == n + 4, "four new diff_ids")
check(len(c["history"]) == len(bc["history"]) + 4, "one history entry per new layer")
check([h["created_by"] for h in c["history"][-4:-2]] ==
      ["ocilambda: conda packages, group 2 of 8: python, at /opt/conda-env",
       "ocilambda: prefix files no conda record owns at /opt/conda-env"], "conda layers' history")
check(c["history"][-1]["created_by"].startswith("ocilambda: /var/lang/bin/python3.8 -> /opt/conda-env/bin/python"), "history says what")
check(c["created"] == "1970-01-01T00:00:00Z", "created from SOURCE_DATE_EPOCH (unset: epoch)")
check(ins["Architecture"] == "amd64" and ins["Os"] == "linux", "skopeo inspect")
PYEOF
ok "skopeo inspect: layers, config edits as designed"

skopeo copy "oci:$T/out:latest" "docker-archive:$T/out.tar:fn:v1" >/dev/null
tar tf "$T/out.tar" | grep -c >/dev/null manifest.json || fail "docker-archive written by skopeo"
ok "skopeo copy oci: -> docker-archive:"

umoci unpack --rootless --image "$T/out:latest" "$T/bundle" >/dev/null
umoci unpack --rootless --image "$B:3.8" "$T/base-bundle" >/dev/null
R=$T/bundle/rootfs
[ "$(readlink "$R/var/lang/bin/python3.8")" = /opt/conda-env/bin/python ] || fail "python3.8 link"
cmp "$R/var/lang/bin/python3.8-clean" "$T/base-bundle/rootfs/var/lang/bin/python3.8" ||
	fail "python3.8-clean is the base python"
[ ! -e "$R/var/lang/bin/obsolete-tool" ] || fail "whiteout in the base honoured"
[ ! -e "$R/var/runtime/legacy/old.py" ] && [ -e "$R/var/runtime/legacy/NEW.txt" ] ||
	fail "opaque directory in the base honoured"
[ -x "$R/lambda-entrypoint.sh" ] || fail "base content present"
ok "runtime patch: python3.8-clean kept, python3.8 -> /opt/conda-env/bin/python"

C=$R/opt/conda-env
[ -d "$C/conda-meta" ] && [ ! -e "$C/pkgs" ] || fail "prefix packed without pkgs/"
[ "$(readlink "$C/bin/python")" = python3.8 ] || fail "relative symlink kept"
[ "$(readlink "$C/bin/abs-python")" = /opt/conda-env/bin/python3.8 ] || fail "absolute link relocated"
grep -q /opt/conda-env "$C/etc/fixture/prefix.txt" || fail "text file relocated"
! grep -q "$ORIGIN" "$C/etc/fixture/prefix.txt" || fail "text file still has the origin"
head -1 "$C/bin/fixture-tool" | grep -cx >/dev/null '#!/opt/conda-env/bin/python3.8' || fail "entry point shebang"
head -1 "$C/bin/pip-tool" | grep -cx >/dev/null '#!/opt/conda-env/bin/python3.8' || fail "pip script shebang"
[ "$(stat -c %s "$C/lib/fixture-binary.dat")" = "$(stat -c %s "$P/lib/fixture-binary.dat")" ] ||
	fail "binary file keeps its size"
grep -qa "$ORIGIN" "$C/lib/fixture-binary.dat" && fail "binary file still has the origin"
"$PY" - "$C/lib/fixture-binary.dat" <<'PYEOF' || fail "binary relocation pads with NULs"
import sys
d = open(sys.argv[1], "rb").read()
assert b"/opt/conda-env/lib\0" in d, d
assert b"/opt/conda-env/share:/opt/conda-env/etc\0" in d, d
PYEOF
ok "conda prefix relocated from $ORIGIN to /opt/conda-env"

[ -f "$R/opt/my-code/example.py" ] || fail "code packed"
[ ! -e "$R/opt/my-code/__pycache__" ] && [ ! -e "$R/opt/my-code/.git" ] || fail "code skips caches"
ok "code at /opt/my-code without __pycache__ and .git"

# The new layers as tar streams: owner 0:0, mtime 0, no hardlinks, parents first.
"$PY" - "$T" <<'PYEOF' || fail "layer tar checks"
import json, sys, tarfile
t = sys.argv[1]
m = json.load(open(t + "/manifest.json"))
for l in m["layers"][-3:]:
    names = []
    with tarfile.open(t + "/out/blobs/sha256/" + l["digest"][7:]) as tf:
        for e in tf:
            assert e.uid == 0 and e.gid == 0, e.name
            assert e.mtime == 0, e.name
            assert not e.islnk(), "hardlink " + e.name
            assert e.isdir() or e.isfile() or e.issym(), e.name
            if e.isfile():
                assert e.mode & 0o444 == 0o444, "world-readable " + e.name
            if e.isdir():
                assert e.mode & 0o555 == 0o555, "world-x dir " + e.name
            name = e.name.rstrip("/")
            parent = name.rsplit("/", 1)[0] if "/" in name else None
            assert parent is None or parent in names, "parent before " + name
            names.append(name)
PYEOF
ok "new layers: 0:0, mtime 0, no hardlinks, readable, parents present"

# A second tag in the same layout keeps the first.
expect_fail 4 "the image breaks Lambda's rules (L012)" $OCILAMBDA assemble --base "oci:$B:3.8" \
	--conda-prefix "$P" --code "$T/code" --handler other.handler --output "oci:$T/out:v2"
grep -F "L012 error config.Cmd[0]: handler other.handler" "$T/stderr" >/dev/null || fail "L012 shown"
skopeo inspect "oci:$T/out:v2" >/dev/null 2>&1 && fail "published although the check failed"
d2=$($OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler other.handler --no-check --output "oci:$T/out:v2")
skopeo inspect --raw "oci:$T/out:latest" | cmp -s - "$T/manifest.json" || fail "first tag kept"
[ "$(skopeo inspect --config "oci:$T/out:v2" | json /dev/stdin 'j["config"]["Cmd"]')" = "['other.handler']" ] ||
	fail "second tag"
[ "$d2" != "$digest" ] || fail "different handler, different digest"
no_litter "$T"
ok "the check stops a handler that does not exist (exit 4); --no-check; a second tag keeps the first"

# docker-archive base (as skopeo writes it: uncompressed layers).
d3=$($OCILAMBDA assemble --base "docker-archive:$B.tar" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/from-archive")
skopeo inspect --raw "oci:$T/from-archive:latest" >"$T/m3.json"
skopeo inspect --config "oci:$T/from-archive:latest" >"$T/c3.json"
[ "$(json "$T/m3.json" 'j["mediaType"]')" = application/vnd.oci.image.manifest.v1+json ] ||
	fail "an OCI layout holds an OCI manifest"
[ "$(json "$T/m3.json" 'set(l["mediaType"] for l in j["layers"])')" = "{'application/vnd.oci.image.layer.v1.tar+gzip'}" ] ||
	fail "all layers gzip"
[ "$(json "$T/c3.json" 'j["rootfs"]["diff_ids"][:3]')" = "$(json "$T/base-config.json" 'j["rootfs"]["diff_ids"]')" ] ||
	fail "base diff_ids unchanged"
skopeo copy "oci:$T/from-archive:latest" "oci:$T/copied:x" >/dev/null
ok "docker-archive: base (layers recompressed, diff_ids verified)"

# --env, --entrypoint, --prefix-dest, --code-dest.
$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --env FOO=bar --env PYTHONPATH=/x --env LANG=C.UTF-8 \
	--entrypoint '["/bin/busybox", "env"]' --prefix-dest /opt/env --code-dest /var/task/app \
	--output "oci:$T/opts" >/dev/null
skopeo inspect --config "oci:$T/opts:latest" >"$T/c4.json"
"$PY" - "$T/c4.json" <<'PYEOF' || fail "options reach the config"
import json, sys
c = json.load(open(sys.argv[1]))["config"]
env = c["Env"]
assert "FOO=bar" in env and "PYTHONPATH=/x" in env and "LANG=C.UTF-8" in env, env
assert not any(e.startswith("LANG=en_US") for e in env), env
assert sum(e.startswith("PYTHONPATH=") for e in env) == 1, env
assert c["Entrypoint"] == ["/bin/busybox", "env"], c
PYEOF
umoci unpack --rootless --image "$T/opts:latest" "$T/b4" >/dev/null
[ "$(readlink "$T/b4/rootfs/var/lang/bin/python3.8")" = /opt/env/bin/python ] || fail "prefix-dest"
[ -f "$T/b4/rootfs/var/task/app/example.py" ] || fail "code-dest"
grep -q /opt/env "$T/b4/rootfs/opt/env/etc/fixture/prefix.txt" || fail "relocated to prefix-dest"
ok "--env, --entrypoint, --prefix-dest, --code-dest"

$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/sb" --sbom "$T/sbom.json" >/dev/null
"$PY" - "$T/sbom.json" "$SRCDIR/testdata/spdx/spdx-schema-2.3.json" <<'PYEOF' || fail "SBOM"
import json, sys, jsonschema
doc = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator(json.load(open(sys.argv[2]))).validate(doc)
assert [(p["name"], p["versionInfo"]) for p in doc["packages"]] == [("python", "3.8.16")], doc["packages"]
PYEOF
expect_fail 5 "--sbom" $OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/sb2" --sbom "$T/no/such/dir/sbom.json"
[ ! -e "$T/sb2" ] || fail "image published although the SBOM failed"
ok "--sbom writes SPDX 2.3 (schema-valid) before anything is published"
done_testing
