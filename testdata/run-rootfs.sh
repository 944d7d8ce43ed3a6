#!/bin/bash
# run-rootfs.sh [OPTIONS] ROOTFS [ARG...]
#
# Runs a Lambda container root filesystem the way Lambda would, without Docker:
# bubblewrap with ROOTFS bound read-only at /, /proc, /dev, a fresh /tmp, all
# namespaces unshared except the network (the Runtime API emulator listens on
# 127.0.0.1), uid 993 / gid 990, an environment of exactly the given variables plus
# AWS_LAMBDA_RUNTIME_API.  One event is served by lambda-emulator.py.
#
# Options:
#   --config FILE   OCI runtime config.json (as `umoci unpack` writes): process.args,
#                   process.env and process.cwd are used
#   --env K=V       add or override one variable (repeatable)
#   --cwd DIR       working directory inside the container (default: config's, else /)
#   --event JSON    the event (default {})
#   --timeout SEC   overall bound (default 120)
# ARG... replaces the config's process.args.
#
# Prints the function's output (stdout+stderr) to stderr and the response body to
# stdout.  Exit status 0 only for a successful response; on a function error or init
# error the body (prefixed "ERROR " / "INIT_ERROR ") is still printed and the exit
# status is 1; 2 when no answer came at all; 3 for usage errors.
set -euo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 3; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

CONFIG=""
EVENT='{}'
TIMEOUT=120
CWD=""
ENV_OVERRIDES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --env) ENV_OVERRIDES+=("$2"); shift 2 ;;
    --cwd) CWD=$2; shift 2 ;;
    --event) EVENT=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    -*) echo "run-rootfs.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
ROOTFS=$(cd "$1" && pwd)
shift
for d in proc dev tmp; do
  if [ ! -d "$ROOTFS/$d" ]; then
    mkdir "$ROOTFS/$d" 2>/dev/null || { echo "run-rootfs.sh: $ROOTFS/$d is missing" >&2; exit 3; }
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/run-rootfs.XXXXXX")
EMU_PID=""
BW_PID=""
cleanup() {
  [ -n "$BW_PID" ] && kill -KILL "$BW_PID" 2>/dev/null || true
  [ -n "$EMU_PID" ] && kill -KILL "$EMU_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# args, env and cwd -> NUL-separated files
"$PY" - "$WORK" "$CONFIG" "$CWD" "$@" ${ENV_OVERRIDES[@]+"--ENV--" "${ENV_OVERRIDES[@]}"} <<'EOF'
import json, sys
work, config, cwd = sys.argv[1:4]
rest = sys.argv[4:]
overrides = []
if "--ENV--" in rest:
    i = rest.index("--ENV--")
    rest, overrides = rest[:i], rest[i + 1:]
args, env = [], []
if config:
    proc = json.load(open(config))["process"]
    args = proc.get("args") or []
    env = proc.get("env") or []
    cwd = cwd or proc.get("cwd") or "/"
if rest:
    args = rest
if not args:
    sys.exit("run-rootfs.sh: nothing to run (no ARG and no --config)")
merged = {}
for kv in env + overrides:
    k, sep, v = kv.partition("=")
    if not sep or not k:
        sys.exit("run-rootfs.sh: bad environment entry %r" % kv)
    merged.pop(k, None)
    merged[k] = v
merged.pop("AWS_LAMBDA_RUNTIME_API", None)
def w(name, items):
    with open("%s/%s" % (work, name), "wb") as f:
        for it in items:
            f.write(it.encode() + b"\0")
w("args", args)
w("env", [x for kv in merged.items() for x in kv])
w("cwd", [cwd or "/"])
EOF
mapfile -d '' ARGS < "$WORK/args"
mapfile -d '' ENVKV < "$WORK/env"
mapfile -d '' CWDA < "$WORK/cwd"

# the emulator
"$PY" "$HERE/lambda-emulator.py" --port-file "$WORK/port" --out "$WORK/out" \
  --event="$EVENT" --timeout "$TIMEOUT" &
EMU_PID=$!
for _ in $(seq 100); do
  [ -s "$WORK/port" ] && break
  kill -0 "$EMU_PID" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$WORK/port" ]; then
  echo "run-rootfs.sh: the Runtime API emulator did not start" >&2
  exit 2
fi
PORT=$(cat "$WORK/port")

BW=(bwrap --unshare-all --share-net --die-with-parent --new-session
    --ro-bind "$ROOTFS" / --proc /proc --dev /dev --perms 1777 --tmpfs /tmp)
# Lambda runs functions as a non-root user (sbx_user1051, 993:990).  As root, bwrap
# only changes uid/gid inside a new user namespace.
if bwrap --unshare-user --uid 993 --gid 990 --ro-bind / / true 2>/dev/null; then
  BW+=(--unshare-user --uid 993 --gid 990)
else
  echo "run-rootfs.sh: WARNING: bwrap cannot switch to uid 993/gid 990 here; running with the current uid $(id -u)" >&2
fi
BW+=(--clearenv)
for ((i = 0; i < ${#ENVKV[@]}; i += 2)); do
  BW+=(--setenv "${ENVKV[i]}" "${ENVKV[i+1]}")
done
BW+=(--setenv AWS_LAMBDA_RUNTIME_API "127.0.0.1:$PORT" --chdir "${CWDA[0]}" -- "${ARGS[@]}")

"${BW[@]}" > "$WORK/log" 2>&1 < /dev/null &
BW_PID=$!

# wait (bounded) for the emulator; stop early if the container dies first
end=$((SECONDS + ${TIMEOUT%.*} + 10))
while kill -0 "$EMU_PID" 2>/dev/null; do
  if ! kill -0 "$BW_PID" 2>/dev/null; then
    # container gone: give the emulator a moment to finish writing, then stop it
    for _ in $(seq 10); do kill -0 "$EMU_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$EMU_PID" 2>/dev/null || true
    break
  fi
  [ $SECONDS -lt $end ] || { kill -TERM "$EMU_PID" 2>/dev/null || true; break; }
  sleep 0.1
done
wait "$EMU_PID" 2>/dev/null || true
EMU_PID=""

# the runtime exits by itself once the emulator is gone; bounded wait, then kill it
for _ in $(seq 50); do kill -0 "$BW_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$BW_PID" 2>/dev/null; then
  kill -TERM "$BW_PID" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$BW_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$BW_PID" 2>/dev/null || true
fi
BW_RC=0
wait "$BW_PID" 2>/dev/null || BW_RC=$?
BW_PID=""

{
  echo "----- function log (container exit status $BW_RC) -----"
  cat "$WORK/log"
  echo "----- end of function log -----"
} >&2

if [ ! -f "$WORK/out" ]; then
  echo "run-rootfs.sh: no response from the function" >&2
  exit 2
fi
cat "$WORK/out"
echo
case "$(head -c 11 "$WORK/out")" in
  "ERROR "*|"INIT_ERROR "*) exit 1 ;;
esac
exit 0
