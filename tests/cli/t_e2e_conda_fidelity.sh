#!/usr/bin/env bash
# Conda prefix fidelity (issue 6): a prefix built at a long CI path is
# relocated to /opt/conda-env while packing; inside the image (umoci unpack,
# then bubblewrap as uid 993 on a read-only root) the compiled-in prefix,
# the entry points and sys.prefix all say /opt/conda-env.
. "$(dirname "$0")/lib.sh"

PYVER=$(cat "$FIXTURES/pyver")
B=$FIXTURES/base-run
P=$FIXTURES/prefix-fidelity
ORIGIN=/home/runner/miniconda3/envs/blog-test-with-a-long-name
make_code "$T/code"
assemble() {
	$OCILAMBDA assemble --base "oci:$B:$PYVER" --code "$T/code" \
		--handler example.lambda_handler "$@"
}
assemble --conda-prefix "$P" --output "oci:$T/out" >/dev/null 2>"$T/warn"
grep -F "share/notes/built-at.txt: not managed by conda and still contains $ORIGIN" "$T/warn" >/dev/null ||
	fail "unmanaged file with the origin reported: $(cat "$T/warn")"
grep -F "share/outside-link -> /etc/hostname points outside the prefix" "$T/warn" >/dev/null ||
	fail "symlink out of the prefix reported"
ok "the report names the unmanaged file and the symlink out of the prefix"

umoci unpack --rootless --image "$T/out:latest" "$T/bundle" >/dev/null
R=$T/bundle/rootfs
run() { run_in "$R" "$@"; }
[ "$(run /opt/conda-env/bin/whereami)" = /opt/conda-env ] || fail "compiled-in prefix: $(run /opt/conda-env/bin/whereami)"
[ "$(run /opt/conda-env/bin/whereami --libdir)" = /opt/conda-env/lib ] || fail "whereami --libdir"
ok "the relocated binary prints /opt/conda-env"
[ "$(run /opt/conda-env/bin/greet)" = "hello from greetpkg" ] || fail "noarch entry point"
[ "$(run /opt/conda-env/bin/pipdemo)" = "pipdemo ok" ] || fail "pip console script"
[ "$(run /opt/conda-env/bin/python -B -c 'import sys; print(sys.prefix)')" = /opt/conda-env ] ||
	fail "sys.prefix"
[ "$(run /var/lang/bin/python$PYVER -B -c 'import sys; print(sys.prefix)')" = /opt/conda-env ] ||
	fail "sys.prefix through the Lambda python"
grep -x "prefix=/opt/conda-env" "$R/opt/conda-env/lib/pkgconfig/whereami.pc" >/dev/null || fail ".pc file"
ok "entry points run, sys.prefix is /opt/conda-env, pkg-config file relocated"

# Nothing but the reported file (and conda's own records) still names the origin.
left=$(cd "$R/opt/conda-env" && grep -rlF "$ORIGIN" . | grep -v '^./conda-meta/' | sort || true)
[ "$left" = "./share/notes/built-at.txt" ] || fail "origin left in: $left"
[ "$(stat -c %s "$R/opt/conda-env/bin/whereami")" = "$(stat -c %s "$P/bin/whereami")" ] ||
	fail "binary size changed"
/usr/bin/python3 "$TD/mk-fidelity-helper.py" bytediff "$P/bin/whereami" "$R/opt/conda-env/bin/whereami" \
	"$ORIGIN" /opt/conda-env || fail "binary differs outside its prefix strings"
ok "only the prefix bytes of the binary changed; no other file keeps the origin"

expect_fail 2 "share/notes/built-at.txt" assemble --conda-prefix "$P" --strict --output "oci:$T/strict"
[ ! -e "$T/strict" ] || fail "output written under --strict"
assemble --conda-prefix "$P" --exclude 'share/notes/*' --exclude '*.h' --output "oci:$T/excl" \
	>/dev/null 2>"$T/warn2"
! grep -F built-at "$T/warn2" >/dev/null || fail "excluded file still reported"
umoci unpack --rootless --image "$T/excl:latest" "$T/b2" >/dev/null
[ ! -e "$T/b2/rootfs/opt/conda-env/share/notes/built-at.txt" ] || fail "--exclude dir/*"
[ ! -e "$T/b2/rootfs/opt/conda-env/include/whereami.h" ] || fail "--exclude *.h"
ok "--strict refuses the unmanaged file; --exclude drops files"
no_litter "$T"
done_testing
