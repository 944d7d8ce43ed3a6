#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "test.h"

int ocil_test_failed;
static char tmpdir[4096];

const char *ocil_test_tmpdir(void)
{
	if (tmpdir[0] == '\0') {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/ocil-test-XXXXXX", base ? base : "/tmp");
		if (mkdtemp(tmpdir) == NULL) {
			perror("mkdtemp");
			abort();
		}
	}
	return tmpdir;
}

int ocil_test_main(const ocil_test_case *cases, size_t n, int argc, char **argv)
{
	int passed = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		ocil_test_failed = 0;
		tmpdir[0] = '\0';
		cases[i].fn();
		if (tmpdir[0] != '\0') {
			ocil_error *err = NULL;
			ocil_remove_tree(tmpdir, &err);
			ocil_error_free(err);
		}
		printf("%s %s\n", ocil_test_failed ? "FAIL" : "ok  ", cases[i].name);
		if (ocil_test_failed)
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
