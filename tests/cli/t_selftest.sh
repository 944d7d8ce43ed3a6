#!/usr/bin/env bash
# The judges judge: each helper of lib.sh that decides pass or fail is shown
# failing on what it guards against (a leftover at any depth, a wrong exit
# code, a wrong message, output on stdout, a wait that times out, an empty
# list), and the CLI tests are free of the shapes that throw an exit status
# away (a sanitizer or valgrind report changes the status, not the output).
. "$(dirname "$0")/lib.sh"

# must_fail WHAT CMD...: CMD (a helper, in a subshell) fails through fail().
must_fail() {
	local what=$1
	shift
	if ("$@") >"$T/sf.out" 2>&1; then
		fail "$what: the helper passed"
	fi
	grep -q '^FAIL: ' "$T/sf.out" || fail "$what: failed without saying why: $(cat "$T/sf.out")"
}
# must_pass WHAT CMD...: CMD (a helper, in a subshell) passes.
must_pass() {
	local what=$1
	shift
	("$@") >"$T/sf.out" 2>&1 || fail "$what: the helper failed: $(cat "$T/sf.out")"
}

# ---- no_litter
d=$T/tree
mkdir -p "$d/cache/ocilambda/blobs/sha256/deeper/still"
must_pass "no_litter on a clean tree" no_litter "$d"
for leftover in cache/ocilambda/blobs/sha256/.tmp-abc123 \
	cache/ocilambda/blobs/sha256/deeper/still/.tmp-x \
	out.tar.tmp-ABCDEF \
	cache/.out.ocilambda-Xy12Z \
	cache/ocilambda-check.AbC123; do
	: >"$d/$leftover"
	must_fail "no_litter with $leftover" no_litter "$d"
	rm "$d/$leftover"
done
must_fail "no_litter on a missing directory" no_litter "$T/no-such-dir"
ok "no_litter: finds a leftover at any depth, refuses a missing directory"

# ---- expect_fail: the code, the one error line, the needle, empty stdout
say() { # CODE STDOUT STDERR...: print and exit like a command would
	local code=$1 out=$2
	shift 2
	[ -z "$out" ] || echo "$out"
	printf '%s\n' "$@" >&2
	return "$code"
}
must_pass "expect_fail, all right" expect_fail 2 "bad thing" say 2 "" "ocilambda assemble: a bad thing"
must_pass "expect_fail, with a notice and the usage hint" expect_fail 1 "bad option" \
	say 1 "" "ocilambda: using plain http" "ocilambda pull: bad option" "Run 'ocilambda pull --help' for usage."
must_fail "expect_fail, wrong code" expect_fail 2 "bad thing" say 3 "" "ocilambda assemble: a bad thing"
must_fail "expect_fail, success" expect_fail 2 "bad thing" say 0 "" "ocilambda assemble: a bad thing"
must_fail "expect_fail, crash" expect_fail 2 "bad thing" say 139 "" "ocilambda assemble: a bad thing"
must_fail "expect_fail, wrong needle" expect_fail 2 "other thing" say 2 "" "ocilambda assemble: a bad thing"
must_fail "expect_fail, not our line" expect_fail 2 "bad thing" say 2 "" "a bad thing"
must_fail "expect_fail, a report after the error" expect_fail 2 "bad thing" \
	say 2 "" "ocilambda assemble: a bad thing" "==123==ERROR: LeakSanitizer: detected memory leaks"
must_fail "expect_fail, two error lines" expect_fail 2 "bad thing" \
	say 2 "" "ocilambda assemble: first" "ocilambda assemble: a bad thing"
must_fail "expect_fail, stdout" expect_fail 2 "bad thing" say 2 "sha256:abc" "ocilambda assemble: a bad thing"
ok "expect_fail: wrong code, crash, wrong needle, a foreign last line, two errors, stdout all fail"

# ---- expect_status
must_pass "expect_status 0" expect_status 0 say 0 "out" ""
must_pass "expect_status 6" expect_status 6 say 6 "" "x"
must_fail "expect_status, 0 for 6" expect_status 6 say 0 "" ""
must_fail "expect_status, 1 for 0" expect_status 0 say 1 "" ""
expect_status 4 say 4 "the output" "the error"
[ "$(cat "$T/stdout")" = "the output" ] && [ "$(cat "$T/stderr")" = "the error" ] ||
	fail "expect_status keeps stdout and stderr"
ok "expect_status: the exact code, and the output kept for the checks after it"

# ---- wait_until, nonempty
must_pass "wait_until, at once" wait_until 1 "true" true
: >"$T/later"
(sleep 0.3 && echo x >"$T/later") &
must_pass "wait_until, a little later" wait_until 10 "the file" test -s "$T/later"
wait
must_fail "wait_until, never" wait_until 1 "a file that never comes" test -e "$T/never"
must_pass "nonempty, a list" nonempty "list" a b
must_fail "nonempty, nothing" nonempty "list"
must_fail "nonempty, an empty word" nonempty "list" ""
ok "wait_until fails when it times out; nonempty fails on nothing"

# ---- the tests themselves: no shape that loses an ocilambda exit status
# lint FILE...: print the offending lines (file:line: text; a line continued
# with a backslash is joined to the next first)
lint() {
	awk '{ if (sub(/\\$/, "")) { buf = buf $0; next } print FILENAME ":" FNR ": " buf $0; buf = "" }' "$@" |
		grep -E \
			-e '<<< *"\$\(' \
			-e '<\("?\$\{?OCILAMBDA' \
			-e '\[\[? +!? *"\$\("?\$\{?OCILAMBDA' \
			-e '\$\{?OCILAMBDA\}?"? .*\|\| *true *$' \
			-e '^[^:]*:[0-9]+: [[:space:]]*local [A-Za-z_]+=\$\(' || true
}
cat >"$T/bad.sh" <<'EOF'
grep -q x <<<"$($OCILAMBDA check y)"
cmp -s a <($OCILAMBDA help)
[ "$($OCILAMBDA pull x)" = y ] || fail z
$OCILAMBDA run x --event '{}' >/dev/null || true
timeout 300 "$OCILAMBDA" run --cache-dir x "oci:y" --event '{}' \
	>"$T/stdout" 2>"$T/stderr" || true
	local v=$(something)
EOF
[ "$(lint "$T/bad.sh" | wc -l)" = 6 ] || fail "the lint misses planted shapes: $(lint "$T/bad.sh")"
files=()
for f in "$SRCDIR"/tests/cli/t_*.sh "$SRCDIR"/tests/cli/lib.sh; do
	[ "$(basename "$f")" = t_selftest.sh ] || files+=("$f") # its planted lines above
done
[ ${#files[@]} -ge 20 ] || fail "only ${#files[@]} test scripts found"
found=$(lint "${files[@]}")
[ -z "$found" ] || fail "test lines that throw an exit status away:
$found"
ok "no CLI test hides an exit status (here-strings, process substitutions, [ \"\$(ocilambda)\" ], || true)"
done_testing
