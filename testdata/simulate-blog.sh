#!/bin/bash
# simulate-blog.sh WORKDIR
#
# Self-test of the fixtures WITHOUT ocilambda: does by hand what the tool will do and
# runs the result.  Builds a run-mode base (host python minor) and a run-mode prefix
# (ORIGIN /tmp/build/envs/blog-test) below WORKDIR, unpacks the base, copies the prefix
# (minus pkgs/) to rootfs/opt/conda-env, points /var/lang/bin/pythonX.Y at
# /opt/conda-env/bin/python, adds example/ as /opt/my-code, makes everything
# world-readable and invokes example.lambda_handler through run-rootfs.sh.
# Expects the response "Hello World" and the pandas/requests versions in the log.
# Also checks names mode (PYVER 3.8) of both builders.  WORKDIR is removed at the end
# unless KEEP=1.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=$1
mkdir -p "$W"
W=$(cd "$W" && pwd)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ORIGIN=/tmp/build/envs/blog-test

t() {
  local t0=$EPOCHREALTIME us
  "$@"
  us=$(( ${EPOCHREALTIME/./} - ${t0/./} ))
  printf 'TIME %s %d.%02ds\n' "$(basename "$1")" $((us / 1000000)) $((us % 1000000 / 10000)) >&2
}

t "$HERE/mk-base.sh" "$W/base" blog "$PYVER" run
t "$HERE/mk-prefix.sh" "$W/prefix" "$ORIGIN" "$PYVER" run
echo "prefix size: $(du -sh "$W/prefix" | cut -f1)" >&2
[ -s "$W/base.tar" ]

umoci unpack --rootless --image "$W/base:blog" "$W/bundle" >/dev/null
R=$W/bundle/rootfs
mkdir -p "$R/opt/conda-env"
tar -C "$W/prefix" --exclude=./pkgs -cf - . | tar -C "$R/opt/conda-env" -xf -
mv "$R/var/lang/bin/python$PYVER" "$R/var/lang/bin/python$PYVER-clean"
ln -sf /opt/conda-env/bin/python "$R/var/lang/bin/python$PYVER"
cp -a "$HERE/example" "$R/opt/my-code"
chmod -R a+rX "$R"

ENVARGS=()
while IFS= read -r kv; do ENVARGS+=(--env "$kv"); done < <(
  /usr/bin/python3 -c 'import json,sys; [print(e) for e in json.load(open(sys.argv[1]))["process"]["env"] if e.split("=")[0] not in ("TERM","HOME")]' "$W/bundle/config.json")
ENVARGS+=(--env "PYTHONPATH=/var/lang/lib/python$PYVER/site-packages:/opt/my-code")
t "$HERE/run-rootfs.sh" --cwd /var/task "${ENVARGS[@]}" "$R" \
  /lambda-entrypoint.sh example.lambda_handler > "$W/response" 2> "$W/log"
cat "$W/log" >&2
echo "response: $(cat "$W/response")" >&2
[ "$(cat "$W/response")" = '"Hello World"' ]
grep -q 'pandas version: ' "$W/log"
grep -q 'requests version: ' "$W/log"

# names mode
t "$HERE/mk-base.sh" "$W/base38" names 3.8 names
t "$HERE/mk-prefix.sh" "$W/prefix38" "$ORIGIN" 3.8 names
[ -s "$W/base38.tar" ]
[ -f "$W/prefix38/conda-meta/python-3.8.16-h_fixture_0.json" ]
umoci unpack --rootless --image "$W/base38:names" "$W/bundle38" >/dev/null
[ -f "$W/bundle38/rootfs/var/lang/bin/python3.8" ] && [ ! -L "$W/bundle38/rootfs/var/lang/bin/python3.8" ]
[ "$(readlink "$W/bundle38/rootfs/var/lang/bin/python3")" = python3.8 ]
[ ! -e "$W/bundle38/rootfs/var/lang/bin/obsolete-tool" ]
[ ! -e "$W/bundle38/rootfs/var/runtime/legacy/old.py" ]
[ -f "$W/bundle38/rootfs/var/runtime/legacy/NEW.txt" ]
echo "simulate-blog: OK" >&2
