#!/bin/bash
# tests/registry/netproxy-selftest.sh -- checks netproxy.py and its lib.sh functions with curl,
# skopeo and python only (never ocilambda). Prints "N passed, M failed"; exit 1 on failure.
# KEEP=1 keeps the temp dir.
# shellcheck disable=SC2154  # the NAME_* variables come from lib.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/netproxy-selftest.XXXXXX")
trap 'if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi' EXIT
. "$HERE/lib.sh"
PY=$REGLIB_PY
START=$SECONDS

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() {
  local desc=$1; shift
  if "$@" >> "$T/check.log" 2>&1; then ok "$desc"; else bad "$desc"; echo "     (command: $*)"; fi
}
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }
has() { if [[ $2 == *"$3"* ]]; then ok "$1"; else bad "$1: '$3' not in: $(head -c 600 <<< "$2")"; fi; }
c() { curl -s --noproxy '*' --max-time 30 "$@"; }
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
hdr() { grep -i "^$1:" "$2" | tail -1 | cut -d' ' -f2- | tr -d '\r'; }   # NAME HEADERFILE
# at_least DESC X Y: X >= Y (decimals)
at_least() {
  if "$PY" -c 'import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))' "$2" "$3"; then
    ok "$1 ($2 >= $3)"; else bad "$1: $2 < $3"; fi
}
# wait_for DESC SECONDS CMD...: poll CMD every 50 ms
wait_for() {
  local desc=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 20; i++)); do "$@" && { ok "$desc"; return 0; }; sleep 0.05; done
  bad "$desc: timed out after $secs s"; return 1
}
OCI_M=application/vnd.oci.image.manifest.v1+json
ACCEPT="Accept: $OCI_M, application/vnd.oci.image.index.v1+json"
# a session: POST through the proxy, print the absolute upload URL
session() {
  local loc
  loc=$(c -X POST -D - -o /dev/null "http://$1/v2/$2/blobs/uploads/" | hdr Location /dev/stdin)
  case $loc in http*) echo "$loc" ;; *) echo "http://$1$loc" ;; esac
}

# ------------------------------------------------------------------ fixtures
"$ROOT/testdata/mk-base.sh" "$T/base" 3.8 3.8 names
BASE_DIGEST=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$T/base/index.json")
BASE_MAN=$T/base/blobs/sha256/${BASE_DIGEST#sha256:}
"$PY" -c 'import os,sys; open(sys.argv[1], "wb").write(os.urandom(2 << 20))' "$T/big"
BIG=$(sha "$T/big")
registry_start reg
registry_seed reg "oci:$T/base:3.8" lambda/python:3.8

# ------------------------------------------------------------------ pass-through
echo "# pass-through"
netproxy_start np "$reg_HOST"
NP=http://$np_HOST
has "np_HOST is 127.0.0.1:PORT" "$np_HOST" "127.0.0.1:"
check "manifest byte for byte" bash -c 'curl -sf --noproxy "*" -H "$1" "$2" | cmp - "$3"' _ "$ACCEPT" \
  "$NP/v2/lambda/python/manifests/3.8" "$BASE_MAN"
check "skopeo inspect through netproxy" skopeo inspect --tls-verify=false "docker://$np_HOST/lambda/python:3.8"
check "skopeo copy (pull) through netproxy" skopeo --insecure-policy copy --quiet --src-tls-verify=false \
  "docker://$np_HOST/lambda/python:3.8" "oci:$T/pulled:x"
check "skopeo copy (push) through netproxy" skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
  "oci:$T/base:3.8" "docker://$np_HOST/copy/python:3.8"
eq "  ... the registry has the same manifest" \
  "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$reg_HOST/copy/python:3.8")" "$BASE_DIGEST"
grep -Eq '^BEGIN id=[0-9]+ t=[0-9.]+ GET /v2/lambda/python/manifests/3.8 conn=[0-9]+$' "$np_LOG" &&
  ok "BEGIN lines" || bad "BEGIN line: $(head -3 "$np_LOG")"
grep -Eq '^GET /v2/lambda/python/manifests/3.8 200 action=pass in=0 out=[0-9]+ t=[0-9.]+ id=[0-9]+$' "$np_LOG" &&
  ok "end lines" || bad "end line: $(grep manifests "$np_LOG" | head -3)"
grep -Eq '^CONN open conn=1 t=[0-9.]+$' "$np_LOG" && ok "CONN open lines" || bad "CONN line: $(head -3 "$np_LOG")"

# one connection, several requests: one upstream connection, kept
: > "$np_LOG"
c -o /dev/null -H "$ACCEPT" "$NP/v2/lambda/python/manifests/3.8" -o /dev/null "$NP/v2/" -o /dev/null "$NP/v2/"
eq "keep-alive: three requests, one connection" "$(reglib_count "$np_LOG" '^CONN open')" 1
eq "  ... netproxy_conns" "$(netproxy_conns "$np_LOG")" 1
eq "  ... closed when the client goes" "$(reglib_count "$np_LOG" '^CONN close')" 1

# ------------------------------------------------------------------ uploads stream
echo "# uploads"
U=$(session "$np_HOST" up/load)
has "POST through netproxy: an upload location" "$U" "/v2/up/load/blobs/uploads/"
rm -f "$T/fifo"; mkfifo "$T/fifo"
: > "$np_LOG"
# chunked from a pipe: the first half goes, then we wait until the registry side has seen it
c -X PATCH -H "Content-Type: application/octet-stream" -T - -D "$T/ph" -o /dev/null "$U" < "$T/fifo" &
cpid=$!
exec 7> "$T/fifo"
head -c $((1 << 20)) "$T/big" >&7
wait_for "BODY logged while the client still holds back the rest" 20 grep -q '^BODY id=' "$np_LOG"
grep -q '^PATCH ' "$np_LOG" && bad "the PATCH ended before its body" || ok "  ... and the PATCH is not over"
tail -c +$(((1 << 20) + 1)) "$T/big" >&7
exec 7>&-
wait "$cpid" && ok "chunked PATCH went through" || bad "chunked PATCH failed"
has "  ... 202" "$(grep "^HTTP/" "$T/ph" | tail -1)" " 202"
grep -Eq "^PATCH /v2/up/load/blobs/uploads/[^ ]+ 202 action=pass in=$((2 << 20)) " "$np_LOG" &&
  ok "  ... in= counts the body" || bad "PATCH end line: $(grep PATCH "$np_LOG")"
U2=$(hdr Location "$T/ph"); case $U2 in http*) ;; *) U2=http://$np_HOST$U2 ;; esac
code=$(c -X PUT -o /dev/null -w '%{http_code}' "$U2&digest=sha256%3A${BIG#sha256:}")
[[ $U2 == *\?* ]] || code=$(c -X PUT -o /dev/null -w '%{http_code}' "$U2?digest=sha256%3A${BIG#sha256:}")
eq "PUT ?digest commits it" "$code" 201
c -o "$T/back" "$reg_URL/v2/up/load/blobs/$BIG"
eq "  ... the registry has the blob" "$(sha "$T/back")" "$BIG"

# ------------------------------------------------------------------ rules
echo "# rules"
U=$(session "$np_HOST" up/hold)
netproxy_rules np "{\"rules\": [{\"method\": \"PATCH\", \"action\": \"hold\", \"release\": \"$T/release\", \"times\": 1}]}"
: > "$np_LOG"
c -X PATCH -H "Content-Type: application/octet-stream" -H "Content-Range: 0-1048575" \
  --data-binary @<(head -c $((1 << 20)) "$T/big") -o /dev/null -w '%{http_code}' "$U" > "$T/hold.code" &
cpid=$!
wait_for "hold: HOLD logged" 20 grep -q '^HOLD id=' "$np_LOG"
sleep 0.3
eq "  ... nothing reached the registry" "$(reglib_count "$np_LOG" '^BODY ')" 0
touch "$T/release"
wait "$cpid" || true
eq "  ... released: 202" "$(cat "$T/hold.code")" 202
netproxy_rules np '{"rules": [{"method": "PATCH", "status": 405, "times": 1}]}'
U=$(session "$np_HOST" up/refused)
c -X PATCH -H "Content-Type: application/octet-stream" --data-binary @"$T/big" -o "$T/b" -w '%{http_code}' "$U" > "$T/code"
eq "status 405 on PATCH" "$(cat "$T/code")" 405
has "  ... distribution error body" "$(cat "$T/b")" UNSUPPORTED
eq "  ... the body was read: in=" "$(grep -c "^PATCH .* 405 action=status in=$((2 << 20)) " "$np_LOG")" 1
code=$(c -X PATCH -H "Content-Type: application/octet-stream" --data-binary @"$T/big" -o /dev/null -w '%{http_code}' "$U")
eq "  ... times 1: the next passes" "$code" 202
netproxy_rules np '{"rules": [{"method": "POST", "regex": "/blobs/uploads/$", "action": "pass", "headers": {"OCI-Chunk-Min-Length": 7340032}}]}'
c -X POST -D "$T/h" -o /dev/null "$NP/v2/up/minlen/blobs/uploads/"
eq "pass with headers: added to the registry's answer" "$(hdr OCI-Chunk-Min-Length "$T/h")" 7340032
has "  ... the registry's answer kept" "$(hdr Location "$T/h")" /v2/up/minlen/blobs/uploads/
netproxy_rules np '{"rules": [{"method": "PATCH", "action": "drop", "fraction": 0.25}]}'
U=$(session "$np_HOST" up/drop)
: > "$np_LOG"
rc=0; c -X PATCH -H "Content-Type: application/octet-stream" --data-binary @"$T/big" -o /dev/null "$U" || rc=$?
check "drop on an upload: curl fails ($rc)" test "$rc" != 0
grep -Eq "^PATCH .* 0 action=drop in=$(((2 << 20) / 4)) " "$np_LOG" && ok "  ... after a quarter of the body" ||
  bad "drop line: $(grep PATCH "$np_LOG")"
LAYER0=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$BASE_MAN")
L0_FILE=$T/base/blobs/sha256/${LAYER0#sha256:}
netproxy_rules np "{\"rules\": [{\"match\": \"/blobs/$LAYER0\", \"action\": \"drop\", \"times\": 1}]}"
rc=0; c -o "$T/part" "$NP/v2/lambda/python/blobs/$LAYER0" || rc=$?
eq "drop on a download: cut short (curl 18)" "$rc" 18
got=$(stat -c %s "$T/part")
eq "  ... half arrived" "$got" "$(($(stat -c %s "$L0_FILE") / 2))"
c -r "$got-" -o "$T/rest" "$NP/v2/lambda/python/blobs/$LAYER0"
cat "$T/part" "$T/rest" > "$T/whole"
eq "  ... a Range request gets the rest" "$(sha "$T/whole")" "$LAYER0"
netproxy_rules np '{"rules": [{"regex": "^/v2/$", "action": "gate", "count": 3, "timeout": 20}]}'
: > "$np_LOG"
pids=()
for i in 1 2 3; do c -o /dev/null "$NP/v2/" & pids+=($!); done
wait "${pids[@]}"   # (a bare wait would wait for the servers too)
eq "gate: three released together" "$(reglib_count "$np_LOG" 'action=gate in=')" 3
eq "  ... netproxy_inflight sees 3" "$(netproxy_inflight "$np_LOG")" 3
eq "  ... netproxy_conns sees 3" "$(netproxy_conns "$np_LOG")" 3
netproxy_rules np '{"rules": [{"regex": "^/v2/$", "action": "gate", "count": 2, "timeout": 1}]}'
c -o /dev/null "$NP/v2/"
has "gate: a lone request goes after the timeout" "$(tail -2 "$np_LOG")" "action=gate-timeout"
netproxy_rules np '{"rules": []}'
: > "$np_LOG"
c -o /dev/null "$NP/v2/"; c -o /dev/null "$NP/v2/"
eq "one after the other: never two in flight" "$(netproxy_inflight "$np_LOG")" 1
eq "  ... nor two connections" "$(netproxy_conns "$np_LOG")" 1
t=$(netproxy_t "$np_LOG" '^BEGIN ')
check "netproxy_t: the t= of a line ($t)" "$PY" -c 'import sys; float(sys.argv[1])' "$t"
eq "netproxy_t: nothing when no line matches" "$(netproxy_t "$np_LOG" '^NOPE')" ""

# ------------------------------------------------------------------ the slow network
echo "# rate and latency"
netproxy_start slow "$reg_HOST" --rate 1000000 --latency 200
S=http://$slow_HOST
c -o "$T/b" -w '%{speed_download}' "$S/v2/up/load/blobs/$BIG" > "$T/speed"
eq "download through --rate: the bytes" "$(sha "$T/b")" "$BIG"
speed=$(cat "$T/speed")
[ "${speed%.*}" -le 1500000 ] && ok "  ... at most 1.5x the rate: $speed B/s" || bad "download rate: $speed B/s"
U=$(session "$slow_HOST" up/slow)
c -X PATCH -H "Content-Type: application/octet-stream" --data-binary @"$T/big" -o /dev/null \
  -w '%{speed_upload}' "$U" > "$T/speed"
speed=$(cat "$T/speed")
[ "${speed%.*}" -le 1500000 ] && ok "upload through --rate: at most 1.5x the rate: $speed B/s" || bad "upload rate: $speed B/s"
t=$(c -o /dev/null -w '%{time_total}' "$S/v2/")
at_least "--latency 200: a new connection and its answer take 0.4 s" "$t" 0.4
t=$(c -o /dev/null -o /dev/null -w '%{time_total}\n' "$S/v2/" "$S/v2/" | tail -1)
at_least "  ... a second request on the same connection 0.2 s" "$t" 0.2

# ------------------------------------------------------------------ lifecycle
netproxy_stop slow
eq "netproxy_stop: that one gone" "$(c -o /dev/null -w '%{http_code}' "$S/v2/" || true)" 000
eq "  ... the other still there" "$(c -o /dev/null -w '%{http_code}' "$NP/v2/")" 200
registry_stop reg
eq "registry_stop: gone" "$(c -o /dev/null -w '%{http_code}' "$reg_URL/v2/" || true)" 000
eq "  ... the proxy says so (502)" "$(c -o /dev/null -w '%{http_code}' "$NP/v2/")" 502
stop_all
eq "stop_all: netproxy gone" "$(c -o /dev/null -w '%{http_code}' "$NP/v2/" || true)" 000

echo "netproxy selftest took $((SECONDS - START)) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
