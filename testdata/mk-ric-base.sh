#!/bin/bash
# mk-ric-base.sh --fetch [NPM_CACHE]
# mk-ric-base.sh OUT_LAYOUT_DIR TAG [NPM_CACHE]
#
# A runnable Lambda base whose runtime client is AWS's own: the npm package
# aws-lambda-ric (AWS's Node.js runtime interface client, Apache-2.0), whose
# native part is aws-lambda-cpp, the libcurl-based C++ client library that the
# Python client (awslambdaric) wraps too. Modelled on
# public.ecr.aws/lambda/nodejs:20, built with umoci + skopeo (never with
# ocilambda itself):
#   OUT_LAYOUT_DIR        OCI image layout, tag TAG
#   OUT_LAYOUT_DIR.tar    docker-archive of the same image
#
# The two npm tarballs are dependencies, taken the way the Makefile takes
# Debian packages: `make test-deps` runs `--fetch`, which `npm pack`s the pinned
# versions into NPM_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/ocilambda-testdata/npm,
# outside the repository) and checks them against the registry's sha512
# integrity pinned below. Building never touches the network: it checks the
# same pins and says to run `make test-deps` when a tarball is missing.
#
# What is built (in a temporary directory):
#   - aws-lambda-cpp 0.2.8 (deps/aws-lambda-cpp-0.2.8.tar.gz inside the npm
#     tarball, AWS's tenant-id and X-Ray patches already applied) with cmake,
#     against Debian's libcurl (libcurl4-openssl-dev), not the curl the
#     package bundles;
#   - the addon src/rapid-client.cc with g++ against the host's Node.js
#     headers (/usr/include/node) and node-addon-api's headers.
# Layers: 1 "os" (busybox, passwd, glibc, libstdc++ and libgcc_s),
# 2 "runtime" (/var/lang/bin/node, the client under
# /var/runtime/node_modules/aws-lambda-ric, libcurl and what it links in
# /var/runtime/lib, /var/runtime/bootstrap, /lambda-entrypoint.sh).
# The client's 3.x line is the one for Node.js 20 (4.x declares node >= 22).
set -euo pipefail

RIC_VERSION=3.3.0
RIC_INTEGRITY=sha512-9p06TbKVK4a050NY/vYOxhMHvnIiUu5o1W0//q6yNLSqA/c91pn4BOj3C3sRTpplkUNsGJdU5qWyU2STo6L8hA==
NAPI_VERSION=6.1.0
NAPI_INTEGRITY=sha512-+eawOlIgy680F0kBzPUNFhMZGtJ1YmqM6l4+Crf4IkImjYrO/mqPwRMh352g23uIaQKFItcQ64I7KMaJxHgAVA==
CPP_VERSION=0.2.8

usage() {
  echo "usage: $0 --fetch [NPM_CACHE] | $0 OUT_LAYOUT_DIR TAG [NPM_CACHE]" >&2
  exit 2
}
default_cache() { echo "${XDG_CACHE_HOME:-$HOME/.cache}/ocilambda-testdata/npm"; }

# verify FILE INTEGRITY: npm's sha512-<base64> of FILE
verify() {
  local got
  got=sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)
  [ "$got" = "$2" ]
}

# fetch CACHE NAME VERSION INTEGRITY: npm pack NAME@VERSION into CACHE
fetch() {
  local cache=$1 name=$2 version=$3 integrity=$4 file=$1/$2-$3.tgz tmp
  if [ -f "$file" ] && verify "$file" "$integrity"; then
    return 0
  fi
  command -v npm >/dev/null || { echo "$0: npm is not installed (it comes with Node.js)" >&2; exit 1; }
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  if ! (cd "$tmp" && npm pack --silent --fetch-retries=1 "$name@$version" >"$tmp/npm.log" 2>&1); then
    echo "$0: cannot get $name@$version from the npm registry (npm pack failed):" >&2
    tail -n 5 "$tmp/npm.log" >&2
    rm -rf "$tmp"
    exit 1
  fi
  if ! verify "$tmp/$name-$version.tgz" "$integrity"; then
    echo "$0: $name@$version from the registry does not match the pinned $integrity" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mv "$tmp/$name-$version.tgz" "$file"
  rm -rf "$tmp"
  echo "fetched $name@$version into $cache"
}

if [ "${1:-}" = --fetch ]; then
  [ $# -le 2 ] || usage
  CACHE=${2:-$(default_cache)}
  fetch "$CACHE" aws-lambda-ric "$RIC_VERSION" "$RIC_INTEGRITY"
  fetch "$CACHE" node-addon-api "$NAPI_VERSION" "$NAPI_INTEGRITY"
  exit 0
fi

[ $# -ge 2 ] && [ $# -le 3 ] || usage
OUT=${1%/}
TAG=$2
CACHE=${3:-$(default_cache)}
[ -n "$TAG" ] && [ -n "$OUT" ] && [ "$OUT" != / ] || usage
for pair in "aws-lambda-ric-$RIC_VERSION.tgz $RIC_INTEGRITY" "node-addon-api-$NAPI_VERSION.tgz $NAPI_INTEGRITY"; do
  set -- $pair
  if [ ! -f "$CACHE/$1" ]; then
    echo "$0: $CACHE/$1 is missing: run 'make test-deps' (or $0 --fetch $CACHE)" >&2
    exit 1
  fi
  verify "$CACHE/$1" "$2" || { echo "$0: $CACHE/$1 does not match the pinned $2" >&2; exit 1; }
done
for tool in umoci skopeo busybox cmake g++ node; do
  command -v "$tool" >/dev/null || { echo "$0: $tool not installed" >&2; exit 1; }
done
[ -f /usr/include/node/node_api.h ] || { echo "$0: no Node.js headers in /usr/include/node" >&2; exit 1; }
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] ||
  { echo "$0: no libcurl headers (libcurl4-openssl-dev)" >&2; exit 1; }
NODE=$(readlink -f "$(command -v node)")
BUSYBOX=$(command -v busybox)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

rm -rf "$OUT" "$OUT.tar"
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mk-ric-base.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export TMPDIR=$WORK

# ------------------------------------------------------------ the client
# quiet unless it fails
quiet() {
  "$@" >"$WORK/step.log" 2>&1 || { echo "$0: failed: $*" >&2; tail -n 30 "$WORK/step.log" >&2; exit 1; }
}
mkdir "$WORK/src" "$WORK/napi"
tar -xzf "$CACHE/aws-lambda-ric-$RIC_VERSION.tgz" -C "$WORK/src" --no-same-owner
tar -xzf "$CACHE/node-addon-api-$NAPI_VERSION.tgz" -C "$WORK/napi" --no-same-owner --strip-components=1
PKG=$WORK/src/package
tar -xzf "$PKG/deps/aws-lambda-cpp-$CPP_VERSION.tar.gz" -C "$WORK/src" --no-same-owner
quiet cmake -S "$WORK/src/aws-lambda-cpp-$CPP_VERSION" -B "$WORK/cpp-build" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-fPIC -DCMAKE_INSTALL_PREFIX="$WORK/cpp"
quiet cmake --build "$WORK/cpp-build" -j 2
quiet cmake --install "$WORK/cpp-build"
# what node-gyp would do with the package's binding.gyp, by hand: C++
# exceptions on (binding.gyp removes -fno-exceptions), hidden symbols
quiet g++ -O2 -std=c++17 -shared -fPIC -fvisibility=hidden -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS \
  -DBUILDING_NODE_EXTENSION -DNODE_GYP_MODULE_NAME=rapid_client \
  -I "$WORK/napi" -I /usr/include/node -I "$WORK/cpp/include" \
  "$PKG/src/rapid-client.cc" -o "$WORK/rapid-client.node" \
  "$WORK/cpp/lib/libaws-lambda-runtime.a" -lcurl

# ------------------------------------------------------------ the image
IMG="$OUT:$TAG"
BUNDLE=$WORK/bundle
R=$BUNDLE/rootfs
CREATED=2023-03-01T00:00:00Z
umoci init --layout "$OUT" >/dev/null
umoci new --image "$IMG" >/dev/null
umoci unpack --rootless --image "$IMG" "$BUNDLE" >/dev/null

# ---- layer 1: os
# shellcheck source=testdata/base-lib.sh
. "$HERE/base-lib.sh"
base_os_tree "$R" "$BUSYBOX" "ocilambda test fixture base (modelled on public.ecr.aws/lambda/nodejs:20), AWS's aws-lambda-ric $RIC_VERSION"
base_glibc "$R" "$WORK"
base_deps "$WORK" "$NODE" >"$WORK/node.deps"
while read -r name path; do
  cp -L "$path" "$R/lib/x86_64-linux-gnu/$name"
done <"$WORK/node.deps"
chmod 0755 "$R"/lib/x86_64-linux-gnu/* "$R/lib64/ld-linux-x86-64.so.2"
umoci repack --image "$IMG" --history.created "$CREATED" \
  --history.created_by "testdata/mk-ric-base.sh: layer 1 (os: busybox, passwd, dirs, glibc, libstdc++)" \
  "$BUNDLE" >/dev/null

# ---- layer 2: runtime
rm -rf "$BUNDLE"
umoci unpack --rootless --image "$IMG" "$BUNDLE" >/dev/null
mkdir -p "$R/var/lang/bin" "$R/var/task" "$R/var/runtime/lib"
cp "$NODE" "$R/var/lang/bin/node"
RIC=$R/var/runtime/node_modules/aws-lambda-ric
mkdir -p "$RIC/dist" "$RIC/bin"
cp "$PKG/dist/index.mjs" "$RIC/dist/"
cp "$WORK/rapid-client.node" "$RIC/dist/"
cp "$PKG/bin/index.mjs" "$RIC/bin/"
cp "$PKG/package.json" "$PKG/LICENSE" "$PKG/NOTICE" "$PKG/THIRD-PARTY-LICENSES" "$RIC/"
# libcurl and what it needs, beyond what the os layer has: found through the
# base's LD_LIBRARY_PATH (/var/runtime/lib), as in AWS's bases
base_deps "$WORK" "$WORK/rapid-client.node" >"$WORK/addon.deps"
while read -r name path; do
  [ -e "$R/lib/x86_64-linux-gnu/$name" ] || cp -L "$path" "$R/var/runtime/lib/$name"
done <"$WORK/addon.deps"
[ -e "$R/var/runtime/lib/libcurl.so.4" ] || { echo "$0: libcurl not in the closure" >&2; exit 1; }
chmod 0755 "$R"/var/runtime/lib/* "$R/var/lang/bin/node" "$RIC/dist/rapid-client.node"
cat >"$R/var/runtime/bootstrap" <<'EOF'
#!/bin/sh
# Fixture runtime bootstrap: AWS's Node.js runtime interface client, with the
# handler in $_HANDLER (MODULE.FUNCTION, MODULE found in the working
# directory, /var/task).
exec /var/lang/bin/node /var/runtime/node_modules/aws-lambda-ric/bin/index.mjs "$_HANDLER"
EOF
cp "$HERE/base-files/lambda-entrypoint.sh" "$R/lambda-entrypoint.sh"
chmod 0755 "$R/var/runtime/bootstrap" "$R/lambda-entrypoint.sh"
umoci repack --image "$IMG" --history.created "$CREATED" \
  --history.created_by "testdata/mk-ric-base.sh: layer 2 (runtime: node, aws-lambda-ric $RIC_VERSION with aws-lambda-cpp $CPP_VERSION on Debian's libcurl)" \
  "$BUNDLE" >/dev/null

# ---- config, as AWS's nodejs:20 base
base_lambda_config "$IMG" "$CREATED" \
  --config.env NODE_PATH=/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task
umoci gc --layout "$OUT" >/dev/null
skopeo --insecure-policy copy --quiet "oci:$OUT:$TAG" "docker-archive:$OUT.tar:lambda/nodejs:$TAG" >/dev/null
[ -s "$OUT.tar" ]
