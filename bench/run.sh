#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]: warm invocations through `ocilambda run --port`
# under AWS's runtime client (the base-ric fixture of BUILD_DIR/fixtures,
# made by the CLI tests' fixture step), handler app.echo returning its event.
# One keep-alive client on loopback times each POST; prints p50 and p99.
# BENCH_N (default 1000) invocations after 50 warm-up ones.
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_N:-1000}
BASE=$BUILD/fixtures/base-ric
[ -d "$BASE" ] || { echo "no $BASE: build the fixtures first (ctest -R cli/fixtures)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-run.XXXXXX")
SRV=
cleanup() {
	[ -z "$SRV" ] || { kill -INT "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null || true; }
	chmod -R u+w "$T" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
cp -r "$BASE" "$T/img"
mkdir -p "$T/layer/var/task"
cp "$SRC"/testdata/ric-handlers/* "$T/layer/var/task/"
chmod -R a+rX "$T/layer"
tar --owner=0 --group=0 --numeric-owner -C "$T/layer" -cf "$T/layer.tar" var
umoci raw add-layer --image "$T/img:ric" "$T/layer.tar" >/dev/null
umoci config --image "$T/img:ric" --config.cmd app.echo >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BUILD/ocilambda" run --quiet --cache-dir "$T/cache" "oci:$T/img:ric" --port "$PORT" \
	>"$T/out" 2>"$T/log" &
SRV=$!
for _ in $(seq 600); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && break
	sleep 0.1
done
python3 - "$PORT" "$N" <<'PY'
import http.client, json, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
path = "/2015-03-31/functions/function/invocations"
event = json.dumps({"key": "value", "n": list(range(10))})
def once():
    c.request("POST", path, body=event, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and json.loads(body) == json.loads(event), (r.status, body[:200])
for _ in range(50):
    once()
t = []
for _ in range(n):
    t0 = time.perf_counter()
    once()
    t.append((time.perf_counter() - t0) * 1000)
t.sort()
print("invocations=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f" % (n, t[n // 2], t[int(n * 0.99) - 1], t[-1]))
PY
