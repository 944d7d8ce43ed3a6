#!/usr/bin/env bash
# The layering rule of docs/ARCHITECTURE.md, checked on the sources: every
# project include names its folder ("oci/rootfs.h", "layers/conda.h"), and
# a folder includes only its own headers and those of lower ranks. The
# ranks are the order of OCIL_FOLDERS in CMakeLists.txt (which links one
# static library per folder in that order), then cli/ on top. Also: no
# source outside the folders, at most 15 .c files a folder.
#
#   tests/check-includes.sh [ROOT]   check ROOT (default: this repository)
#   tests/check-includes.sh --self-test
#                                    plant bad includes in a copy and see
#                                    each one refused (and the copy pass
#                                    before)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
MAX_C=15

check() {
	local root=$1
	local folders
	folders=$(sed -n 's/^set(OCIL_FOLDERS \(.*\))$/\1/p' "$root/CMakeLists.txt")
	if [ -z "$folders" ]; then
		echo "check-includes: no set(OCIL_FOLDERS ...) in $root/CMakeLists.txt" >&2
		return 1
	fi
	declare -A rank=()
	local i=0 f
	for f in $folders cli; do
		rank[$f]=$i
		i=$((i + 1))
	done
	local bad=0 file folder dir n
	# sources outside the folders
	for file in "$root"/src/*.[ch]; do
		[ -e "$file" ] || continue
		echo "${file#"$root"/}: outside the folders of src/" >&2
		bad=1
	done
	for folder in "${!rank[@]}"; do
		dir=$root/src/$folder
		[ "$folder" = layers ] && dir=$root/layers
		[ -d "$dir" ] || continue
		n=$(find "$dir" -maxdepth 1 -name '*.c' | wc -l)
		if [ "$n" -gt "$MAX_C" ]; then
			echo "${dir#"$root"/}: $n .c files (at most $MAX_C)" >&2
			bad=1
		fi
	done
	local nfiles=0 line inc to
	while IFS= read -r file; do
		nfiles=$((nfiles + 1))
		case $file in
		"$root"/layers/*) folder=layers ;;
		*) folder=${file#"$root"/src/} folder=${folder%%/*} ;;
		esac
		if [ -z "${rank[$folder]+x}" ]; then
			echo "${file#"$root"/}: folder $folder has no rank" >&2
			bad=1
			continue
		fi
		while IFS= read -r line; do
			n=${line%%:*}
			inc=${line#*\"}
			inc=${inc%%\"*}
			case $inc in
			*/*) to=${inc%%/*} ;;
			*)
				echo "${file#"$root"/}:$n: #include \"$inc\" names no folder" >&2
				bad=1
				continue
				;;
			esac
			if [ -z "${rank[$to]+x}" ]; then
				echo "${file#"$root"/}:$n: #include \"$inc\": no folder $to" >&2
				bad=1
			elif [ "${rank[$to]}" -gt "${rank[$folder]}" ]; then
				echo "${file#"$root"/}:$n: #include \"$inc\": $folder/ (rank ${rank[$folder]})" \
					"may not include $to/ (rank ${rank[$to]})" >&2
				bad=1
			fi
		done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
	done < <(find "$root/src" "$root/layers" -name '*.[ch]' | sort)
	if [ "$nfiles" = 0 ]; then
		echo "check-includes: no sources under $root" >&2
		return 1
	fi
	return $bad
}

self_test() {
	local t
	t=$(mktemp -d)
	trap 'rm -rf "$t"' RETURN
	copy() {
		rm -rf "$t/root"
		mkdir -p "$t/root"
		cp -r "$here/src" "$here/layers" "$here/CMakeLists.txt" "$t/root/"
	}
	expect_fail() { # what, needle
		local rc=0
		check "$t/root" 2>"$t/err" || rc=$?
		if [ "$rc" = 0 ]; then
			echo "self-test: $1 was not refused" >&2
			return 1
		fi
		if ! grep -q -- "$2" "$t/err"; then
			echo "self-test: $1: no \"$2\" in:" >&2
			cat "$t/err" >&2
			return 1
		fi
	}
	copy
	if ! check "$t/root" 2>"$t/err"; then
		echo "self-test: the unchanged copy fails:" >&2
		cat "$t/err" >&2
		return 1
	fi
	# an upward include: base/ (rank 0) reaching for oci/
	printf '#include "oci/rootfs.h"\n' >>"$t/root/src/base/error.c"
	expect_fail "base/ including oci/" 'base/ (rank 0) may not include oci/'
	copy
	# layers/ is below build/ and cli/
	printf '#include "cli/cmd.h"\n' >>"$t/root/layers/code.h"
	expect_fail "layers/ including cli/" 'layers/ (rank 7) may not include cli/'
	copy
	printf '#include "util.h"\n' >>"$t/root/src/oci/ref.c"
	expect_fail "an include without its folder" 'names no folder'
	copy
	printf '#include "nowhere/x.h"\n' >>"$t/root/src/oci/ref.c"
	expect_fail "an include of an unknown folder" 'no folder nowhere'
	copy
	printf 'int x;\n' >"$t/root/src/stray.c"
	expect_fail "a source outside the folders" 'outside the folders'
	copy
	for i in $(seq 1 16); do printf 'int y%d;\n' "$i" >"$t/root/src/run/extra$i.c"; done
	expect_fail "a folder of more than 15 .c files" 'at most 15'
	echo "check-includes self-test: 6 planted faults refused"
}

case ${1:-} in
--self-test) self_test ;;
*) check "${1:-$here}" ;;
esac
