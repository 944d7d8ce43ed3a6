#!/usr/bin/env bash
# Transfers as fast as the network allows (issue 18), judged through netproxy.py (a throttling,
# latency-adding proxy that logs connections, requests in flight and when an upload's first
# bytes reach the registry) in front of a real docker-registry: pulls and pushes use --jobs
# connections together (the proxy's gate only lets them through when that many wait at
# once); results equal the serial ones; a layer is uploaded while it is compressed (the proxy
# holds its first PATCH: compression cannot have ended by then); faults mid-stream (a dropped
# connection, 5xx) are retried or fail with no manifest; a registry that refuses chunked
# uploads gets the whole layer; blobs the registry has are neither uploaded nor read; HTTP/2
# multiplexes the transfers over one connection.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"
export XDG_CACHE_HOME=$T/xdg

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"

# A base with six layers: the fixture's plus three of 1 MiB incompressible bytes.
cp -r "$B" "$T/base6"
for i in 1 2 3; do
	mkdir -p "$T/l$i/extra"
	"$PY" -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(1 << 20))' "$T/l$i/extra/blob$i"
	tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$T/l$i" -cf "$T/l$i.tar" extra
	umoci raw add-layer --image "$T/base6:3.8" "$T/l$i.tar" >/dev/null
done
umoci gc --layout "$T/base6" >/dev/null
skopeo inspect --raw "oci:$T/base6:3.8" >"$T/m6.json"
[ "$(json "$T/m6.json" 'len(j["layers"])')" = 6 ] || fail "the six-layer base: $(cat "$T/m6.json")"

# the layers (the config is fetched first, alone, when the image is opened)
LAYERS_RE="/blobs/($("$PY" -c 'import json, sys; print("|".join(l["digest"] for l in json.load(open(sys.argv[1]))["layers"]))' "$T/m6.json"))"
registry_start reg
registry_seed reg "oci:$T/base6:3.8" lambda/python:six
SIX=$reg_LAST_DIGEST
# 20 MB/s per connection, 5 ms a request (the gates, not the rate, make transfers overlap)
netproxy_start np "$reg_HOST" --rate 20000000 --latency 5
REF=$np_HOST/lambda/python:six
blob_gets() { netproxy_inflight "$np_LOG" '^BEGIN id=[0-9]+ t=[0-9.]+ GET /v2/[^ ]*/blobs/sha256:'; }
uploads() { netproxy_inflight "$np_LOG" '^BEGIN id=[0-9]+ t=[0-9.]+ (POST|PATCH|PUT) /v2/[^ ]*/blobs/uploads/'; }
# gate N [METHOD REGEX]: the first N matching requests go through only when N wait together
gate() {
	netproxy_rules np "{\"rules\": [{\"method\": \"${2:-GET}\", \"regex\": \"${3:-$LAYERS_RE}\", \"action\": \"gate\", \"count\": $1, \"timeout\": 20, \"times\": $1}]}"
	: >"$np_LOG"
}
no_gate_timeout() {
	[ "$(reglib_count "$np_LOG" 'action=gate-timeout')" = 0 ] ||
		fail "$1: fewer than the gate's count came together: $(grep -E 'BEGIN|action=gate' "$np_LOG")"
	[ "$(reglib_count "$np_LOG" 'action=gate in=')" -gt 0 ] || fail "$1: the gate saw nothing"
}

# ---- pull: --jobs transfers together, the same layout as one at a time
gate 6
expect_status 0 $OCILAMBDA pull --cache-dir "$T/c4" "$REF" --output "oci:$T/p4:x"
[ "$(cat "$T/stdout")" = "$SIX" ] || fail "pull printed $(cat "$T/stdout"), not $SIX"
no_gate_timeout "pull (default --jobs)"
[ "$(blob_gets)" = 6 ] || fail "default --jobs: $(blob_gets) blob GETs at once, want 6"
conns=$(netproxy_conns "$np_LOG")
[ "$conns" = 6 ] || fail "default --jobs: $conns connections, want 6"
ok "pull: six blob downloads at once by default, on six connections"

gate 2
expect_status 0 $OCILAMBDA pull --jobs 2 --cache-dir "$T/c2" "$REF" --output "oci:$T/p2:x"
no_gate_timeout "pull --jobs 2"
[ "$(blob_gets)" = 2 ] || fail "--jobs 2: $(blob_gets) blob GETs at once"
[ "$(netproxy_conns "$np_LOG")" -le 2 ] || fail "--jobs 2: $(netproxy_conns "$np_LOG") connections"
netproxy_rules np '{"rules": []}'
: >"$np_LOG"
expect_status 0 $OCILAMBDA pull --jobs 1 --cache-dir "$T/c1" "$REF" --output "oci:$T/p1:x"
[ "$(blob_gets)" = 1 ] || fail "--jobs 1: $(blob_gets) blob GETs at once"
[ "$(netproxy_conns "$np_LOG")" = 1 ] || fail "--jobs 1: $(netproxy_conns "$np_LOG") connections"
diff -r "$T/p1" "$T/p4" >/dev/null || fail "default --jobs and --jobs 1 layouts differ"
diff -r "$T/p1" "$T/p2" >/dev/null || fail "--jobs 2 and --jobs 1 layouts differ"
diff -r "$T/c1/blobs" "$T/c4/blobs" >/dev/null || fail "the blob caches differ"
ok "pull --jobs 2 and --jobs 1: as many at once; every layout byte-identical to the serial one"

# ---- assemble from a registry base: its layers come --jobs at once; the image as with --jobs 1
gate 6
expect_status 0 $OCILAMBDA assemble --base "$REF" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --cache-dir "$T/cb4" --output "oci:$T/ab4:x"
ab4=$(cat "$T/stdout")
no_gate_timeout "assemble --base REGISTRY"
[ "$(blob_gets)" = 6 ] || fail "assemble --base REGISTRY: $(blob_gets) blob GETs at once, want 6"
netproxy_rules np '{"rules": []}'
: >"$np_LOG"
expect_status 0 $OCILAMBDA assemble --jobs 1 --base "$REF" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --cache-dir "$T/cb1" --output "oci:$T/ab1:x"
[ "$(blob_gets)" = 1 ] || fail "assemble --jobs 1: $(blob_gets) blob GETs at once"
[ "$(cat "$T/stdout")" = "$ab4" ] || fail "assemble --jobs 1 made $(cat "$T/stdout"), default --jobs $ab4"
diff -r "$T/ab1" "$T/ab4" >/dev/null || fail "the assembled layouts differ"
ok "assemble --base REGISTRY: six base layers fetched at once (the default --jobs); the image byte-identical to --jobs 1"

# ---- a connection dropped mid-blob during concurrent downloads: resumed with Range
L5=$(json "$T/m6.json" 'j["layers"][5]["digest"]')
netproxy_rules np "{\"rules\": [{\"match\": \"/blobs/$L5\", \"method\": \"GET\", \"action\": \"drop\", \"times\": 1}]}"
: >"$np_LOG"
expect_status 0 $OCILAMBDA pull --cache-dir "$T/cd" "$REF" --output "oci:$T/pd:x"
[ "$(reglib_count "$np_LOG" "^GET /v2/lambda/python/blobs/$L5 206 ")" = 1 ] ||
	fail "the dropped layer was not resumed with a 206: $(grep "$L5" "$np_LOG")"
diff -r "$T/p1" "$T/pd" >/dev/null || fail "the resumed pull differs"
netproxy_rules np "{\"rules\": [{\"match\": \"/blobs/$L5\", \"method\": \"GET\", \"status\": 500, \"times\": 1000}]}"
expect_fail 3 "HTTP 500" $OCILAMBDA pull --retry 1 --cache-dir "$T/ce" "$REF" --output "oci:$T/pe:x"
[ ! -e "$T/pe" ] || fail "a failed pull wrote its output"
[ ! -e "$T/ce/blobs/sha256/${L5#sha256:}" ] || fail "the failed blob is in the cache"
no_litter "$T/ce"
ok "concurrent pull: a dropped connection resumes with Range; a 5xx storm fails (exit 3), nothing written"

# ---- push: --jobs uploads together; a second push uploads and reads nothing
gate 6 POST '/blobs/uploads/$'
expect_status 0 $OCILAMBDA push "oci:$T/p4:x" "docker://$np_HOST/copy/six:1"
no_gate_timeout "push (default --jobs)"
[ "$(uploads)" -ge 6 ] || fail "push: $(uploads) uploads at once"
[ "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$reg_HOST/copy/six:1")" = "$SIX" ] ||
	fail "skopeo reads another digest"
netproxy_rules np '{"rules": []}'
: >"$np_LOG"
# a layer of the layout corrupted (same size): the registry has it, so it is not read
L4=$(json "$T/m6.json" 'j["layers"][4]["digest"]')
cp -r "$T/p4" "$T/p4bad"
f=$T/p4bad/blobs/sha256/${L4#sha256:}
chmod u+w "$f"
"$PY" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(100); f.write(b"X" * 16)' "$f"
expect_status 0 $OCILAMBDA push "oci:$T/p4bad:x" "docker://$np_HOST/copy/six:2"
[ "$(reglib_count "$np_LOG" '^BEGIN .* (POST|PATCH|PUT) /v2/copy/six/blobs/uploads/')" = 0 ] ||
	fail "a second push uploaded: $(grep uploads "$np_LOG")"
ok "push: four uploads at once; blobs the registry has are neither uploaded nor read"

# ---- assemble --output docker://: each new layer is uploaded while it is compressed
# A conda layer much bigger than what the compressor may run ahead of the upload.
cp -r "$P" "$T/prefix"
"$PY" -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(72 << 20))' "$T/prefix/lib/big.bin"
asm() {
	$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$T/prefix" --code "$T/code" \
		--handler example.lambda_handler "$@"
}
expect_status 0 asm --cache-dir "$T/ca-oci" --output "oci:$T/a-oci:latest"
want=$(cat "$T/stdout")
netproxy_rules np "{\"rules\": [{\"method\": \"PATCH\", \"action\": \"hold\", \"release\": \"$T/release\", \"times\": 1}]}"
: >"$np_LOG"
asm --cache-dir "$T/ca" --progress --output "docker://$np_HOST/fn/stream:1" >"$T/a.out" 2>"$T/a.err" &
apid=$!
wait_until 120 "the first PATCH of the conda layer" grep -q '^HOLD ' "$np_LOG"
grep -q "packing code" "$T/a.err" && fail "the conda layer was compressed before its upload began: $(cat "$T/a.err")"
kill -0 "$apid" || fail "assemble ended while its upload was held"
touch "$T/release"
rc=0
wait "$apid" || rc=$?
[ "$rc" = 0 ] || fail "assemble --output docker:// (exit $rc): $(cat "$T/a.err")"
[ "$(cat "$T/a.out")" = "$np_HOST/fn/stream@$want" ] || fail "pushed $(cat "$T/a.out"), built $want"
held=$(grep -m1 '^HOLD ' "$np_LOG" | sed 's/^HOLD id=\([0-9]*\) .*/\1/')
grep -Eq "^PATCH /v2/fn/stream/blobs/uploads/[^ ]+ 202 .* id=$held\$" "$np_LOG" ||
	fail "the held PATCH did not go through: $(grep PATCH "$np_LOG")"
[ "$(reglib_count "$np_LOG" '^PATCH /v2/fn/stream/blobs/uploads/[^ ]+ 202 ')" -ge 2 ] ||
	fail "the conda layer went in one piece: $(grep -E '^(PATCH|PUT) ' "$np_LOG")"
# the parts: at least 5 MiB each but the last (ECR's rule)
awk '/^PATCH \/v2\/fn\/stream\/.* 202 / { for (i = 1; i <= NF; i++) if ($i ~ /^in=/) print substr($i, 4) }' \
	"$np_LOG" >"$T/parts"
nonempty "PATCH sizes" "$(cat "$T/parts")"
[ "$(awk '$1 < 5242880' "$T/parts" | wc -l)" -le 1 ] || fail "parts under 5 MiB: $(cat "$T/parts")"
tail -1 "$T/parts" >/dev/null
man=$(grep -n '^PUT /v2/fn/stream/manifests/' "$np_LOG" | cut -d: -f1)
last_blob=$(grep -n '^PUT /v2/fn/stream/blobs/uploads/' "$np_LOG" | tail -1 | cut -d: -f1)
nonempty "manifest PUT" "$man"
[ "$man" -gt "$last_blob" ] || fail "the manifest went before a blob"
conda=$(skopeo inspect --raw "oci:$T/a-oci:latest" | json /dev/stdin 'j["layers"][-3]["digest"]')
[ -f "$T/ca/blobs/sha256/${conda#sha256:}" ] || fail "the streamed layer is not in the local cache"
expect_status 0 asm --cache-dir "$T/ca" --progress --output "oci:$T/a2:latest"
grep -q "from the cache" "$T/stderr" || fail "the streamed layer is not in the layer cache: $(cat "$T/stderr")"
[ "$(cat "$T/stdout")" = "$want" ] || fail "rebuilt from the cache: $(cat "$T/stdout")"
ok "assemble --output docker://: the conda layer's first part reached the registry before its compression ended; parts >= 5 MiB, manifest last, the layer in the local cache"

# ---- a registry that wants parts of at least 20 MiB (OCI-Chunk-Min-Length) gets them: every
# part but the last is 20 MiB (by default they would be 5 to 16 MiB)
netproxy_rules np '{"rules": [{"method": "POST", "regex": "/blobs/uploads/$", "action": "pass", "headers": {"OCI-Chunk-Min-Length": 20971520}}]}'
: >"$np_LOG"
expect_status 0 asm --cache-dir "$T/cmin" --output "docker://$np_HOST/fn/minlen:1"
[ "$(cat "$T/stdout")" = "$np_HOST/fn/minlen@$want" ] || fail "with a chunk minimum: $(cat "$T/stdout")"
awk '/^PATCH \/v2\/fn\/minlen\/.* 202 / { for (i = 1; i <= NF; i++) if ($i ~ /^in=/) print substr($i, 4) }' \
	"$np_LOG" >"$T/parts"
[ "$(wc -l <"$T/parts")" -ge 3 ] || fail "the conda layer in fewer than three parts: $(cat "$T/parts")"
[ "$(sed '$d' "$T/parts" | awk '$1 != 20971520' | wc -l)" = 0 ] ||
	fail "parts other than 20 MiB before the last: $(cat "$T/parts")"
[ "$(tail -1 "$T/parts")" -le 20971520 ] || fail "the last part is over 20 MiB: $(cat "$T/parts")"
netproxy_rules np '{"rules": []}'
ok "OCI-Chunk-Min-Length: the streamed layer goes in parts of exactly that size but the last"

# ---- faults mid-stream, on a conda layer of three parts
cp -r "$P" "$T/prefix-s"
"$PY" -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(12 << 20))' "$T/prefix-s/lib/big.bin"
asm() {
	$OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$T/prefix-s" --code "$T/code" \
		--handler example.lambda_handler "$@"
}
expect_status 0 asm --cache-dir "$T/cs-oci" --output "oci:$T/s-oci:latest"
want=$(cat "$T/stdout")
netproxy_rules np '{"rules": [{"method": "PATCH", "action": "drop", "fraction": 0.5, "times": 1}]}'
: >"$np_LOG"
expect_status 0 asm --cache-dir "$T/cf1" --output "docker://$np_HOST/fn/drop:1"
[ "$(cat "$T/stdout")" = "$np_HOST/fn/drop@$want" ] || fail "after a drop: $(cat "$T/stdout")"
[ "$(reglib_count "$np_LOG" '^PATCH .* action=drop ')" = 1 ] || fail "the drop did not happen"
grep -q "retrying" "$T/stderr" || fail "the retry is not said: $(cat "$T/stderr")"
netproxy_rules np '{"rules": [{"method": "PATCH", "status": 503, "times": 1}]}'
expect_status 0 asm --cache-dir "$T/cf2" --output "docker://$np_HOST/fn/503:1"
[ "$(cat "$T/stdout")" = "$np_HOST/fn/503@$want" ] || fail "after a 503: $(cat "$T/stdout")"
netproxy_rules np '{"rules": [{"method": "PATCH", "status": 500, "times": 100000}]}'
: >"$np_LOG"
expect_fail 3 "HTTP 500" asm --retry 1 --cache-dir "$T/cf3" --output "docker://$np_HOST/fn/broken:1"
[ "$(reglib_count "$np_LOG" '^BEGIN .* PUT /v2/fn/broken/manifests/')" = 0 ] || fail "a manifest was PUT"
rc=0
skopeo inspect --tls-verify=false "docker://$reg_HOST/fn/broken:1" >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "a manifest was published after a failed upload"
no_litter "$T/cf3"
ok "faults mid-stream: a dropped PATCH and a 503 are retried; a 5xx storm fails (exit 3), no manifest"

# ---- a registry that refuses chunked uploads gets the whole layer after compression
netproxy_rules np '{"rules": [{"method": "PATCH", "status": 405, "times": 100000}]}'
: >"$np_LOG"
expect_status 0 asm --cache-dir "$T/cm" --output "docker://$np_HOST/fn/whole:1"
[ "$(cat "$T/stdout")" = "$np_HOST/fn/whole@$want" ] || fail "monolithic: $(cat "$T/stdout")"
big=$(skopeo inspect --raw "oci:$T/s-oci:latest" | json /dev/stdin 'j["layers"][-3]["size"]')
[ "$(reglib_count "$np_LOG" '^PATCH /v2/fn/whole/blobs/uploads/[^ ]+ 405 action=status ')" -ge 1 ] ||
	fail "no PATCH was refused: $(grep -E '^(PUT|PATCH) ' "$np_LOG")"
grep -Eq "^PUT /v2/fn/whole/blobs/uploads/[^ ]+ 201 action=pass in=$big " "$np_LOG" ||
	fail "the conda layer was not PUT whole: $(grep -E '^(PUT|PATCH) ' "$np_LOG")"
netproxy_rules np '{"rules": []}'
ok "a registry refusing PATCH gets the layer in one PUT after compression"

# ---- HTTP/2: the transfers multiplexed over one connection
registry_start sec --tls
registry_seed sec "oci:$T/base6:3.8" lambda/python:six
: >"$sec_LOG"
expect_status 0 $OCILAMBDA pull --ca-file "$sec_CA" --cache-dir "$T/ch2" "$sec_HOST/lambda/python:six" \
	--output "oci:$T/ph2:x"
diff -r "$T/p1" "$T/ph2" >/dev/null || fail "the pull over HTTP/2 differs"
n=$(grep -c '"GET /v2/lambda/python/blobs/sha256:[0-9a-f]* HTTP/2.0" 200' "$sec_LOG" || true)
[ "$n" -ge 6 ] || fail "blob GETs over HTTP/2: $n: $(grep 'GET /v2' "$sec_LOG" | tail -3)"
# the client ports of the blob GETs (distribution's log quotes the URI)
ports=$(awk '/http.request.uri="\/v2\/lambda\/python\/blobs\// {
	if (match($0, /remoteaddr="[^"]*"/)) { a = substr($0, RSTART, RLENGTH); sub(/.*:/, "", a); print a } }' \
	"$sec_LOG" | sort -u | wc -l)
[ "$ports" = 1 ] || fail "HTTP/2 blob GETs came on $ports connections"
ok "HTTP/2: the blob downloads share one connection"

# ---- --jobs: every command that transfers blobs takes it
for c in pull push run assemble check inspect; do
	expect_status 0 $OCILAMBDA "$c" --help
	grep -q -- "--jobs N" "$T/stdout" || fail "$c --help lacks --jobs"
done
expect_fail 1 '--jobs "0": want 1..64' $OCILAMBDA pull --jobs 0 "$REF" --output "oci:$T/x"
expect_fail 1 '--jobs "x": want 1..64' $OCILAMBDA push --jobs x "oci:$T/p4:x" "docker://$np_HOST/x:1"
expect_fail 1 '--jobs "65": want 1..64' $OCILAMBDA run --jobs 65 "$REF"
grep -q -- '--jobs' "$SRCDIR/README.md" || fail "README does not document --jobs"
ok "--jobs on pull, push, run, assemble, check and inspect (1..64)"
done_testing
