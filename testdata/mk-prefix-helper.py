#!/usr/bin/env python3
"""Helper of mk-prefix.sh (stdlib only).

  pkgfiles LISTOUT PKGSOUT ROOTPKG...  Debian dependency closure of ROOTPKG (Depends and
        Pre-Depends, all installed alternatives, through Provides); writes the files
        those packages ship under /usr/lib/python3/dist-packages (relative, no tests/
        dirs) to LISTOUT and "package<TAB>version<TAB>count" lines to PKGSOUT.
  elfs DIR                      print the ELF files below DIR (no symlinks), one a line.
  pytz SITEPACKAGES             Debian's pytz reads /usr/share/zoneinfo (tzdata); give it
                                its own copy in pytz/zoneinfo, as upstream/conda pytz has.
  runpath DEST                  patchelf --set-rpath '$ORIGIN/<rel to DEST/lib>' on every
                                ELF below DEST.
  fixtures DEST ORIGIN PYVER PYFULL MODE [PKGSFILE]
                                writes the relocation fixtures, pkgs/ and conda-meta/.
"""

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

DIST = "/usr/lib/python3/dist-packages"
TEXT_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
BIN_PLACEHOLDER = ("/tmp/build/fixture_1677628800000/_h_env_placehold" + "_placehold" * 30)[:255]
CHANNEL = "https://conda.anaconda.org/conda-forge"
TIMESTAMP = 1677628800000


# --------------------------------------------------------------------- pkgfiles
def installed_packages():
    out = subprocess.run(
        ["dpkg-query", "-W", "-f",
         "${db:Status-Abbrev}\t${Package}\t${Version}\t${Depends}\t${Pre-Depends}\t${Provides}\n"],
        check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    pkgs, provides = {}, {}
    for line in out.splitlines():
        st, name, ver, dep, pre, prov = (line.split("\t") + [""] * 6)[:6]
        if not st.startswith("ii"):
            continue
        pkgs[name] = (ver, dep, pre)
        for p in prov.split(","):
            p = p.strip().split(" ")[0]
            if p:
                provides.setdefault(p, []).append(name)
    return pkgs, provides


def closure(roots):
    pkgs, provides = installed_packages()
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in pkgs:
            continue
        seen.add(name)
        ver, dep, pre = pkgs[name]
        for group in (dep + "," + pre).split(","):
            for alt in group.split("|"):
                n = alt.strip().split(" ")[0].split(":")[0]
                if not n:
                    continue
                todo.extend([n] if n in pkgs else provides.get(n, []))
    return sorted(seen), pkgs


def dpkg_list(name):
    for fn in ("%s.list" % name, "%s:amd64.list" % name):
        p = os.path.join("/var/lib/dpkg/info", fn)
        if os.path.exists(p):
            with open(p) as f:
                return f.read().splitlines()
    return subprocess.run(["dpkg-query", "-L", name], check=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.splitlines()


def cmd_pkgfiles(listout, pkgsout, *roots):
    names, pkgs = closure(roots)
    owner, files = {}, []
    for name in names:
        for f in dpkg_list(name):
            if f.startswith(DIST + "/"):
                owner.setdefault(name, []).append(f[len(DIST) + 1:])
                files.append(f)
    rel = set()
    for f in files:
        r = f[len(DIST) + 1:]
        parts = r.split("/")
        if "tests" in parts or "__pycache__" in parts:
            continue
        rel.add(r)
    with open(listout, "w") as fh:
        for r in sorted(rel):
            fh.write(r + "\n")
    with open(pkgsout, "w") as fh:
        for name in sorted(owner):
            keep = [r for r in owner[name]
                    if r in rel and os.path.isfile(os.path.join(DIST, r))]
            if keep:
                fh.write("%s\t%s\t%s\n" % (name, pkgs[name][0], "\t".join(sorted(keep))))


# ------------------------------------------------------------------------- elfs
def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def iter_elfs(top):
    for d, dirs, files in os.walk(top):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(d, fn)
            if not os.path.islink(p) and os.path.isfile(p) and is_elf(p):
                yield p


def cmd_elfs(top):
    for p in iter_elfs(top):
        print(p)


def cmd_runpath(dest):
    dest = os.path.abspath(dest)
    libdir = os.path.join(dest, "lib")
    for p in iter_elfs(dest):
        rel = os.path.relpath(libdir, os.path.dirname(p))
        rp = "$ORIGIN" if rel == "." else "$ORIGIN/" + rel
        mode = os.stat(p).st_mode
        os.chmod(p, mode | 0o200)
        subprocess.run(["patchelf", "--set-rpath", rp, p], check=True)
        os.chmod(p, mode)


# ------------------------------------------------------------------------- pytz
def cmd_pytz(sp):
    pkg = os.path.join(sp, "pytz")
    init = os.path.join(pkg, "__init__.py")
    if not os.path.exists(init):
        return
    src = open(init).read()
    new = src.replace('pathlib.Path("/usr/share/zoneinfo/',
                      'pathlib.Path(os.path.dirname(__file__), "zoneinfo", "')
    new = new.replace("os.path.join('/usr','share',", "os.path.join(os.path.dirname(__file__),")
    if "/usr/share/zoneinfo" in new or "'/usr','share'" in new:
        sys.exit("mk-prefix: could not patch %s" % init)
    with open(init, "w") as f:
        f.write(new)
    subprocess.run("tar -C /usr/share/zoneinfo --exclude=./right --exclude=./posix -cf - . "
                   "| tar -C '%s' -xf -" % os.path.join(pkg, "zoneinfo").replace("'", "'\\''"),
                   shell=True, check=True)


# --------------------------------------------------------------------- fixtures
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path_entry(dest, rel, **extra):
    full = os.path.join(dest, rel)
    e = {"_path": rel}
    if os.path.islink(full):
        e["path_type"] = "softlink"
    else:
        e["path_type"] = "hardlink"
    if os.path.exists(full):
        e["sha256"] = sha256(full)
        e["size_in_bytes"] = os.path.getsize(full)
    e.update(extra)
    return e


def upstream_version(debver):
    v = debver.split(":", 1)[-1].rsplit("-", 1)[0]
    return re.split(r"[+~]", v)[0]


CONDA_NAMES = {
    "python3-tz": "pytz", "python3-dateutil": "python-dateutil",
    "python3-pkg-resources": "setuptools", "python3-pandas-lib": "pandas",
    "python3-charset-normalizer": "charset-normalizer",
}


def write_record(dest, name, version, build, files, paths, depends=(), noarch=None):
    fn = "%s-%s-%s" % (name, version, build)
    rec = {
        "arch": None if noarch else "x86_64",
        "build": build,
        "build_number": 0,
        "channel": CHANNEL + ("/noarch" if noarch else "/linux-64"),
        "constrains": [],
        "depends": list(depends),
        "extracted_package_dir": "",
        "features": "",
        "files": files,
        "fn": fn + ".tar.bz2",
        "license": "fixture",
        "link": {"source": "", "type": 1},
        "md5": hashlib.md5(fn.encode()).hexdigest(),
        "name": name,
        "paths_data": {"paths": paths, "paths_version": 1},
        "platform": None if noarch else "linux",
        "requested_spec": "",
        "sha256": hashlib.sha256(fn.encode()).hexdigest(),
        "size": 0,
        "subdir": "noarch" if noarch else "linux-64",
        "timestamp": TIMESTAMP,
        "track_features": "",
        "url": "%s/%s/%s.tar.bz2" % (CHANNEL, "noarch" if noarch else "linux-64", fn),
        "version": version,
    }
    if noarch:
        rec["noarch"] = noarch
    with open(os.path.join(dest, "conda-meta", fn + ".json"), "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
        f.write("\n")
    return fn


def cmd_fixtures(dest, origin, pyver, pyfull, mode, pkgsfile=""):
    dest = os.path.abspath(dest)
    J = lambda *a: os.path.join(dest, *a)
    for d in ("bin", "etc/fixture", "lib", "conda-meta", "pkgs"):
        os.makedirs(J(d), exist_ok=True)

    # (a) text file with the prefix (placeholder /opt/anaconda1anaconda2anaconda3)
    text_tmpl = "# fixture: text file with the install prefix\nprefix={P}\nlib={P}/lib\nconf={P}/etc/fixture/prefix.txt\n"
    with open(J("etc/fixture/prefix.txt"), "w") as f:
        f.write(text_tmpl.replace("{P}", origin))
    text_orig = text_tmpl.replace("{P}", TEXT_PLACEHOLDER).encode()

    # (b) binary file: NUL-terminated strings, padded as conda does at install time
    def binary(prefix, orig_len):
        def cstr(s, n_prefixes):
            raw = s.replace("{P}", prefix).encode()
            pad = n_prefixes * (orig_len - len(prefix.encode()))
            return raw + b"\0" * pad + b"\0"
        return (b"\x7fFIXTURE\x00\x01\x02\x03binary-header\x00" + bytes(range(32, 96)) +
                cstr("{P}/lib", 1) + b"\xff\xfe\xfd\x00middle\x00" + bytes(range(0, 40)) +
                cstr("{P}/share:{P}/etc", 2) + b"trailer\x00\x10\x20\x30" + bytes(range(200, 256)))
    if len(origin.encode()) > len(BIN_PLACEHOLDER):
        sys.exit("ORIGIN longer than the 255-char binary placeholder")
    with open(J("lib/fixture-binary.dat"), "wb") as f:
        f.write(binary(origin, len(BIN_PLACEHOLDER)))
    bin_orig = binary(BIN_PLACEHOLDER, len(BIN_PLACEHOLDER))

    # (c) entry point written by conda at install time; plus a pip-style script
    with open(J("bin/fixture-tool"), "w") as f:
        f.write("#!%s/bin/python%s\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
                "from json.tool import main\n"
                "if __name__ == '__main__':\n"
                "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                "    sys.exit(main())\n" % (origin, pyver))
    with open(J("bin/pip-tool"), "w") as f:
        f.write("#!%s/bin/python%s\n# pip-installed script (not recorded in conda-meta)\n"
                "import sys\nprint(sys.prefix)\n" % (origin, pyver))
    os.chmod(J("bin/fixture-tool"), 0o755)
    os.chmod(J("bin/pip-tool"), 0o755)
    if os.path.lexists(J("bin/abs-python")):
        os.unlink(J("bin/abs-python"))
    os.symlink("%s/bin/python%s" % (origin, pyver), J("bin/abs-python"))

    # pkgs/: package cache leftovers that must not end up in images
    pkgname = "python-%s-0" % pyfull
    index = json.dumps({"name": "python", "version": pyfull, "build": "0", "build_number": 0,
                        "subdir": "linux-64"}, indent=2).encode()
    os.makedirs(J("pkgs", pkgname, "info"), exist_ok=True)
    with open(J("pkgs", pkgname, "info", "index.json"), "wb") as f:
        f.write(index)
    with tarfile.open(J("pkgs", pkgname + ".tar.bz2"), "w:bz2") as tf:
        ti = tarfile.TarInfo("info/index.json")
        ti.size, ti.mtime = len(index), TIMESTAMP // 1000
        tf.addfile(ti, io.BytesIO(index))
    with open(J("pkgs", "urls.txt"), "w") as f:
        f.write("%s/linux-64/%s.tar.bz2\n" % (CHANNEL, pkgname))

    # conda-meta: python record (python itself, stdlib, fixtures)
    py_paths = []
    for rel in ("bin/python", "bin/python3", "bin/python%s" % pyver):
        py_paths.append(path_entry(dest, rel))
    stdlib = "lib/python%s" % pyver
    for d, dirs, files in os.walk(J(stdlib)):
        dirs[:] = sorted(x for x in dirs if x not in ("site-packages",))
        for fn in sorted(files):
            py_paths.append(path_entry(dest, os.path.relpath(os.path.join(d, fn), dest)))
    e = path_entry(dest, "etc/fixture/prefix.txt", prefix_placeholder=TEXT_PLACEHOLDER,
                   file_mode="text", sha256_in_prefix=sha256(J("etc/fixture/prefix.txt")))
    e.update(sha256=hashlib.sha256(text_orig).hexdigest(), size_in_bytes=len(text_orig))
    py_paths.append(e)
    e = path_entry(dest, "lib/fixture-binary.dat", prefix_placeholder=BIN_PLACEHOLDER,
                   file_mode="binary", sha256_in_prefix=sha256(J("lib/fixture-binary.dat")))
    e.update(sha256=hashlib.sha256(bin_orig).hexdigest(), size_in_bytes=len(bin_orig))
    py_paths.append(e)
    e = path_entry(dest, "bin/fixture-tool")
    e["path_type"] = "unix_python_entry_point"
    py_paths.append(e)
    py_paths.sort(key=lambda x: x["_path"])
    records = [write_record(dest, "python", pyfull, "h_fixture_0",
                            [p["_path"] for p in py_paths], py_paths,
                            depends=["libzlib", "libexpat"])]

    # one record per Debian package that contributed to site-packages
    sp = "lib/python%s/site-packages" % pyver
    merged = {}
    if pkgsfile:
        for line in open(pkgsfile):
            parts = line.rstrip("\n").split("\t")
            deb, debver, rels = parts[0], parts[1], parts[2:]
            name = CONDA_NAMES.get(deb, deb[len("python3-"):] if deb.startswith("python3-") else deb)
            m = merged.setdefault(name, {"version": upstream_version(debver), "files": []})
            m["files"].extend(sp + "/" + r for r in rels if os.path.isfile(J(sp, r)))
    for name in sorted(merged):
        files = sorted(set(merged[name]["files"]))
        paths = [path_entry(dest, r) for r in files]
        if any(r.endswith(".so") for r in files):  # compiled: a linux-64 package
            build, noarch = "py%sh_fixture_0" % pyver.replace(".", ""), None
        else:
            build, noarch = "pyhd_fixture_0", "python"
        records.append(write_record(dest, name, merged[name]["version"], build,
                                    files, paths, depends=["python >=%s" % pyver],
                                    noarch=noarch))

    # the shared libraries copied into lib/
    libs = sorted("lib/" + fn for fn in os.listdir(J("lib"))
                  if ".so" in fn and os.path.isfile(J("lib", fn)))
    if libs:
        records.append(write_record(dest, "fixture-libs", "1.0", "h_fixture_0", libs,
                                    [path_entry(dest, r) for r in libs]))

    with open(J("conda-meta", "history"), "w") as f:
        f.write("==> 2023-03-01 00:00:00 <==\n")
        f.write("# cmd: /opt/conda/bin/conda create -p %s python=%s pandas requests\n" % (origin, pyver))
        f.write("# conda version: 23.1.0\n")
        for r in sorted(records):
            chan = "noarch" if "-pyhd_fixture" in r else "linux-64"
            f.write("+conda-forge/%s::%s\n" % (chan, r))
        f.write("# update specs: ['python=%s', 'pandas', 'requests']\n" % pyver)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    {"pkgfiles": cmd_pkgfiles, "elfs": cmd_elfs, "pytz": cmd_pytz, "runpath": cmd_runpath,
     "fixtures": cmd_fixtures}[cmd](*args)


if __name__ == "__main__":
    main()
