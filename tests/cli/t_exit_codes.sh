#!/usr/bin/env bash
# Every exit status each command documents in its --help, provoked for real
# (a local docker-registry, a closed loopback port, a server that never
# answers, /dev/full, SIGINT), and README's table, --help and the man page
# saying the same thing.
. "$(dirname "$0")/lib.sh"

# A server that accepts connections and never answers: the command waits
# until Ctrl-C. (Set before the registry lib chains the EXIT trap.)
STALL_PID=
trap 'rm -rf "$T"; [ -z "$STALL_PID" ] || kill "$STALL_PID" 2>/dev/null' EXIT
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
REG=$reg_HOST
CLOSED=127.0.0.1:$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" - "$T/stall.port" "$T/stall.log" <<'EOF' &
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    with open(sys.argv[2], "a") as f:
        f.write("accepted\n")
EOF
STALL_PID=$!
wait_until 30 "the silent server's port" test -s "$T/stall.port"
STALL=127.0.0.1:$(cat "$T/stall.port")
echo x >"$T/afile"
$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/img" --quiet >/dev/null
IMG=oci:$T/img:latest

declare -A SEEN=()
# code CMD EXPECTED COMMAND ARGS...: run ocilambda COMMAND ARGS (stdout to
# $OUT, default a file), check the status, and remember it was seen.
OUT=
code() {
	local cmd=$1 want=$2 rc=0
	shift 2
	"$OCILAMBDA" "$cmd" "$@" >"${OUT:-$T/stdout}" 2>"$T/stderr" || rc=$?
	[ "$rc" = "$want" ] || fail "ocilambda $cmd $*: exit $rc, want $want: $(cat "$T/stderr")"
	if [ "$want" != 0 ]; then
		grep -v "^Run 'ocilambda" "$T/stderr" | tail -n 1 | grep -q "^ocilambda" ||
			fail "ocilambda $cmd $*: no error line: $(cat "$T/stderr")"
	fi
	SEEN[$cmd]+=" $want"
}
# interrupted CMD ARGS...: SIGINT once CMD is connected to the silent server.
interrupted() {
	local cmd=$1 rc=0
	shift
	: >"$T/stall.log"
	"$OCILAMBDA" "$cmd" "$@" >/dev/null 2>"$T/int.err" &
	local pid=$!
	wait_until 30 "$cmd to reach the silent server" test -s "$T/stall.log"
	kill -INT $pid
	wait $pid || rc=$?
	[ $rc = 130 ] || fail "ocilambda $cmd $*: exit $rc after SIGINT, want 130: $(cat "$T/int.err")"
	grep -q "interrupted" "$T/int.err" || fail "$cmd: says it was interrupted: $(cat "$T/int.err")"
	SEEN[$cmd]+=" 130"
}
FULL=/dev/full

# assemble
AS=(--base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" --handler example.lambda_handler)
code assemble 0 "${AS[@]}" --output "oci:$T/a0"
code assemble 1 "${AS[@]}" --output "oci:$T/a1" --bogus
code assemble 2 --base "oci:$B:3.8" --conda-prefix "$T/nope" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/a2"
code assemble 3 --base "$CLOSED/lambda/python:3.8" --retry 0 --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/a3"
code assemble 4 --base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code" --handler other.handler \
	--output "oci:$T/a4"
code assemble 5 "${AS[@]}" --output "oci:$T/a5" --sbom "$T/no/such/dir/sbom.json"
interrupted assemble --base "$STALL/lambda/python:3.8" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/a130"
# pull
code pull 0 "$REG/lambda/python:3.8" --output "oci:$T/p0"
code pull 1 "$REG/lambda/python:3.8"
code pull 2 "$REG/lambda/python:9.9" --output "oci:$T/p2"
code pull 3 --retry 0 "$CLOSED/lambda/python:3.8" --output "oci:$T/p3"
code pull 5 "$REG/lambda/python:3.8" --output "oci:$T/afile/sub"
interrupted pull "$STALL/lambda/python:3.8" --output "oci:$T/p130"
# push
code push 0 "$IMG" "$REG/fn:v1"
code push 1 "$IMG"
code push 2 "oci:$T/nope:1" "$REG/fn:v1"
code push 3 --retry 0 "$IMG" "$CLOSED/fn:v1"
code push 5 "$IMG" "oci:$T/afile/sub"
interrupted push "$IMG" "$STALL/fn:v1"
# check
code check 0 "$IMG"
code check 1 "$IMG" --platform
code check 2 "oci:$T/nope:1"
code check 3 --retry 0 "$CLOSED/fn:v1"
code check 4 "oci:$T/a0:latest" --platform linux/arm64
OUT=$FULL code check 5 "$IMG"
interrupted check "$STALL/fn:v1"
# inspect
code inspect 0 "$REG/fn:v1"
code inspect 1
code inspect 2 "docker-archive:$T/afile"
code inspect 3 --retry 0 "$CLOSED/fn:v1"
code inspect 5 --sbom "$T/no/such/dir/s.json" "$IMG"
interrupted inspect "$STALL/fn:v1"
# version, help
code version 0
code version 1 --frobnicate
OUT=$FULL code version 5
code help 0 assemble
code help 1 frobnicate
OUT=$FULL code help 5
ok "each command's exit statuses provoked: 0 1 2 3 4 5 130 where it documents them"

# What each command documents is what was provoked, no more, no less.
$OCILAMBDA help >"$T/help"
sed -n 's/^  \([a-z]\+\) .*/\1/p' "$T/help" >"$T/commands"
[ "$(paste -sd' ' "$T/commands")" = "assemble check help inspect pull push run version" ] ||
	fail "the commands 'ocilambda help' lists: $(paste -sd' ' "$T/commands")"
while read -r cmd; do
	[ "$cmd" = run ] && continue # another command's own tests
	$OCILAMBDA "$cmd" --help >"$T/cmd-help"
	awk '/^Exit status:$/ {on = 1; next} on && /^  [0-9]/ {print $1}' "$T/cmd-help" |
		sort -n | paste -sd' ' >"$T/doc"
	[ -s "$T/doc" ] && [ -n "$(cat "$T/doc")" ] || fail "$cmd --help documents no exit status"
	seen=$(tr ' ' '\n' <<<"${SEEN[$cmd]:-}" | grep . | sort -nu | paste -sd' ')
	[ "$(cat "$T/doc")" = "$seen" ] ||
		fail "$cmd documents exit statuses '$(cat "$T/doc")' but the test provoked '$seen'"
done <"$T/commands"
ok "the statuses each --help documents are the ones provoked"

# README's table, every --help and the man page agree, word for word.
awk '/^### Exit status/ {on = 1; next} on && /^#/ {on = 0} on && /^\| [0-9]+ \|/' "$SRCDIR/README.md" |
	sed 's/^| \([0-9]*\) | \(.*\) |$/\1 \2/' >"$T/readme"
[ "$(wc -l <"$T/readme")" = 8 ] || fail "README's exit table has 8 rows: $(cat "$T/readme")"
while read -r cmd; do
	# "  N    meaning" with wrapped continuation lines joined
	$OCILAMBDA "$cmd" --help >"$T/cmd-help"
	awk <"$T/cmd-help" '
		/^Exit status:$/ {on = 1; next}
		on && /^  [0-9]/ {if (line != "") print line; line = $1; sub(/^ +[0-9]+ +/, ""); line = line " " $0; next}
		on && /^       +[^ ]/ {sub(/^ +/, ""); line = line " " $0; next}
		END {if (line != "") print line}' >"$T/help-exit"
	[ "$(wc -l <"$T/help-exit")" -ge 3 ] || fail "$cmd --help: too few exit statuses: $(cat "$T/help-exit")"
	while read -r line; do
		grep -qxF -- "$line" "$T/readme" || fail "$cmd --help says '$line', README does not"
	done <"$T/help-exit"
done <"$T/commands"
LC_ALL=C.UTF-8 MANWIDTH=250 man -l "$(dirname "$OCILAMBDA")/ocilambda.1" 2>/dev/null | col -b |
	awk '/^EXIT STATUS$/ {on = 1; next} on && /^[A-Z]/ {on = 0} on && /^       [0-9]/ {sub(/^ +/, ""); n = $1; sub(/^[0-9]+ +/, ""); print n " " $0}' \
		>"$T/man-exit"
cmp -s "$T/man-exit" "$T/readme" || fail "man page EXIT STATUS differs from README: $(diff "$T/man-exit" "$T/readme")"
ok "README's exit table, each --help and the man page say the same"
done_testing
