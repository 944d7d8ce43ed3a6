#!/usr/bin/env bash
# --compression and --compression-level: zstd layers are read back by the
# zstd tool and skopeo (umoci 0.4.7 refuses zstd layers, so it cannot
# judge), their diff_ids are the tar's; check's L002 is a warning when zstd
# was asked for; outputs without zstd layers are refused up front.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
A=(assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" --handler example.lambda_handler)

$OCILAMBDA "${A[@]}" --output "oci:$T/z:latest" --compression zstd >"$T/zdigest" 2>"$T/zerr"
grep -q "L002 warning .*zstd-compressed" "$T/zerr" || fail "L002 shown as a warning: $(cat "$T/zerr")"
# one a new layer: the prefix's python (a group) and its unowned files, code, python link
[ "$(grep -c "L002" "$T/zerr")" = 4 ] || fail "one L002 line a new layer: $(cat "$T/zerr")"
no_litter "$T"
ok "assemble --compression zstd builds, L002 is a warning on stderr"

skopeo inspect --raw "oci:$T/z:latest" >"$T/zm.json"
skopeo inspect --config "oci:$T/z:latest" >"$T/zc.json"
"$PY" - "$T" <<'PYEOF' >"$T/zlayers" || fail "zstd manifest"
import json, sys
t = sys.argv[1]
m = json.load(open(t + "/zm.json"))
c = json.load(open(t + "/zc.json"))
new = m["layers"][-4:]  # two conda layers, code, python link
for l in new:
    assert l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd", l
for l in m["layers"][:-4]:
    assert l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", l
for l, d in zip(new, c["rootfs"]["diff_ids"][-4:]):
    print(l["digest"][7:], l["size"], d[7:])
PYEOF
while read -r hex size diff; do
	f=$T/z/blobs/sha256/$hex
	[ "$(stat -c %s "$f")" = "$size" ] || fail "layer size $hex"
	zstd -q -t "$f" || fail "zstd -t $hex"
	[ "$(zstd -dc "$f" | sha256sum | cut -c1-64)" = "$diff" ] || fail "diff_id of $hex"
	zstd -dc "$f" | tar t >/dev/null || fail "tar t $hex"
done <"$T/zlayers"
zstd -dc "$T/z/blobs/sha256/$(sed -n 3p "$T/zlayers" | cut -d' ' -f1)" | tar t >"$T/code-list"
grep -qx "opt/my-code/example.py" "$T/code-list" || fail "code layer lists example.py"
ok "zstd layers: media type, zstd -t, diff_id = sha256 of zstd -dc, tar t"

skopeo copy --dest-compress --dest-compress-format gzip "oci:$T/z:latest" "oci:$T/g:latest" >/dev/null
[ "$(json <(skopeo inspect --raw "oci:$T/g:latest") '[l["mediaType"][-4:] for l in j["layers"]].count("gzip")')" = 7 ] ||
	fail "skopeo recompressed every layer to gzip"
ok "skopeo reads the zstd layers (copy, recompressing to gzip)"

rc=0
$OCILAMBDA check "oci:$T/z:latest" >"$T/check.out" 2>&1 || rc=$?
[ "$rc" = 4 ] && grep -q "^L002 error" "$T/check.out" || fail "check: exit $rc, $(cat "$T/check.out")"
ok "ocilambda check still fails a zstd image (Lambda takes gzip only)"

# Levels: 1 and 9 give other gzip bytes than the default, same diff_ids.
for l in 1 9; do
	$OCILAMBDA "${A[@]}" --output "oci:$T/l$l:latest" --compression-level $l >/dev/null
done
$OCILAMBDA "${A[@]}" --output "oci:$T/l6:latest" --compression gzip >/dev/null
$OCILAMBDA "${A[@]}" --output "oci:$T/l6b:latest" --compression-level 6 >/dev/null
[ "$(cat "$T/l6/index.json")" = "$(cat "$T/l6b/index.json")" ] || fail "level 6 is the default"
d1=$(json "$T/l1/index.json" 'j["manifests"][0]["digest"]')
d9=$(json "$T/l9/index.json" 'j["manifests"][0]["digest"]')
d6=$(json "$T/l6/index.json" 'j["manifests"][0]["digest"]')
[ "$d1" != "$d6" ] && [ "$d9" != "$d6" ] || fail "levels change the layer bytes"
ids() { skopeo inspect --config "oci:$1:latest" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rootfs"]["diff_ids"])'; }
[ "$(ids "$T/l1")" = "$(ids "$T/l9")" ] && [ "$(ids "$T/l1")" = "$(ids "$T/z")" ] ||
	fail "same diff_ids at every level and compression"
ok "--compression-level 1 and 9 change the bytes, not the diff_ids; 6 is the default"

expect_fail 1 "want gzip or zstd" $OCILAMBDA "${A[@]}" --output "oci:$T/x" --compression lz4
expect_fail 1 "want 1..9" $OCILAMBDA "${A[@]}" --output "oci:$T/x" --compression-level 0
expect_fail 1 "want 1..9" $OCILAMBDA "${A[@]}" --output "oci:$T/x" --compression-level 10
expect_fail 1 "docker-archive holds Docker v2s2" $OCILAMBDA "${A[@]}" \
	--output "docker-archive:$T/x.tar" --compression zstd
expect_fail 1 "--format docker" $OCILAMBDA "${A[@]}" --output "oci:$T/x" --format docker \
	--compression zstd
expect_fail 1 "add --format oci" $OCILAMBDA assemble --base "docker-archive:$B.tar" \
	--conda-prefix "$P" --code "$T/code" --handler example.lambda_handler \
	--output "docker://127.0.0.1:1/x:y" --compression zstd
[ ! -e "$T/x" ] && [ ! -e "$T/x.tar" ] || fail "nothing written on a usage error"
ok "bad values and zstd for Docker v2s2 outputs are usage errors"

done_testing
