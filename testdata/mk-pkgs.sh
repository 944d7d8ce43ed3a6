#!/bin/bash
# mk-pkgs.sh OUT PREFIX PYVER
#
# The fixture of issue 10 (assemble from a lock file and a package directory, no conda):
# real-format conda packages in OUT/pkgs, a wheel in OUT/wheels, and two locks naming
# them, OUT/explicit.txt (`conda list --explicit --md5` form; one entry uses the newer
# #sha256: form) and OUT/conda-lock.yml (conda-lock version 1; linux-64 entries, one
# osx-64 entry, the wheel as a pip entry). In lock order:
#   python-PYFULL-h0_0_cpython.conda: bin/pythonPYVER, bin/python{,3} symlinks, the stdlib
#     and shared libraries of PREFIX (a runnable prefix from `mk-prefix.sh PREFIX ... run`),
#     site-packages/README.txt and the dist-packages -> site-packages link Debian needs.
#   hellotool-1.0-h0_0.tar.bz2: bin/hellotool, a script with conda's text placeholder;
#     bin/hellotool-again, a hardlink to it (a LNKTYPE member); bin/hello -> hellotool;
#     share/common/owner.txt ("hellotool").
#   whereami-1.0-h0_0.conda: bin/whereami, a C program compiled now with the 255-char
#     binary placeholder in its strings (as mk-fidelity-prefix.sh), its .pc/.conf/.h,
#     and share/common/owner.txt ("whereami"; later in the lock, so it wins).
#   greetpkg-0.1-pyh_0.tar.bz2 (noarch: python): site-packages/greetpkg with an entry
#     point greet = greetpkg:hello.
#   wheels/wheeldemo-1.0-py3-none-any.whl: pure Python, console script wheeldemo.
# OUT/expected/ is what conda would link for the explicit lock at /opt/conda-env (its
# rules re-done in python: placeholders, noarch mapping, entry point template), without
# conda-meta/ and .pyc files: the image's /opt/conda-env must equal it file for file.
# Deterministic: the same inputs give the same package hashes. Needs gcc, zstd, python3.
set -euo pipefail

usage() { echo "usage: $0 OUT PREFIX PYVER" >&2; exit 2; }
[ $# -eq 3 ] || usage
OUT=$1
PREFIX=$2
PYVER=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
command -v gcc >/dev/null || { echo "$0: gcc not installed" >&2; exit 1; }
command -v zstd >/dev/null || { echo "$0: zstd not installed" >&2; exit 1; }
[ -x "$PREFIX/bin/python$PYVER" ] || { echo "$0: $PREFIX has no bin/python$PYVER" >&2; exit 1; }
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "$0: $OUT exists and is not empty" >&2; exit 1
fi
mkdir -p "$OUT"
umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mk-pkgs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$PY" "$HERE/mk-fidelity-helper.py" csource "$WORK/whereami.c"
(cd "$WORK" && gcc -O2 -Wall -Werror -o whereami whereami.c \
    -Wl,--disable-new-dtags,-rpath,'$ORIGIN/../lib' -Wl,--build-id=none)
"$PY" "$HERE/mk-pkgs-helper.py" pkgs "$OUT" "$PREFIX" "$PYVER" "$WORK/whereami"
