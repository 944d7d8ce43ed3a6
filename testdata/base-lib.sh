# base-lib.sh: what the fixture base images (mk-base.sh, mk-ric-base.sh) have
# in common, sourced by both. Each function works on a rootfs directory R of a
# umoci bundle and uses only host tools (busybox, dpkg, ldd, umoci).

# base_os_tree R BUSYBOX RELEASE: the "os" of a Lambda base: the usual
# directories, busybox with its applet links (absolute targets, as `busybox
# --install -s` makes them), Lambda's sandbox user, and a release line.
base_os_tree() {
  local r=$1 busybox=$2 release=$3 applet
  umask 022
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/lib64,lib64,lib/x86_64-linux-gnu,etc,root,home,proc,dev,sys,run,tmp,var/tmp,opt}
  chmod 0755 "$r" "$r/opt"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 0700 "$r/root"
  cp "$busybox" "$r/bin/busybox"
  chmod 0755 "$r/bin/busybox"
  "$busybox" --list-full | while read -r applet; do
    case "$applet" in bin/busybox|"") continue ;; bin/*|sbin/*|usr/bin/*|usr/sbin/*) ;; *) continue ;; esac
    [ -e "$r/$applet" ] || [ -L "$r/$applet" ] || ln -s /bin/busybox "$r/$applet"
  done
  [ -L "$r/usr/bin/env" ] || ln -sf /bin/busybox "$r/usr/bin/env"
  [ -L "$r/bin/sh" ] || ln -sf /bin/busybox "$r/bin/sh"
  cat >"$r/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
sbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin
PASSWD
  cat >"$r/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
sbx_user1051:x:990:
GROUP
  echo "$release" >"$r/etc/fixture-release"
}

# base_glibc R WORK: the host's glibc (the libc6 package's shared objects, no
# gconv) into R; leaves their names, one a line, in WORK/glibc.names.
base_glibc() {
  local r=$1 work=$2 lib name
  dpkg -L libc6 | grep -E '^/(usr/)?lib/x86_64-linux-gnu/[^/]*\.so[.0-9]*$' | sort -u >"$work/glibc.list"
  while read -r lib; do
    name=${lib##*/}
    if [ "$name" = ld-linux-x86-64.so.2 ]; then
      cp -L "$lib" "$r/lib64/$name"
    else
      cp -L "$lib" "$r/lib/x86_64-linux-gnu/$name"
    fi
  done <"$work/glibc.list"
  sed 's#.*/##' "$work/glibc.list" >"$work/glibc.names"
}

# base_deps WORK ELF...: "name path" of the shared libraries the ELF files
# load, glibc's (WORK/glibc.names, from base_glibc) left out; fails naming
# the files when one does not resolve.
base_deps() {
  local work=$1
  shift
  if ldd "$@" | grep -q 'not found'; then
    echo "$0: unresolved libraries for $*" >&2
    return 1
  fi
  ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u | grep -vwFf "$work/glibc.names" || true
}

# base_lambda_config IMG CREATED [--config.env X=Y ...]: the configuration of
# AWS's Lambda bases (their environment, working directory and entrypoint,
# no command), with the runtime's own variables after the common ones.
base_lambda_config() {
  local img=$1 created=$2
  shift 2
  umoci config --image "$img" --no-history \
    --clear=config.env --clear=config.cmd --clear=config.entrypoint --clear=config.labels \
    --config.env LANG=en_US.UTF-8 \
    --config.env TZ=:/etc/localtime \
    --config.env PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin \
    --config.env LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib \
    --config.env LAMBDA_TASK_ROOT=/var/task \
    --config.env LAMBDA_RUNTIME_DIR=/var/runtime \
    "$@" \
    --config.workingdir /var/task \
    --config.entrypoint /lambda-entrypoint.sh \
    --os linux --architecture amd64 --created "$created" >/dev/null
}
