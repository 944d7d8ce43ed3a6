/* main() for a fuzz target outside libFuzzer: run it once over every file
 * named (directories: every file in them, in name order). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "fuzz.h"

static int run_file(const char *path)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	ocil_error *err = NULL;
	if (ocil_read_file(path, (size_t)64 << 20, &buf, &len, &err) < 0) {
		fprintf(stderr, "%s\n", err->msg);
		ocil_error_free(err);
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	return 0;
}

static int sel(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int main(int argc, char **argv)
{
	size_t n = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 1;
			n++;
			continue;
		}
		struct dirent **names = NULL;
		int k = scandir(argv[i], &names, sel, alphasort);
		if (k < 0) {
			perror(argv[i]);
			return 1;
		}
		int bad = 0;
		for (int j = 0; j < k; j++) {
			cleanup_free char *p = ocil_xasprintf("%s/%s", argv[i], names[j]->d_name);
			if (!bad && run_file(p) < 0)
				bad = 1;
			n++;
			free(names[j]);
		}
		free(names);
		if (bad)
			return 1;
	}
	printf("%zu inputs replayed\n", n);
	return n > 0 ? 0 : 1;
}
