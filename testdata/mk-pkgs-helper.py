#!/usr/bin/env python3
"""Helper of mk-pkgs.sh (stdlib only; the zstd CLI for .conda members).

  pkgs OUT PREFIX PYVER WHEREAMI_ELF
      write into OUT/pkgs real-format conda packages, into OUT/wheels a wheel, and the
      locks OUT/explicit.txt and OUT/conda-lock.yml naming them (see mk-pkgs.sh).
  shapes OUT PYVER PYFULL
      write into OUT/pkgs packages with the shapes of real ones (see mk-conda-shapes.sh)
      and the explicit locks OUT/shapes.txt and OUT/clean.txt.
  judge EXTRACTED PREFIX DEST
      compare a package as `cph x` extracted it with what was installed at PREFIX for
      DEST (exit 1 naming the paths that differ).

Packages are built the way conda-build / conda-package-handling lay them out: a
.tar.bz2 holds info/ (first) and the payload; a .conda is a zip (stored, not deflated)
of metadata.json, pkg-<dist>.tar.zst and info-<dist>.tar.zst. Everything is
deterministic (fixed mtimes, sorted members), so the hashes are stable.
"""

import base64
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "fidelity", os.path.join(HERE, "mk-fidelity-helper.py"))
fidelity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fidelity)

CHANNEL = fidelity.CHANNEL
MTIME = fidelity.TIMESTAMP // 1000
TEXT_PLACEHOLDER = fidelity.TEXT_PLACEHOLDER


class Package(fidelity.Package):
    """fidelity.Package plus symlinks and the two archive formats."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.links = []  # (path, target)
        self.hardlinks = {}  # path -> the file it is a hardlink to

    def link(self, path, target):
        self.links.append((path, target))

    def hardlink(self, path, target):
        """path: a second name of the file target (added before), as tarfile stores
        files with one inode: a LNKTYPE member without data."""
        for p, d, m, ph, fm in list(self.files):
            if p == target:
                self.add(path, d, m, ph, fm)
        self.hardlinks[path] = target

    def paths_json(self):
        pj = super().paths_json()
        for path, _ in self.links:
            pj["paths"].append({"_path": path, "path_type": "softlink",
                                "sha256": fidelity.sha256_bytes(b""), "size_in_bytes": 0})
        pj["paths"].sort(key=lambda e: e["_path"])
        return pj

    def info_files(self):
        info = super().info_files()
        names = sorted([p for p, *_ in self.files] + [p for p, _ in self.links])
        info["info/files"] = "".join(p + "\n" for p in names).encode()
        return info

    def _add_members(self, tf, members):
        for m in sorted(members, key=lambda m: m[0]):
            path, data, mode, target = m
            ti = tarfile.TarInfo(path)
            ti.mtime, ti.uname, ti.gname = MTIME, "", ""
            if path in self.hardlinks and target is None:
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, self.hardlinks[path], mode
                tf.addfile(ti)
            elif target is not None:
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), mode
                tf.addfile(ti, io.BytesIO(data))

    def payload(self):
        return ([(p, d, m, None) for p, d, m, _, _ in self.files]
                + [(p, b"", 0, t) for p, t in self.links])

    def info_members(self):
        return [(k, v, 0o644, None) for k, v in self.info_files().items()]

    def write_tar_bz2(self, out_dir):
        path = os.path.join(out_dir, self.dist + ".tar.bz2")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            self._add_members(tf, self.info_members())  # info/ first, as conda-build does
            self._add_members(tf, self.payload())
        import bz2
        with open(path, "wb") as f:
            f.write(bz2.compress(buf.getvalue(), 9))
        return path

    def _tar_zst(self, members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            self._add_members(tf, members)
        return subprocess.run(["zstd", "-q", "-c", "-10", "--no-check"], input=buf.getvalue(),
                              stdout=subprocess.PIPE, check=True).stdout

    def write_conda(self, out_dir):
        path = os.path.join(out_dir, self.dist + ".conda")
        members = [
            ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
            ("pkg-%s.tar.zst" % self.dist, self._tar_zst(self.payload())),
            ("info-%s.tar.zst" % self.dist, self._tar_zst(self.info_members())),
        ]
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
            for name, data in members:
                zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                zi.external_attr = 0o644 << 16
                z.writestr(zi, data)
        return path


def python_package(prefix, pyver):
    """python itself, from the runnable fixture prefix (mk-prefix.sh run): bin/pythonX.Y,
    its stdlib and shared libraries; site-packages holds only conda's README."""
    full = subprocess.run(["/usr/bin/python%s" % pyver, "-S", "-c",
                           "import platform; print(platform.python_version())"],
                          stdout=subprocess.PIPE, check=True, text=True).stdout.strip()
    p = Package("python", full, "h0_0_cpython", depends=["libgcc-ng >=12"],
                license="Python-2.0", summary="python from Debian's build (fixture)")
    std = "lib/python%s" % pyver
    skip = {std + "/site-packages", std + "/dist-packages", "lib/fixture-binary.dat"}
    p.add("bin/python" + pyver, fidelity.read(os.path.join(prefix, "bin", "python" + pyver)),
          0o755)
    p.link("bin/python", "python" + pyver)
    p.link("bin/python3", "python" + pyver)
    for top in sorted(os.listdir(os.path.join(prefix, "lib"))):
        rel = "lib/" + top
        full_path = os.path.join(prefix, rel)
        if rel in skip or (not top.startswith("lib") and rel != std):
            continue
        if rel == std:
            for root, dirs, files in os.walk(full_path):
                dirs.sort()
                for name in sorted(files + [d for d in dirs
                                            if os.path.islink(os.path.join(root, d))]):
                    f = os.path.join(root, name)
                    r = os.path.relpath(f, prefix)
                    if r in skip or "/__pycache__/" in r:
                        continue
                    if os.path.islink(f):
                        p.link(r, os.readlink(f))
                    else:
                        p.add(r, fidelity.read(f), os.stat(f).st_mode & 0o777)
                dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))
                           and os.path.join(os.path.relpath(root, prefix), d) not in skip]
        elif os.path.isfile(full_path):
            p.add(rel, fidelity.read(full_path), 0o755)
    p.add(std + "/site-packages/README.txt",
          "This directory exists so that 3rd party packages can be installed here.\n")
    # Debian's site.py looks in dist-packages (see REFERENCE.md)
    p.link(std + "/dist-packages", "site-packages")
    return p


def hellotool_package():
    p = Package("hellotool", "1.0", "h0_0",
                summary="a script holding conda's text placeholder (fixture)")
    p.add("bin/hellotool", "#!/bin/sh\n# hellotool: conda replaces the prefix below at "
          "install time\necho \"hellotool installed at %s\"\n" % TEXT_PLACEHOLDER,
          0o755, TEXT_PLACEHOLDER, "text")
    p.link("bin/hello", "hellotool")
    p.hardlink("bin/hellotool-again", "bin/hellotool")
    p.add("share/common/owner.txt", "hellotool\n")
    return p


def whereami_package(elf):
    p = fidelity.whereami_package(elf)
    q = Package(p.name, p.version, p.build, depends=p.depends, summary=p.summary)
    q.files = list(p.files)
    q.add("share/common/owner.txt", "whereami\n")  # also in hellotool: later wins
    return q


def greetpkg_package():
    p = fidelity.greetpkg_package()
    q = Package(p.name, p.version, p.build, subdir=p.subdir, noarch=p.noarch,
                depends=p.depends, entry_points=p.entry_points, summary=p.summary)
    q.files = list(p.files)
    return q


def wheel(out_dir):
    """wheeldemo-1.0-py3-none-any.whl: pure Python with a console script."""
    di = "wheeldemo-1.0.dist-info/"
    files = {
        "wheeldemo/__init__.py": b'"""wheeldemo: wheel fixture."""\n\n\n'
                                 b'def main():\n    print("wheeldemo ok")\n    return 0\n',
        di + "METADATA": b"Metadata-Version: 2.1\nName: wheeldemo\nVersion: 1.0\n"
                         b"Summary: pure-Python wheel with a console script (fixture)\n\n",
        di + "WHEEL": b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.38.4)\n"
                      b"Root-Is-Purelib: true\nTag: py3-none-any\n\n",
        di + "entry_points.txt": b"[console_scripts]\nwheeldemo = wheeldemo:main\n",
        di + "top_level.txt": b"wheeldemo\n",
    }
    rows = [(k, fidelity.record_hash(v), str(len(v))) for k, v in files.items()]
    rows.append((di + "RECORD", "", ""))
    files[di + "RECORD"] = fidelity.csv_rows(rows)
    path = os.path.join(out_dir, "wheeldemo-1.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, files[name])
    return path


def expect_install(built, dest, prefix, pyver):
    """What conda would link into PREFIX for these packages (lock order, later wins),
    written to DEST: placeholders replaced (conda's text and binary rules), noarch:
    python paths mapped, entry points from conda's template, hardlinks as copies.
    conda-meta and .pyc files are left out (see the README's documented differences)."""
    sp = "lib/python%s/site-packages" % pyver

    def put(rel, data=None, mode=0o644, link=None):
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.remove(path)
        if link is not None:
            os.symlink(link, path)
        else:
            fidelity.write(path, data, mode)

    for p, _ in built:
        def target(path):
            if p.noarch == "python" and path.startswith("site-packages/"):
                return sp + path[len("site-packages"):]
            if p.noarch == "python" and path.startswith("python-scripts/"):
                return "bin" + path[len("python-scripts"):]
            return path
        for path, data, mode, ph, fm in p.files:
            if ph and fm == "text":
                data = data.replace(ph.encode(), prefix.encode())
            elif ph:
                data = fidelity.binary_replace(data, ph.encode(), prefix.encode())
            put(target(path), data, mode)
        for path, link in p.links:
            put(target(path), link=link)
        for ep in p.entry_points:
            cmd, spec = [x.strip() for x in ep.split("=", 1)]
            module, func = spec.split(":")
            script = (fidelity.conda_shebang("%s/bin/python%s" % (prefix, pyver))
                      + fidelity.entry_point_script(fidelity.CONDA_ENTRY_POINT, module, func))
            put("bin/" + cmd, script.encode(), 0o755)


def digests(path):
    data = fidelity.read(path)
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def cmd_pkgs(out, prefix, pyver, elf):
    pkgs, wheels = os.path.join(out, "pkgs"), os.path.join(out, "wheels")
    os.makedirs(pkgs)
    os.makedirs(wheels)
    built = [  # lock order
        (python_package(prefix, pyver), "conda"),
        (hellotool_package(), "tar.bz2"),
        (whereami_package(fidelity.read(elf)), "conda"),
        (greetpkg_package(), "tar.bz2"),
    ]
    expect_install(built, os.path.join(out, "expected"), "/opt/conda-env", pyver)
    entries = []
    for p, fmt in built:
        path = p.write_conda(pkgs) if fmt == "conda" else p.write_tar_bz2(pkgs)
        md5, sha = digests(path)
        url = "%s/%s/%s" % (CHANNEL, p.subdir, os.path.basename(path))
        entries.append((p, url, md5, sha))
    with open(os.path.join(out, "explicit.txt"), "w") as f:
        f.write("# This file may be used to create an environment using:\n"
                "# $ conda create --name <env> --file <this file>\n"
                "# platform: linux-64\n@EXPLICIT\n")
        for i, (p, url, md5, sha) in enumerate(entries):
            # conda's --md5 form, and the newer #sha256: form for one entry
            f.write("%s#%s\n" % (url, "sha256:" + sha if i == 2 else md5))
    whl = wheel(wheels)
    _, whl_sha = digests(whl)
    with open(os.path.join(out, "conda-lock.yml"), "w") as f:
        f.write("# generated by mk-pkgs-helper.py in conda-lock's version 1 format\n"
                "version: 1\nmetadata:\n  content_hash:\n    linux-64: %s\n"
                "  channels:\n  - url: conda-forge\n    used_env_vars: []\n"
                "  platforms:\n  - linux-64\n  - osx-64\n  sources:\n  - environment.yml\n"
                "package:\n" % ("0" * 64))
        for p, url, md5, sha in entries:
            deps = "".join("    %s: '%s'\n" % tuple((d.split(" ", 1) + [""])[:2])
                           for d in p.depends)
            f.write("- name: %s\n  version: %s\n  manager: conda\n  platform: linux-64\n"
                    "  dependencies:%s\n%s  url: %s\n  hash:\n    md5: %s\n    sha256: %s\n"
                    "  category: main\n  optional: false\n"
                    % (p.name, p.version, "" if deps else " {}", deps, url, md5, sha))
        # the other platform's entries are not for this build
        f.write("- name: python\n  version: 3.11.0\n  manager: conda\n  platform: osx-64\n"
                "  dependencies: {}\n  url: %s/osx-64/python-3.11.0-h_0_cpython.conda\n"
                "  hash:\n    md5: %s\n    sha256: %s\n  category: main\n  optional: false\n"
                % (CHANNEL, "1" * 32, "1" * 64))
        f.write("- name: wheeldemo\n  version: '1.0'\n  manager: pip\n  platform: linux-64\n"
                "  dependencies: {}\n  url: https://files.pythonhosted.org/packages/%s\n"
                "  hash:\n    sha256: %s\n  category: main\n  optional: false\n"
                % (os.path.basename(whl), whl_sha))


# ------------------------------------------------------------ shapes (issue 14)
class ShapePackage(Package):
    """A package with the layouts real ones have and mk-pkgs' do not: members in the
    .conda's info tarball outside info/, paths.json entries no tarball holds, and a
    .tar.bz2 whose members come in another order than conda-build's."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.in_info = set()  # paths shipped in the info tarball (.conda)
        self.missing = []  # listed in paths.json, shipped nowhere
        self.info_last = False  # .tar.bz2: info/ after the payload

    def paths_json(self):
        pj = super().paths_json()
        for path in self.missing:
            pj["paths"].append({"_path": path, "path_type": "hardlink",
                                "sha256": fidelity.sha256_bytes(b"gone"), "size_in_bytes": 4})
        pj["paths"].sort(key=lambda e: e["_path"])
        return pj

    def write_tar_bz2(self, out_dir):
        path = os.path.join(out_dir, self.dist + ".tar.bz2")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            # payload unsorted (a link to a directory before what it points at), info/
            # last: what the layout of a .tar.bz2 does not promise
            members = [m for m in self.payload()]
            members.sort(key=lambda m: (m[3] is None, m[0]))
            parts = [members, self.info_members()]
            for group in (parts[::-1] if not self.info_last else parts):
                for m in group:
                    self._add_members(tf, [m])
        import bz2
        with open(path, "wb") as f:
            f.write(bz2.compress(buf.getvalue(), 9))
        return path

    def write_conda(self, out_dir):
        """As conda-package-handling wrote ncurses-6.2-he6710b0_1.conda (Anaconda main,
        2020): an empty metadata.json, then info-<dist>.tar.zst, then pkg-<dist>.tar.zst;
        the info tarball also holds the payload paths in in_info."""
        path = os.path.join(out_dir, self.dist + ".conda")
        payload = self.payload()
        info = self.info_members() + [m for m in payload if m[0] in self.in_info]
        pkg = [m for m in payload if m[0] not in self.in_info]
        members = [
            ("metadata.json", b""),
            ("info-%s.tar.zst" % self.dist, self._tar_zst(info)),
            ("pkg-%s.tar.zst" % self.dist, self._tar_zst(pkg)),
        ]
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
            for name, data in members:
                zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                zi.external_attr = 0o644 << 16
                z.writestr(zi, data)
        return path


def termlink_package():
    """ncurses' shape: the link lib/terminfo -> ../share/terminfo (a directory the pkg
    tarball fills, with relative links inside it, as share/terminfo/Q/Q310-vip-w ->
    ../v/vip-w) sits in the info tarball, and so does a file with a text placeholder."""
    p = ShapePackage("termlink", "6.2", "h0_1", summary="ncurses' layout (fixture)")
    p.add("share/terminfo/v/vt100", b"\x1a\x01vt100 terminfo (fixture)\0", 0o644)
    p.add("share/terminfo/x/xterm", b"\x1a\x01xterm terminfo (fixture)\0", 0o644)
    p.link("share/terminfo/x/xterm-old", "../v/vt100")
    p.link("lib/terminfo", "../share/terminfo")
    p.add("etc/termlink.conf", "terminfo=%s/share/terminfo\n" % TEXT_PLACEHOLDER, 0o644,
          TEXT_PLACEHOLDER, "text")
    p.in_info = {"lib/terminfo", "etc/termlink.conf"}
    return p


def ghostpath_package():
    """A .tar.bz2 whose paths.json lists a file it does not ship (conda warns, with its
    default safety_checks: warn), its info/ after the payload and a link to a directory
    before the directory's files."""
    p = ShapePackage("ghostpath", "1.0", "h0_0", summary="a path no tarball holds (fixture)")
    p.link("lib/ghost", "../share/ghost")
    p.add("share/ghost/data.txt", "ghost data\n")
    p.missing = ["share/ghost/gone.txt"]
    p.info_last = True
    return p


def tiny_python_package(pyver, pyfull):
    """python as mk-prefix.sh names mode has it (not runnable): enough for a lock."""
    p = ShapePackage("python", pyfull, "h0_0_fixture", summary="names-mode python (fixture)")
    p.add("bin/python" + pyver, "echo 'fixture python (names mode) cannot run' >&2\nexit 127\n",
          0o755)
    p.link("bin/python", "python" + pyver)
    p.add("lib/python%s/os.py" % pyver, "# landmark of the fixture stdlib\n")
    return p


def cmd_shapes(out, pyver, pyfull):
    pkgs = os.path.join(out, "pkgs")
    os.makedirs(pkgs, exist_ok=True)
    built = [(tiny_python_package(pyver, pyfull), "tar.bz2"),
             (termlink_package(), "conda"),
             (ghostpath_package(), "tar.bz2")]
    lines = []
    for p, fmt in built:
        path = p.write_conda(pkgs) if fmt == "conda" else p.write_tar_bz2(pkgs)
        md5, _ = digests(path)
        lines.append("%s/%s/%s#%s\n" % (CHANNEL, p.subdir, os.path.basename(path), md5))
    head = "# platform: linux-64\n@EXPLICIT\n"
    with open(os.path.join(out, "shapes.txt"), "w") as f:
        f.write(head + "".join(lines))
    with open(os.path.join(out, "clean.txt"), "w") as f:  # nothing missing
        f.write(head + "".join(lines[:2]))


def cmd_judge(extracted, prefix, dest):
    """Compare what ocilambda installed at PREFIX (an unpacked image's DEST) with a
    package as `cph x` extracted it into EXTRACTED (conda's own extraction): every path
    its info/paths.json lists that the extraction holds is in PREFIX with the same link
    target, or the same bytes once the placeholder is replaced by DEST (conda's text and
    binary rules); every path the extraction lacks is absent. Prints a summary."""
    with open(os.path.join(extracted, "info", "paths.json")) as f:
        paths = json.load(f)["paths"]
    files = links = absent = 0
    bad = []
    for e in paths:
        src, got = os.path.join(extracted, e["_path"]), os.path.join(prefix, e["_path"])
        if not os.path.lexists(src):
            absent += 1
            if os.path.lexists(got):
                bad.append("%s: not in the package, but installed" % e["_path"])
        elif os.path.islink(src):
            links += 1
            if not os.path.islink(got) or os.readlink(got) != os.readlink(src):
                bad.append("%s: link differs" % e["_path"])
        elif os.path.isfile(src):
            files += 1
            data, ph = fidelity.read(src), e.get("prefix_placeholder")
            if ph and e.get("file_mode", "text") == "text":
                data = data.replace(ph.encode(), dest.encode())
            elif ph:
                data = fidelity.binary_replace(data, ph.encode(), dest.encode())
            if os.path.islink(got) or not os.path.isfile(got) or fidelity.read(got) != data:
                bad.append("%s: content differs" % e["_path"])
    if bad:
        sys.exit("\n".join(bad))
    print("%d files, %d links as conda extracts them; %d listed paths absent from the "
          "package and from the prefix" % (files, links, absent))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    {"pkgs": cmd_pkgs, "shapes": cmd_shapes, "judge": cmd_judge}[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
