#!/usr/bin/env python3
"""Bytecode for the prefix of mk-pyc-prefix.sh (issue 20), and the checker's
model of importlib (see tests/cli/pyc_check.py for the checker itself).

  mk-pyc-helper.py debian DEST PYVER
      copy Debian's own bytecode (what py3compile wrote when the packages
      were installed: timestamp pycs) next to every source of DEST that is
      byte-for-byte and mtime-for-mtime Debian's: the stdlib from
      /usr/lib/pythonPYVER, site-packages from /usr/lib/python3/dist-packages
  mk-pyc-helper.py cases DEST ORIGIN PYVER
      the special cases (written with DEST's own python, see the script)

Written for this project from the pyc layout of PEP 552 and importlib's
documented behaviour; nothing copied.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys


def debian(dest, pyver):
    std = os.path.join(dest, "lib", "python" + pyver)
    roots = [
        (std, "/usr/lib/python" + pyver, "site-packages"),
        (os.path.join(std, "site-packages"), "/usr/lib/python3/dist-packages", None),
    ]
    copied = 0
    for mine, theirs, skip in roots:
        for dirpath, dirnames, filenames in os.walk(mine):
            dirnames.sort()
            if skip and dirpath == mine and skip in dirnames:
                dirnames.remove(skip)
            rel = os.path.relpath(dirpath, mine)
            src_dir = os.path.normpath(os.path.join(theirs, rel))
            cache = os.path.join(src_dir, "__pycache__")
            if not os.path.isdir(cache):
                continue
            names = sorted(os.listdir(cache))
            for f in sorted(filenames):
                if not f.endswith(".py"):
                    continue
                a, b = os.path.join(dirpath, f), os.path.join(src_dir, f)
                if not os.path.isfile(b) or os.path.islink(a):
                    continue
                sa, sb = os.stat(a), os.stat(b)
                if int(sa.st_mtime) != int(sb.st_mtime) or sa.st_size != sb.st_size:
                    continue
                with open(a, "rb") as fa, open(b, "rb") as fb:
                    if fa.read() != fb.read():
                        continue
                stem = f[:-3] + "."
                for n in names:
                    if n.startswith(stem) and n.endswith(".pyc") and \
                            n[len(stem):].count(".") in (1, 2):
                        os.makedirs(os.path.join(dirpath, "__pycache__"), exist_ok=True)
                        shutil.copyfile(os.path.join(cache, n),
                                        os.path.join(dirpath, "__pycache__", n))
                        copied += 1
    print("copied %d Debian .pyc files" % copied)


def compile_with(py, src, mode="timestamp", opt=None):
    """Compile src with the prefix's own python (its bytes, its magic)."""
    code = ("import py_compile, importlib.util, sys\n"
            "src, mode, opt = sys.argv[1], sys.argv[2], sys.argv[3]\n"
            "m = {'timestamp': py_compile.PycInvalidationMode.TIMESTAMP,\n"
            "     'checked': py_compile.PycInvalidationMode.CHECKED_HASH,\n"
            "     'unchecked': py_compile.PycInvalidationMode.UNCHECKED_HASH}[mode]\n"
            "c = importlib.util.cache_from_source(src, optimization=opt)\n"
            "py_compile.compile(src, cfile=c, doraise=True, invalidation_mode=m,\n"
            "                   optimize=int(opt or 0))\n"
            "print(c)\n")
    out = subprocess.run([py, "-B", "-c", code, src, mode, opt or ""], check=True,
                         env={}, cwd="/", stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cases(dest, origin, pyver):
    py = os.path.join(dest, "bin", "python" + pyver)
    sp = os.path.join("lib", "python" + pyver, "site-packages")
    pkg = os.path.join(dest, sp, "pycfixture")
    os.makedirs(pkg)
    files = {}

    def write(rel, text, mtime=1600000000):
        p = os.path.join(pkg, rel)
        with open(p, "w") as f:
            f.write(text)
        os.utime(p, (mtime, mtime))
        files[rel] = p
        return p

    write("__init__.py", '"""pycfixture: one module per bytecode case."""\n')
    compile_with(py, files["__init__.py"])
    # valid, plus its -O and -OO forms (same source mtime)
    write("plain.py", "VALUE = 1\n")
    for opt in (None, "1", "2"):
        compile_with(py, files["plain.py"], opt=opt)
    # the prefix replacement rewrites it: its pyc was compiled from the
    # unrelocated bytes (conda records it with a text placeholder)
    write("where.py", 'PREFIX = "%s"\n' % origin)
    compile_with(py, files["where.py"])
    # stale on the host: the source was edited after it was compiled (same
    # size; its pyc records 1600000000, what SOURCE_DATE_EPOCH may say)
    write("edited.py", "EDITED = 1\n")
    compile_with(py, files["edited.py"])
    write("edited.py", "EDITED = 2\n", mtime=1600000100)
    # stale on the host, but its pyc records mtime 0 (the layer's default
    # time) and the source's size: it must not become valid in the image
    trap = write("trap.py", "TRAP = 1\n")
    c = compile_with(py, trap)
    with open(c, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 0))
    # hash-based pycs (PEP 552)
    write("checked.py", "CHECKED = 1\n")
    compile_with(py, files["checked.py"], mode="checked")
    write("unchecked.py", "UNCHECKED = 1\n")
    compile_with(py, files["unchecked.py"], mode="unchecked")
    # a source mtime past 2**32 (the pyc keeps the low 32 bits)
    write("future.py", "FUTURE = 1\n", mtime=5000000000)
    compile_with(py, files["future.py"])
    # bytecode of another interpreter: a copy with python 3.9's magic
    write("other.py", "OTHER = 1\n")
    c = compile_with(py, files["other.py"])
    other = c.replace("cpython-3%s" % pyver.split(".")[1], "cpython-39")
    with open(c, "rb") as f:
        data = bytearray(f.read())
    data[0:2] = struct.pack("<H", 3425)
    with open(other, "wb") as f:
        f.write(data)
    # a truncated pyc, and one whose source is gone
    write("short.py", "SHORT = 1\n")
    c = compile_with(py, files["short.py"])
    with open(c, "r+b") as f:
        f.truncate(8)
    gone = write("gone.py", "GONE = 1\n")
    compile_with(py, gone)
    os.unlink(gone)
    del files["gone.py"]

    # the conda record: where.py with the text placeholder conda-build uses
    placeholder = "/opt/anaconda1anaconda2anaconda3"
    paths = []
    for rel in sorted(files):
        p = files[rel]
        entry = {"_path": os.path.join(sp, "pycfixture", rel), "path_type": "hardlink",
                 "sha256": sha256(p), "size_in_bytes": os.path.getsize(p)}
        if rel == "where.py":
            text = open(p).read().replace(origin, placeholder).encode()
            entry.update({"prefix_placeholder": placeholder, "file_mode": "text",
                          "sha256": hashlib.sha256(text).hexdigest(),
                          "size_in_bytes": len(text), "sha256_in_prefix": sha256(p)})
        paths.append(entry)
    rec = {"name": "pycfixture", "version": "1.0", "build": "py_0", "build_number": 0,
           "channel": "https://conda.anaconda.org/conda-forge/noarch", "subdir": "noarch",
           "noarch": "python", "depends": [], "license": "fixture",
           "files": [e["_path"] for e in paths],
           "paths_data": {"paths_version": 1, "paths": paths}}
    with open(os.path.join(dest, "conda-meta", "pycfixture-1.0-py_0.json"), "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
    print("wrote the pycfixture cases")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "debian":
        debian(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "cases":
        cases(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
