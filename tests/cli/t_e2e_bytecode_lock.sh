#!/usr/bin/env bash
# Issue 20, lock builds: the modules conda (noarch: python) and pip would
# compile at install, and any without valid bytecode, are compiled by the
# environment's own python under bubblewrap into a layer of their own:
# valid as importlib judges them (pyc_check.py on umoci's tree), the same
# bytes twice, cached; a package's shipped bytecode stays valid (its
# sources keep the package's mtimes); an import under `ocilambda run` reads
# the pycs, even with the source made unreadable. --no-compile, an arm64
# build on this amd64 machine, no bwrap: no layer, and the build says how
# many modules are compiled at every cold start. --compile-code: the code
# layer's own bytecode.
. "$(dirname "$0")/lib.sh"

PYVER=$(cat "$FIXTURES/pyver")
NN=${PYVER/./}
B=$FIXTURES/base-run
L=$FIXTURES/lock-pyc
W=$FIXTURES/lock/wheels
SP=lib/python$PYVER/site-packages
CHK=("$PY" "$SRCDIR/tests/cli/pyc_check.py")
mkdir -p "$T/code/pkg"
cat >"$T/code/app.py" <<'EOF'
import json


def handler(event, context):
    import greetpkg, wheeldemo, pycship.bare
    try:
        open(greetpkg.__file__).read()
        how = "readable"
    except OSError:
        how = "unreadable"
    return how + " " + greetpkg.__name__
EOF
echo 'X = 1' >"$T/code/pkg/__init__.py"
build() { # OUT [ARGS...]
	local out=$1
	shift
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" \
		--wheels-dir "$W" --code "$T/code" --handler app.handler --output "oci:$T/$out:latest" \
		--compression-level 1 "$@"
}
# layer_of LAYOUT N: the blob path of the N-th layer (Python index, -1 last)
layer_of() {
	"$PY" -c 'import json, sys
lay = sys.argv[1]
idx = json.load(open(lay + "/index.json"))
m = json.load(open(lay + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(lay + "/blobs/sha256/" + m["layers"][int(sys.argv[2])]["digest"][7:])' "$1" "$2"
}
nbase=$(skopeo inspect --raw "oci:$B:$PYVER" | json /dev/stdin 'len(j["layers"])')

rc=0
build one >"$T/d1" 2>"$T/err1" || rc=$?
[ "$rc" = 0 ] || fail "assemble: $rc $(cat "$T/err1")"
line=$(grep '^ocilambda: bytecode: ' "$T/err1") || fail "no bytecode line: $(cat "$T/err1")"
[[ "$line" =~ ^ocilambda:\ bytecode:\ ([0-9]+)\ modules\ compiled\ by\ /opt/conda-env/bin/python$PYVER\ into\ their\ own\ layer$ ]] ||
	fail "bytecode line: $line"
ncompiled=${BASH_REMATCH[1]}
# the conda layers (one per package or group, issue 17), then bytecode, code, runtime
nl=$(skopeo inspect --raw "oci:$T/one:latest" | json /dev/stdin 'len(j["layers"])')
[ "$nl" -ge $((nbase + 4)) ] || fail "$nl layers on a base of $nbase"
grep -qE "^  $((nl - 2)) +bytecode .* new " "$T/err1" || fail "no new bytecode layer in the table: $(cat "$T/err1")"
rc=0
$OCILAMBDA inspect --json "oci:$T/one:latest" >"$T/insp" || rc=$?
[ "$rc" = 0 ] || fail "inspect: $rc"
[ "$(json "$T/insp" "j['layers'][-3]['createdBy']")" = "ocilambda: bytecode compiled by /opt/conda-env/bin/python$PYVER (unchecked-hash pycs)" ] ||
	fail "bytecode layer's history: $(json "$T/insp" "j['layers'][-3]")"
ok "a bytecode layer of $ncompiled modules, said in the summary and the history"

umoci unpack --rootless --image "$T/one:latest" "$T/b1" >/dev/null 2>&1 || fail "umoci unpack"
E=$T/b1/rootfs/opt/conda-env
rc=0
"${CHK[@]}" "$E" >"$T/st1" || rc=$?
[ "$rc" = 0 ] || fail "pyc_check: $rc"
if grep -v '^valid ' "$T/st1" >&2; then fail "stale bytecode in the image"; fi
nvalid=$(wc -l <"$T/st1")
[ "$nvalid" = $((ncompiled + 1)) ] || fail "$nvalid valid pycs, $ncompiled compiled + pycship's own"
# every regular .py of the environment has its bytecode
"$PY" - "$E" "$NN" <<'PYEOF' || fail "sources without bytecode"
import os, sys
root, nn = sys.argv[1], sys.argv[2]
missing = []
for d, dirs, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        if f.endswith(".py") and not os.path.islink(p) and "/lib/python" in p:
            if not os.path.exists(os.path.join(d, "__pycache__", f[:-3] + ".cpython-%s.pyc" % nn)):
                missing.append(p)
assert not missing, missing
PYEOF
for m in greetpkg/__init__ wheeldemo/__init__ pycship/__init__ pycship/stale pycship/bare; do
	grep -qx "valid $SP/${m%/*}/__pycache__/${m#*/}.cpython-$NN.pyc" "$T/st1" || fail "$m: no valid pyc"
done
# pycship ships valid bytecode for __init__ (kept: its source keeps the
# package's mtime) and stale bytecode for stale.py (compiled again, over it)
tar -tzf "$(layer_of "$T/one" -3)" >"$T/bc.list" || fail "listing the bytecode layer"
grep -qx "opt/conda-env/$SP/pycship/__pycache__/stale.cpython-$NN.pyc" "$T/bc.list" || fail "stale.pyc not compiled again"
grep -qx "opt/conda-env/$SP/greetpkg/__pycache__/__init__.cpython-$NN.pyc" "$T/bc.list" || fail "noarch greetpkg not compiled"
if grep -q "pycship/__pycache__/__init__" "$T/bc.list"; then fail "pycship's valid shipped pyc compiled again"; fi
"$PY" - "$(layer_of "$T/one" -3)" <<'PYEOF' || fail "bytecode layer: not unchecked-hash pycs"
import struct, sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    pycs = [e for e in tf if e.name.endswith(".pyc")]
    assert pycs
    for e in pycs:
        assert e.mode == 0o644 and e.uid == 0 and e.mtime == 0, e.name
        assert struct.unpack("<I", tf.extractfile(e).read(8)[4:8])[0] == 1, e.name
PYEOF
ok "$nvalid pycs, all valid in umoci's tree; shipped bytecode kept, stale bytecode and noarch packages compiled as unchecked-hash pycs"

# the same bytes again: another cache, nothing taken from it
rc=0
XDG_CACHE_HOME=$T/cache2 build two --no-cache --quiet >"$T/d2" 2>"$T/err2" || rc=$?
[ "$rc" = 0 ] || fail "second build: $rc $(cat "$T/err2")"
[ "$(cat "$T/d1")" = "$(cat "$T/d2")" ] || fail "two builds: $(cat "$T/d1") != $(cat "$T/d2")"
rc=0
build three >"$T/d3" 2>"$T/err3" || rc=$?
[ "$rc" = 0 ] && [ "$(cat "$T/d3")" = "$(cat "$T/d1")" ] || fail "cached build: $rc"
grep -qE "^  $((nl - 2)) +bytecode .* cached " "$T/err3" || fail "bytecode layer not from the cache: $(cat "$T/err3")"
grep -qxF "$line" "$T/err3" || fail "the cached layer's summary: $(grep bytecode "$T/err3")"
ok "same digest twice (fresh caches); the layer comes from the cache the third time"

rc=0
$OCILAMBDA check "oci:$T/one:latest" >"$T/check" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "check: $rc $(cat "$T/check")"
grep -qxF "L016 info image: $((nvalid + 0)) .pyc files for python $PYVER, none stale" "$T/check" ||
	fail "L016: $(grep L016 "$T/check")"
ok "check L016: none stale"

# the import reads the pycs: python -v says "matches"; with the source
# unreadable (in run's unpacked tree) the import still works
rc=0
$OCILAMBDA run "oci:$T/one:latest" --event '{}' --env PYTHONVERBOSE=1 >"$T/run.out" 2>"$T/run.err" || rc=$?
[ "$rc" = 0 ] || fail "run: $rc $(tail -5 "$T/run.err")"
[ "$(cat "$T/run.out")" = '"readable greetpkg"' ] || fail "run answered $(cat "$T/run.out")"
DP=lib/python$PYVER/dist-packages
for m in greetpkg/__init__ wheeldemo/__init__ pycship/bare; do
	grep -q "^# /opt/conda-env/$DP/${m%/*}/__pycache__/${m#*/}\.cpython-$NN\.pyc matches /opt/conda-env/$DP/$m\.py$" "$T/run.err" ||
		fail "$m not read from its pyc"
done
grep -q "^# /opt/conda-env/lib/python$PYVER/json/__pycache__/__init__\.cpython-$NN\.pyc matches" "$T/run.err" ||
	fail "json not read from its pyc"
if grep "bytecode is stale\|could not create '/opt/conda-env" "$T/run.err" >&2; then fail "bytecode stale or missing under run"; fi
src=$(find "$XDG_CACHE_HOME/ocilambda/rootfs" -path "*/opt/conda-env/$SP/greetpkg/__init__.py")
[ -n "$src" ] && [ "$(printf '%s\n' "$src" | wc -l)" = 1 ] || fail "run's tree: $src"
chmod 000 "$src"
rc=0
$OCILAMBDA run "oci:$T/one:latest" --event '{}' >"$T/run2.out" 2>"$T/run2.err" || rc=$?
chmod 644 "$src"
[ "$rc" = 0 ] || fail "run with the source unreadable: $rc $(tail -5 "$T/run2.err")"
[ "$(cat "$T/run2.out")" = '"unreadable greetpkg"' ] || fail "run answered $(cat "$T/run2.out")"
ok "run imports from the pycs (python -v: matches), also with the source unreadable"

# --no-compile: no layer, and the summary says what it costs
rc=0
build four --no-compile >"$T/d4" 2>"$T/err4" || rc=$?
[ "$rc" = 0 ] || fail "--no-compile: $rc $(cat "$T/err4")"
if grep -q "bytecode  \|warning: not compiling" "$T/err4"; then fail "--no-compile: $(cat "$T/err4")"; fi
grep -qx "ocilambda: bytecode: $ncompiled modules of the environment have no valid .pyc: python compiles them at every cold start (--no-compile)" "$T/err4" ||
	fail "--no-compile summary: $(grep bytecode "$T/err4")"
[ "$(skopeo inspect --raw "oci:$T/four:latest" | json /dev/stdin 'len(j["layers"])')" = $((nl - 1)) ] ||
	fail "--no-compile: a bytecode layer"
ok "--no-compile: no bytecode layer; $ncompiled modules left to every cold start, said"

# no bubblewrap: the build goes on, without the layer, and says so
mkdir "$T/nobin"
rc=0
PATH=$T/nobin build five --no-cache >"$T/d5" 2>"$T/err5" || rc=$?
[ "$rc" = 0 ] || fail "without bwrap: $rc $(cat "$T/err5")"
grep -qF "ocilambda: warning: not compiling the environment's bytecode: bubblewrap (bwrap) is not installed" "$T/err5" ||
	fail "without bwrap: $(cat "$T/err5")"
ok "without bubblewrap: built without bytecode, with a warning"

# arm64 on this amd64 machine (without an emulator): the count, no layer
if [ "$(uname -m)" = x86_64 ] && ! grep -qs '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
	cp -a "$B" "$T/base-arm"
	umoci config --image "$T/base-arm:$PYVER" --architecture arm64 --tag arm >/dev/null 2>&1 || fail "umoci config"
	rc=0
	$OCILAMBDA assemble --base "oci:$T/base-arm:arm" --platform linux/arm64 \
		--conda-lock "$L/explicit-arm64.txt" --pkgs-dir "$L/pkgs" --code "$T/code" \
		--handler app.handler --output "oci:$T/arm:latest" >"$T/d6" 2>"$T/err6" || rc=$?
	[ "$rc" = 0 ] || fail "arm64: $rc $(cat "$T/err6")"
	grep -qxF "ocilambda: warning: not compiling the environment's bytecode: arm64 programs do not run on this amd64 machine (no binfmt_misc emulator for it: e.g. qemu-user-static); 4 modules will be compiled at every cold start (--no-compile builds so on purpose)" "$T/err6" ||
		fail "arm64 warning: $(cat "$T/err6")"
	$OCILAMBDA inspect --platform linux/arm64 --json "oci:$T/arm:latest" >"$T/insp-arm" 2>"$T/insp-arm.err" || fail "inspect arm64: $(cat "$T/insp-arm.err")"
	[ "$(json "$T/insp-arm" 'sum(1 for l in j["layers"] if l["createdBy"].startswith("ocilambda: bytecode"))')" = 0 ] ||
		fail "arm64: a bytecode layer"
	expect_fail 5 "--compile-code: arm64 programs do not run on this amd64 machine" \
		$OCILAMBDA assemble --base "oci:$T/base-arm:arm" --platform linux/arm64 \
		--conda-lock "$L/explicit-arm64.txt" --pkgs-dir "$L/pkgs" --code "$T/code" \
		--handler app.handler --output "oci:$T/arm2:latest" --compile-code
	ok "arm64 image on amd64: no bytecode layer, 4 modules counted; --compile-code refused (exit 5)"
else
	ok "arm64 case skipped: this machine runs arm64 programs"
fi

# --compile-code: the code layer holds its pycs, valid, read by the import
echo 'def broken(:' >"$T/code/py2only.py"
rc=0
build seven --compile-code >"$T/d7" 2>"$T/err7" || rc=$?
[ "$rc" = 0 ] || fail "--compile-code: $rc $(cat "$T/err7")"
grep -qxF "ocilambda: warning: --compile-code: 1 of 3 files did not compile (e.g. /opt/my-code/py2only.py: PyCompileError): left without bytecode" "$T/err7" ||
	fail "--compile-code warning: $(cat "$T/err7")"
umoci unpack --rootless --image "$T/seven:latest" "$T/b7" >/dev/null 2>&1 || fail "umoci unpack"
rc=0
"${CHK[@]}" "$T/b7/rootfs/opt/my-code" >"$T/st7" || rc=$?
[ "$rc" = 0 ] || fail "pyc_check: $rc"
printf 'valid __pycache__/app.cpython-%s.pyc\nvalid pkg/__pycache__/__init__.cpython-%s.pyc\n' "$NN" "$NN" |
	diff - "$T/st7" >&2 || fail "the code's bytecode"
rc=0
$OCILAMBDA run "oci:$T/seven:latest" --event '{}' --env PYTHONVERBOSE=1 >"$T/run7.out" 2>"$T/run7.err" || rc=$?
[ "$rc" = 0 ] || fail "run: $rc $(tail -5 "$T/run7.err")"
grep -q "^# /opt/my-code/__pycache__/app\.cpython-$NN\.pyc matches /opt/my-code/app\.py$" "$T/run7.err" ||
	fail "app not read from its pyc"
rm "$T/code/py2only.py"
ok "--compile-code: the code layer's pycs are valid and read; a file that does not compile is said"

expect_fail 1 "--no-compile goes with --conda-lock" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-prefix "$FIXTURES/prefix-run" --code "$T/code" \
	--handler app.handler --output "oci:$T/bad:latest" --no-compile
ok "--no-compile without --conda-lock is a usage error"
done_testing
