#!/usr/bin/env python3
"""Packages and locks for the bytecode of lock builds (issue 20).

  mk-pyc-pkgs.py OUT LOCK PYVER

LOCK is mk-pkgs.sh's output (its packages are linked into OUT/pkgs). Writes:
  OUT/pkgs/pycship-1.0-py<NN>_0.conda   linux-64, not noarch: ships bytecode the
      way conda-build leaves it in arch packages (real example: Anaconda's
      certifi-2020.12.5-py39h06a4308_0.conda, whose pkg tar holds
      certifi/__pycache__/core.cpython-39.pyc, a timestamp pyc recording its
      core.py's mtime in that same tar): pycship/__init__.py with a valid
      pyc, pycship/stale.py whose pyc records another mtime, pycship/bare.py
      with none
  OUT/pkgs/python-<ver>-h0_0_arm.tar.bz2, linux-aarch64: a python that is never
      run (bin/pythonPYVER a shell script) with a few stdlib sources
  OUT/explicit.txt        LOCK's explicit lock plus pycship
  OUT/explicit-arm64.txt  the aarch64 python and LOCK's noarch greetpkg
Everything deterministic (the packages' fixed mtimes), pycs compiled by
/usr/bin/pythonPYVER. Written for this project from the package model of
mk-pkgs-helper.py.
"""
import hashlib
import importlib.util
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("pkgs", os.path.join(HERE, "mk-pkgs-helper.py"))
pkgs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pkgs)
MTIME = pkgs.MTIME  # every member's mtime in the package tars


def pyc_of(pyver, source, mtime):
    """The timestamp pyc python PYVER writes for source with that mtime."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "m.py")
        with open(src, "wb") as f:
            f.write(source)
        os.utime(src, (mtime, mtime))
        out = os.path.join(d, "m.pyc")
        subprocess.run(["/usr/bin/python" + pyver, "-c",
                        "import py_compile, sys; py_compile.compile(sys.argv[1], "
                        "cfile=sys.argv[2], dfile='pycship', doraise=True, invalidation_mode="
                        "py_compile.PycInvalidationMode.TIMESTAMP)", src, out],
                       check=True, env={})
        with open(out, "rb") as f:
            return f.read()


def md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    out, lock, pyver = sys.argv[1:4]
    nn = pyver.replace(".", "")
    sp = "lib/python%s/site-packages/pycship" % pyver
    os.makedirs(os.path.join(out, "pkgs"))
    for name in sorted(os.listdir(os.path.join(lock, "pkgs"))):
        os.symlink(os.path.join(lock, "pkgs", name), os.path.join(out, "pkgs", name))

    p = pkgs.Package("pycship", "1.0", "py%s_0" % nn, summary="ships bytecode (fixture)")
    init, stale, bare = b'"""pycship"""\nVALUE = 1\n', b"STALE = 1\n", b"BARE = 1\n"
    tag = "cpython-%s" % nn
    p.add(sp + "/__init__.py", init)
    p.add(sp + "/__pycache__/__init__.%s.pyc" % tag, pyc_of(pyver, init, MTIME))
    p.add(sp + "/stale.py", stale)
    p.add(sp + "/__pycache__/stale.%s.pyc" % tag, pyc_of(pyver, stale, MTIME - 3600))
    p.add(sp + "/bare.py", bare)
    ship = p.write_conda(os.path.join(out, "pkgs"))
    with open(os.path.join(lock, "explicit.txt")) as f:
        text = f.read()
    with open(os.path.join(out, "explicit.txt"), "w") as f:
        f.write(text)
        f.write("%s/linux-64/%s#%s\n" % (pkgs.CHANNEL, os.path.basename(ship), md5(ship)))

    full = subprocess.run(["/usr/bin/python" + pyver, "-S", "-c",
                           "import platform; print(platform.python_version())"],
                          stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    arm = pkgs.Package("python", full, "h0_0_arm", subdir="linux-aarch64",
                       summary="an aarch64 python that is never run (fixture)")
    arm.add("bin/python" + pyver, "#!/bin/sh\necho 'not an aarch64 python' >&2\nexit 126\n",
            0o755)
    arm.link("bin/python", "python" + pyver)
    std = "lib/python%s" % pyver
    arm.add(std + "/os.py", "# fixture\n")
    arm.add(std + "/json/__init__.py", "# fixture\n")
    arm.add(std + "/json/decoder.py", "# fixture\n")
    arm.add(std + "/site-packages/README.txt", "fixture\n")
    apath = arm.write_tar_bz2(os.path.join(out, "pkgs"))
    with open(os.path.join(out, "explicit-arm64.txt"), "w") as f:
        f.write("# platform: linux-aarch64\n@EXPLICIT\n")
        f.write("%s/linux-aarch64/%s#%s\n" % (pkgs.CHANNEL, os.path.basename(apath), md5(apath)))
        g = os.path.join(lock, "pkgs", "greetpkg-0.1-pyh_0.tar.bz2")
        f.write("%s/noarch/greetpkg-0.1-pyh_0.tar.bz2#%s\n" % (pkgs.CHANNEL, md5(g)))


if __name__ == "__main__":
    main()
