#!/usr/bin/env bash
# Run every libFuzzer target of a fuzz build for a bounded time:
#   tests/fuzz/run.sh BUILD_DIR SECONDS_PER_TARGET
# Each target first runs its seed corpus (tests/fuzz/corpus/<target>), then
# mutates for the rest of its time. New inputs go to BUILD_DIR/corpus/<target>
# (not into the repo); a crash is written to BUILD_DIR/crashes/ and fails the
# run: fix it, and add the input to the seed corpus as crash-<what> so the
# replay tests keep it fixed.
set -euo pipefail
build=$1
secs=$2
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/crashes"
status=0
for seeds in "$src"/corpus/*/; do
	t=$(basename "$seeds")
	bin=$build/fuzz_$t
	if [[ ! -x $bin ]]; then
		echo "fuzz: no target $bin" >&2
		exit 1
	fi
	mkdir -p "$build/corpus/$t"
	log=$build/fuzz_$t.log
	# -timeout: one input taking this long is a hang; -rss_limit_mb bounds a
	# bomb; leaks count as crashes (ASan's default under libFuzzer).
	if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
		"$build/corpus/$t" "$seeds" >"$log" 2>&1; then
		echo "fuzz $t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs)"
	else
		echo "fuzz $t: FAILED (log: $log)" >&2
		tail -40 "$log" >&2
		status=1
	fi
done
exit $status
