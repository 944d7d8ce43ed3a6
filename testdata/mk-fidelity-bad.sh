#!/bin/bash
# mk-fidelity-bad.sh DEST ORIGIN PYVER CASE
#
# A small prefix (`mk-prefix.sh DEST ORIGIN PYVER names`) broken in exactly one way, for
# the refusal tests of issue 6. CASE:
#   editable-egg-link    lib/pythonPYVER/site-packages/mypkg.egg-link (+ easy-install.pth)
#   editable-pth         __editable__.mypkg-0.1.pth + __editable___mypkg_0_1_finder.py
#   editable-direct-url  mypkg-0.1.dist-info/direct_url.json {"dir_info": {"editable": true}}
#   osx | win            the python record's subdir is osx-64 | win-64
#   aarch64              every non-noarch record's subdir is linux-aarch64
#   missing-file         ghost-1.0-h0_0 lists lib/libghost.so.1, absent from the prefix
#   malformed            conda-meta/broken-1.0-h0_0.json is cut in half (invalid JSON)
#   partial              conda-meta/partial-1.0-h0_0.json has no "name"
# Uses mk-fidelity-helper.py. Prints nothing but errors.
set -euo pipefail

CASES="editable-egg-link editable-pth editable-direct-url osx win missing-file malformed partial aarch64"
usage() { echo "usage: $0 DEST ORIGIN PYVER CASE  (CASE: $CASES)" >&2; exit 2; }
[ $# -eq 4 ] || usage
DEST=$1 ORIGIN=${2%/} PYVER=$3 CASE=$4
case " $CASES " in *" $CASE "*) ;; *) usage ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
bash "$HERE/mk-prefix.sh" "$DEST" "$ORIGIN" "$PYVER" names
umask 022
"$PY" "$HERE/mk-fidelity-helper.py" bad "$DEST" "$ORIGIN" "$PYVER" "$CASE"
