#!/usr/bin/env bash
# --cache-repo REGISTRY/REPO (issue 17): the layers a build makes are recorded
# in a repository (one small OCI artifact per cache key, tagged by the key's
# hash), so that another machine (an empty --cache-dir: a fresh CI runner)
# packs nothing. Counted in a real docker-registry's own log
# (tests/registry/lib.sh reglib_blob_*):
#   - a bump changes one layer's digest and uploads that layer and the
#     config only;
#   - a second machine pushing to the same registry mounts every layer from
#     the cache repository: it uploads the config only, downloads no conda
#     layer, and gives the same image;
#   - oci: and docker-archive: outputs download the layers and verify them;
#   - an entry whose blob is gone, or whose descriptor lies, means a repack,
#     never a failure or a wrong image;
#   - --cache-repo-mode read never writes; a cache repository that refuses
#     writes, or is down, costs a warning, never the build;
#   - lock builds too. skopeo and umoci read every result.
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"

PYV=$(cat "$FIXTURES/pyver")
B=$FIXTURES/base-run
cp -a "$FIXTURES/prefix-run" "$T/prefix"
P=$T/prefix
make_code "$T/code"
registry_start reg
registry_seed reg "oci:$B:$PYV" "lambda/python:$PYV"
R=$reg_HOST
CR=$R/ci/cache
# assemble MACHINE OUTPUT [ARGS...]: a build on "machine" MACHINE (its own
# --cache-dir) with --cache-repo $CR; sets REF (what it printed), ERR (stderr)
assemble() {
	local machine=$1 out=$2 rc=0
	shift 2
	ERR=$T/err-$machine-$(date +%s%N)
	REF=$($OCILAMBDA assemble --base "$R/lambda/python:$PYV" --conda-prefix "$P" --code "$T/code" \
		--handler example.lambda_handler --output "$out" --cache-dir "$T/machine-$machine" \
		--cache-repo "$CR" "$@" 2>"$ERR") || rc=$?
	[ "$rc" = 0 ] || fail "assemble on $machine -> $out: exit $rc: $(cat "$ERR")"
}
# mark / since: the registry log lines after the last mark
mark() { MARK=$(wc -l <"$reg_LOG"); }
since() { tail -n +"$((MARK + 1))" "$reg_LOG" >"$T/since.log"; echo "$T/since.log"; }
manifest() { # REPO REF -> file with the manifest
	curl -sf --noproxy '*' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-o "$T/m.json" "$reg_URL/v2/$1/manifests/$2" || fail "no manifest $1:$2"
	echo "$T/m.json"
}
# new_layers REPO TAG: the digests of the layers ocilambda made (not the base's)
new_layers() {
	local base m
	base=$(manifest lambda/python "$PYV")
	json "$base" '"\n".join(l["digest"] for l in j["layers"])' >"$T/base.layers"
	m=$(manifest "$1" "$2")
	json "$m" '"\n".join(l["digest"] for l in j["layers"])' | grep -vxF -f "$T/base.layers"
}
new_rows() { grep -cE '^ +[0-9]+ +[a-z]+ .* new ' "$ERR" || true; }

# --- machine a: the first build records every new layer -------------------------------
mark
assemble a "docker://$R/fn:v1"
[ "$REF" = "$R/fn@$(sha256_of "$(manifest fn v1)")" ] || fail "pinned reference: $REF"
new_layers fn v1 >"$T/v1.layers"
nl=$(wc -l <"$T/v1.layers")
[ "$nl" -ge 4 ] || fail "per-package conda layers, code and runtime: $nl"
curl -sf --noproxy '*' "$reg_URL/v2/ci/cache/tags/list" >"$T/tags.json" || fail "cache repo tags"
[ "$(json "$T/tags.json" 'len(j["tags"])')" = "$nl" ] || fail "one cache entry per new layer: $(cat "$T/tags.json")"
tag=$(json "$T/tags.json" 'j["tags"][0]')
[[ $tag =~ ^sha256-[0-9a-f]{64}$ ]] || fail "tagged by the key's hash: $tag"
art=$(manifest ci/cache "$tag")
[ "$(json "$art" 'j["artifactType"]')" = application/vnd.ocilambda.layer-cache.v1+json ] ||
	fail "an OCI artifact: $(cat "$art")"
skopeo inspect --raw --tls-verify=false "docker://$R/ci/cache:$tag" >/dev/null || fail "skopeo reads an entry"
log=$(since)
nonempty "new layers" "$(cat "$T/v1.layers")"
for l in $(cat "$T/v1.layers"); do
	[ "$(reglib_blobs "$log" upload ci/cache | grep -c "^$l ")" = 0 ] ||
		fail "layer $l uploaded twice (to the cache repository too)"
done
[ "$(reglib_blob_count "$log" mount ci/cache)" = "$nl" ] || fail "the layers are mounted into the cache repository"
ok "first build: $nl new layers, each recorded as an artifact tagged sha256-<key>, mounted (not uploaded) into the cache repository"

# --- a bump on the same machine ----------------------------------------------------------
"$PY" - "$P" six <<'PYEOF'
import glob, hashlib, json, os, sys
prefix, name = sys.argv[1], sys.argv[2]
for f in glob.glob(prefix + "/conda-meta/*.json"):
    j = json.load(open(f))
    if j["name"] != name:
        continue
    for p in j["paths_data"]["paths"]:
        if p["_path"].endswith(".py"):
            full = os.path.join(prefix, p["_path"])
            with open(full, "a") as fh:
                fh.write("# bumped\n")
            data = open(full, "rb").read()
            p["sha256"], p["size_in_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    j["version"] += ".post1"
    os.unlink(f)
    json.dump(j, open("%s/conda-meta/%s-%s-%s.json" % (prefix, name, j["version"], j["build"]), "w"), indent=2)
PYEOF
mark
assemble a "docker://$R/fn:v2"
new_layers fn v2 >"$T/v2.layers"
changed=$(grep -vxF -f "$T/v1.layers" "$T/v2.layers")
[ "$(wc -l <<<"$changed")" = 1 ] || fail "a bump changes one layer: $changed"
log=$(since)
cfg=$(json "$(manifest fn v2)" 'j["config"]["digest"]')
[ "$(reglib_blobs "$log" upload fn | cut -d' ' -f1 | LC_ALL=C sort | tr '\n' ' ')" = \
	"$(printf '%s\n' "$changed" "$cfg" | LC_ALL=C sort | tr '\n' ' ')" ] ||
	fail "a bump uploads the changed layer and the config only: $(reglib_blobs "$log" upload fn)"
[ "$(new_rows)" = 1 ] || fail "one layer packed: $(cat "$ERR")"
v2=$REF
ok "a bump changes one layer and uploads that layer and the config only"

# --- machine b: empty cache, same registry -----------------------------------------------
mark
assemble b "docker://$R/other/fn:v2"
[ "${REF#*@}" = "${v2#*@}" ] || fail "the same image: $REF vs $v2"
[ "$(new_rows)" = 0 ] || fail "machine b packed: $(cat "$ERR")"
log=$(since)
[ "$(reglib_blob_count "$log" upload other/fn)" -le 1 ] || fail "uploads: $(reglib_blobs "$log" upload)"
head -n -2 "$T/v2.layers" >"$T/v2.conda" # without the code and the python link
nonempty "conda layers" "$(cat "$T/v2.conda")"
for l in $(cat "$T/v2.conda"); do
	[ "$(reglib_blobs "$log" download | grep -c "^$l ")" = 0 ] || fail "conda layer $l downloaded"
done
[ "$(reglib_blob_count "$log" mount other/fn)" -ge "$(wc -l <"$T/v2.conda")" ] ||
	fail "the conda layers were mounted: $(reglib_blobs "$log" mount)"
skopeo inspect --tls-verify=false "docker://$R/other/fn:v2" >/dev/null || fail "skopeo inspect"
ok "a second machine packs nothing, mounts the conda layers, uploads only the config, downloads no conda layer"

# --- machines c, d: outputs that are files download and verify -----------------------------
mark
assemble c "oci:$T/c:latest"
[ "$REF" = "${v2#*@}" ] || fail "oci: the same image: $REF"
[ "$(new_rows)" = 0 ] || fail "machine c packed: $(cat "$ERR")"
log=$(since)
for l in $(cat "$T/v2.layers"); do
	[ "$(reglib_blobs "$log" download ci/cache | grep -c "^$l 1$")" = 1 ] || fail "layer $l downloaded once"
done
umoci unpack --rootless --image "$T/c:latest" "$T/bundle-c" >/dev/null || fail "umoci unpack"
$OCILAMBDA check "oci:$T/c:latest" >/dev/null 2>&1 || fail "check"
assemble d "docker-archive:$T/d.tar:fn:v2"
skopeo inspect "docker-archive:$T/d.tar" >/dev/null || fail "skopeo reads the archive"
ok "oci: and docker-archive: outputs download the layers from the cache repository (same image)"

# --- an entry whose blob is gone: repacked ------------------------------------------------
victim=$(head -1 "$T/v2.layers")
code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -X DELETE "$reg_URL/v2/ci/cache/blobs/$victim")
[ "$code" = 202 ] || fail "DELETE the blob from the cache repository: $code"
assemble e "docker://$R/e/fn:v2"
[ "${REF#*@}" = "${v2#*@}" ] || fail "the same image after a repack"
[ "$(new_rows)" = 1 ] || fail "the layer whose blob is gone was packed again: $(cat "$ERR")"
assemble e2 "oci:$T/e2:latest"
[ "$REF" = "${v2#*@}" ] || fail "the repack recorded it again"
[ "$(new_rows)" = 0 ] || fail "recorded again after the repack"
skopeo inspect --tls-verify=false "docker://$R/e/fn:v2" >/dev/null || fail "skopeo inspect e"
umoci unpack --rootless --image "$T/e2:latest" "$T/bundle-e2" >/dev/null || fail "umoci unpack e2"
ok "an entry whose blob is gone means a repack (and is recorded again)"

# --- a descriptor that lies: repacked, never a wrong image ---------------------------------
tag=$(json "$T/tags.json" 'j["tags"][1]')
art=$(manifest ci/cache "$tag")
"$PY" - "$art" "$T/forged.json" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
m["layers"][0]["size"] += 1  # the blob is one byte shorter than it says
json.dump(m, open(sys.argv[2], "w"))
PYEOF
code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' -X PUT \
	-H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$T/forged.json" \
	"$reg_URL/v2/ci/cache/manifests/$tag")
[ "$code" = 201 ] || fail "forged entry stored: $code"
assemble f "oci:$T/f:latest"
[ "$REF" = "${v2#*@}" ] || fail "a lying descriptor does not change the image"
[ "$(new_rows)" = 1 ] || fail "the lying entry's layer was packed: $(cat "$ERR")"
umoci unpack --rootless --image "$T/f:latest" "$T/bundle-f" >/dev/null || fail "umoci unpack f"
ok "a descriptor whose size lies means a repack, and the same image"

# --- a registry output on another registry: the layers come from the cache repository -------
registry_start reg3
mark
m3=$(wc -l <"$reg3_LOG")
assemble x "docker://$reg3_HOST/cross/fn:v2"
[ "${REF#*@}" = "${v2#*@}" ] || fail "another registry: the same image: $REF vs $v2"
[ "$(new_rows)" = 0 ] || fail "machine x packed: $(cat "$ERR")"
log=$(since)
tail -n +"$((m3 + 1))" "$reg3_LOG" >"$T/since3.log"
for l in $(cat "$T/v2.layers"); do
	[ "$(reglib_blobs "$log" download ci/cache | grep -c "^$l 1$")" = 1 ] ||
		fail "layer $l not downloaded once from the cache repository: $(reglib_blobs "$log" download)"
	[ "$(reglib_blobs "$T/since3.log" upload cross/fn | grep -c "^$l ")" = 1 ] ||
		fail "layer $l not uploaded to the output: $(reglib_blobs "$T/since3.log" upload)"
done
skopeo copy --quiet --src-tls-verify=false "docker://$reg3_HOST/cross/fn:v2" "oci:$T/cross:v2" ||
	fail "skopeo copies the image from the other registry"
ok "a registry output elsewhere: the cached layers are downloaded from the cache repository, verified and uploaded; nothing packed, same image"

# --- the same registry refusing mounts: the layers come down from the cache repository ----
faultproxy_start nm "$R"
faultproxy_rules nm '{"rules": [{"match": "mount=", "method": "POST", "status": 202}]}'
mark
ERR=$T/err-nomount
REF=$($OCILAMBDA assemble --base "$R/lambda/python:$PYV" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "docker://$nm_HOST/nomount/fn:v2" --cache-dir "$T/machine-nm" \
	--cache-repo "$nm_HOST/ci/cache" 2>"$ERR") || fail "mounts refused fail the build: $(cat "$ERR")"
[ "${REF#*@}" = "${v2#*@}" ] || fail "mounts refused: the same image: $REF vs $v2"
[ "$(new_rows)" = 0 ] || fail "mounts refused: packed: $(cat "$ERR")"
[ "$(reglib_count "$nm_LOG" 'mount=.* 202 ')" -gt 0 ] || fail "no mount was refused: $(cat "$nm_LOG")"
log=$(since)
for l in $(cat "$T/v2.layers"); do
	[ "$(reglib_blobs "$log" download ci/cache | grep -c "^$l 1$")" = 1 ] ||
		fail "mounts refused: layer $l not downloaded once from the cache repository"
	[ "$(reglib_blobs "$log" upload nomount/fn | grep -c "^$l ")" = 1 ] ||
		fail "mounts refused: layer $l not uploaded: $(reglib_blobs "$log" upload)"
done
skopeo inspect --tls-verify=false "docker://$R/nomount/fn:v2" >/dev/null || fail "skopeo inspect nomount"
ok "a registry that refuses mounts: the layers found in the cache repository are downloaded from it and uploaded; nothing packed, same image"

# --- read-only: never writes; refused writes and a dead cache only warn ---------------------
faultproxy_start ro "$R"
faultproxy_rules ro '{"rules": [{"regex": "^/v2/ci/cache/(blobs/uploads|manifests)", "method": "PUT", "status": 403},
	{"regex": "^/v2/ci/cache/blobs/uploads", "method": "POST", "status": 403}]}'
echo "# read-only edit" >>"$T/code/example.py"
ERR=$T/err-ro
REF=$($OCILAMBDA assemble --base "$R/lambda/python:$PYV" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/ro:latest" --cache-dir "$T/machine-ro" \
	--cache-repo "$ro_HOST/ci/cache" --cache-repo-mode read 2>"$ERR") || fail "read mode: $(cat "$ERR")"
[ "$(new_rows)" = 1 ] || fail "read mode: only the changed code layer packed: $(cat "$ERR")"
[ "$(reglib_count "$ro_LOG" '^(PUT|POST|PATCH|DELETE) ')" = 0 ] || fail "read mode wrote: $(grep -E '^(PUT|POST)' "$ro_LOG")"
! grep -q "warning: cache repository" "$ERR" || fail "read mode: no warning about the cache: $(cat "$ERR")"
ERR=$T/err-rw
REF=$($OCILAMBDA assemble --base "$R/lambda/python:$PYV" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/rw:latest" --cache-dir "$T/machine-rw" \
	--cache-repo "$ro_HOST/ci/cache" 2>"$ERR") || fail "refused writes fail the build: $(cat "$ERR")"
grep -q "^ocilambda: warning: .*ci/cache.*not recorded" "$ERR" || fail "a warning says the cache was not written: $(cat "$ERR")"
stop_all
ERR=$T/err-down
REF=$($OCILAMBDA assemble --base "oci:$B:$PYV" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/down:latest" --cache-dir "$T/machine-down" \
	--cache-repo "$CR" --retry 0 2>"$ERR") || fail "a cache repository that is down fails the build: $(cat "$ERR")"
grep -q "^ocilambda: warning: .*ci/cache" "$ERR" || fail "a warning names the cache repository: $(cat "$ERR")"
umoci unpack --rootless --image "$T/down:latest" "$T/bundle-down" >/dev/null || fail "umoci unpack"
for o in ro rw; do
	umoci unpack --rootless --image "$T/$o:latest" "$T/bundle-$o" >/dev/null || fail "umoci unpack $o"
done
ok "read mode never writes; refused writes and a cache repository that is down cost a warning"

# --- lock builds -----------------------------------------------------------------------
registry_start reg2
registry_seed reg2 "oci:$B:$PYV" "lambda/python:$PYV"
L=$FIXTURES/lock
lock() { # MACHINE OUTPUT
	ERR=$T/err-lock-$1
	REF=$($OCILAMBDA assemble --base "$reg2_HOST/lambda/python:$PYV" --conda-lock "$L/explicit.txt" --pkgs-dir "$L/pkgs" \
		--no-compile --code "$T/code" --handler example.lambda_handler --output "$2" \
		--cache-dir "$T/machine-$1" --cache-repo "$reg2_HOST/lock/cache" 2>"$ERR") ||
		fail "lock build on $1: $(cat "$ERR")"
}
lock la "docker://$reg2_HOST/lockfn:v1"
first=$REF
lock lb "docker://$reg2_HOST/lockfn2:v1"
[ "${REF#*@}" = "${first#*@}" ] || fail "lock: the same image on machine lb"
[ "$(new_rows)" = 0 ] || fail "lock: machine lb packed: $(cat "$ERR")"
[ "$(reglib_blob_count "$reg2_LOG" upload lockfn2)" -le 1 ] || fail "lock: uploads $(reglib_blobs "$reg2_LOG" upload lockfn2)"
skopeo inspect --tls-verify=false "docker://$reg2_HOST/lockfn2:v1" >/dev/null || fail "skopeo (lock)"
ok "lock builds: a second machine packs nothing and uploads the config only"


# --- bad options ------------------------------------------------------------------------
args=(--base "oci:$B:$PYV" --conda-prefix "$P" --code "$T/code" --handler example.lambda_handler
	--output "oci:$T/bad:latest")
expect_fail 1 '--cache-repo-mode "write"' $OCILAMBDA assemble "${args[@]}" --cache-repo "$CR" --cache-repo-mode write
expect_fail 1 "--cache-repo-mode goes with --cache-repo" $OCILAMBDA assemble "${args[@]}" --cache-repo-mode read
expect_fail 1 "--cache-repo" $OCILAMBDA assemble "${args[@]}" --cache-repo "no registry here"
expect_fail 1 "without a tag or digest" $OCILAMBDA assemble "${args[@]}" --cache-repo "$CR:latest"
expect_fail 1 "--offline" $OCILAMBDA assemble "${args[@]}" --cache-repo "$CR" --offline
[ ! -e "$T/bad" ] || fail "nothing written"
no_litter "$T"
ok "bad --cache-repo and --cache-repo-mode values: usage errors (exit 1)"
done_testing
