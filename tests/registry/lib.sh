# tests/registry/lib.sh -- local OCI registries and misbehaving fronts for ocilambda's tests.
#
#   set -euo pipefail
#   T=$(mktemp -d); trap 'rm -rf "$T"' EXIT      # optional; lib.sh chains any EXIT trap
#   . tests/registry/lib.sh
#   registry_start reg                             # -> $reg_HOST (127.0.0.1:PORT), $reg_LOG
#   registry_seed reg "oci:$LAYOUT:3.8" lambda/python:3.8
#
# Everything listens on 127.0.0.1 (tokenfront's blob host on 127.0.0.2) on ports chosen at
# run time, keeps its state under $T, and is killed by stop_all -- which runs from the EXIT
# trap this file installs (it chains the EXIT trap present when a *_start function runs; if
# you set your own EXIT trap after the last *_start, call stop_all in it). A watchdog also
# kills everything within ~1 s after the test shell is gone (even on SIGKILL), and every
# process ends by itself after REGLIB_MAX_LIFETIME seconds (default 900).
# Needs: docker-registry apache2-utils (htpasswd) openssl curl skopeo umoci python3.
# See README.md beside this file.

if [ -n "${_REGLIB_LOADED:-}" ]; then return 0; fi   # sourced twice: keep the state
_REGLIB_LOADED=1
REGLIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REGLIB_PY=/usr/bin/python3
[ -x "$REGLIB_PY" ] || REGLIB_PY=python3
: "${REGLIB_MAX_LIFETIME:=900}"
declare -gA _REGLIB_SCHEME=() _REGLIB_CAFILE=() _REGLIB_CREDS=()   # keyed by HOST:PORT
declare -ga _REGLIB_PIDS=()                                         # "pid<TAB>marker"
_REGLIB_WATCHDOG=
_REGLIB_PREV_TRAP=

_reglib_die() { echo "registry lib: $*" >&2; return 1; }

_reglib_state() {  # the state directory ($T), created if needed
  [ -n "${T:-}" ] || _reglib_die 'set $T (a temp dir) before using lib.sh' || return 1
  mkdir -p "$T/.reglib"
  printf '%s\n' "$T"
}

_reglib_name() {
  [[ ${1:-} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || _reglib_die "NAME must be a shell identifier, got '${1:-}'"
}

_reglib_get() {  # value of the variable named $1, or fail
  [ -n "${!1:-}" ] || _reglib_die "\$$1 is not set (was the server started?)" || return 1
  printf '%s\n' "${!1}"
}

_reglib_free_port() {
  "$REGLIB_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_reglib_exit_trap() {
  local rc=$?
  set +e
  stop_all
  if [ -n "$_REGLIB_PREV_TRAP" ]; then
    (exit "$rc")
    eval "$_REGLIB_PREV_TRAP"
  fi
  exit "$rc"
}

# shellcheck disable=SC2120  # set -- parses trap -p output
_reglib_install_trap() {  # chain whatever EXIT trap is there now (once)
  local cur
  cur=$(trap -p EXIT)
  case "$cur" in *_reglib_exit_trap*) return 0 ;; esac
  _REGLIB_PREV_TRAP=
  if [ -n "$cur" ]; then
    eval "set -- $cur"   # trap -- 'COMMAND' EXIT
    _REGLIB_PREV_TRAP=$3
  fi
  trap _reglib_exit_trap EXIT
}

# _reglib_kill PID MARKER: TERM (then KILL after 2 s) PID if its command line contains MARKER
_reglib_kill() {
  local pid=$1 marker=$2 i cmd
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 0
  [[ $cmd == *"$marker"* ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || break
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

_reglib_track() {  # PID MARKER: remember a started process, make sure trap + watchdog exist
  local st
  st=$(_reglib_state)
  _REGLIB_PIDS+=("$1"$'\t'"$2")
  printf '%s\t%s\n' "$1" "$2" >> "$st/.reglib/pids"
  _reglib_install_trap
  if [ -z "$_REGLIB_WATCHDOG" ]; then
    "$REGLIB_PY" "$REGLIB_DIR/reaper.py" $$ "$st/.reglib/pids" "$REGLIB_MAX_LIFETIME" \
      </dev/null >/dev/null 2>&1 &
    _REGLIB_WATCHDOG=$!
  fi
}

# stop_all: kill everything started by this file (newest first), and the watchdog.
stop_all() {
  local i entry
  for ((i = ${#_REGLIB_PIDS[@]} - 1; i >= 0; i--)); do
    entry=${_REGLIB_PIDS[i]}
    _reglib_kill "${entry%%$'\t'*}" "${entry#*$'\t'}"
  done
  _REGLIB_PIDS=()
  if [ -n "$_REGLIB_WATCHDOG" ]; then
    kill -TERM "$_REGLIB_WATCHDOG" 2>/dev/null || true
    wait "$_REGLIB_WATCHDOG" 2>/dev/null || true
    _REGLIB_WATCHDOG=
  fi
  if [ -n "${T:-}" ] && [ -d "$T/.reglib" ]; then : > "$T/.reglib/pids"; fi
  return 0
}

_reglib_mkcerts() {  # DIR NAME [SANS]: CA + server cert (default 127.0.0.1, localhost) with openssl
  local d=$1 name=$2 sans=${3:-IP:127.0.0.1,DNS:localhost}
  mkdir -p "$d/private"
  chmod 700 "$d/private"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$d/private/ca.key" -out "$d/ca.crt" -days 3 \
    -subj "/CN=ocilambda test CA ($name)" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
  openssl req "${ec[@]}" -keyout "$d/private/server.key" -out "$d/private/server.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf '%s\n' "subjectAltName=$sans" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$d/private/server.ext"
  openssl x509 -req -in "$d/private/server.csr" -CA "$d/ca.crt" -CAkey "$d/private/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 3 -extfile "$d/private/server.ext" \
    -out "$d/private/server.crt" 2>/dev/null
  cat "$d/private/server.crt" "$d/ca.crt" > "$d/private/server-chain.crt"
}

# registry_start NAME [--tls] [--htpasswd USER:PASS]
#   Debian's docker-registry (distribution 2.8) on 127.0.0.1:<free port>, storage $T/NAME,
#   config $T/NAME.yml, log (stdout+stderr) $T/NAME.log.
#   Exports NAME_HOST NAME_URL NAME_LOG NAME_DIR; with --tls NAME_CA (ca.crt), NAME_CERTDIR
#   (dir whose only *.crt is ca.crt: skopeo --cert-dir), NAME_CERTSD (certs.d layout:
#   certs.d/127.0.0.1:PORT/ca.crt and certs.d/localhost:PORT/ca.crt); with --htpasswd
#   NAME_CREDS (USER:PASS).
registry_start() {
  local name=${1:-}; shift || true
  _reglib_name "$name" || return 1
  local tls=0 creds="" st
  while [ $# -gt 0 ]; do
    case $1 in
      --tls) tls=1 ;;
      --htpasswd) creds=${2:?--htpasswd USER:PASS}; shift ;;
      --htpasswd=*) creds=${1#*=} ;;
      *) _reglib_die "registry_start: unknown option $1"; return 1 ;;
    esac
    shift
  done
  command -v docker-registry >/dev/null || _reglib_die "apt-get install docker-registry" || return 1
  st=$(_reglib_state) || return 1
  local dir=$st/$name cfg=$st/$name.yml log=$st/$name.log certs=$st/$name-certs
  mkdir -p "$dir"
  : > "$log"
  local scheme=http curl_tls=()
  if [ "$tls" = 1 ]; then
    _reglib_mkcerts "$certs" "$name" || _reglib_die "openssl failed" || return 1
    scheme=https
    curl_tls=(--cacert "$certs/ca.crt")
  fi
  if [ -n "$creds" ]; then
    [[ $creds == *:* ]] || _reglib_die "--htpasswd wants USER:PASS" || return 1
    command -v htpasswd >/dev/null || _reglib_die "htpasswd missing: apt-get install apache2-utils" || return 1
    htpasswd -Bbn "${creds%%:*}" "${creds#*:}" > "$st/$name.htpasswd" 2>/dev/null
  fi
  local port pid="" code i up=0
  for _ in 1 2 3; do
    port=$(_reglib_free_port)
    {
      echo "version: 0.1"
      echo "log:"
      echo "  level: info"
      echo "  formatter: text"
      echo "  fields: {service: registry, instance: $name}"
      echo "storage:"
      echo "  filesystem: {rootdirectory: \"$dir\"}"
      echo "  delete: {enabled: true}"
      echo "  cache: {blobdescriptor: inmemory}"
      echo "  maintenance:"
      echo "    uploadpurging: {enabled: false}"
      echo "http:"
      echo "  addr: 127.0.0.1:$port"
      echo "  secret: ocilambda-test-$name"
      echo "  headers:"
      echo "    X-Content-Type-Options: [nosniff]"
      if [ "$tls" = 1 ]; then
        echo "  tls:"
        echo "    certificate: \"$certs/private/server-chain.crt\""
        echo "    key: \"$certs/private/server.key\""
      fi
      if [ -n "$creds" ]; then
        echo "auth:"
        echo "  htpasswd:"
        echo "    realm: $name-realm"
        echo "    path: \"$st/$name.htpasswd\""
      fi
      echo "health:"
      echo "  storagedriver: {enabled: false}"
    } > "$cfg"
    # no REGISTRY_* overrides from the environment
    env -u REGISTRY_HTTP_ADDR -u REGISTRY_STORAGE -u REGISTRY_AUTH \
      docker-registry serve "$cfg" >> "$log" 2>&1 < /dev/null &
    pid=$!
    _reglib_track "$pid" "$cfg"
    # up to 60 s: under ctest -j with the sanitizer build on 2 cores the
    # registry can take a while; a registry that died is noticed at once
    local deadline=$((SECONDS + 60))
    while [ "$SECONDS" -lt "$deadline" ]; do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      code=$(curl -s --noproxy '*' --max-time 1 -o /dev/null -w '%{http_code}' "${curl_tls[@]}" \
             "$scheme://127.0.0.1:$port/v2/" 2>/dev/null || true)
      if [ "$code" = 200 ] || [ "$code" = 401 ]; then up=1; break; fi
      sleep 0.05
    done
    [ "$up" = 1 ] && break
    _reglib_kill "$pid" "$cfg"
    grep -q 'address already in use' "$log" || break   # only a lost port race is retried
  done
  [ "$up" = 1 ] || { tail -5 "$log" >&2; _reglib_die "registry $name did not start (log $log)"; return 1; }
  local host=127.0.0.1:$port
  _REGLIB_SCHEME[$host]=$scheme
  _REGLIB_CREDS[$host]=$creds
  _REGLIB_CAFILE[$host]=""
  export "${name}_HOST=$host" "${name}_URL=$scheme://$host" "${name}_LOG=$log" "${name}_DIR=$dir"
  if [ "$tls" = 1 ]; then
    _REGLIB_CAFILE[$host]=$certs/ca.crt
    local h
    for h in "127.0.0.1:$port" "localhost:$port"; do
      mkdir -p "$certs/certs.d/$h"
      cp "$certs/ca.crt" "$certs/certs.d/$h/ca.crt"
    done
    export "${name}_CA=$certs/ca.crt" "${name}_CERTDIR=$certs" "${name}_CERTSD=$certs/certs.d"
  fi
  if [ -n "$creds" ]; then export "${name}_CREDS=$creds"; fi
  return 0
}

# registry_seed NAME SRC_REF REPO:TAG [skopeo copy flags...]
#   skopeo copy SRC_REF docker://$NAME_HOST/REPO:TAG, adding --dest-tls-verify=false (http) or
#   --dest-cert-dir (https) and --dest-creds (htpasswd) unless given. Exports
#   NAME_LAST_DIGEST (digest of the pushed manifest or index).
registry_seed() {
  local name=${1:-} src=${2:-} dst=${3:-} st host
  [ $# -ge 3 ] || _reglib_die "usage: registry_seed NAME SRC_REF REPO:TAG [skopeo flags...]" || return 1
  shift 3
  st=$(_reglib_state) || return 1
  host=$(_reglib_get "${name}_HOST") || return 1
  local extra=" $* " flags=()
  case $extra in
    *" --dest-tls-verify"*|*" --dest-cert-dir"*) ;;
    *) if [ "${_REGLIB_SCHEME[$host]:-http}" = https ]; then
         flags+=(--dest-cert-dir "$(dirname "${_REGLIB_CAFILE[$host]}")")
       else
         flags+=(--dest-tls-verify=false)
       fi ;;
  esac
  case $extra in
    *" --dest-creds"*|*" --dest-authfile"*|*" --dest-no-creds"*|*" --dest-username"*) ;;
    *) if [ -n "${_REGLIB_CREDS[$host]:-}" ]; then flags+=(--dest-creds "${_REGLIB_CREDS[$host]}"); fi ;;
  esac
  local df=$st/.reglib/digest.$BASHPID
  rm -f "$df"
  skopeo --insecure-policy copy --quiet --digestfile "$df" "${flags[@]}" "$@" \
    "$src" "docker://$host/$dst" >/dev/null || _reglib_die "skopeo copy $src -> $host/$dst failed" || return 1
  export "${name}_LAST_DIGEST=$(cat "$df")"
  rm -f "$df"
}

# multiarch_seed NAME REPO:TAG [--amd64 SRC_REF] [--arm64 SRC_REF]
#   An OCI index (linux/amd64, linux/arm64/v8, and a docker buildx-style attestation manifest
#   for amd64: platform unknown/unknown, annotations vnd.docker.reference.type=
#   attestation-manifest + vnd.docker.reference.digest) pushed with skopeo copy --all
#   --preserve-digests. The per-arch images are tiny umoci images (one layer with
#   /etc/ocilambda-platform = "linux/ARCH"), or SRC_REF (e.g. oci:DIR:TAG, copied with skopeo;
#   its config architecture is set with umoci config when it differs).
#   Exports NAME_INDEX_DIGEST NAME_AMD64_DIGEST NAME_ARM64_DIGEST NAME_ATTEST_DIGEST and
#   NAME_MULTIARCH_LAYOUT (the OCI layout, tag "index" = the index).
multiarch_seed() {
  local name=${1:-} repotag=${2:-} st host
  [ $# -ge 2 ] || _reglib_die "usage: multiarch_seed NAME REPO:TAG [--amd64 SRC] [--arm64 SRC]" || return 1
  shift 2
  local -A src=()
  while [ $# -gt 0 ]; do
    case $1 in
      --amd64|--arm64) src[${1#--}]=${2:?$1 SRC_REF}; shift 2 ;;
      *) _reglib_die "multiarch_seed: unknown option $1"; return 1 ;;
    esac
  done
  st=$(_reglib_state) || return 1
  host=$(_reglib_get "${name}_HOST") || return 1
  local L=$st/$name-multiarch-${repotag//[^A-Za-z0-9._-]/_} arch w
  w=$L.work
  rm -rf "$L" "$w"
  mkdir -p "$w"
  umoci init --layout "$L" >/dev/null
  for arch in amd64 arm64; do
    if [ -n "${src[$arch]:-}" ]; then
      skopeo --insecure-policy copy --quiet "${src[$arch]}" "oci:$L:$arch" >/dev/null
      local cur
      cur=$("$REGLIB_PY" "$REGLIB_DIR/mkindex.py" --arch-of "$L" "$arch")
      if [ "$cur" != "$arch" ]; then
        umoci config --image "$L:$arch" --no-history --architecture "$arch" --os linux >/dev/null
      fi
    else
      umoci new --image "$L:$arch" >/dev/null
      "$REGLIB_PY" "$REGLIB_DIR/mkindex.py" --platform-tar "$w/$arch.tar" "linux/$arch"
      umoci raw add-layer --image "$L:$arch" --history.created 2024-01-01T00:00:00Z \
        --history.created_by "multiarch_seed: platform marker" "$w/$arch.tar" >/dev/null
      umoci config --image "$L:$arch" --no-history --architecture "$arch" --os linux \
        --created 2024-01-01T00:00:00Z --config.cmd /bin/sh \
        --config.env "OCILAMBDA_FIXTURE_PLATFORM=linux/$arch" >/dev/null
    fi
  done
  local out
  out=$("$REGLIB_PY" "$REGLIB_DIR/mkindex.py" --compose "$L" index) || return 1
  umoci gc --layout "$L" >/dev/null
  registry_seed "$name" "oci:$L:index" "$repotag" --all --preserve-digests || return 1
  local idx amd arm att
  read -r idx amd arm att <<< "$out"
  local pushed_var=${name}_LAST_DIGEST
  [ "${!pushed_var}" = "$idx" ] || _reglib_die "pushed index digest ${!pushed_var} != $idx" || return 1
  # the registry must serve exactly that index
  local flags=(--tls-verify=false)
  if [ "${_REGLIB_SCHEME[$host]:-http}" = https ]; then flags=(--cert-dir "$(dirname "${_REGLIB_CAFILE[$host]}")"); fi
  if [ -n "${_REGLIB_CREDS[$host]:-}" ]; then flags+=(--creds "${_REGLIB_CREDS[$host]}"); fi
  skopeo --insecure-policy inspect --raw "${flags[@]}" "docker://$host/$repotag" > "$w/served.json"
  [ "sha256:$(sha256sum < "$w/served.json" | cut -d' ' -f1)" = "$idx" ] \
    || _reglib_die "registry does not serve the index $idx for $repotag" || return 1
  rm -rf "$w"
  export "${name}_INDEX_DIGEST=$idx" "${name}_AMD64_DIGEST=$amd" "${name}_ARM64_DIGEST=$arm" \
         "${name}_ATTEST_DIGEST=$att" "${name}_MULTIARCH_LAYOUT=$L"
}

_reglib_wait_portfile() {  # FILE PID: up to 60 s, or until PID dies
  local deadline=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

_reglib_upstream_args() {  # HOST -> --upstream-ca/... args on stdout, one per line
  local up=$1
  if [ "${_REGLIB_SCHEME[$up]:-http}" = https ]; then printf '%s\n' --upstream-ca "${_REGLIB_CAFILE[$up]}"; fi
}

# tokenfront_start NAME UPSTREAM_HOST [--token-creds USER:PASS] [--token-ttl SECONDS]
#                  [--base-scope SCOPE] [--blob-allow-auth]
#   public.ecr.aws-like bearer front (tokenfront.py) on 127.0.0.1:<port>, blob host on
#   127.0.0.2:<port>. It reaches an https/htpasswd upstream started by registry_start by itself.
#   Exports NAME_HOST NAME_LOG NAME_BLOBHOST NAME_BLOBHOST_LOG NAME_SERVICE (NAME.test)
#   NAME_REALM (http://NAME_HOST/token/).
tokenfront_start() {
  local name=${1:-} up=${2:-} st
  [ $# -ge 2 ] || _reglib_die "usage: tokenfront_start NAME UPSTREAM_HOST [options]" || return 1
  shift 2
  _reglib_name "$name" || return 1
  st=$(_reglib_state) || return 1
  local pf=$st/$name.port log=$st/$name.log blog=$st/$name-blobhost.log args=()
  rm -f "$pf"
  : > "$log"; : > "$blog"
  mapfile -t args < <(_reglib_upstream_args "$up")
  if [ -n "${_REGLIB_CREDS[$up]:-}" ]; then args+=(--upstream-creds "${_REGLIB_CREDS[$up]}"); fi
  "$REGLIB_PY" "$REGLIB_DIR/tokenfront.py" --upstream "$up" "${args[@]}" --service "$name.test" \
    --port-file "$pf" --log "$log" --blob-log "$blog" --parent-pid $$ \
    --max-seconds "$REGLIB_MAX_LIFETIME" "$@" >> "$st/$name.stderr" 2>&1 < /dev/null &
  local pid=$!
  _reglib_track "$pid" "$pf"
  _reglib_wait_portfile "$pf" "$pid" || { cat "$st/$name.stderr" >&2; _reglib_die "tokenfront $name did not start"; return 1; }
  local main blob
  { read -r main; read -r blob; } < "$pf"
  _REGLIB_SCHEME[$main]=http
  _REGLIB_CREDS[$main]=""
  export "${name}_HOST=$main" "${name}_LOG=$log" "${name}_BLOBHOST=$blob" \
         "${name}_BLOBHOST_LOG=$blog" "${name}_SERVICE=$name.test" "${name}_REALM=http://$main/token/"
}

# faultproxy_start NAME UPSTREAM_HOST [--tls]
#   Fault-injecting proxy (faultproxy.py) on 127.0.0.1:<port>, plain http, or https with --tls
#   (its own CA: exports NAME_CA, NAME_CERTDIR as registry_start --tls does). Rules: write JSON
#   to $NAME_RULES (or use faultproxy_rules). Exports NAME_HOST NAME_RULES NAME_LOG.
faultproxy_start() {
  local name=${1:-} up=${2:-} st tls=0
  [ $# -ge 2 ] || _reglib_die "usage: faultproxy_start NAME UPSTREAM_HOST [--tls]" || return 1
  shift 2
  if [ "${1:-}" = --tls ]; then tls=1; shift; fi
  _reglib_name "$name" || return 1
  st=$(_reglib_state) || return 1
  local pf=$st/$name.port log=$st/$name.log rules=$st/$name.rules.json args=()
  rm -f "$pf"
  : > "$log"
  printf '{"rules": []}\n' > "$rules"
  mapfile -t args < <(_reglib_upstream_args "$up")
  local certs=$st/$name-certs
  if [ "$tls" = 1 ]; then
    _reglib_mkcerts "$certs" "$name" || return 1
    args+=(--tls-cert "$certs/private/server-chain.crt" --tls-key "$certs/private/server.key")
  fi
  "$REGLIB_PY" "$REGLIB_DIR/faultproxy.py" --upstream "$up" "${args[@]}" --rules "$rules" \
    --port-file "$pf" --log "$log" --parent-pid $$ --max-seconds "$REGLIB_MAX_LIFETIME" "$@" \
    >> "$st/$name.stderr" 2>&1 < /dev/null &
  local pid=$!
  _reglib_track "$pid" "$pf"
  _reglib_wait_portfile "$pf" "$pid" || { cat "$st/$name.stderr" >&2; _reglib_die "faultproxy $name did not start"; return 1; }
  local main
  read -r main < "$pf"
  _REGLIB_SCHEME[$main]=http
  _REGLIB_CREDS[$main]=""
  export "${name}_HOST=$main" "${name}_RULES=$rules" "${name}_LOG=$log"
  if [ "$tls" = 1 ]; then
    _REGLIB_SCHEME[$main]=https
    _REGLIB_CAFILE[$main]=$certs/ca.crt
    export "${name}_CA=$certs/ca.crt" "${name}_CERTDIR=$certs"
  fi
}

# netproxy_start NAME UPSTREAM_HOST [--rate BYTES_PER_S] [--latency MS]
#   A slow network in front of a plain-http registry (netproxy.py) on 127.0.0.1:<port>: each
#   client connection has its own upstream connection, bodies are streamed both ways at most
#   RATE bytes/s per connection and direction, MS added to each answer and new connection.
#   Rules as faultproxy's (status, drop, gate, hold; see netproxy.py). Exports NAME_HOST,
#   NAME_RULES, NAME_LOG.
netproxy_start() {
  local name=${1:-} up=${2:-} st
  [ $# -ge 2 ] || _reglib_die "usage: netproxy_start NAME UPSTREAM_HOST [--rate B] [--latency MS]" || return 1
  shift 2
  _reglib_name "$name" || return 1
  if [ "${_REGLIB_SCHEME[$up]:-http}" = https ]; then
    _reglib_die "netproxy_start: $up speaks https; netproxy forwards plain http only"; return 1
  fi
  local args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --rate|--latency) args+=("$1" "${2:?$1 VALUE}"); shift ;;
      *) _reglib_die "netproxy_start: unknown option $1"; return 1 ;;
    esac
    shift
  done
  st=$(_reglib_state) || return 1
  local pf=$st/$name.port log=$st/$name.log rules=$st/$name.rules.json
  rm -f "$pf"
  : > "$log"
  printf '{"rules": []}\n' > "$rules"
  "$REGLIB_PY" "$REGLIB_DIR/netproxy.py" --upstream "$up" --rules "$rules" --port-file "$pf" \
    --log "$log" --parent-pid $$ --max-seconds "$REGLIB_MAX_LIFETIME" "${args[@]}" \
    >> "$st/$name.stderr" 2>&1 < /dev/null &
  local pid=$!
  _reglib_track "$pid" "$pf"
  _reglib_wait_portfile "$pf" "$pid" || { cat "$st/$name.stderr" >&2; _reglib_die "netproxy $name did not start"; return 1; }
  local main
  read -r main < "$pf"
  _REGLIB_SCHEME[$main]=http
  _REGLIB_CREDS[$main]=""
  export "${name}_HOST=$main" "${name}_RULES=$rules" "${name}_LOG=$log"
}

# netproxy_rules NAME JSON: as faultproxy_rules
netproxy_rules() { faultproxy_rules "$@"; }

# netproxy_inflight LOG [ERE]: the most requests (whose BEGIN line matches ERE) in flight at once
netproxy_inflight() { pkgserver_inflight "$@"; }

# netproxy_conns LOG: the most client connections a netproxy log shows open at once
netproxy_conns() {
  awk '/^CONN open / { n++; if (n > max) max = n } /^CONN close / { n-- } END { print max + 0 }' "$1"
}

# netproxy_t LOG ERE: the t= of the first line matching ERE (nothing when none does)
netproxy_t() {
  awk -v re="$2" '$0 ~ re { for (i = 1; i <= NF; i++) if ($i ~ /^t=/) { print substr($i, 3); exit } }' "$1"
}

# _reglib_pkg_ca: the one CA of every pkgserver of this test, made once (its server
# certificate covers 127.0.0.1, 127.0.0.2 and localhost); prints its directory
_reglib_pkg_ca() {
  local st d
  st=$(_reglib_state) || return 1
  d=$st/.reglib/pkgserver-certs
  if [ ! -s "$d/ca.crt" ]; then
    _reglib_mkcerts "$d" pkgserver "IP:127.0.0.1,IP:127.0.0.2,DNS:localhost" || return 1
  fi
  printf '%s\n' "$d"
}

# pkgserver_start NAME DIR [--tls] [--bind 127.0.0.2] [--auth USER:PASS]
#   Serves DIR (a conda channel, or any files) with pkgserver.py on BIND:<free port> (default
#   127.0.0.1), plain http or https. Every pkgserver of a test has the same CA (its server
#   certificate covers 127.0.0.1, 127.0.0.2 and localhost). Faults: pkgserver_rules NAME JSON.
#   Exports NAME_HOST (ADDR:PORT), NAME_URL (scheme://NAME_HOST), NAME_LOG, NAME_RULES; with
#   --tls NAME_CA (ca.crt) and NAME_CERTDIR (a directory whose only *.crt is ca.crt).
pkgserver_start() {
  local name=${1:-} dir=${2:-} st tls=0 bind=127.0.0.1 args=()
  [ $# -ge 2 ] || _reglib_die "usage: pkgserver_start NAME DIR [--tls] [--bind ADDR] [--auth U:P]" || return 1
  shift 2
  _reglib_name "$name" || return 1
  [ -d "$dir" ] || _reglib_die "pkgserver_start: $dir is not a directory" || return 1
  while [ $# -gt 0 ]; do
    case $1 in
      --tls) tls=1 ;;
      --bind) bind=${2:?--bind ADDR}; shift ;;
      --auth) args+=(--auth "${2:?--auth USER:PASS}"); shift ;;
      *) _reglib_die "pkgserver_start: unknown option $1"; return 1 ;;
    esac
    shift
  done
  st=$(_reglib_state) || return 1
  local pf=$st/$name.port log=$st/$name.log rules=$st/$name.rules.json certs=""
  rm -f "$pf"
  : > "$log"
  printf '{"rules": []}\n' > "$rules"
  if [ "$tls" = 1 ]; then
    certs=$(_reglib_pkg_ca) || return 1
    args+=(--tls-cert "$certs/private/server-chain.crt" --tls-key "$certs/private/server.key")
  fi
  "$REGLIB_PY" "$REGLIB_DIR/pkgserver.py" --root "$dir" --bind "$bind" --rules "$rules" \
    --port-file "$pf" --log "$log" --parent-pid $$ --max-seconds "$REGLIB_MAX_LIFETIME" \
    "${args[@]}" >> "$st/$name.stderr" 2>&1 < /dev/null &
  local pid=$!
  _reglib_track "$pid" "$pf"
  _reglib_wait_portfile "$pf" "$pid" || { cat "$st/$name.stderr" >&2; _reglib_die "pkgserver $name did not start"; return 1; }
  local main
  read -r main < "$pf"
  local scheme=http
  if [ "$tls" = 1 ]; then scheme=https; fi
  _REGLIB_SCHEME[$main]=$scheme
  export "${name}_HOST=$main" "${name}_URL=$scheme://$main" "${name}_LOG=$log" "${name}_RULES=$rules"
  if [ "$tls" = 1 ]; then
    export "${name}_CA=$certs/ca.crt" "${name}_CERTDIR=$certs"
  fi
}

_reglib_stop_marker() {  # MARKER: stop the servers tracked with this marker
  local i entry
  for ((i = ${#_REGLIB_PIDS[@]} - 1; i >= 0; i--)); do
    entry=${_REGLIB_PIDS[i]}
    if [ "${entry#*$'\t'}" = "$1" ]; then
      _reglib_kill "${entry%%$'\t'*}" "$1"
      unset '_REGLIB_PIDS[i]'
    fi
  done
  _REGLIB_PIDS=("${_REGLIB_PIDS[@]}")
}

# pkgserver_stop NAME: stop that pkgserver (the others keep running)
pkgserver_stop() {
  local st
  st=$(_reglib_state) || return 1
  _reglib_stop_marker "$st/${1:?pkgserver_stop NAME}.port"
}

# netproxy_stop NAME: stop that netproxy (the others keep running)
netproxy_stop() { pkgserver_stop "$@"; }

# registry_stop NAME: stop that registry (its storage $T/NAME stays)
registry_stop() {
  local st
  st=$(_reglib_state) || return 1
  _reglib_stop_marker "$st/${1:?registry_stop NAME}.yml"
}

# pkgserver_rules NAME JSON: as faultproxy_rules
pkgserver_rules() { faultproxy_rules "$@"; }

# pkgserver_inflight LOG [ERE]: the most requests (whose BEGIN line matches ERE, default any)
#   a pkgserver log shows in flight at once
pkgserver_inflight() {
  awk -v re="${2:-.}" '
    /^BEGIN id=/ { if ($0 ~ re) { split($2, a, "="); open[a[2]] = 1; n++; if (n > max) max = n } next }
    / id=[0-9]+$/ { split($NF, a, "="); if (a[2] in open) { delete open[a[2]]; n-- } }
    END { print max + 0 }' "$1"
}

# faultproxy_rules NAME JSON: replace the rules (validated, written atomically; counters reset)
faultproxy_rules() {
  local f
  f=$(_reglib_get "${1:-}_RULES") || return 1
  printf '%s\n' "${2:?faultproxy_rules NAME JSON}" > "$f.new"
  "$REGLIB_PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$f.new" \
    || _reglib_die "faultproxy_rules: not JSON: $2" || return 1
  mv -f "$f.new" "$f"
}

# reglib_count FILE ERE: number of lines of FILE matching ERE (0 if none; never fails)
reglib_count() {
  [ -f "$1" ] || { echo 0; return 0; }
  grep -cE -- "$2" "$1" || true
}

# reglib_blob_log LOG: the blob transfers a registry answered, one per line, "KIND REPO DIGEST
#   BYTES", from docker-registry's access log (registry_start's NAME_LOG, the lines
#   '127.0.0.1 - - [...] "METHOD URI HTTP/1.1" STATUS BYTES ...') in log order. KIND is
#   upload (an upload finished: PUT .../blobs/uploads/<id>?...digest=..., or a monolithic
#   POST .../blobs/uploads/?digest=..., answered 201), mount (POST ...?mount=<digest>&from=...
#   answered 201; a 202 mounted nothing and is not listed) or download (GET .../blobs/<digest>
#   answered 200 or 206). BYTES is the body size the registry sent (0 for uploads and mounts).
#   HEAD requests, manifests and upload sessions that did not finish are not listed.
reglib_blob_log() {
  [ -f "${1:-}" ] || _reglib_die "reglib_blob_log: no log file '${1:-}'" || return 1
  awk '
    function unesc(s) { gsub(/%3[Aa]/, ":", s); gsub(/%2[Ff]/, "/", s); return s }
    function param(q, k,    n, i, a, kv) {
      n = split(q, a, "&")
      for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == k) return unesc(kv[2]) }
      return ""
    }
    match($0, /"(GET|PUT|POST|PATCH|HEAD|DELETE) \/v2\/[^ ]* HTTP\/[0-9.]+" [0-9]+ [0-9-]+/) {
      split(substr($0, RSTART + 1, RLENGTH - 1), f, " ")
      method = f[1]; uri = f[2]; sub(/"$/, "", f[3]); status = f[4]; bytes = f[5]
      if (bytes == "-") bytes = 0
      path = uri; query = ""
      q = index(uri, "?"); if (q) { path = substr(uri, 1, q - 1); query = substr(uri, q + 1) }
      b = index(path, "/blobs/"); if (!b) next
      repo = substr(path, 5, b - 5); rest = substr(path, b + 7)
      if (method == "GET" && rest ~ /^sha256:/ && (status == 200 || status == 206))
        print "download", repo, rest, bytes
      else if (method == "PUT" && rest ~ /^uploads\// && status == 201 && param(query, "digest") != "")
        print "upload", repo, param(query, "digest"), 0
      else if (method == "POST" && rest == "uploads/" && status == 201 && param(query, "mount") != "")
        print "mount", repo, param(query, "mount"), 0
      else if (method == "POST" && rest == "uploads/" && status == 201 && param(query, "digest") != "")
        print "upload", repo, param(query, "digest"), 0
    }' "$1"
}

# reglib_blobs LOG KIND [REPO]: "DIGEST COUNT" for every digest with KIND (upload, mount or
#   download: see reglib_blob_log) transfers, in REPO only when given, sorted by digest.
reglib_blobs() {
  [ $# -ge 2 ] || _reglib_die "usage: reglib_blobs LOG KIND [REPO]" || return 1
  local events
  events=$(reglib_blob_log "$1") || return 1
  printf '%s\n' "$events" | awk -v kind="$2" -v repo="${3:-}" '
    $1 == kind && (repo == "" || $2 == repo) { n[$3]++ }
    END { for (d in n) print d, n[d] }' | LC_ALL=C sort
}

# reglib_blob_count LOG KIND [REPO]: how many KIND transfers (0 if none), in REPO when given.
reglib_blob_count() {
  [ $# -ge 2 ] || _reglib_die "usage: reglib_blob_count LOG KIND [REPO]" || return 1
  local events
  events=$(reglib_blob_log "$1") || return 1
  printf '%s\n' "$events" | awk -v kind="$2" -v repo="${3:-}" '
    $1 == kind && (repo == "" || $2 == repo) { n++ } END { print n + 0 }'
}

# cred_helper_install DIR NAME USER PASS HOST
#   DIR/docker-credential-NAME: "get" answers {"ServerURL","Username","Secret"} for HOST
#   (given as HOST, https://HOST or http://HOST, trailing / ignored), else prints
#   "credentials not found in native keychain" and exits 1. store/erase accepted and
#   ignored; list prints {"HOST": "USER"}. Every call is logged to DIR/docker-credential-NAME.log.
cred_helper_install() {
  [ $# -eq 5 ] || _reglib_die "usage: cred_helper_install DIR NAME USER PASS HOST" || return 1
  local dir=$1 name=$2 user=$3 pass=$4 host=$5 creds list
  mkdir -p "$dir"
  creds=$("$REGLIB_PY" -c 'import json, sys; print(json.dumps({"ServerURL": sys.argv[1], "Username": sys.argv[2], "Secret": sys.argv[3]}))' "$host" "$user" "$pass")
  list=$("$REGLIB_PY" -c 'import json, sys; print(json.dumps({sys.argv[1]: sys.argv[2]}))' "$host" "$user")
  local f=$dir/docker-credential-$name
  {
    echo '#!/bin/bash'
    echo '# docker credential helper for tests (written by tests/registry/lib.sh)'
    printf 'log=%q\nhost=%q\ncreds=%q\nlist=%q\n' "$f.log" "$host" "$creds" "$list"
    cat <<'EOF'
op=${1:-}
case $op in
  get|store|erase) input=$(cat) ;;
  *) input= ;;
esac
printf '%s %s\n' "$op" "$input" >> "$log"
case $op in
  get)
    url=${input%%$'\n'*}
    url=${url#https://}; url=${url#http://}; url=${url%/}
    if [ "$url" = "$host" ]; then printf '%s\n' "$creds"; exit 0; fi
    echo "credentials not found in native keychain"
    exit 1 ;;
  store|erase) exit 0 ;;
  list) printf '%s\n' "$list"; exit 0 ;;
  *) echo "unknown operation: $op" >&2; exit 1 ;;
esac
EOF
  } > "$f"
  chmod 755 "$f"
}

# authfile_write FILE HOST USER PASS: {"auths": {HOST: {"auth": base64(USER:PASS)}}}
#   (merged into FILE when it already holds JSON)
authfile_write() {
  [ $# -eq 4 ] || _reglib_die "usage: authfile_write FILE HOST USER PASS" || return 1
  mkdir -p "$(dirname "$1")"
  "$REGLIB_PY" - "$@" <<'EOF'
import base64, json, os, sys
path, host, user, pw = sys.argv[1:5]
data = {}
if os.path.exists(path) and os.path.getsize(path):
    with open(path) as f:
        data = json.load(f)
data.setdefault("auths", {})[host] = {"auth": base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}
with open(path + ".tmp", "w") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
EOF
}
