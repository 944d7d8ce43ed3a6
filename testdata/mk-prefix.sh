#!/bin/bash
# mk-prefix.sh DEST ORIGIN PYVER [MODE]
#
# Writes a conda-like environment prefix into DEST (must not exist or be empty) whose
# files say it was installed at ORIGIN (only a string; ORIGIN need not exist; at most
# 255 bytes, the binary placeholder's length; a short one such as /tmp/e is what a
# prefix conda installed at a short path looks like).
#   MODE run (default): Debian's python PYVER (/usr/bin/pythonPYVER, RUNPATH
#     $ORIGIN/../lib), its stdlib, pandas + requests and their Python dependencies
#     (from the dpkg file lists), the ldd closure of every ELF in lib/ (glibc and the
#     loader excluded: they belong to the base image), RUNPATH on every ELF; runs from
#     any location with an empty environment.
#   MODE names: tiny and not runnable (bin/pythonPYVER is a shell script).
# Both modes add conda-meta/ (history + records with paths_data), the relocation
# fixtures etc/fixture/prefix.txt (text placeholder), lib/fixture-binary.dat (binary
# placeholder), bin/fixture-tool (unix_python_entry_point), bin/pip-tool (unrecorded),
# bin/abs-python -> ORIGIN/bin/pythonPYVER, and a pkgs/ package cache.
# Prints nothing but errors.
set -euo pipefail

usage() { echo "usage: $0 DEST ORIGIN PYVER [run|names]" >&2; exit 2; }
[ $# -ge 3 ] && [ $# -le 4 ] || usage
DEST=$1
ORIGIN=${2%/}
PYVER=$3
MODE=${4:-run}
case "$MODE" in run|names) ;; *) usage ;; esac
[[ "$PYVER" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "$0: PYVER must look like 3.11" >&2; exit 2; }
case "$ORIGIN" in /*) ;; *) echo "$0: ORIGIN must be absolute" >&2; exit 2 ;; esac
if [ "${#ORIGIN}" -gt 255 ]; then
  echo "$0: ORIGIN longer than the 255-byte binary placeholder" >&2; exit 2
fi
if [ -e "$DEST" ] && [ -n "$(ls -A "$DEST")" ]; then
  echo "$0: $DEST exists and is not empty" >&2; exit 1
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPER=$HERE/mk-prefix-helper.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mk-prefix.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

STD=lib/python$PYVER
SP=$STD/site-packages
mkdir -p "$DEST/bin" "$DEST/lib" "$DEST/$SP" "$DEST/conda-meta"

if [ "$MODE" = names ]; then
  PYFULL=$PYVER.16
  [ "$PYVER" = 3.8 ] || PYFULL=$PYVER.0
  cat > "$DEST/bin/python$PYVER" <<EOF
#!/bin/sh
# names-mode fixture standing in for conda's python$PYVER; not runnable.
echo "fixture python $PYFULL (names mode) cannot run" >&2
exit 127
EOF
  chmod 0755 "$DEST/bin/python$PYVER"
  printf '# landmark of the names-mode fixture stdlib\n' > "$DEST/$STD/os.py"
  printf '"""names-mode fixture package."""\n__version__ = "0.1"\n' > "$DEST/$SP/fixture_marker.py"
  PKGS=""
else
  HOSTPY=/usr/bin/python$PYVER
  [ -x "$HOSTPY" ] || { echo "$0: run mode needs $HOSTPY on the host" >&2; exit 1; }
  command -v patchelf >/dev/null || { echo "$0: patchelf not installed" >&2; exit 1; }
  PYFULL=$("$HOSTPY" -S -c 'import platform; print(platform.python_version())')
  cp "$HOSTPY" "$DEST/bin/python$PYVER"

  # Debian's stdlib (relative symlinks kept; sitecustomize -> /etc is Debian-only)
  tar -C "/usr/lib/python$PYVER" -cf - \
      --exclude=./test --exclude=./idlelib --exclude=./tkinter --exclude=./turtledemo \
      --exclude=./ensurepip --exclude=./dist-packages --exclude=./site-packages \
      --exclude='./config-*' --exclude=__pycache__ --exclude='./lib-dynload/_tkinter*' \
      --exclude=./sitecustomize.py . \
    | tar -C "$DEST/$STD" -xf -
  ln -s site-packages "$DEST/$STD/dist-packages"

  # pandas, requests and their Python dependencies, from the dpkg file lists
  PKGS=$WORK/pkgs
  # (MK_PREFIX_PACKAGES: other Debian packages, e.g. bench/coldstart.sh's stack)
  "$PY" "$HELPER" pkgfiles "$WORK/sp.list" "$PKGS" ${MK_PREFIX_PACKAGES:-python3-pandas python3-requests}
  tar -C /usr/lib/python3/dist-packages --no-recursion -hcf - -T "$WORK/sp.list" \
    | tar -C "$DEST/$SP" -xf -
  # Debian's pytz reads /usr/share/zoneinfo (package tzdata), absent from Lambda bases:
  # like upstream/conda pytz, the prefix's copy gets its own pytz/zoneinfo.
  mkdir -p "$DEST/$SP/pytz/zoneinfo"
  "$PY" "$HELPER" pytz "$DEST/$SP"

  # the shared libraries every ELF needs, minus glibc and the loader
  dpkg -L libc6 | sed -n 's#^/\(usr/\)\{0,1\}lib\(64\)\{0,1\}/\(x86_64-linux-gnu/\)\{0,1\}\([^/]*\.so[.0-9]*\)$#\4#p' \
    | sort -u > "$WORK/glibc.names"
  "$PY" "$HELPER" elfs "$DEST" > "$WORK/elfs"
  xargs -d '\n' ldd < "$WORK/elfs" > "$WORK/ldd" 2>&1 || true
  if grep -q 'not found' "$WORK/ldd"; then
    grep 'not found' "$WORK/ldd" >&2
    echo "$0: unresolved shared libraries" >&2; exit 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' "$WORK/ldd" | sort -u > "$WORK/deps"
  while read -r name path; do
    grep -qxF "$name" "$WORK/glibc.names" && continue
    [ -e "$DEST/lib/$name" ] || cp -L "$path" "$DEST/lib/$name"
  done < "$WORK/deps"
  chmod 0755 "$DEST"/lib/*.so*

  # every ELF finds lib/ through its RUNPATH ($ORIGIN-relative)
  "$PY" "$HELPER" runpath "$DEST"
fi

ln -s "python$PYVER" "$DEST/bin/python"
ln -s "python$PYVER" "$DEST/bin/python3"
"$PY" "$HELPER" fixtures "$DEST" "$ORIGIN" "$PYVER" "$PYFULL" "$MODE" ${PKGS:+"$PKGS"}

# no bytecode caches anywhere
find "$DEST" -name __pycache__ -prune -exec rm -rf {} +

if [ "$MODE" = run ]; then
  # quick self-check (no bytecode written)
  out=$(cd / && env -i "$DEST/bin/python" -B -c 'import sys, json, ssl, ctypes; print(sys.prefix)')
  if [ "$out" != "$DEST" ]; then
    echo "$0: self-check failed: sys.prefix is '$out', expected '$DEST'" >&2; exit 1
  fi
fi
