#!/bin/bash
# Cold start of the bench stack (issue 20): the import of pandas, requests,
# scipy.stats and sklearn.linear_model inside an image ocilambda built, run
# with `ocilambda run` (bubblewrap, read-only tree, as Lambda), against the
# same import on the build host with the prefix's own valid bytecode.
#
#   bench/coldstart.sh [BUILD_DIR]        (default: build)
#   BENCH_RUNS=5 BENCH_BEFORE_OCILAMBDA=/path/to/older/ocilambda bench/coldstart.sh
#
# Built once under BUILD_DIR/bench/coldstart: the bench corpus's python
# stack (bench/corpus.sh: Debian's python3 with pandas, scipy,
# scikit-learn; installed when missing if we are root) as a runnable
# prefix, the way the run fixtures are made (testdata/mk-prefix.sh run with
# those packages: ldd closure, RUNPATH) plus Debian's own .pyc files
# (testdata/mk-pyc-helper.py debian: valid on this host), a runnable
# Lambda-like base (testdata/mk-base.sh run) and a RelWithDebInfo
# ocilambda. The handler module imports the stack at module level and
# returns how long that took (time.perf_counter), so only the import is
# timed, not the sandbox or the runtime API. Rows:
#   host        PREFIX/bin/python on the host, its bytecode valid (after
#               importing what the image's runtime imports before the
#               handler: testdata/base-files/bootstrap.py's modules);
#   after       the image this ocilambda builds, under `ocilambda run`;
#   nobytecode  the same image with PYTHONPYCACHEPREFIX pointing at an empty
#               directory and PYTHONDONTWRITEBYTECODE=1: python finds no
#               bytecode and compiles every module, as it does when all of it
#               is stale (what the layer's normalized mtimes did before);
#   before      with BENCH_BEFORE_OCILAMBDA: the image that binary builds
#               from the same prefix (e.g. the previous main branch's).
# After a warm-up run of each, the rows are measured in turn BENCH_RUNS times
# (default 3; a drifting load then weighs on all of them alike) and each
# row's best counts; the last line holds the ratios to host (target: after
# <= 1.10).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/corpus.sh"
bench_init "${1:-}"
RUNS=${BENCH_RUNS:-3}
for tool in bwrap umoci patchelf; do
	command -v "$tool" >/dev/null || { log "$0: $tool not installed (make deps)"; exit 1; }
done
BENCH_PACKAGES="python3 python3-pandas python3-requests python3-scipy python3-sklearn"
bench_packages

REL=$WORK/release
cmake -S "$SRC" -B "$REL" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$REL" --target ocilambda -j "$(nproc)" >/dev/null
OCIL=$REL/ocilambda

CS=$WORK/coldstart
mkdir -p "$CS"
PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PREFIX=$CS/prefix
if [ ! -d "$PREFIX" ]; then
	log "building $PREFIX (once)"
	rm -rf "$PREFIX.tmp"
	MK_PREFIX_PACKAGES="python3-pandas python3-requests python3-scipy python3-sklearn" \
		bash "$SRC/testdata/mk-prefix.sh" "$PREFIX.tmp" /tmp/build/envs/coldstart-bench "$PYVER" run
	/usr/bin/python3 "$SRC/testdata/mk-pyc-helper.py" debian "$PREFIX.tmp" "$PYVER" >&2
	mv "$PREFIX.tmp" "$PREFIX"
fi
BASE=$CS/base$PYVER
if [ ! -d "$BASE" ]; then
	log "building $BASE (once)"
	rm -rf "$BASE.tmp"
	bash "$SRC/testdata/mk-base.sh" "$BASE.tmp" "$PYVER" "$PYVER" run
	rm -f "$BASE.tmp.tar"
	mv "$BASE.tmp" "$BASE"
fi
CODE=$CS/code
rm -rf "$CODE"
mkdir -p "$CODE"
cat >"$CODE/coldstart.py" <<'EOF'
import time

_t0 = time.perf_counter()
import pandas, requests, scipy.stats, sklearn.linear_model  # noqa: E401,F401

IMPORT_S = time.perf_counter() - _t0


def handler(event, context):
    return {"import_s": IMPORT_S}
EOF
CACHE=$CS/cache
export XDG_CACHE_HOME=$CACHE

build() { # BINARY OUT
	rm -rf "$2"
	"$1" assemble --base "oci:$BASE:$PYVER" --conda-prefix "$PREFIX" --code "$CODE" \
		--handler coldstart.handler --output "oci:$2:latest" --cache-dir "$CACHE" \
		--compression-level 1 --quiet >/dev/null
}
build "$OCIL" "$CS/after"
"$OCIL" check "oci:$CS/after:latest" | grep L016 >&2 || true
[ -z "${BENCH_BEFORE_OCILAMBDA:-}" ] || build "$BENCH_BEFORE_OCILAMBDA" "$CS/before"

# one import, its seconds on stdout; first what the image's runtime has
# imported before the handler (testdata/base-files/bootstrap.py), as there
host_once() {
	env -i "$PREFIX/bin/python$PYVER" -c 'import http.client, importlib, json, logging, os, sys, time, traceback
t0 = time.perf_counter()
import pandas, requests, scipy.stats, sklearn.linear_model
print("%.4f" % (time.perf_counter() - t0))'
}
run_once() { # LAYOUT [ENV...]
	local lay=$1 args=() e
	shift
	for e in "$@"; do args+=(--env "$e"); done
	"$OCIL" run "oci:$lay:latest" --event '{}' --quiet "${args[@]}" 2>/dev/null |
		python3 -c 'import json, sys; print("%.4f" % json.load(sys.stdin)["import_s"])'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a < b) ? a : b }'; }
log "load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
declare -A T
rows=(host after nobytecode)
[ -z "${BENCH_BEFORE_OCILAMBDA:-}" ] || rows+=(before)
one() { # ROW: one measurement
	case $1 in
	host) host_once ;;
	after) run_once "$CS/after" ;;
	nobytecode) run_once "$CS/after" PYTHONPYCACHEPREFIX=/tmp/ocil-no-pycs PYTHONDONTWRITEBYTECODE=1 ;;
	before) run_once "$CS/before" ;;
	esac
}
# a warm-up of each, then the rows in turn RUNS times (the machine's load
# drifts alike for all of them), the best of each
for r in "${rows[@]}"; do one "$r" >/dev/null; done
for ((i = 0; i < RUNS; i++)); do
	for r in "${rows[@]}"; do T[$r]=$(min "$(one "$r")" "${T[$r]:-}"); done
done
echo "-- import pandas, requests, scipy.stats, sklearn.linear_model (best of $RUNS)"
for r in "${rows[@]}"; do
	printf '%-11s %7.3f s  (%s x host)\n' "$r" "${T[$r]}" "$(ratio "${T[$r]}" "${T[host]}")"
done
line="after_vs_host=$(ratio "${T[after]}" "${T[host]}") nobytecode_vs_host=$(ratio "${T[nobytecode]}" "${T[host]}")"
[ -z "${T[before]:-}" ] || line="$line before_vs_host=$(ratio "${T[before]}" "${T[host]}") before_vs_after=$(ratio "${T[before]}" "${T[after]}")"
echo "$line"
