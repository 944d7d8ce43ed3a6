#!/bin/bash
# mk-pyc-prefix.sh DEST ORIGIN PYVER
#
# The bytecode fixture of issue 20: the runnable prefix of mk-prefix.sh
# (Debian's python PYVER, its stdlib, pandas, requests...) with Debian's own
# .pyc files beside the sources they were compiled from (py3compile wrote
# them when the Debian packages were installed; tar kept the sources'
# mtimes, so they are valid in DEST as they are in /usr/lib), plus the
# package pycfixture (mk-pyc-helper.py cases): one module per case, compiled
# by DEST's own python: valid (and its opt-1, opt-2 forms), rewritten by the
# relocation (a text placeholder holding ORIGIN), edited after compiling
# (stale), stale with a pyc recording mtime 0 and the source's size (what
# a normalized layer would make valid), checked-hash and unchecked-hash, a
# source mtime past 2**32, a python 3.9 copy, a truncated pyc, and a pyc
# whose source is gone. Prints two lines; ~5 s.
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 DEST ORIGIN PYVER" >&2; exit 2; }
DEST=$1 ORIGIN=$2 PYVER=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$HERE/mk-prefix.sh" "$DEST" "$ORIGIN" "$PYVER" run
/usr/bin/python3 "$HERE/mk-pyc-helper.py" debian "$DEST" "$PYVER"
/usr/bin/python3 "$HERE/mk-pyc-helper.py" cases "$DEST" "$ORIGIN" "$PYVER"
