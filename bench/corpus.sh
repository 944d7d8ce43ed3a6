# Sourced by the bench scripts: their common setup and the ~600 MB corpus
# both time, built once.
#
#   bench_init [BUILD_DIR]   sets BUILD, WORK (BUILD/bench, created), RUNS
#   bench_corpus WORK        sets CORPUS (a tar) and TREE (it unpacked)
#   bench_prefix WORK        sets PREFIX (a conda-like prefix of TREE), BASE, PYVER
#
# Debian's installed python3 with pandas, scipy, scikit-learn and
# matplotlib (/usr/lib/python3 and /usr/lib/python3.X), topped up to
# BENCH_BYTES (default 600000000) with shared libraries from
# /usr/lib/x86_64-linux-gnu. The python packages are installed when
# missing if we are root; otherwise the script says what to install.

log() { printf '%s\n' "$*" >&2; }

bench_init() {
	BUILD=${1:-$SRC/build}
	mkdir -p "$BUILD"
	BUILD=$(cd "$BUILD" && pwd)
	WORK=$BUILD/bench
	RUNS=${BENCH_RUNS:-2}
	mkdir -p "$WORK"
}

BENCH_PACKAGES="python3 python3-pandas python3-scipy python3-sklearn python3-matplotlib"

bench_packages() {
	local p missing=""
	for p in $BENCH_PACKAGES; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" = 0 ]; then
		echo "installing:$missing" >&2
		apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				$missing >/dev/null
	else
		echo "the bench corpus needs:$missing (sudo apt-get install$missing)" >&2
		return 1
	fi
}

bench_corpus() {
	local work=$1 target=${BENCH_BYTES:-600000000}
	CORPUS=$work/corpus.tar
	TREE=$work/tree
	if [ ! -s "$CORPUS" ]; then
		bench_packages
		echo "building $CORPUS (once)" >&2
		local list=$work/corpus.list have
		find /usr/lib/python3 /usr/lib/python3.*[0-9] -xdev \( -type f -o -type d -o -type l \) \
			-print 2>/dev/null | LC_ALL=C sort >"$list.tmp"
		have=$(tar --no-recursion -cf - -T "$list.tmp" 2>/dev/null | wc -c)
		# top up to the target with shared libraries (no archives, none
		# over 16 MB so no single file dominates), in name order
		find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f ! -name '*.a' -size -16M \
			-printf '%s\t%p\n' | LC_ALL=C sort -t"$(printf '\t')" -k2 |
			awk -F'\t' -v need=$((target - have)) \
				'tot < need { tot += $1 + 512; print $2 }' >>"$list.tmp"
		tar --no-recursion -cf "$CORPUS.tmp" -T "$list.tmp" 2>/dev/null
		mv "$list.tmp" "$list"
		mv "$CORPUS.tmp" "$CORPUS"
		rm -rf "$TREE"
	fi
	if [ ! -d "$TREE" ]; then
		mkdir -p "$TREE.tmp"
		tar -xf "$CORPUS" -C "$TREE.tmp"
		mv "$TREE.tmp" "$TREE"
	fi
}

# bench_prefix WORK: sets PREFIX (a conda-like prefix of the corpus: lib/ holds it, plus
# bin/python3.X and a conda-meta record for Debian's python), BASE (a small Lambda-like base
# layout, testdata/mk-base.sh ... names) and PYVER; both built once (bench_corpus first).
bench_prefix() {
	local work=$1 pyfull
	PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	pyfull=$(/usr/bin/python3 -c 'import platform; print(platform.python_version())')
	PREFIX=$work/prefix
	if [ ! -d "$PREFIX" ]; then
		log "building $PREFIX (once)"
		rm -rf "$PREFIX.tmp"
		mkdir -p "$PREFIX.tmp/bin" "$PREFIX.tmp/conda-meta"
		cp -a "$TREE/usr/lib" "$PREFIX.tmp/lib"
		cp /usr/bin/python"$PYVER" "$PREFIX.tmp/bin/python$PYVER"
		ln -s "python$PYVER" "$PREFIX.tmp/bin/python"
		cat >"$PREFIX.tmp/conda-meta/python-$pyfull-0.json" <<JSON
{"name": "python", "version": "$pyfull", "build": "0", "build_number": 0,
 "channel": "bench", "subdir": "linux-64", "files": ["bin/python$PYVER"]}
JSON
		echo "==> bench prefix from Debian's python $pyfull <==" >"$PREFIX.tmp/conda-meta/history"
		mv "$PREFIX.tmp" "$PREFIX"
	fi
	BASE=$work/base$PYVER
	if [ ! -d "$BASE" ]; then
		log "building $BASE (once)"
		rm -rf "$BASE.tmp" "$BASE.tmp.tar"
		bash "$SRC/testdata/mk-base.sh" "$BASE.tmp" "$PYVER" "$PYVER" names
		rm -f "$BASE.tmp.tar"
		mv "$BASE.tmp" "$BASE"
	fi
}
