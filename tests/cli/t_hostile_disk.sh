#!/usr/bin/env bash
# A full disk: small tmpfs mounts (in a user + mount namespace, so no root is
# needed) as the output directory, the blob cache and pull's output. Every
# size from too small for anything to just short of enough: the build either
# succeeds or fails with exit 5 and "No space left on device"; a failure
# leaves no half-written blob, no staging directory and no new output, and
# an existing output on that filesystem stays as it was.
if [ -z "${OCIL_IN_USERNS:-}" ]; then
	if ! unshare -r -m true 2>/dev/null; then
		echo "SKIP: user namespaces are not available (unshare -r -m)"
		exit 77
	fi
	OCIL_IN_USERNS=1 exec unshare -r -m bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
. "$SRCDIR/tests/registry/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
registry_start reg
registry_seed reg "oci:$B:3.8" lambda/python:3.8
S=$T/small
mkdir -p "$S"

small() { # KiB: a fresh tmpfs of that size at $S
	umount "$S" 2>/dev/null || true
	mount -t tmpfs -o size="$1"k tmpfs "$S" || fail "mount tmpfs"
}
build() { # BASE OUT CACHE
	XDG_CACHE_HOME=$3 $OCILAMBDA assemble --base "$1" --conda-prefix "$P" --code "$T/code" \
		--handler example.lambda_handler --output "oci:$2:latest"
}
# full_or_ok WHAT CMD...: CMD succeeds, or fails with exit 5 naming the full
# disk; sets $full to 1 when it failed.
full_or_ok() {
	local what=$1 rc=0
	shift
	full=0
	"$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
	[ "$rc" = 0 ] && return 0
	full=1
	[ "$rc" = 5 ] || fail "$what: exit $rc, want 5: $(cat "$T/stderr")"
	grep -q "^ocilambda [a-z]*: .*No space left on device" "$T/stderr" ||
		fail "$what: error does not say the disk is full: $(cat "$T/stderr")"
}
# clean DIR: nothing half-written under DIR (temporaries, staging)
clean() {
	local left
	left=$(find "$1" \( -name '.tmp-*' -o -name '*.tmp-*' -o -name '.*.ocilambda-*' \) 2>/dev/null)
	[ -z "$left" ] || fail "half-written files left on the full disk: $left"
}
verify_blobs() { # every blob under DIR matches its name
	local f
	for f in $(find "$1" -path '*/blobs/sha256/*' -type f); do
		[ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "blob $f is corrupt"
	done
}

want=$(build "oci:$B:3.8" "$T/ref" "$T/c0")
sizes="16 64 256 512 768 1024 1280 1536 2048 4096"
# fits_at_last WHAT: on the largest size the command must have succeeded, so
# the failures are the disk's, not the build's
last=${sizes##* }
fits_at_last() { [ "$kib" != "$last" ] || [ "$full" = 0 ] || fail "$1 failed even on $kib KiB"; }

fails=0
for kib in $sizes; do
	small "$kib"
	full_or_ok "output on $kib KiB" build "oci:$B:3.8" "$S/out" "$T/c1"
	fits_at_last "the build"
	if [ $full = 1 ]; then
		fails=$((fails + 1))
		[ ! -e "$S/out" ] || fail "$kib KiB: a failed build created the output"
	else
		[ "$(cat "$T/stdout")" = "$want" ] || fail "$kib KiB: digest"
	fi
	clean "$S"
	verify_blobs "$S"
done
[ "$fails" -ge 3 ] || fail "the disk was full only $fails times"
ok "output on a full disk: exit 5, no output, nothing half-written ($fails sizes too small)"

# An existing output stays intact when the next build does not fit.
small 1536
build "oci:$B:3.8" "$S/out" "$T/c1" >/dev/null || fail "first build on 1536 KiB"
snap() { (cd "$S/out" && find . -type f -exec sha256sum {} + | sort); }
snap >"$T/before"
head -c 300000 /dev/urandom >"$T/code/big.bin" # the next build needs more room
full_or_ok "rebuild" build "oci:$B:3.8" "$S/out" "$T/c1"
[ $full = 1 ] || fail "the rebuild should not fit"
snap | cmp -s - "$T/before" || fail "a failed rebuild changed the output"
clean "$S"
rm "$T/code/big.bin"
ok "an existing output on a full disk stays as it was"

# The blob cache on a full disk (assemble from a registry), then pull.
fails=0
for kib in $sizes; do
	small "$kib"
	mkdir -p "$S/cache"
	full_or_ok "cache on $kib KiB" build "$reg_HOST/lambda/python:3.8" "$T/out-$kib" "$S/cache"
	fits_at_last "the build from a registry"
	[ $full = 0 ] || fails=$((fails + 1))
	[ $full = 0 ] || [ ! -e "$T/out-$kib" ] || fail "$kib KiB: output despite a full cache"
	clean "$S"
	verify_blobs "$S"
	rm -rf "$T/out-$kib"
	umount "$S"
	small "$kib"
	full_or_ok "pull on $kib KiB" env XDG_CACHE_HOME="$T/c2" $OCILAMBDA pull \
		"$reg_HOST/lambda/python:3.8" --output "oci:$S/pulled"
	fits_at_last "the pull"
	[ $full = 0 ] || fails=$((fails + 1))
	[ $full = 0 ] || [ ! -e "$S/pulled" ] || fail "$kib KiB: pull output despite a full disk"
	clean "$S"
	verify_blobs "$S"
done
[ "$fails" -ge 4 ] || fail "the disk was full only $fails times"
ok "blob cache and pull output on a full disk: exit 5, nothing half-written, cached blobs verify"
umount "$S"
done_testing
