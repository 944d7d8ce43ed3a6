#!/usr/bin/env bash
# ocilambda check: an image assemble built from the fixtures passes; images
# broken on purpose with umoci and skopeo (not with ocilambda) fail with the
# rule id and exit 4; bad input is exit 2.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
cd "$T"
start=$SECONDS

# check IMAGE [ARGS...]: run check, output in $T/out, exit status in $rc.
check() {
	rc=0
	$OCILAMBDA check "$@" >"$T/out" 2>"$T/err" || rc=$?
}
# expect_rule CODE RULE SEVERITY NEEDLE: the last check exited CODE and printed
# a "RULE SEVERITY ..." line containing NEEDLE.
expect_rule() {
	[ "$rc" = "$1" ] || fail "expected exit $1, got $rc: $(cat "$T/out" "$T/err")"
	grep "^$2 $3 " "$T/out" | grep -qF -- "$4" ||
		fail "no '$2 $3 ... $4' line in: $(cat "$T/out")"
}
expect_failed() {
	[ "$rc" = 4 ] || fail "expected exit 4, got $rc"
	grep -q "^ocilambda check: .*: [0-9]* errors\? (.*$1.*): Lambda would refuse" "$T/err" ||
		fail "error line does not name $1: $(cat "$T/err")"
}
# A layer tar from a python tarfile spec (name, type, mode[, data or target]),
# written with python's tarfile (not ocilambda), then added with umoci.
add_layer() {
	local image=$1
	shift
	"$PY" - "$T/layer.tar" "$@" <<'PYEOF'
import io, sys, tarfile
out, specs = sys.argv[1], sys.argv[2:]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
    for spec in specs:
        name, kind, mode, *rest = spec.split(":", 3)
        ti = tarfile.TarInfo(name)
        ti.mode = int(mode, 8)
        data = b""
        if kind == "d":
            ti.type = tarfile.DIRTYPE
        elif kind == "h":
            ti.type, ti.linkname = tarfile.LNKTYPE, rest[0]
        elif kind == "l":
            ti.type, ti.linkname = tarfile.SYMTYPE, rest[0]
        else:
            data = (rest[0] if rest else "data\n").encode()
            ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
PYEOF
	umoci raw add-layer --image "$image" "$T/layer.tar" >/dev/null
}
copy_good() {
	rm -rf "$T/$1"
	cp -a "$T/good" "$T/$1"
}

# The assembled image passes.
$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/good:latest" >/dev/null
check "oci:$T/good:latest"
expect_rule 0 L012 info "/opt/my-code/example.py: handler example.lambda_handler: defines lambda_handler"
expect_rule 0 L013 info "/var/lang/bin/python3.8: -> /opt/conda-env/bin/python3.8 (python 3.8 of a conda prefix)"
expect_rule 0 L003 info "image is linux/amd64"
! grep -q "^L[0-9]* error" "$T/out" || fail "errors on the good image: $(cat "$T/out")"
tail -n 1 "$T/out" | grep -q "^oci:$T/good:latest (sha256:[0-9a-f]\{12\}, linux/amd64): 0 errors, .*: passes$" ||
	fail "summary line: $(tail -n 1 "$T/out")"
[ ! -s "$T/err" ] || fail "stderr on success: $(cat "$T/err")"
ok "an assembled image passes (exit 0), handler and python resolved"

check --json "oci:$T/good:latest"
[ "$rc" = 0 ] || fail "--json: exit $rc"
[ "$(json "$T/out" 'j["summary"]["passed"]')" = True ] || fail "--json: not passed"
[ "$(json "$T/out" 'j["summary"]["errors"]')" = 0 ] || fail "--json: errors"
[ "$(json "$T/out" 'j["platform"]')" = linux/amd64 ] || fail "--json: platform"
[ "$(json "$T/out" 'j["media_type"]')" = application/vnd.oci.image.manifest.v1+json ] ||
	fail "--json: media type"
[ "$(json "$T/out" 'sorted(set(k for f in j["findings"] for k in f))')" = \
	"['message', 'rule', 'severity', 'where']" ] || fail "--json: finding keys"
[ "$(json "$T/out" '[f["where"] for f in j["findings"] if f["rule"] == "L012"]')" = \
	"['/opt/my-code/example.py']" ] || fail "--json: L012"
ok "--json: findings and summary"

# The base itself: no Cmd is a warning; the docker-archive's uncompressed
# layers are fine (compressed on push).
check "oci:$B:3.8"
expect_rule 0 L011 warning "no Cmd"
check "docker-archive:$B.tar"
expect_rule 0 L002 info "stored uncompressed, as in any docker-archive"
ok "the base (oci: and docker-archive:) passes with warnings"

# An index: two images (amd64, and arm64 by umoci config), an index by hand,
# copied with skopeo --all so that skopeo vouches for it.
copy_good multi
umoci config --image "$T/multi:latest" --architecture arm64 --tag arm >/dev/null
"$PY" - "$T/multi" <<'PYEOF'
import hashlib, json, sys
lay = sys.argv[1]
idx = json.load(open(f"{lay}/index.json"))
ms = []
for m in idx["manifests"]:
    tag = m["annotations"]["org.opencontainers.image.ref.name"]
    arch = "arm64" if tag == "arm" else "amd64"
    ms.append({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
               "platform": {"os": "linux", "architecture": arch}})
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": ms}).encode()
d = hashlib.sha256(body).hexdigest()
open(f"{lay}/blobs/sha256/{d}", "wb").write(body)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                         "digest": "sha256:" + d, "size": len(body),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(f"{lay}/index.json", "w"))
PYEOF
skopeo copy --all --quiet "oci:$T/multi:multi" "oci:$T/index:multi"
check "oci:$T/index:multi"
expect_rule 4 L001 error "the reference names an index (application/vnd.oci.image.index.v1+json)"
expect_rule 4 L003 info "image is linux/amd64"
expect_failed L001
check --platform linux/arm64 "oci:$T/index:multi"
expect_rule 4 L003 info "image is linux/arm64"
check --platform linux/s390x "oci:$T/index:multi"
expect_rule 4 L003 error "the index has no linux/s390x image (available: linux/amd64, linux/arm64)"
grep -q "^oci:$T/index:multi: 2 errors" "$T/out" || fail "summary without an image: $(tail -n1 "$T/out")"
check --json "oci:$T/index:multi"
[ "$rc" = 4 ] || fail "--json index: exit $rc"
[ "$(json "$T/out" '[f["severity"] for f in j["findings"] if f["rule"] == "L001"]')" = "['error']" ] ||
	fail "--json index: L001"
[ "$(json "$T/out" 'j["summary"]["passed"]')" = False ] || fail "--json index: passed"
ok "an index is L001 (exit 4); its --platform image is checked"

# zstd layers, recompressed by skopeo.
skopeo copy --quiet --dest-compress-format zstd "oci:$T/good:latest" "oci:$T/zstd:latest"
check "oci:$T/zstd:latest"
expect_rule 4 L002 error "zstd-compressed (application/vnd.oci.image.layer.v1.tar+zstd); Lambda takes gzip layers only"
expect_failed L002
ok "zstd layers are L002 (exit 4)"

# A hardlink entry, a 0600 file, a directory without its parent entry.
copy_good hl
add_layer "$T/hl:latest" "opt:d:755" "opt/data:d:755" "opt/data/a.txt:f:644" \
	"opt/data/b.txt:h:644:opt/data/a.txt"
check "oci:$T/hl:latest"
expect_rule 4 L006 error "/opt/data/b.txt: hardlink to /opt/data/a.txt (layer 7 (sha256:"
expect_failed L006
copy_good perm
add_layer "$T/perm:latest" "opt:d:755" "opt/x:d:755" "opt/x/secret.txt:f:600"
check "oci:$T/perm:latest"
expect_rule 4 L004 error "/opt/x/secret.txt: not world-readable (mode 0600; layer 7 (sha256:"
expect_failed L004
copy_good noparent
add_layer "$T/noparent:latest" "opt/newdir/file.txt:f:644"
check "oci:$T/noparent:latest"
expect_rule 4 L007 error "/opt/newdir: parent directory missing: layer 7 (sha256:"
ok "hardlink (L006), 0600 file (L004), missing parent (L007): exit 4"

# 30 unreadable files: 20 listed, then one line for the rest.
copy_good many
specs=("opt:d:755" "opt/many:d:755")
for i in $(seq -w 1 30); do specs+=("opt/many/f$i:f:600"); done
add_layer "$T/many:latest" "${specs[@]}"
check "oci:$T/many:latest"
[ "$(grep -c '^L004 error /opt/many/f' "$T/out")" = 20 ] || fail "cap: $(cat "$T/out")"
expect_rule 4 L004 error "... and 10 more"
ok "per-entry findings capped at 20 per rule"

# A handler module that is not there (Cmd set with umoci).
copy_good nope
umoci config --image "$T/nope:latest" --config.cmd nope.handler >/dev/null
check "oci:$T/nope:latest"
expect_rule 4 L012 error "handler nope.handler: no nope.py or nope/__init__.py under PYTHONPATH or LAMBDA_TASK_ROOT (/var/lang/lib/python3.8/site-packages:/opt/my-code:/var/task)"
expect_failed L012
copy_good nofunc
umoci config --image "$T/nofunc:latest" --config.cmd example.nothere >/dev/null
check "oci:$T/nofunc:latest"
expect_rule 4 L012 error "/opt/my-code/example.py: handler example.nothere: the module does not define nothere at top level"
ok "handler module missing, function missing: L012 (exit 4)"

# python 3.9 in the prefix, 3.8 in the base: with assemble's own escape
# hatch, and by swapping the conda record in a layer of its own.
cp -a "$P" "$T/py39"
mv "$T/py39/conda-meta/"python-3.8*.json "$T/py39/conda-meta/python-3.9.7-h_fixture_0.json"
sed -i 's/"version": *"3\.8\.[0-9]*"/"version": "3.9.7"/' "$T/py39/conda-meta/python-3.9.7-h_fixture_0.json"
nocheck=()
! $OCILAMBDA assemble --help | grep -q -- --no-check || nocheck=(--no-check)
$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$T/py39" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/mism:latest" --allow-python-mismatch \
	"${nocheck[@]}" >/dev/null
check "oci:$T/mism:latest"
expect_rule 4 L014 error "/var/lang/bin/python3.8: runs the python 3.9 of the conda prefix /opt/conda-env (/opt/conda-env/conda-meta/python-3.9.7-h_fixture_0.json)"
expect_failed L014
rec=$(basename "$P"/conda-meta/python-3.8*.json)
copy_good mism2
add_layer "$T/mism2:latest" "opt:d:755" "opt/conda-env:d:755" "opt/conda-env/conda-meta:d:755" \
	"opt/conda-env/conda-meta/.wh.$rec:f:644:" "opt/conda-env/conda-meta/python-3.9.1-h0_0.json:f:644:{}"
check "oci:$T/mism2:latest"
expect_rule 4 L014 error "runs the python 3.9 of the conda prefix /opt/conda-env"
ok "conda python 3.9 under base python 3.8: L014 (exit 4)"

# The python symlink's target deleted by a whiteout.
copy_good dangling
add_layer "$T/dangling:latest" "opt:d:755" "opt/conda-env:d:755" "opt/conda-env/bin:d:755" \
	"opt/conda-env/bin/.wh.python3.8:f:644:"
check "oci:$T/dangling:latest"
expect_rule 4 L013 error "/var/lang/bin/python3.8: python symlink target missing: -> /opt/conda-env/bin/python"
ok "python symlink target missing: L013 (exit 4)"

# arm64 (umoci config) for an amd64 function.
copy_good arm
umoci config --image "$T/arm:latest" --architecture arm64 >/dev/null
check --platform linux/amd64 "oci:$T/arm:latest"
expect_rule 4 L003 error "image is linux/arm64, the function is linux/amd64 (--platform)"
expect_failed L003
check "oci:$T/arm:latest"
expect_rule 0 L003 info "image is linux/arm64: deploy it to a function with architecture arm64"
check --platform linux/arm64 "oci:$T/arm:latest"
expect_rule 0 L003 info "image is linux/arm64"
ok "arm64 image: L003 for --platform linux/amd64 (exit 4), fine for arm64"

# Bad input and usage.
expect_fail 2 "oci:$T/nothere:latest" $OCILAMBDA check "oci:$T/nothere:latest"
expect_fail 2 'no image tagged "9.9"' $OCILAMBDA check "oci:$B:9.9"
echo "plain text" >"$T/text.tar"
expect_fail 2 "docker-archive:$T/text.tar" $OCILAMBDA check "docker-archive:$T/text.tar"
copy_good tampered
layer=$(json "$T/tampered/index.json" 'j["manifests"][0]["digest"]')
layer=$(json "$T/tampered/blobs/sha256/${layer#sha256:}" 'j["layers"][1]["digest"]')
f="$T/tampered/blobs/sha256/${layer#sha256:}"
chmod u+w "$f"
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
expect_fail 2 "blob $layer: digest mismatch" $OCILAMBDA check "oci:$T/tampered:latest"
expect_fail 1 "missing the image reference" $OCILAMBDA check
expect_fail 1 "invalid platform" $OCILAMBDA check --platform amd64 "oci:$T/good:latest"
ok "bad input exits 2, usage 1, nothing on stdout"

# docker://: a real registry (Debian's docker-registry, seeded by skopeo)
# behind a proxy that counts requests. What the tag names is fetched once;
# the source then reads it from the cache by digest.
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache
registry_start reg
registry_seed reg "oci:$T/good:latest" fn/good:1
registry_seed reg "oci:$T/good:latest" fn/good:v2s2 --format v2s2
multiarch_seed reg fn/multi:1 --amd64 "oci:$T/good:latest"
faultproxy_start fp "$reg_HOST"
manifest_gets() { reglib_count "$fp_LOG" '^GET /v2/fn/[a-z]*/manifests/'; }
check --tls-verify=false "docker://$fp_HOST/fn/good:1"
expect_rule 0 L012 info "defines lambda_handler"
[ "$(manifest_gets)" = 1 ] || fail "a single-image tag: $(manifest_gets) manifest GETs, want 1"
check --tls-verify=false --json "$fp_HOST/fn/good:v2s2"
[ "$rc" = 0 ] || fail "v2s2: exit $rc: $(cat "$T/err")"
[ "$(json "$T/out" 'j["media_type"]')" = application/vnd.docker.distribution.manifest.v2+json ] ||
	fail "v2s2 media type: $(json "$T/out" 'j["media_type"]')"
check --tls-verify=false "docker://$fp_HOST/fn/multi:1"
expect_rule 4 L001 error "the reference names an index"
expect_rule 4 L012 info "defines lambda_handler"
grep -q "(${reg_AMD64_DIGEST:0:19}, linux/amd64)" "$T/out" || fail "amd64 image of the index checked"
check --tls-verify=false "docker://$fp_HOST/fn/multi@$reg_INDEX_DIGEST"
expect_rule 4 L001 error "the reference names an index"
check --tls-verify=false --platform linux/arm64 "docker://$fp_HOST/fn/multi:1"
expect_rule 4 L003 info "image is linux/arm64"
port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_fail 3 "127.0.0.1:$port" $OCILAMBDA check --retry 0 "docker://127.0.0.1:$port/fn/good:1"
ok "docker:// refs: image, v2s2, index (L001) by tag and digest; one GET per tag"

$OCILAMBDA check --help >"$T/help"
# every rule of the table in src/lambda/check.h, numbered from L000 without a gap,
# and no other
sed -n 's/^[[:space:]]*X(\(L[0-9]\{3\}\), .*/\1/p' "$SRCDIR/src/lambda/check.h" >"$T/rules"
nrules=$(wc -l <"$T/rules")
[ "$nrules" -ge 16 ] || fail "only $nrules rules read from src/lambda/check.h"
seq -f 'L%03g' 0 $((nrules - 1)) | cmp -s - "$T/rules" || fail "rules not numbered L000..: $(paste -sd' ' "$T/rules")"
sed -n 's/^  \(L[0-9]\{3\}\)  .*/\1/p' "$T/help" | cmp -s - "$T/rules" ||
	fail "--help lists rules $(sed -n 's/^  \(L[0-9]\{3\}\)  .*/\1/p' "$T/help" | paste -sd' '), src/lambda/check.h has $(paste -sd' ' "$T/rules")"
$OCILAMBDA help | grep -q '^  check ' || fail "check not in the command list"
ok "--help lists every rule"
[ -z "$(ls -A "${TMPDIR:-/tmp}" | grep '^ocilambda-check\.' || true)" ] ||
	echo "note: ocilambda-check.* dirs exist in TMPDIR (other runs?)"
echo "# t_check: $((SECONDS - start)) s"
done_testing
