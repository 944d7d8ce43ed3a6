#!/usr/bin/env bash
# Hostile base layers (testdata/mk-hostile.py: one extra layer each, written
# with python's tarfile) through check, inspect and assemble: each gives a
# clear error or a documented outcome (tests/README.md), none hangs or
# crashes, the layouts read are left as they were, and nothing is written
# where the entries point (the escape directory stays empty).
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
H=$T/hostile
ESC=$T/escape
mkdir -p "$ESC" "$T/work"
make_code "$T/code"
"$PY" "$TD/mk-hostile.py" "$B" 3.8 "$H" "$ESC" >"$T/cases"
(cd "$H" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/before"
cd "$T/work"

# run CASE COMMAND CODE NEEDLE: `ocilambda COMMAND` on the case's image exits
# CODE; for CODE 2 (bad input) its error line contains NEEDLE; for 4 (check
# failed) the report does; for 0 NEEDLE is a line of the report, or "-".
run() {
	local c=$1 cmd=$2 code=$3 needle=$4 rc=0
	local img=oci:$H/$c:3.8
	local args=("$cmd" "$img")
	if [ "$cmd" = assemble ]; then
		rm -rf "$T/out"
		args=(assemble --base "$img" --conda-prefix "$P" --code "$T/code"
			--handler example.lambda_handler --output "oci:$T/out:latest")
	fi
	if [ "$code" = 2 ]; then
		expect_fail 2 "$needle" "$OCILAMBDA" "${args[@]}"
	else
		timeout 300 "$OCILAMBDA" "${args[@]}" >"$T/stdout" 2>"$T/stderr" || rc=$?
		[ "$rc" = "$code" ] || fail "$c: $cmd: exit $rc, want $code: $(cat "$T/stderr")"
		[ "$needle" = - ] || grep -qF -- "$needle" "$T/stdout" "$T/stderr" ||
			fail "$c: $cmd: no '$needle' in: $(cat "$T/stdout" "$T/stderr")"
	fi
	if [ "$cmd" = assemble ] && [ "$code" != 0 ]; then
		[ ! -e "$T/out" ] || fail "$c: a failed assemble left $T/out"
	fi
	no_litter "$T"
	ok "$c: $cmd -> $code"
}

# Refused while reading: the same error from all three commands.
refused() {
	local c=$1 needle=$2
	for cmd in check inspect assemble; do
		run "$c" "$cmd" 2 "$needle"
	done
}
refused dotdot '".." component (path traversal)'
refused hardlink-outside 'hardlink target: ".." component (path traversal)'
refused huge-size 'entry "var/task/huge": layer larger than 10737418240 bytes uncompressed'
refused negative-size 'tar: Tar entry has negative size'
refused truncated 'tar: truncated gzip input'
refused garbage 'tar: Unrecognized archive format'
refused xz 'tar: Unrecognized archive format'
refused long-name 'name longer than 4096 bytes'
refused root-file 'tar: Damaged tar archive'
refused zstd-bomb 'inflates more than 1100-fold'
# A hardlink to nothing: check reports it as a rule (the per-layer rules
# still run), inspect and assemble refuse the image.
run hardlink-missing check 4 'hardlink to "/no/such/file", which is not in the image'
run hardlink-missing inspect 2 'hardlink to "/no/such/file", which is not in the image'
run hardlink-missing assemble 2 'hardlink to "/no/such/file", which is not in the image'

# Inside the image, absolute names and links out of it are image paths:
# "/<escape>/absolute-file" is a file in the image, a symlink to ../../..
# resolves at the image root. check flags the missing parent directories.
run absolute check 4 "L007 error $ESC: parent directory missing"
run absolute inspect 0 -
run absolute assemble 4 "breaks Lambda's rules (L007)"
run symlink-escape check 4 'L007 error /var/task/out: parent directory missing'
run symlink-escape inspect 0 -
run symlink-escape assemble 4 "breaks Lambda's rules (L007)"
# The python path: a loop, a link out of the image, a whiteout, an opaque
# directory over it, /var whited out: check and assemble name what is wrong.
run symlink-loop check 4 'L013 error /var/lang/bin/python3.8'
run symlink-loop assemble 2 'base image has no /var/lang/bin/python3.X'
run python-escapes check 4 'python symlink target missing'
run python-escapes assemble 2 'base image has no /var/lang/bin/python3.X'
for c in whiteout-python opaque-lang whiteout-root; do
	run $c check 0 'L013 info /var/lang/bin: no python3.X: not a Lambda python image'
	run $c inspect 0 -
	run $c assemble 2 'base image has no /var/lang/bin/python3.X'
done
# 300 MiB of zeros in gzip: as far as gzip compresses, yet a real layer can
# hold that (a sparse file); accepted, within the 10 GiB cap.
run gzip-zeros check 0 '0 errors'
run gzip-zeros inspect 0 -
run gzip-zeros assemble 0 -
# Devices, fifos, setuid files and duplicates stay in the base layer as they
# are (assemble copies base layers byte for byte and unpacks nothing); check
# warns about what the function cannot use, the last duplicate wins.
run devices-setuid check 0 'L008 warning /var/task/null: device node'
run devices-setuid check 0 'L008 warning /var/task/fifo: fifo'
run devices-setuid check 0 'L015 warning /var/task/suid: setuid file (mode 4755'
run devices-setuid check 0 'L015 warning /var/task/sgid: setgid file (mode 2755'
run devices-setuid assemble 0 -
run duplicates check 4 'L005 error /var/task/dup2: directory not world-readable'
run duplicates inspect 0 -
run duplicates assemble 4 "breaks Lambda's rules (L005)"

# run is the one command that writes entries to the host (it unpacks the
# image into its rootfs cache), so it is what the escape directory tests:
# traversal is refused, absolute names and entries through symlinks land
# inside the tree. (The fixture base has no runnable python: the function
# itself fails, which is not what is tested here.)
rundir=$T/runcache
for c in dotdot hardlink-outside; do
	expect_fail 2 '".." component (path traversal)' "$OCILAMBDA" run --cache-dir "$rundir" \
		"oci:$H/$c:3.8" --event '{}'
done
for c in absolute symlink-escape devices-setuid; do
	[ ! -d "$rundir" ] || chmod -R u+w "$rundir"
	rm -rf "$rundir"
	# the function exits without answering (no handler given): exit 6,
	# ocilambda's own error line last; anything else (a crash, a sanitizer
	# report) is a failure
	expect_status 6 timeout 300 "$OCILAMBDA" run --cache-dir "$rundir" "oci:$H/$c:3.8" --event '{}'
	tail -n 1 "$T/stderr" | grep -q '^ocilambda run: the function exited (exit status 142) without answering' ||
		fail "$c: run's error: $(tail -n 3 "$T/stderr")"
	tree=$(echo "$rundir"/rootfs/*/)
	[ -d "$tree/var/lang" ] || fail "$c: run unpacked nothing: $(cat "$T/stderr")"
	case $c in
	absolute) [ -f "$tree/$ESC/absolute-file" ] || fail "$c: not inside the tree" ;;
	symlink-escape)
		[ -f "$tree/var/task/out/symlink-file" ] && [ -f "$tree/var/task/abs/symlink-abs-file" ] &&
			[ ! -L "$tree/var/task/out" ] || fail "$c: not inside the tree: $(ls -lR "$tree/var/task")"
		;;
	devices-setuid)
		grep -q 'skipped 2 device nodes, fifos or sockets' "$T/stderr" ||
			fail "$c: devices: $(cat "$T/stderr")"
		[ ! -e "$tree/var/task/null" ] && [ -f "$tree/var/task/suid" ] || fail "$c: $(ls -l "$tree/var/task")"
		;;
	esac
	ok "$c: run unpacks it inside its tree"
done
no_litter "$T"
chmod -R u+w "$rundir"
rm -rf "$rundir"

# A layout whose index points its tag at "sha256:../../…": refused before
# any path is made of it.
cp -a "$B" "$T/trav"
"$PY" - "$T/trav/index.json" <<'PYEOF'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
j["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
json.dump(j, open(p, "w"))
PYEOF
for cmd in check inspect; do
	expect_fail 2 'invalid digest "sha256:../../../../etc/passwd"' "$OCILAMBDA" $cmd "oci:$T/trav:3.8"
done
expect_fail 2 'invalid digest "sha256:../../../../etc/passwd"' "$OCILAMBDA" assemble \
	--base "oci:$T/trav:3.8" --conda-prefix "$P" --code "$T/code" --handler example.lambda_handler \
	--output "oci:$T/out:latest"
ok "an index digest with a path in it: refused"

[ -z "$(ls -A "$ESC")" ] || fail "something was written through a hostile entry: $(ls -lA "$ESC")"
(cd "$H" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/after"
cmp -s "$T/before" "$T/after" || fail "the hostile layouts were modified: $(diff "$T/before" "$T/after")"
[ "$(wc -l <"$T/cases")" = 21 ] || fail "a case was added without a test: $(cat "$T/cases")"
ok "nothing written outside the outputs"
done_testing
