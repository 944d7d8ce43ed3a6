#!/bin/bash
# tests/registry/selftest.sh -- checks lib.sh, tokenfront.py and faultproxy.py with curl,
# skopeo and python only (never ocilambda). Prints "N passed, M failed"; exit 1 on failure.
# KEEP=1 keeps the temp dir.
# shellcheck disable=SC2154  # the NAME_* variables come from lib.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/registry-selftest.XXXXXX")
trap 'if [ -n "${KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi' EXIT
. "$HERE/lib.sh"
PY=$REGLIB_PY
START=$SECONDS

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
# check DESC CMD...: CMD's output goes to $T/check.log
check() {
  local desc=$1; shift
  if "$@" >> "$T/check.log" 2>&1; then ok "$desc"; else bad "$desc"; echo "     (command: $*)"; fi
}
# eq DESC GOT WANT
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi; }
# has DESC HAYSTACK NEEDLE (fixed string)
has() { if [[ $2 == *"$3"* ]]; then ok "$1"; else bad "$1: '$3' not in: $(head -c 600 <<< "$2")"; fi; }
c() { curl -s --noproxy '*' --max-time 20 "$@"; }
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
hdr() { grep -i "^$1:" "$2" | tail -1 | cut -d' ' -f2- | tr -d '\r'; }   # NAME HEADERFILE
OCI_M=application/vnd.oci.image.manifest.v1+json
OCI_I=application/vnd.oci.image.index.v1+json
ACCEPT="Accept: $OCI_M, $OCI_I, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

# ------------------------------------------------------------------ fixtures
"$ROOT/testdata/mk-base.sh" "$T/base38" 3.8 3.8 names
BASE_DIGEST=$("$PY" -c 'import json,sys; print([m["digest"] for m in json.load(open(sys.argv[1]))["manifests"]][0])' "$T/base38/index.json")
BASE_MAN=$T/base38/blobs/sha256/${BASE_DIGEST#sha256:}
LAYER0=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$BASE_MAN")
LAYER0_FILE=$T/base38/blobs/sha256/${LAYER0#sha256:}
LAYER0_SIZE=$(stat -c %s "$LAYER0_FILE")

# ------------------------------------------------------------------ plain registry
echo "# plain registry"
registry_start reg
has "reg_HOST is 127.0.0.1:PORT" "$reg_HOST" "127.0.0.1:"
check "/v2/ answers 200" c -f "$reg_URL/v2/"
registry_seed reg "oci:$T/base38:3.8" lambda/python:3.8
eq "registry_seed keeps the layout's manifest digest" "$reg_LAST_DIGEST" "$BASE_DIGEST"
out=$(skopeo inspect --tls-verify=false "docker://$reg_HOST/lambda/python:3.8" 2>&1 || true)
has "skopeo inspect (http) sees the image" "$out" '"Architecture": "amd64"'
has "skopeo inspect shows the lambda env" "$out" "LAMBDA_TASK_ROOT=/var/task"
c -D "$T/h" -o "$T/m" -H "$ACCEPT" "$reg_URL/v2/lambda/python/manifests/3.8"
eq "manifest GET: Content-Type" "$(hdr Content-Type "$T/h")" "$OCI_M"
eq "manifest GET: Docker-Content-Digest" "$(hdr Docker-Content-Digest "$T/h")" "$BASE_DIGEST"
eq "manifest GET: bytes match digest" "$(sha "$T/m")" "$BASE_DIGEST"
code=$(c -o "$T/b" -w '%{http_code}' "$reg_URL/v2/lambda/python/manifests/3.8")
eq "manifest GET without OCI Accept: 404 (distribution 2.8 quirk)" "$code" 404
has "  ... MANIFEST_UNKNOWN body" "$(cat "$T/b")" "accept header does not support OCI manifests"
code=$(c -o "$T/b" -w '%{http_code}' -r 10-19 "$reg_URL/v2/lambda/python/blobs/$LAYER0")
eq "blob GET with Range: 206" "$code" 206
eq "  ... 10 bytes" "$(stat -c %s "$T/b")" 10
# the blob counters read the registry's own access log
eq "reglib_blob_count: seeding uploaded the layers and the config" \
   "$(reglib_blob_count "$reg_LOG" upload lambda/python)" 4
check "  ... skopeo copy to another repository mounts" skopeo copy --src-tls-verify=false \
   --dest-tls-verify=false "docker://$reg_HOST/lambda/python:3.8" "docker://$reg_HOST/other/fn:x"
eq "  ... three layers mounted into other/fn" "$(reglib_blob_count "$reg_LOG" mount other/fn)" 3
eq "  ... the config downloaded once and uploaded there" \
   "$(reglib_blob_count "$reg_LOG" upload other/fn)" 1
eq "reglib_blobs: per digest" "$(reglib_blobs "$reg_LOG" mount other/fn | grep -c " 1$")" 3
has "  ... the first layer among them" "$(reglib_blobs "$reg_LOG" mount)" "$LAYER0 1"
dl=$(reglib_blob_count "$reg_LOG" download lambda/python)
check "  ... skopeo copy to a layout" skopeo copy --src-tls-verify=false \
   "docker://$reg_HOST/other/fn:x" "oci:$T/pulled:x"
eq "  ... downloads counted where they happened" \
   "$(reglib_blob_count "$reg_LOG" download other/fn)" 4
eq "  ... none more from lambda/python" "$(reglib_blob_count "$reg_LOG" download lambda/python)" "$dl"
has "  ... a download line gives the bytes" "$(reglib_blob_log "$reg_LOG")" \
   "download other/fn $LAYER0 $LAYER0_SIZE"

# ------------------------------------------------------------------ TLS + htpasswd
echo "# TLS + htpasswd registry"
registry_start sec --tls --htpasswd alice:s3cret
check "NAME_CA exists" test -s "$sec_CA"
check "NAME_CERTDIR holds ca.crt" test -s "$sec_CERTDIR/ca.crt"
check "NAME_CERTSD holds HOST:PORT/ca.crt" test -s "$sec_CERTSD/$sec_HOST/ca.crt"
registry_seed sec "oci:$T/base38:3.8" lambda/python:3.8
eq "seeded over TLS with creds" "$sec_LAST_DIGEST" "$BASE_DIGEST"
check "skopeo inspect --cert-dir --creds" skopeo inspect --cert-dir "$sec_CERTDIR" --creds alice:s3cret "docker://$sec_HOST/lambda/python:3.8"
check "skopeo inspect with the certs.d/HOST dir" skopeo inspect --cert-dir "$sec_CERTSD/$sec_HOST" --creds alice:s3cret "docker://$sec_HOST/lambda/python:3.8"
check "skopeo refuses bad creds" bash -c '! skopeo inspect --cert-dir "$1" --creds alice:wrong "docker://$2/lambda/python:3.8"' _ "$sec_CERTDIR" "$sec_HOST"
check "skopeo refuses the self-signed cert without the CA" bash -c '! skopeo inspect --creds alice:s3cret "docker://$1/lambda/python:3.8"' _ "$sec_HOST"
c -D "$T/h" -o /dev/null --cacert "$sec_CA" "https://$sec_HOST/v2/"
eq "curl without creds: Basic challenge" "$(hdr WWW-Authenticate "$T/h")" 'Basic realm="sec-realm"'
check "curl with creds: 200" c -f --cacert "$sec_CA" -u alice:s3cret "https://$sec_HOST/v2/"
authfile_write "$T/auth.json" "$sec_HOST" alice s3cret
check "authfile_write + skopeo --authfile" skopeo inspect --cert-dir "$sec_CERTDIR" --authfile "$T/auth.json" "docker://$sec_HOST/lambda/python:3.8"
cred_helper_install "$T/bin" testhelper alice s3cret "$sec_HOST"
out=$(printf '%s' "$sec_HOST" | "$T/bin/docker-credential-testhelper" get)
eq "cred helper get HOST" "$out" "{\"ServerURL\": \"$sec_HOST\", \"Username\": \"alice\", \"Secret\": \"s3cret\"}"
out=$(printf 'https://%s\n' "$sec_HOST" | "$T/bin/docker-credential-testhelper" get)
has "cred helper get https://HOST" "$out" '"Secret": "s3cret"'
rc=0; out=$(printf 'other.example' | "$T/bin/docker-credential-testhelper" get) || rc=$?
eq "cred helper: other host exits 1" "$rc" 1
eq "cred helper: not-found message" "$out" "credentials not found in native keychain"
printf '{"credHelpers": {"%s": "testhelper"}}\n' "$sec_HOST" > "$T/helper-auth.json"
check "skopeo uses the cred helper via credHelpers" env PATH="$T/bin:$PATH" skopeo inspect --cert-dir "$sec_CERTDIR" --authfile "$T/helper-auth.json" "docker://$sec_HOST/lambda/python:3.8"
check "cred helper log shows skopeo's get" grep -q "^get $sec_HOST" "$T/bin/docker-credential-testhelper.log"

# ------------------------------------------------------------------ tokenfront
echo "# tokenfront (bearer tokens + blob redirects)"
tokenfront_start tf "$reg_HOST"
TF=http://$tf_HOST
c -D "$T/h" -o "$T/b" "$TF/v2/"
eq "/v2/ challenge (no scope)" "$(hdr WWW-Authenticate "$T/h")" "Bearer realm=\"$TF/token/\",service=\"tf.test\""
code=$(c -D "$T/h" -o "$T/b" -w '%{http_code}' -H "$ACCEPT" "$TF/v2/lambda/python/manifests/3.8")
eq "manifest without token: 401" "$code" 401
eq "  ... challenge with repository scope" "$(hdr WWW-Authenticate "$T/h")" \
   "Bearer realm=\"$TF/token/\",service=\"tf.test\",scope=\"repository:lambda/python:pull\""
has "  ... UNAUTHORIZED body" "$(cat "$T/b")" '"code": "UNAUTHORIZED"'
c -o "$T/tok" "$TF/token/?service=tf.test&scope=repository:lambda/python:pull"
TOKEN=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["token"] == d["access_token"]; print(d["token"])' "$T/tok" || true)
has "token endpoint gives token == access_token" "$TOKEN" "tf."
eq "token endpoint: wrong service -> 400" "$(c -o /dev/null -w '%{http_code}' "$TF/token/?service=evil&scope=repository:lambda/python:pull")" 400
eq "token endpoint: bad scope -> 400" "$(c -o /dev/null -w '%{http_code}' "$TF/token/?service=tf.test&scope=repo:x")" 400
code=$(c -D "$T/h" -o "$T/m" -w '%{http_code}' -H "$ACCEPT" -H "Authorization: Bearer $TOKEN" "$TF/v2/lambda/python/manifests/3.8")
eq "authorized manifest GET: 200" "$code" 200
eq "  ... bytes identical (digest)" "$(sha "$T/m")" "$BASE_DIGEST"
eq "  ... Content-Type kept" "$(hdr Content-Type "$T/h")" "$OCI_M"
eq "  ... Docker-Content-Digest kept" "$(hdr Docker-Content-Digest "$T/h")" "$BASE_DIGEST"
code=$(c -I -D "$T/h" -o /dev/null -w '%{http_code}' -H "$ACCEPT" -H "Authorization: Bearer $TOKEN" "$TF/v2/lambda/python/manifests/3.8")
eq "authorized manifest HEAD: 200" "$code" 200
eq "  ... Content-Length of the manifest" "$(hdr Content-Length "$T/h")" "$(stat -c %s "$BASE_MAN")"
c -D "$T/h" -o /dev/null -H "Authorization: Bearer $TOKEN" "$TF/v2/lambda/multi/manifests/1"
has "token for another repo: insufficient_scope" "$(hdr WWW-Authenticate "$T/h")" \
    'scope="repository:lambda/multi:pull",error="insufficient_scope"'
c -D "$T/h" -o /dev/null -H "Authorization: Bearer nonsense" "$TF/v2/lambda/python/manifests/3.8"
has "unknown token: invalid_token" "$(hdr WWW-Authenticate "$T/h")" 'error="invalid_token"'
code=$(c -D "$T/h" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$TF/v2/lambda/python/blobs/$LAYER0")
eq "blob GET: 307" "$code" 307
LOC=$(hdr Location "$T/h")
has "  ... Location on the other loopback host" "$LOC" "http://$tf_BLOBHOST/blob/lambda/python/$LAYER0?"
has "  ... tf_BLOBHOST is 127.0.0.2" "$tf_BLOBHOST" "127.0.0.2:"
c -o "$T/b" "$LOC"
eq "blob host serves the blob without auth" "$(sha "$T/b")" "$LAYER0"
eq "blob host honours Range" "$(c -r 5- -o /dev/null -w '%{http_code} %{size_download}' "$LOC")" "206 $((LAYER0_SIZE - 5))"
eq "blob host log has no Authorization so far" "$(reglib_count "$tf_BLOBHOST_LOG" '"[Aa]uthorization"')" 0
eq "main log records the 307 with auth=bearer" \
   "$(reglib_count "$tf_LOG" "^GET /v2/lambda/python/blobs/$LAYER0 307 auth=bearer")" 1
: > "$tf_BLOBHOST_LOG"; : > "$tf_LOG"
rm -rf "$T/pulled"
check "skopeo copy through tokenfront (does the bearer flow itself)" \
  skopeo --insecure-policy copy --src-tls-verify=false "docker://$tf_HOST/lambda/python:3.8" "oci:$T/pulled:x"
check "skopeo inspect through tokenfront" skopeo inspect --tls-verify=false "docker://$tf_HOST/lambda/python:3.8"
n=$(reglib_count "$tf_BLOBHOST_LOG" '"method": "GET"')
check "skopeo fetched blobs from the blob host ($n GETs)" test "$n" -ge 4
eq "skopeo sent no Authorization to the blob host" "$(reglib_count "$tf_BLOBHOST_LOG" '"[Aa]uthorization"')" 0
check "skopeo fetched a token" grep -q '^GET /token/?.*service=tf.test.* 200 auth=none' "$tf_LOG"
eq "blob host answers 400 when Authorization arrives (S3 style)" \
   "$(c -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer x' "$LOC")" 400
check "  ... and logs it" grep -q '"auth_present": true' "$tf_BLOBHOST_LOG"
eq "blob host: bad signature -> 403" "$(c -o /dev/null -w '%{http_code}' "${LOC%%\?*}?X-Amz-Signature=00")" 403
code=$(c -o "$T/b" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$TF/v2/lambda/python/blobs/sha256:$(printf '0%.0s' $(seq 64))")
eq "unknown blob: upstream 404 proxied, no redirect" "$code" 404
has "  ... BLOB_UNKNOWN body" "$(cat "$T/b")" BLOB_UNKNOWN
eq "push methods with a pull token: 403" \
   "$(c -X POST -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$TF/v2/lambda/python/blobs/uploads/")" 403
tokenfront_start tfc "$sec_HOST" --token-creds bob:pw
TFC=http://$tfc_HOST
eq "token creds: anonymous token request -> 401" \
   "$(c -o /dev/null -w '%{http_code}' "$TFC/token/?service=tfc.test&scope=repository:lambda/python:pull")" 401
eq "token creds: with Basic -> 200" \
   "$(c -u bob:pw -o /dev/null -w '%{http_code}' "$TFC/token/?service=tfc.test&scope=repository:lambda/python:pull")" 200
check "skopeo --creds through tokenfront (upstream: TLS + htpasswd)" \
  skopeo inspect --tls-verify=false --creds bob:pw "docker://$tfc_HOST/lambda/python:3.8"
check "skopeo without creds fails there" bash -c '! skopeo inspect --tls-verify=false "docker://$1/lambda/python:3.8"' _ "$tfc_HOST"
check "token request carried Basic auth" grep -q '^GET /token/.* 200 auth=basic' "$tfc_LOG"

# ------------------------------------------------------------------ faultproxy
echo "# faultproxy"
faultproxy_start fp "$reg_HOST"
FP=http://$fp_HOST
check "pass-through manifest" bash -c 'curl -sf --noproxy "*" -H "$1" "$2" | cmp - "$3"' _ "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8" "$BASE_MAN"
check "skopeo inspect through faultproxy" skopeo inspect --tls-verify=false "docker://$fp_HOST/lambda/python:3.8"
BLOB=$FP/v2/lambda/python/blobs/$LAYER0
faultproxy_rules fp "{\"rules\": [{\"match\": \"/blobs/$LAYER0\", \"action\": \"corrupt\"}]}"
c -o "$T/b" "$BLOB"
eq "corrupt: same length" "$(stat -c %s "$T/b")" "$LAYER0_SIZE"
check "corrupt: different bytes" bash -c '! cmp -s "$1" "$2"' _ "$T/b" "$LAYER0_FILE"
eq "corrupt: exactly one byte differs" "$(cmp -l "$T/b" "$LAYER0_FILE" | wc -l)" 1
faultproxy_rules fp "{\"rules\": [{\"match\": \"/blobs/$LAYER0\", \"action\": \"drop_once\"}]}"
: > "$fp_LOG"
rc=0; c -o "$T/part" "$BLOB" || rc=$?
eq "drop_once: first GET is cut short (curl 18)" "$rc" 18
got=$(stat -c %s "$T/part")
eq "  ... half the body arrived" "$got" "$((LAYER0_SIZE / 2))"
code=$(c -r "$got-" -o "$T/rest" -w '%{http_code}' "$BLOB")
eq "drop_once: resumed GET with Range -> 206" "$code" 206
cat "$T/part" "$T/rest" > "$T/b"
eq "  ... reassembled blob verifies" "$(sha "$T/b")" "$LAYER0"
eq "log: 2 GETs of that blob" "$(reglib_count "$fp_LOG" "^GET /v2/lambda/python/blobs/$LAYER0 ")" 2
eq "log: the Range is recorded" "$(reglib_count "$fp_LOG" "range=bytes=$got- action=pass")" 1
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "status": 429, "retry_after": 1, "times": 1}]}'
c -D "$T/h" -o "$T/b" -H "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8"
has "429: status" "$(head -1 "$T/h")" " 429"
eq "429: Retry-After" "$(hdr Retry-After "$T/h")" 1
has "429: TOOMANYREQUESTS body" "$(cat "$T/b")" TOOMANYREQUESTS
eq "429 times 1: next request passes" "$(c -o /dev/null -w '%{http_code}' -H "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8")" 200
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "status": 503, "times": 2}]}'
codes=""
for i in 1 2 3; do codes+="$(c -o /dev/null -w '%{http_code}' -H "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8") "; done
eq "503 times 2" "$codes" "503 503 200 "
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "action": "oversize_manifest"}]}'
c -D "$T/h" -o "$T/big" -H "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8"
eq "oversize_manifest: 5 MiB" "$(stat -c %s "$T/big")" $((5 * 1024 * 1024))
check "oversize_manifest: valid JSON" "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/big"
eq "oversize_manifest: Content-Type" "$(hdr Content-Type "$T/h")" "$OCI_M"
eq "oversize_manifest: digest header matches the body" "$(hdr Docker-Content-Digest "$T/h")" "$(sha "$T/big")"
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "action": "oversize_manifest", "chunked": true, "size": 3000000}]}'
c -D "$T/h" -o "$T/big" -H "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8"
eq "oversize_manifest chunked: no Content-Length" "$(hdr Content-Length "$T/h")" ""
eq "oversize_manifest chunked: size" "$(stat -c %s "$T/big")" 3000000
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "action": "bad_digest"}]}'
c -D "$T/h" -o /dev/null -H "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8"
check "bad_digest: wrong Docker-Content-Digest" test "$(hdr Docker-Content-Digest "$T/h")" != "$BASE_DIGEST"
faultproxy_rules fp '{"rules": [{"match": "/manifests/", "action": "slow", "delay": 1}]}'
t=$(c -o /dev/null -w '%{time_total}' -H "$ACCEPT" "$FP/v2/lambda/python/manifests/3.8")
check "slow: took >= 1 s ($t)" "$PY" -c 'import sys; sys.exit(float(sys.argv[1]) < 1)' "$t"
faultproxy_rules fp "{\"rules\": [{\"match\": \"/blobs/$LAYER0\", \"action\": \"stall\", \"stall\": 3}]}"
rc=0; c --max-time 1 -o /dev/null "$BLOB" || rc=$?
eq "stall: a 1 s client timeout fires (curl 28)" "$rc" 28
faultproxy_rules fp '{"rules": []}'
check "no rules: blob passes" bash -c 'curl -sf --noproxy "*" "$1" | cmp - "$2"' _ "$BLOB" "$LAYER0_FILE"

# ------------------------------------------------------------------ multiarch
echo "# multiarch index"
multiarch_seed reg lambda/multi:1
skopeo inspect --raw --tls-verify=false "docker://$reg_HOST/lambda/multi:1" > "$T/idx"
eq "index served byte for byte" "$(sha "$T/idx")" "$reg_INDEX_DIGEST"
out=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["mediaType"], " ".join("%s/%s/%s" % (m["platform"]["os"], m["platform"]["architecture"],
      m.get("annotations", {}).get("vnd.docker.reference.type", "-")) for m in d["manifests"]))' "$T/idx")
eq "index: amd64, arm64, attestation" "$out" "$OCI_I linux/amd64/- linux/arm64/- unknown/unknown/attestation-manifest"
layers_of() {  # the layer digests of manifest $1 of the multiarch layout, as skopeo prints them
  "$PY" -c 'import json,sys; print(json.dumps([l["digest"] for l in json.load(open(sys.argv[1]))["layers"]]))' \
    "$reg_MULTIARCH_LAYOUT/blobs/sha256/${1#sha256:}"
}
skopeo_layers() {  # ARCH [flags]: the layers of the image skopeo resolves for ARCH
  skopeo inspect --tls-verify=false --override-arch "$@" "docker://$reg_HOST/lambda/multi:1" \
    | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["Layers"]))'
}
eq "skopeo resolves linux/amd64 to NAME_AMD64_DIGEST" "$(skopeo_layers amd64)" "$(layers_of "$reg_AMD64_DIGEST")"
eq "skopeo resolves linux/arm64/v8 to NAME_ARM64_DIGEST" "$(skopeo_layers arm64 --override-variant v8)" "$(layers_of "$reg_ARM64_DIGEST")"
check "amd64 and arm64 images differ" test "$(layers_of "$reg_AMD64_DIGEST")" != "$(layers_of "$reg_ARM64_DIGEST")"
eq "attestation manifest served" \
   "$(c -o /dev/null -w '%{http_code}' -H "Accept: $OCI_M" "$reg_URL/v2/lambda/multi/manifests/$reg_ATTEST_DIGEST")" 200
multiarch_seed reg lambda/python:multi --amd64 "oci:$T/base38:3.8"
eq "multiarch --amd64 SRC keeps that image's digest" "$reg_AMD64_DIGEST" "$BASE_DIGEST"

# ------------------------------------------------------------------ lifecycle
echo "# lifecycle"
cat > "$T/child.sh" <<EOF
set -euo pipefail
T=$T/child; mkdir -p "\$T"
trap 'echo prev-trap-ran > "\$T/prev"' EXIT
. "$HERE/lib.sh"
registry_start r1
tokenfront_start t1 "\$r1_HOST"
faultproxy_start f1 "\$r1_HOST"
pgrep -f "\$T/" > "\$T/pids" || true
echo "\$r1_HOST \$t1_HOST \$f1_HOST" > "\$T/hosts"
if [ -n "\${SLEEP:-}" ]; then exec sleep "\$SLEEP"; fi
exit 3
EOF
rc=0; bash "$T/child.sh" || rc=$?
eq "child test keeps its exit status" "$rc" 3
check "child's own EXIT trap still ran" test -s "$T/child/prev"
check "child started 3 servers" test "$(wc -l < "$T/child/pids")" -ge 3
alive=$(pgrep -f "$T/child/" || true)
eq "EXIT trap killed them all" "$alive" ""
read -r h1 h2 h3 < "$T/child/hosts"
eq "ports are closed" "$(for h in "$h1" "$h2" "$h3"; do c -o /dev/null -w '%{http_code} ' "http://$h/v2/" || true; done)" "000 000 000 "
rm -rf "$T/child"
SLEEP=30 bash "$T/child.sh" & cpid=$!
for i in $(seq 1 60); do [ -s "$T/child/hosts" ] && break; sleep 0.1; done
kill -KILL "$cpid"; wait "$cpid" 2>/dev/null || true
for i in $(seq 1 50); do pgrep -f "$T/child/" >/dev/null || break; sleep 0.1; done
eq "SIGKILLed test: the watchdog kills its servers within 5 s" "$(pgrep -f "$T/child/" || true)" ""
stop_all
eq "stop_all: registry gone" "$(c -o /dev/null -w '%{http_code}' "$reg_URL/v2/" || true)" 000
eq "stop_all: tokenfront gone" "$(c -o /dev/null -w '%{http_code}' "$TF/v2/" || true)" 000

echo "selftest took $((SECONDS - START)) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
