#!/usr/bin/env bash
# ocilambda run: the errors a user can reach before the function starts, each
# with its exit code and one line (fast; the sanitizer pass runs it too).
# The invocations themselves are in t_run.sh.
. "$(dirname "$0")/lib.sh"

IMG=oci:$FIXTURES/base38:3.8
C=$T/cache
RUN=("$OCILAMBDA" run --cache-dir "$C")

expect_fail 1 "give --event JSON" "${RUN[@]}" "$IMG"
expect_fail 1 "exclude each other" "${RUN[@]}" "$IMG" --event '{}' --port 9000
expect_fail 1 "--port \"0\"" "${RUN[@]}" "$IMG" --port 0
expect_fail 2 "--event: not JSON: unexpected token" "${RUN[@]}" "$IMG" --event '{"a": }'
expect_fail 2 "--event @$T/nonexistent.json" "${RUN[@]}" "$IMG" --event "@$T/nonexistent.json"
echo '{' >"$T/bad.json"
expect_fail 2 "--event @$T/bad.json: not JSON" "${RUN[@]}" "$IMG" --event "@$T/bad.json"
head -c $((7 << 20)) /dev/zero | tr '\0' 'x' | sed 's/^/"/; s/$/"/' >"$T/big.json"
expect_fail 2 "--event @$T/big.json" "${RUN[@]}" "$IMG" --event "@$T/big.json"
grep -q "6291556" "$T/stderr" || fail "the limit is not named: $(cat "$T/stderr")"
ok "bad --event: JSON and @FILE errors, an event over Lambda's 6,291,556 bytes"

expect_fail 1 '--memory "64": want 128-10240 MB' "${RUN[@]}" "$IMG" --event '{}' --memory 64
expect_fail 1 '--memory "1g": want 128-10240 MB' "${RUN[@]}" "$IMG" --event '{}' --memory 1g
expect_fail 1 "--env AWS_LAMBDA_FUNCTION_MEMORY_SIZE=99999: want 128-10240 MB" \
	"${RUN[@]}" "$IMG" --event '{}' --env AWS_LAMBDA_FUNCTION_MEMORY_SIZE=99999
expect_fail 1 "--memory 256 and --env AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512 disagree" \
	"${RUN[@]}" "$IMG" --event '{}' --memory 256 --env AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512
expect_fail 1 "--env AWS_LAMBDA_FUNCTION_TIMEOUT=soon: want 1-86400 seconds" \
	"${RUN[@]}" "$IMG" --event '{}' --env AWS_LAMBDA_FUNCTION_TIMEOUT=soon
expect_fail 1 "--timeout-s 3 and --env AWS_LAMBDA_FUNCTION_TIMEOUT=5 disagree" \
	"${RUN[@]}" "$IMG" --event '{}' --timeout-s 3 --env AWS_LAMBDA_FUNCTION_TIMEOUT=5
expect_fail 1 "--env AWS_LAMBDA_FUNCTION_NAME=my fn: a function name is 1-64" \
	"${RUN[@]}" "$IMG" --event '{}' --env "AWS_LAMBDA_FUNCTION_NAME=my fn"
no_litter "$T"
ok "bad --memory, AWS_LAMBDA_FUNCTION_{MEMORY_SIZE,TIMEOUT,NAME}: exit 1 naming the value"

$PY -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
time.sleep(120)' "$T/busy" &
HOLD=$!
for _ in $(seq 100); do [ -s "$T/busy" ] && break; sleep 0.1; done
busy=$(cat "$T/busy")
expect_fail 1 "127.0.0.1:$busy is in use" "${RUN[@]}" "$IMG" --port "$busy"
kill $HOLD
wait $HOLD 2>/dev/null || true
ok "a port in use"

CLOSED=127.0.0.1:$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_fail 3 "$CLOSED" "${RUN[@]}" --retry 0 "$CLOSED/fn:v1" --event '{}'
ok "a registry that cannot be reached"

mkdir "$T/nobwrap"
expect_fail 5 "install bubblewrap" env PATH="$T/nobwrap" "${RUN[@]}" "$IMG" --event '{}'
# user namespaces off, for this test only: the limit is per user namespace
expect_fail 5 "enable unprivileged user namespaces" unshare -U -r -m sh -c \
	'echo 0 >/proc/sys/user/max_user_namespaces && exec "$@"' sh "${RUN[@]}" "$IMG" --event '{}'
ok "bwrap missing, user namespaces off: exit 5 with what to do"

cp -r "$FIXTURES/base38" "$T/noentry"
umoci config --image "$T/noentry:3.8" --clear=config.entrypoint --clear=config.cmd >/dev/null
expect_fail 2 "has no Entrypoint or Cmd" "${RUN[@]}" "oci:$T/noentry:3.8" --event '{}'
ok "an image without Entrypoint or Cmd"

cp -r "$FIXTURES/base38" "$T/arm"
umoci config --image "$T/arm:3.8" --architecture arm64 >/dev/null
expect_fail 2 "arm64" "${RUN[@]}" "oci:$T/arm:3.8" --event '{}'
ok "an image for another architecture"
no_litter "$T"

# what run --help documents is what this test and t_run provoke (0, 6 and
# 130 there)
doc=$($OCILAMBDA run --help | awk '/^Exit status:$/ {on = 1; next} on && /^  [0-9]/ {print $1}' | paste -sd' ')
[ "$doc" = "0 1 2 3 5 6 130" ] || fail "run --help documents exit statuses '$doc'"
ok "run --help documents 0 1 2 3 5 6 130"
done_testing
