#!/usr/bin/env bash
# ocilambda run: the blog's "docker run + curl" with ocilambda alone. The
# image has AWS's own runtime client; the function runs under bubblewrap
# against our Runtime API (--event) or behind the emulator's invoke URL
# (--port), answering real curl requests.
. "$(dirname "$0")/lib.sh"

# The image: AWS's own runtime client (Node.js, aws-lambda-cpp on libcurl)
# with the handlers of testdata/ric-handlers; Cmd app.hello answers "Hello
# World". The Lambda semantics (errors, sizes, headers, reports,
# extensions, memory) are in t_e2e_run_ric.sh.
ric_image "$T/img" app.hello
IMG=oci:$T/img:latest
C=$T/cache
RUN=("$OCILAMBDA" run --progress --cache-dir "$C")
ok "made an image with AWS's runtime client"

# ---- --event
"${RUN[@]}" "$IMG" --event '{}' >"$T/out" 2>"$T/log" || fail "run --event: $(tail -20 "$T/log")"
[ "$(cat "$T/out")" = '"Hello World"' ] || fail "response: $(cat "$T/out")"
grep -q "Executing 'app.hello' in function directory '/var/task'" "$T/log" ||
	fail "function log not on stderr: $(cat "$T/log")"
grep -q "(unpacked)" "$T/log" || fail "first run did not unpack: $(cat "$T/log")"
ok "run --event '{}' prints \"Hello World\", the function's log on stderr"

tree=$(echo "$C"/rootfs/*/)
[ -f "$tree/var/runtime/bootstrap" ] || fail "no unpacked tree in $C/rootfs"
ino=$(stat -c %i "$tree/var/runtime/bootstrap")
"${RUN[@]}" "$IMG" --event '{"k": [1, 2]}' --handler app.count >"$T/out" 2>"$T/log" ||
	fail "second run: $(tail -20 "$T/log")"
grep -q "(cached)" "$T/log" || fail "second run did not reuse the tree: $(cat "$T/log")"
[ "$(stat -c %i "$tree/var/runtime/bootstrap")" = "$ino" ] || fail "tree was rewritten"
[ "$(ls "$C/rootfs" | wc -l)" = 1 ] || fail "more than one tree: $(ls -a "$C/rootfs")"
no_litter "$C"
ok "a second run reuses the unpacked tree (same inode, no new tree)"
[ "$(json "$T/out" 'j["event"]')" = "{'k': [1, 2]}" ] || fail "event: $(cat "$T/out")"
[ "$(json "$T/out" 'j["fn"], j["region"], j["uid"]')" = "('function', 'us-east-1', 993)" ] ||
	fail "context/env: $(cat "$T/out")"
echo '"from a file"' >"$T/event.json"
"${RUN[@]}" "$IMG" --event "@$T/event.json" --handler app.count >"$T/out" 2>"$T/log" ||
	fail "--event @file: $(tail -5 "$T/log")"
[ "$(json "$T/out" 'j["event"]')" = "from a file" ] || fail "event from file: $(cat "$T/out")"
ok "--handler, --event @FILE; the function runs as uid 993 with Lambda's variables"

echo host-only-marker >"$T/marker"
"${RUN[@]}" "$IMG" --event '{}' --handler app.fds >"$T/out" 2>"$T/log" 7<"$T/marker" ||
	fail "fds: $(tail -5 "$T/log")"
[ "$(cat "$T/out")" = "[]" ] || fail "the function got our descriptor 7: $(cat "$T/out")"
ok "descriptors ocilambda inherited do not reach the function"

# The same config with another top layer (as a tampered layout could name
# it): a tree of its own, and the first image's tree left as it was.
cp -r "$T/img" "$T/img2"
$PY - "$T/img2" <<'PYEOF'
import hashlib, io, json, os, sys, tarfile
d = sys.argv[1]
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(os.path.join(d, "blobs/sha256", h), "wb").write(b)
    return "sha256:" + h
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    i = tarfile.TarInfo("var/task/poison.txt"); i.size = 6
    t.addfile(i, io.BytesIO(b"poison"))
layer = buf.getvalue()
idx = json.load(open(os.path.join(d, "index.json")))
md = idx["manifests"][0]
m = json.load(open(os.path.join(d, "blobs/sha256", md["digest"].split(":")[1])))
m["layers"][-1] = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
                   "digest": put(layer), "size": len(layer)}
mb = json.dumps(m).encode()
md["digest"], md["size"] = put(mb), len(mb)
json.dump(idx, open(os.path.join(d, "index.json"), "w"))
PYEOF
"${RUN[@]}" "oci:$T/img2:latest" --event '{}' --timeout-s 60 >/dev/null 2>"$T/log" || true
grep -q "(unpacked)" "$T/log" || fail "same config, other layers: a cached tree: $(cat "$T/log")"
[ "$(ls "$C/rootfs" | wc -l)" = 2 ] || fail "trees: $(ls -a "$C/rootfs")"
[ ! -e "$tree/var/task/poison.txt" ] && [ "$(stat -c %i "$tree/var/runtime/bootstrap")" = "$ino" ] ||
	fail "the first image's tree changed"
other=$C/rootfs/$(ls "$C/rootfs" | grep -vx "$(basename "$tree")")
chmod -R u+w "$other" && rm -rf "$T/img2" "$other"
ok "the tree is keyed by the layers too: the same config with other layers gets its own"
"$OCILAMBDA" run --quiet --cache-dir "$C" "$IMG" --event '{}' >"$T/out" 2>"$T/log" ||
	fail "--quiet: $(tail -5 "$T/log")"
[ "$(cat "$T/out")" = '"Hello World"' ] || fail "--quiet response: $(cat "$T/out")"
grep -q "Executing 'app.hello'" "$T/log" || fail "--quiet hid the function's log"
! grep -qE "^(START|END|REPORT) RequestId" "$T/log" || fail "--quiet still reports: $(cat "$T/log")"
! grep -q "^ocilambda" "$T/log" || fail "--quiet still says: $(grep "^ocilambda" "$T/log")"
ok "--quiet: the function's output only"

skopeo copy -q "$IMG" "docker-archive:$T/img.tar:fn:v1"
mkdir "$T/tmp"
TMPDIR=$T/tmp "$OCILAMBDA" run --cache-dir "$T/cache-archive" "docker-archive:$T/img.tar" \
	--event '{}' >"$T/out" 2>"$T/log" || fail "docker-archive: $(tail -5 "$T/log")"
[ "$(cat "$T/out")" = '"Hello World"' ] || fail "docker-archive response: $(cat "$T/out")"
[ -z "$(ls -A "$T/tmp")" ] || fail "left in TMPDIR: $(ls -A "$T/tmp")"
no_litter "$T/cache-archive"
ok "run docker-archive:FILE (its layers extracted to a temporary directory, removed)"

# docker://: from a real registry on loopback (plain http, said out loud),
# the layers fetched into the blob cache next to the trees
. "$SRCDIR/tests/registry/lib.sh"
registry_start reg
registry_seed reg "$IMG" fn:v1
"$OCILAMBDA" run --cache-dir "$T/cache-registry" "$reg_HOST/fn:v1" --event '{}' \
	>"$T/out" 2>"$T/log" || fail "docker://: $(tail -5 "$T/log")"
[ "$(cat "$T/out")" = '"Hello World"' ] || fail "docker:// response: $(cat "$T/out")"
grep -q "using plain http for $reg_HOST" "$T/log" || fail "plain http not said: $(cat "$T/log")"
no_litter "$T/cache-registry"
stop_all
ok "run docker://HOST/REPO:TAG from a registry"

# rootless: the same as an unprivileged user (here nobody), which owns the
# unpacked tree and maps to uid 993 in the sandbox
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 0755 "$T"
	cp -r "$T/img" "$T/img-copy" # a copy: the blobs are hardlinks to the fixtures'
	chmod -R a+rX "$T/img-copy"
	mkdir -m 0777 "$T/nobody"
	as_nobody() { TMPDIR=$T/nobody HOME=$T/nobody setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	as_nobody "$OCILAMBDA" run --cache-dir "$T/nobody/cache" "oci:$T/img-copy:latest" \
		--event '{}' --handler app.count >"$T/out" 2>"$T/log" ||
		fail "as nobody: $(tail -5 "$T/log")"
	[ "$(json "$T/out" 'j["n"], j["uid"]')" = "(1, 993)" ] || fail "as nobody: $(cat "$T/out")"
	[ "$(stat -c %u "$(echo "$T"/nobody/cache/rootfs/*/)var/runtime/bootstrap")" = 65534 ] ||
		fail "tree not owned by the user"
	as_nobody rm -rf "$T/nobody/cache" || fail "the user cannot remove the tree"
	ok "rootless: an unprivileged user unpacks and runs it (no chown), and can remove the tree"
else
	echo "skip - rootless case (needs root and setpriv to become nobody)"
fi

# ---- the tree is made atomically: concurrent first runs, Ctrl-C and a
# crash while unpacking never leave a half tree that is used
C2=$T/cache-race
"$OCILAMBDA" run --progress --cache-dir "$C2" "$IMG" --event '{}' >"$T/out1" 2>"$T/log1" &
P1=$!
"$OCILAMBDA" run --progress --cache-dir "$C2" "$IMG" --event '{}' >"$T/out2" 2>"$T/log2" &
P2=$!
wait $P1 || fail "concurrent run 1: $(tail -5 "$T/log1")"
wait $P2 || fail "concurrent run 2: $(tail -5 "$T/log2")"
[ "$(cat "$T/out1")$(cat "$T/out2")" = '"Hello World""Hello World"' ] || fail "concurrent answers"
[ "$(cat "$T/log1" "$T/log2" | grep -c '(unpacked)')" = 1 ] ||
	fail "not exactly one unpack: $(cat "$T/log1" "$T/log2")"
[ "$(ls "$C2/rootfs" | wc -l)" = 1 ] || fail "trees: $(ls -a "$C2/rootfs")"
no_litter "$C2"
ok "two concurrent first runs: one unpacks, the other waits and reuses it"

# wait_for FILE TEXT PID: until TEXT is in FILE (while PID lives)
wait_for() {
	for _ in $(seq 600); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
for sig in INT KILL; do
	C3=$T/cache-$sig
	# a log of its own: a stale "unpacking" would send the signal before
	# ocilambda handles it (a script's background jobs start with SIGINT ignored)
	"$OCILAMBDA" run --progress --cache-dir "$C3" "$IMG" --event '{}' >"$T/out" 2>"$T/log-$sig" &
	P=$!
	wait_for "$T/log-$sig" "unpacking" $P || fail "SIG$sig: no unpacking: $(cat "$T/log-$sig")"
	kill -$sig $P
	rc=0
	wait $P || rc=$?
	[ "$sig" = KILL ] || [ "$rc" = 130 ] || fail "SIGINT while unpacking: exit $rc"
	# whatever was left, the next run works and leaves nothing behind
	"$OCILAMBDA" run --progress --cache-dir "$C3" "$IMG" --event '{}' >"$T/out" 2>"$T/log" ||
		fail "after SIG$sig: $(tail -5 "$T/log")"
	# the interrupted tree was not taken for a finished one
	grep -q "unpacking" "$T/log" || fail "after SIG$sig: the next run did not unpack: $(cat "$T/log")"
	[ "$(cat "$T/out")" = '"Hello World"' ] || fail "after SIG$sig: $(cat "$T/out")"
	[ "$(ls "$C3/rootfs" | wc -l)" = 1 ] || fail "after SIG$sig: $(ls -a "$C3/rootfs")"
	no_litter "$C3"
done
ok "Ctrl-C (exit 130) or SIGKILL while unpacking: the next run unpacks afresh, nothing left"

# ---- function errors: exit 6, the error JSON on stdout
rc=0
"${RUN[@]}" "$IMG" --event '{}' --handler app.fail >"$T/out" 2>"$T/log" || rc=$?
[ "$rc" = 6 ] || fail "function error: exit $rc: $(tail -5 "$T/log")"
[ "$(json "$T/out" 'j["errorType"], j["errorMessage"]')" = "('TypeError', 'boom from the handler')" ] ||
	fail "error JSON: $(cat "$T/out")"
grep -q "^ocilambda run: the function failed: TypeError: boom from the handler$" "$T/log" ||
	fail "error line: $(cat "$T/log")"
ok "an error-raising handler: exit 6, its error JSON on stdout, one error line"
rc=0
"${RUN[@]}" "$IMG" --event '{}' --handler nomodule.handler >"$T/out" 2>"$T/log" || rc=$?
[ "$rc" = 6 ] || fail "init error: exit $rc"
[ "$(json "$T/out" 'j["errorType"]')" = Runtime.ImportModuleError ] || fail "init error JSON"
grep -q "failed to initialize: Runtime.ImportModuleError" "$T/log" || fail "init error line"
ok "a missing handler module: exit 6, Runtime.ImportModuleError"
expect_status 6 "${RUN[@]}" "$IMG" --event '{}' --handler app.slow --timeout-s 1
[ "$(json "$T/stdout" 'j["errorType"]')" = Sandbox.Timedout ] || fail "timeout JSON: $(cat "$T/stdout")"
[ "$(tail -n 1 "$T/stderr")" = "ocilambda run: the function timed out after 1 s (--timeout-s): stopped" ] ||
	fail "timeout line: $(tail -n 3 "$T/stderr")"
ok "--timeout-s: the function is killed, exit 6, Sandbox.Timedout on stdout"

# ---- --port: the blog's curl, twice, against one process; Ctrl-C
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
URL_PATH=/2015-03-31/functions/function/invocations
# start_server LOG ARGS...: runs run --port in the background (SRV, PORT)
start_server() {
	local log=$1
	shift
	PORT=$(free_port)
	rm -f "$log" # nothing stale to match (a port can come again)
	"${RUN[@]}" "$IMG" --port "$PORT" "$@" >"$T/srv.out" 2>"$log" &
	SRV=$!
	for _ in $(seq 300); do
		grep -q "serving http://127.0.0.1:$PORT" "$log" 2>/dev/null && return 0
		kill -0 $SRV 2>/dev/null || fail "run --port died: $(cat "$log")"
		sleep 0.1
	done
	fail "run --port did not start: $(cat "$log")"
}
# stop_server: SIGINT, exit 130, nothing of the sandbox left
stop_server() {
	kill -INT $SRV
	local rc=0
	wait $SRV || rc=$?
	[ "$rc" = 130 ] || fail "exit $rc after SIGINT: $(tail -5 "$T/srv.log")"
	[ ! -s "$T/srv.out" ] || fail "stdout not empty: $(cat "$T/srv.out")"
	left=$(grep -l "RUN_TEST_MARKER=$T" /proc/[0-9]*/environ 2>/dev/null || true)
	[ -z "$left" ] || fail "processes left: $left"
	left=$(grep -lF "$C" /proc/[0-9]*/cmdline 2>/dev/null || true)
	[ -z "$left" ] || fail "processes left: $left"
}

start_server "$T/srv.log" --env "RUN_TEST_MARKER=$T"
for i in 1 2; do
	curl -sS -XPOST "http://localhost:$PORT$URL_PATH" -d '{}' >"$T/resp$i" ||
		fail "curl $i: $(cat "$T/srv.log")"
	[ "$(cat "$T/resp$i")" = '"Hello World"' ] || fail "curl $i: $(cat "$T/resp$i")"
done
ok "run --port answers the blog's curl twice"
stop_server
ok "SIGINT: exit 130, no process left"

start_server "$T/srv.log" --handler app.count --env "RUN_TEST_MARKER=$T"
for i in 1 2; do
	curl -sS -XPOST "http://localhost:$PORT$URL_PATH" -d "{\"i\": $i}" >"$T/resp$i"
	[ "$(json "$T/resp$i" 'j["n"], j["event"]["i"], j["marker"]')" = "($i, $i, '$T')" ] ||
		fail "invocation $i: $(cat "$T/resp$i")"
done
ok "the function's process is kept between invocations"
stop_server

start_server "$T/srv.log" --handler app.fail --env "RUN_TEST_MARKER=$T"
code=$(curl -sS -o "$T/resp" -D "$T/headers" -w '%{http_code}' -XPOST "http://localhost:$PORT$URL_PATH" -d '{}')
[ "$code" = 200 ] || fail "function error: HTTP $code"
grep -qi '^X-Amz-Function-Error: Unhandled' "$T/headers" || fail "headers: $(cat "$T/headers")"
[ "$(json "$T/resp" 'j["errorType"]')" = TypeError ] || fail "body: $(cat "$T/resp")"
code=$(curl -sS -o /dev/null -w '%{http_code}' -XPOST "http://localhost:$PORT/2015-03-31/nope" -d '{}')
[ "$code" = 404 ] || fail "unknown path: HTTP $code"
stop_server
ok "--port: a function error answers 200 with its error JSON and X-Amz-Function-Error"

start_server "$T/srv.log" --handler app.slow --timeout-s 1 --env "RUN_TEST_MARKER=$T"
curl -sS -XPOST "http://localhost:$PORT$URL_PATH" -d '{}' >"$T/resp"
[ "$(json "$T/resp" 'j["errorType"]')" = Sandbox.Timedout ] || fail "timeout: $(cat "$T/resp")"
grep -q "Task timed out after 1.00 seconds" "$T/resp" || fail "timeout message"
stop_server
ok "--port: a timeout answers Sandbox.Timedout and kills the function"

no_litter "$C"
done_testing
