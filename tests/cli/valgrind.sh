#!/bin/sh
# OCILAMBDA for the CLI tests run under valgrind (ctest valgrind-cli/*): the
# real binary (OCIL_REAL) with every invocation checked for memory errors
# and leaks; either makes the invocation exit 99, which fails the test.
exec valgrind --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect "$OCIL_REAL" "$@"
