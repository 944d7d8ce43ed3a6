#!/bin/bash
# run-lambda.sh LAYOUT_DIR TAG WORKDIR [EVENT_JSON [CMD...]]
#
# The blog's "docker run + curl" check without Docker: unpacks the image
# LAYOUT_DIR:TAG (OCI layout) with `umoci unpack --rootless` into WORKDIR/bundle and
# runs it with run-rootfs.sh (bubblewrap, read-only /, uid 993, one event served by
# lambda-emulator.py).  args and cwd come from WORKDIR/bundle/config.json, the
# environment from its process.env restricted to the variables the image config sets
# (umoci adds TERM and HOME, Lambda does not).  CMD..., if given, replaces the image's
# Cmd (the image's Entrypoint stays).  Prints the function log to stderr, the response
# body to stdout; exit status as run-rootfs.sh (0 only for a successful response).
# Environment: RUN_LAMBDA_TIMEOUT (default 120 s), RUN_LAMBDA_ENV="K=V K=V" extra vars.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 3
fi
LAYOUT=${1%/}
TAG=$2
WORKDIR=$3
EVENT=${4:-'{}'}
shift 3
[ $# -gt 0 ] && shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

mkdir -p "$WORKDIR"
rm -rf "$WORKDIR/bundle"
umoci unpack --rootless --image "$LAYOUT:$TAG" "$WORKDIR/bundle" >/dev/null

"$PY" - "$LAYOUT" "$TAG" "$WORKDIR/bundle/config.json" "$WORKDIR/run-config.json" "$@" <<'PYEOF'
import json, os, sys
layout, tag, src, dst = sys.argv[1:5]
cmd = sys.argv[5:]
blob = lambda d: os.path.join(layout, "blobs", *d.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
desc = [m for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
man = json.load(open(blob(desc["digest"])))
if "manifests" in man:  # an index: take linux/amd64
    man = json.load(open(blob([m for m in man["manifests"]
                               if m.get("platform", {}).get("architecture") == "amd64"][0]["digest"])))
img = json.load(open(blob(man["config"]["digest"]))).get("config") or {}
keys = {e.partition("=")[0] for e in img.get("Env") or []}
rt = json.load(open(src))
proc = rt["process"]
proc["env"] = [e for e in proc.get("env") or [] if e.partition("=")[0] in keys]
if cmd:
    proc["args"] = (img.get("Entrypoint") or []) + cmd
json.dump(rt, open(dst, "w"), indent=1)
PYEOF

EXTRA=()
for kv in ${RUN_LAMBDA_ENV:-}; do EXTRA+=(--env "$kv"); done
exec "$HERE/run-rootfs.sh" --config "$WORKDIR/run-config.json" --event "$EVENT" \
  --timeout "${RUN_LAMBDA_TIMEOUT:-120}" ${EXTRA[@]+"${EXTRA[@]}"} "$WORKDIR/bundle/rootfs"
