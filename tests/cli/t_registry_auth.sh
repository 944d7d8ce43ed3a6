#!/usr/bin/env bash
# Registry auth and TLS: a TLS registry with a self-signed CA and htpasswd
# Basic auth (credentials from an auth file and from a credential helper),
# and a bearer-token front that challenges like public.ecr.aws and redirects
# blob downloads to another host, which must never see credentials.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/cache
export HOME=$T/home REGISTRY_AUTH_FILE= XDG_RUNTIME_DIR=$T/run DOCKER_CONFIG=
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
unset REGISTRY_AUTH_FILE DOCKER_CONFIG

B=$FIXTURES/base38
registry_start sec --tls --htpasswd alice:s3cret-pass
registry_seed sec "oci:$B:3.8" lambda/python:3.8
want=$sec_LAST_DIGEST
REF=$sec_HOST/lambda/python:3.8
pull() { $OCILAMBDA pull --retry 0 "$@"; }

expect_fail 3 "$sec_HOST" pull "$REF" --output "oci:$T/x"
grep -qi "certificate" "$T/stderr" || fail "says the certificate is the problem: $(cat "$T/stderr")"
expect_fail 3 "$sec_HOST: authentication required" pull --ca-file "$sec_CA" "$REF" --output "oci:$T/x"
[ ! -e "$T/x" ] || fail "output left behind"
ok "TLS: unknown CA refused; then Basic auth required"

authfile_write "$T/auth.json" "$sec_HOST" alice s3cret-pass
d=$(pull --ca-file "$sec_CA" --authfile "$T/auth.json" "$REF" --output "oci:$T/a" 2>/dev/null)
[ "$d" = "$want" ] || fail "--authfile pull: $d"
rm -rf "$T/cache"
d=$(REGISTRY_AUTH_FILE=$T/auth.json pull --cert-dir "$sec_CERTDIR" "$REF" --output "oci:$T/b" 2>/dev/null)
[ "$d" = "$want" ] || fail "REGISTRY_AUTH_FILE pull: $d"
rm -rf "$T/cache"
mkdir -p "$XDG_RUNTIME_DIR/containers"
cp "$T/auth.json" "$XDG_RUNTIME_DIR/containers/auth.json"
d=$(pull --cert-dir "$sec_CERTDIR" "$REF" --output "oci:$T/c" 2>/dev/null)
[ "$d" = "$want" ] || fail "containers auth.json pull: $d"
rm -rf "$T/cache" "$XDG_RUNTIME_DIR/containers"
skopeo inspect "oci:$T/a:3.8" >/dev/null
ok "Basic auth from --authfile, \$REGISTRY_AUTH_FILE and containers auth.json; TLS via --ca-file and --cert-dir"

# ~/.docker/config.json with a credential helper (how private ECR works).
mkdir -p "$T/bin" "$HOME/.docker"
cred_helper_install "$T/bin" ecr-test alice s3cret-pass "$sec_HOST"
printf '{"credHelpers": {"%s": "ecr-test"}}\n' "$sec_HOST" >"$HOME/.docker/config.json"
d=$(PATH=$T/bin:$PATH pull --ca-file "$sec_CA" "$REF" --output "oci:$T/d" 2>/dev/null)
[ "$d" = "$want" ] || fail "credHelpers pull: $d"
[ "$(reglib_count "$T/bin/docker-credential-ecr-test.log" .)" -ge 1 ] || fail "helper was asked"
rm -rf "$T/cache"
printf '{"credsStore": "ecr-test"}\n' >"$HOME/.docker/config.json"
d=$(PATH=$T/bin:$PATH pull --ca-file "$sec_CA" "$REF" --output "oci:$T/e" 2>/dev/null)
[ "$d" = "$want" ] || fail "credsStore pull: $d"
rm -rf "$T/cache" "$HOME/.docker"
ok "credentials from docker-credential-<name> (credHelpers, credsStore)"

authfile_write "$T/bad.json" "$sec_HOST" alice wrong-password
expect_fail 3 "$sec_HOST: authentication failed for alice" pull --ca-file "$sec_CA" \
	--authfile "$T/bad.json" "$REF" --output "oci:$T/x"
grep -q wrong-password "$T/stderr" && fail "password printed"
[ ! -e "$T/x" ] || fail "output left behind"
no_litter "$T"
ok "bad credentials: exit 3, the user named, the password not"

# Bearer tokens, like public.ecr.aws, with blob GETs redirected elsewhere.
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
tokenfront_start tf "$reg_HOST"
d=$(pull "$tf_HOST/lambda/python:3.8" --output "oci:$T/t" 2>/dev/null)
[ "$d" = "$want" ] || fail "bearer pull: $d"
grep -q 'GET /token/' "$tf_LOG" || fail "token fetched"
[ "$(reglib_count "$tf_LOG" 'manifests/.* 200 auth=bearer')" -ge 1 ] || fail "manifest with the token"
[ "$(reglib_count "$tf_BLOBHOST_LOG" '"path": "/blob/')" -ge 4 ] || fail "blobs came from the other host"
[ "$(reglib_count "$tf_BLOBHOST_LOG" '"[Aa]uthorization"')" = 0 ] ||
	fail "credentials sent to the redirect host"
skopeo inspect "oci:$T/t:3.8" >/dev/null
ok "bearer token flow; redirected blob downloads carry no Authorization"
done_testing
