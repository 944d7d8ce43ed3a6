#!/usr/bin/env python3
"""mk-fillers.py OUT N SIZE: N noarch conda packages (.tar.bz2) for bench/fetch.sh.

fillerNN-1.0-0.tar.bz2 in OUT, each holding share/filler/NN.bin of SIZE bytes that bzip2
cannot shrink (a sha256 stream), laid out like the fixture packages of testdata/mk-pkgs.sh
(whose Package class writes them), and OUT/fillers.txt: their explicit-lock lines under
https://conda.anaconda.org/conda-forge/noarch/ with #md5. Deterministic."""
import hashlib
import importlib.util
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "mkpkgs", os.path.join(HERE, "..", "testdata", "mk-pkgs-helper.py"))
mkpkgs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mkpkgs)


def stream(seed, size):
    out = bytearray()
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    lines = []
    for i in range(n):
        p = mkpkgs.Package("filler%02d" % i, "1.0", "0", subdir="noarch", noarch="generic",
                           summary="bench filler")
        p.add("share/filler/%02d.bin" % i, stream("filler%02d" % i, size))
        path = p.write_tar_bz2(out)
        md5, _ = mkpkgs.digests(path)
        lines.append("%s/noarch/%s#%s\n" % (mkpkgs.CHANNEL, os.path.basename(path), md5))
    with open(os.path.join(out, "fillers.txt"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
