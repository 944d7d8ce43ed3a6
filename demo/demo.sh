#!/usr/bin/env bash
# make demo: build the bundled example into a Lambda image and invoke it the
# way the blog does, without Docker: fixtures -> ocilambda assemble -> umoci
# unpack -> bubblewrap + a local Runtime API emulator -> "Hello World".
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TD=$PWD/testdata
OUT=$PWD/$BUILD/demo
PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
step() { printf '\n== %s\n' "$*"; }

step "making a Lambda-like base image (umoci) and a conda-like env built at /tmp/build/envs/blog-test"
rm -rf "$OUT"
mkdir -p "$OUT"
bash "$TD/mk-base.sh" "$OUT/base" "$PYVER" "$PYVER" run
bash "$TD/mk-prefix.sh" "$OUT/env" /tmp/build/envs/blog-test "$PYVER" run

step "ocilambda assemble"
set -x
"$BUILD/ocilambda" assemble --progress --base "oci:$OUT/base:$PYVER" --conda-prefix "$OUT/env" \
	--code "$TD/example" --handler example.lambda_handler --output "oci:$OUT/image:latest"
{ set +x; } 2>/dev/null

step "skopeo inspect oci:$OUT/image:latest"
skopeo inspect --config "oci:$OUT/image:latest" | /usr/bin/python3 -c '
import json, sys
c = json.load(sys.stdin)["config"]
for k in ("Env", "Entrypoint", "Cmd", "WorkingDir"):
    print("  %-10s %s" % (k, c.get(k)))'

step "invoking example.lambda_handler with {} (umoci unpack + bwrap + Runtime API emulator)"
rm -rf "$OUT/run"
response=$(bash "$TD/run-lambda.sh" "$OUT/image" latest "$OUT/run" '{}')
printf '\nresponse: %s\n' "$response"
[ "$response" = '"Hello World"' ]

step "the same with ocilambda run alone (bubblewrap, its own Runtime API; no umoci, no emulator)"
set -x
response=$("$BUILD/ocilambda" run --cache-dir "$OUT/cache" "oci:$OUT/image:latest" --event '{}')
{ set +x; } 2>/dev/null
printf '\nresponse: %s\n' "$response"
[ "$response" = '"Hello World"' ]
