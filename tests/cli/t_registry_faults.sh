#!/usr/bin/env bash
# A registry that misbehaves (a fault-injecting proxy in front of a real
# docker-registry): wrong bytes, a connection dropped mid-blob, 429 with
# Retry-After, 5xx, an oversized manifest.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache

B=$FIXTURES/base38
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
want=$reg_LAST_DIGEST
faultproxy_start fp "$reg_HOST"
REF=$fp_HOST/lambda/python:3.8
skopeo inspect --raw "oci:$B:3.8" >"$T/m.json"
L1=$(json "$T/m.json" 'j["layers"][1]["digest"]')
pull() { $OCILAMBDA pull "$@" "$REF" --output "oci:$T/out"; }
reset() { rm -rf "$T/cache" "$T/out"; }

faultproxy_rules fp "{\"rules\": [{\"match\": \"/blobs/$L1\", \"action\": \"corrupt\"}]}"
expect_fail 3 "$L1: digest mismatch" pull
[ ! -e "$T/cache/ocilambda/blobs/sha256/${L1#sha256:}" ] || fail "corrupt blob cached"
[ ! -e "$T/out" ] || fail "output written"
no_litter "$T"
ok "wrong bytes for a layer: refused, nothing cached, no output"

reset
faultproxy_rules fp "{\"rules\": [{\"match\": \"/blobs/$L1\", \"action\": \"drop_once\"}]}"
d=$(pull 2>"$T/err") || fail "dropped connection not recovered: $(cat "$T/err")"
[ "$d" = "$want" ] || fail "digest after resume"
[ "$(reglib_count "$fp_LOG" "^GET /v2/lambda/python/blobs/$L1 .*range=bytes=[1-9]")" -ge 1 ] ||
	fail "resumed with a Range request: $(grep "$L1" "$fp_LOG")"
ok "connection dropped mid-blob: resumed with Range, verified"

reset
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "status": 429, "retry_after": 1, "times": 1}]}'
d=$(pull 2>"$T/err") || fail "429 not retried: $(cat "$T/err")"
[ "$d" = "$want" ] || fail "digest after 429"
grep -q "429" "$T/err" || fail "the retry is said: $(cat "$T/err")"
ok "429 with Retry-After: waited and retried"

reset
faultproxy_rules fp '{"rules": [{"match": "/blobs/", "status": 503, "times": 2}]}'
d=$(pull 2>"$T/err") || fail "503 not retried: $(cat "$T/err")"
[ "$d" = "$want" ] || fail "digest after 503"
reset
faultproxy_rules fp '{"rules": [{"match": "/blobs/", "status": 503, "times": 5}]}'
expect_fail 3 "503" pull --retry 1
[ ! -e "$T/out" ] || fail "output written"
ok "5xx: retried with backoff; --retry bounds it (exit 3)"

reset
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "action": "oversize_manifest"}]}'
expect_fail 3 "larger than" pull
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "action": "oversize_manifest", "chunked": true}]}'
expect_fail 3 "larger than" pull
[ ! -e "$T/out" ] || fail "output written"
no_litter "$T"
ok "manifest over the 4 MiB cap: refused (with and without Content-Length)"
done_testing
