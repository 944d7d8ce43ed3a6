#!/usr/bin/env bash
# Streaming: peak memory does not grow with the size of the prefix. A prefix
# with a 1 GiB file (and a 64 MiB text file that needs relocation) is packed
# with the same bounded buffers as the small fixture.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
cp -a "$FIXTURES/prefix38" "$T/small"
cp -a "$FIXTURES/prefix38" "$T/big"
# Sparse and all zeros: cheap to make and to compress, yet 1 GiB to stream.
truncate -s 1G "$T/big/lib/huge.bin"
# A 64 MiB script whose shebang names the origin: relocated by streaming.
"$PY" - "$T/big/bin/big-script" <<'PYEOF'
import sys
line = b"print('/tmp/build/envs/blog-test')\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"#!/tmp/build/envs/blog-test/bin/python3.8\n")
    f.write(line * ((64 << 20) // len(line)))
PYEOF
make_code "$T/code"

peak_kib() {
	"$PY" - "$@" <<'PYEOF'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PYEOF
}
build() {
	peak_kib $OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$T/$1" --code "$T/code" \
		--handler example.lambda_handler --output "oci:$T/out-$1"
}
small=$(build small)
big=$(build big)
echo "peak RSS: small prefix ${small} KiB, prefix with 1 GiB + 64 MiB files ${big} KiB"
# Bounded buffers: the big build may not need more than the small one plus a
# few MiB of slack, far below the 1 GiB it streamed.
[ "$big" -lt $((small + 8192)) ] || fail "memory grew with the prefix: $small KiB -> $big KiB"
umoci unpack --rootless --image "$T/out-big:latest" "$T/bundle" >/dev/null
[ "$(stat -c %s "$T/bundle/rootfs/opt/conda-env/lib/huge.bin")" = $((1 << 30)) ] || fail "huge file"
head -1 "$T/bundle/rootfs/opt/conda-env/bin/big-script" | grep -cx >/dev/null '#!/opt/conda-env/bin/python3.8' ||
	fail "big script relocated"
! grep -q /tmp/build/envs/blog-test "$T/bundle/rootfs/opt/conda-env/bin/big-script" ||
	fail "origin left in the big script"
ok "peak memory independent of prefix size ($small KiB vs $big KiB)"

# The bound issue 7 sets, 64 MiB, at its worst: zstd at level 9 (zstd's 12)
# with four workers, on data that does not compress (each worker's window,
# tables, job input and output are all full).
cp -a "$FIXTURES/prefix38" "$T/rand"
head -c $((64 << 20)) /dev/urandom >"$T/rand/lib/random.bin"
zstd9=$(OCIL_GZIP_THREADS=4 peak_kib $OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$T/rand" \
	--code "$T/code" --handler example.lambda_handler --output "oci:$T/out-rand" \
	--compression zstd --compression-level 9)
[ "$zstd9" -lt $((64 << 10)) ] || fail "zstd level 9, four workers: peak RSS $zstd9 KiB, over 64 MiB"
ok "zstd level 9 with four workers on incompressible data: $zstd9 KiB, under 64 MiB"
done_testing
