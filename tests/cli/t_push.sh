#!/usr/bin/env bash
# Outputs users deploy from: push to a real registry (docker-registry on
# 127.0.0.1, plain and TLS+htpasswd), assemble --output docker://, and the
# checks of issue 5: digests agree with skopeo, a second push uploads no
# blobs, a push next to the base mounts, a failed push publishes nothing.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
faultproxy_start fp "$reg_HOST"
uploads() { reglib_count "$fp_LOG" "^(POST|PUT|PATCH) /v2/$1/blobs/uploads/"; }
assemble() {
	$OCILAMBDA assemble --conda-prefix "$P" --code "$T/code" --handler example.lambda_handler "$@"
}

d=$(assemble --base "oci:$B:3.8" --output "oci:$T/out:latest")
ref=$($OCILAMBDA push "oci:$T/out:latest" "docker://$fp_HOST/fn:v1" --digestfile "$T/df" 2>/dev/null)
[ "$ref" = "$fp_HOST/fn@$d" ] || fail "prints the pinned reference: $ref"
[ "$(cat "$T/df")" = "$d" ] || fail "--digestfile holds the digest"
[ "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$reg_HOST/fn:v1")" = "$d" ] ||
	fail "skopeo inspect agrees"
skopeo copy --src-tls-verify=false "docker://$reg_HOST/fn:v1" "oci:$T/back:x" >/dev/null
[ "$(sha256_of <(skopeo inspect --raw "oci:$T/back:x"))" = "$d" ] || fail "skopeo copy reads it back"
[ "$(skopeo inspect --tls-verify=false --raw "docker://$reg_HOST/fn:v1" | json /dev/stdin 'j["mediaType"]')" = \
	application/vnd.oci.image.manifest.v1+json ] || fail "an OCI layout pushes as OCI"
ok "push oci: -> docker://: pinned reference printed, skopeo reads the same digest"

n=$(uploads fn)
[ "$n" -ge 4 ] || fail "first push uploaded blobs ($n)"
ref2=$($OCILAMBDA push "oci:$T/out:latest" "docker://$fp_HOST/fn:v2" 2>/dev/null)
[ "$ref2" = "$ref" ] || fail "same image, same pinned ref"
[ "$(uploads fn)" = "$n" ] || fail "second push uploaded blobs again"
ok "a second push uploads no blobs"

# Straight from the registry base to a new repository on the same registry.
a=$(assemble --base "$fp_HOST/lambda/python:3.8" --output "docker://$fp_HOST/fresh/fn:v1" 2>/dev/null)
[ "$a" = "$fp_HOST/fresh/fn@$d" ] || fail "assemble --output docker:// prints the pinned ref: $a"
mounts=$(reglib_count "$fp_LOG" "^POST /v2/fresh/fn/blobs/uploads/\?mount=.*from=lambda(/|%2F)python 201")
[ "$mounts" = 3 ] || fail "the three base layers were mounted ($mounts): $(grep fresh "$fp_LOG")"
# new layers: two conda (python's record, the files no record owns), code, runtime
[ "$(reglib_count "$fp_LOG" '^PUT /v2/fresh/fn/blobs/uploads/')" = 5 ] ||
	fail "only the four new layers and the config were uploaded"
ok "assemble --output docker:// next to the base mounts the base layers"

f=$(assemble --base "$fp_HOST/lambda/python:3.8" --format docker --output "docker://$fp_HOST/fn:docker" 2>/dev/null)
skopeo inspect --tls-verify=false --raw "docker://$reg_HOST/fn:docker" >"$T/dm.json"
[ "$(json "$T/dm.json" 'j["mediaType"]')" = application/vnd.docker.distribution.manifest.v2+json ] ||
	fail "--format docker"
[ "$(json "$T/dm.json" 'j["config"]["mediaType"]')" = application/vnd.docker.container.image.v1+json ] ||
	fail "docker config media type"
[ "$f" = "$fp_HOST/fn@$(sha256_of "$T/dm.json")" ] || fail "pinned ref of the Docker manifest"
ok "--format docker pushes a Docker v2s2 manifest"

# The registry fails half way: no manifest is published.
faultproxy_rules fp '{"rules": [{"match": "/blobs/uploads/", "method": "PUT", "status": 503, "times": 1000}]}'
expect_fail 3 "503" $OCILAMBDA push --retry 0 "oci:$T/out:latest" "docker://$fp_HOST/broken:v1"
faultproxy_rules fp '{"rules": []}'
[ "$(reglib_count "$fp_LOG" '^PUT /v2/broken/manifests/')" = 0 ] || fail "manifest PUT after a failure"
rc=0
skopeo inspect --tls-verify=false "docker://$reg_HOST/broken:v1" >/dev/null 2>&1 || rc=$?
[ $rc != 0 ] || fail "a manifest was published"
stop_all
expect_fail 3 "$fp_HOST" $OCILAMBDA push --retry 0 "oci:$T/out:latest" "docker://$fp_HOST/gone:v1"
no_litter "$T/cache"
ok "a push that fails half way, or a registry that is gone, publishes nothing (exit 3)"

# TLS + htpasswd, credentials from an auth file.
registry_start sec --tls --htpasswd bob:pa55word
authfile_write "$T/auth.json" "$sec_HOST" bob pa55word
expect_fail 3 "authentication required" $OCILAMBDA push --retry 0 --ca-file "$sec_CA" \
	"oci:$T/out:latest" "docker://$sec_HOST/fn:v1"
ref=$($OCILAMBDA push --ca-file "$sec_CA" --authfile "$T/auth.json" "oci:$T/out:latest" \
	"docker://$sec_HOST/fn:v1" 2>/dev/null)
[ "$ref" = "$sec_HOST/fn@$d" ] || fail "TLS push: $ref"
[ "$(skopeo inspect --cert-dir "$sec_CERTDIR" --creds bob:pa55word --format '{{.Digest}}' "docker://$sec_HOST/fn:v1")" = "$d" ] ||
	fail "skopeo reads the TLS push"
ok "push to a TLS registry with Basic auth from an auth file"
done_testing
