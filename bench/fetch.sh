#!/bin/bash
# Benchmark of package downloads (assemble --conda-lock without the packages on disk): 20
# packages served by tests/registry/pkgserver.py over https, through a throttle of
# BENCH_RATE bytes/s per connection (default 1000000), one at a time (--jobs 1) and four at
# once (--jobs 4, the default).
#
#   bench/fetch.sh [BUILD_DIR]             (default: build)
#
# The packages: hellotool, whereami and greetpkg of the lock fixture (testdata/mk-pkgs.sh)
# and 17 fillers of BENCH_FILLER_BYTES (default 500000) each (bench/mk-fillers.py), built
# once under BUILD_DIR/bench/fetch; python, the fixture's biggest package, is in --pkgs-dir
# (a 15 MB package through one throttled connection would only measure itself). Each
# timed build starts with an empty cache and runs BENCH_RUNS times (default 2; the best
# wall time counts); a baseline build has every package in --pkgs-dir. The downloads'
# span is read from the server's log (first request in, last answer out), so the packing
# around them and the machine's load count for little. The last line:
#   serial_s=8.61 concurrent_s=2.25 ratio=0.26 inflight=4 build_s=3.1/11.9/5.6 build_ratio=0.47
# (download span with --jobs 1 and --jobs 4 and their ratio, target <= 0.33; the most
# requests the server saw in flight at once with --jobs 4; whole builds: baseline, --jobs 1,
# --jobs 4, and the last two's ratio.)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
BUILD=$(cd "$BUILD" && pwd)
RUNS=${BENCH_RUNS:-2}
RATE=${BENCH_RATE:-1000000}
FILLER_BYTES=${BENCH_FILLER_BYTES:-500000}
OCIL=$BUILD/ocilambda
[ -x "$OCIL" ] || { echo "$0: no $OCIL (build first)" >&2; exit 1; }
FIXTURES=${FIXTURES:-$BUILD/fixtures}
if [ ! -f "$FIXTURES/pyver" ]; then
	echo "building the test fixtures in $FIXTURES (once)" >&2
	FIXTURES=$FIXTURES SRCDIR=$SRC bash "$SRC/tests/cli/fixtures.sh" >&2
fi
PYVER=$(cat "$FIXTURES/pyver")
L=$FIXTURES/lock
W=$BUILD/bench/fetch
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-fetch.XXXXXX")
trap 'rm -rf "$T"' EXIT
. "$SRC/tests/registry/lib.sh"

stamp=$W/.stamp-$FILLER_BYTES-$(cat "$SRC/bench/mk-fillers.py" "$L/explicit.txt" | sha256sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
	echo "building the bench channel in $W (once)" >&2
	rm -rf "$W"
	mkdir -p "$W/channel/conda-forge/linux-64" "$W/channel/conda-forge/noarch" "$W/local"
	/usr/bin/python3 "$SRC/bench/mk-fillers.py" "$W/fillers" 17 "$FILLER_BYTES"
	cp "$W/fillers/"*.tar.bz2 "$L/pkgs/greetpkg-0.1-pyh_0.tar.bz2" "$W/channel/conda-forge/noarch/"
	cp "$L/pkgs/hellotool-1.0-h0_0.tar.bz2" "$L/pkgs/whereami-1.0-h0_0.conda" "$W/channel/conda-forge/linux-64/"
	cp "$L/pkgs/"python-*.conda "$W/local/"
	{ cat "$L/explicit.txt"; cat "$W/fillers/fillers.txt"; } >"$W/lock.txt"
	touch "$stamp"
fi
N=$(($(grep -c '^https://' "$W/lock.txt") - 1))
BYTES=$(du -cb "$W/channel/conda-forge/"*/* | tail -1 | cut -f1)
mkdir -p "$T/code"
cp "$SRC/testdata/example/example.py" "$T/code/"

pkgserver_start ch "$W/channel" --tls
pkgserver_rules ch "{\"rules\": [{\"action\": \"throttle\", \"rate\": $RATE}]}"
CF=https://conda.anaconda.org/conda-forge

# run NAME ARGS...: best wall time of RUNS builds (fresh cache and output each), in WALL[NAME]
declare -A WALL
run() {
	local name=$1 best="" i s e t
	shift
	for ((i = 0; i < RUNS; i++)); do
		rm -rf "$T/cache" "$T/out"
		: >"$ch_LOG"
		s=$(date +%s.%N)
		"$OCIL" assemble --base "oci:$FIXTURES/base-run:$PYVER" --code "$T/code" \
			--handler example.lambda_handler --conda-lock "$W/lock.txt" --cache-dir "$T/cache" \
			--output "oci:$T/out" --quiet "$@" >/dev/null
		e=$(date +%s.%N)
		t=$(echo "$e - $s" | bc)
		if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
	done
	WALL[$name]=$best
	printf '%-12s wall %6.2f s\n' "$name" "$best"
}

echo "-- $N packages over https, $BYTES bytes, throttled to $RATE B/s per connection; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
ALL=$T/all
mkdir -p "$ALL"
cp "$W/local/"* "$W/channel/conda-forge/"*/* "$ALL/"
run baseline --pkgs-dir "$ALL"
# the downloads' span by the server's clock: first request in, last answer out
span() {
	awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^t=/) { t = substr($i, 3) + 0
		if (lo == "" || t < lo) lo = t; if (t > hi) hi = t } } END { printf "%.3f\n", hi - lo }' "$1"
}
declare -A SPAN
for jobs in 1 4; do
	run "jobs$jobs" --pkgs-dir "$W/local" --ca-file "$ch_CA" --mirror "$CF=$ch_URL/conda-forge" --jobs "$jobs"
	[ "$(reglib_count "$ch_LOG" '^GET .* 200 ')" = "$N" ] || { echo "$0: expected $N downloads" >&2; exit 1; }
	SPAN[$jobs]=$(span "$ch_LOG") # of the last run
	printf '%-12s downloads %6.2f s (the last run, by the server log)\n' "jobs$jobs" "${SPAN[$jobs]}"
done
INFLIGHT=$(pkgserver_inflight "$ch_LOG")
awk -v s="${SPAN[1]}" -v c="${SPAN[4]}" -v i="$INFLIGHT" -v b="${WALL[baseline]}" \
	-v ws="${WALL[jobs1]}" -v wc="${WALL[jobs4]}" 'BEGIN {
	printf "serial_s=%.2f concurrent_s=%.2f ratio=%.2f inflight=%d build_s=%.1f/%.1f/%.1f build_ratio=%.2f\n",
		s, c, c / s, i, b, ws, wc, wc / ws
}'
