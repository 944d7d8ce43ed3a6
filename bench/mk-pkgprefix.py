#!/usr/bin/env python3
"""Give the bench prefix one conda-meta record per package, and bump one.

    mk-pkgprefix.py split PREFIX PYVER PYFULL [--unowned NAME ...]
    mk-pkgprefix.py bump PREFIX NAME TAG
    mk-pkgprefix.py list PREFIX

The bench prefix (bench/incremental.sh) is Debian's installed python tree:
lib/python3.X (the standard library), lib/python3/dist-packages (pandas,
scipy, scikit-learn, ...), lib/x86_64-linux-gnu (shared libraries) and
bin/python3.X. `split` cuts it into plausible packages and writes the
records conda would write for them:

  - python: bin/python3.X, bin/python and everything under lib/python3.X;
  - dist-packages: one package per distribution, named after its
    *.egg-info / *.dist-info (version from there too); a top-level module,
    *.so extension, *-stubs directory or *.pth file belongs to the
    distribution whose top_level.txt names it, or whose normalized name it
    has, else to a package named after it; __pycache__/<stem>.*.pyc
    belongs with <stem>.py;
  - lib/x86_64-linux-gnu: one package per library, the file name up to
    ".so" without a trailing "-<version>" (libfoo-2.0.so.0.1 -> libfoo),
    the version from the numbers after ".so"; other files (crt1.o ...) by
    their name up to the first ".".

Packages named with --unowned get no record, as pip leaves what it
installs; conda-meta/history is owned by no record either.

A record is conda-meta/<name>-<version>-<build>.json with name, version,
build, build_number, channel, subdir, fn, url, md5 (of the name: there is
no tarball), depends, license, files, paths_data (paths_version 1; _path,
path_type hardlink or softlink, sha256 and size_in_bytes of the file as
it is), link, requested_spec, size, timestamp; keys sorted, two-space
indented, as conda writes them. Directories are not listed (conda lists
none for these packages).

`bump` plays a dependency bump of package NAME: every .py file it owns gets
a line "# bumped to TAG" appended, and its record is replaced by one of
version <version>.TAG (new file name, new sha256 and sizes). `list`
prints "<bytes> <files> <name>" per package, biggest first.
"""
import hashlib
import json
import os
import re
import sys

CHANNEL = "https://conda.anaconda.org/bench"


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_under(prefix, rel):
    """Every file and symlink below prefix/rel (rel itself if it is one), sorted."""
    top = os.path.join(prefix, rel)
    if os.path.islink(top) or not os.path.isdir(top):
        return [rel]
    out = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for d in dirs:
            p = os.path.join(root, d)
            if os.path.islink(p):
                out.append(os.path.relpath(p, prefix))
        for f in sorted(files):
            out.append(os.path.relpath(os.path.join(root, f), prefix))
    return sorted(out)


def dist_info(sp, entry):
    """(name, version, top-level modules) of a *.egg-info/*.dist-info entry, or None."""
    m = re.match(r"^(.+?)-([0-9][^-]*?)(?:-py[0-9.]+)?\.(egg-info|dist-info)$", entry)
    if not m:
        return None
    name, version = m.group(1), m.group(2)
    tops = []
    tl = os.path.join(sp, entry, "top_level.txt")
    if os.path.isfile(tl):
        with open(tl, encoding="utf-8", errors="replace") as f:
            tops = [line.strip() for line in f if line.strip()]
    return name, version, tops


def module_stem(entry):
    """'numpy' for numpy, numpy.py, numpy.cpython-311-x86_64-linux-gnu.so, numpy-stubs."""
    for suffix in (".py", ".pth"):
        if entry.endswith(suffix):
            return entry[: -len(suffix)]
    if ".cpython-" in entry or entry.endswith(".so"):
        return entry.split(".", 1)[0]
    if entry.endswith("-stubs"):
        return entry[: -len("-stubs")]
    return entry


def split_packages(prefix, pyver, pyfull):
    """{name: {"version", "build", "paths": [rel...]}}"""
    pkgs = {}

    def add(name, version, build, rels):
        p = pkgs.setdefault(name, {"version": version, "build": build, "paths": []})
        p["paths"].extend(rels)

    # python itself
    rels = [r for r in ("bin/python" + pyver, "bin/python") if os.path.lexists(os.path.join(prefix, r))]
    rels += files_under(prefix, "lib/python" + pyver)
    add("python", pyfull, "h_bench_0_cpython", rels)

    # dist-packages
    sp_rel = "lib/python3/dist-packages"
    sp = os.path.join(prefix, sp_rel)
    entries = sorted(os.listdir(sp)) if os.path.isdir(sp) else []
    dists = {}  # normalized name -> (name, version)
    owner_of_top = {}
    for e in entries:
        d = dist_info(sp, e)
        if d is None:
            continue
        name, version, tops = d
        key = norm(name)
        dists[key] = (key, version)
        owner_of_top[e] = key
        for t in tops:
            owner_of_top.setdefault(t, key)
    pyc_owner_later = []
    for e in entries:
        if e == "__pycache__":
            continue
        if e in owner_of_top and owner_of_top[e] in dists and e.endswith(("egg-info", "dist-info")):
            key = owner_of_top[e]
        else:
            stem = module_stem(e)
            key = owner_of_top.get(stem)
            if key is None and norm(stem) in dists:
                key = norm(stem)
            if key is None and e.endswith(".pth"):
                lead = norm(e.split("-", 1)[0])
                key = lead if lead in dists else None
            if key is None:
                key = norm(stem.lstrip("_")) or norm(stem)
                dists.setdefault(key, (key, "0.0"))
        name, version = dists[key]
        add(name, version, "py_0", files_under(prefix, sp_rel + "/" + e))
    # __pycache__ of top-level modules: with their source
    cache = os.path.join(sp, "__pycache__")
    if os.path.isdir(cache):
        by_source = {}
        for name, p in pkgs.items():
            for r in p["paths"]:
                if r.startswith(sp_rel + "/") and r.count("/") == 3 and r.endswith(".py"):
                    by_source[os.path.basename(r)[:-3]] = name
        for f in sorted(os.listdir(cache)):
            stem = f.split(".", 1)[0]
            rel = sp_rel + "/__pycache__/" + f
            name = by_source.get(stem)
            if name is None:
                pyc_owner_later.append(rel)
            else:
                pkgs[name]["paths"].append(rel)

    # shared libraries
    libdir_rel = "lib/x86_64-linux-gnu"
    libdir = os.path.join(prefix, libdir_rel)
    for e in sorted(os.listdir(libdir)) if os.path.isdir(libdir) else []:
        m = re.match(r"^(.+?)\.so(?:\.([0-9][0-9.]*))?$", e)
        if m:
            base, version = m.group(1), m.group(2) or "1.0"
            base = re.sub(r"-[0-9][0-9.]*$", "", base)
        else:
            base, version = e.split(".", 1)[0], "1.0"
        name = norm(base)
        if name == "python":
            name = "python-libs"
        add(name, version, "h_bench_0", files_under(prefix, libdir_rel + "/" + e))
    for p in pkgs.values():
        p["paths"] = sorted(set(p["paths"]))
    return pkgs


def record(prefix, name, pkg):
    version, build = pkg["version"], pkg["build"]
    dist = "%s-%s-%s" % (name, version, build)
    paths, total = [], 0
    for rel in pkg["paths"]:
        full = os.path.join(prefix, rel)
        if os.path.islink(full):
            paths.append({"_path": rel, "path_type": "softlink",
                          "sha256": hashlib.sha256(os.readlink(full).encode()).hexdigest(),
                          "size_in_bytes": len(os.readlink(full))})
        else:
            size = os.path.getsize(full)
            total += size
            paths.append({"_path": rel, "path_type": "hardlink", "sha256": sha256_of(full),
                          "size_in_bytes": size})
    subdir = "noarch" if build == "py_0" else "linux-64"
    return dist, {
        "arch": None if subdir == "noarch" else "x86_64",
        "build": build,
        "build_number": 0,
        "channel": CHANNEL + "/" + subdir,
        "constrains": [],
        "depends": [] if name == "python" else ["python >=3.11"],
        "extracted_package_dir": "/opt/conda/pkgs/" + dist,
        "features": "",
        "files": list(pkg["paths"]),
        "fn": dist + ".conda",
        "license": "BSD-3-Clause",
        "link": {"source": "/opt/conda/pkgs/" + dist, "type": 1},
        "md5": hashlib.md5(dist.encode()).hexdigest(),
        "name": name,
        "package_tarball_full_path": "/opt/conda/pkgs/" + dist + ".conda",
        "paths_data": {"paths": paths, "paths_version": 1},
        "platform": None if subdir == "noarch" else "linux",
        "requested_spec": "",
        "sha256": hashlib.sha256(dist.encode()).hexdigest(),
        "size": total // 3,
        "subdir": subdir,
        "timestamp": 1700000000000,
        "track_features": "",
        "url": "%s/%s/%s.conda" % (CHANNEL, subdir, dist),
        "version": version,
    }


def write_record(prefix, dist, rec):
    path = os.path.join(prefix, "conda-meta", dist + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(rec, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def records(prefix):
    meta = os.path.join(prefix, "conda-meta")
    out = []
    for f in sorted(os.listdir(meta)):
        if f.endswith(".json"):
            with open(os.path.join(meta, f)) as fh:
                out.append((f, json.load(fh)))
    return out


def cmd_split(prefix, pyver, pyfull, unowned):
    meta = os.path.join(prefix, "conda-meta")
    os.makedirs(meta, exist_ok=True)
    for f in os.listdir(meta):
        if f.endswith(".json"):
            os.unlink(os.path.join(meta, f))
    pkgs = split_packages(prefix, pyver, pyfull)
    n = files = 0
    for name in sorted(pkgs):
        if name in unowned:
            continue
        dist, rec = record(prefix, name, pkgs[name])
        write_record(prefix, dist, rec)
        n += 1
        files += len(rec["files"])
    with open(os.path.join(meta, "history"), "w") as f:
        f.write("==> 2023-11-14 22:13:20 <==\n# cmd: bench/mk-pkgprefix.py split\n")
        for name in sorted(pkgs):
            if name not in unowned:
                p = pkgs[name]
                f.write("+bench::%s-%s-%s\n" % (name, p["version"], p["build"]))
    print("%d records, %d files owned" % (n, files))


def cmd_bump(prefix, name, tag):
    for f, rec in records(prefix):
        if rec.get("name") != name:
            continue
        changed = 0
        for rel in rec["files"]:
            full = os.path.join(prefix, rel)
            if rel.endswith(".py") and os.path.isfile(full) and not os.path.islink(full):
                with open(full, "a") as fh:
                    fh.write("# bumped to %s\n" % tag)
                changed += 1
        if changed == 0:
            sys.exit("bump: %s owns no .py file" % name)
        os.unlink(os.path.join(prefix, "conda-meta", f))
        pkg = {"version": "%s.%s" % (rec["version"], tag), "build": rec["build"],
               "paths": rec["files"]}
        dist, new = record(prefix, name, pkg)
        write_record(prefix, dist, new)
        print("%s: %d .py files changed, record %s" % (name, changed, dist))
        return
    sys.exit("bump: no record named %s" % name)


def cmd_list(prefix):
    rows = []
    for f, rec in records(prefix):
        size = sum(p.get("size_in_bytes", 0) for p in rec["paths_data"]["paths"])
        rows.append((size, len(rec["files"]), rec["name"]))
    for size, n, name in sorted(rows, key=lambda r: (-r[0], r[2])):
        print(size, n, name)


def main(argv):
    if len(argv) >= 4 and argv[0] == "split":
        unowned = set()
        rest = argv[4:]
        while rest:
            if rest[0] != "--unowned" or len(rest) < 2:
                sys.exit(__doc__)
            unowned.add(norm(rest[1]))
            rest = rest[2:]
        cmd_split(argv[1], argv[2], argv[3], unowned)
    elif len(argv) == 4 and argv[0] == "bump":
        cmd_bump(argv[1], argv[2], argv[3])
    elif len(argv) == 2 and argv[0] == "list":
        cmd_list(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
