#!/usr/bin/env bash
# Atomic output: a failed or interrupted build leaves the previous output
# intact and no temporary litter.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
build() {
	$OCILAMBDA assemble --base "oci:$B:3.8" --code "$T/code" --handler example.lambda_handler "$@"
}
build --conda-prefix "$P" --output "oci:$T/out:latest" >/dev/null
snapshot() { (cd "$T/out" && find . -type f -exec sha256sum {} + | sort); }
snapshot >"$T/before"

# Fails late: the code layer meets a FIFO after the prefix layer was written.
mkfifo "$T/code/pipe"
expect_fail 2 "pipe" build --conda-prefix "$P" --output "oci:$T/out:v2"
rm "$T/code/pipe"
snapshot | cmp -s - "$T/before" || fail "failed build changed the output"
no_litter "$T"
ok "a failure late in the build leaves the previous output and no litter"

# Interrupted: SIGINT while the (large) runnable prefix is being packed.
# (exec: the signal must reach ocilambda, not a subshell around it)
$OCILAMBDA assemble --base "oci:$B:3.8" --code "$T/code" --handler example.lambda_handler \
	--conda-prefix "$FIXTURES/prefix-run" --allow-python-mismatch \
	--output "oci:$T/out:big" >/dev/null 2>"$T/int.err" &
pid=$!
staging() { ls -d "$T"/.out.ocilambda-* >/dev/null 2>&1; }
wait_until 60 "the build's staging directory" staging
kill -INT $pid
rc=0
wait $pid || rc=$?
[ $rc = 130 ] || fail "interrupted build: exit $rc ($(cat "$T/int.err"))"
grep -q "interrupted" "$T/int.err" || fail "says it was interrupted: $(cat "$T/int.err")"
snapshot | cmp -s - "$T/before" || fail "interrupted build changed the output"
no_litter "$T"
ok "Ctrl-C leaves the previous output and no litter (exit 130)"

# A new output directory that a failure never creates.
mkfifo "$T/code/pipe"
expect_fail 2 "pipe" build --conda-prefix "$P" --output "oci:$T/fresh"
[ ! -e "$T/fresh" ] || fail "failed build created the output"
no_litter "$T"
ok "a failed first build creates nothing"
done_testing
