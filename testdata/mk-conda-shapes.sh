#!/bin/bash
# mk-conda-shapes.sh OUT PYVER
#
# The fixture of issue 14: what real conda packages and prefixes do that the other
# fixtures do not (~1 s, ~1 MB; needs gcc, zstd, python3).
#   OUT/prefix-short: `mk-prefix.sh ... names` installed at /tmp/e (a short path, as
#     container CI has them), plus whereami, greetpkg and the rest of
#     `mk-fidelity-helper.py fidelity`: bin/whereami's strings hold /tmp/e, the string
#     search_path twice, each followed by the NULs conda pads with for the 255-byte
#     placeholder conda-meta records (lib/fixture-binary.dat likewise). greetpkg's
#     record is written as mamba 1.5 writes it (paths_data with the package's
#     site-packages/... paths, as a real Miniforge3 updated by mamba has them).
#   OUT/prefix-long: the same installed at /home/runner/miniconda3/envs/a-long-ci-path.
#     Relocated to /opt/conda-env, both must give the same bytes.
#   OUT/pkgs (`mk-pkgs-helper.py shapes`):
#     python-PYFULL-h0_0_fixture.tar.bz2: names-mode python, for the locks;
#     termlink-6.2-h0_1.conda: the layout of ncurses-6.2-he6710b0_1.conda (Anaconda
#       main): an empty metadata.json, info- before pkg-, and lib/terminfo ->
#       ../share/terminfo (a link to a directory) in the INFO tarball, with
#       etc/termlink.conf (text placeholder) beside it;
#     ghostpath-1.0-h0_0.tar.bz2: lib/ghost -> ../share/ghost before share/ghost/,
#       info/ after the payload, and info/paths.json listing share/ghost/gone.txt,
#       which the package does not hold.
#   OUT/shapes.txt: explicit lock of the three; OUT/clean.txt: python and termlink.
set -euo pipefail

usage() { echo "usage: $0 OUT PYVER" >&2; exit 2; }
[ $# -eq 2 ] || usage
OUT=$1
PYVER=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
command -v gcc >/dev/null || { echo "$0: gcc not installed" >&2; exit 1; }
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "$0: $OUT exists and is not empty" >&2; exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mk-shapes.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$PY" "$HERE/mk-fidelity-helper.py" csource "$WORK/whereami.c"
(cd "$WORK" && gcc -O2 -Wall -Werror -o whereami whereami.c \
    -Wl,--disable-new-dtags,-rpath,'$ORIGIN/../lib' -Wl,--build-id=none)
for p in short:/tmp/e:mamba long:/home/runner/miniconda3/envs/a-long-ci-path:conda; do
  IFS=: read -r name origin style <<<"$p"
  bash "$HERE/mk-prefix.sh" "$OUT/prefix-$name" "$origin" "$PYVER" names
  "$PY" "$HERE/mk-fidelity-helper.py" fidelity "$OUT/prefix-$name" "$origin" "$PYVER" \
    "$WORK/whereami" "$style"
done
PYFULL=$(sed -n 's/.*"version": "\([^"]*\)".*/\1/p' "$OUT"/prefix-short/conda-meta/python-*.json | head -n 1)
[ -n "$PYFULL" ] || { echo "$0: no python version in prefix-short" >&2; exit 1; }
"$PY" "$HERE/mk-pkgs-helper.py" shapes "$OUT" "$PYVER" "$PYFULL"
