#!/usr/bin/env bash
# What a person at a terminal sees: progress only on a TTY, --quiet,
# colour only on a TTY and never with NO_COLOR, and the summary table of
# what assemble built. (script(1) gives the command a pseudo-terminal.)
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
P=$FIXTURES/prefix38
make_code "$T/code"
A=(--base "oci:$B:3.8" --conda-prefix "$P" --code "$T/code")
ESC=$(printf '\033')

# on_tty FILE CMD...: run CMD with stdout and stderr on a pseudo-terminal,
# what it wrote in FILE; returns its exit status.
on_tty() {
	local out=$1
	shift
	script -qec "$(printf '%q ' "$@")" /dev/null >"$out"
}

# The summary table, on stderr even when it is not a terminal.
d=$($OCILAMBDA assemble "${A[@]}" --handler example.lambda_handler --output "oci:$T/out" 2>"$T/err")
grep -q "reading base\|packing" "$T/err" && fail "progress on a stderr that is no terminal: $(cat "$T/err")"
grep -q "$ESC" "$T/err" && fail "colour on a stderr that is no terminal"
grep -Eq '^  #   layer +compressed uncompressed  cache   digest$' "$T/err" || fail "table header: $(cat "$T/err")"
skopeo inspect --raw "oci:$T/out:latest" >"$T/manifest.json"
n=$(json "$T/manifest.json" 'len(j["layers"])')
# the fixture base's 3 layers; conda per package: python's record, the files no record owns
[ "$n" = 7 ] || fail "3 base layers and 4 new ones: $n"
i=0
for what in base base base conda conda code runtime; do
	digest=$(json "$T/manifest.json" "j['layers'][$i]['digest']")
	i=$((i + 1))
	if [ $what = base ]; then
		re="^  $i +base +[0-9.]+ (B|KiB|MiB) +- +- +${digest:0:19}\$"
	elif [ $what = conda ]; then # then what the layer holds
		re="^  $i +conda +[0-9.]+ (B|KiB|MiB) +[0-9.]+ (B|KiB|MiB) +new +${digest:0:19}  (group 2 of 8: python|files no package owns)\$"
	else
		re="^  $i +$what +[0-9.]+ (B|KiB|MiB) +[0-9.]+ (B|KiB|MiB) +new +${digest:0:19}\$"
	fi
	grep -Eq "$re" "$T/err" || fail "row $i ($what): $(cat "$T/err")"
done
grep -Eq '^      total +[0-9.]+ (B|KiB|MiB) +-$' "$T/err" || fail "total row: $(cat "$T/err")"
grep -Eq "^ocilambda: built oci:$T/out \\($d\\) in [0-9.]+ s\$" "$T/err" || fail "last line: $(tail -n1 "$T/err")"
[ "$(grep -c . "$T/err")" = 10 ] || fail "header, 7 rows, total, built: $(cat "$T/err")"
ok "assemble's summary: each layer, what made it, sizes, new or cached, the output and digest"

$OCILAMBDA assemble "${A[@]}" --handler example.lambda_handler --output "oci:$T/out" --quiet \
	>/dev/null 2>"$T/err"
[ ! -s "$T/err" ] || fail "--quiet: $(cat "$T/err")"
ok "--quiet: nothing on stderr"

on_tty "$T/tty" $OCILAMBDA assemble "${A[@]}" --handler example.lambda_handler --output "oci:$T/out"
grep -q "ocilambda: reading base oci:$B:3.8" "$T/tty" || fail "no progress on a TTY: $(cat "$T/tty")"
grep -q "ocilambda: built oci:$T/out" "$T/tty" || fail "no summary on a TTY"
on_tty "$T/tty" $OCILAMBDA assemble "${A[@]}" --handler example.lambda_handler --output "oci:$T/out" --quiet
tty_out=$(tr -d '\r' <"$T/tty")
[ "$tty_out" = "$d" ] || fail "--quiet on a TTY prints the digest only: $(cat "$T/tty")"
$OCILAMBDA assemble "${A[@]}" --handler example.lambda_handler --output "oci:$T/out" --progress \
	>/dev/null 2>"$T/err"
grep -q "ocilambda: reading base" "$T/err" || fail "--progress without a TTY"
ok "progress on stderr only on a TTY (or --progress); --quiet silences it there too"

# Colour: check's findings on a terminal, red errors; never with NO_COLOR or
# off a terminal.
$OCILAMBDA assemble "${A[@]}" --handler other.handler --no-check --output "oci:$T/bad" \
	>/dev/null 2>"$T/err" || fail "assemble --no-check: $(cat "$T/err")"
rc=0
on_tty "$T/tty" $OCILAMBDA check "oci:$T/bad" || rc=$?
[ $rc = 4 ] || fail "check on a TTY: exit $rc"
grep -q "${ESC}\[31mL012 error" "$T/tty" || fail "errors are red on a TTY: $(cat -v "$T/tty")"
grep -q "fails" "$T/tty" || fail "summary line"
rc=0
NO_COLOR=1 on_tty "$T/tty" $OCILAMBDA check "oci:$T/bad" || rc=$?
[ $rc = 4 ] || fail "check with NO_COLOR: exit $rc"
grep -q "L012 error" "$T/tty" || fail "findings with NO_COLOR"
grep -q "$ESC" "$T/tty" && fail "NO_COLOR=1 still coloured: $(cat -v "$T/tty")"
rc=0
NO_COLOR= on_tty "$T/tty" $OCILAMBDA check "oci:$T/bad" || rc=$?
[ $rc = 4 ] || fail "check with an empty NO_COLOR: exit $rc"
grep -q "$ESC\[31m" "$T/tty" || fail "an empty NO_COLOR does not disable colour (no-color.org)"
rc=0
$OCILAMBDA check "oci:$T/bad" >"$T/out.txt" 2>&1 || rc=$?
[ $rc = 4 ] || fail "check into a file: exit $rc"
grep -q "$ESC" "$T/out.txt" && fail "colour into a file"
rc=0
NO_COLOR=1 on_tty "$T/tty" $OCILAMBDA assemble "${A[@]}" --handler other.handler --output "oci:$T/bad2" || rc=$?
[ $rc = 4 ] || fail "assemble breaking a rule with NO_COLOR: exit $rc"
grep -q "L012 error" "$T/tty" || fail "assemble shows the failed rule"
grep -q "$ESC" "$T/tty" && fail "assemble with NO_COLOR still coloured: $(cat -v "$T/tty")"
rc=0
on_tty "$T/tty" $OCILAMBDA assemble "${A[@]}" --handler other.handler --output "oci:$T/bad2" || rc=$?
[ $rc = 4 ] || fail "assemble breaking a rule on a TTY: exit $rc"
grep -q "ocilambda: check: ${ESC}\[31mL012 error" "$T/tty" || fail "assemble's failed rule in red: $(cat -v "$T/tty")"
grep -q "${ESC}\[31mocilambda assemble: the image breaks" "$T/tty" || fail "the error line in red"
ok "colour only on a TTY, off with NO_COLOR (set and not empty)"
done_testing
