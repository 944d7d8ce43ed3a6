#!/usr/bin/env bash
# Issue 14: what real conda packages and prefixes do, on generated fixtures of the same
# shapes (testdata/mk-conda-shapes.sh): a .conda whose info tarball holds a link to a
# directory and a file (ncurses-6.2-he6710b0_1.conda of Anaconda main does), a path
# paths.json lists and no tarball holds (a warning, an error under --strict), and a
# prefix conda installed at a short path (/tmp/e) relocated to the longer /opt/conda-env
# into the NUL padding conda left. Judged by conda-package-handling's `cph x` (conda's
# own extraction) and umoci.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
S=$T/shapes
bash "$TD/mk-conda-shapes.sh" "$S" 3.8 >/dev/null
make_code "$T/code"
# lock builds: the fixture python (base38, "names" mode) cannot run, so no
# bytecode layer, on purpose (--no-compile; the bytecode has its own tests)
assemble() {
	$OCILAMBDA assemble --base "oci:$B:3.8" --code "$T/code" \
		--handler example.lambda_handler "$@"
}
lock() { assemble --no-compile "$@"; }
unpack() { umoci unpack --rootless --image "$1:latest" "$2" >/dev/null; }
GHOST="ghostpath-1.0-h0_0.tar.bz2: info/paths.json lists share/ghost/gone.txt, which is not in the package"

rc=0
lock --conda-lock "$S/shapes.txt" --pkgs-dir "$S/pkgs" --output "oci:$T/lock" \
	>"$T/digest" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || fail "lock build: exit $rc: $(cat "$T/err")"
grep -Fx "ocilambda: warning: $GHOST; left out" "$T/err" >/dev/null ||
	fail "no warning naming the package and the path: $(cat "$T/err")"
[ "$(grep -c 'warning' "$T/err")" = 1 ] || fail "other warnings: $(cat "$T/err")"
unpack "$T/lock" "$T/lb"
E=$T/lb/rootfs/opt/conda-env
[ "$(readlink "$E/lib/terminfo")" = ../share/terminfo ] || fail "lib/terminfo from the info tarball"
[ "$(cat "$E/lib/terminfo/x/xterm" | tr -d '\0\032\001')" = "xterm terminfo (fixture)" ] ||
	fail "share/terminfo through the link"
grep -x "terminfo=/opt/conda-env/share/terminfo" "$E/etc/termlink.conf" >/dev/null ||
	fail "the info tarball's file, placeholder replaced: $(cat "$E/etc/termlink.conf")"
[ "$(readlink "$E/lib/ghost")" = ../share/ghost ] && [ -f "$E/share/ghost/data.txt" ] ||
	fail "a .tar.bz2 with its link to a directory first and info/ last"
[ ! -e "$E/share/ghost/gone.txt" ] || fail "the missing path was written"
G=$E/conda-meta/ghostpath-1.0-h0_0.json
[ "$(json "$G" 'sorted(j["files"])')" = "['lib/ghost', 'share/ghost/data.txt']" ] ||
	fail "the record lists: $(json "$G" 'j["files"]')"
[ "$(json "$G" 'len(j["paths_data"]["paths"])')" = 2 ] || fail "paths_data lists the missing path"
ok "lock build: the .conda's info-tarball link and file installed, the path no tarball holds warned about and left out of the image and the record"

# the judge: conda's own extraction of each package, placeholders replaced
n=0
for f in "$S"/pkgs/*; do
	name=$(basename "$f")
	cph x "$f" --dest "$T/cph/$name" >/dev/null 2>&1 || fail "cph x $name"
	"$PY" "$TD/mk-pkgs-helper.py" judge "$T/cph/$name" "$E" /opt/conda-env >"$T/judge-$name" ||
		fail "$name: the image differs from cph x"
	n=$((n + 1))
done
[ "$n" = 3 ] || fail "judged $n packages"
grep -Fx "3 files, 2 links as conda extracts them; 0 listed paths absent from the package and from the prefix" \
	"$T/judge-termlink-6.2-h0_1.conda" >/dev/null || fail "termlink: $(cat "$T/judge-termlink-6.2-h0_1.conda")"
grep -Fx "1 files, 1 links as conda extracts them; 1 listed paths absent from the package and from the prefix" \
	"$T/judge-ghostpath-1.0-h0_0.tar.bz2" >/dev/null || fail "ghostpath: $(cat "$T/judge-ghostpath-1.0-h0_0.tar.bz2")"
ok "every path of the three packages is what cph x extracts (bytes, link targets; absent ones absent)"

expect_fail 2 "$S/pkgs/$GHOST" \
	lock --strict --conda-lock "$S/shapes.txt" --pkgs-dir "$S/pkgs" --output "oci:$T/strict"
[ ! -e "$T/strict" ] || fail "output written under --strict"
no_litter "$T"
rc=0
lock --strict --conda-lock "$S/clean.txt" --pkgs-dir "$S/pkgs" --output "oci:$T/clean" \
	>/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || fail "--strict lock build with nothing missing: exit $rc: $(cat "$T/err")"
rc=0
lock --conda-lock "$S/shapes.txt" --pkgs-dir "$S/pkgs" --output "oci:$T/lock2" --progress \
	>"$T/digest2" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || fail "second lock build: exit $rc: $(cat "$T/err")"
grep -q "^ocilambda: conda lock $S/shapes.txt unchanged: .* from the cache" "$T/err" ||
	fail "second build not from the cache: $(cat "$T/err")"
grep -Fx "ocilambda: warning: $GHOST; left out" "$T/err" >/dev/null ||
	fail "a cached build does not repeat the warning: $(cat "$T/err")"
cmp "$T/digest" "$T/digest2" >/dev/null || fail "cached build gives another image"
expect_fail 2 "$S/pkgs/$GHOST" \
	lock --strict --conda-lock "$S/shapes.txt" --pkgs-dir "$S/pkgs" --output "oci:$T/strict"
ok "--strict: the missing path is an error (exit 2, nothing written), also with the layer cached without --strict; the warning comes back from the cache"

# A prefix conda installed at /tmp/e, relocated to /opt/conda-env (longer): the same
# bytes as the same prefix installed at a long path and relocated, and as conda's own
# install at /opt/conda-env of the package file. Its greetpkg record is written as
# mamba 1.5 writes them (paths_data with the package's site-packages/... paths).
[ "$(json "$S/prefix-short/conda-meta/greetpkg-0.1-pyh_0.json" 'j["paths_data"]["paths"][0]["_path"]')" = \
	site-packages/greetpkg-0.1.dist-info/INSTALLER ] || fail "prefix-short's greetpkg record is not mamba's"
for p in short long; do
	rc=0
	assemble --conda-prefix "$S/prefix-$p" --output "oci:$T/$p" >/dev/null 2>"$T/err-$p" || rc=$?
	[ "$rc" = 0 ] || fail "prefix-$p: exit $rc: $(cat "$T/err-$p")"
	unpack "$T/$p" "$T/u-$p"
done
ES=$T/u-short/rootfs/opt/conda-env
EL=$T/u-long/rootfs/opt/conda-env
# (pip's RECORD keeps the hash of bin/pipdemo as pip wrote it, #! and all)
diff -r --no-dereference -x conda-meta -x built-at.txt -x RECORD "$ES" "$EL" >"$T/diff" ||
	fail "relocated from /tmp/e and from a long path differ: $(head -20 "$T/diff")"
cp "$S/prefix-short/pkgs/whereami-1.0-h0_0/bin/whereami" "$T/conda-whereami"
"$PY" "$TD/mk-fidelity-helper.py" binreplace "$T/conda-whereami" \
	"$(json "$S/prefix-short/conda-meta/whereami-1.0-h0_0.json" '[p["prefix_placeholder"] for p in j["paths_data"]["paths"] if p["_path"] == "bin/whereami"][0]')" \
	/opt/conda-env
cmp "$T/conda-whereami" "$ES/bin/whereami" || fail "bin/whereami differs from conda's install at /opt/conda-env"
[ "$("$ES/bin/whereami" --search-path)" = /opt/conda-env/share/whereami:/opt/conda-env/etc/whereami ] ||
	fail "the string holding the prefix twice: $("$ES/bin/whereami" --search-path)"
[ "$("$ES/bin/whereami")" = /opt/conda-env ] || fail "whereami: $("$ES/bin/whereami")"
grep -x "prefix=/opt/conda-env" "$ES/lib/pkgconfig/whereami.pc" >/dev/null || fail "text file"
head -n 1 "$ES/bin/greet" | grep -x "#!/opt/conda-env/bin/python3.8" >/dev/null || fail "entry point"
ok "a prefix installed at /tmp/e (with a mamba-written record) relocates to /opt/conda-env: the bytes of one installed at a long path and relocated, and of conda's install there"

long=/opt/$(printf 'x%.0s' $(seq 251))
expect_fail 2 "$S/prefix-short/bin/whereami: new prefix $long is longer than the placeholder conda recorded (256 > 255 bytes)" \
	assemble --conda-prefix "$S/prefix-short" --prefix-dest "$long" --output "oci:$T/bad"
cp -a "$S/prefix-short" "$T/nopad"
at=$("$PY" - "$T/nopad/bin/whereami" <<'EOF'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
s = b"/tmp/e/share/whereami:/tmp/e/etc/whereami\0"
i = d.index(s) + len(s) - 1  # its NUL
d[i + 101] = ord("X")  # 100 NULs after it, where conda left 2 * (255 - 6)
open(p, "wb").write(bytes(d))
print(i)
EOF
)
expect_fail 2 "$T/nopad/bin/whereami: no room to relocate to /opt/conda-env: the string ending at byte $at holds /tmp/e 2 times and is followed by 100 NULs, where conda leaves 498 (a 255-byte placeholder)" \
	assemble --conda-prefix "$T/nopad" --output "oci:$T/bad"
expect_fail 2 "whereami-1.0-h0_0.conda: bin/whereami: new prefix $long is longer than the placeholder conda recorded (256 > 255 bytes)" \
	$OCILAMBDA assemble --base "oci:$FIXTURES/base-run:$(cat "$FIXTURES/pyver")" --code "$T/code" \
	--handler example.lambda_handler --conda-lock "$FIXTURES/lock/explicit.txt" \
	--pkgs-dir "$FIXTURES/lock/pkgs" --prefix-dest "$long" --output "oci:$T/bad"
[ ! -e "$T/bad" ] || fail "output written"
no_litter "$T"
ok "refused, naming the file and the lengths: a destination longer than the placeholder (prefix and lock builds), padding that is not there"
done_testing
