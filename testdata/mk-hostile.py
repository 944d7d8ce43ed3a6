#!/usr/bin/env python3
"""mk-hostile.py BASE_LAYOUT TAG OUT_DIR ESCAPE_DIR

For each hostile layer below, copy the OCI layout BASE_LAYOUT (tag TAG) to
OUT_DIR/<case> with one more layer on top (tag TAG), written with python's
tarfile and edited into the layout by hand (index, manifest, config
diff_ids), never with ocilambda. Names that try to get out of the image aim
at ESCAPE_DIR/<case>-*, which the test then checks was never created.

Cases print as "<case> <what the layer holds>", one a line."""
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import threading

base, tag, out, esc = sys.argv[1:5]
# from the layout root the escape dir is this many levels up, plus margin
UP = "../" * 40


def entry(name, kind="f", data=b"x", mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.mode = mode
    ti.mtime = 0
    if kind == "d":
        ti.type = tarfile.DIRTYPE
        return ti, None
    if kind == "l":
        ti.type, ti.linkname = tarfile.SYMTYPE, link
        return ti, None
    if kind == "h":
        ti.type, ti.linkname = tarfile.LNKTYPE, link
        return ti, None
    if kind == "c":
        ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
        return ti, None
    if kind == "p":
        ti.type = tarfile.FIFOTYPE
        return ti, None
    ti.size = len(data)
    return ti, data


def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def raw_header(name, size_field):
    """A ustar header whose 12-byte size field is given raw (for sizes
    python's tarfile refuses to write)."""
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field
    h[136:148] = b"00000000000\0"
    h[156:157] = b"0"
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def gz(b):
    return gzip.compress(b, compresslevel=9, mtime=0)


def zeros_layer(total, compress):
    """A tar holding one file of `total` zero bytes, compressed with
    compress ("gzip" or "zstd", the zstd command), built in pieces so it
    never sits in memory whole. Returns (blob, diff_id)."""
    ti, _ = entry("var/task/zeros", data=b"")
    ti.size = total
    h = hashlib.sha256()
    if compress == "gzip":
        bio = io.BytesIO()
        out = gzip.GzipFile(fileobj=bio, mode="wb", compresslevel=9, mtime=0)
    else:
        p = subprocess.Popen(["zstd", "-q", "-19", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        res = {}
        t = threading.Thread(target=lambda: res.update(out=p.stdout.read()))
        t.start()
        out = p.stdin

    def put(b):
        h.update(b)
        out.write(b)

    put(ti.tobuf(tarfile.PAX_FORMAT))
    chunk = b"\0" * (1 << 20)
    left = total
    while left > 0:
        n = min(left, len(chunk))
        put(chunk[:n])
        left -= n
    put(b"\0" * 1024)
    out.close()
    if compress == "gzip":
        return bio.getvalue(), "sha256:" + h.hexdigest()
    t.join()
    if p.wait() != 0:
        sys.exit("zstd failed")
    return res["out"], "sha256:" + h.hexdigest()


def cases():
    e = esc.lstrip("/")
    yield "dotdot", "a file named ../../..<escape>", gz(tar([entry(UP + e + "/dotdot-file")]))
    yield "absolute", "a file named with an absolute path", gz(tar([entry(esc + "/absolute-file")]))
    yield "symlink-escape", "a symlink out of the image, then a file through it", gz(tar([
        entry("var/task/out", "l", link=UP + e),
        entry("var/task/out/symlink-file"),
        entry("var/task/abs", "l", link=esc),
        entry("var/task/abs/symlink-abs-file")]))
    yield "symlink-loop", "the python path is a symlink loop", gz(tar([
        entry("var/lang/bin/python3.8", "l", link="python3.8-loop"),
        entry("var/lang/bin/python3.8-loop", "l", link="python3.8")]))
    yield "python-escapes", "the python path is a symlink to ../../..", gz(tar([
        entry("var/lang/bin/python3.8", "l", link=UP + "usr/bin/python3")]))
    yield "hardlink-outside", "a hardlink to ../../etc/passwd", gz(tar([
        entry("var/task/passwd", "h", link=UP + "etc/passwd")]))
    yield "hardlink-missing", "a hardlink to a path no layer has", gz(tar([
        entry("var/task/ghost", "h", link="no/such/file")]))
    yield "devices-setuid", "a char device, a fifo, a setuid and a setgid file", gz(tar([
        entry("var/task/null", "c", mode=0o666),
        entry("var/task/fifo", "p"),
        entry("var/task/suid", data=b"#!/bin/sh\n", mode=0o4755),
        entry("var/task/sgid", data=b"#!/bin/sh\n", mode=0o2755)]))
    yield "duplicates", "the same file three times, then a dir of that name", gz(tar([
        entry("var/task/dup", data=b"1"), entry("var/task/dup", data=b"2"),
        entry("var/task/dup", data=b"3"), entry("var/task/dup2", data=b"x"),
        entry("var/task/dup2", "d")]))
    yield "whiteout-python", "a whiteout of the python the base provides", gz(tar([
        entry("var/lang/bin/.wh.python3.8", data=b"")]))
    yield "opaque-lang", "an opaque marker over /var/lang", gz(tar([
        entry("var/lang/.wh..wh..opq", data=b""), entry("var/lang/README", data=b"gone\n")]))
    yield "whiteout-root", "a whiteout of /var", gz(tar([entry(".wh.var", data=b"")]))
    big = raw_header("var/task/huge", b"\x80" + (1 << 40).to_bytes(11, "big"))
    yield "huge-size", "a 1 TiB file with no data", gz(big + b"\0" * 1024)
    neg = raw_header("var/task/neg", b"\xff" * 12)
    yield "negative-size", "a file of size -1 (base-256)", gz(neg + b"\0" * 1024)
    full = gz(tar([entry("var/task/a", data=os.urandom(40000))]))
    yield "truncated", "a gzip stream cut in half", full[: len(full) // 2]
    yield "garbage", "bytes that are no tar at all", gz(b"PK\x03\x04" + b"\0" * 2000)
    yield "xz", "a tar compressed with xz (not a layer compression)", lzma.compress(
        tar([entry("var/task/x")]))
    yield "long-name", "a 5000-byte entry name", gz(tar([entry("var/task/" + "a/" * 2500 + "f")]))
    yield "root-file", "the image root as a regular file", gz(tar([entry("./", data=b"x")]))
    yield "gzip-zeros", "300 MiB of zeros in a 300 KiB gzip (gzip's highest ratio)", zeros_layer(300 << 20, "gzip")
    yield "zstd-bomb", "1 GiB of zeros in a tiny zstd stream", zeros_layer(1 << 30, "zstd")


def layout_blob(root, digest):
    return os.path.join(root, "blobs", *digest.split(":"))


def put_blob(root, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(layout_blob(root, d), "wb") as f:
        f.write(data)
    return d


def add_layer(root, blob):
    mt = "application/vnd.oci.image.layer.v1.tar+gzip"
    diff = None
    if isinstance(blob, tuple):
        blob, diff = blob
        if not blob.startswith(b"\x1f\x8b"):
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
    idx = json.load(open(os.path.join(root, "index.json")))
    [desc] = [m for m in idx["manifests"]
              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    man = json.load(open(layout_blob(root, desc["digest"])))
    cfg = json.load(open(layout_blob(root, man["config"]["digest"])))
    if diff is None:
        try:
            diff = "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
        except Exception:
            diff = "sha256:" + hashlib.sha256(blob).hexdigest()  # not gzip: no real diff_id
    cfg["rootfs"]["diff_ids"].append(diff)
    craw = json.dumps(cfg).encode()
    man["config"] = dict(man["config"], digest=put_blob(root, craw), size=len(craw))
    man["layers"].append({"mediaType": mt,
                          "digest": put_blob(root, blob), "size": len(blob)})
    mraw = json.dumps(man).encode()
    desc.update(digest=put_blob(root, mraw), size=len(mraw))
    idx["manifests"] = [desc]
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(idx, f)


os.makedirs(out, exist_ok=True)
for name, what, blob in cases():
    dst = os.path.join(out, name)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(base, dst)
    add_layer(dst, blob)
    print(name, what)
