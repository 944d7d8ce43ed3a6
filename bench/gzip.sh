#!/bin/bash
# Benchmark of the parallel gzip writer (src/compress/gzip.c) against pigz, gzip and
# `umoci insert`, on a ~600 MB tar of Debian's installed python3 (pandas,
# scipy, sklearn, ... when installed) topped up with shared libraries.
#
#   bench/gzip.sh [BUILD_DIR]          (default: build)
#
# Everything is cached under BUILD_DIR/bench: the corpus tar, an unpacked
# copy of it (what umoci and tar read), and a RelWithDebInfo build of
# test_gzip (its --compress mode is the driver), so a Debug build dir never
# makes the numbers. Each tool runs BENCH_RUNS times (default 2); the best
# wall time counts. Inputs are read from the page cache (warmed first).
# BENCH_LEVELS="1 6 9" adds one-thread runs of those levels.
#
# The last line holds the ratios, e.g.
#   fast_wall=0.24 fast_size=1.10 small_wall=0.78 small_size=0.94 ...
# fast = our level 1, small = our level 6, both fed by `tar -c` of the tree,
# over `umoci insert` of the same tree (wall and layer size).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/corpus.sh"
bench_init "${1:-}"
need() { command -v "$1" >/dev/null 2>&1; }

# --- the driver, built optimised whatever BUILD's own type is ---------------
REL=$WORK/release
cmake -S "$SRC" -B "$REL" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$REL" --target test_gzip -j "$(nproc)" >/dev/null
DRIVER=$REL/test_gzip

# --- the corpus: built once ----------------------------------------------------
bench_corpus "$WORK"
RAW=$(stat -c %s "$CORPUS")
NFILES=$(tar -tf "$CORPUS" | wc -l)
cat "$CORPUS" >/dev/null
tar -cf - -C "$TREE" . | cat >/dev/null # (not >/dev/null: GNU tar would skip reading)

# --- measuring -------------------------------------------------------------------
# run NAME SIZE_CMD CMD...: best wall of RUNS runs; prints a row and sets
# R_WALL R_CPU R_RSS R_SIZE
TIMES=$WORK/time.out
declare -A WALL CPU RSS SIZE
run() {
	local name=$1 sizecmd=$2
	shift 2
	local best="" cpu="" rss="" i
	for ((i = 0; i < RUNS; i++)); do
		/usr/bin/time -f '%e %U %S %M' -o "$TIMES" "$@" >/dev/null
		read -r w u s m <"$TIMES"
		if [ -z "$best" ] || awk -v a="$w" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$w
			cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
			rss=$((m / 1024))
		fi
	done
	WALL[$name]=$best
	CPU[$name]=$cpu
	RSS[$name]=$rss
	SIZE[$name]=$(eval "$sizecmd")
	printf '%-16s wall %6.2f s  cpu %6.2f s  rss %4d MB  size %10d  (%.3f of raw, %.0f MB/s)\n' \
		"$name" "$best" "$cpu" "$rss" "${SIZE[$name]}" \
		"$(awk -v a="${SIZE[$name]}" -v b="$RAW" 'BEGIN { print a / b }')" \
		"$(awk -v w="$best" -v b="$RAW" 'BEGIN { print b / 1e6 / w }')"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

STORE=$WORK/store
OUT=$WORK/out.gz
newest_blob() { ls -t "$STORE/blobs/sha256" | head -1; }
ours_size() { stat -c %s "$STORE/blobs/sha256/$(newest_blob)"; }

log "corpus: $RAW bytes, $NFILES entries; $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
log "libdeflate $(dpkg-query -W -f='${Version}' libdeflate0 2>/dev/null || echo '?'), isa-l $(dpkg-query -W -f='${Version}' libisal2 2>/dev/null || echo '?'), zlib $(dpkg-query -W -f='${Version}' zlib1g 2>/dev/null || echo '?')"

printf '%s\n' "-- compressor alone, from the tar file"
for level in 1 6; do
	rm -rf "$STORE"
	run "ours-$level-file" ours_size "$DRIVER" --compress "$level" "$STORE" "$CORPUS"
done
if need pigz; then
	run pigz-6-p2-file "stat -c %s $OUT" sh -c "pigz -6 -p2 -c '$CORPUS' >'$OUT'"
fi
# gzip is the size reference, and slow: once
RUNS=1 run gzip-6-file "stat -c %s $OUT" sh -c "gzip -6 -c '$CORPUS' >'$OUT'"

# BENCH_LEVELS="1 2 ... 9": each level on one thread (the engine table in
# src/compress/gzip.c)
if [ -n "${BENCH_LEVELS:-}" ]; then
	printf '%s\n' "-- one thread per level, from the tar file"
	for level in $BENCH_LEVELS; do
		rm -rf "$STORE"
		OCIL_GZIP_THREADS=1 run "ours-$level-1thread" ours_size \
			"$DRIVER" --compress "$level" "$STORE" "$CORPUS"
	done
fi

# tar writes 1 MiB records: the pipe is the bench's cost, not ocilambda's
# (which makes its tar in-process), and is the same for pigz
TARC="tar -b 2048 -cf - -C '$TREE' ."
printf '%s\n' "-- walking the tree (tar -c | compressor, or umoci insert)"
for level in 1 6; do
	rm -rf "$STORE"
	run "ours-$level" ours_size sh -c "$TARC | '$DRIVER' --compress $level '$STORE'"
done
# what the output is: one member, and the raw stream's digest
rm -rf "$STORE"
"$DRIVER" --compress 6 "$STORE" "$CORPUS" >"$WORK/ours.txt"
members=$(python3 - "$STORE/blobs/sha256/$(newest_blob)" "$(sed 's/.*diff_id=//' "$WORK/ours.txt")" <<'EOF'
import hashlib, sys, zlib
data = open(sys.argv[1], "rb").read()
n, h = 0, None
while data:
    d = zlib.decompressobj(31)
    raw = d.decompress(data)
    assert d.eof, "truncated member"
    h = h or hashlib.sha256()
    h.update(raw)
    n += 1
    data = d.unused_data
assert "sha256:" + h.hexdigest() == sys.argv[2], "diff_id is not the decompressed stream's"
print(n)
EOF
)
if need pigz; then
	run pigz-6-p2 "stat -c %s $OUT" sh -c "$TARC | pigz -6 -p2 >'$OUT'"
fi
if need umoci; then
	UMOCI=$WORK/umoci
	rm -rf "$UMOCI.base"
	umoci init --layout "$UMOCI.base" >/dev/null
	umoci new --image "$UMOCI.base:base" >/dev/null
	umoci_size() { stat -c %s "$(ls -S "$UMOCI"/blobs/sha256/* | head -1)"; }
	umoci_insert() {
		rm -rf "$UMOCI"
		cp -a "$UMOCI.base" "$UMOCI"
		sync
		/usr/bin/time -f '%e %U %S %M' -o "$TIMES.u" \
			umoci insert --image "$UMOCI:base" "$TREE" /data >/dev/null
	}
	# the copy of the empty layout is not part of umoci's time
	best=""
	for ((i = 0; i < RUNS; i++)); do
		umoci_insert
		read -r w u s m <"$TIMES.u"
		if [ -z "$best" ] || awk -v a="$w" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$w
			CPU[umoci]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
			RSS[umoci]=$((m / 1024))
		fi
	done
	WALL[umoci]=$best
	SIZE[umoci]=$(umoci_size)
	printf '%-16s wall %6.2f s  cpu %6.2f s  rss %4d MB  size %10d  (%.3f of raw)\n' umoci-insert \
		"$best" "${CPU[umoci]}" "${RSS[umoci]}" "${SIZE[umoci]}" \
		"$(awk -v a="${SIZE[umoci]}" -v b="$RAW" 'BEGIN { print a / b }')"
fi

line="members=$members rss_mb=$(printf '%s\n' "${RSS[ours-1-file]}" "${RSS[ours-6-file]}" | sort -n | tail -1)"
if [ -n "${WALL[umoci]:-}" ]; then
	line="fast_wall=$(ratio "${WALL[ours-1]}" "${WALL[umoci]}") fast_size=$(ratio "${SIZE[ours-1]}" "${SIZE[umoci]}")"\
" small_wall=$(ratio "${WALL[ours-6]}" "${WALL[umoci]}") small_size=$(ratio "${SIZE[ours-6]}" "${SIZE[umoci]}") $line"
fi
if [ -n "${WALL[pigz-6-p2]:-}" ]; then
	line="$line l6_vs_pigz_wall=$(ratio "${WALL[ours-6]}" "${WALL[pigz-6-p2]}") l6_vs_pigz_size=$(ratio "${SIZE[ours-6]}" "${SIZE[pigz-6-p2]}")"
fi
line="$line l6_vs_gzip6_size=$(ratio "${SIZE[ours-6-file]}" "${SIZE[gzip-6-file]}") l1_mb_s=$(awk -v w="${WALL[ours-1-file]}" -v b="$RAW" 'BEGIN { printf "%.0f", b / 1e6 / w }') l6_mb_s=$(awk -v w="${WALL[ours-6-file]}" -v b="$RAW" 'BEGIN { printf "%.0f", b / 1e6 / w }')"
printf '%s\n' "$line"
