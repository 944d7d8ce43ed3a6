#!/usr/bin/env bash
# The command line itself: help, version, usage errors and their exit codes.
. "$(dirname "$0")/lib.sh"

$OCILAMBDA --help >"$T/top"
grep -q '^  assemble ' "$T/top" || fail "top-level help lists assemble"
ok "top-level --help"
$OCILAMBDA help assemble >"$T/h"
for opt in --base --conda-prefix --code --handler --output --prefix-dest --code-dest --env \
	--entrypoint --platform --allow-python-mismatch --source-prefix --exclude --strict --format \
	--digestfile --sbom --quiet --progress; do
	grep -q -- "$opt" "$T/h" || fail "assemble help lacks $opt"
done
grep -q '^  2    bad input' "$T/h" || fail "help documents exit codes"
$OCILAMBDA assemble --help >"$T/h2"
cmp -s "$T/h" "$T/h2" || fail "'help assemble' equals 'assemble --help'"
ok "assemble --help lists every option and the exit codes"
$OCILAMBDA help pull >"$T/hp"
for opt in --output --platform --tls-verify --insecure --cert-dir --ca-file --authfile --retry \
	--timeout --cache-dir; do
	grep -q -- "$opt" "$T/hp" || fail "pull help lacks $opt"
	grep -q -- "$opt" "$T/h" || [ "$opt" = --output ] || fail "assemble help lacks $opt"
done
ok "pull --help lists its options; assemble takes the registry options too"
expect_fail 1 "--tls-verify \"maybe\": want true or false" $OCILAMBDA pull --tls-verify maybe x --output oci:y
expect_fail 1 "--retry \"-1\": want a number" $OCILAMBDA pull --retry -1 x --output oci:y
expect_fail 1 "missing the image reference" $OCILAMBDA pull --output oci:y
ok "pull usage errors"
$OCILAMBDA version >"$T/v"
grep -Eq '^ocilambda [0-9]+\.[0-9]+\.[0-9]+$' "$T/v" || fail "version: $(cat "$T/v")"
for lib in libarchive jansson OpenSSL zlib libcurl libzstd libdeflate isa-l; do
	grep -Eq "^  $lib +[0-9]+\.[0-9]+" "$T/v" || fail "version lacks $lib: $(cat "$T/v")"
done
$OCILAMBDA --version >"$T/v2"
cmp -s "$T/v" "$T/v2" || fail "--version is version"
$OCILAMBDA version --json >"$T/v.json"
[ "$(json "$T/v.json" 'j["version"]')" = "$(head -n1 "$T/v" | cut -d' ' -f2)" ] || fail "version --json"
[ "$(json "$T/v.json" '" ".join(l["name"] for l in j["libraries"])')" = \
	"libarchive jansson OpenSSL zlib libcurl libzstd libdeflate isa-l" ] || fail "version --json libraries"
[ "$(json "$T/v.json" '[l["source"] for l in j["libraries"]].count("runtime")')" = 6 ] ||
	fail "six libraries report their version at run time"
ok "version: ours and the libraries', also as JSON"

$OCILAMBDA help >"$T/help"
$OCILAMBDA --help >"$T/help2"
cmp -s "$T/help" "$T/help2" || fail "help is --help"
$OCILAMBDA -h >"$T/help3"
cmp -s "$T/help" "$T/help3" || fail "help is -h"
for c in assemble check help inspect pull push version; do
	grep -q "^  $c " "$T/help" || fail "help lacks $c"
	$OCILAMBDA "$c" --help >"$T/h-$c"
	$OCILAMBDA help "$c" >"$T/h2-$c"
	cmp -s "$T/h-$c" "$T/h2-$c" || fail "help $c differs from $c --help"
	$OCILAMBDA "$c" -h >"$T/h3-$c"
	cmp -s "$T/h-$c" "$T/h3-$c" || fail "$c -h differs from $c --help"
	grep -q "^Usage: ocilambda $c" "$T/h-$c" || fail "$c --help has no usage line"
	grep -q "^Exit status:" "$T/h-$c" || fail "$c --help has no exit status"
	grep -q "^  -h, --help  " "$T/h-$c" || fail "$c --help lists --help"
	# the generated parts (the details are the command's own text)
	awk '/^(Options|Exit status):$/ {on = 1} /^$/ {on = 0} on && length > 79 {bad = 1} END {exit bad}' \
		"$T/h-$c" || fail "$c --help: options or exit status wider than 79 columns"
done
ok "help, --help, -h, help COMMAND and COMMAND --help agree; options wrapped at 79 columns"
expect_fail 1 "unknown command 'frob' (see 'ocilambda help')" $OCILAMBDA help frob
expect_fail 1 "unknown command 'asemble' (did you mean 'assemble'?" $OCILAMBDA asemble
expect_fail 1 "unknown option '--bse' (did you mean '--base'?)" $OCILAMBDA assemble --bse
expect_fail 1 "option '--c' is ambiguous (--conda-prefix, --conda-lock, --code," $OCILAMBDA assemble --c
expect_fail 1 "unknown option '--frobnicate'" $OCILAMBDA check --frobnicate x
expect_fail 1 "option '--quiet' takes no argument" $OCILAMBDA assemble --quiet=yes
expect_fail 1 "unknown option '--json'" $OCILAMBDA --json
expect_fail 1 "unexpected argument 'x'" $OCILAMBDA version x
expect_fail 1 "unexpected argument 'b'" $OCILAMBDA help a b
expect_status 1 $OCILAMBDA check --frobnicate
grep -q "^Run 'ocilambda check --help' for usage.$" "$T/stderr" || fail "a usage error points at --help"
ok "unknown commands and options: exit 1 and a hint"

rc=0
$OCILAMBDA >/dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "no command: exit $rc"
expect_fail 1 "unknown command 'frobnicate'" $OCILAMBDA frobnicate
expect_fail 1 "unknown option '--bogus'" $OCILAMBDA assemble --bogus
expect_fail 1 "option '--base' needs an argument" $OCILAMBDA assemble --base
expect_fail 1 "--base is required" $OCILAMBDA assemble
ok "usage errors exit 1 with one message"

A=(--base "oci:$FIXTURES/base38:3.8" --conda-prefix "$FIXTURES/prefix38" --code "$TD/example")
for h in example noDot .lambda_handler example. "example.lambda-handler" "1x.f" "a..b"; do
	expect_fail 1 "--handler \"$h\": want MODULE.FUNCTION" \
		$OCILAMBDA assemble "${A[@]}" --handler "$h" --output "oci:$T/out"
done
[ ! -e "$T/out" ] || fail "output created on a usage error"
ok "handler must be module.function"
for d in relative /opt/ / /opt/../etc /opt//x; do
	expect_fail 1 "--prefix-dest \"$d\"" $OCILAMBDA assemble "${A[@]}" --handler a.b \
		--prefix-dest "$d" --output "oci:$T/out"
done
ok "destinations must be normalized absolute paths"
expect_fail 1 '--env "NOEQUALS": want KEY=VALUE' $OCILAMBDA assemble "${A[@]}" --handler a.b \
	--env NOEQUALS --output "oci:$T/out"
expect_fail 1 "--entrypoint: want a non-empty JSON array" $OCILAMBDA assemble "${A[@]}" \
	--handler a.b --entrypoint '[1]' --output "oci:$T/out"
expect_fail 1 'invalid platform "amd64"' $OCILAMBDA assemble "${A[@]}" --handler a.b \
	--platform amd64 --output "oci:$T/out"
SOURCE_DATE_EPOCH=yesterday expect_fail 1 'SOURCE_DATE_EPOCH="yesterday"' \
	$OCILAMBDA assemble "${A[@]}" --handler a.b --output "oci:$T/out"
ok "option values are checked"
done_testing
