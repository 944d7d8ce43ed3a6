#!/bin/bash
# tests/registry/pkgserver-selftest.sh -- checks pkgserver.py and its lib.sh functions with curl
# and python only (never ocilambda). Prints "N passed, M failed"; exit 1 on failure.
# KEEP=1 keeps the temp dir.
# shellcheck disable=SC2154  # the NAME_* variables come from lib.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/pkgserver-selftest.XXXXXX")
trap 'if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi' EXIT
. "$HERE/lib.sh"
PY=$REGLIB_PY
START=$SECONDS

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }
has() { if [[ $2 == *"$3"* ]]; then ok "$1"; else bad "$1: '$3' not in: $(head -c 600 <<< "$2")"; fi; }
c() { curl -s --noproxy '*' --max-time 20 "$@"; }
hdr() { grep -i "^$1:" "$2" | tail -1 | cut -d' ' -f2- | tr -d '\r'; }   # NAME HEADERFILE

# a channel: one package of 300000 bytes that are not all one byte
CH=$T/ch
mkdir -p "$CH/conda-forge/linux-64"
"$PY" -c 'import sys; open(sys.argv[1], "wb").write(bytes((i * 7919 >> 5) & 255 for i in range(300000)))' \
  "$CH/conda-forge/linux-64/pkg-1.0-0.conda"
P=/conda-forge/linux-64/pkg-1.0-0.conda
SUM=$(sha256sum "$CH$P" | cut -d' ' -f1)
echo secret > "$T/outside"

echo "# https"
pkgserver_start s "$CH" --tls
has "s_URL is https://127.0.0.1:PORT" "$s_URL" "https://127.0.0.1:"
c --cacert "$s_CA" -D "$T/h" -o "$T/got" "$s_URL$P"
eq "GET over https with the CA: the file's bytes" "$(sha256sum < "$T/got" | cut -d' ' -f1)" "$SUM"
eq "  ... Content-Length" "$(hdr Content-Length "$T/h")" 300000
grep -Eq "^BEGIN id=1 t=[0-9.]+ GET $P\$" "$s_LOG" && ok "the log has a BEGIN line" || bad "BEGIN line: $(cat "$s_LOG")"
grep -Eq "^GET $P 200 range=- action=pass auth=none bytes=300000 t=[0-9.]+ id=1\$" "$s_LOG" &&
  ok "  ... and an end line" || bad "end line: $(cat "$s_LOG")"
eq "without the CA, curl refuses the certificate" "$(c -o /dev/null -w '%{http_code}' "$s_URL$P" || true)" 000
eq "the CA is in NAME_CERTDIR" "$(ls "$s_CERTDIR"/*.crt)" "$s_CERTDIR/ca.crt"
code=$(c --cacert "$s_CA" -o "$T/part" -w '%{http_code}' -H 'Range: bytes=299990-' "$s_URL$P")
eq "Range: 206" "$code" 206
eq "  ... the last 10 bytes" "$(stat -c %s "$T/part")" 10
eq "Range past the end: 416" "$(c --cacert "$s_CA" -o /dev/null -w '%{http_code}' -H 'Range: bytes=300000-' "$s_URL$P")" 416
eq "a missing file: 404" "$(c --cacert "$s_CA" -o /dev/null -w '%{http_code}' "$s_URL/nope")" 404
eq "no way out of the root" "$(c --cacert "$s_CA" -o /dev/null -w '%{http_code}' --path-as-is "$s_URL/../outside")" 404

echo "# rules"
pkgserver_rules s '{"rules": [{"match": "pkg-1.0", "status": 503, "retry_after": 3, "times": 1}]}'
c --cacert "$s_CA" -D "$T/h" -o /dev/null "$s_URL$P"
eq "status rule: 503" "$(head -1 "$T/h" | cut -d' ' -f2)" 503
eq "  ... with Retry-After" "$(hdr Retry-After "$T/h")" 3
eq "  ... once (times)" "$(c --cacert "$s_CA" -o /dev/null -w '%{http_code}' "$s_URL$P")" 200
pkgserver_rules s '{"rules": [{"action": "drop_once", "fraction": 0.25}]}'
rc=0; c --cacert "$s_CA" -o "$T/part" "$s_URL$P" || rc=$?
eq "drop_once: curl sees a partial file (exit 18)" "$rc" 18
eq "  ... a quarter of it" "$(stat -c %s "$T/part")" 75000
has "  ... logged" "$(tail -1 "$s_LOG")" "GET $P 200 range=- action=drop_once auth=none bytes=75000"
pkgserver_rules s '{"rules": [{"action": "corrupt"}]}'
c --cacert "$s_CA" -o "$T/got" "$s_URL$P"
eq "corrupt: same length" "$(stat -c %s "$T/got")" 300000
[ "$(sha256sum < "$T/got" | cut -d' ' -f1)" != "$SUM" ] && ok "  ... other bytes" || bad "corrupt: same bytes"
pkgserver_rules s '{"rules": [{"action": "endless", "seconds": 1}]}'
n=$(c --cacert "$s_CA" -o /dev/null -w '%{size_download}' "$s_URL$P" || true)
[ "$n" -gt 300000 ] && ok "endless: more bytes than the file ($n in 1 s)" || bad "endless: $n bytes"
pkgserver_rules s '{"rules": [{"action": "endless", "length": 1000000000000}]}'
c --cacert "$s_CA" -D "$T/h" -o /dev/null --max-filesize 1000 "$s_URL$P" || true
eq "endless with length: announced" "$(hdr Content-Length "$T/h")" 1000000000000
pkgserver_rules s '{"rules": [{"action": "throttle", "rate": 200000}]}'
speed=$(c --cacert "$s_CA" -o /dev/null -w '%{speed_download}' "$s_URL$P")
[ "${speed%.*}" -le 300000 ] && ok "throttle 200000 B/s: $speed B/s" || bad "throttle: $speed B/s"
pkgserver_rules s '{"rules": [{"action": "redirect", "location": "https://127.0.0.2:9{path}"}]}'
c --cacert "$s_CA" -D "$T/h" -o /dev/null "$s_URL$P?x=1"
eq "redirect: 302" "$(head -1 "$T/h" | cut -d' ' -f2)" 302
eq "  ... Location with {path}" "$(hdr Location "$T/h")" "https://127.0.0.2:9$P?x=1"
pkgserver_rules s '{"rules": [{"action": "gate", "count": 3, "timeout": 15}]}'
: > "$s_LOG"
pids=()
for i in 1 2 3; do
  c --cacert "$s_CA" -o "$T/g$i" "$s_URL$P" &
  pids+=($!)
done
wait "${pids[@]}"   # (a bare wait would wait for lib.sh's watchdog too)
eq "gate: three requests released together" "$(reglib_count "$s_LOG" "action=gate auth")" 3
eq "  ... pkgserver_inflight counts them" "$(pkgserver_inflight "$s_LOG")" 3
pkgserver_rules s '{"rules": [{"action": "gate", "count": 2, "timeout": 1}]}'
c --cacert "$s_CA" -o /dev/null "$s_URL$P"
has "gate: a lone request goes after the timeout" "$(tail -1 "$s_LOG")" "action=gate-timeout"
pkgserver_rules s '{"rules": [{"action": "slow", "delay": 1}]}'
: > "$s_LOG"
c --cacert "$s_CA" -o /dev/null "$s_URL$P" &
pid=$!
c --cacert "$s_CA" -o /dev/null "$s_URL$P"
wait "$pid"
eq "two slow requests overlap in the log" "$(pkgserver_inflight "$s_LOG")" 2
: > "$s_LOG"
c --cacert "$s_CA" -o /dev/null "$s_URL$P"; c --cacert "$s_CA" -o /dev/null "$s_URL$P"
eq "one after the other: never two in flight" "$(pkgserver_inflight "$s_LOG")" 1
pkgserver_rules s '{"rules": []}'

echo "# plain http, another address, credentials"
pkgserver_start p "$CH" --bind 127.0.0.2 --auth alice:pw
has "--bind 127.0.0.2" "$p_URL" "http://127.0.0.2:"
eq "no credentials: 401" "$(c -D "$T/h" -o /dev/null -w '%{http_code}' "$p_URL$P")" 401
eq "  ... Basic challenge" "$(hdr WWW-Authenticate "$T/h")" 'Basic realm="pkgserver"'
eq "right credentials: 200" "$(c -u alice:pw -o /dev/null -w '%{http_code}' "$p_URL$P")" 200
eq "wrong ones: 401" "$(c -u alice:no -o /dev/null -w '%{http_code}' "$p_URL$P")" 401
eq "the log says who sent what" "$(grep -o 'auth=[a-z]*' "$p_LOG" | paste -sd' ')" "auth=none auth=basic auth=wrong"
pkgserver_start q "$CH" --tls --bind 127.0.0.2
eq "the shared CA's certificate covers 127.0.0.2" "$(c --cacert "$s_CA" -o /dev/null -w '%{http_code}' "$q_URL$P")" 200
pkgserver_stop q
eq "pkgserver_stop stops that one" "$(c --cacert "$s_CA" -o /dev/null -w '%{http_code}' "$q_URL$P" || true)" 000
eq "  ... and not the others" "$(c --cacert "$s_CA" -o /dev/null -w '%{http_code}' "$s_URL$P")" 200

echo "$pass passed, $fail failed"
echo "selftest took $((SECONDS - START)) s"
[ "$fail" = 0 ]
