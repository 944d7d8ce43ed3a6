#!/usr/bin/env bash
# assemble --conda-lock --pkgs-dir (issue 10): the conda layer is built from a lock file
# and a directory of real-format .conda/.tar.bz2 packages, without conda. Inside the
# image (umoci unpack, then bubblewrap as uid 993 on a read-only root) the placeholders
# say /opt/conda-env, the noarch entry point runs, python imports the packages, and the
# conda-meta records are there for inspect/check/--sbom (and conda list).
. "$(dirname "$0")/lib.sh"

PYVER=$(cat "$FIXTURES/pyver")
B=$FIXTURES/base-run
L=$FIXTURES/lock
make_code "$T/code"
assemble() {
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" \
		--handler example.lambda_handler "$@"
}
assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --output "oci:$T/out" \
	>"$T/digest1" 2>"$T/warn"
grep -F "share/common/owner.txt is in both hellotool-1.0-h0_0.tar.bz2 and whereami-1.0-h0_0.conda; whereami-1.0-h0_0.conda, later in the lock, wins" \
	"$T/warn" >/dev/null || fail "conflict warning: $(cat "$T/warn")"
ok "assembled from the explicit lock; the path two packages share is reported"

umoci unpack --rootless --image "$T/out:latest" "$T/bundle" >/dev/null
R=$T/bundle/rootfs
E=$R/opt/conda-env
run() { run_in "$R" "$@"; }
[ "$(run /opt/conda-env/bin/whereami)" = /opt/conda-env ] || fail "binary placeholder: $(run /opt/conda-env/bin/whereami)"
[ "$(run /opt/conda-env/bin/whereami --libdir)" = /opt/conda-env/lib ] || fail "whereami --libdir"
[ "$(stat -c %s "$E/bin/whereami")" = "$(json "$E/conda-meta/whereami-1.0-h0_0.json" \
	'[p["size_in_bytes"] for p in j["paths_data"]["paths"] if p["_path"] == "bin/whereami"][0]')" ] ||
	fail "the binary's size changed"
ok "the binary placeholder is /opt/conda-env, NUL-padded"
[ "$(run /opt/conda-env/bin/hellotool)" = "hellotool installed at /opt/conda-env" ] || fail "text placeholder"
[ "$(readlink "$E/bin/hello")" = hellotool ] || fail "symlink in a package"
[ "$(run /opt/conda-env/bin/hellotool-again)" = "hellotool installed at /opt/conda-env" ] ||
	fail "hardlink in a package"
grep -x "prefix=/opt/conda-env" "$E/lib/pkgconfig/whereami.pc" >/dev/null || fail ".pc file"
[ "$(cat "$E/share/common/owner.txt")" = whereami ] || fail "later package wins"
ok "text placeholders replaced, symlinks kept, hardlinks copied, the later package's file kept"
[ "$(run /opt/conda-env/bin/greet)" = "hello from greetpkg" ] || fail "noarch entry point"
head -n 1 "$E/bin/greet" | grep -x "#!/opt/conda-env/bin/python$PYVER" >/dev/null || fail "entry point shebang"
[ -f "$E/lib/python$PYVER/site-packages/greetpkg/__init__.py" ] || fail "noarch site-packages mapping"
out=$(run /opt/conda-env/bin/python -B -c 'import sys, json, ssl, greetpkg; print(sys.prefix)')
[ "$out" = /opt/conda-env ] || fail "import through the prefix python: $out"
out=$(run /var/lang/bin/python$PYVER -B -c 'import greetpkg, sys; print(sys.prefix)')
[ "$out" = /opt/conda-env ] || fail "import through the Lambda python: $out"
ok "the noarch entry point runs, python imports the packages"
diff -r --no-dereference -x conda-meta -x __pycache__ "$L/expected" "$E" >"$T/diff" || fail "differs from what conda would link: $(head -20 "$T/diff")"
# (the bytecode layer's pycs, issue 20: t_e2e_bytecode_lock checks them)
[ -f "$E/lib/python$PYVER/site-packages/greetpkg/__pycache__/__init__.cpython-${PYVER/./}.pyc" ] ||
	fail "greetpkg (noarch: python) not compiled"
ok "the prefix equals, file for file, what conda would link (conda-meta aside)"

for rec in python-*-h0_0_cpython hellotool-1.0-h0_0 whereami-1.0-h0_0 greetpkg-0.1-pyh_0; do
	f=$(echo "$E"/conda-meta/$rec.json)
	[ -f "$f" ] || fail "conda-meta record $rec missing"
done
G=$E/conda-meta/greetpkg-0.1-pyh_0.json
[ "$(json "$G" 'j["channel"]')" = https://conda.anaconda.org/conda-forge/noarch ] || fail "record channel"
[ "$(json "$G" 'j["url"]')" = https://conda.anaconda.org/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2 ] || fail "record url"
[ "$(json "$G" 'j["md5"]')" = "$(md5sum "$L/pkgs/greetpkg-0.1-pyh_0.tar.bz2" | cut -d' ' -f1)" ] || fail "record md5"
[ "$(json "$G" '"bin/greet" in j["files"] and "lib/python'"$PYVER"'/site-packages/greetpkg/__init__.py" in j["files"]')" = True ] ||
	fail "record files"
[ "$(json "$G" '[p["path_type"] for p in j["paths_data"]["paths"] if p["_path"] == "bin/greet"]')" = "['unix_python_entry_point']" ] ||
	fail "entry point in paths_data"
W=$E/conda-meta/whereami-1.0-h0_0.json
[ "$(json "$W" '[p["file_mode"] for p in j["paths_data"]["paths"] if p["_path"] == "bin/whereami"]')" = "['binary']" ] ||
	fail "binary placeholder in paths_data"
[ "$(json "$W" '[p["sha256_in_prefix"] for p in j["paths_data"]["paths"] if p["_path"] == "bin/whereami"][0]')" = \
	"$(sha256sum "$E/bin/whereami" | cut -d' ' -f1)" ] || fail "sha256_in_prefix"
grep -x "+conda-forge/noarch::greetpkg-0.1-pyh_0" "$E/conda-meta/history" >/dev/null ||
	fail "conda-meta/history"
ok "conda-meta records (channel, url, md5, files, paths_data) and history written"

$OCILAMBDA inspect "oci:$T/out" >"$T/inspect"
grep -E "^Conda: +/opt/conda-env, 4 packages" "$T/inspect" >/dev/null || fail "inspect: $(cat "$T/inspect")"
grep -E "^  whereami +1.0 +h0_0 +conda-forge" "$T/inspect" >/dev/null || fail "inspect lists whereami"
$OCILAMBDA check "oci:$T/out" >/dev/null || fail "check"
assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --output "oci:$T/out2" \
	--sbom "$T/sbom.json" >"$T/digest2" 2>/dev/null
[ "$(cat "$T/digest1")" = "$(cat "$T/digest2")" ] || fail "two builds differ"
[ "$(json "$T/sbom.json" 'sorted(p["name"] for p in j["packages"])')" = "['greetpkg', 'hellotool', 'python', 'whereami']" ] ||
	fail "sbom packages"
$OCILAMBDA inspect --sbom "$T/sbom-image.json" "oci:$T/out" >/dev/null
[ "$(json "$T/sbom.json" 'j["packages"]')" = "$(json "$T/sbom-image.json" 'j["packages"]')" ] ||
	fail "assemble --sbom and inspect --sbom list the packages alike"
ok "inspect and check read the result, --sbom lists the packages, two builds give the same digest"

assemble --conda-lock "$L/conda-lock.yml" --pkgs-dir "$L/pkgs" --wheels-dir "$L/wheels" \
	--output "oci:$T/yml" >/dev/null 2>&1
umoci unpack --rootless --image "$T/yml:latest" "$T/b2" >/dev/null
R=$T/b2/rootfs
[ "$(run /opt/conda-env/bin/whereami)" = /opt/conda-env ] || fail "conda-lock.yml: whereami"
[ "$(run /opt/conda-env/bin/greet)" = "hello from greetpkg" ] || fail "conda-lock.yml: greet"
[ "$(ls "$R/opt/conda-env/conda-meta" | wc -l)" = 5 ] || fail "conda-lock.yml: records"
ok "a conda-lock.yml gives the same environment (its osx-64 entry left out)"

SP=$R/opt/conda-env/lib/python$PYVER/site-packages
[ "$(run /opt/conda-env/bin/wheeldemo)" = "wheeldemo ok" ] || fail "wheel console script"
out=$(run /opt/conda-env/bin/python -B -c 'import importlib.metadata as m; d = m.distribution("wheeldemo"); print(d.version, d.read_text("INSTALLER").strip(), d.entry_points[0].name)')
[ "$out" = "1.0 ocilambda wheeldemo" ] || fail "wheel metadata: $out"
grep -x '\.\./\.\./\.\./bin/wheeldemo,sha256=[A-Za-z0-9_-]*,[0-9]*' "$SP/wheeldemo-1.0.dist-info/RECORD" >/dev/null ||
	fail "RECORD lists the script: $(cat "$SP/wheeldemo-1.0.dist-info/RECORD")"
grep -x 'wheeldemo-1.0.dist-info/RECORD,,' "$SP/wheeldemo-1.0.dist-info/RECORD" >/dev/null || fail "RECORD row"
# (without --offline it would be downloaded: t_lock_fetch)
expect_fail 2 "wheeldemo-1.0-py3-none-any.whl is not in the cache, and --offline forbids downloading it" \
	assemble --conda-lock "$L/conda-lock.yml" --pkgs-dir "$L/pkgs" --offline --output "oci:$T/bad"
ok "wheels: the lock's pip entry installed with RECORD, INSTALLER and its console script"

# an explicit lock installs every wheel of --wheels-dir; tags and RECORD are checked
mkdir "$T/wh"
cp "$L/wheels/wheeldemo-1.0-py3-none-any.whl" "$T/wh/"
assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --wheels-dir "$T/wh" \
	--output "oci:$T/whl2" >/dev/null 2>&1 || fail "explicit lock with --wheels-dir"
cp "$L/wheels/wheeldemo-1.0-py3-none-any.whl" "$T/wh/wheeldemo-1.0-cp39-cp39-manylinux2014_x86_64.whl"
expect_fail 2 "wheeldemo-1.0-cp39-cp39-manylinux2014_x86_64.whl: built for cp39-cp39-manylinux2014_x86_64, which python $PYVER on x86_64 can not use" \
	assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --wheels-dir "$T/wh" --output "oci:$T/bad"
rm "$T/wh/wheeldemo-1.0-cp39-cp39-manylinux2014_x86_64.whl"
"$PY" - "$T/wh/wheeldemo-1.0-py3-none-any.whl" <<'PYEOF'
import sys, zipfile
p = sys.argv[1]
members = {n: zipfile.ZipFile(p).read(n) for n in zipfile.ZipFile(p).namelist()}
members["wheeldemo/__init__.py"] += b"# changed\n"
with zipfile.ZipFile(p, "w") as z:
    for n, d in members.items():
        z.writestr(n, d)
PYEOF
expect_fail 2 "wheeldemo-1.0-py3-none-any.whl: wheeldemo/__init__.py: does not match RECORD" \
	assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --wheels-dir "$T/wh" --output "oci:$T/bad"
expect_fail 2 "wheeldemo-1.0-py3-none-any.whl: sha256 mismatch" \
	assemble --conda-lock "$L/conda-lock.yml" --pkgs-dir "$L/pkgs" --wheels-dir "$T/wh" --output "oci:$T/bad"
ok "wheels: every wheel of the directory for an explicit lock; wrong tags, RECORD or hash refused"

# manylinux wheels against the base's glibc (the fixture base has this host's): one
# needing a newer glibc is refused before anything is written (at run time its import
# would fail with "GLIBC_2.99 not found"); a manylinux2014 one (glibc 2.17) installs
mkdir "$T/gl"
glibc=$(getconf GNU_LIBC_VERSION | cut -d' ' -f2) # "glibc 2.36"
cp "$L/wheels/wheeldemo-1.0-py3-none-any.whl" "$T/gl/wheeldemo-1.0-py3-none-manylinux_2_99_x86_64.whl"
expect_fail 2 "$T/gl/wheeldemo-1.0-py3-none-manylinux_2_99_x86_64.whl: built for py3-none-manylinux_2_99_x86_64, which needs glibc 2.99; the base image has glibc $glibc" \
	assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --wheels-dir "$T/gl" --output "oci:$T/glbad"
[ ! -e "$T/glbad" ] || fail "output written for a wheel the base's glibc can not run"
no_litter "$T"
mv "$T/gl/wheeldemo-1.0-py3-none-manylinux_2_99_x86_64.whl" "$T/gl/wheeldemo-1.0-py3-none-manylinux2014_x86_64.whl"
assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --wheels-dir "$T/gl" \
	--output "oci:$T/gl2014" --progress >/dev/null 2>"$T/gl.err" || fail "manylinux2014 wheel: $(cat "$T/gl.err")"
grep -Fx "ocilambda: base glibc $glibc (/lib/x86_64-linux-gnu/libc.so.6)" "$T/gl.err" >/dev/null ||
	fail "the base's glibc is not reported: $(cat "$T/gl.err")"
umoci unpack --rootless --image "$T/gl2014:latest" "$T/b3" >/dev/null
R=$T/b3/rootfs
[ "$(run /opt/conda-env/bin/wheeldemo)" = "wheeldemo ok" ] || fail "manylinux2014 wheel not installed"
ok "wheels: a manylinux tag needing a newer glibc than the base's is refused, manylinux2014 installs"

# The layer cache (as for prefixes): an unchanged lock, package and wheel directories
# give the conda layer without reading the packages; what loading them found (python,
# warnings, wheel tags, SBOM packages) comes with it. Copies, to change them.
C=$T/lcache
cp -a "$L/pkgs" "$T/lp"
cp "$L/explicit.txt" "$T/lock.txt"
mkdir "$T/lw"
n=0
# lbuild [ARGS...]: assemble the copied lock into one layout (the SBOM is named after
# it); sets OUT, DIGEST, LOG
OUT=$T/lc-out
lbuild() {
	n=$((n + 1))
	LOG=$T/lc-log$n
	DIGEST=$(assemble --conda-lock "$T/lock.txt" --pkgs-dir "$T/lp" --cache-dir "$C" \
		--output "oci:$OUT:latest" --progress "$@" 2>"$LOG") || fail "build $n: $(cat "$LOG")"
}
cached() { grep -q "^ocilambda: conda lock $T/lock.txt unchanged: .* from the cache" "$LOG"; }
conda_layer() { json "$OUT/blobs/sha256/${DIGEST#sha256:}" 'j["layers"][-3]["digest"]'; }
lbuild --sbom "$T/lc-sbom1.json"
first=$DIGEST
first_layer=$(conda_layer)
! cached || fail "the first lock build packs"
lbuild --sbom "$T/lc-sbom2.json"
cached || fail "a second lock build uses the cache: $(cat "$LOG")"
grep -Eq '^ +[0-9]+ +conda +[0-9.]+ (B|KiB|MiB) +[0-9.]+ (B|KiB|MiB) +cached ' "$LOG" ||
	fail "the summary says the conda layer was cached: $(cat "$LOG")"
[ "$DIGEST" = "$first" ] || fail "the cached lock build gives another image"
cmp "$T/lc-sbom1.json" "$T/lc-sbom2.json" || fail "--sbom differs on a cached build"
grep -F "ocilambda: warning: share/common/owner.txt is in both hellotool-1.0-h0_0.tar.bz2 and whereami-1.0-h0_0.conda" \
	"$LOG" >/dev/null || fail "a cached build still warns of the shared path: $(cat "$LOG")"
grep -F "conda lock $T/lock.txt: python $PYVER" "$LOG" >/dev/null || fail "python from the cache: $(cat "$LOG")"
no_litter "$T"
ok "lock cache: a second build takes the conda layer from the cache, same image, same --sbom bytes, same warning"

# the same bytes written again, size and mtime kept: only ctime tells
pk=$T/lp/hellotool-1.0-h0_0.tar.bz2
m=$(stat -c %y "$pk")
"$PY" -c 'import sys; p = sys.argv[1]; d = open(p, "rb").read(); open(p, "wb").write(d)' "$pk"
touch -d "$m" "$pk"
[ "$(stat -c %y "$pk")" = "$m" ] || fail "mtime not restored"
lbuild
! cached || fail "a package rewritten in place (same size and mtime) is not noticed"
[ "$DIGEST" = "$first" ] || fail "same bytes, another image"
lbuild
cached || fail "cached again: $(cat "$LOG")"
printf 'X' | dd of="$pk" bs=1 seek=100 conv=notrunc 2>/dev/null
touch -d "$m" "$pk"
expect_fail 2 "hellotool-1.0-h0_0.tar.bz2: md5 mismatch" \
	assemble --conda-lock "$T/lock.txt" --pkgs-dir "$T/lp" --cache-dir "$C" --output "oci:$T/bad"
cp -p "$L/pkgs/hellotool-1.0-h0_0.tar.bz2" "$pk"
# a --pkgs-dir of symlinks (into conda's own pkgs, say): what they point at counts
mkdir "$T/lsym"
for f in "$T/lp"/*; do ln -s "$f" "$T/lsym/"; done
lbuild --pkgs-dir "$T/lsym"
lbuild --pkgs-dir "$T/lsym"
cached || fail "unchanged symlinked packages: $(cat "$LOG")"
m=$(stat -c %y "$pk")
"$PY" -c 'import sys; p = sys.argv[1]; d = open(p, "rb").read(); open(p, "wb").write(d)' "$pk"
touch -d "$m" "$pk"
lbuild --pkgs-dir "$T/lsym"
! cached || fail "a package rewritten behind a symlink is not noticed"
ok "lock cache: a package changed in place (size and mtime kept) is noticed, behind a symlink too; tampering still fails its hash"

lbuild --wheels-dir "$T/lw"
! cached || fail "an (empty) --wheels-dir is another key"
lbuild --wheels-dir "$T/lw"
cached || fail "the same empty wheels directory: $(cat "$LOG")"
cp "$L/wheels/wheeldemo-1.0-py3-none-any.whl" "$T/lw/"
lbuild --wheels-dir "$T/lw"
! cached || fail "a wheel added to --wheels-dir repacks"
[ "$(conda_layer)" != "$first_layer" ] || fail "the wheel is not in the layer"
lbuild --wheels-dir "$T/lw"
cached || fail "unchanged wheels: $(cat "$LOG")"
echo "# a comment" >>"$T/lock.txt"
lbuild
! cached || fail "a changed lock file repacks"
lbuild
cached || fail "the changed lock, again: $(cat "$LOG")"
lbuild --no-cache
! cached || fail "--no-cache repacks"
grep -Eq '^ +[0-9]+ +conda .* new ' "$LOG" || fail "--no-cache: the summary says new: $(cat "$LOG")"
[ "$DIGEST" = "$first" ] || fail "--no-cache gives another image"
ok "lock cache: a wheel added, a changed lock and --no-cache each repack"

# glibc refusal from a cached layer: cached on base38 (no libc: glibc unknown, accepted,
# python minor allowed to differ), then refused on the base with this host's glibc
mkdir "$T/lgl"
cp "$L/wheels/wheeldemo-1.0-py3-none-any.whl" "$T/lgl/wheeldemo-1.0-py3-none-manylinux_2_99_x86_64.whl"
$OCILAMBDA assemble --base "oci:$FIXTURES/base38:3.8" --allow-python-mismatch --code "$T/code" \
	--handler example.lambda_handler --conda-lock "$T/lock.txt" --pkgs-dir "$T/lp" \
	--wheels-dir "$T/lgl" --cache-dir "$C" --output "oci:$T/lgl-out" --progress \
	>/dev/null 2>"$T/lgl.log" || fail "manylinux_2_99 wheel on a base without libc: $(cat "$T/lgl.log")"
grep -F "no libc.so.6 with a version in the base" "$T/lgl.log" >/dev/null || fail "base38 has a libc: $(cat "$T/lgl.log")"
expect_fail 2 "$T/lgl/wheeldemo-1.0-py3-none-manylinux_2_99_x86_64.whl: built for py3-none-manylinux_2_99_x86_64, which needs glibc 2.99; the base image has glibc $glibc" \
	assemble --conda-lock "$T/lock.txt" --pkgs-dir "$T/lp" --wheels-dir "$T/lgl" \
	--cache-dir "$C" --output "oci:$T/lgl-bad" --progress
grep -q "^ocilambda: conda lock $T/lock.txt: its record from the cache" "$T/stderr" ||
	fail "the refused build had the layer cached: $(cat "$T/stderr")"
[ ! -e "$T/lgl-bad" ] || fail "output written for a cached wheel the base's glibc can not run"
ok "lock cache: a wheel needing a newer glibc than the base's is refused although its layer is cached"

# bad input
cp -r "$L/pkgs" "$T/tampered"
printf 'X' | dd of="$T/tampered/hellotool-1.0-h0_0.tar.bz2" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_fail 2 "hellotool-1.0-h0_0.tar.bz2: md5 mismatch" \
	assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$T/tampered" --output "oci:$T/bad"
printf 'X' | dd of="$T/tampered/whereami-1.0-h0_0.conda" bs=1 seek=100 conv=notrunc 2>/dev/null
cp "$L/pkgs/hellotool-1.0-h0_0.tar.bz2" "$T/tampered/"
expect_fail 2 "whereami-1.0-h0_0.conda: sha256 mismatch" \
	assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$T/tampered" --output "oci:$T/bad"
{ cat "$L/explicit.txt"; echo "https://conda.anaconda.org/conda-forge/linux-64/nothere-1.0-h0_0.tar.bz2#0123456789abcdef0123456789abcdef"; } >"$T/missing.txt"
expect_fail 2 "missing.txt:9: nothere-1.0-h0_0.tar.bz2 is not in $L/pkgs nor in the cache, and --offline forbids downloading it from https://conda.anaconda.org/conda-forge/linux-64/nothere-1.0-h0_0.tar.bz2" \
	assemble --conda-lock "$T/missing.txt" --pkgs-dir "$L/pkgs" --offline --output "oci:$T/bad"
{
	cat "$L/explicit.txt"
	echo "https://conda.anaconda.org/conda-forge/win-64/vc-14.3-h64f974e_17.conda#0123456789abcdef0123456789abcdef"
	echo "https://conda.anaconda.org/conda-forge/osx-64/libcxx-16.0.6-hd57cbcb_0.conda#0123456789abcdef0123456789abcdef"
} >"$T/foreign.txt"
expect_fail 2 "foreign.txt lists 2 packages for another platform than linux-64: win-64/vc-14.3-h64f974e_17.conda, osx-64/libcxx-16.0.6-hd57cbcb_0.conda" \
	assemble --conda-lock "$T/foreign.txt" --pkgs-dir "$L/pkgs" --output "oci:$T/bad"
sed 's/#.*$//' "$L/explicit.txt" | sed 's/^ *$/# x/' >"$T/nohash.txt"
expect_fail 2 "has no #md5 or #sha256:HEX" \
	assemble --conda-lock "$T/nohash.txt" --pkgs-dir "$L/pkgs" --output "oci:$T/bad"
grep -v python "$L/explicit.txt" >"$T/nopython.txt"
expect_fail 2 "no python package" \
	assemble --conda-lock "$T/nopython.txt" --pkgs-dir "$L/pkgs" --output "oci:$T/bad"
mkdir "$T/odd"
cp "$L/pkgs/"* "$T/odd/"
cp "$L/pkgs/hellotool-1.0-h0_0.tar.bz2" "$T/odd/other-1.0-h0_0.tar.bz2"
echo "not a zip" >"$T/odd/junk-1.0-h0_0.conda"
odd_lock() {
	grep -v hellotool "$L/explicit.txt"
	echo "https://conda.anaconda.org/conda-forge/linux-64/$1#$(md5sum "$T/odd/$1" | cut -d' ' -f1)"
}
odd_lock other-1.0-h0_0.tar.bz2 >"$T/renamed.txt"
expect_fail 2 "renamed.txt:8: other-1.0-h0_0.tar.bz2 holds hellotool-1.0-h0_0 according to its info/index.json" \
	assemble --conda-lock "$T/renamed.txt" --pkgs-dir "$T/odd" --output "oci:$T/bad"
odd_lock junk-1.0-h0_0.conda >"$T/junk.txt"
expect_fail 2 "junk-1.0-h0_0.conda: opening" \
	assemble --conda-lock "$T/junk.txt" --pkgs-dir "$T/odd" --output "oci:$T/bad"
[ ! -e "$T/bad" ] || fail "output written on bad input"
ok "tampered, missing, misnamed or broken package, other platforms, no hash, no python: exit 2 naming them"

expect_fail 1 "--conda-prefix and --conda-lock are mutually exclusive" \
	assemble --conda-prefix "$FIXTURES/prefix-run" --conda-lock "$L/explicit.txt" \
	--pkgs-dir "$L/pkgs" --output "oci:$T/bad"
expect_fail 1 "--conda-prefix or --conda-lock is required" assemble --output "oci:$T/bad"
expect_fail 1 "--wheels-dir goes with --conda-lock" \
	assemble --conda-prefix "$FIXTURES/prefix-run" --wheels-dir "$L/wheels" --output "oci:$T/bad"
expect_fail 1 "--exclude applies to --conda-prefix only" \
	assemble --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" --exclude x --output "oci:$T/bad"
ok "usage errors: both sources, neither, prefix-only options"
no_litter "$T"
done_testing
