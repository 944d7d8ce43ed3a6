#!/bin/bash
# mk-base.sh OUT_LAYOUT_DIR TAG PYVER [MODE]
#
# Builds a Lambda-like base image (modelled on public.ecr.aws/lambda/python:3.8) with
# umoci + skopeo (never with ocilambda itself):
#   OUT_LAYOUT_DIR        OCI image layout, tag TAG
#   OUT_LAYOUT_DIR.tar    docker-archive of the same image, RepoTags lambda/python:TAG
# PYVER is X.Y.  MODE "run" (default) needs /usr/bin/pythonX.Y on the host and gives a
# runnable base; MODE "names" gives a tiny, non-runnable base whose python is a script.
# Layers: 1 "os" (busybox, /etc/passwd, dirs, glibc in run mode), 2 "runtime" (/var/lang,
# /var/runtime, /lambda-entrypoint.sh, ...), 3 "cleanup" (hand-made tar with a whiteout,
# an opaque dir marker and a new file).
set -euo pipefail

usage() { echo "usage: $0 OUT_LAYOUT_DIR TAG PYVER [run|names]" >&2; exit 2; }
[ $# -ge 3 ] && [ $# -le 4 ] || usage
OUT=${1%/}
TAG=$2
PYVER=$3
MODE=${4:-run}
case "$MODE" in run|names) ;; *) usage ;; esac
[[ "$PYVER" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "$0: PYVER must look like 3.11" >&2; exit 2; }
[ -n "$TAG" ] || usage
[ -n "$OUT" ] && [ "$OUT" != / ] || usage

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
for tool in umoci skopeo busybox; do
  command -v "$tool" >/dev/null || { echo "$0: $tool not installed" >&2; exit 1; }
done
BUSYBOX=$(command -v busybox)
HOSTPY=/usr/bin/python$PYVER
if [ "$MODE" = run ] && [ ! -x "$HOSTPY" ]; then
  echo "$0: run mode needs $HOSTPY on the host (use MODE names for other versions)" >&2
  exit 1
fi

rm -rf "$OUT" "$OUT.tar"
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mk-base.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export TMPDIR=$WORK   # skopeo/umoci temp files stay in our own dir

IMG="$OUT:$TAG"
BUNDLE=$WORK/bundle
R=$BUNDLE/rootfs
CREATED=2023-03-01T00:00:00Z

umoci init --layout "$OUT" >/dev/null
umoci new --image "$IMG" >/dev/null
umoci unpack --rootless --image "$IMG" "$BUNDLE" >/dev/null

# ---------------------------------------------------------------- layer 1: os
# shellcheck source=testdata/base-lib.sh
. "$HERE/base-lib.sh"
base_os_tree "$R" "$BUSYBOX" "ocilambda test fixture base (modelled on public.ecr.aws/lambda/python:$PYVER), mode $MODE"

L1EXTRA=""
if [ "$MODE" = run ]; then
  L1EXTRA=", glibc and the base python's libraries"
  base_glibc "$R" "$WORK"
  # The base python's other shared libraries (zlib, expat, and those of lib-dynload,
  # except _tkinter) come from the "OS" too, as on Amazon Linux.
  mapfile -t elfs < <(echo "$HOSTPY"; find "/usr/lib/python$PYVER/lib-dynload" -name '*.so' ! -name '_tkinter*' | sort)
  base_deps "$WORK" "${elfs[@]}" >"$WORK/deps"
  while read -r name path; do
    cp -L "$path" "$R/lib/x86_64-linux-gnu/$name"
  done < "$WORK/deps"
  chmod 0755 "$R"/lib/x86_64-linux-gnu/* "$R/lib64/ld-linux-x86-64.so.2"
fi
umoci repack --image "$IMG" --history.created "$CREATED" \
  --history.created_by "testdata/mk-base.sh: layer 1 (os: busybox, passwd, dirs$L1EXTRA)" \
  "$BUNDLE" >/dev/null

# ----------------------------------------------------------- layer 2: runtime
# a fresh bundle: umoci repack always builds on the manifest the bundle came from
rm -rf "$BUNDLE"
umoci unpack --rootless --image "$IMG" "$BUNDLE" >/dev/null
mkdir -p "$R/var/lang/bin" "$R/var/lang/lib/python$PYVER/site-packages" "$R/var/task" \
         "$R/var/runtime/legacy"
if [ "$MODE" = run ]; then
  cp "$HOSTPY" "$R/var/lang/bin/python$PYVER"
  # a trimmed copy of Debian's stdlib so that the base python really runs
  tar -C "/usr/lib/python$PYVER" --hard-dereference -hcf - \
      --exclude=./test --exclude=./idlelib --exclude=./tkinter --exclude=./turtledemo \
      --exclude=./ensurepip --exclude=./dist-packages --exclude=./site-packages \
      --exclude='./config-*' --exclude=__pycache__ --exclude='./lib-dynload/_tkinter*' \
      --exclude=./sitecustomize.py . \
    | tar -C "$R/var/lang/lib/python$PYVER" -xf -
else
  cat > "$R/var/lang/bin/python$PYVER" <<EOF
#!/bin/sh
# names-mode fixture: stands in for the Lambda base's python$PYVER; not runnable.
echo "fixture /var/lang/bin/python$PYVER (names mode) cannot run python" >&2
exit 127
EOF
fi
chmod 0755 "$R/var/lang/bin/python$PYVER"
ln -s "python$PYVER" "$R/var/lang/bin/python3"
cat > "$R/var/lang/lib/python$PYVER/site-packages/lambda_base_marker.py" <<EOF
"""Marker module of the ocilambda test fixture base image (python$PYVER, $MODE mode)."""
BASE = "ocilambda-fixture-base"
EOF
printf '#!/bin/sh\necho "obsolete tool: removed by the cleanup layer"\n' > "$R/var/lang/bin/obsolete-tool"
chmod 0755 "$R/var/lang/bin/obsolete-tool"
printf '# removed by the cleanup layer (opaque directory)\n' > "$R/var/runtime/legacy/old.py"
sed "s/@PYVER@/$PYVER/g" "$HERE/base-files/bootstrap.in" > "$R/var/runtime/bootstrap"
cp "$HERE/base-files/bootstrap.py" "$R/var/runtime/bootstrap.py"
cp "$HERE/base-files/lambda-entrypoint.sh" "$R/lambda-entrypoint.sh"
chmod 0755 "$R/var/runtime/bootstrap" "$R/lambda-entrypoint.sh"
chmod 0644 "$R/var/runtime/bootstrap.py"
umoci repack --image "$IMG" --history.created "$CREATED" \
  --history.created_by "testdata/mk-base.sh: layer 2 (runtime: /var/lang, /var/runtime, /lambda-entrypoint.sh)" \
  "$BUNDLE" >/dev/null

# ----------------------------------------------------------- layer 3: cleanup
# umoci repack cannot write opaque markers, so this layer is crafted by hand.
"$PY" - "$WORK/layer3.tar" <<'EOF'
import io, sys, tarfile
MTIME = 1677628800
def entry(name, kind="file", data=b"", mode=None):
    ti = tarfile.TarInfo(name)
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mtime = MTIME
    if kind == "dir":
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755 if mode is None else mode
        return ti, None
    ti.type = tarfile.REGTYPE
    ti.mode = 0o644 if mode is None else mode
    ti.size = len(data)
    return ti, io.BytesIO(data)
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tf:
    for args in [
        ("var/", "dir"), ("var/lang/", "dir"), ("var/lang/bin/", "dir"),
        ("var/lang/bin/.wh.obsolete-tool", "file", b"", 0o600),
        ("var/runtime/", "dir"), ("var/runtime/legacy/", "dir"),
        ("var/runtime/legacy/.wh..wh..opq", "file", b"", 0o600),
        ("var/runtime/legacy/NEW.txt", "file", b"added by the cleanup layer\n"),
    ]:
        tf.addfile(*entry(*args))
EOF
umoci raw add-layer --image "$IMG" --history.created "$CREATED" \
  --history.created_by "testdata/mk-base.sh: layer 3 (cleanup: whiteout + opaque dir, hand-made tar)" \
  "$WORK/layer3.tar" >/dev/null

# --------------------------------------------------------------------- config
base_lambda_config "$IMG" "$CREATED"
umoci gc --layout "$OUT" >/dev/null

# ------------------------------------------------------------------- checks
"$PY" - "$OUT" "$TAG" <<'EOF'
import gzip, hashlib, json, os, sys, tarfile
out, tag = sys.argv[1:3]
blob = lambda d: os.path.join(out, "blobs", *d.split(":"))
index = json.load(open(os.path.join(out, "index.json")))
mans = [m for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
assert len(mans) == 1, "tag %s not found once in index.json" % tag
man = json.load(open(blob(mans[0]["digest"])))
layers = man["layers"]
assert len(layers) >= 3, "expected >= 3 layers, got %d" % len(layers)
for l in layers:
    assert l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip", l["mediaType"]
cfg = json.load(open(blob(man["config"]["digest"])))
c = cfg["config"]
assert c.get("Entrypoint") == ["/lambda-entrypoint.sh"], c
assert not c.get("Cmd"), c
assert c.get("WorkingDir") == "/var/task", c
assert cfg["os"] == "linux" and cfg["architecture"] == "amd64", cfg
assert len(c["Env"]) == 6, c["Env"]
assert len(cfg["rootfs"]["diff_ids"]) == len(layers)
with tarfile.open(blob(layers[-1]["digest"]), "r:gz") as tf:
    names = tf.getnames()
for want in ("var/lang/bin/.wh.obsolete-tool", "var/runtime/legacy/.wh..wh..opq",
             "var/runtime/legacy/NEW.txt"):
    assert want in names, "%s missing from the cleanup layer: %s" % (want, names)
EOF

skopeo --insecure-policy copy --quiet "oci:$OUT:$TAG" "docker-archive:$OUT.tar:lambda/python:$TAG" >/dev/null
[ -s "$OUT.tar" ]
