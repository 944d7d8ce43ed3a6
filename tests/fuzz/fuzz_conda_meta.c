/* conda-meta records: the input is one record in a small prefix (made once
 * per process under $TMPDIR, removed at exit) beside a valid python record,
 * then the whole prefix is inspected as assemble does. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "fuzz.h"
#include "layers/conda.h"

static char prefix[4096];

static void cleanup(void)
{
	ocil_error *err = NULL;
	if (prefix[0] != '\0' && ocil_remove_tree(prefix, &err) < 0)
		fuzz_drop(&err);
}

static void put(const char *rel, const char *content)
{
	cleanup_free char *p = ocil_xasprintf("%s/%s", prefix, rel);
	cleanup_free char *dir = ocil_xstrdup(p);
	*strrchr(dir, '/') = '\0';
	ocil_error *err = NULL;
	if (ocil_mkdir_p(dir, 0755, &err) < 0 ||
	    ocil_write_file_atomic(p, content, strlen(content), &err) < 0) {
		fprintf(stderr, "fuzz: %s\n", err->msg);
		abort();
	}
}

static void setup(void)
{
	if (prefix[0] != '\0')
		return;
	const char *tmp = getenv("TMPDIR");
	snprintf(prefix, sizeof(prefix), "%s/ocil-fuzz-XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(prefix) == NULL) {
		perror("mkdtemp");
		abort();
	}
	atexit(cleanup);
	put("bin/python3.11", "#!/opt/env/bin/python3.11\n");
	put("lib/python3.11/site-packages/x.py", "x = 1\n");
	put("conda-meta/python-3.11.0-0.json",
	    "{\"name\":\"python\",\"version\":\"3.11.0\",\"build\":\"0\",\"subdir\":\"linux-64\","
	    "\"files\":[\"bin/python3.11\"]}");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	cleanup_free char *p = ocil_xasprintf("%s/conda-meta/fuzz-1.0-0.json", prefix);
	ocil_error *err = NULL;
	/* rewritten in place: no fsync per input */
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ocil_write_all(fd, data, size, p, &err) < 0) {
		fprintf(stderr, "fuzz: cannot write %s\n", p);
		abort();
	}
	close(fd);
	ocil_conda_info info = {0};
	if (ocil_conda_inspect(prefix, NULL, &info, &err) == 0) {
		if (info.python_minor == NULL || strcmp(info.python_minor, "3.11") != 0)
			abort();
		if (ocil_conda_check_platform(&info, "linux", "amd64", &err) < 0)
			fuzz_drop(&err);
		ocil_conda_info_clear(&info);
	}
	fuzz_drop(&err);
	return 0;
}
