#!/usr/bin/env bash
# Generates the fixtures the CLI tests share (once; a stamp over the fixture
# scripts decides when to rebuild). See testdata/README.md for what they are.
set -euo pipefail
: "${FIXTURES:?}" "${SRCDIR:?}"
TD=$SRCDIR/testdata
stamp=$(cat "$TD"/*.sh "$TD"/*.py "$TD"/base-files/* | sha256sum | cut -c1-16)
if [ -f "$FIXTURES/.stamp-$stamp" ]; then
	echo "fixtures up to date in $FIXTURES"
	exit 0
fi
rm -rf "$FIXTURES"
mkdir -p "$FIXTURES"
PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ORIGIN=/tmp/build/envs/blog-test
# Small, with the blog's 3.8 names: paths and config checks.
bash "$TD/mk-base.sh" "$FIXTURES/base38" 3.8 3.8 names
bash "$TD/mk-prefix.sh" "$FIXTURES/prefix38" "$ORIGIN" 3.8 names
# Runnable, with Debian's python: the end-to-end invocation.
bash "$TD/mk-base.sh" "$FIXTURES/base-run" "$PYVER" "$PYVER" run
bash "$TD/mk-prefix.sh" "$FIXTURES/prefix-run" "$ORIGIN" "$PYVER" run
# AWS's own runtime client (Node.js), for the run tests; the npm tarballs
# come from `make deps`.
bash "$TD/mk-ric-base.sh" "$FIXTURES/base-ric" ric
# Conda prefix fidelity: built at a long CI path, with a compiled binary,
# a noarch entry point, a .pc file and a pip-installed console script.
bash "$TD/mk-fidelity-prefix.sh" "$FIXTURES/prefix-fidelity" \
	/home/runner/miniconda3/envs/blog-test-with-a-long-name "$PYVER"
# Bytecode (issue 20): prefix-run plus Debian's own .pyc files and the cases
# of mk-pyc-helper.py.
bash "$TD/mk-pyc-prefix.sh" "$FIXTURES/prefix-pyc" "$ORIGIN" "$PYVER"
# Packages and locks for assemble --conda-lock (issue 10), python from prefix-run.
bash "$TD/mk-pkgs.sh" "$FIXTURES/lock" "$FIXTURES/prefix-run" "$PYVER"
# Bytecode of lock builds (issue 20): a package shipping pycs, an aarch64 lock.
/usr/bin/python3 "$TD/mk-pyc-pkgs.py" "$FIXTURES/lock-pyc" "$FIXTURES/lock" "$PYVER"
echo "$PYVER" >"$FIXTURES/pyver"
touch "$FIXTURES/.stamp-$stamp"
echo "fixtures built in $FIXTURES (python $PYVER)"
