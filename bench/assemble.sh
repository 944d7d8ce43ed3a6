#!/bin/bash
# Benchmark of `ocilambda assemble` on a large conda-like prefix against
# `umoci insert` of the same tree, and of a code-only rebuild.
#
#   bench/assemble.sh [BUILD_DIR]          (default: build)
#
# Built once and cached under BUILD_DIR/bench (shared with bench/gzip.sh):
# the corpus (bench/corpus.sh: Debian's python3 with pandas, scipy,
# scikit-learn and matplotlib, ~600 MB in ~25k files), a conda-like prefix
# made of it (lib/ with the corpus, bin/python3.11, a conda-meta record for
# python), a small Lambda-like base layout (testdata/mk-base.sh) and a
# RelWithDebInfo ocilambda. Then, in one run:
#   - cold assemble (empty layer cache) at --compression-level 1 (fast)
#     and 6 (small, the default);
#   - umoci insert of the prefix into an empty image;
#   - a code-only rebuild: the prefix unchanged (its layer cached), one .py
#     of the code changed.
# Each timed command runs BENCH_RUNS times (default 2; the rebuild 5) and
# the best wall time counts. The last line holds the ratios, e.g.
#   fast_wall=0.31 fast_size=1.10 small_wall=0.74 small_size=0.99 rss_mb=41 rebuild_ms=38 members=1
# fast/small: our wall time and conda layer size over umoci's; rss_mb: our
# largest peak RSS; members: gzip members in our level-6 conda layer;
# fast_cpu/small_cpu: CPU time (user + system) over umoci's, steadier than
# wall time on a shared machine.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/corpus.sh"
bench_init "${1:-}"
REBUILD_RUNS=${BENCH_REBUILD_RUNS:-5}
for tool in umoci skopeo busybox; do
	command -v "$tool" >/dev/null || { log "$0: $tool not installed (make deps)"; exit 1; }
done

# --- ocilambda, optimised whatever BUILD's own type is -----------------------------
REL=$WORK/release
cmake -S "$SRC" -B "$REL" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$REL" --target ocilambda -j "$(nproc)" >/dev/null
OCIL=$REL/ocilambda

# --- inputs, built once --------------------------------------------------------------
bench_corpus "$WORK"
PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYFULL=$(/usr/bin/python3 -c 'import platform; print(platform.python_version())')
PREFIX=$WORK/prefix
if [ ! -d "$PREFIX" ]; then
	log "building $PREFIX (once)"
	rm -rf "$PREFIX.tmp"
	mkdir -p "$PREFIX.tmp/bin" "$PREFIX.tmp/conda-meta"
	cp -a "$TREE/usr/lib" "$PREFIX.tmp/lib"
	cp /usr/bin/python"$PYVER" "$PREFIX.tmp/bin/python$PYVER"
	ln -s "python$PYVER" "$PREFIX.tmp/bin/python"
	cat >"$PREFIX.tmp/conda-meta/python-$PYFULL-0.json" <<JSON
{"name": "python", "version": "$PYFULL", "build": "0", "build_number": 0,
 "channel": "bench", "subdir": "linux-64", "files": ["bin/python$PYVER"]}
JSON
	echo "==> bench prefix from Debian's python $PYFULL <==" >"$PREFIX.tmp/conda-meta/history"
	mv "$PREFIX.tmp" "$PREFIX"
fi
BASE=$WORK/base$PYVER
if [ ! -d "$BASE" ]; then
	log "building $BASE (once)"
	rm -rf "$BASE.tmp" "$BASE.tmp.tar"
	bash "$SRC/testdata/mk-base.sh" "$BASE.tmp" "$PYVER" "$PYVER" names
	rm -f "$BASE.tmp.tar"
	mv "$BASE.tmp" "$BASE"
fi
CODE=$WORK/code
rm -rf "$CODE"
mkdir -p "$CODE"
cp "$SRC/testdata/example/example.py" "$CODE/"
PREFIX_BYTES=$(du -sb "$PREFIX" | cut -f1)
PREFIX_FILES=$(find "$PREFIX" | wc -l)
tar -cf - -C "$PREFIX" . | cat >/dev/null # warm the page cache

# --- measuring -------------------------------------------------------------------------
TIMES=$WORK/time.out
declare -A WALL CPU RSS SIZE
conda_size() { # OUT_LAYOUT: the size of the conda layer (third from the top)
	local m
	m=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$1/index.json")
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][-3]["size"])' "$1/blobs/sha256/$m"
}
row() {
	printf '%-18s wall %6.2f s  cpu %6.2f s  rss %4d MB  size %10s\n' "$1" "${WALL[$1]}" \
		"${CPU[$1]}" "${RSS[$1]}" "${SIZE[$1]:--}"
}
best_of() { # NAME RUNS SETUP CMD...: best wall of RUNS runs of CMD, SETUP before each
	local name=$1 runs=$2 setup=$3 best="" i w u s m
	shift 3
	for ((i = 0; i < runs; i++)); do
		eval "$setup"
		/usr/bin/time -f '%e %U %S %M' -o "$TIMES" "$@" >/dev/null
		read -r w u s m <"$TIMES"
		if [ -z "$best" ] || awk -v a="$w" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$w
			CPU[$name]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
			RSS[$name]=$((m / 1024))
		fi
	done
	WALL[$name]=$best
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

OUT=$WORK/assemble-out
CACHE=$WORK/assemble-cache
ASM=("$OCIL" assemble --base "oci:$BASE:$PYVER" --conda-prefix "$PREFIX" --code "$CODE"
	--handler example.lambda_handler --output "oci:$OUT:latest" --cache-dir "$CACHE" --quiet)

log "prefix: $PREFIX_BYTES bytes, $PREFIX_FILES entries; $(nproc) CPUs:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%s\n' "-- cold: empty layer cache, fresh output"
for level in 1 6; do
	best_of "ours-$level" "$RUNS" 'rm -rf "$OUT" "$CACHE"; sync' "${ASM[@]}" --compression-level "$level"
	SIZE[ours-$level]=$(conda_size "$OUT")
	row "ours-$level"
done
members=$(python3 - "$OUT" <<'PY'
import hashlib, json, sys, zlib
out = sys.argv[1]
idx = json.load(open(out + "/index.json"))
m = json.load(open(out + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
c = json.load(open(out + "/blobs/sha256/" + m["config"]["digest"][7:]))
data = open(out + "/blobs/sha256/" + m["layers"][-3]["digest"][7:], "rb").read()
n, h = 0, hashlib.sha256()
while data:
    d = zlib.decompressobj(31)
    h.update(d.decompress(data))
    assert d.eof, "truncated member"
    n += 1
    data = d.unused_data
assert "sha256:" + h.hexdigest() == c["rootfs"]["diff_ids"][-3], "diff_id"
print(n)
PY
)

UMOCI=$WORK/umoci
rm -rf "$UMOCI.base"
umoci init --layout "$UMOCI.base" >/dev/null
umoci new --image "$UMOCI.base:base" >/dev/null
best_of umoci "$RUNS" 'rm -rf "$UMOCI"; cp -a "$UMOCI.base" "$UMOCI"; sync' \
	umoci insert --image "$UMOCI:base" "$PREFIX" /opt/conda-env
SIZE[umoci]=$(stat -c %s "$(ls -S "$UMOCI"/blobs/sha256/* | head -1)")
row umoci

printf '%s\n' "-- code-only rebuild: prefix unchanged (cached), one .py changed"
rm -rf "$OUT" "$CACHE"
"${ASM[@]}" >/dev/null # fills the cache
i=0
rebuild_setup='i=$((i + 1)); echo "# edit $i" >>"$CODE/example.py"; rm -rf "$OUT"'
best_ms=""
for ((r = 0; r < REBUILD_RUNS; r++)); do
	eval "$rebuild_setup"
	t0=$(date +%s%N)
	"${ASM[@]}" >/dev/null
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	if [ -z "$best_ms" ] || [ "$ms" -lt "$best_ms" ]; then best_ms=$ms; fi
done
best_of rebuild 1 "$rebuild_setup" "${ASM[@]}"
SIZE[rebuild]=$(conda_size "$OUT")
row rebuild
printf 'rebuild best of %d: %d ms\n' "$REBUILD_RUNS" "$best_ms"
[ "${SIZE[rebuild]}" = "${SIZE[ours-6]}" ] || log "warning: the rebuild's conda layer differs in size"

rss=$(printf '%s\n' "${RSS[ours-1]}" "${RSS[ours-6]}" "${RSS[rebuild]}" | sort -n | tail -1)
printf 'fast_wall=%s fast_size=%s small_wall=%s small_size=%s rss_mb=%s rebuild_ms=%s members=%s fast_cpu=%s small_cpu=%s\n' \
	"$(ratio "${WALL[ours-1]}" "${WALL[umoci]}")" "$(ratio "${SIZE[ours-1]}" "${SIZE[umoci]}")" \
	"$(ratio "${WALL[ours-6]}" "${WALL[umoci]}")" "$(ratio "${SIZE[ours-6]}" "${SIZE[umoci]}")" \
	"$rss" "$best_ms" "$members" \
	"$(ratio "${CPU[ours-1]}" "${CPU[umoci]}")" "$(ratio "${CPU[ours-6]}" "${CPU[umoci]}")"
