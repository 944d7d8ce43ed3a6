#!/usr/bin/env bash
# A hostile registry (faultproxy.py in front of a real docker-registry, plain
# http and https): malformed WWW-Authenticate, endless redirects, a redirect
# from https to http, a token realm over plain http on another host, a body
# longer than the descriptor, a wrong Content-Length, a slow-loris, a 5xx
# storm. Each is a clear exit-3 error within the retry and time bounds
# (--retry, --timeout), and nothing reaches the cache or the output.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache

B=$FIXTURES/base38
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
faultproxy_start fp "$reg_HOST"
faultproxy_start fps "$reg_HOST" --tls
skopeo inspect --raw "oci:$B:3.8" >"$T/m.json"
L1=$(json "$T/m.json" 'j["layers"][1]["digest"]')
SIZE1=$(json "$T/m.json" 'j["layers"][1]["size"]')

pull() { $OCILAMBDA pull "$@" "$fp_HOST/lambda/python:3.8" --output "oci:$T/out"; }
pulls() { $OCILAMBDA pull --ca-file "$fps_CA" "$@" "$fps_HOST/lambda/python:3.8" --output "oci:$T/out"; }
nothing_kept() {
	[ ! -e "$T/out" ] || fail "$1: output written"
	[ -z "$(find "$T/cache" -type f -name "${L1#sha256:}" 2>/dev/null)" ] || fail "$1: layer cached"
	no_litter "$T"
	rm -rf "$T/cache"
}
rules() { faultproxy_rules fp "$1"; }
srules() { faultproxy_rules fps "$1"; }
challenge() { # VALUE: every request answers 401 with this WWW-Authenticate
	local v
	v=$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1")
	rules "{\"rules\": [{\"match\": \"/v2/\", \"status\": 401, \"headers\": {\"WWW-Authenticate\": $v}}]}"
}

# ---- WWW-Authenticate ----
challenge 'Bearer realm="https://127.0.0.1:1/token'
expect_fail 3 "malformed WWW-Authenticate header: unterminated quoted string" pull
challenge 'Bearer realm="x", realm="y"'
expect_fail 3 "malformed WWW-Authenticate header: a parameter appears twice" pull
challenge 'Bearer =oops'
expect_fail 3 "malformed WWW-Authenticate header: expected a parameter name" pull
challenge "Bearer realm=\"x\",service=\"$(head -c 9000 /dev/zero | tr '\0' a)\""
expect_fail 3 "response header longer than 8192 bytes" pull
challenge 'Bearer service="no.realm"'
expect_fail 3 "bearer challenge without a realm" pull
challenge 'Bearer realm="file:///etc/passwd"'
expect_fail 3 "token realm file:///etc/passwd is not an http(s) URL" pull
nothing_kept "malformed challenges"
ok "malformed WWW-Authenticate values: exit 3 naming what is wrong"

# A registry on https whose token realm is plain http on another host: no
# token (and no credentials) is asked for over plain http.
srules '{"rules": [{"match": "/v2/", "status": 401, "headers": {"WWW-Authenticate": "Bearer realm=\"http://127.0.0.2:9/token\",service=\"x\""}}]}'
expect_fail 3 "refusing to get a token over plain http from http://127.0.0.2:9/token" pulls
nothing_kept "http realm"
ok "https registry with a plain-http token realm elsewhere: refused"

# ---- redirects ----
rules '{"rules": [{"match": "/manifests/", "status": 302, "headers": {"Location": "/v2/lambda/python/manifests/3.8"}}]}'
expect_fail 3 "more than 5 redirects" pull
[ "$(reglib_count "$fp_LOG" "^GET /v2/lambda/python/manifests/3.8 302")" = 6 ] ||
	fail "redirects followed: $(grep -c manifests "$fp_LOG")"
srules "{\"rules\": [{\"match\": \"/blobs/$L1\", \"status\": 307, \"headers\": {\"Location\": \"http://$reg_HOST/v2/lambda/python/blobs/$L1\"}}]}"
expect_fail 3 "refusing a redirect from https to http://$reg_HOST/v2/lambda/python/blobs/$L1" pulls
nothing_kept "redirects"
ok "endless redirects stop after 5; a redirect from https to http is refused"

# ---- bodies that do not match ----
rules "{\"rules\": [{\"match\": \"/blobs/$L1\", \"action\": \"extra_bytes\", \"extra\": 4096}]}"
expect_fail 3 "blob $L1: server sends $((SIZE1 + 4096)) bytes, more than the expected $SIZE1" pull
nothing_kept "extra bytes"
rules "{\"rules\": [{\"match\": \"/blobs/$L1\", \"action\": \"wrong_length\", \"delta\": -1000}]}"
expect_fail 3 "blob $L1: size mismatch: expected $SIZE1 bytes, got $((SIZE1 - 1000))" pull --retry 1
nothing_kept "short Content-Length"
rules "{\"rules\": [{\"match\": \"/blobs/$L1\", \"action\": \"wrong_length\", \"delta\": 1000}]}"
expect_fail 3 "blob $L1: server sends $((SIZE1 + 1000)) bytes, more than the expected $SIZE1" pull --retry 1
nothing_kept "long Content-Length"
ok "a body longer than the descriptor, a Content-Length too short or too long: refused, nothing cached"

# ---- slow-loris: one byte a second, bounded by --timeout ----
rules "{\"rules\": [{\"match\": \"/blobs/$L1\", \"action\": \"slowloris\", \"interval\": 0.5}]}"
# the message depends on how the 4 s are spent (one attempt, or two)
# At a byte every 0.5 s the blob would take SIZE1/2 s; README promises the
# download is given up at --timeout, retries included. The bound allows for
# a loaded machine (the manifest and config requests come first) and is still
# far below what the whole blob would take.
[ $((SIZE1 / 2)) -gt 120 ] || fail "the slow-loris blob is too small to tell: $SIZE1 bytes"
t0=$(date +%s%N)
expect_fail 3 "timed out" pull --timeout 4 --retry 1
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 20000 ] || fail "slow-loris given up after $ms ms, with --timeout 4"
nothing_kept "slow-loris"
ok "slow-loris: given up at --timeout (after $ms ms with --timeout 4)"

# ---- 5xx storm: bounded retries ----
: >"$fp_LOG"
rules '{"rules": [{"match": "/manifests/", "status": 500}]}'
expect_fail 3 "HTTP 500" pull --retry 2
[ "$(reglib_count "$fp_LOG" "^GET /v2/lambda/python/manifests/3.8 500")" = 3 ] ||
	fail "retries on a 5xx storm: $(cat "$fp_LOG")"
nothing_kept "5xx storm"
ok "5xx storm: --retry 2 means 3 attempts, then exit 3"

# After all that the same registry serves a good pull.
rules '{"rules": []}'
pull >/dev/null 2>&1 || fail "clean pull after the faults"
ok "a clean pull afterwards"
done_testing
