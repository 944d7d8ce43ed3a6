#!/usr/bin/env bash
# The man page and the bash completion: installed by cmake --install,
# rendered by groff without a warning, naming every command and option that
# --help lists, and completing what a user types.
. "$(dirname "$0")/lib.sh"

BUILD=$(dirname "$OCILAMBDA")
cmake --install "$BUILD" --prefix "$T/inst" >"$T/install.log" || fail "cmake --install: $(cat "$T/install.log")"
MAN=$T/inst/share/man/man1/ocilambda.1
COMP=$T/inst/share/bash-completion/completions/ocilambda
[ -x "$T/inst/bin/ocilambda" ] || fail "binary not installed"
[ -s "$MAN" ] || fail "man page not installed at share/man/man1"
[ -s "$COMP" ] || fail "completion not installed at share/bash-completion/completions"
$OCILAMBDA help --man >"$T/man2"
cmp -s "$MAN" "$T/man2" || fail "installed man page differs from 'help --man'"
ok "cmake --install puts the binary, the man page and the completion in place"

groff -man -Tutf8 -ww -z "$MAN" 2>"$T/groff.err" || fail "groff failed: $(cat "$T/groff.err")"
[ ! -s "$T/groff.err" ] || fail "groff warnings: $(cat "$T/groff.err")"
LC_ALL=C.UTF-8 MANWIDTH=250 man --warnings -l "$MAN" 2>"$T/man.err" | col -b >"$T/man.txt"
[ ! -s "$T/man.err" ] || fail "man warnings: $(cat "$T/man.err")"
for s in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
	grep -q "^$s\$" "$T/man.txt" || fail "man page lacks section $s"
done
ok "the page renders with no warnings (groff -ww, man --warnings) and has its sections"

# Every command of 'help', and in its section every option of its --help.
$OCILAMBDA help | sed -n 's/^  \([a-z]\+\) .*/\1/p' >"$T/commands"
[ "$(wc -l <"$T/commands")" -ge 7 ] || fail "help lists the commands: $(cat "$T/commands")"
while read -r cmd; do
	grep -q "^   $cmd\$" "$T/man.txt" || fail "man page has no section for $cmd"
	awk -v c="$cmd" '$0 == "   " c {on = 1; next} on && /^   [a-z]+$/ {on = 0} on && /^[A-Z]/ {on = 0} on' \
		"$T/man.txt" >"$T/man-$cmd"
	$OCILAMBDA "$cmd" --help | sed -n 's/^  \(-h, \)\?\(--[a-z-]\+\).*/\2/p' >"$T/opts-$cmd"
	[ -s "$T/opts-$cmd" ] || fail "$cmd --help lists no options"
	while read -r opt; do
		grep -q -- "^       $opt\( \|\$\)" "$T/man-$cmd" || grep -q -- "^       -h, $opt" "$T/man-$cmd" ||
			fail "man page section $cmd lacks $opt"
	done <"$T/opts-$cmd"
	grep -q "^       ocilambda $cmd" "$T/man-$cmd" || fail "man page lacks the usage of $cmd"
done <"$T/commands"
for v in SOURCE_DATE_EPOCH XDG_CACHE_HOME REGISTRY_AUTH_FILE NO_COLOR OCIL_GZIP_THREADS DOCKER_CONFIG; do
	grep -q "^       $v\$" "$T/man.txt" || grep -q "^       $v " "$T/man.txt" || fail "ENVIRONMENT lacks $v"
done
ok "the page names every command, every option of each --help, and the environment"

# Completion, as bash calls it: COMP_LINE/COMP_POINT and COMP_WORDS split
# the way readline splits them (at ':' too).
mkdir -p "$T/c/outdir" "$T/c/other"
touch "$T/c/fn.tar"
cat >"$T/complete.sh" <<'EOF'
. "$1"
shift
COMP_LINE=$1
COMP_POINT=${#1}
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_ocilambda
printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort
EOF
complete_is() { # EXPECTED LINE WORDS...: the sorted candidates, one a line
	local want=$1 got
	shift
	got=$(cd "$T/c" && bash "$T/complete.sh" "$COMP" "$@" | paste -sd' ')
	[ "$got" = "$want" ] || fail "completing '$1': got '$got', want '$want'"
}
bash -c ". '$COMP'; complete -p ocilambda" | grep -c >/dev/null "_ocilambda" ||
	fail "the script registers _ocilambda"
complete_is "$(LC_ALL=C sort "$T/commands" | paste -sd" ")" "ocilambda " ocilambda ""
complete_is "pull push" "ocilambda pu" ocilambda pu
complete_is "--help --version" "ocilambda --" ocilambda --
complete_is "--base" "ocilambda assemble --ba" ocilambda assemble --ba
complete_is "--ca-file --cache-dir --cache-repo --cache-repo-mode --cert-dir --code --code-dest --compile-code --compression --compression-level --conda-lock --conda-prefix" \
	"ocilambda assemble --c" ocilambda assemble --c
complete_is "--jobs --json" "ocilambda check --j" ocilambda check --j
complete_is "docker-archive: docker:// oci:" "ocilambda check " ocilambda check ""
complete_is "docker-archive: docker:// oci:" "ocilambda assemble --base " ocilambda assemble --base ""
complete_is "docker-archive: docker://" "ocilambda push oci:outdir d" ocilambda push oci : outdir d
complete_is "outdir/" "ocilambda check oci:ou" ocilambda check oci : ou
complete_is ":fn.tar :other/ :outdir/" "ocilambda inspect docker-archive:" ocilambda inspect docker-archive :
complete_is "fn.tar" "ocilambda inspect docker-archive:f" ocilambda inspect docker-archive : f
complete_is "outdir/" "ocilambda assemble --code ou" ocilambda assemble --code ou
complete_is "fn.tar" "ocilambda assemble --sbom f" ocilambda assemble --sbom f
complete_is "linux/amd64 linux/arm64" "ocilambda check --platform " ocilambda check --platform ""
complete_is "docker oci" "ocilambda push --format " ocilambda push --format ""
complete_is "false true" "ocilambda pull --tls-verify " ocilambda pull --tls-verify ""
complete_is "" "ocilambda assemble --handler " ocilambda assemble --handler ""
complete_is "check" "ocilambda help ch" ocilambda help ch
complete_is "--help --json" "ocilambda version -" ocilambda version -
complete_is "" "ocilambda frobnicate " ocilambda frobnicate ""
ok "bash completion: commands, options per command, option values, transports and paths"
done_testing
