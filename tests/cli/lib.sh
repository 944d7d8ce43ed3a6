# Shared helpers for the CLI tests. Each test sources this file; it runs with
# OCILAMBDA (the binary), SRCDIR and FIXTURES set by ctest.
set -euo pipefail
: "${OCILAMBDA:?}" "${SRCDIR:?}" "${FIXTURES:?}"
T=$(mktemp -d "${TMPDIR:-/tmp}/ocil-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
# assemble's layer cache and the blob cache: the test's own, never ~/.cache
# (tests may point it elsewhere)
export XDG_CACHE_HOME=$T/xdg-cache
TD=$SRCDIR/testdata
# The Debian python the runnable fixtures are made from (not a pyenv one).
PY=/usr/bin/python3
PASSED=0

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() {
	PASSED=$((PASSED + 1))
	echo "ok - $*"
}
done_testing() {
	echo "$PASSED passed, 0 failed"
}

# expect_fail CODE NEEDLE CMD...: CMD exits with CODE, prints nothing on
# stdout, and its error is one "ocilambda[ <cmd>]: ..." line (the last on
# stderr, before any "Run 'ocilambda <cmd> --help'" line; notices such as
# "ocilambda: using plain http" may come before it) containing NEEDLE.
expect_fail() {
	local code=$1 needle=$2 rc=0
	shift 2
	"$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
	[ "$rc" = "$code" ] || fail "expected exit $code, got $rc from: $* -- $(cat "$T/stderr")"
	local line
	line=$(grep -v "^Run 'ocilambda" "$T/stderr" | tail -n 1)
	case "$line" in
	"ocilambda"*) ;;
	*) fail "error line does not start with ocilambda: $line" ;;
	esac
	[ "$(grep -c '^ocilambda [a-z]*: ' "$T/stderr")" -le 1 ] || fail "more than one error line: $(cat "$T/stderr")"
	grep -qF -- "$needle" <<<"$line" || fail "stderr lacks '$needle': $line"
	[ ! -s "$T/stdout" ] || fail "stdout not empty on failure: $(cat "$T/stdout")"
}

# no_litter DIR: no staging directories or temporary blobs anywhere under
# DIR (which must exist: a misspelt directory would make the check vacuous).
no_litter() {
	local left
	[ -d "$1" ] || fail "no_litter: $1 is not a directory"
	left=$(find "$1" \( -name '.*.ocilambda-*' -o -name '.tmp-*' -o -name '*.tmp-*' -o -name 'ocilambda-*.??????' \) 2>/dev/null)
	[ -z "$left" ] || fail "temporary files left behind: $left"
}

# expect_status CODE CMD...: CMD exits with exactly CODE; its stdout is in
# $T/stdout and its stderr in $T/stderr for the checks that follow.
expect_status() {
	local code=$1 rc=0
	shift
	"$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
	[ "$rc" = "$code" ] || fail "expected exit $code, got $rc from: $* -- $(tail -n 5 "$T/stderr")"
}

# wait_until SECONDS WHAT CMD...: poll CMD (every 50 ms) until it succeeds;
# fail naming WHAT when SECONDS pass first.
wait_until() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	fail "timed out after $secs s waiting for $what"
}

# nonempty WHAT LIST...: fail unless LIST has at least one word (guards the
# loops and comparisons that would otherwise pass on nothing).
nonempty() {
	local what=$1
	shift
	[ $# -gt 0 ] && [ -n "$*" ] || fail "$what: empty"
}

# json FILE EXPR: evaluate a python expression over the JSON document j.
json() {
	"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

sha256_of() {
	echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}

# run_in ROOTFS CMD...: CMD inside an unpacked image the way Lambda runs it:
# read-only root, uid 993/gid 990, nothing shared, only PATH set.
run_in() {
	local root=$1
	shift
	bwrap --ro-bind "$root" / --proc /proc --dev /dev --tmpfs /tmp --unshare-all \
		--uid 993 --gid 990 --clearenv --setenv PATH /var/lang/bin:/usr/bin:/bin \
		--chdir /tmp "$@"
}

# A code directory with the blog's example.
make_code() {
	mkdir -p "$1/__pycache__" "$1/.git"
	cp "$TD/example/example.py" "$1/"
	echo junk >"$1/__pycache__/example.cpython-38.pyc"
	echo junk >"$1/.git/HEAD"
}

# ric_image OUT CMD: an OCI layout OUT (tag latest) made from the base with
# AWS's runtime client (fixtures base-ric) plus testdata/ric-handlers in
# /var/task, Cmd CMD. With umoci raw add-layer: umoci insert 0.4.7 writes a
# truncated layer for a directory.
ric_image() {
	local out=$1 cmd=$2
	rm -rf "$out" "$T/ric-layer"
	cp -r "$FIXTURES/base-ric" "$out"
	mkdir -p "$T/ric-layer/var/task"
	cp "$TD"/ric-handlers/* "$T/ric-layer/var/task/"
	chmod -R a+rX "$T/ric-layer"
	tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$T/ric-layer" -cf "$T/ric-layer.tar" var
	umoci tag --image "$out:ric" latest >/dev/null
	umoci raw add-layer --image "$out:latest" "$T/ric-layer.tar" >/dev/null
	umoci config --image "$out:latest" --config.cmd "$cmd" >/dev/null
	umoci rm --image "$out:ric" >/dev/null
	umoci gc --layout "$out" >/dev/null
	rm -rf "$T/ric-layer" "$T/ric-layer.tar"
}
