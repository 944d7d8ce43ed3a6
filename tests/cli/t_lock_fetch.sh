#!/usr/bin/env bash
# assemble --conda-lock without (all of) --pkgs-dir (issue 14): the packages and the lock's
# wheels are downloaded from the lock's URLs, rewritten by --mirror, from a channel served
# by tests/registry/pkgserver.py (https with the test CA, plain http on loopback; faults on
# request; a request log that shows what was asked, with which credentials, how many at
# once). The image is the same as from --pkgs-dir; the blob cache serves the next builds,
# --offline never touches the network; every fault has its message and exit status.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"

PYVER=$(cat "$FIXTURES/pyver")
B=$FIXTURES/base-run
L=$FIXTURES/lock
make_code "$T/code"
CF=https://conda.anaconda.org/conda-forge
PYPI=https://files.pythonhosted.org/packages
PY_PKG=python-3.11.2-h0_0_cpython.conda
[ -f "$L/pkgs/$PY_PKG" ] || PY_PKG=$(cd "$L/pkgs" && ls python-*.conda)

# The channel: the fixture packages where the lock's URLs put them, the wheel under pypi/.
CH=$T/channel
mkdir -p "$CH/conda-forge/linux-64" "$CH/conda-forge/noarch" "$CH/pypi"
cp "$L/pkgs/"*.conda "$L/pkgs/hellotool-1.0-h0_0.tar.bz2" "$CH/conda-forge/linux-64/"
cp "$L/pkgs/greetpkg-0.1-pyh_0.tar.bz2" "$CH/conda-forge/noarch/"
cp "$L/wheels/wheeldemo-1.0-py3-none-any.whl" "$CH/pypi/"
pkgserver_start ch "$CH" --tls
# shellcheck disable=SC2154 # ch_* come from pkgserver_start
MIRRORS=(--mirror "$CF=$ch_URL/conda-forge" --mirror "$PYPI=$ch_URL/pypi")

n=0
# build ARGS...: assemble (the base, code and handler given) into a fresh layout; sets
# OUT, DIGEST (on success) and RC; stderr in $T/err. --no-compile: the bytecode layer
# (python run in the sandbox, 2-3 s a build) is t_e2e_bytecode_lock's; here it is fetching.
build() {
	n=$((n + 1))
	OUT=$T/out$n
	RC=0
	DIGEST=$($OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile \
		--handler example.lambda_handler --output "oci:$OUT" "$@" 2>"$T/err") || RC=$?
}
# fetch_build CACHE ARGS...: the same with the cache at CACHE, the test CA and the mirrors
fetch_build() {
	local cache=$1
	shift
	build --cache-dir "$cache" --ca-file "$ch_CA" "${MIRRORS[@]}" "$@"
}
gets() { reglib_count "$1" "^GET ${2:-/}.* id=[0-9]+\$"; }
mark() { wc -l <"$1"; } # log lines so far
since() { tail -n +"$(($2 + 1))" "$1"; }
blobs() { find "$1/blobs/sha256" -type f ! -name '.*' 2>/dev/null | wc -l; }

# the reference: every package on disk
build --conda-lock "$L/conda-lock.yml" --pkgs-dir "$L/pkgs" --wheels-dir "$L/wheels"
[ "$RC" = 0 ] || fail "reference build: $(cat "$T/err")"
REF_YML=$DIGEST
build --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs"
[ "$RC" = 0 ] || fail "reference build (explicit): $(cat "$T/err")"
REF_EXPLICIT=$DIGEST

# --- the fetched build equals the --pkgs-dir build ---
C=$T/cache1
fetch_build "$C" --conda-lock "$L/conda-lock.yml" --progress
[ "$RC" = 0 ] || fail "fetched build: $(cat "$T/err")"
[ "$DIGEST" = "$REF_YML" ] || fail "fetched build $DIGEST differs from the --pkgs-dir build $REF_YML"
FETCHED_OUT=$OUT
[ "$(gets "$ch_LOG")" = 5 ] || fail "five downloads expected: $(cat "$ch_LOG")"
for f in "$L/pkgs/"* "$L/wheels/wheeldemo-1.0-py3-none-any.whl"; do
	[ -f "$C/blobs/sha256/$(sha256sum "$f" | cut -d' ' -f1)" ] || fail "$(basename "$f") is not in the blob cache by its sha256"
done
grep -q "^ocilambda: downloaded 5 packages into $C\$" "$T/err" || fail "says what it downloaded: $(cat "$T/err")"
grep -q "downloaded 5/5, 0 under way" "$T/err" || fail "progress line: $(cat "$T/err")"
no_litter "$T"
ok "a conda-lock.yml without --pkgs-dir: packages and the pip wheel downloaded over https, verified, cached by sha256; same image as from --pkgs-dir"

# --- from the cache: the server stopped ---
seen=$(gets "$ch_LOG")
pkgserver_stop ch
fetch_build "$C" --conda-lock "$L/conda-lock.yml" --progress
[ "$RC" = 0 ] || fail "rebuild with the server stopped: $(cat "$T/err")"
[ "$DIGEST" = "$REF_YML" ] || fail "rebuild from the cache gives another image"
fetch_build "$C" --conda-lock "$L/conda-lock.yml" --no-cache --progress
[ "$RC" = 0 ] || fail "rebuild with --no-cache, server stopped: $(cat "$T/err")"
grep -q "packing conda layer" "$T/err" || fail "--no-cache packs the conda layer anew: $(cat "$T/err")"
! grep -q "downloaded" "$T/err" || fail "nothing is downloaded: $(cat "$T/err")"
[ "$DIGEST" = "$REF_YML" ] || fail "rebuild from the blob cache gives another image"
ok "with the server stopped, a rebuild takes the layer from the layer cache, and with --no-cache the packages from the blob cache"

pkgserver_start ch "$CH" --tls
MIRRORS=(--mirror "$CF=$ch_URL/conda-forge" --mirror "$PYPI=$ch_URL/pypi")
# an explicit lock: md5 for all but one entry; the md5 index finds them next time
C=$T/cache2
fetch_build "$C" --conda-lock "$L/explicit.txt"
[ "$RC" = 0 ] || fail "explicit lock, fetched: $(cat "$T/err")"
[ "$DIGEST" = "$REF_EXPLICIT" ] || fail "fetched explicit build differs from the --pkgs-dir one"
[ "$(gets "$ch_LOG")" = 4 ] || fail "four downloads expected: $(cat "$ch_LOG")"
[ "$(find "$C/md5" -type f | wc -l)" = 3 ] || fail "md5 index (three entries give md5): $(ls -R "$C")"
m=$(mark "$ch_LOG")
fetch_build "$C" --conda-lock "$L/explicit.txt" --no-cache --offline
[ "$RC" = 0 ] || fail "explicit lock from the cache, --offline: $(cat "$T/err")"
[ "$DIGEST" = "$REF_EXPLICIT" ] || fail "explicit lock from the cache differs"
[ "$(mark "$ch_LOG")" = "$m" ] || fail "--offline made requests: $(since "$ch_LOG" "$m")"
ok "an explicit lock (md5 hashes): same image; the md5 index finds the packages again, --offline touches nothing"

# a damaged copy in the cache is downloaded again: never a failure, unless --offline
blob=$C/blobs/sha256/$(sha256sum "$L/pkgs/hellotool-1.0-h0_0.tar.bz2" | cut -d' ' -f1)
printf 'X' | dd of="$blob" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_fail 2 "explicit.txt:6: hellotool-1.0-h0_0.tar.bz2: the cached copy is damaged (" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/explicit.txt" --cache-dir "$C" "${MIRRORS[@]}" --no-cache --offline --output "oci:$T/bad"
grep -q "md5 mismatch" "$T/stderr" || fail "says what is wrong with it: $(cat "$T/stderr")"
m=$(mark "$ch_LOG")
fetch_build "$C" --conda-lock "$L/explicit.txt" --no-cache
[ "$RC" = 0 ] || fail "a damaged cached package: $(cat "$T/err")"
[ "$DIGEST" = "$REF_EXPLICIT" ] || fail "healed cache gives another image"
[ "$(since "$ch_LOG" "$m" | grep -c '^GET ')" = 1 ] && [ "$(since "$ch_LOG" "$m" | grep -c '^GET /conda-forge/linux-64/hellotool-1.0-h0_0.tar.bz2 200 ')" = 1 ] ||
	fail "only the damaged package is downloaded again: $(since "$ch_LOG" "$m")"
cmp -s "$blob" "$L/pkgs/hellotool-1.0-h0_0.tar.bz2" || fail "the cache holds the right bytes again"
ok "a damaged package in the cache is downloaded again (with --offline: exit 2 saying so)"

# --- only what --pkgs-dir lacks is downloaded ---
mkdir "$T/some"
cp "$L/pkgs/$PY_PKG" "$L/pkgs/whereami-1.0-h0_0.conda" "$T/some/"
m=$(mark "$ch_LOG")
fetch_build "$T/cache3" --conda-lock "$L/explicit.txt" --pkgs-dir "$T/some"
[ "$RC" = 0 ] || fail "partial --pkgs-dir: $(cat "$T/err")"
[ "$DIGEST" = "$REF_EXPLICIT" ] || fail "partial --pkgs-dir gives another image"
since "$ch_LOG" "$m" | grep "^GET " | awk '{print $2}' | sort >"$T/asked"
printf '%s\n' /conda-forge/linux-64/hellotool-1.0-h0_0.tar.bz2 /conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2 | sort >"$T/want"
diff "$T/want" "$T/asked" >/dev/null || fail "downloaded $(cat "$T/asked"), want the two missing ones"
ok "with --pkgs-dir holding some packages, only the others are downloaded"

# --- --offline ---
m=$(mark "$ch_LOG")
expect_fail 2 "explicit.txt:6: hellotool-1.0-h0_0.tar.bz2 is not in $T/some nor in the cache, and --offline forbids downloading it from $ch_URL/conda-forge/linux-64/hellotool-1.0-h0_0.tar.bz2" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/explicit.txt" --pkgs-dir "$T/some" --cache-dir "$T/cache-empty" \
	"${MIRRORS[@]}" --offline --output "oci:$T/bad"
expect_fail 2 "conda-lock.yml:$(grep -n 'name: wheeldemo' "$L/conda-lock.yml" | cut -d: -f1): wheeldemo-1.0-py3-none-any.whl is not in the cache, and --offline forbids downloading it from $PYPI/wheeldemo-1.0-py3-none-any.whl" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/conda-lock.yml" --pkgs-dir "$L/pkgs" --cache-dir "$T/cache-empty" \
	--offline --output "oci:$T/bad"
[ "$(mark "$ch_LOG")" = "$m" ] || fail "--offline made requests: $(since "$ch_LOG" "$m")"
expect_fail 1 "--offline: --base 127.0.0.1:1/lambda/python:3.11 is a registry" \
	$OCILAMBDA assemble --base 127.0.0.1:1/lambda/python:3.11 --code "$T/code" \
	--handler example.lambda_handler --conda-lock "$L/explicit.txt" --offline --output "oci:$T/bad"
[ ! -e "$T/bad" ] || fail "output written"
ok "--offline: a package neither in --pkgs-dir nor in the cache is an error naming it and its URL; no request made; registry refs refused"

# --- concurrency, counted from the server's log ---
# The gate holds requests until COUNT of them wait at once (for the first 4 requests):
# with --jobs N the log shows exactly N in flight together, never more.
# The default (6) is more than the lock's five packages: all five at once.
for jobs in 1 2 4 default; do
	want=$jobs times=4 args=(--jobs "$jobs")
	[ "$jobs" != default ] || want=5 times=5 args=()
	pkgserver_rules ch "{\"rules\": [{\"action\": \"gate\", \"count\": $want, \"timeout\": 15, \"times\": $times}]}"
	m=$(mark "$ch_LOG")
	fetch_build "$T/cache-j$jobs" --conda-lock "$L/conda-lock.yml" "${args[@]}"
	[ "$RC" = 0 ] || fail "--jobs $jobs: $(cat "$T/err")"
	[ "$DIGEST" = "$REF_YML" ] || fail "--jobs $jobs gives another image"
	since "$ch_LOG" "$m" >"$T/jlog"
	[ "$(gets "$T/jlog")" = 5 ] || fail "--jobs $jobs: five downloads: $(cat "$T/jlog")"
	got=$(pkgserver_inflight "$T/jlog")
	[ "$got" = "$want" ] || fail "--jobs $jobs: the log shows $got requests in flight at most: $(cat "$T/jlog")"
	[ "$jobs" = 1 ] || ! grep -q "action=gate-timeout" "$T/jlog" || fail "--jobs $jobs: the gate timed out: $(cat "$T/jlog")"
done
pkgserver_rules ch '{"rules": []}'
expect_fail 1 '--jobs "0": want 1..64' $OCILAMBDA assemble --jobs 0
ok "--jobs N: the server log shows N downloads in flight together, never more (1, 2, 4; the default 6 takes all five)"

# --- faults ---
PYURL=/conda-forge/linux-64/$PY_PKG
pkgserver_rules ch "{\"rules\": [{\"match\": \"$PYURL\", \"action\": \"drop_once\", \"fraction\": 0.4}]}"
m=$(mark "$ch_LOG")
fetch_build "$T/cache-drop" --conda-lock "$L/conda-lock.yml" --jobs 1
[ "$RC" = 0 ] || fail "a dropped download: $(cat "$T/err")"
[ "$DIGEST" = "$REF_YML" ] || fail "resumed download gives another image"
since "$ch_LOG" "$m" >"$T/dlog"
size=$(stat -c %s "$L/pkgs/$PY_PKG")
cut=$((size * 4 / 10))
grep -q "^GET $PYURL 200 range=- action=drop_once auth=none bytes=$cut t=" "$T/dlog" || fail "the drop: $(cat "$T/dlog")"
grep -q "^GET $PYURL 206 range=bytes=$cut- action=pass" "$T/dlog" || fail "not resumed from byte $cut: $(cat "$T/dlog")"
grep -q "retrying $PY_PKG in 0 s" "$T/err" || fail "the retry is said: $(cat "$T/err")"
ok "a server dropping the connection mid-body: the download resumes with Range from where it stopped"

pkgserver_rules ch "{\"rules\": [{\"match\": \"greetpkg\", \"status\": 503, \"retry_after\": 1, \"times\": 1}, {\"match\": \"hellotool\", \"status\": 500, \"times\": 1}]}"
fetch_build "$T/cache-5xx" --conda-lock "$L/conda-lock.yml"
[ "$RC" = 0 ] || fail "one 503 and one 500: $(cat "$T/err")"
grep -q "^ocilambda: $ch_HOST: retrying greetpkg-0.1-pyh_0.tar.bz2 in 1 s (HTTP 503 Service Unavailable)" "$T/err" ||
	fail "Retry-After is honoured: $(cat "$T/err")"
grep -q "^ocilambda: $ch_HOST: retrying hellotool-1.0-h0_0.tar.bz2 in 1 s (HTTP 500 Internal Server Error)" "$T/err" ||
	fail "500 retried: $(cat "$T/err")"
pkgserver_rules ch '{"rules": [{"match": "greetpkg", "status": 503}]}'
m=$(mark "$ch_LOG")
expect_fail 3 "greetpkg-0.1-pyh_0.tar.bz2: $ch_URL/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2: HTTP 503 Service Unavailable (gave up after 3 attempts)" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/conda-lock.yml" --cache-dir "$T/cache-storm" --ca-file "$ch_CA" "${MIRRORS[@]}" \
	--retry 2 --output "oci:$T/bad"
[ "$(since "$ch_LOG" "$m" | grep -c '^GET /conda-forge/noarch/greetpkg.* 503 ')" = 3 ] ||
	fail "--retry 2 is 3 attempts: $(since "$ch_LOG" "$m")"
ok "5xx: retried with backoff or Retry-After; a storm ends after --retry retries (attempts counted in the log), exit 3"

pkgserver_rules ch '{"rules": []}'
mv "$CH/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2" "$T/greetpkg.keep"
expect_fail 3 "conda-lock.yml:$(grep -n 'name: greetpkg' "$L/conda-lock.yml" | cut -d: -f1): greetpkg-0.1-pyh_0.tar.bz2: $ch_URL/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2: HTTP 404 Not Found" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/conda-lock.yml" --cache-dir "$T/cache-404" --ca-file "$ch_CA" "${MIRRORS[@]}" \
	--output "oci:$T/bad"
mv "$T/greetpkg.keep" "$CH/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2"
ok "404: exit 3 naming the lock line, the package and the URL"

# wrong bytes: refused before anything is kept
for what in "$PY_PKG md5" "whereami-1.0-h0_0.conda sha256"; do
	set -- $what
	pkgserver_rules ch "{\"rules\": [{\"match\": \"$1\", \"action\": \"corrupt\"}]}"
	expect_fail 2 "$1: $ch_URL/conda-forge/linux-64/$1: $2 mismatch (expected " \
		$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
		--conda-lock "$L/explicit.txt" --cache-dir "$T/cache-bad" --ca-file "$ch_CA" "${MIRRORS[@]}" \
		--jobs 1 --output "oci:$T/bad"
	grep -q "nothing was kept" "$T/stderr" || fail "says nothing was kept: $(cat "$T/stderr")"
	"$PY" - "$CH/conda-forge/linux-64/$1" "$T/bad.bin" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0xFF
open(sys.argv[2], "wb").write(b)
EOF
	bad=$(sha256sum "$T/bad.bin" | cut -d' ' -f1)
	[ ! -e "$T/cache-bad/blobs/sha256/$bad" ] || fail "the corrupt download was cached"
	[ ! -e "$T/cache-bad/blobs/sha256/$(sha256sum "$CH/conda-forge/linux-64/$1" | cut -d' ' -f1)" ] ||
		fail "$1 is in the cache"
	! grep -rqx "sha256:$bad" "$T/cache-bad/md5" 2>/dev/null || fail "the md5 index names the corrupt blob"
	[ ! -e "$T/bad" ] || fail "output written after a hash mismatch"
	no_litter "$T"
done
ok "wrong bytes (md5 or sha256 mismatch): exit 2, nothing cached, nothing written"

# a body far beyond any package: cut at the cap (OCIL_FETCH_MAX_SIZE lowers it)
pkgserver_rules ch '{"rules": [{"match": "greetpkg", "action": "endless"}]}'
expect_fail 3 "greetpkg-0.1-pyh_0.tar.bz2: $ch_URL/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2: the server sends more than the cap of 20000000 bytes" \
	env OCIL_FETCH_MAX_SIZE=20000000 $OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/conda-lock.yml" --cache-dir "$T/cache-endless" --ca-file "$ch_CA" "${MIRRORS[@]}" \
	--output "oci:$T/bad"
pkgserver_rules ch '{"rules": [{"match": "greetpkg", "action": "endless", "length": 1000000000000}]}'
expect_fail 3 "greetpkg-0.1-pyh_0.tar.bz2: $ch_URL/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2: the server announces 1000000000000 bytes, more than the cap of 4294967296" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/conda-lock.yml" --cache-dir "$T/cache-endless" --ca-file "$ch_CA" "${MIRRORS[@]}" \
	--output "oci:$T/bad"
no_litter "$T"
expect_fail 1 'OCIL_FETCH_MAX_SIZE "lots": want a number of bytes' \
	env OCIL_FETCH_MAX_SIZE=lots $OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/conda-lock.yml" --cache-dir "$T/cache-endless" --output "oci:$T/bad"
pkgserver_rules ch '{"rules": []}'
ok "an endless body is cut at the cap, a huge Content-Length refused at once: exit 3, nothing left behind"

# --- bad URLs and mirrors ---
expect_fail 1 '--mirror "https://conda.anaconda.org": want FROM=TO' $OCILAMBDA assemble --mirror https://conda.anaconda.org
expect_fail 1 '--mirror "conda-forge=https://x.example": want FROM=TO' $OCILAMBDA assemble --mirror conda-forge=https://x.example
expect_fail 1 '--mirror "https://a.example=ftp://b.example": want FROM=TO' $OCILAMBDA assemble --mirror https://a.example=ftp://b.example
expect_fail 1 "--mirror goes with --conda-lock" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-prefix "$FIXTURES/prefix-run" --mirror "$CF=$ch_URL/x" --output "oci:$T/bad"
sed "s|^$CF/linux-64/hellotool|ftp://mirror.example/conda-forge/linux-64/hellotool|" "$L/explicit.txt" >"$T/ftp.txt"
expect_fail 2 "ftp.txt:6: hellotool-1.0-h0_0.tar.bz2: ftp://mirror.example/conda-forge/linux-64/hellotool-1.0-h0_0.tar.bz2 is not an http(s) or file URL" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$T/ftp.txt" --cache-dir "$T/cache-x" --output "oci:$T/bad"
# file:// URLs are read in place, nothing is downloaded or cached
sed "s|^$CF|file://$CH/conda-forge|" "$L/explicit.txt" >"$T/file.txt"
m=$(mark "$ch_LOG")
build --conda-lock "$T/file.txt" --cache-dir "$T/cache-file"
[ "$RC" = 0 ] || fail "file:// lock: $(cat "$T/err")"
[ "$(mark "$ch_LOG")" = "$m" ] || fail "a file:// lock made requests"
for f in "$L/pkgs/"*; do
	[ ! -e "$T/cache-file/blobs/sha256/$(sha256sum "$f" | cut -d' ' -f1)" ] || fail "file:// packages were copied into the cache"
done
umoci unpack --rootless --image "$OUT:latest" "$T/fb" >/dev/null
[ "$(json "$T/fb/rootfs/opt/conda-env/conda-meta/greetpkg-0.1-pyh_0.json" 'j["url"]')" = "file://$CH/conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2" ] ||
	fail "the record keeps the lock's URL"
# the record names the lock's URL, not the mirror's
umoci unpack --rootless --image "$FETCHED_OUT:latest" "$T/mb" >/dev/null
[ "$(json "$T/mb/rootfs/opt/conda-env/conda-meta/greetpkg-0.1-pyh_0.json" 'j["url"]')" = "$CF/noarch/greetpkg-0.1-pyh_0.tar.bz2" ] ||
	fail "a mirrored package's record names the mirror"
ok "a malformed --mirror is a usage error; a lock URL not http(s) or file is exit 2; file:// URLs are read in place; records keep the lock's URLs"

# --- TLS and plain http ---
expect_fail 3 "TLS: " \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/explicit.txt" --cache-dir "$T/cache-tls" "${MIRRORS[@]}" --output "oci:$T/bad"
grep -q "(a private CA goes in --cert-dir or --ca-file)" "$T/stderr" || fail "TLS hint: $(cat "$T/stderr")"
build --conda-lock "$L/explicit.txt" --cache-dir "$T/cache-tls" --cert-dir "$ch_CERTDIR" "${MIRRORS[@]}"
[ "$RC" = 0 ] && [ "$DIGEST" = "$REF_EXPLICIT" ] || fail "--cert-dir: $(cat "$T/err")"
build --conda-lock "$L/explicit.txt" --cache-dir "$T/cache-tls2" --tls-verify=false "${MIRRORS[@]}"
[ "$RC" = 0 ] && [ "$DIGEST" = "$REF_EXPLICIT" ] || fail "--tls-verify=false: $(cat "$T/err")"
pkgserver_start plain "$CH"
build --conda-lock "$L/explicit.txt" --cache-dir "$T/cache-http" --mirror "$CF=http://$plain_HOST/conda-forge"
[ "$RC" = 0 ] && [ "$DIGEST" = "$REF_EXPLICIT" ] || fail "plain http on loopback: $(cat "$T/err")"
[ "$(grep -c "^ocilambda: using plain http for $plain_HOST\$" "$T/err")" = 1 ] || fail "plain http is said once: $(cat "$T/err")"
expect_fail 2 "explicit.txt:5: $PY_PKG: http://pkgs.example.invalid/conda-forge/linux-64/$PY_PKG: refusing plain http to pkgs.example.invalid (use https, or --tls-verify=false)" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/explicit.txt" --cache-dir "$T/cache-http2" --mirror "$CF=http://pkgs.example.invalid/conda-forge" \
	--output "oci:$T/bad"
# a name (not an address) of this machine that resolves to loopback: plain http only with
# --tls-verify=false, and then said
me=$(hostname)
if [ -n "$me" ] && getent ahostsv4 "$me" | awk '{print $1}' | grep -qx 127.0.0.1 &&
	! [[ $me =~ ^(localhost|127\.) ]]; then
	build --conda-lock "$L/explicit.txt" --cache-dir "$T/cache-http3" --tls-verify=false \
		--mirror "$CF=http://$me:${plain_HOST#*:}/conda-forge"
	[ "$RC" = 0 ] || fail "plain http with --tls-verify=false: $(cat "$T/err")"
	grep -q "^ocilambda: using plain http for $me:${plain_HOST#*:} (--tls-verify=false)\$" "$T/err" ||
		fail "plain http with --tls-verify=false is said: $(cat "$T/err")"
else
	echo "# $me does not resolve to 127.0.0.1: --tls-verify=false over http to a name not checked"
fi
pkgserver_stop plain
ok "https verified (the test CA by --ca-file or --cert-dir, or --tls-verify=false); plain http on loopback said once; elsewhere refused unless --tls-verify=false"

# --- credentials: netrc, only for the lock's host; a redirect elsewhere gets none ---
pkgserver_start auth "$CH" --tls --auth alice:s3cret-pw
pkgserver_start cdn "$CH" --tls --bind 127.0.0.2
pkgserver_rules auth "{\"rules\": [{\"match\": \"/noarch/\", \"action\": \"redirect\", \"location\": \"$cdn_URL{path}\"}]}"
printf 'machine 127.0.0.1\nlogin alice\npassword s3cret-pw\n' >"$T/netrc"
printf 'machine 127.0.0.2\nlogin mallory\npassword not-for-the-cdn\n' >>"$T/netrc"
expect_fail 3 "$PY_PKG: $auth_URL/conda-forge/linux-64/$PY_PKG: HTTP 401 Unauthorized (no netrc file" \
	env HOME="$T/nohome" NETRC= $OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile \
	--handler example.lambda_handler --conda-lock "$L/explicit.txt" --cache-dir "$T/cache-auth" \
	--ca-file "$auth_CA" --mirror "$CF=$auth_URL/conda-forge" --jobs 1 --output "oci:$T/bad"
export NETRC=$T/netrc
build --conda-lock "$L/explicit.txt" --cache-dir "$T/cache-auth" --ca-file "$auth_CA" \
	--mirror "$CF=$auth_URL/conda-forge"
[ "$RC" = 0 ] && [ "$DIGEST" = "$REF_EXPLICIT" ] || fail "with netrc credentials: $(cat "$T/err")"
[ "$(reglib_count "$auth_LOG" '^GET .* 20[06] .*auth=basic ')" = 3 ] || fail "three packages with credentials: $(cat "$auth_LOG")"
[ "$(reglib_count "$auth_LOG" '^GET /conda-forge/noarch/greetpkg.* 302 .*auth=basic ')" = 1 ] || fail "the redirect: $(cat "$auth_LOG")"
[ "$(reglib_count "$cdn_LOG" '^GET /conda-forge/noarch/greetpkg-0.1-pyh_0.tar.bz2 200 .*auth=none ')" = 1 ] ||
	fail "the redirected download carries no credentials: $(cat "$cdn_LOG")"
[ "$(reglib_count "$cdn_LOG" 'auth=(basic|wrong|other)')" = 0 ] || fail "credentials reached the CDN: $(cat "$cdn_LOG")"
! grep -rq "s3cret-pw\|not-for-the-cdn" "$T/err" "$T/stderr" || fail "a password was printed"
unset NETRC
ok "netrc credentials go to the lock's host only; the host a download is redirected to gets none (not even its own netrc entry); none printed"

# --- anaconda.org tokens in URLs are masked in every message ---
sed "s|^$CF|$ch_URL/t/tk-0123456789abcdef/conda-forge|" "$L/explicit.txt" >"$T/token.txt"
pkgserver_rules ch '{"rules": [{"match": "/t/", "status": 503, "times": 1}]}'
# (the 503 is retried after 1 s; another download may fail first: either names its URL)
expect_fail 3 ": HTTP 404 Not Found" \
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$T/token.txt" --cache-dir "$T/cache-token" --ca-file "$ch_CA" --jobs 1 --output "oci:$T/bad"
grep -Eq "token.txt:[0-9]+: ([a-z0-9_.-]+): ${ch_URL//./\\.}/t/\\*\\*\\*/conda-forge/linux-64/\\1: HTTP 404 Not Found\$" "$T/stderr" ||
	fail "the URL with its token masked: $(cat "$T/stderr")"
grep -q "retrying $PY_PKG in 1 s (HTTP 503" "$T/stderr" || fail "the 503 was retried: $(cat "$T/stderr")"
! grep -q "tk-0123456789abcdef" "$T/stderr" || fail "the token is printed: $(cat "$T/stderr")"
grep -q "/t/tk-0123456789abcdef/" "$ch_LOG" || fail "the token was not sent"
pkgserver_rules ch '{"rules": []}'
ok "an anaconda.org token (/t/<token>/) is masked in errors and notices"

# ... and never reaches the image: conda-meta, the history and the SBOM name
# the channel without it, as conda records it (fetched through a mirror)
$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$T/token.txt" --cache-dir "$T/cache-token" --ca-file "$ch_CA" \
	--mirror "$ch_URL/t/tk-0123456789abcdef/conda-forge=$ch_URL/conda-forge" \
	--sbom "$T/token.spdx.json" --output "oci:$T/tok" >/dev/null 2>"$T/tok.err" ||
	fail "a lock with a token: $(cat "$T/tok.err")"
umoci unpack --rootless --image "$T/tok:latest" "$T/tb" >/dev/null
meta=$T/tb/rootfs/opt/conda-env/conda-meta
nonempty "conda-meta records" "$meta"/*.json
rc=0
grep -rl "tk-0123456789abcdef" "$T/tb/rootfs" "$T/token.spdx.json" >"$T/tok.found" || rc=$?
[ "$rc" = 1 ] || fail "the token is in the image or the SBOM (grep exit $rc): $(cat "$T/tok.found")"
grep -qF "\"url\": \"$ch_URL/conda-forge/linux-64/$PY_PKG\"" "$meta"/python-*.json ||
	fail "the record's url without the token: $(grep '"url"' "$meta"/python-*.json)"
grep -qF "$ch_URL/conda-forge/linux-64::" "$meta/history" || fail "the history's channel: $(cat "$meta/history")"
ok "the token stays out of the image: records, history and SBOM name the channel without it"

# Ctrl-C while downloading: exit 130, no temporary file, no partial blob
pkgserver_rules ch '{"rules": [{"action": "throttle", "rate": 100000}]}'
m=$(mark "$ch_LOG")
$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" --no-compile --handler example.lambda_handler \
	--conda-lock "$L/explicit.txt" --cache-dir "$T/cache-int" --ca-file "$ch_CA" "${MIRRORS[@]}" \
	--output "oci:$T/bad" >"$T/int.out" 2>"$T/int.err" &
pid=$!
for _ in $(seq 1 300); do
	[ "$(since "$ch_LOG" "$m" | grep -c "^BEGIN .*$PY_PKG")" = 1 ] && break
	sleep 0.1
done
[ "$(since "$ch_LOG" "$m" | grep -c "^BEGIN .*$PY_PKG")" = 1 ] || fail "the download never started: $(cat "$T/int.err")"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 130 ] || fail "Ctrl-C: exit $rc, want 130: $(cat "$T/int.err")"
grep -q "interrupted" "$T/int.err" || fail "says it was interrupted: $(cat "$T/int.err")"
[ ! -s "$T/int.out" ] || fail "stdout on Ctrl-C"
[ ! -e "$T/cache-int/blobs/sha256/$(sha256sum "$L/pkgs/$PY_PKG" | cut -d' ' -f1)" ] || fail "the interrupted package is in the cache"
[ ! -e "$T/bad" ] || fail "output written"
no_litter "$T/cache-int"
pkgserver_rules ch '{"rules": []}'
ok "Ctrl-C during a download: exit 130, nothing half-written left"

no_litter "$T"
done_testing
