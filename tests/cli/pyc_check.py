#!/usr/bin/env python3
"""Judge .pyc files the way importlib does, independently of ocilambda's C
code (the tests' peer for issue 20).

  pyc_check.py DIR                 one line per __pycache__/*.pyc under DIR
                                   with its source: "<status> <path>"
  pyc_check.py compare HOST IMAGE  the pycs whose status differs between two
                                   trees (HOST, and IMAGE: its unpacked copy)
                                   as "<path> <host status> -> <image status>",
                                   then one line "N pycs, V valid on the host,
                                   W valid in the image"

status: "valid", or "stale:<why>" (magic, flags, mtime, size, hash, short).
A pyc is checked as importlib's SourceLoader.get_code checks it before use
(Lib/importlib/_bootstrap_external.py: _classify_pyc, _validate_timestamp_pyc,
_validate_hash_pyc): the magic number (importlib.util.MAGIC_NUMBER, for the
bytecode of this python's cache tag; another tag's is not judged on it),
the flags, then for flags 0 the source's int(st_mtime) & 0xFFFFFFFF and
st_size & 0xFFFFFFFF, for flags 0b11 importlib.util.source_hash of the
source's bytes, for flags 0b01 nothing. Pycs whose source is missing
(importlib ignores them) are left out. Symlinks are followed, as import does.
"""
import importlib.util
import os
import struct
import sys

TAG = sys.implementation.cache_tag


def status(pyc, source):
    with open(pyc, "rb") as f:
        head = f.read(16)
    name = os.path.basename(pyc)
    tag = name.split(".")[1] if name.count(".") >= 2 else ""
    if len(head) < 16:
        return "stale:short"
    if tag == TAG and head[:4] != importlib.util.MAGIC_NUMBER:
        return "stale:magic"
    if head[2:4] != b"\r\n":
        return "stale:magic"
    flags = struct.unpack("<I", head[4:8])[0]
    if flags & ~0b11:
        return "stale:flags"
    if flags & 0b1:
        if not flags & 0b10:
            return "valid"
        with open(source, "rb") as f:
            data = f.read()
        return "valid" if importlib.util.source_hash(data) == head[8:16] else "stale:hash"
    st = os.stat(source)
    mtime, size = struct.unpack("<II", head[8:16])
    if mtime != int(st.st_mtime) & 0xFFFFFFFF:
        return "stale:mtime"
    if size != st.st_size & 0xFFFFFFFF:
        return "stale:size"
    return "valid"


def scan(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if os.path.basename(dirpath) != "__pycache__":
            continue
        for n in sorted(filenames):
            if not n.endswith(".pyc") or n.count(".") < 2:
                continue
            source = os.path.join(os.path.dirname(dirpath), n.split(".")[0] + ".py")
            if not os.path.isfile(source):
                continue
            pyc = os.path.join(dirpath, n)
            out[os.path.relpath(pyc, root)] = status(pyc, source)
    return out


def main():
    if len(sys.argv) == 2:
        for path, st in sorted(scan(sys.argv[1]).items()):
            print(st, path)
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        host, image = scan(sys.argv[2]), scan(sys.argv[3])
        for path in sorted(set(host) | set(image)):
            a, b = host.get(path, "absent"), image.get(path, "absent")
            if a != b:
                print(path, a, "->", b)
        print("%d pycs, %d valid on the host, %d valid in the image" % (
            len(host), sum(v == "valid" for v in host.values()),
            sum(v == "valid" for v in image.values())))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
