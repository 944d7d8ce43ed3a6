#!/bin/bash
# Benchmark of registry transfers over a slow network (issue 18): a real docker-registry on
# 127.0.0.1 behind tests/registry/netproxy.py, which lets each connection carry at most RATE
# bytes/s each way and adds a latency to every answer and new connection.
#
#   bench/network.sh [BUILD_DIR]           (default: build)
#
# 1. pull: a base of BENCH_PULL_LAYERS (default 5) layers of BENCH_LAYER_MIB (default 8) MiB
#    of incompressible data, made once, through BENCH_PULL_RATE (default 8000000) bytes/s per
#    connection: `skopeo copy` into an OCI layout, `ocilambda pull` (empty blob cache, its
#    default --jobs) and, when the binary has --jobs, `ocilambda pull --jobs 6` (skopeo's own
#    parallelism). Target: ours / skopeo <= 1.0.
# 2. push: the bench prefix (bench/corpus.sh: ~600 MB, 25k files) through BENCH_PUSH_RATE
#    (default 40000000) bytes/s per connection: `ocilambda assemble --output oci:` (compress
#    alone, empty layer cache), `skopeo copy` of that layout to the registry (push alone), and
#    `ocilambda assemble --output docker://` (both, empty layer cache). Each push goes to a
#    registry started afresh, so that neither tool finds a blob there (or mounts one).
#    Target: ours / max(compress, push) <= 1.2.
# BENCH_LATENCY (default 20) milliseconds for both. Each timed command runs BENCH_RUNS times
# (default 2) and the best wall time counts; the proxy's log of that run says how many
# connections were open and how many requests in flight at once. The last line:
#   pull_ratio=0.97 pull6_ratio=0.81 push_ratio=1.10 pull_conns=4 push_conns=5
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/corpus.sh"
bench_init "${1:-}"
PULL_RATE=${BENCH_PULL_RATE:-8000000}
PUSH_RATE=${BENCH_PUSH_RATE:-40000000}
LATENCY=${BENCH_LATENCY:-20}
NLAYERS=${BENCH_PULL_LAYERS:-5}
LAYER_MIB=${BENCH_LAYER_MIB:-8}
for tool in umoci skopeo docker-registry python3; do
	command -v "$tool" >/dev/null || { log "$0: $tool not installed (make deps)"; exit 1; }
done

# --- ocilambda, optimised whatever BUILD's own type is ------------------------------
REL=$WORK/release
cmake -S "$SRC" -B "$REL" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$REL" --target ocilambda -j "$(nproc)" >/dev/null
OCIL=$REL/ocilambda

T=$(mktemp -d "${TMPDIR:-/tmp}/bench-network.XXXXXX")
trap 'rm -rf "$T"' EXIT
. "$SRC/tests/registry/lib.sh"

# --- inputs, built once ---------------------------------------------------------------
NW=$WORK/network
BASE5=$NW/base$NLAYERS-${LAYER_MIB}m
if [ ! -d "$BASE5" ]; then
	log "building $BASE5 (once)"
	rm -rf "$BASE5.tmp"
	mkdir -p "$NW"
	umoci init --layout "$BASE5.tmp" >/dev/null
	umoci new --image "$BASE5.tmp:latest" >/dev/null
	for ((i = 0; i < NLAYERS; i++)); do
		# one file of seeded random bytes per layer: gzip leaves it as big
		python3 - "$T/layer.tar" "$i" "$LAYER_MIB" <<'PY'
import io, random, sys, tarfile
out, seed, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = random.Random(seed).randbytes(mib << 20)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    d = tarfile.TarInfo("data")
    d.type, d.mode = tarfile.DIRTYPE, 0o755
    t.addfile(d)
    f = tarfile.TarInfo("data/layer%d.bin" % seed)
    f.size, f.mode = len(data), 0o644
    t.addfile(f, io.BytesIO(data))
PY
		umoci raw add-layer --image "$BASE5.tmp:latest" --history.created 2024-01-01T00:00:00Z \
			"$T/layer.tar" >/dev/null
	done
	rm -f "$T/layer.tar"
	mv "$BASE5.tmp" "$BASE5"
fi
bench_corpus "$WORK"
bench_prefix "$WORK"
CODE=$T/code
mkdir -p "$CODE"
cp "$SRC/testdata/example/example.py" "$CODE/"
tar -cf - -C "$PREFIX" . | cat >/dev/null # warm the page cache

# --- measuring ---------------------------------------------------------------------------
TIMES=$T/time.out
declare -A WALL CPU CONNS INFLIGHT
PROXY_LOG=
TIMEFORMAT='%R %U %S'
# best_of NAME SETUP CMD...: best wall time of RUNS runs of CMD (a command or a function; SETUP
# eval'd before each); CONNS/INFLIGHT from $PROXY_LOG (set by SETUP) after the best run
best_of() {
	local name=$1 setup=$2 best="" i w u s rc
	shift 2
	for ((i = 0; i < RUNS; i++)); do
		eval "$setup"
		[ -z "$PROXY_LOG" ] || : >"$PROXY_LOG"
		rc=0
		{ time "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?; } 2>"$TIMES"
		[ "$rc" = 0 ] || { log "$name failed ($rc): $(tail -3 "$T/stderr")"; exit 1; }
		read -r w u s <"$TIMES"
		if [ -z "$best" ] || awk -v a="$w" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$w
			CPU[$name]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
			CONNS[$name]=-
			INFLIGHT[$name]=-
			if [ -n "$PROXY_LOG" ]; then
				CONNS[$name]=$(netproxy_conns "$PROXY_LOG")
				INFLIGHT[$name]=$(netproxy_inflight "$PROXY_LOG" ' /v2/[^ ]*/blobs/')
			fi
		fi
	done
	WALL[$name]=$best
}
row() {
	printf '%-16s wall %6.2f s  cpu %6.2f s  connections %2s  blob requests at once %2s\n' "$1" \
		"${WALL[$1]}" "${CPU[$1]}" "${CONNS[$1]}" "${INFLIGHT[$1]}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
has_jobs() { "$OCIL" "$1" --help | grep -q -- '--jobs'; }

log "$(nproc) CPUs:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); load: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. pull -------------------------------------------------------------------------------
registry_start pr
registry_seed pr "oci:$BASE5:latest" bench/base:1
netproxy_start pnp "$pr_HOST" --rate "$PULL_RATE" --latency "$LATENCY"
PROXY_LOG=$pnp_LOG
REF=$pnp_HOST/bench/base:1
printf -- '-- pull: %d layers of %d MiB, %d B/s per connection, %d ms latency\n' "$NLAYERS" \
	"$LAYER_MIB" "$PULL_RATE" "$LATENCY"
best_of skopeo-pull 'rm -rf "$T/sk"' skopeo --insecure-policy copy --quiet --src-tls-verify=false \
	"docker://$REF" "oci:$T/sk:x"
row skopeo-pull
best_of pull 'rm -rf "$T/op" "$T/oc"' "$OCIL" pull --quiet --cache-dir "$T/oc" "$REF" --output "oci:$T/op:x"
row pull
[ "$(cat "$T/stdout")" = "$(skopeo inspect --format '{{.Digest}}' "oci:$T/sk:x")" ] ||
	{ log "pull and skopeo disagree on the manifest"; exit 1; }
pull6_ratio=-
if has_jobs pull; then
	best_of pull-jobs6 'rm -rf "$T/op" "$T/oc"' "$OCIL" pull --jobs 6 --quiet --cache-dir "$T/oc" \
		"$REF" --output "oci:$T/op:x"
	row pull-jobs6
	pull6_ratio=$(ratio "${WALL[pull-jobs6]}" "${WALL[skopeo-pull]}")
fi
netproxy_stop pnp
registry_stop pr
rm -rf "$T/pr" "$T/sk" "$T/op" "$T/oc"

# --- 2. assemble and push -------------------------------------------------------------------
# a registry and its proxy started afresh: nothing there to skip or mount
fresh() {
	netproxy_stop pp
	registry_stop push
	rm -rf "$T/push"
	registry_start push
	netproxy_start pp "$push_HOST" --rate "$PUSH_RATE" --latency "$LATENCY"
	PROXY_LOG=$pp_LOG
}
ASM=("$OCIL" assemble --base "oci:$BASE:$PYVER" --conda-prefix "$PREFIX" --code "$CODE"
	--handler example.lambda_handler --quiet)
printf -- '-- assemble and push: prefix of %s bytes, %d B/s per connection, %d ms latency\n' \
	"$(du -sb "$PREFIX" | cut -f1)" "$PUSH_RATE" "$LATENCY"
PROXY_LOG=
best_of compress 'rm -rf "$T/out" "$T/cache"; sync' "${ASM[@]}" --cache-dir "$T/cache" --output "oci:$T/out:latest"
row compress
digest=$(cat "$T/stdout")
skopeo_push() {
	skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$T/out:latest" \
		"docker://$pp_HOST/bench/fn:1"
}
assemble_push() { "${ASM[@]}" --cache-dir "$T/cache2" --output "docker://$pp_HOST/bench/fn:1"; }
best_of skopeo-push 'fresh' skopeo_push
row skopeo-push
pushed=$(awk '/^PUT .*\/blobs\/uploads\/.* 201 / { n++ } END { print n + 0 }' "$pp_LOG")
best_of assemble-push 'fresh; rm -rf "$T/cache2"; sync' assemble_push
row assemble-push
[ "$(cat "$T/stdout")" = "$pp_HOST/bench/fn@$digest" ] ||
	{ log "assemble --output docker:// built $(cat "$T/stdout"), not $digest"; exit 1; }
printf 'blobs uploaded: skopeo %s, ocilambda %s\n' "$pushed" \
	"$(awk '/^PUT .*\/blobs\/uploads\/.* 201 / { n++ } END { print n + 0 }' "$pp_LOG")"

printf 'pull_ratio=%s pull6_ratio=%s push_ratio=%s pull_conns=%s push_conns=%s\n' \
	"$(ratio "${WALL[pull]}" "${WALL[skopeo-pull]}")" "$pull6_ratio" \
	"$(ratio "${WALL[assemble-push]}" "$(max "${WALL[compress]}" "${WALL[skopeo-push]}")")" \
	"${CONNS[pull]}" "${CONNS[assemble-push]}"
