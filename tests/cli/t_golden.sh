#!/usr/bin/env bash
# Reproducibility: same inputs, same digests, whatever the mtimes; a changed
# code file changes only the code layer, the config and the manifest.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
cp -a "$FIXTURES/prefix38" "$T/prefix"
make_code "$T/code"
build() {
	$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$T/prefix" --code "$T/code" \
		--handler example.lambda_handler --output "oci:$T/$1:latest"
}
layers() {
	skopeo inspect --raw "oci:$T/$1:latest" | json /dev/stdin '" ".join(l["digest"] for l in j["layers"])'
}
config() {
	skopeo inspect --raw "oci:$T/$1:latest" | json /dev/stdin 'j["config"]["digest"]'
}

d1=$(build one)
d2=$(build two)
[ "$d1" = "$d2" ] || fail "two builds: $d1 != $d2"
ok "two builds give the same manifest digest"

find "$T/prefix" "$T/code" -exec touch -h -d '2001-02-03 04:05:06' {} +
d3=$(build three)
[ "$d3" = "$d1" ] || fail "touched mtimes changed the digest"
ok "input mtimes do not matter"

echo "# changed" >>"$T/code/example.py"
d4=$(build four)
[ "$d4" != "$d1" ] || fail "changed code, same digest"
l1=$(layers one)
l4=$(layers four)
read -r -a L1 <<<"$l1"
read -r -a L4 <<<"$l4"
# the fixture base's three layers, then the conda layers (per package: the fixture's
# one record, python, and the files no record owns), code and the runtime patch
[ ${#L1[@]} = 7 ] && [ ${#L4[@]} = 7 ] || fail "layer counts ${#L1[@]} and ${#L4[@]}, want 7"
n=${#L1[@]}
for ((i = 0; i < n; i++)); do
	if [ $i = $((n - 2)) ]; then
		[ "${L1[$i]}" != "${L4[$i]}" ] || fail "code layer unchanged"
	else
		[ "${L1[$i]}" = "${L4[$i]}" ] || fail "layer $i changed with the code"
	fi
done
c1=$(config one)
c4=$(config four)
[ -n "$c1" ] && [ "$c1" != "$c4" ] || fail "config unchanged: $c1"
ok "changed code file: only the code layer, config and manifest change"

d5=$(SOURCE_DATE_EPOCH=1700000000 build five)
[ "$d5" != "$d4" ] || fail "SOURCE_DATE_EPOCH ignored"
skopeo inspect --config "oci:$T/five:latest" | json /dev/stdin 'j["created"]' | grep -cx >/dev/null 2023-11-14T22:13:20Z ||
	fail "created from SOURCE_DATE_EPOCH"
"$PY" - "$T/five" <<'PYEOF' || fail "layer mtimes from SOURCE_DATE_EPOCH"
import json, sys, tarfile, os
t = sys.argv[1]
idx = json.load(open(t + "/index.json"))
m = json.load(open(t + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
with tarfile.open(t + "/blobs/sha256/" + m["layers"][-1]["digest"][7:]) as tf:
    assert all(e.mtime == 1700000000 for e in tf)
PYEOF
d6=$(SOURCE_DATE_EPOCH=1700000000 build six)
[ "$d6" = "$d5" ] || fail "same SOURCE_DATE_EPOCH, different digest"
ok "SOURCE_DATE_EPOCH sets created and mtimes, reproducibly"
done_testing
