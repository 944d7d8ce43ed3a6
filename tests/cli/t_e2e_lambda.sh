#!/usr/bin/env bash
# The blog's own check, without Docker: build the image from the runnable
# fixtures, unpack it with umoci, run /lambda-entrypoint.sh
# example.lambda_handler under bubblewrap against a local Runtime API
# emulator, invoke it with {} and read "Hello World" and the versions.
. "$(dirname "$0")/lib.sh"

PYVER=$(cat "$FIXTURES/pyver")
B=$FIXTURES/base-run
P=$FIXTURES/prefix-run
make_code "$T/code"
digest=$($OCILAMBDA assemble --base "oci:$B:$PYVER" --conda-prefix "$P" --code "$T/code" \
	--handler example.lambda_handler --output "oci:$T/out:latest")
skopeo inspect "oci:$T/out:latest" >/dev/null
[ "$(sha256_of <(skopeo inspect --raw "oci:$T/out:latest"))" = "$digest" ] || fail digest
ok "assembled python $PYVER image $digest"

bash "$TD/run-lambda.sh" "$T/out" latest "$T/run" '{}' >"$T/response" 2>"$T/log" ||
	fail "invocation failed: $(tail -20 "$T/log")"
[ "$(cat "$T/response")" = '"Hello World"' ] || fail "response: $(cat "$T/response")"
ok "invocation of {} returns \"Hello World\""
pandas=$($PY -c 'import pandas; print(pandas.__version__)')
requests=$($PY -c 'import requests; print(requests.__version__)')
grep -q "pandas version: $pandas" "$T/log" || fail "log lacks pandas $pandas: $(cat "$T/log")"
grep -q "requests version: $requests" "$T/log" || fail "log lacks requests $requests"
ok "log shows pandas $pandas and requests $requests"

R=$T/run/bundle/rootfs
[ "$(readlink "$R/var/lang/bin/python$PYVER")" = /opt/conda-env/bin/python ] || fail link
cmp "$R/var/lang/bin/python$PYVER-clean" "/usr/bin/python$PYVER" || fail "clean python"
[ -f "$R/opt/conda-env/bin/pip-tool" ] && [ -d "$R/opt/conda-env/etc" ] ||
	fail "the relocated files to search are missing: $(ls "$R/opt/conda-env" "$R/opt/conda-env/bin")"
rc=0
grep -rq /tmp/build/envs/blog-test "$R/opt/conda-env/bin/pip-tool" "$R/opt/conda-env/etc" || rc=$?
[ "$rc" = 1 ] || fail "origin left in relocated files (grep exit $rc)"
ok "the image runs the conda python through /var/lang/bin/python$PYVER"
done_testing
