#!/usr/bin/env python3
"""Helper of mk-fidelity-prefix.sh and mk-fidelity-bad.sh (stdlib only).

  csource OUT                   write whereami.c: a C program whose prefix strings hold
                                the 255-char binary placeholder (as conda-build leaves it).
  fidelity DEST ORIGIN PYVER WHEREAMI_ELF [conda|mamba]
                                build the conda packages whereami-1.0-h0_0 (linux-64) and
                                greetpkg-0.1-pyh_0 (noarch: python) into DEST/pkgs (extracted
                                dir + .tar.bz2), install them into DEST as conda does for a
                                prefix ORIGIN (placeholders replaced, entry point written,
                                conda-meta record), then the pip-installed pipdemo, an
                                unmanaged file with ORIGIN and share/outside-link.
                                mamba: greetpkg's record as mamba 1.5 writes it (paths_data
                                with the package's site-packages/... paths).
  bad DEST ORIGIN PYVER CASE    break the (names-mode) prefix DEST in one way, see CASES.
  binreplace FILE OLD NEW       conda's binary prefix replacement, in place: inside every
                                NUL-terminated string holding OLD, OLD -> NEW and NUL padding
                                before the terminator; size unchanged. Exit 1 when NEW is
                                longer than OLD.
  textreplace FILE OLD NEW      conda's text replacement (every occurrence), in place.
  bytediff A B OLD NEW          check that B differs from A only inside the NUL-terminated
                                strings that held OLD in A, and that those now hold NEW.
"""

import base64
import csv
import hashlib
import io
import json
import os
import re
import sys
import tarfile

CHANNEL = "https://conda.anaconda.org/conda-forge"
TIMESTAMP = 1677628800000  # 2023-03-01, as mk-prefix-helper.py
TEXT_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"  # conda's legacy text placeholder


def bin_placeholder(name):
    """conda-build's host prefix, padded to 255 chars (what paths.json records)."""
    return ("/opt/conda/conda-bld/%s_%d/_h_env_placehold" % (name, TIMESTAMP)
            + "_placehold" * 30)[:255]


WHEREAMI_PLACEHOLDER = bin_placeholder("whereami")
MAX_SHEBANG_LENGTH = 127

CASES = ("editable-egg-link", "editable-pth", "editable-direct-url", "osx", "win",
         "missing-file", "malformed", "partial", "aarch64")


# ----------------------------------------------------------------------- helpers
def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def dump_json(path, obj, indent=2):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=True)
        f.write("\n")


def binary_replace(data, old, new):
    """conda.core.portability.binary_replace (non-Windows): every NUL-terminated string
    that starts with OLD gets all its OLDs replaced by NEW and (len(OLD)-len(NEW)) NULs
    per occurrence appended before the terminator; size and offsets stay the same."""
    if len(new) > len(old):
        raise ValueError("replacement longer than the original (%d > %d bytes)"
                         % (len(new), len(old)))
    pat = re.compile(re.escape(old) + b"(?:(?!\0).)*\0", re.DOTALL)

    def repl(m):
        s = m.group()
        return s.replace(old, new) + b"\0" * ((len(old) - len(new)) * s.count(old))
    out = pat.sub(repl, data)
    assert len(out) == len(data)
    return out


def conda_shebang(executable):
    """conda.core.portability.generate_shebang_for_entry_point (install time)."""
    shebang = "#!%s\n" % executable
    if len(shebang) > MAX_SHEBANG_LENGTH or " " in executable:
        shebang = "#!/usr/bin/env %s\n" % os.path.basename(executable)
    return shebang


def distlib_shebang(executable):
    """pip's (distlib ScriptMaker._build_shebang) on Linux."""
    if " " not in executable and len(executable) + 3 <= MAX_SHEBANG_LENGTH:
        return "#!%s\n" % executable
    return "#!/bin/sh\n'''exec' %s \"$0\" \"$@\"\n' '''\n" % executable


# conda.gateways.disk.create.python_entry_point_template
CONDA_ENTRY_POINT = """\
# -*- coding: utf-8 -*-
import re
import sys

from %(module)s import %(import_name)s

if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])
    sys.exit(%(func)s())
"""

# pip._vendor.distlib.scripts.SCRIPT_TEMPLATE (pip 23.0.1)
PIP_ENTRY_POINT = """\
# -*- coding: utf-8 -*-
import re
import sys
from %(module)s import %(import_name)s
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(%(func)s())
"""


def entry_point_script(template, module, func):
    return template % {"module": module, "func": func, "import_name": func.split(".")[0]}


def record_hash(data):
    """pip's RECORD hash: sha256=<urlsafe base64, no padding>."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def pkgs_root(origin):
    """Where conda keeps its package cache for a prefix ORIGIN: <root>/pkgs for an env
    <root>/envs/NAME, else ORIGIN/pkgs (ORIGIN is the root install)."""
    m = re.match(r"^(.*)/envs/[^/]+$", origin)
    return (m.group(1) if m else origin) + "/pkgs"


# ---------------------------------------------------------------------- csource
def cmd_csource(out):
    p = WHEREAMI_PLACEHOLDER
    src = """\
/* whereami: prints the install prefix compiled into it.
 * Built with PREFIX = conda-build's 255-char placeholder; at install time conda writes the
 * real prefix into each NUL-terminated string and pads it with NULs (same file size). */
#include <stdio.h>
#include <string.h>

static const char prefix[256] = "%(p)s";
static const char libdir[] = "%(p)s/lib";
static const char search_path[] = "%(p)s/share/whereami:%(p)s/etc/whereami";

int main(int argc, char **argv)
{
    const char *s = prefix;
    if (argc > 1 && strcmp(argv[1], "--libdir") == 0)
        s = libdir;
    else if (argc > 1 && strcmp(argv[1], "--search-path") == 0)
        s = search_path;
    else if (argc > 1) {
        fputs("usage: whereami [--libdir|--search-path]\\n", stderr);
        return 2;
    }
    puts(s);
    return 0;
}
""" % {"p": p}
    with open(out, "w") as f:
        f.write(src)


# --------------------------------------------------------------- conda packages
class Package:
    """A conda package: files as they are in the package (placeholders in them)."""

    def __init__(self, name, version, build, subdir="linux-64", noarch=None, depends=(),
                 entry_points=(), license="MIT", summary=""):
        self.name, self.version, self.build = name, version, build
        self.subdir, self.noarch = subdir, noarch
        self.depends, self.entry_points = list(depends), list(entry_points)
        self.license, self.summary = license, summary
        self.files = []  # (path, bytes, mode, placeholder or None, file_mode or None)

    @property
    def dist(self):
        return "%s-%s-%s" % (self.name, self.version, self.build)

    def add(self, path, data, mode=0o644, placeholder=None, file_mode=None):
        if isinstance(data, str):
            data = data.encode()
        self.files.append((path, data, mode, placeholder, file_mode))

    def index(self):
        idx = {"build": self.build, "build_number": 0, "depends": self.depends,
               "license": self.license, "name": self.name, "subdir": self.subdir,
               "timestamp": TIMESTAMP, "version": self.version}
        if self.noarch:
            idx["noarch"] = self.noarch
        else:
            idx["arch"], idx["platform"] = "x86_64", "linux"
        return idx

    def paths_json(self):
        paths = []
        for path, data, mode, ph, fm in self.files:
            e = {"_path": path, "path_type": "hardlink", "sha256": sha256_bytes(data),
                 "size_in_bytes": len(data)}
            if ph:
                e["prefix_placeholder"], e["file_mode"] = ph, fm
            paths.append(e)
        return {"paths": paths, "paths_version": 1}

    def info_files(self):
        info = {
            "info/index.json": json.dumps(self.index(), indent=2, sort_keys=True) + "\n",
            "info/paths.json": json.dumps(self.paths_json(), indent=2, sort_keys=True) + "\n",
            "info/files": "".join(p + "\n" for p, *_ in self.files),
            "info/about.json": json.dumps({"license": self.license, "summary": self.summary,
                                           "home": "https://example.invalid/" + self.name},
                                          indent=2, sort_keys=True) + "\n",
        }
        has_prefix = ["%s %s %s\n" % (ph, fm, p) for p, _, _, ph, fm in self.files if ph]
        if has_prefix:
            info["info/has_prefix"] = "".join(has_prefix)
        if self.noarch == "python":
            info["info/link.json"] = json.dumps(
                {"noarch": {"type": "python", "entry_points": self.entry_points},
                 "package_metadata_version": 1}, indent=2, sort_keys=True) + "\n"
        return {k: v.encode() for k, v in info.items()}

    def write_cache(self, pkgs):
        """pkgs/<dist>.tar.bz2 and the extracted pkgs/<dist>/ (with repodata_record.json)."""
        info = self.info_files()
        tarpath = os.path.join(pkgs, self.dist + ".tar.bz2")
        with tarfile.open(tarpath, "w:bz2") as tf:
            entries = [(k, v, 0o644) for k, v in sorted(info.items())]
            entries += [(p, d, m) for p, d, m, _, _ in self.files]
            for path, data, mode in entries:
                ti = tarfile.TarInfo(path)
                ti.size, ti.mode, ti.mtime = len(data), mode, TIMESTAMP // 1000
                tf.addfile(ti, io.BytesIO(data))
        blob = read(tarpath)
        ext = os.path.join(pkgs, self.dist)
        for k, v in info.items():
            write(os.path.join(ext, k), v)
        for path, data, mode, _, _ in self.files:
            write(os.path.join(ext, path), data, mode)
        chan = self.subdir
        self.repodata_record = dict(self.index(), channel="%s/%s" % (CHANNEL, chan),
                                    fn=self.dist + ".tar.bz2",
                                    md5=hashlib.md5(blob).hexdigest(),
                                    sha256=sha256_bytes(blob), size=len(blob),
                                    url="%s/%s/%s.tar.bz2" % (CHANNEL, chan, self.dist))
        self.repodata_record.setdefault("constrains", [])
        self.repodata_record.update(features="", track_features="")
        dump_json(os.path.join(ext, "info", "repodata_record.json"), self.repodata_record)
        with open(os.path.join(pkgs, "urls.txt"), "a") as f:
            f.write(self.repodata_record["url"] + "\n")

    def install(self, dest, origin, pyver, requested_spec, mamba=False):
        """Link the package into DEST as conda does for the prefix ORIGIN and write its
        conda-meta record (PrefixRecord). mamba: the record as mamba 1.5 writes it for a
        noarch: python package, paths_data with the package's paths (site-packages/...)
        and files with the prefix's (seen in a real Miniforge3 updated by `mamba update
        --all`: conda-meta/archspec-0.2.2-pyhd8ed1ab_0.json)."""
        sp = "lib/python%s/site-packages" % pyver
        paths, files = [], []
        for e, (path, data, mode, ph, fm) in zip(self.paths_json()["paths"], self.files):
            target = path
            if self.noarch == "python":
                if path.startswith("site-packages/"):
                    target = sp + path[len("site-packages"):]
                elif path.startswith("python-scripts/"):
                    target = "bin" + path[len("python-scripts"):]
            if ph and fm == "text":
                data = data.replace(ph.encode(), origin.encode())
            elif ph and fm == "binary":
                data = binary_replace(data, ph.encode(), origin.encode())
            write(os.path.join(dest, target), data, mode)
            e = dict(e, _path=path if mamba and self.noarch == "python" else target,
                     sha256_in_prefix=sha256_bytes(data))
            files.append(target)
            paths.append(e)
        python = "%s/bin/python%s" % (origin, pyver)
        for ep in self.entry_points:  # "name = module:func"
            cmd, spec = [x.strip() for x in ep.split("=", 1)]
            module, func = spec.split(":")
            data = conda_shebang(python) + entry_point_script(CONDA_ENTRY_POINT, module, func)
            write(os.path.join(dest, "bin", cmd), data, 0o755)
            files.append("bin/" + cmd)
            paths.append({"_path": "bin/" + cmd, "path_type": "unix_python_entry_point",
                          "size_in_bytes": len(data.encode())})
        cache = pkgs_root(origin)
        rec = dict(self.repodata_record)
        rec.update(
            files=files,
            paths_data={"paths": paths, "paths_version": 1},
            link={"source": "%s/%s" % (cache, self.dist), "type": 1},
            extracted_package_dir="%s/%s" % (cache, self.dist),
            package_tarball_full_path="%s/%s.tar.bz2" % (cache, self.dist),
            requested_spec=requested_spec,
        )
        if self.noarch == "python":
            rec["package_type"] = "noarch_python"
        dump_json(os.path.join(dest, "conda-meta", self.dist + ".json"), rec)
        return rec


def append_history(dest, origin, packages, specs):
    with open(os.path.join(dest, "conda-meta", "history"), "a") as f:
        f.write("==> 2023-03-01 00:05:00 <==\n")
        f.write("# cmd: /opt/conda/bin/conda install -p %s %s\n" % (origin, " ".join(specs)))
        f.write("# conda version: 23.1.0\n")
        for p in packages:
            f.write("+conda-forge/%s::%s\n" % (p.subdir, p.dist))
        f.write("# update specs: %r\n" % list(specs))


# ---------------------------------------------------------------------- fidelity
def whereami_package(elf):
    p = Package("whereami", "1.0", "h0_0", depends=["libgcc-ng >=12"],
                summary="prints the install prefix compiled into it (fixture)")
    p.add("bin/whereami", elf, 0o755, WHEREAMI_PLACEHOLDER, "binary")
    p.add("etc/whereami/paths.conf",
          "# whereami search path\nsearch_path = {P}/share/whereami:{P}/etc/whereami\n"
          .replace("{P}", WHEREAMI_PLACEHOLDER), 0o644, WHEREAMI_PLACEHOLDER, "text")
    p.add("include/whereami.h",
          "#ifndef WHEREAMI_H\n#define WHEREAMI_H\nconst char *whereami(void);\n#endif\n")
    p.add("lib/pkgconfig/whereami.pc",
          "prefix={P}\nexec_prefix=${prefix}\nlibdir=${prefix}/lib\n"
          "includedir=${prefix}/include\n\nName: whereami\n"
          "Description: knows where it was installed (fixture)\nVersion: 1.0\n"
          "Libs: -L${libdir}\nCflags: -I${includedir}\n".replace("{P}", TEXT_PLACEHOLDER),
          0o644, TEXT_PLACEHOLDER, "text")
    return p


def greetpkg_package():
    p = Package("greetpkg", "0.1", "pyh_0", subdir="noarch", noarch="python",
                depends=["python >=3.7"], entry_points=["greet = greetpkg:hello"],
                summary="noarch: python package with an entry point (fixture)")
    init = ('"""greetpkg: noarch python fixture package."""\n__version__ = "0.1"\n\n\n'
            'def hello():\n    print("hello from greetpkg")\n    return 0\n').encode()
    di = "greetpkg-0.1.dist-info/"
    meta = {
        di + "INSTALLER": b"conda\n",
        di + "METADATA": b"Metadata-Version: 2.1\nName: greetpkg\nVersion: 0.1\n"
                         b"Summary: noarch: python package with an entry point (fixture)\n"
                         b"License: MIT\nRequires-Python: >=3.7\n\n",
        di + "WHEEL": b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.38.4)\n"
                      b"Root-Is-Purelib: true\nTag: py3-none-any\n\n",
        di + "entry_points.txt": b"[console_scripts]\ngreet = greetpkg:hello\n",
        di + "top_level.txt": b"greetpkg\n",
        # conda-build runs `pip install .` in its work dir: a non-editable PEP 610 record
        di + "direct_url.json": json.dumps(
            {"dir_info": {}, "url": "file:///opt/conda/conda-bld/greetpkg_%d/work"
             % TIMESTAMP}).encode(),
    }
    files = {"greetpkg/__init__.py": init}
    files.update(meta)
    rows = [(k, record_hash(v), str(len(v))) for k, v in files.items()]
    rows.append((di + "RECORD", "", ""))
    files[di + "RECORD"] = csv_rows(rows)
    for k in sorted(files):
        p.add("site-packages/" + k, files[k])
    return p


def csv_rows(rows):
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(sorted(rows))  # pip: sorted, csv default "\r\n" line ends
    return buf.getvalue().encode()


def install_pipdemo(dest, origin, pyver):
    """What `pip install --no-compile pipdemo` (a wheel from an index) leaves behind."""
    sp_rel = "lib/python%s/site-packages" % pyver
    sp = os.path.join(dest, sp_rel)
    di = "pipdemo-1.0.dist-info/"
    files = {
        "pipdemo/__init__.py": b'"""pipdemo: pip-installed fixture package."""\n\n\n'
                               b'def main():\n    print("pipdemo ok")\n    return 0\n',
        di + "METADATA": b"Metadata-Version: 2.1\nName: pipdemo\nVersion: 1.0\n"
                         b"Summary: pip-installed package with a console script (fixture)\n"
                         b"License: MIT\nRequires-Python: >=3.7\n\n",
        di + "WHEEL": b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.38.4)\n"
                      b"Root-Is-Purelib: true\nTag: py3-none-any\n\n",
        di + "entry_points.txt": b"[console_scripts]\npipdemo = pipdemo:main\n",
        di + "top_level.txt": b"pipdemo\n",
        di + "INSTALLER": b"pip\n",
        di + "REQUESTED": b"",
    }
    script = (distlib_shebang("%s/bin/python%s" % (origin, pyver))
              + entry_point_script(PIP_ENTRY_POINT, "pipdemo", "main")).encode()
    rows = []
    for k, v in files.items():
        write(os.path.join(sp, k), v)
        rows.append((k, record_hash(v), str(len(v))))
    write(os.path.join(dest, "bin", "pipdemo"), script, 0o755)
    rel_script = os.path.relpath(os.path.join(dest, "bin", "pipdemo"), sp)  # ../../../bin/pipdemo
    rows.append((rel_script, record_hash(script), str(len(script))))
    rows.append((di + "RECORD", "", ""))
    write(os.path.join(sp, di + "RECORD"), csv_rows(rows))


def cmd_fidelity(dest, origin, pyver, elf_path, style="conda"):
    dest = os.path.abspath(dest)
    origin = origin.rstrip("/")
    if len(origin.encode()) > len(WHEREAMI_PLACEHOLDER):
        sys.exit("ORIGIN is longer than conda's 255-char binary placeholder")
    pkgs = os.path.join(dest, "pkgs")
    os.makedirs(pkgs, exist_ok=True)
    packages = [whereami_package(read(elf_path)), greetpkg_package()]
    for p in packages:
        p.write_cache(pkgs)
        p.install(dest, origin, pyver, requested_spec=p.name, mamba=style == "mamba")
    append_history(dest, origin, packages, [p.name for p in packages])

    install_pipdemo(dest, origin, pyver)

    # unmanaged, not a script, still holding ORIGIN: to be reported, never rewritten
    write(os.path.join(dest, "share", "notes", "built-at.txt"),
          "This environment was built on a CI runner at\n%s\n"
          "(conda create, 2023-03-01). Keep this note for the audit trail.\n" % origin)
    link = os.path.join(dest, "share", "outside-link")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink("/etc/hostname", link)


# --------------------------------------------------------------------------- bad
def python_record(dest):
    meta = os.path.join(dest, "conda-meta")
    recs = [f for f in sorted(os.listdir(meta)) if f.startswith("python-") and f.endswith(".json")]
    if len(recs) != 1:
        sys.exit("expected one python record in %s, found %r" % (meta, recs))
    return os.path.join(meta, recs[0])


def set_platform(path, subdir):
    with open(path) as f:
        rec = json.load(f)
    if rec.get("noarch"):
        return False
    platform, arch = subdir.split("-")
    arch = {"64": "x86_64", "aarch64": "aarch64"}[arch]
    old = rec["subdir"]
    rec.update(subdir=subdir, platform=platform, arch=arch)
    for k in ("channel", "url"):
        if k in rec:
            rec[k] = rec[k].replace("/%s" % old, "/%s" % subdir)
    dump_json(path, rec)
    return True


def small_package(dest, origin, pyver, name, files):
    p = Package(name, "1.0", "h0_0", summary="fixture")
    for path, data in files:
        p.add(path, data)
    p.write_cache(os.path.join(dest, "pkgs"))
    p.install(dest, origin, pyver, requested_spec=name)
    return os.path.join(dest, "conda-meta", p.dist + ".json")


def cmd_bad(dest, origin, pyver, case):
    dest = os.path.abspath(dest)
    sp = os.path.join(dest, "lib", "python%s" % pyver, "site-packages")
    if case == "editable-egg-link":
        # setuptools `setup.py develop` / legacy `pip install -e`
        write(os.path.join(sp, "mypkg.egg-link"), "/src/mypkg\n.")
        write(os.path.join(sp, "easy-install.pth"), "/src/mypkg\n")
    elif case == "editable-pth":
        # setuptools >= 64 (PEP 660) editable wheel, "lenient" mode: .pth + finder
        write(os.path.join(sp, "__editable__.mypkg-0.1.pth"),
              "import __editable___mypkg_0_1_finder; __editable___mypkg_0_1_finder.install()")
        write(os.path.join(sp, "__editable___mypkg_0_1_finder.py"), '''\
import sys
from importlib.machinery import ModuleSpec, PathFinder
from importlib.util import spec_from_file_location
from pathlib import Path

MAPPING = {'mypkg': '/src/mypkg/mypkg'}
NAMESPACES = {}
PATH_PLACEHOLDER = '__editable__.mypkg-0.1.finder' + ".__path_hook__"


class _EditableFinder:  # MetaPathFinder
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        for pkg, pkg_path in reversed(list(MAPPING.items())):
            if fullname == pkg or fullname.startswith(f"{pkg}."):
                rest = fullname.replace(pkg, "", 1).strip(".").split(".")
                candidate = Path(pkg_path, *rest)
                for init in (candidate / "__init__.py", candidate.with_suffix(".py")):
                    if init.exists():
                        return spec_from_file_location(fullname, init)
        return None


def install():
    if not any(finder == _EditableFinder for finder in sys.meta_path):
        sys.meta_path.append(_EditableFinder)
''')
    elif case == "editable-direct-url":
        # pip install -e: PEP 610 direct_url.json with dir_info.editable
        di = os.path.join(sp, "mypkg-0.1.dist-info")
        files = {
            "METADATA": b"Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n\n",
            "INSTALLER": b"pip\n",
            "REQUESTED": b"",
            "direct_url.json": json.dumps(
                {"url": "file:///src/mypkg", "dir_info": {"editable": True}}).encode(),
            "top_level.txt": b"mypkg\n",
        }
        rows = []
        for k, v in files.items():
            write(os.path.join(di, k), v)
            rows.append(("mypkg-0.1.dist-info/" + k, record_hash(v), str(len(v))))
        rows.append(("mypkg-0.1.dist-info/RECORD", "", ""))
        write(os.path.join(di, "RECORD"), csv_rows(rows))
    elif case in ("osx", "win"):
        set_platform(python_record(dest), {"osx": "osx-64", "win": "win-64"}[case])
    elif case == "aarch64":
        meta = os.path.join(dest, "conda-meta")
        n = sum(set_platform(os.path.join(meta, f), "linux-aarch64")
                for f in sorted(os.listdir(meta)) if f.endswith(".json"))
        if not n:
            sys.exit("no platform-specific record to change")
    elif case == "missing-file":
        small_package(dest, origin, pyver, "ghost",
                      [("share/ghost/README", "ghost: this file is present\n"),
                       ("lib/libghost.so.1", b"\x7fELF\x02\x01\x01 not really a library\n")])
        os.unlink(os.path.join(dest, "lib", "libghost.so.1"))  # deleted behind conda's back
    elif case == "malformed":
        rec = small_package(dest, origin, pyver, "broken",
                            [("share/broken/README", "broken: record cut short\n")])
        data = read(rec)
        write(rec, data[:len(data) // 2])  # an interrupted write: invalid JSON
    elif case == "partial":
        rec = small_package(dest, origin, pyver, "partial",
                            [("share/partial/README", "partial: record without a name\n")])
        with open(rec) as f:
            obj = json.load(f)
        del obj["name"]
        dump_json(rec, obj)
    else:
        sys.exit("unknown CASE %r (one of %s)" % (case, ", ".join(CASES)))


# ------------------------------------------------------------ replace / bytediff
def cmd_binreplace(path, old, new):
    data = read(path)
    try:
        out = binary_replace(data, old.encode(), new.encode())
    except ValueError as e:
        sys.stderr.write("%s: %s\n" % (path, e))
        sys.exit(1)
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(out)
    os.chmod(path, st.st_mode)


def cmd_textreplace(path, old, new):
    data = read(path)
    st = os.stat(path)
    with open(path, "wb") as f:
        f.write(data.replace(old.encode(), new.encode()))
    os.chmod(path, st.st_mode)


def cmd_bytediff(a, b, old, new):
    da, db, old, new = read(a), read(b), old.encode(), new.encode()
    if len(da) != len(db):
        sys.exit("sizes differ: %d != %d" % (len(da), len(db)))
    spans = [(m.start(), m.end()) for m in re.finditer(re.escape(old) + b"[^\0]*\0", da)]
    diff = [i for i in range(len(da)) if da[i] != db[i]]
    outside = [i for i in diff if not any(s <= i < e for s, e in spans)]
    if outside:
        sys.exit("%d changed bytes outside the prefix strings (first at %d)"
                 % (len(outside), outside[0]))
    for s, e in spans:
        want = binary_replace(da[s:e], old, new)
        if db[s:e] != want:
            sys.exit("string at offset %d is %r, expected %r" % (s, db[s:e], want))
    print("size %d unchanged; %d NUL-terminated strings holding OLD (%d bytes) at offsets "
          "%s hold NEW + NUL padding; %d bytes differ, all inside them"
          % (len(da), len(spans), sum(e - s for s, e in spans),
             ",".join(hex(s) for s, _ in spans), len(diff)))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    {"csource": cmd_csource, "fidelity": cmd_fidelity, "bad": cmd_bad,
     "binreplace": cmd_binreplace, "textreplace": cmd_textreplace,
     "bytediff": cmd_bytediff}[cmd](*args)


if __name__ == "__main__":
    main()
