#!/bin/bash
# check-fidelity.sh WORKDIR [PYVER]
#
# Self-test of mk-fidelity-prefix.sh and mk-fidelity-bad.sh, without ocilambda:
#  1. builds the fidelity prefix (ORIGIN /home/runner/miniconda3/envs/blog-test-with-a-long-name)
#     and checks it runs as installed (env -i): whereami prints ORIGIN, bin/greet and
#     bin/pipdemo fail directly (their #! names ORIGIN) but run through DEST/bin/python;
#  2. checks the formats: every conda-meta record parses and lists existing paths whose
#     size/sha256 match (sha256_in_prefix for the installed file; for placeholder files
#     sha256/size_in_bytes are the package's, checked against pkgs/<dist>/ and re-installed);
#     pipdemo's RECORD hashes; which files hold ORIGIN;
#  3. relocates a copy by hand to <tmp>/opt/conda-env (conda's rules: binary = in-string
#     replacement + NUL padding, text = replace all, #! lines of bin/ scripts) and checks
#     whereami prints the new path with an unchanged size and only prefix bytes changed,
#     the entry points run directly, and only the unmanaged note still holds ORIGIN;
#     a longer destination is refused for the binary;
#  4. builds every mk-fidelity-bad.sh case and checks its defect.
# WORKDIR must be absent or empty; removed at the end unless KEEP=1. ~5 s.
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 WORKDIR [PYVER]" >&2; exit 2; }
W=$1
PYVER=${2:-$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPER=$HERE/mk-fidelity-helper.py
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1  # the helper is imported below: no testdata/__pycache__
ORIGIN=/home/runner/miniconda3/envs/blog-test-with-a-long-name
if [ -e "$W" ] && [ -n "$(ls -A "$W")" ]; then echo "$0: $W is not empty" >&2; exit 1; fi
mkdir -p "$W"
W=$(cd "$W" && pwd)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# ---------------------------------------------------------------- 1. build + run
P=$W/prefix
t0=$(date +%s.%N)
bash "$HERE/mk-fidelity-prefix.sh" "$P" "$ORIGIN" "$PYVER"
t1=$(date +%s.%N)
ok "mk-fidelity-prefix.sh in $(echo "$t1 - $t0" | bc) s, $(du -sh "$P" | cut -f1)"
cd /
[ "$(env -i "$P/bin/whereami")" = "$ORIGIN" ] || fail "whereami"
[ "$(env -i "$P/bin/python" -B -c 'import sys; print(sys.prefix)')" = "$P" ] || fail "sys.prefix"
for s in greet pipdemo; do
  if env -i "$P/bin/$s" >/dev/null 2>&1; then fail "bin/$s ran directly"; fi
done
[ "$(env -i "$P/bin/python" -B "$P/bin/greet")" = "hello from greetpkg" ] || fail "greet"
[ "$(env -i "$P/bin/python" -B "$P/bin/pipdemo")" = "pipdemo ok" ] || fail "pipdemo"
ok "runs as installed: whereami -> ORIGIN; greet/pipdemo only through bin/python"

# ------------------------------------------------------------------- 2. formats
"$PY" - "$P" "$ORIGIN" "$HELPER" <<'EOF'
import base64, csv, hashlib, importlib.util, json, os, sys
P, ORIGIN, HELPER = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("h", HELPER); h = importlib.util.module_from_spec(spec)
spec.loader.exec_module(h)
sha = lambda b: hashlib.sha256(b).hexdigest()
rd = lambda p: open(p, "rb").read()
n = 0
for fn in sorted(os.listdir(os.path.join(P, "conda-meta"))):
    if not fn.endswith(".json"):
        continue
    r = json.load(open(os.path.join(P, "conda-meta", fn)))
    assert fn == "%s-%s-%s.json" % (r["name"], r["version"], r["build"]), fn
    for k in ("build_number", "channel", "subdir", "files", "paths_data", "link"):
        assert k in r, (fn, k)
    assert r["paths_data"]["paths_version"] == 1
    assert [p["_path"] for p in r["paths_data"]["paths"]] == r["files"], fn
    assert (r.get("noarch") == "python") == (r["subdir"] == "noarch"), fn
    for e in r["paths_data"]["paths"]:
        f = os.path.join(P, e["_path"]); n += 1
        assert os.path.lexists(f), (fn, e["_path"])
        if e["path_type"] == "softlink" or os.path.islink(f):
            continue
        data = rd(f)
        if e["path_type"] == "unix_python_entry_point":
            assert e["size_in_bytes"] == len(data) and data.startswith(b"#!" + ORIGIN.encode())
            continue
        if "sha256_in_prefix" in e:
            assert e["sha256_in_prefix"] == sha(data), (fn, e["_path"])
        ph = e.get("prefix_placeholder")
        if not ph:
            assert (e["sha256"], e["size_in_bytes"]) == (sha(data), len(data)), (fn, e["_path"])
            continue
        assert e["file_mode"] in ("text", "binary")
        pkgfile = os.path.join(P, "pkgs", fn[:-5], e["_path"])
        if os.path.exists(pkgfile):   # packages built by mk-fidelity-prefix.sh
            pk = rd(pkgfile)
            assert (e["sha256"], e["size_in_bytes"]) == (sha(pk), len(pk)), e["_path"]
            again = (pk.replace(ph.encode(), ORIGIN.encode()) if e["file_mode"] == "text"
                     else h.binary_replace(pk, ph.encode(), ORIGIN.encode()))
            assert again == data, e["_path"]
print("ok: %d conda-meta paths consistent (sha256_in_prefix = installed; placeholder files "
      "re-installed from pkgs/ byte-identical)" % n)
sp = [d for d in os.listdir(os.path.join(P, "lib")) if d.startswith("python")][0]
sp = os.path.join(P, "lib", sp, "site-packages")
rows = list(csv.reader(open(os.path.join(sp, "pipdemo-1.0.dist-info/RECORD"), newline="")))
for path, hsh, size in rows:
    if not hsh:
        continue
    d = rd(os.path.normpath(os.path.join(sp, path)))
    assert hsh == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(d).digest()).decode().rstrip("=")
    assert int(size) == len(d)
print("ok: pipdemo RECORD: %d rows, hashes match" % len(rows))
hold = []
for d, dirs, files in os.walk(P):
    for f in files:
        p = os.path.join(d, f)
        if not os.path.islink(p) and ORIGIN.encode() in rd(p):
            hold.append(os.path.relpath(p, P))
print("ok: files holding ORIGIN:", " ".join(sorted(hold)))
EOF

# ------------------------------------------------------------- 3. relocation
R=$(mktemp -d "${TMPDIR:-/tmp}/reloc.XXXXXX")
trap 'rm -rf "$R"; [ "${KEEP:-0}" = 1 ] || rm -rf "$W"' EXIT
NEW=$R/opt/conda-env
[ "${#NEW}" -le "${#ORIGIN}" ] || fail "$NEW longer than ORIGIN (set TMPDIR shorter)"
mkdir -p "$R/opt"
cp -a "$P" "$NEW"
rm -rf "$NEW/pkgs"
# every recorded placeholder file, by its file_mode; then #! lines of bin/ scripts
"$PY" - "$NEW" > "$R/todo" <<'EOF'
import json, os, sys
P = sys.argv[1]
for fn in sorted(os.listdir(os.path.join(P, "conda-meta"))):
    if fn.endswith(".json"):
        for e in json.load(open(os.path.join(P, "conda-meta", fn)))["paths_data"]["paths"]:
            if e.get("prefix_placeholder"):
                print(e["file_mode"], e["_path"])
EOF
while read -r mode path; do
  case $mode in binary) cmd=binreplace ;; text) cmd=textreplace ;; *) fail "file_mode $mode" ;; esac
  "$PY" "$HELPER" "$cmd" "$NEW/$path" "$ORIGIN" "$NEW"
done < "$R/todo"
for f in "$NEW"/bin/*; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  if head -c 2 "$f" | grep -q '^#!' && head -n 1 "$f" | grep -qF "#!$ORIGIN/"; then
    "$PY" - "$f" "$ORIGIN" "$NEW" <<'EOF'
import os, sys
f, old, new = sys.argv[1:4]
data = open(f, "rb").read()
first, rest = data.split(b"\n", 1)
st = os.stat(f)
open(f, "wb").write(first.replace(old.encode(), new.encode()) + b"\n" + rest)
os.chmod(f, st.st_mode)
EOF
  fi
done
echo "relocated $(wc -l < "$R/todo") placeholder files by file_mode: $(cut -d' ' -f2 "$R/todo" | tr '\n' ' ')"
s0=$(stat -c %s "$P/bin/whereami") s1=$(stat -c %s "$NEW/bin/whereami")
[ "$s0" = "$s1" ] || fail "whereami size $s0 -> $s1"
[ "$(env -i "$NEW/bin/whereami")" = "$NEW" ] || fail "relocated whereami prints $(env -i "$NEW/bin/whereami")"
[ "$(env -i "$NEW/bin/whereami" --libdir)" = "$NEW/lib" ] || fail "relocated --libdir"
[ "$(env -i "$NEW/bin/whereami" --search-path)" = "$NEW/share/whereami:$NEW/etc/whereami" ] || fail "--search-path"
ok "relocated whereami prints $NEW (size $s0 -> $s1), --libdir/--search-path too"
echo "   bytediff: $("$PY" "$HELPER" bytediff "$P/bin/whereami" "$NEW/bin/whereami" "$ORIGIN" "$NEW")"
[ "$(env -i "$NEW/bin/greet")" = "hello from greetpkg" ] || fail "relocated greet"
[ "$(env -i "$NEW/bin/pipdemo")" = "pipdemo ok" ] || fail "relocated pipdemo"
[ "$(env -i "$NEW/bin/python" -B -c 'import sys; print(sys.prefix)')" = "$NEW" ] || fail "sys.prefix"
ok "relocated bin/greet and bin/pipdemo run directly; sys.prefix = $NEW"
grep -qx "prefix=$NEW" "$NEW/lib/pkgconfig/whereami.pc" || fail ".pc"
[ "$(grep -o "$NEW/" "$NEW/etc/whereami/paths.conf" | wc -l)" = 2 ] || fail "paths.conf"
if command -v pkg-config >/dev/null; then
  [ "$(PKG_CONFIG_PATH=$NEW/lib/pkgconfig pkg-config --variable=libdir whereami)" = "$NEW/lib" ] || fail "pkg-config"
fi
left=$(cd "$NEW" && grep -rlF "$ORIGIN" --exclude-dir=conda-meta . | sort | tr '\n' ' ')
[ "$left" = "./share/notes/built-at.txt " ] || fail "still holding ORIGIN: $left"
ok "after relocation only ./share/notes/built-at.txt (+ conda-meta) hold ORIGIN; links: $(cd "$NEW" && find . -type l -lname '/*' -printf '%p -> %l  ')"
cp "$NEW/bin/whereami" "$R/w"
LONG=/opt/conda-env/and/a/destination/longer/than/the/origin/prefix
if "$PY" "$HELPER" binreplace "$R/w" "$NEW" "$LONG" 2>"$R/err"; then fail "longer replacement accepted"; fi
cmp -s "$R/w" "$NEW/bin/whereami" || fail "refused replacement changed the file"
ok "longer destination refused, file untouched: $(cat "$R/err")"

# ------------------------------------------------------------------ 4. bad cases
for c in editable-egg-link editable-pth editable-direct-url osx win missing-file malformed partial aarch64; do
  B=$W/bad-$c
  t0=$(date +%s.%N)
  bash "$HERE/mk-fidelity-bad.sh" "$B" "$ORIGIN" 3.8 "$c"
  t1=$(date +%s.%N)
  msg=$("$PY" - "$B" "$c" <<'EOF'
import glob, json, os, sys
B, c = sys.argv[1:3]
sp = os.path.join(B, "lib/python3.8/site-packages")
recs = {}
for f in sorted(glob.glob(os.path.join(B, "conda-meta/*.json"))):
    try:
        recs[os.path.basename(f)] = json.load(open(f))
    except ValueError as e:
        recs[os.path.basename(f)] = e
bad = {k: v for k, v in recs.items() if isinstance(v, Exception)}
py = [v for k, v in recs.items() if k.startswith("python-")][0]
def missing():
    return [(k, e["_path"]) for k, r in recs.items() if isinstance(r, dict)
            for e in r["paths_data"]["paths"] if not os.path.lexists(os.path.join(B, e["_path"]))]
subdirs = sorted({r["subdir"] for r in recs.values() if isinstance(r, dict)})
if c == "editable-egg-link":
    assert open(os.path.join(sp, "mypkg.egg-link")).read() == "/src/mypkg\n."
    print("mypkg.egg-link -> /src/mypkg")
elif c == "editable-pth":
    assert os.path.exists(os.path.join(sp, "__editable__.mypkg-0.1.pth"))
    assert os.path.exists(os.path.join(sp, "__editable___mypkg_0_1_finder.py"))
    print("__editable__.mypkg-0.1.pth + finder")
elif c == "editable-direct-url":
    d = json.load(open(os.path.join(sp, "mypkg-0.1.dist-info/direct_url.json")))
    assert d["dir_info"]["editable"] is True
    print("direct_url.json", json.dumps(d))
elif c in ("osx", "win", "aarch64"):
    want = {"osx": "osx-64", "win": "win-64", "aarch64": "linux-aarch64"}[c]
    assert py["subdir"] == want and subdirs == [want], subdirs
    print("record subdirs", subdirs, "url", py["url"].rsplit("/", 2)[1])
elif c == "missing-file":
    assert missing() == [("ghost-1.0-h0_0.json", "lib/libghost.so.1")], missing()
    print("missing", missing())
elif c == "malformed":
    assert list(bad) == ["broken-1.0-h0_0.json"], bad
    print("invalid JSON:", list(bad), bad["broken-1.0-h0_0.json"])
elif c == "partial":
    assert "name" not in recs["partial-1.0-h0_0.json"]
    print("partial-1.0-h0_0.json has no name")
if c != "malformed":
    assert not bad
if c != "missing-file":
    assert not missing(), missing()
EOF
)
  ok "bad $c ($(echo "$t1 - $t0" | bc) s): $msg"
done
echo "ALL OK"
