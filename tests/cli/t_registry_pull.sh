#!/usr/bin/env bash
# Pulling from a real registry (Debian's docker-registry on 127.0.0.1, seeded
# by skopeo): ocilambda pull, assemble --base HOST/REPO:TAG, the blob cache,
# platform selection from a multi-arch index.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
# A pass-through proxy in front, whose log counts what we ask for.
faultproxy_start fp "$reg_HOST"
REF=$fp_HOST/lambda/python:3.8
blob_gets() { reglib_count "$fp_LOG" '^GET /v2/lambda/python/blobs/'; }
manifest_gets() { reglib_count "$fp_LOG" '^GET /v2/lambda/python/manifests/'; }
requests() { reglib_count "$fp_LOG" '^[A-Z]+ /v2/'; }

d=$($OCILAMBDA pull "$REF" --output "oci:$T/pulled" 2>"$T/pull.err")
grep -q "using plain http for $fp_HOST" "$T/pull.err" || fail "plain http is said out loud"
base_digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$reg_HOST/lambda/python:3.8")
[ "$d" = "$base_digest" ] || fail "pulled manifest $d is the registry's $base_digest"
[ "$(sha256_of <(skopeo inspect --raw "oci:$T/pulled:3.8"))" = "$d" ] || fail "skopeo reads the layout"
skopeo inspect "oci:$T/pulled:3.8" | json /dev/stdin 'j["Layers"]' >"$T/l1"
skopeo inspect --tls-verify=false "docker://$reg_HOST/lambda/python:3.8" | json /dev/stdin 'j["Layers"]' >"$T/l2"
cmp -s "$T/l1" "$T/l2" || fail "same layers as the registry"
ok "pull into oci: (tag from the ref) agrees with skopeo"

n_blobs=$(blob_gets)
[ "$n_blobs" -ge 4 ] || fail "first pull fetched config and layers ($n_blobs)"
build() {
	$OCILAMBDA assemble --conda-prefix "$P" --code "$T/code" --handler example.lambda_handler \
		--base "$@"
}
a1=$(build "$REF" --output "oci:$T/from-registry" 2>/dev/null)
[ "$(blob_gets)" = "$n_blobs" ] || fail "second use of the base downloaded blobs again"
a2=$(build "oci:$T/pulled:3.8" --output "oci:$T/from-layout")
[ "$a1" = "$a2" ] || fail "assemble from the registry ($a1) and from the pulled layout ($a2)"
a3=$(build "oci:$B:3.8" --output "oci:$T/from-fixture")
[ "$a1" = "$a3" ] || fail "and from the original layout"
L0=$(skopeo inspect --raw "oci:$T/pulled:3.8" | json /dev/stdin 'j["layers"][0]["digest"]')
[ "$(stat -c %i "$T/from-registry/blobs/sha256/${L0#sha256:}")" = \
	"$(stat -c %i "$T/cache/ocilambda/blobs/sha256/${L0#sha256:}")" ] ||
	fail "base layer hardlinked from the cache, not copied"
ok "assemble --base HOST/REPO:TAG = assemble from the pulled layout; blobs come from the cache (hardlinked)"

before=$(requests)
a4=$(build "docker://$fp_HOST/lambda/python@$d" --output "oci:$T/by-digest" 2>/dev/null)
[ "$a4" = "$a1" ] || fail "digest ref, same image"
[ "$(requests)" = "$before" ] || fail "a cached digest ref still talked to the registry"
before_m=$(manifest_gets)
build "$REF" --output "oci:$T/again" >/dev/null 2>&1
[ "$(manifest_gets)" = $((before_m + 1)) ] || fail "a tag ref asks for the manifest once"
ok "cache: a digest ref needs no network, a tag ref only its manifest"

# Two builds sharing an empty cache at the same time.
export XDG_CACHE_HOME=$T/cache2
build "$REF" --output "oci:$T/c1" >"$T/c1.out" 2>"$T/c1.err" &
p1=$!
build "$REF" --output "oci:$T/c2" >"$T/c2.out" 2>"$T/c2.err" &
p2=$!
wait $p1 || fail "concurrent build 1: $(cat "$T/c1.err")"
wait $p2 || fail "concurrent build 2: $(cat "$T/c2.err")"
[ "$(cat "$T/c1.out")" = "$a1" ] && [ "$(cat "$T/c2.out")" = "$a1" ] || fail "concurrent digests"
no_litter "$T/cache2"
ok "two concurrent builds sharing a cache both succeed"

# Multi-arch index with an attestation manifest.
multiarch_seed reg multi:1 --amd64 "oci:$B:3.8"
m=$($OCILAMBDA pull "$reg_HOST/multi:1" --output "oci:$T/amd" 2>/dev/null)
[ "$m" = "$reg_AMD64_DIGEST" ] || fail "default platform linux/amd64: $m"
m=$($OCILAMBDA pull --platform linux/arm64 "$reg_HOST/multi:1" --output "oci:$T/arm:x" 2>/dev/null)
[ "$m" = "$reg_ARM64_DIGEST" ] || fail "--platform linux/arm64: $m"
[ "$(skopeo inspect --config oci:"$T"/arm:x | json /dev/stdin 'j["architecture"]')" = arm64 ] ||
	fail "arm64 config"
expect_fail 2 "no image for platform linux/s390x (available: linux/amd64, linux/arm64/v8)" \
	$OCILAMBDA pull --platform linux/s390x "$reg_HOST/multi:1" --output "oci:$T/none"
grep -q unknown "$T/stderr" && fail "the attestation manifest is not offered as a platform"
ok "index: --platform selects, attestations are skipped, no match lists what exists"

# A Docker v2s2 image: pulled into the layout as OCI (same blobs), and the
# same digest either way.
registry_seed reg "oci:$B:3.8" lambda/python:v2s2 --format v2s2
skopeo inspect --tls-verify=false --raw "docker://$reg_HOST/lambda/python:v2s2" >"$T/v2s2.json"
[ "$(json "$T/v2s2.json" 'j["mediaType"]')" = application/vnd.docker.distribution.manifest.v2+json ] ||
	fail "seeded as Docker v2s2"
$OCILAMBDA pull "$reg_HOST/lambda/python:v2s2" --output "oci:$T/v2" >/dev/null 2>&1
skopeo inspect "oci:$T/v2:v2s2" >/dev/null || fail "skopeo reads the converted layout"
v1=$(build "$reg_HOST/lambda/python:v2s2" --output "oci:$T/v2-direct" 2>/dev/null)
v2=$(build "oci:$T/v2:v2s2" --output "oci:$T/v2-layout" 2>/dev/null)
[ "$v1" = "$v2" ] || fail "v2s2: assemble from the registry ($v1) and from the pulled layout ($v2)"
ok "Docker v2s2 manifests: pulled as OCI, same result as straight from the registry"

# Ctrl-C in the middle of a download: no partial blob in the cache, no
# output; the next pull starts cleanly.
export XDG_CACHE_HOME=$T/cache3
L1=$(json "$T/v2s2.json" 'j["layers"][1]["digest"]')
faultproxy_rules fp "{\"rules\": [{\"match\": \"/blobs/$L1\", \"action\": \"stall\", \"stall\": 20}]}"
$OCILAMBDA pull "$REF" --output "oci:$T/int" >/dev/null 2>"$T/int.err" &
pid=$!
blob_requested() { [ "$(reglib_count "$fp_LOG" "^GET /v2/lambda/python/blobs/$L1 ")" -ge 1 ]; }
wait_until 60 "the pull to request $L1" blob_requested
sleep 0.5
kill -INT $pid
rc=0
wait $pid || rc=$?
[ $rc = 130 ] || fail "interrupted pull: exit $rc ($(cat "$T/int.err"))"
[ ! -e "$T/int" ] || fail "output written"
[ ! -e "$T/cache3/ocilambda/blobs/sha256/${L1#sha256:}" ] || fail "partial blob cached"
no_litter "$T/cache3"
no_litter "$T"
faultproxy_rules fp '{"rules": []}'
d2=$($OCILAMBDA pull "$REF" --output "oci:$T/int" 2>/dev/null)
[ "$d2" = "$d" ] || fail "pull after Ctrl-C: $d2"
ok "Ctrl-C mid-download: exit 130, nothing partial cached or written; the next pull works"

expect_fail 2 "MANIFEST_UNKNOWN" $OCILAMBDA pull "$reg_HOST/lambda/python:9.9" --output "oci:$T/x"
expect_fail 1 "pull reads from a registry" $OCILAMBDA pull "oci:$B:3.8" --output "oci:$T/x"
expect_fail 1 "--output is required" $OCILAMBDA pull "$REF"
[ ! -e "$T/x" ] || fail "output left behind"
# A registry nobody listens on: which host failed, and the way out.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_fail 3 "127.0.0.1:$port" build "127.0.0.1:$port/lambda/python:3.8" --output "oci:$T/x"
expect_fail 3 "ocilambda pull" build "127.0.0.1:$port/lambda/python:3.8" --retry 0 --output "oci:$T/x"
[ ! -e "$T/x" ] || fail "output left behind"
no_litter "$T"
ok "missing tag (2), wrong transport (1), unreachable registry (3, with the air-gapped hint)"
done_testing
