#!/usr/bin/env bash
# Bad input: each case gives one clear line naming the file or ref, exit 2
# (bad input), and leaves nothing behind.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
build() {
	$OCILAMBDA assemble --handler example.lambda_handler --code "$T/code" "$@"
}
cd "$T"

expect_fail 2 "$T/nope" build --base "oci:$B:3.8" --conda-prefix "$T/nope" --output oci:out
expect_fail 2 "No such file or directory" build --base "oci:$B:3.8" --conda-prefix "$T/nope" \
	--output oci:out
mkdir -p "$T/plain/bin"
expect_fail 2 "no conda-meta" build --base "oci:$B:3.8" --conda-prefix "$T/plain" --output oci:out
echo "not a dir" >"$T/file"
expect_fail 2 "$T/file" build --base "oci:$B:3.8" --conda-prefix "$T/file" --output oci:out
cp -a "$P" "$T/badmeta"
echo '{"name": "python", "version": ' >"$T/badmeta/conda-meta/broken-1.0-0.json"
expect_fail 2 "broken-1.0-0.json" build --base "oci:$B:3.8" --conda-prefix "$T/badmeta" \
	--output oci:out
ls "$T" | grep -c >/dev/null '^out$' && fail "output created"
no_litter "$T"
ok "prefix: missing, not a directory, without conda-meta, malformed record"

expect_fail 2 "--code $T/nocode" $OCILAMBDA assemble --handler a.b --code "$T/nocode" \
	--base "oci:$B:3.8" --conda-prefix "$P" --output oci:out
ok "code directory missing"

expect_fail 2 "oci:$T/nobase:3.8" build --base "oci:$T/nobase:3.8" --conda-prefix "$P" \
	--output oci:out
expect_fail 2 'no image tagged "9.9" (tags: 3.8)' build --base "oci:$B:9.9" --conda-prefix "$P" \
	--output oci:out
expect_fail 2 "docker-archive:$T/nobase.tar" build --base "docker-archive:$T/nobase.tar" \
	--conda-prefix "$P" --output oci:out
tar cf "$T/other.tar" -C "$T" code
expect_fail 2 "docker-archive:$T/other.tar: no manifest.json (not a docker-archive)" build \
	--base "docker-archive:$T/other.tar" --conda-prefix "$P" --output oci:out
echo "plain text" >"$T/text.tar"
expect_fail 2 "docker-archive:$T/text.tar: Unrecognized archive format" build \
	--base "docker-archive:$T/text.tar" --conda-prefix "$P" --output oci:out
no_litter "$T"
[ ! -e "$T/out" ] || fail "output created"
ok "base ref that does not exist"

# A tampered layer blob: same name, different bytes.
cp -a "$B" "$T/tampered"
layer=$(json "$T/tampered/index.json" 'j["manifests"][0]["digest"]')
layer=$(json "$T/tampered/blobs/sha256/${layer#sha256:}" 'j["layers"][1]["digest"]')
f="$T/tampered/blobs/sha256/${layer#sha256:}"
chmod u+w "$f"
printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
expect_fail 2 "blob $layer: digest mismatch" build --base "oci:$T/tampered:3.8" \
	--conda-prefix "$P" --output oci:out
[ ! -e "$T/out" ] || fail "output created"
no_litter "$T"
ok "tampered base layer is refused"

# Malformed manifest JSON, stored under its own (correct) digest.
cp -a "$B" "$T/badjson"
bad='{"schemaVersion": 2, "config": '
hex=$(printf '%s' "$bad" | sha256sum | cut -d' ' -f1)
printf '%s' "$bad" >"$T/badjson/blobs/sha256/$hex"
"$PY" - "$T/badjson/index.json" "$hex" "${#bad}" <<'PYEOF'
import json, sys
p, hexd, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
j = json.load(open(p))
j["manifests"][0]["digest"] = "sha256:" + hexd
j["manifests"][0]["size"] = size
json.dump(j, open(p, "w"))
PYEOF
expect_fail 2 "malformed JSON" build --base "oci:$T/badjson:3.8" --conda-prefix "$P" --output oci:out
[ ! -e "$T/out" ] || fail "output created"
ok "malformed manifest JSON"

mkdir "$T/notlayout"
echo precious >"$T/notlayout/data.txt"
expect_fail 2 "output $T/notlayout exists and is not an OCI image layout" build \
	--base "oci:$B:3.8" --conda-prefix "$P" --output "oci:$T/notlayout"
[ "$(cat "$T/notlayout/data.txt")" = precious ] || fail "existing directory touched"
[ "$(ls -A "$T/notlayout")" = data.txt ] || fail "existing directory touched"
echo x >"$T/afile"
expect_fail 2 "output $T/afile exists and is not a directory" build --base "oci:$B:3.8" \
	--conda-prefix "$P" --output "oci:$T/afile"
no_litter "$T"
ok "output that exists and is not a layout"

# The python in the prefix must match the base's.
cp -a "$P" "$T/py39"
mv "$T/py39/conda-meta/"python-3.8*.json "$T/py39/conda-meta/python-3.9.7-h_fixture_0.json"
sed -i 's/"version": *"3\.8\.[0-9]*"/"version": "3.9.7"/' "$T/py39/conda-meta/python-3.9.7-h_fixture_0.json"
expect_fail 2 "python version mismatch: the conda prefix has python 3.9.7 but the base oci:$B:3.8 has /var/lang/bin/python3.8" \
	build --base "oci:$B:3.8" --conda-prefix "$T/py39" --output "oci:$T/out"
[ ! -e "$T/out" ] || fail "output created"
no_litter "$T"
build --base "oci:$B:3.8" --conda-prefix "$T/py39" --output "oci:$T/out" --allow-python-mismatch >/dev/null
umoci unpack --rootless --image "$T/out:latest" "$T/bundle" >/dev/null
[ "$(readlink "$T/bundle/rootfs/var/lang/bin/python3.8")" = /opt/conda-env/bin/python ] ||
	fail "mismatch allowed: python3.8 link"
ok "python minor mismatch refused unless --allow-python-mismatch"

# An image ocilambda built is not a base: its python3.8 is the conda one.
expect_fail 2 "oci:$T/out:latest: base image already has /var/lang/bin/python3.8-clean" \
	build --base "oci:$T/out:latest" --conda-prefix "$P" --output "oci:$T/again"
[ ! -e "$T/again" ] || fail "output created"
ok "an already patched base is refused"

# A base without /var/lang/bin/python3.X.

umoci init --layout "$T/nopy" >/dev/null
umoci new --image "$T/nopy:x" >/dev/null
umoci unpack --rootless --image "$T/nopy:x" "$T/nopyb" >/dev/null
mkdir -p "$T/nopyb/rootfs/var/lang/bin"
echo '#!/bin/sh' >"$T/nopyb/rootfs/var/lang/bin/python3"
umoci repack --image "$T/nopy:x" "$T/nopyb" >/dev/null
expect_fail 2 "base image has no /var/lang/bin/python3.X" build --base "oci:$T/nopy:x" \
	--conda-prefix "$P" --output "oci:$T/out2"
[ ! -e "$T/out2" ] || fail "output created"
ok "base without a Lambda python"
done_testing
