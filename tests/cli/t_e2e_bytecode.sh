#!/usr/bin/env bash
# Issue 20, prefix builds: every .pyc valid for its source on the build host
# is valid in the image, judged as importlib judges it (tests/cli/pyc_check.py,
# not our C code) on the tree umoci unpacks; stale ones stay stale and are
# counted; the image is reproducible; an import under `ocilambda run` reads
# the bytecode (python -v says "matches" and never "bytecode is stale").
. "$(dirname "$0")/lib.sh"

PYVER=$(cat "$FIXTURES/pyver")
B=$FIXTURES/base-run
P=$FIXTURES/prefix-pyc
SP=lib/python$PYVER/site-packages
CHK=("$PY" "$SRCDIR/tests/cli/pyc_check.py")
mkdir -p "$T/code"
cp "$TD/example/example.py" "$T/code/"
# extract_fixture LAYOUT DIR: the pycfixture package of the image in LAYOUT
# (python's tarfile, mtimes kept), into DIR/opt/conda-env/...
extract_fixture() {
	"$PY" - "$1" "$2" <<'PYEOF'
import json, sys, tarfile
lay, dest = sys.argv[1], sys.argv[2]
idx = json.load(open(lay + "/index.json"))
m = json.load(open(lay + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
for l in m["layers"]:
    with tarfile.open(lay + "/blobs/sha256/" + l["digest"][7:]) as tf:
        tf.extractall(dest, [e for e in tf if "/pycfixture/" in e.name])
PYEOF
}
build() { # OUT [ARGS...]
	local out=$1
	shift
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-prefix "$P" --code "$T/code" \
		--handler example.lambda_handler --output "oci:$T/$out:latest" --compression-level 1 "$@"
}

# what the host has: the fixture's three stale cases, everything else valid
rc=0
"${CHK[@]}" "$P" >"$T/host" || rc=$?
[ "$rc" = 0 ] || fail "pyc_check on the prefix: $rc"
grep -v '^valid ' "$T/host" | sort >"$T/host-stale"
cat >"$T/want-stale" <<EOF
stale:mtime $SP/pycfixture/__pycache__/edited.cpython-${PYVER/./}.pyc
stale:mtime $SP/pycfixture/__pycache__/trap.cpython-${PYVER/./}.pyc
stale:short $SP/pycfixture/__pycache__/short.cpython-${PYVER/./}.pyc
EOF
sort -o "$T/want-stale" "$T/want-stale"
diff "$T/want-stale" "$T/host-stale" >&2 || fail "the fixture's stale pycs on the host"
nvalid=$(grep -c '^valid ' "$T/host")
[ "$nvalid" -gt 1000 ] || fail "only $nvalid valid pycs in the fixture"
ok "fixture: $nvalid valid pycs on the host, 3 stale"

rc=0
build one >"$T/d1" 2>"$T/err1" || rc=$?
[ "$rc" = 0 ] || fail "assemble: $rc $(cat "$T/err1")"
# the summary counts the bytecode python reads (cpython-3X, no opt level)
n311=$(grep -c "^[a-z:]* .*\.cpython-${PYVER/./}\.pyc$" "$T/host")
want="bytecode: $((n311 - 4)) of $n311 .pyc files valid in the image; 3 stale on the build host already (e.g. $SP/pycfixture/edited.py), 1 compiled from sources the relocation rewrote (e.g. $SP/pycfixture/where.py): python compiles those modules again at every cold start"
grep -qxF "ocilambda: $want" "$T/err1" || fail "summary: $(grep bytecode "$T/err1")"
ok "assemble counts the valid, the stale and the rewritten bytecode"

umoci unpack --rootless --image "$T/one:latest" "$T/b1" >/dev/null 2>&1 || fail "umoci unpack"
rc=0
"${CHK[@]}" compare "$P" "$T/b1/rootfs/opt/conda-env" >"$T/cmp" || rc=$?
[ "$rc" = 0 ] || fail "pyc_check compare: $rc"
cat >"$T/want-cmp" <<EOF
$SP/pycfixture/__pycache__/where.cpython-${PYVER/./}.pyc valid -> stale:mtime
EOF
head -n -1 "$T/cmp" | diff "$T/want-cmp" - >&2 || fail "pycs whose validity changed in the image"
ok "every pyc valid on the host is valid in the image (umoci's tree), but the relocated source's"

# the source mtimes come from the pycs' bytes: a copy (new inodes, same
# mtimes) builds the same image, uncached; so does a rebuild
cp -a "$P" "$T/copy"
rc=0
$OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-prefix "$T/copy" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/two:latest" --compression-level 1 --no-cache --quiet \
	>"$T/d2" 2>"$T/err2" || rc=$?
[ "$rc" = 0 ] || fail "assemble of the copy: $rc $(cat "$T/err2")"
[ "$(cat "$T/d1")" = "$(cat "$T/d2")" ] || fail "a copy of the prefix: $(cat "$T/d1") != $(cat "$T/d2")"
rc=0
build three --no-cache --quiet >"$T/d3" 2>"$T/err3" || rc=$?
[ "$rc" = 0 ] && [ "$(cat "$T/d1")" = "$(cat "$T/d3")" ] || fail "rebuild: $rc $(cat "$T/d3")"
ok "same digest twice, and for a copy of the prefix"

# pycs stale on the host stay stale whatever the layer's time: edited.pyc
# records 1600000000 and the source's size, trap.pyc 0 and its size
for epoch in 0 1600000000; do
	rc=0
	SOURCE_DATE_EPOCH=$epoch build "e$epoch" --quiet >/dev/null 2>"$T/erre" || rc=$?
	[ "$rc" = 0 ] || fail "assemble at $epoch: $rc $(cat "$T/erre")"
	extract_fixture "$T/e$epoch" "$T/be$epoch" || fail "extracting pycfixture"
	rc=0
	"${CHK[@]}" "$T/be$epoch/opt/conda-env" >"$T/st$epoch" || rc=$?
	[ "$rc" = 0 ] || fail "pyc_check: $rc"
	for m in edited trap; do
		grep -q "^stale:mtime .*/$m\.cpython" "$T/st$epoch" || fail "$m.pyc valid at epoch $epoch"
	done
done
ok "a stale pyc recording the layer's time stays stale (SOURCE_DATE_EPOCH 0 and 1600000000)"

# touching only the pycs changes nothing; touching a source makes its
# bytecode stale on the host, and so in the image
cp -a "$P" "$T/touched"
find "$T/touched" -name '*.pyc' -exec touch -d '2001-02-03 04:05:06' {} +
rc=0
$OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-prefix "$T/touched" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/four:latest" --compression-level 1 --quiet >"$T/d4" 2>"$T/err4" || rc=$?
[ "$rc" = 0 ] && [ "$(cat "$T/d4")" = "$(cat "$T/d1")" ] || fail "touched pycs: $rc"
touch "$T/touched/$SP/pycfixture/plain.py"
rc=0
$OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-prefix "$T/touched" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/five:latest" --compression-level 1 >"$T/d5" 2>"$T/err5" || rc=$?
[ "$rc" = 0 ] || fail "touched source: $rc"
[ "$(cat "$T/d5")" != "$(cat "$T/d1")" ] || fail "a touched source did not change the image"
grep -q "4 stale on the build host already" "$T/err5" || fail "touched source not counted: $(grep bytecode "$T/err5")"
ok "pyc mtimes do not matter; a touched source's bytecode is stale"

# check (L016) and inspect count what python will find stale, as pyc_check does
rc=0
$OCILAMBDA check "oci:$T/one:latest" >"$T/check1" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "check: $rc $(cat "$T/check1")"
grep -qxF "L016 warning image: 4 of $n311 .pyc files for python $PYVER are stale: python compiles those modules again at every cold start (Lambda's file system is read-only, nothing is kept); the biggest follow" "$T/check1" ||
	fail "L016 count: $(grep L016 "$T/check1")"
grep -qxF "L016 warning /opt/conda-env/$SP/pycfixture/where.py: stale bytecode (the source's mtime differs): 26 bytes of source compiled at every cold start" "$T/check1" ||
	fail "L016 offender: $(grep L016 "$T/check1")"
[ "$(grep -c '^L016 warning' "$T/check1")" = 5 ] || fail "L016 findings: $(grep L016 "$T/check1")"
rc=0
$OCILAMBDA inspect --json "oci:$T/one:latest" >"$T/insp1" 2>"$T/insp1.err" || rc=$?
[ "$rc" = 0 ] || fail "inspect: $rc $(cat "$T/insp1.err")"
[ "$(json "$T/insp1" '(j["bytecode"]["python"], j["bytecode"]["pycs"], j["bytecode"]["stale"], len(j["bytecode"]["biggestStale"]))')" = "('$PYVER', $n311, 4, 4)" ] ||
	fail "inspect bytecode: $(json "$T/insp1" 'j["bytecode"]')"
# a copy without its mtimes (cp -r): its bytecode is stale on the host and in
# the image, as many as pyc_check counts on the copy
cp -r "$P" "$T/nomtimes"
rc=0
"${CHK[@]}" "$T/nomtimes" >"$T/nom" || rc=$?
[ "$rc" = 0 ] || fail "pyc_check: $rc"
nstale=$(grep -v '^valid ' "$T/nom" | grep -c "\.cpython-${PYVER/./}\.pyc$")
[ "$nstale" -gt 1000 ] || fail "cp -r left $nstale stale"
rc=0
$OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-prefix "$T/nomtimes" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/six:latest" --compression-level 1 \
	>/dev/null 2>"$T/err6" || rc=$?
[ "$rc" = 0 ] || fail "assemble: $rc $(cat "$T/err6")"
grep -q "^ocilambda: bytecode: $((n311 - nstale)) of $n311 .pyc files valid in the image; $nstale stale on the build host already (e.g. " "$T/err6" ||
	fail "summary of a copy without mtimes: $(grep bytecode "$T/err6")"
rc=0
$OCILAMBDA check "oci:$T/six:latest" >"$T/check6" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "check: $rc"
grep -q "^L016 warning image: $nstale of $n311 .pyc files for python $PYVER are stale" "$T/check6" ||
	fail "L016 on the copy: $(grep L016 "$T/check6")"
grep -q "^L016 warning /opt/conda-env/lib/python$PYVER/pydoc_data/topics.py: stale bytecode (the source's mtime differs): [0-9.]* KiB of source" "$T/check6" ||
	fail "L016 biggest: $(grep L016 "$T/check6")"
ok "check L016 and inspect count the stale bytecode (4 here; $nstale for a copy without mtimes)"

# the import reads the bytecode: python -v under `ocilambda run`
rc=0
$OCILAMBDA run "oci:$T/one:latest" --event '{}' --env PYTHONVERBOSE=1 >"$T/run.out" 2>"$T/run.err" || rc=$?
[ "$rc" = 0 ] || fail "run: $rc $(tail -5 "$T/run.err")"
[ "$(cat "$T/run.out")" = '"Hello World"' ] || fail "run answered $(cat "$T/run.out")"
# (Debian's python finds site-packages through its dist-packages link)
DP="lib/python$PYVER/dist-packages"
grep -q "^# /opt/conda-env/$DP/requests/__pycache__/api\.cpython-${PYVER/./}\.pyc matches /opt/conda-env/$DP/requests/api\.py$" "$T/run.err" ||
	fail "requests.api not read from its pyc"
grep -q "^# /opt/conda-env/lib/python$PYVER/logging/__pycache__/__init__\.cpython-${PYVER/./}\.pyc matches" "$T/run.err" ||
	fail "logging not read from its pyc"
matches=$(grep -c "^# /opt/conda-env/.*\.pyc matches /opt/conda-env/" "$T/run.err")
[ "$matches" -gt 300 ] || fail "only $matches modules read from bytecode"
if grep "bytecode is stale" "$T/run.err" >&2; then fail "stale bytecode read under run"; fi
ok "run: $matches modules of the prefix imported from their pyc, none stale"
done_testing
