#!/usr/bin/env bash
# The conda layer cache: a rebuild of an unchanged prefix takes the layer
# from the cache (same digests as packing it); any change to a file is
# noticed, even one that keeps size and mtime (ctime); --no-cache and a
# damaged cached blob repack.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
cp -a "$FIXTURES/prefix38" "$T/prefix"
P=$T/prefix
C=$T/cache
make_code "$T/code"
n=0
# build [ARGS...]: assemble into a fresh layout; sets OUT, DIGEST, LOG
build() {
	n=$((n + 1))
	OUT=$T/out$n
	LOG=$T/log$n
	DIGEST=$($OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
		--handler example.lambda_handler --output "oci:$OUT:latest" --cache-dir "$C" \
		--progress "$@" 2>"$LOG")
}
cached() { grep -q "unchanged: .* from the cache" "$LOG"; }
# conda_layer [INDEX]: a layer's digest, by default the last conda layer (the files no
# record owns); -4 is the python record's
conda_layer() { json "$OUT/blobs/sha256/${DIGEST#sha256:}" "j[\"layers\"][${1:--3}][\"digest\"]"; }

build
first=$DIGEST
first_layer=$(conda_layer)
first_python=$(conda_layer -4)
! cached || fail "first build packs"
[ -s "$C/blobs/sha256/${first_layer#sha256:}" ] || fail "the layer is in the blob cache"
# per-package layers (issue 17): the fixture's one record (python) and the files no record
# owns are two conda layers; a record each, the environment's list of them, the runtime's
[ "$(ls "$C/layers" | wc -l)" = 4 ] || fail "four cache records (list, 2 conda, runtime): $(ls "$C/layers")"
[ "$(ls "$C/layers" | grep -c '\.list\.json$')" = 1 ] || fail "one list record: $(ls "$C/layers")"
build
cached || fail "second build uses the cache: $(cat "$LOG")"
grep -q "runtime patch .* from the cache" "$LOG" || fail "the runtime patch too: $(cat "$LOG")"
grep -Eq '^  4 +conda +[0-9.]+ (B|KiB|MiB) +[0-9.]+ (B|KiB|MiB) +cached ' "$LOG" &&
	grep -Eq '^  5 +conda +[0-9.]+ (B|KiB|MiB) +[0-9.]+ (B|KiB|MiB) +cached ' "$LOG" &&
	grep -Eq '^  7 +runtime +[0-9.]+ (B|KiB|MiB) +[0-9.]+ (B|KiB|MiB) +cached ' "$LOG" &&
	grep -Eq '^  6 +code .* new ' "$LOG" || fail "the summary says which layers were cached: $(cat "$LOG")"
[ "$DIGEST" = "$first" ] || fail "cached build gives the same image"
f=$OUT/blobs/sha256/${first_layer#sha256:}
[ "$(stat -c %i "$f")" = "$(stat -c %i "$C/blobs/sha256/${first_layer#sha256:}")" ] ||
	fail "the cached layer is hardlinked into the output"
bm=$(json "$B/index.json" 'j["manifests"][0]["digest"][7:]')
base_layers=$(json "$B/blobs/sha256/$bm" '" ".join(x["digest"][7:] for x in j["layers"])')
[ "$(wc -w <<<"$base_layers")" = 3 ] || fail "the fixture base has 3 layers: '$base_layers'"
for l in $base_layers; do
	[ "$(stat -c %i "$B/blobs/sha256/$l")" = "$(stat -c %i "$OUT/blobs/sha256/$l")" ] ||
		fail "base layer $l is hardlinked from the base layout"
done
no_litter "$T"
ok "unchanged prefix: conda and runtime layers from the cache, hardlinked (base layers too), same digest"

build --no-cache
! cached || fail "--no-cache packs"
[ "$DIGEST" = "$first" ] || fail "--no-cache gives the same image"
ok "--no-cache repacks, same digest"

# same size, same mtime, other content: only ctime tells
t=$P/etc/fixture/prefix.txt
m=$(stat -c %y "$t")
sz=$(stat -c %s "$t")
"$PY" - "$t" <<'PYEOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-2] = ord("Z") if b[-2] != ord("Z") else ord("Y")
open(p, "r+b").write(b)
PYEOF
touch -d "$m" "$t"
[ "$(stat -c %y "$t")" = "$m" ] && [ "$(stat -c %s "$t")" = "$sz" ] || fail "size and mtime kept"
build
! cached || fail "same size and mtime, other content: repacked"
[ "$(conda_layer -4)" != "$first_python" ] || fail "the new content is in the python record's layer"
# a key per layer: the other conda layer is not packed again
grep -qF "conda layer 2/2 (files no package owns) from the cache" "$LOG" ||
	fail "the unchanged layer from the cache: $(cat "$LOG")"
[ "$(conda_layer)" = "$first_layer" ] || fail "the unchanged layer is the same"
changed=$DIGEST
build
cached || fail "and cached again afterwards"
[ "$DIGEST" = "$changed" ] || fail "same digest from the cache"
ok "content changed with size and mtime restored (touch -d) is noticed"

chmod +x "$P/etc/fixture/prefix.txt"
build
! cached || fail "mode change repacks"
mode_layer=$(conda_layer)
ok "a mode change is noticed"

echo new >"$P/lib/new-file.txt"
build
! cached || fail "a new file repacks"
cl=$(conda_layer)
zcat "$OUT/blobs/sha256/${cl#sha256:}" | tar t >"$T/conda-list"
grep -q "lib/new-file.txt" "$T/conda-list" ||
	fail "the new file is in the layer"
ok "a new file is noticed"

# options that change the bytes are part of the key
build --compression-level 1
! cached || fail "another level repacks"
SOURCE_DATE_EPOCH=1700000000 build
! cached || fail "another SOURCE_DATE_EPOCH repacks"
build --prefix-dest /opt/other-env
! cached || fail "another --prefix-dest repacks"
build --exclude 'lib/new-file.txt'
! cached || fail "an --exclude repacks"
build
cached || fail "back to the first options: cached"
ok "level, SOURCE_DATE_EPOCH, --prefix-dest, --exclude are in the key"

# a damaged cached blob (same size and mtime; another inode, so it is
# hashed again) is found wrong and repacked; a missing one too
layer=$(conda_layer)
cb=$C/blobs/sha256/${layer#sha256:}
m=$(stat -c %y "$cb")
rm "$cb" # break the hardlinks to the outputs before writing
cp "$OUT/blobs/sha256/${layer#sha256:}" "$cb"
printf 'X' | dd of="$cb" bs=1 seek=100 conv=notrunc 2>/dev/null
touch -d "$m" "$cb"
before=$DIGEST
build
! cached || fail "a corrupt cached blob is not used"
[ "$DIGEST" = "$before" ] || fail "repacked to the same image"
build
cached || fail "the repacked layer is cached again"
rm "$C/blobs/sha256/${layer#sha256:}"
build
! cached || fail "a missing cached blob repacks"
[ "$DIGEST" = "$before" ] || fail "same image again"
echo '{broken' >"$(ls "$C"/layers/*.json | head -1)"
build
[ "$DIGEST" = "$before" ] || fail "a broken record is a miss, not a failure"
ok "a corrupt or missing cached blob or a broken record means a repack, not a failure"

# base blobs hashed once are linked without hashing while unchanged; one
# written to since is hashed (and refused) again
cp -a "$B" "$T/base"
saved_B=$B
B=$T/base
build
[ -n "$(ls "$C/verified")" ] || fail "verified base blobs are noted"
build
bl=$(json "$B/blobs/sha256/$(json "$B/index.json" 'j["manifests"][0]["digest"][7:]')" 'j["layers"][0]["digest"][7:]')
rm -rf "$T"/out*
printf 'X' | dd of="$B/blobs/sha256/$bl" bs=1 seek=20 conv=notrunc 2>/dev/null
expect_fail 2 "digest mismatch" $OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" \
	--code "$T/code" --handler example.lambda_handler --output "oci:$T/outx:latest" --cache-dir "$C"
B=$saved_B
ok "base blobs: hashed once, hashed again once written to"

# a noted blob under a descriptor whose size is wrong is checked in full
# (and refused), not linked on the strength of the note
rm -rf "$T/base"
cp -a "$saved_B" "$T/base"
B=$T/base
build
[ "$(ls "$C/verified" | wc -l)" -gt 0 ] || fail "noted again"
"$PY" - "$B" <<'PYEOF'
import hashlib, json, sys
b = sys.argv[1]
idx = json.load(open(b + "/index.json"))
m = json.load(open(b + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
m["layers"][0]["size"] += 7
raw = json.dumps(m).encode()
h = hashlib.sha256(raw).hexdigest()
open(b + "/blobs/sha256/" + h, "wb").write(raw)
idx["manifests"][0].update(digest="sha256:" + h, size=len(raw))
json.dump(idx, open(b + "/index.json", "w"))
PYEOF
rm -rf "$T"/out*
expect_fail 2 "digest mismatch" $OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" \
	--code "$T/code" --handler example.lambda_handler --output "oci:$T/outx:latest" --cache-dir "$C"
B=$saved_B
ok "a wrong descriptor size is refused even for a blob hashed before"

# an output on another filesystem: cached and base layers are copied, not
# linked, and come out the same
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(stat -c %d /dev/shm)" != "$(stat -c %d "$T")" ]; then
	SHM=$(mktemp -d /dev/shm/ocil-cli.XXXXXX)
	DIGEST=$($OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
		--handler example.lambda_handler --output "oci:$SHM/out:latest" --cache-dir "$C" \
		--progress 2>"$T/shm.log")
	rc=0
	grep -q "unchanged: .* from the cache" "$T/shm.log" || rc=1
	[ "$DIGEST" = "$before" ] || rc=2
	for f in "$SHM"/out/blobs/sha256/*; do
		[ "$(stat -c %h "$f")" = 1 ] || rc=3
		[ "sha256:$(sha256sum "$f" | cut -c1-64)" = "sha256:$(basename "$f")" ] || rc=4
	done
	rm -rf "$SHM"
	[ $rc = 0 ] || fail "output on another filesystem ($rc): $(cat "$T/shm.log")"
	ok "an output on another filesystem gets copies, checked against their digests"
fi

# a directory the cache key cannot walk but --exclude leaves out (here an
# unreadable one; as nobody when we are root): packed without the cache
if [ "$(id -u)" != 0 ] || command -v setpriv >/dev/null; then
	as_user() {
		if [ "$(id -u)" = 0 ]; then
			HOME=$T/u setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
		else
			"$@"
		fi
	}
	chmod 0755 "$T"
	mkdir -p "$T/u"
	cp -a "$FIXTURES/prefix38" "$T/u/prefix"
	cp -r "$B" "$T/u/base" # the fixtures' index.json is 0600
	cp -r "$T/code" "$T/u/code"
	mkdir "$T/u/prefix/secret"
	echo x >"$T/u/prefix/secret/f"
	[ "$(id -u)" != 0 ] || chown -R 65534:65534 "$T/u"
	chmod 000 "$T/u/prefix/secret"
	rc=0
	as_user $OCILAMBDA assemble --base "oci:$T/u/base:3.8" --conda-prefix "$T/u/prefix" \
		--code "$T/u/code" --handler example.lambda_handler --output "oci:$T/u/out:latest" \
		--cache-dir "$T/u/cache" --exclude secret --progress >/dev/null 2>"$T/u.log" || rc=$?
	chmod 0755 "$T/u/prefix/secret"
	[ $rc = 0 ] || fail "an excluded unreadable directory stops the build ($rc): $(cat "$T/u.log")"
	grep -q "not caching the conda layer: .*secret" "$T/u.log" ||
		fail "the progress says why the layer is not cached: $(cat "$T/u.log")"
	ok "a prefix the cache key cannot walk is packed uncached, --exclude honoured"
fi

# a cache directory that cannot be made does not stop the build
mkdir -p "$T/nodir" && touch "$T/nodir/file"
build --cache-dir "$T/nodir/file/cache"
[ "$DIGEST" = "$before" ] || fail "an unusable cache dir: the build goes on"
ok "an unusable cache directory does not stop the build"
no_litter "$T"

done_testing
