#!/usr/bin/env bash
# Per-package layers (issue 17): by default a prefix's files are grouped by
# the conda-meta record that lists them, a lock's by package; big packages
# get a layer of their own, small ones share a fixed number of groups chosen
# by a hash of their name, files no record owns have a layer of their own and
# each record travels with its package. The image stays within 100 layers with
# the base's, every layer carries its parent directories, check passes, and
# the merged tree is the one --layers 1 (one conda layer, as before) gives.
# A bump of one package changes that package's layer only.
. "$(dirname "$0")/lib.sh"

PYV=$(cat "$FIXTURES/pyver")
B=$FIXTURES/base-run
cp -a "$FIXTURES/prefix-run" "$T/prefix"
P=$T/prefix
# a pip-installed file: no record lists it
mkdir -p "$P/lib/python$PYV/site-packages/piponly"
echo 'VALUE = 1' >"$P/lib/python$PYV/site-packages/piponly/__init__.py"
make_code "$T/code"
n=0
# build [ARGS...]: assemble into a fresh layout $T/outN; sets OUT, DIGEST
build() {
	n=$((n + 1))
	OUT=$T/out$n
	DIGEST=$($OCILAMBDA assemble --base "oci:$B:$PYV" --conda-prefix "$P" --code "$T/code" \
		--handler example.lambda_handler --output "oci:$OUT:latest" --cache-dir "$T/cache" "$@" \
		2>"$T/err$n") || fail "assemble $*: $(cat "$T/err$n")"
}
# conda_layers OUT: "DIGEST<TAB>created_by<TAB>path,path,..." per conda layer (those
# neither the base's nor the last two, code and runtime), bottom first; paths
# relative to /opt/conda-env, directories with a trailing /
conda_layers() {
	"$PY" - "$1" "$B" <<'PYEOF'
import json, sys, tarfile
out, base = sys.argv[1], sys.argv[2]
def manifest(layout):
    idx = json.load(open(layout + "/index.json"))
    return json.load(open(layout + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
m = manifest(out)
cfg = json.load(open(out + "/blobs/sha256/" + m["config"]["digest"][7:]))
hist = [h for h in cfg["history"] if not h.get("empty_layer")]
nbase = len(manifest(base)["layers"])
for i, l in enumerate(m["layers"][nbase:-2], nbase):
    names = []
    with tarfile.open(out + "/blobs/sha256/" + l["digest"][7:]) as t:
        for e in t:
            if e.name.startswith("opt/conda-env/"):
                names.append(e.name[len("opt/conda-env/"):] + ("/" if e.isdir() else ""))
    print("%s\t%s\t%s" % (l["digest"], hist[i]["created_by"], ",".join(names)))
PYEOF
}
# records PREFIX: "RECORD<TAB>path,path,..." per conda-meta record
records() {
	"$PY" - "$1" <<'PYEOF'
import glob, json, os, sys
for f in sorted(glob.glob(sys.argv[1] + "/conda-meta/*.json")):
    j = json.load(open(f))
    paths = set(j.get("files") or []) | {p["_path"] for p in (j.get("paths_data") or {}).get("paths", [])}
    print("%s\t%s" % (os.path.basename(f), ",".join(sorted(paths))))
PYEOF
}

build
first=$DIGEST
conda_layers "$OUT" >"$T/layers1"
nl=$(wc -l <"$T/layers1")
[ "$nl" -ge 3 ] || fail "per-package layers by default: $nl conda layers: $(cut -f2 "$T/layers1")"
records "$P" >"$T/records"
nonempty "records" "$(cat "$T/records")"
# each record's files and the record itself in one layer, and only there
while IFS=$'\t' read -r rec paths; do
	owner=$(grep -F -- "conda-meta/$rec," "$T/layers1" | cut -f1)
	[ -z "$owner" ] && owner=$(grep -F -- ",conda-meta/$rec" "$T/layers1" | cut -f1)
	[ "$(wc -w <<<"$owner")" = 1 ] || fail "$rec is in one layer: '$owner'"
	IFS=, read -r -a files <<<"$paths"
	for f in "${files[@]}"; do
		where=$(awk -F'\t' -v f="$f" '{ n = split($3, a, ","); for (i = 1; i <= n; i++) if (a[i] == f) print $1 }' "$T/layers1")
		[ "$where" = "$owner" ] || fail "$f of $rec is in '$where', not with its record in $owner"
	done
done <"$T/records"
ok "each package's files and its conda-meta record share one layer ($nl conda layers)"

unowned=$(grep -F "site-packages/piponly/__init__.py" "$T/layers1" | cut -f1)
[ "$(wc -w <<<"$unowned")" = 1 ] || fail "the pip-installed file is in one layer"
# (grep -x >/dev/null, not -q: -q stops reading and tr dies of SIGPIPE under pipefail)
grep -F "$unowned" "$T/layers1" | cut -f3 | tr , '\n' | grep -x "conda-meta/history" >/dev/null ||
	fail "conda-meta/history (no record lists it) is with the other unowned files"
for rec in $(cut -f1 "$T/records"); do
	! grep -F "$unowned" "$T/layers1" | cut -f3 | tr , '\n' | grep -x "conda-meta/$rec" >/dev/null ||
		fail "a record in the unowned layer: $rec"
done
ok "files no record owns have a layer of their own"

# every layer carries its parents: check passes, and umoci/skopeo read the image
$OCILAMBDA check "oci:$OUT:latest" >"$T/check" 2>&1 || fail "check: $(cat "$T/check")"
skopeo inspect "oci:$OUT:latest" >/dev/null || fail "skopeo inspect"
umoci unpack --rootless --image "$OUT:latest" "$T/bundle-auto" >/dev/null || fail "umoci unpack"
ok "check passes; skopeo and umoci read the image"

build --layers 1
one=$DIGEST
conda_layers "$OUT" >"$T/layers-one"
[ "$(wc -l <"$T/layers-one")" = 1 ] || fail "--layers 1: one conda layer"
cut -f2 "$T/layers-one" | grep -x "ocilambda: conda prefix at /opt/conda-env" >/dev/null ||
	fail "--layers 1 is today's layer: $(cut -f2 "$T/layers-one")"
umoci unpack --rootless --image "$OUT:latest" "$T/bundle-one" >/dev/null
# the same tree, with the same modes, link targets and contents
tree_of() { (cd "$1" && find . -printf '%p %y %m %l\n' | LC_ALL=C sort && find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2); }
tree_of "$T/bundle-auto/rootfs" >"$T/tree-auto"
tree_of "$T/bundle-one/rootfs" >"$T/tree-one"
cmp -s "$T/tree-auto" "$T/tree-one" || fail "per-package layers merge into another tree: $(diff "$T/tree-one" "$T/tree-auto" | head)"
ok "--layers 1 gives one conda layer; per-package layers merge into the same tree"

build
[ "$DIGEST" = "$first" ] || fail "same inputs, same digest: $DIGEST != $first"
build --no-cache
[ "$DIGEST" = "$first" ] || fail "packed again, same digest"
ok "deterministic: the same digest again, and when packed again"

build --layers 3
conda_layers "$OUT" >"$T/layers3"
[ "$(wc -l <"$T/layers3")" -le 3 ] || fail "--layers 3: $(wc -l <"$T/layers3") conda layers"
$OCILAMBDA check "oci:$OUT:latest" >/dev/null 2>&1 || fail "check --layers 3"
ok "--layers N: at most N conda layers"

# a bump of a small package (a group) and of a big one (its own layer)
bump() { # NAME: append to its .py files, give its record a new version
	"$PY" - "$P" "$1" <<'PYEOF'
import glob, hashlib, json, os, sys
prefix, name = sys.argv[1], sys.argv[2]
for f in glob.glob(prefix + "/conda-meta/*.json"):
    j = json.load(open(f))
    if j["name"] != name:
        continue
    for p in j["paths_data"]["paths"]:
        full = os.path.join(prefix, p["_path"])
        if p["_path"].endswith(".py"):
            with open(full, "a") as fh:
                fh.write("# bumped\n")
            data = open(full, "rb").read()
            p["sha256"] = hashlib.sha256(data).hexdigest()
            p["size_in_bytes"] = len(data)
    j["version"] += ".post1"
    os.unlink(f)
    with open("%s/conda-meta/%s-%s-%s.json" % (prefix, name, j["version"], j["build"]), "w") as fh:
        json.dump(j, fh, indent=2, sort_keys=True)
    sys.exit(0)
sys.exit("no record " + name)
PYEOF
}
changed() { # BEFORE AFTER: conda layer digests of AFTER not in BEFORE
	cut -f1 "$2" | grep -cvxF -f <(cut -f1 "$1") || true
}
bump six
build
conda_layers "$OUT" >"$T/layers-six"
[ "$(wc -l <"$T/layers-six")" = "$nl" ] || fail "a bump keeps the layer count"
[ "$(changed "$T/layers1" "$T/layers-six")" = 1 ] || fail "bumping six changed $(changed "$T/layers1" "$T/layers-six") conda layers"
bump numpy
build
conda_layers "$OUT" >"$T/layers-numpy"
[ "$(changed "$T/layers-six" "$T/layers-numpy")" = 1 ] || fail "bumping numpy changed $(changed "$T/layers-six" "$T/layers-numpy") conda layers"
grep -F "conda-meta/numpy-" "$T/layers-numpy" | cut -f3 | tr , '\n' | grep -E '^conda-meta/[^/]+$' |
	grep -vx "conda-meta/numpy-.*" >/dev/null && fail "numpy (big) shares its layer"
$OCILAMBDA check "oci:$OUT:latest" >/dev/null 2>&1 || fail "check after the bumps"
ok "a bump changes one conda layer: a small package's group, a big package's own"

# the image stays within 100 layers with the base's
"$PY" - "$B" "$T/base-many" "$PYV" <<'PYEOF'
# the run base with 90 more (empty) layers, written as an OCI layout
import gzip, hashlib, io, json, os, shutil, sys, tarfile
src, dst, tag = sys.argv[1:4]
shutil.copytree(src, dst)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open("%s/blobs/sha256/%s" % (dst, d), "wb").write(data)
    return "sha256:" + d, len(data)
idx = json.load(open(dst + "/index.json"))
m = json.load(open(dst + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
cfg = json.load(open(dst + "/blobs/sha256/" + m["config"]["digest"][7:]))
for i in range(90):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        e = tarfile.TarInfo("etc/many-%02d" % i)
        e.size = 0
        t.addfile(e)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    digest, size = put(gzip.compress(raw.getvalue(), mtime=0))
    m["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": digest, "size": size})
    cfg["rootfs"]["diff_ids"].append(diff_id)
    cfg.setdefault("history", []).append({"created_by": "many %d" % i})
cd, cs = put(json.dumps(cfg).encode())
m["config"]["digest"], m["config"]["size"] = cd, cs
md, ms = put(json.dumps(m).encode())
idx["manifests"][0]["digest"], idx["manifests"][0]["size"] = md, ms
json.dump(idx, open(dst + "/index.json", "w"))
PYEOF
nb=$(json "$T/base-many/blobs/sha256/$(json "$T/base-many/index.json" 'j["manifests"][0]["digest"][7:]')" 'len(j["layers"])')
[ "$nb" -ge 91 ] || fail "the many-layer base has $nb layers"
d=$($OCILAMBDA assemble --base "oci:$T/base-many:$PYV" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/many:latest" --cache-dir "$T/cache" 2>"$T/err-many") ||
	fail "assemble on a 9x-layer base: $(cat "$T/err-many")"
total=$(skopeo inspect "oci:$T/many:latest" | json /dev/stdin 'len(j["Layers"])')
[ "$total" -le 100 ] || fail "$total layers with the base's"
$OCILAMBDA check "oci:$T/many:latest" >/dev/null 2>&1 || fail "check of the many-layer image"
ok "within 100 layers with the base's ($nb base layers, $total in all)"

# a lock: one layer per package (with its record); the wheel's files too
L=$FIXTURES/lock
d=$($OCILAMBDA assemble --base "oci:$B:$PYV" --conda-lock "$L/conda-lock.yml" --pkgs-dir "$L/pkgs" \
	--wheels-dir "$L/wheels" --code "$T/code" --handler example.lambda_handler --no-compile \
	--output "oci:$T/lock:latest" --cache-dir "$T/cache" 2>"$T/err-lock") || fail "lock build: $(cat "$T/err-lock")"
conda_layers "$T/lock" >"$T/layers-lock"
for pkg in python hellotool whereami greetpkg; do
	[ "$(grep -cF "conda-meta/$pkg-" "$T/layers-lock")" = 1 ] || fail "$pkg's record in one layer"
done
[ "$(wc -l <"$T/layers-lock")" -ge 3 ] || fail "a lock's packages in layers of their own: $(cut -f2 "$T/layers-lock")"
$OCILAMBDA check "oci:$T/lock:latest" >/dev/null 2>&1 || fail "check of the lock image"
umoci unpack --rootless --image "$T/lock:latest" "$T/bundle-lock" >/dev/null || fail "umoci unpack (lock)"
[ "$(cat "$T/bundle-lock/rootfs/opt/conda-env/share/common/owner.txt")" = whereami ] ||
	fail "the path two packages share: the later package's, in the merged tree too"
ok "a lock build: each package's layer holds its record; the later package still wins a shared path"

# docker-archive and bad values
d=$($OCILAMBDA assemble --base "oci:$B:$PYV" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "docker-archive:$T/fn.tar:fn:v1" --cache-dir "$T/cache" 2>"$T/err-arch") ||
	fail "docker-archive: $(cat "$T/err-arch")"
skopeo inspect "docker-archive:$T/fn.tar" >/dev/null || fail "skopeo reads the archive"
ok "docker-archive: output with per-package layers"

for bad in 0 101 x 1x ""; do
	expect_fail 1 "--layers \"$bad\"" $OCILAMBDA assemble --base "oci:$B:$PYV" --conda-prefix "$P" \
		--code "$T/code" --handler example.lambda_handler --output "oci:$T/bad:latest" --layers "$bad"
done
[ ! -e "$T/bad" ] || fail "nothing written for a bad --layers"
no_litter "$T"
ok "--layers 0, 101, x, 1x, '': usage errors (exit 1), nothing written"
done_testing
