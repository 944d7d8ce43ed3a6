#!/bin/bash
# mk-fidelity-prefix.sh DEST ORIGIN PYVER
#
# The relocation fixture of issue 6: the runnable prefix of `mk-prefix.sh DEST ORIGIN
# PYVER run`, plus conda packages built and installed here the way conda-build/conda do
# it, for a prefix that says it was installed at ORIGIN (a string only; longer than
# /opt/conda-env, at most 255 bytes):
#   whereami-1.0-h0_0 (linux-64): bin/whereami, a C program compiled now whose prefix
#     strings held the 255-char binary placeholder and now hold ORIGIN + NUL padding
#     (file_mode binary); lib/pkgconfig/whereami.pc (text, /opt/anaconda1anaconda2anaconda3)
#     and etc/whereami/paths.conf (text, the 255-char placeholder); include/whereami.h.
#   greetpkg-0.1-pyh_0 (noarch: python): site-packages/greetpkg + dist-info, entry point
#     bin/greet (unix_python_entry_point, conda's template, #!ORIGIN/bin/pythonPYVER).
#   pipdemo 1.0, pip-installed (not in conda-meta): dist-info with RECORD, bin/pipdemo.
#   share/notes/built-at.txt (unmanaged, holds ORIGIN, not a script),
#   share/outside-link -> /etc/hostname.
# Both packages are also left in DEST/pkgs (extracted dir + .tar.bz2). Uses
# mk-fidelity-helper.py. Needs gcc and what mk-prefix.sh run mode needs. Prints nothing
# but errors.
set -euo pipefail

usage() { echo "usage: $0 DEST ORIGIN PYVER" >&2; exit 2; }
[ $# -eq 3 ] || usage
DEST=$1
ORIGIN=${2%/}
PYVER=$3
[ "${#ORIGIN}" -le 255 ] || { echo "$0: ORIGIN longer than 255 bytes" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPER=$HERE/mk-fidelity-helper.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
command -v gcc >/dev/null || { echo "$0: gcc not installed" >&2; exit 1; }

# the runnable base prefix (checks DEST, ORIGIN and PYVER itself)
bash "$HERE/mk-prefix.sh" "$DEST" "$ORIGIN" "$PYVER" run
DEST=$(cd "$DEST" && pwd)
umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mk-fidelity.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# whereami as conda-build leaves it in the package: placeholder in its strings,
# RPATH $ORIGIN/../lib like conda's binaries, only libc needed
"$PY" "$HELPER" csource "$WORK/whereami.c"
(cd "$WORK" && gcc -O2 -Wall -Werror -o whereami whereami.c \
    -Wl,--disable-new-dtags,-rpath,'$ORIGIN/../lib')
needed=$(LC_ALL=C readelf -d "$WORK/whereami" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[ "$needed" = "libc.so.6 " ] || { echo "$0: whereami needs: $needed" >&2; exit 1; }

"$PY" "$HELPER" fidelity "$DEST" "$ORIGIN" "$PYVER" "$WORK/whereami"
find "$DEST" -name __pycache__ -prune -exec rm -rf {} +

# self-check (no bytecode written)
out=$(cd / && env -i "$DEST/bin/whereami")
[ "$out" = "$ORIGIN" ] || { echo "$0: whereami prints '$out', expected '$ORIGIN'" >&2; exit 1; }
out=$(cd / && env -i "$DEST/bin/python" -B "$DEST/bin/greet")
[ "$out" = "hello from greetpkg" ] || { echo "$0: bin/greet printed '$out'" >&2; exit 1; }
out=$(cd / && env -i "$DEST/bin/python" -B "$DEST/bin/pipdemo")
[ "$out" = "pipdemo ok" ] || { echo "$0: bin/pipdemo printed '$out'" >&2; exit 1; }
