#!/bin/bash
# Benchmark of the CI cases of issue 17 on the ~600 MB bench prefix given one
# conda-meta record per package, pushing to a local docker-registry:
#
#   bench/incremental.sh [BUILD_DIR]          (default: build)
#
#   cold    an empty layer cache (a new CI runner, the first time): assemble
#           and push to REG/fnN:cold;
#   bump    the same cache, after a dependency bump (one package's .py files
#           and its record change, bench/mk-pkgprefix.py bump): assemble and
#           push to REG/fnN:bumpK. Two bumps: a small package (BENCH_BUMP,
#           default requests: in a group with other small ones) and a big one
#           (BENCH_BUMP_BIG, default pygments: a layer of its own);
#   fresh   another empty layer cache (a fresh runner: GitHub and GitLab
#           runners are ephemeral) building the bumped prefix again, pushing
#           to another repository on the same registry, REG/freshN:x.
#
# With an ocilambda that has --cache-repo, every build gets
# --cache-repo REG/ci-cacheN (readwrite), so the fresh runner finds the
# layers there; without it (the code before issue 17) the same runs give the
# baseline. Each line gives the wall time, CPU time, peak RSS, and the blob
# transfers the registry's own log shows for that build
# (tests/registry/lib.sh reglib_blob_log): uploads and mounts into the
# output repository, uploads into the cache repository, downloads of conda
# layers (any repository) and of other blobs. "changed" is the number of
# conda layers (layers that are neither the base's nor the last two, code
# and runtime) whose digest is not in the previous image.
#
# Built once under BUILD_DIR/bench: the corpus (bench/corpus.sh), the
# prefix of bench/assemble.sh split into packages (pkgprefix.pristine,
# bench/mk-pkgprefix.py split; pip-installed yq and xmltodict are left
# without a record), the base layout of bench/assemble.sh and a
# RelWithDebInfo ocilambda. Each of the BENCH_RUNS runs (default 2) starts
# from a fresh copy of the split prefix, a fresh registry and fresh caches;
# the best wall time of each case counts. The last line holds the figures
# and the targets of issue 17:
#   bump_s (the slower bump) <= 1 s with bump_changed <= 2 conda layers;
#   fresh_ratio (fresh over cold wall time) <= 0.4 with fresh_uploads <= 1
#   and fresh_conda_downloads = 0;
#   code_ms (a code-only rebuild on runner a, one .py changed, into an OCI
#   layout, best of BENCH_REBUILD_RUNS (default 5) a run) <= 100.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/corpus.sh"
bench_init "${1:-}"
BUMP=${BENCH_BUMP:-requests}
BUMP_BIG=${BENCH_BUMP_BIG:-pygments}
for tool in umoci skopeo docker-registry curl; do
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
PRISTINE=$WORK/pkgprefix.pristine
if [ ! -d "$PRISTINE" ]; then
	log "building $PRISTINE (once)"
	rm -rf "$PRISTINE.tmp"
	mkdir -p "$PRISTINE.tmp/bin" "$PRISTINE.tmp/conda-meta"
	cp -a "$TREE/usr/lib" "$PRISTINE.tmp/lib"
	cp /usr/bin/python"$PYVER" "$PRISTINE.tmp/bin/python$PYVER"
	ln -s "python$PYVER" "$PRISTINE.tmp/bin/python"
	python3 "$SRC/bench/mk-pkgprefix.py" split "$PRISTINE.tmp" "$PYVER" "$PYFULL" \
		--unowned yq --unowned xmltodict >&2
	mv "$PRISTINE.tmp" "$PRISTINE"
fi
BASE=$WORK/base$PYVER
if [ ! -d "$BASE" ]; then
	log "building $BASE (once)"
	rm -rf "$BASE.tmp" "$BASE.tmp.tar"
	bash "$SRC/testdata/mk-base.sh" "$BASE.tmp" "$PYVER" "$PYVER" names
	rm -f "$BASE.tmp.tar"
	mv "$BASE.tmp" "$BASE"
fi
PREFIX=$WORK/pkgprefix
CODE=$WORK/incremental-code
rm -rf "$CODE"
mkdir -p "$CODE"
cp "$SRC/testdata/example/example.py" "$CODE/"

# --- a registry, its log read by tests/registry/lib.sh -----------------------------------
T=$WORK/incremental.tmp
rm -rf "$T"
mkdir -p "$T"
. "$SRC/tests/registry/lib.sh"
trap 'stop_all; rm -rf "$T"' EXIT

FEATURES=()
HELP=$("$OCIL" assemble --help)
if grep -q -- '--cache-repo' <<<"$HELP"; then FEATURES+=(cache-repo); fi
if grep -q -- '--layers' <<<"$HELP"; then FEATURES+=(layers); fi
has() { [[ " ${FEATURES[*]:-} " == *" $1 "* ]]; }

TIMES=$T/time.out
REBUILD_RUNS=${BENCH_REBUILD_RUNS:-5}
CODE_MS=
declare -A WALL CPU RSS UP MNT CUP CDL ODL CHANGED NL
best() { # NAME WALL CPU RSS: keep the best wall time (with its figures) of NAME
	if [ -z "${WALL[$1]:-}" ] || awk -v a="$2" -v b="${WALL[$1]}" 'BEGIN { exit !(a < b) }'; then
		WALL[$1]=$2
		CPU[$1]=$3
		RSS[$1]=$4
		return 0
	fi
	return 1
}
manifest() { # REPO TAG -> the manifest on stdout
	curl -sf --noproxy '*' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"$reg_URL/v2/$1/manifests/$2"
}
layer_digests() { # MANIFEST_FILE -> one layer digest a line
	python3 -c 'import json,sys; [print(l["digest"]) for l in json.load(open(sys.argv[1]))["layers"]]' "$1"
}

# build NAME RUN CACHE REPO TAG PREV_MANIFEST: one timed assemble + push; the
# registry log lines it caused are read for its transfers
build() {
	local name=$1 run=$2 cache=$3 repo=$4 tag=$5 prev=$6 mark w u s m
	local extra=()
	if has cache-repo; then extra+=(--cache-repo "$reg_HOST/ci-cache$run"); fi
	mark=$(wc -l <"$reg_LOG")
	sync
	/usr/bin/time -f '%e %U %S %M' -o "$TIMES" "$OCIL" assemble \
		--base "$reg_HOST/lambda/python:$PYVER" --conda-prefix "$PREFIX" --code "$CODE" \
		--handler example.lambda_handler --output "docker://$reg_HOST/$repo:$tag" \
		--cache-dir "$cache" --quiet "${extra[@]}" >/dev/null
	read -r w u s m <"$TIMES"
	tail -n +"$((mark + 1))" "$reg_LOG" >"$T/segment.log"
	manifest "$repo" "$tag" >"$T/$name.json"
	layer_digests "$T/$name.json" >"$T/$name.layers"
	# conda layers: neither the base's nor the last two (code, runtime)
	head -n -2 "$T/$name.layers" | grep -vxF -f "$T/base.layers" >"$T/$name.conda" || true
	local conda_dl other_dl
	conda_dl=$(reglib_blob_log "$T/segment.log" | awk '$1 == "download" { print $3 }' |
		grep -cxF -f "$T/$name.conda" || true)
	other_dl=$(($(reglib_blob_count "$T/segment.log" download) - conda_dl))
	if best "$name" "$w" "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')" $((m / 1024)); then
		UP[$name]=$(reglib_blob_count "$T/segment.log" upload "$repo")
		MNT[$name]=$(reglib_blob_count "$T/segment.log" mount "$repo")
		CUP[$name]=$(reglib_blob_count "$T/segment.log" upload "ci-cache$run")
		CDL[$name]=$conda_dl
		ODL[$name]=$other_dl
		NL[$name]=$(wc -l <"$T/$name.conda")
		if [ -n "$prev" ]; then
			CHANGED[$name]=$(grep -cvxF -f "$T/$prev.conda" "$T/$name.conda" || true)
		else
			CHANGED[$name]=${NL[$name]}
		fi
	fi
}
row() {
	printf '%-10s wall %6.2f s  cpu %6.2f s  rss %4d MB  conda layers %3d changed %3d  up %3d  mounted %3d  cache-up %3d  dl conda %3d other %3d\n' \
		"$1" "${WALL[$1]}" "${CPU[$1]}" "${RSS[$1]}" "${NL[$1]}" "${CHANGED[$1]}" "${UP[$1]}" \
		"${MNT[$1]}" "${CUP[$1]}" "${CDL[$1]}" "${ODL[$1]}"
}

log "prefix $(du -sbL "$PRISTINE" | cut -f1) bytes, $(find -L "$PRISTINE" | wc -l) entries, $(ls "$PRISTINE/conda-meta" | grep -c '\.json$') records; $(nproc) CPUs:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); load: $(cut -d' ' -f1-3 /proc/loadavg); ocilambda features: ${FEATURES[*]:-none}"
for ((run = 1; run <= RUNS; run++)); do
	log "run $run of $RUNS"
	rm -rf "$PREFIX" "$T"/cache-*
	cp -a "$PRISTINE" "$PREFIX"
	stop_all
	rm -rf "$T/reg" "$T/reg.log"
	registry_start reg
	registry_seed reg "oci:$BASE:$PYVER" "lambda/python:$PYVER"
	manifest lambda/python "$PYVER" >"$T/base.json"
	layer_digests "$T/base.json" >"$T/base.layers"
	tar -cf - -C "$PREFIX" . | cat >/dev/null # warm the page cache
	build cold "$run" "$T/cache-a" "fn$run" cold ""
	python3 "$SRC/bench/mk-pkgprefix.py" bump "$PREFIX" "$BUMP" "post$run" >&2
	build bump "$run" "$T/cache-a" "fn$run" bump1 cold
	python3 "$SRC/bench/mk-pkgprefix.py" bump "$PREFIX" "$BUMP_BIG" "post$run" >&2
	build bump-big "$run" "$T/cache-a" "fn$run" bump2 bump
	build fresh "$run" "$T/cache-b" "fresh$run" x bump-big
	# code-only rebuilds on runner a (its cache has the bumped prefix): one .py
	# changed, into an OCI layout as bench/assemble.sh's rebuild row
	for ((r = 0; r < REBUILD_RUNS; r++)); do
		echo "# edit $run.$r" >>"$CODE/example.py"
		rm -rf "$T/code-out"
		t0=$(date +%s%N)
		"$OCIL" assemble --base "oci:$BASE:$PYVER" --conda-prefix "$PREFIX" --code "$CODE" \
			--handler example.lambda_handler --output "oci:$T/code-out:latest" \
			--cache-dir "$T/cache-a" --quiet >/dev/null
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		if [ -z "$CODE_MS" ] || [ "$ms" -lt "$CODE_MS" ]; then CODE_MS=$ms; fi
	done
done
printf '%s\n' "-- $BUMP and $BUMP_BIG bumped; fresh: the bumped prefix on a runner with an empty cache"
for n in cold bump bump-big fresh; do row "$n"; done
slow=$(awk -v a="${WALL[bump]}" -v b="${WALL[bump-big]}" 'BEGIN { print (a > b) ? a : b }')
changed=$((CHANGED[bump] > CHANGED[bump-big] ? CHANGED[bump] : CHANGED[bump-big]))
ratio=$(awk -v a="${WALL[fresh]}" -v b="${WALL[cold]}" 'BEGIN { printf "%.2f", a / b }')
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
printf 'code-only rebuild (oci: output, cached environment) best of %d: %d ms\n' \
	"$((RUNS * REBUILD_RUNS))" "$CODE_MS"
printf 'bump_s=%s bump_changed=%s fresh_ratio=%s fresh_uploads=%s fresh_conda_downloads=%s code_ms=%s bump_target=%s fresh_target=%s code_target=%s\n' \
	"$slow" "$changed" "$ratio" "${UP[fresh]}" "${CDL[fresh]}" "$CODE_MS" \
	"$(verdict "$slow <= 1 && $changed <= 2")" \
	"$(verdict "$ratio <= 0.4 && ${UP[fresh]} <= 1 && ${CDL[fresh]} == 0")" \
	"$(verdict "$CODE_MS <= 100")"
