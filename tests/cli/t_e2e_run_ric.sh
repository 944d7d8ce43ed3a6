#!/usr/bin/env bash
# ocilambda run answers as Lambda does, judged by AWS's own runtime client
# (aws-lambda-ric: Node.js over aws-lambda-cpp and libcurl, from the
# base-ric fixture) and by curl: Invoke semantics for every failure,
# payload limits, context headers, START/END/REPORT, configuration through
# --memory and --env, and an extension in /opt/extensions.
. "$(dirname "$0")/lib.sh"

ric_image "$T/img" app.ok
IMG=oci:$T/img:latest
C=$T/cache
RUN=("$OCILAMBDA" run --cache-dir "$C")
UUID='[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}'

# ---- --event: the context, the configuration, the report
expect_status 0 "${RUN[@]}" "$IMG" --event '{"k": 1}' --memory 256 --timeout-s 20 \
	--env AWS_LAMBDA_FUNCTION_NAME=my-fn
cp "$T/stdout" "$T/ok.json"
[ "$(json "$T/ok.json" 'j["event"], j["functionName"], j["memoryLimitInMB"], j["env"]["memory"], j["logGroupName"]')" = \
	"({'k': 1}, 'my-fn', '256', '256', '/aws/lambda/my-fn')" ] || fail "context: $(cat "$T/ok.json")"
[ "$(json "$T/ok.json" 'j["arn"]')" = "arn:aws:lambda:us-east-1:012345678912:function:my-fn" ] ||
	fail "ARN: $(cat "$T/ok.json")"
[ "$(json "$T/ok.json" '0 < j["remainingMs"] <= 20000')" = True ] || fail "deadline: $(cat "$T/ok.json")"
[ "$(json "$T/ok.json" 'j["traceId"].startswith("Root=1-")')" = True ] || fail "trace id: $(cat "$T/ok.json")"
id=$(json "$T/ok.json" 'j["requestId"]')
grep -qE "^START RequestId: $id Version: \\\$LATEST$" "$T/stderr" || fail "START: $(cat "$T/stderr")"
grep -qE "^END RequestId: $id$" "$T/stderr" || fail "END: $(cat "$T/stderr")"
report=$(grep "^REPORT RequestId: $id" "$T/stderr") || fail "no REPORT: $(cat "$T/stderr")"
[[ "$report" =~ ^REPORT\ RequestId:\ $UUID$'\t'Init\ Duration:\ [0-9]+\.[0-9]{2}\ ms$'\t'Duration:\ [0-9]+\.[0-9]{2}\ ms$'\t'Billed\ Duration:\ [0-9]+\ ms$'\t'Memory\ Size:\ 256\ MB$'\t'Max\ Memory\ Used:\ [0-9]+\ MB$'\t'$ ]] ||
	fail "REPORT line: $report"
ok "--event: context, ARN and log group follow --env AWS_LAMBDA_FUNCTION_NAME, --memory, deadline; START/END/REPORT"

# ---- --event: every failure exits 6 with the error JSON on stdout
# run_fail HANDLER ERRORTYPE [ARGS...]
run_fail() {
	local handler=$1 type=$2
	shift 2
	expect_status 6 "${RUN[@]}" "$IMG" --event '{}' --handler "$handler" "$@"
	[ "$(json "$T/stdout" 'j["errorType"]')" = "$type" ] || fail "$handler: $(head -c 300 "$T/stdout")"
	[ "$(grep -c '^ocilambda run: ' "$T/stderr")" = 1 ] || fail "$handler: $(cat "$T/stderr")"
}
run_fail app.fail TypeError
grep -q '^ocilambda run: the function failed: TypeError: boom from the handler$' "$T/stderr" ||
	fail "fail line: $(cat "$T/stderr")"
run_fail broken.handler Error
grep -q '^ocilambda run: the function failed to initialize: Error: broken at import$' "$T/stderr" ||
	fail "init line: $(cat "$T/stderr")"
run_fail app.slow Sandbox.Timedout --timeout-s 1
grep -q 'Task timed out after 1.00 seconds' "$T/stdout" || fail "timeout body: $(cat "$T/stdout")"
grep -qE $'^REPORT .*\tDuration: 1000.00 ms\t.*\tStatus: timeout\t$' "$T/stderr" ||
	fail "timeout REPORT: $(grep REPORT "$T/stderr")"
run_fail app.big Function.ResponseSizeTooLarge
grep -q 'maximum allowed payload size (6291556 bytes)' "$T/stdout" || fail "big body: $(cat "$T/stdout")"
run_fail app.crash Runtime.ExitError
grep -q 'Runtime exited with error: exit status 3"' "$T/stdout" || fail "crash body: $(cat "$T/stdout")"
# a 600 KB error message: the X-Ray cause header is that long (over
# libmicrohttpd's and our old 64 KiB), and the client posts it whole
run_fail app.longerror RangeError
! grep -q 'Failed to post' "$T/stderr" || fail "long header refused: $(grep Failed "$T/stderr")"
ok "--event: handler error, init error, timeout, 7 MiB response, crash, 600 KB X-Ray header: exit 6 and Lambda's error JSON"

# ---- --memory: enforced where a memory cgroup can be made, said otherwise
rc=0
"${RUN[@]}" "$IMG" --event '{}' --handler app.hog --memory 128 >"$T/stdout" 2>"$T/stderr" || rc=$?
if grep -q "memory: 128 MB is not enforced" "$T/stderr"; then
	# no memory cgroup for us here: said, and the handler keeps its 300 MiB
	[ "$rc" = 0 ] && [ "$(cat "$T/stdout")" = 300 ] || fail "hog, unenforced: exit $rc $(cat "$T/stdout")"
else
	[ "$rc" = 6 ] || fail "hog: exit $rc: $(tail -3 "$T/stderr")"
	[ "$(json "$T/stdout" 'j["errorType"]')" = Runtime.OutOfMemory ] || fail "hog: $(cat "$T/stdout")"
	grep -q 'Runtime exited with error: signal: killed' "$T/stdout" || fail "hog body: $(cat "$T/stdout")"
fi
ok "--memory 128: a handler holding 300 MiB is killed (Runtime.OutOfMemory) where a memory cgroup can be made, else it is said"

# ---- --port: Invoke semantics over HTTP, context headers, limits
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
"${RUN[@]}" "$IMG" --port "$PORT" --timeout-s 2 --handler app.dispatch --env "RUN_TEST_MARKER=$T" \
	>"$T/srv.out" 2>"$T/srv.log" &
SRV=$!
wait_until 60 "run --port" grep -q "serving http://127.0.0.1:$PORT" "$T/srv.log"
URL=http://127.0.0.1:$PORT/2015-03-31/functions/function/invocations
# invoke [CURL ARGS...]: status in $code, body in $T/resp,
# headers in $T/headers
invoke() {
	code=$(curl -sS -o "$T/resp" -D "$T/headers" -w '%{http_code}' -XPOST "$URL" "$@") ||
		fail "curl $*: $(tail -5 "$T/srv.log")"
}
cc=$(printf '{"custom":{"k":"v"},"env":{"e":"1"}}' | base64 -w0)
URL="$URL?Qualifier=\$LATEST" invoke -d '{"n": 2}' -H "X-Amz-Client-Context: $cc" \
	-H "X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1" \
	-H "X-Amz-Tenant-Id: tenant-7"
[ "$code" = 200 ] || fail "invoke: HTTP $code $(cat "$T/resp")"
[ "$(json "$T/resp" 'j["event"], j["clientContext"]["custom"], j["tenantId"], j["env"]["marker"]')" = \
	"({'n': 2}, {'k': 'v'}, 'tenant-7', '$T')" ] || fail "context over HTTP: $(cat "$T/resp")"
[ "$(json "$T/resp" 'j["traceId"]')" = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1" ] ||
	fail "trace id: $(cat "$T/resp")"
! grep -qi '^X-Amz-Function-Error' "$T/headers" || fail "success with X-Amz-Function-Error"
ok "--port: X-Amz-Client-Context, X-Amzn-Trace-Id, X-Amz-Tenant-Id reach the handler; ?Qualifier= accepted"

invoke -d '{}' -H "X-Amz-Client-Context: not*base64"
[ "$code" = 400 ] && [ "$(json "$T/resp" 'j["errorType"]')" = InvalidRequestContentException ] ||
	fail "bad client context: HTTP $code $(cat "$T/resp")"
head -c $((7 << 20)) /dev/zero | tr '\0' 'x' | sed 's/^/"/; s/$/"/' >"$T/big.json"
invoke --data-binary "@$T/big.json" -H 'Content-Type: application/json'
[ "$code" = 413 ] && [ "$(json "$T/resp" 'j["errorType"]')" = RequestTooLargeException ] ||
	fail "big event: HTTP $code $(head -c 300 "$T/resp")"
ok "--port: a client context that is not base64 JSON is 400, a 7 MiB event 413 RequestTooLargeException"

# every function failure: 200, X-Amz-Function-Error: Unhandled, the error JSON
pairs=(fail:TypeError slow:Sandbox.Timedout big:Function.ResponseSizeTooLarge crash:Runtime.ExitError ok:)
for pair in "${pairs[@]}"; do
	handler=${pair%%:*} type=${pair#*:}
	invoke -d "{\"handler\": \"$handler\"}"
	[ "$code" = 200 ] || fail "$handler: HTTP $code"
	if [ -z "$type" ]; then
		! grep -qi '^X-Amz-Function-Error' "$T/headers" || fail "$handler: $(cat "$T/headers")"
		continue
	fi
	grep -qi '^X-Amz-Function-Error: Unhandled' "$T/headers" || fail "$handler: $(cat "$T/headers")"
	[ "$(json "$T/resp" 'j["errorType"]')" = "$type" ] || fail "$handler: $(head -c 300 "$T/resp")"
	# the sandbox lives on: AWS's client gets its 413 (aws-lambda-cpp logs it)
	[ "$handler" != big ] ||
		wait_until 30 "the runtime's 413" grep -q 'Http response code: 413' "$T/srv.log"
done
ok "--port: handler error, timeout, 7 MiB response, crash: 200, X-Amz-Function-Error: Unhandled, Lambda's error JSON; then a fresh sandbox answers"
if grep -q "and \[::1\]:$PORT" "$T/srv.log"; then
	code=$(curl -sS -g -o "$T/resp" -w '%{http_code}' -XPOST \
		"http://[::1]:$PORT/2015-03-31/functions/function/invocations" -d '{"n": 6}')
	[ "$code" = 200 ] && [ "$(json "$T/resp" 'j["event"]')" = "{'n': 6}" ] || fail "::1: HTTP $code"
	ok "--port: served on ::1 too"
else
	echo "skip - ::1 (no IPv6 loopback here)"
fi
kill -INT $SRV
rc=0
wait $SRV || rc=$?
[ "$rc" = 130 ] || fail "exit $rc after SIGINT"
ok "--port: SIGINT, exit 130"

# ---- an extension in /opt/extensions: registered, INVOKE, SHUTDOWN
mkdir -p "$T/ext/opt/extensions"
cp "$TD/ric-extension/test-ext" "$T/ext/opt/extensions/"
chmod 0755 "$T/ext/opt/extensions/test-ext"
tar --owner=0 --group=0 --numeric-owner -C "$T/ext" -cf "$T/ext.tar" opt
umoci raw add-layer --image "$T/img:latest" "$T/ext.tar" >/dev/null
expect_status 0 "${RUN[@]}" "$IMG" --event '{"k": 3}' --env AWS_LAMBDA_FUNCTION_NAME=ext-fn
id=$(json "$T/stdout" 'j["requestId"]')
for line in "EXTENSION registered 200 ext-fn" "EXTENSION telemetry 200" "EXTENSION INVOKE $id" \
	"EXTENSION SHUTDOWN spindown"; do
	grep -qx "$line" "$T/stderr" || fail "extension: no '$line' in: $(cat "$T/stderr")"
done
ok "an extension registers, subscribes to telemetry, gets INVOKE with the request id and SHUTDOWN"
no_litter "$C"
done_testing
