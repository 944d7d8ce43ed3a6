#!/usr/bin/env bash
# Conda prefixes that must be refused (issue 6): exit 2, a line naming the
# problem, no output written.
. "$(dirname "$0")/lib.sh"

B=$FIXTURES/base38
ORIGIN=/home/runner/miniconda3/envs/blog-test-with-a-long-name
make_code "$T/code"
check() {
	local case=$1 needle=$2
	bash "$TD/mk-fidelity-bad.sh" "$T/$case" "$ORIGIN" 3.8 "$case"
	expect_fail 2 "$needle" $OCILAMBDA assemble --base "oci:$B:3.8" --conda-prefix "$T/$case" \
		--code "$T/code" --handler example.lambda_handler --output "oci:$T/out-$case"
	[ ! -e "$T/out-$case" ] || fail "$case: output written"
}
check editable-egg-link "egg-link"
check editable-pth "__editable__"
check editable-direct-url "editable"
ok "editable installs are refused"
check osx "osx-64"
check win "win-64"
check aarch64 "linux-aarch64 but the base image is linux/amd64"
ok "a prefix for another platform is refused"
check missing-file "lib/libghost.so.1, which is not in the prefix"
check malformed "broken-1.0-h0_0.json"
check partial "partial-1.0-h0_0.json"
ok "a record listing a missing file, malformed or partial records"
# (longer than the build path is fine, up to the placeholder's 255 bytes: t_conda_shapes)
long=/opt/$(printf 'x%.0s' $(seq 251))
expect_fail 2 "prefix38/lib/fixture-binary.dat: new prefix $long is longer than the placeholder conda recorded (256 > 255 bytes)" \
	$OCILAMBDA assemble --base "oci:$B:3.8" \
	--conda-prefix "$FIXTURES/prefix38" --code "$T/code" --handler example.lambda_handler \
	--prefix-dest "$long" --output "oci:$T/long"
[ ! -e "$T/long" ] || fail "output written"
no_litter "$T"
ok "a destination longer than the binary placeholder is refused, naming the file and both lengths"
done_testing
