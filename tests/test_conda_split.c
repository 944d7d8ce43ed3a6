#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "layers/conda_split.h"
#include "oci/layer_cache.h"
#include "test.h"

static void budget(void)
{
	CHECK(ocil_split_budget(0, 3) == 94); /* 3 + 94 + bytecode, code, link = 100 */
	CHECK(ocil_split_budget(0, 96) == 1);
	CHECK(ocil_split_budget(0, 120) == 1); /* a base over the cap: one layer */
	CHECK(ocil_split_budget(5, 3) == 5);
	CHECK(ocil_split_budget(97, 10) == 87);
	CHECK(ocil_split_budget(1, 0) == 1);
}

#define MB ((uint64_t)1 << 20)

static void assign_rule(void)
{
	ocil_split_pkg p[] = {
	    {"python", "python-3.11.2-h_0", 60 * MB}, {"numpy", "numpy-1.24-py_0", 30 * MB},
	    {"six", "six-1.16-py_0", 40000},	      {"idna", "idna-3.3-py_0", 300000},
	    {"certifi", "certifi-2022-py_0", 200000}, {"zlib", "zlib-1.2-h_0", MB},
	};
	size_t n = sizeof(p) / sizeof(p[0]);
	ocil_split_plan a = {0};
	ocil_split_assign(p, n, 94, true, &a);
	/* big ones (1 MiB and over) alone, by name: numpy, python, zlib */
	CHECK_STREQ(a.what[a.of[1]], "numpy-1.24-py_0");
	CHECK(a.of[1] == 0 && a.of[0] == 1 && a.of[5] == 2);
	/* the small ones in groups after them, what no package owns last */
	CHECK(a.of[2] >= 3 && a.of[3] >= 3 && a.of[4] >= 3);
	CHECK(a.unowned == a.n - 1);
	CHECK_STREQ(a.what[a.unowned], "files no package owns");
	CHECK(strncmp(a.what[a.of[2]], "group ", 6) == 0);
	CHECK(strstr(a.what[a.of[2]], "six") != NULL);
	CHECK(a.n <= 94);

	/* a bump: another version and size of one package moves nobody else */
	ocil_split_pkg q[sizeof(p) / sizeof(p[0])];
	memcpy(q, p, sizeof(p));
	q[3].label = "idna-3.4-py_0";
	q[3].size = 310000;
	q[0].size = 61 * MB;
	ocil_split_plan b = {0};
	ocil_split_assign(q, n, 94, true, &b);
	CHECK(b.n == a.n);
	for (size_t i = 0; i < n; i++)
		CHECK(a.of[i] == b.of[i]);
	ocil_split_plan_clear(&b);

	/* a new small package joins its group; the others stay where they were */
	ocil_split_pkg r[sizeof(p) / sizeof(p[0]) + 1];
	memcpy(r, p, sizeof(p));
	r[n] = (ocil_split_pkg){"requests", "requests-2.28-py_0", 180000};
	ocil_split_plan c = {0};
	ocil_split_assign(r, n + 1, 94, true, &c);
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(a.what[a.of[i]], c.what[c.of[i]]) == 0 ||
		      strstr(c.what[c.of[i]], "requests") != NULL);
	ocil_split_plan_clear(&c);
	ocil_split_plan_clear(&a);

	/* one layer: everything in it */
	ocil_split_assign(p, n, 1, true, &a);
	CHECK(a.n == 1 && a.unowned == 0);
	for (size_t i = 0; i < n; i++)
		CHECK(a.of[i] == 0);
	ocil_split_plan_clear(&a);

	/* few layers: one group, the unowned, the biggest alone */
	ocil_split_assign(p, n, 4, false, &a);
	CHECK(a.n <= 4);
	CHECK(a.unowned == a.n);			 /* none asked for */
	CHECK(a.of[0] != a.of[1]);			 /* python and numpy alone */
	CHECK(a.of[5] == a.of[2] && a.of[2] == a.of[3]); /* zlib with the small ones */
	ocil_split_plan_clear(&a);

	/* the same input, the same plan (and no package at all is fine) */
	ocil_split_assign(NULL, 0, 94, true, &a);
	CHECK(a.n == 1 && a.unowned == 0);
	ocil_split_plan_clear(&a);
}

static void put(const char *root, const char *rel, const char *text)
{
	char *p = ocil_xasprintf("%s/%s", root, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	ocil_error *e = NULL;
	(void)ocil_mkdir_p(p, 0755, &e);
	ocil_error_free(e);
	*slash = '/';
	FILE *f = fopen(p, "w");
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	free(p);
}

static void make_prefix(const char *root)
{
	put(root, "conda-meta/python-3.11.2-h_0.json",
	    "{\"name\": \"python\", \"version\": \"3.11.2\", \"build\": \"h_0\", "
	    "\"files\": [\"bin/python3.11\", \"lib/python3.11/os.py\"]}");
	put(root, "conda-meta/six-1.16.0-py_0.json",
	    "{\"name\": \"six\", \"version\": \"1.16.0\", \"build\": \"py_0\", "
	    "\"files\": [\"lib/python3.11/site-packages/six.py\"]}");
	put(root, "conda-meta/history", "==> x <==\n");
	put(root, "bin/python3.11", "#!binary\n");
	put(root, "lib/python3.11/os.py", "import sys\n");
	put(root, "lib/python3.11/site-packages/six.py", "X = 1\n");
	/* pip's, and pip compiled six.py: the pyc goes with its source */
	put(root, "lib/python3.11/site-packages/piponly.py", "Y = 2\n");
	put(root, "lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc",
	    "junk-pyc-bytes\n");
	char *empty = ocil_xasprintf("%s/share/empty", root);
	ocil_error *e = NULL;
	(void)ocil_mkdir_p(empty, 0755, &e);
	ocil_error_free(e);
	free(empty);
}

typedef struct {
	ocil_conda_split_layer l;
	const char *rel;
	bool dir;
} probe;

static bool keeps(const ocil_conda_split *s, size_t k, const char *rel, bool dir)
{
	struct stat st = {.st_mode = dir ? S_IFDIR | 0755 : S_IFREG | 0644};
	const char *name = strrchr(rel, '/');
	ocil_walk_entry e = {.rel = rel, .path = rel, .name = name ? name + 1 : rel, .st = &st};
	ocil_conda_split_layer l = {.s = s, .k = k};
	return ocil_conda_split_keep(&e, &l);
}

static void key_of(const ocil_conda_split *s, size_t k, bool content, char out[72])
{
	ocil_hasher *h = ocil_layer_cache_key_begin("test");
	ocil_error *err = NULL;
	if (content)
		(void)ocil_conda_split_fold_content(s, k, h, NULL, &err);
	else
		ocil_conda_split_fold_local(s, k, h);
	ocil_error_free(err);
	ocil_layer_cache_key_finish(h, out);
}

static void prefix_split(void)
{
	ocil_error *err = NULL;
	char *root = ocil_xasprintf("%s/prefix", ocil_test_tmpdir());
	make_prefix(root);
	ocil_conda_info info = {0};
	CHECK_OK(ocil_conda_inspect(root, NULL, &info, &err), &err);
	CHECK(info.record_files.n == 2);
	CHECK(ocil_conda_owner(&info, "lib/python3.11/site-packages/six.py") == 1);
	CHECK(ocil_conda_owner(&info, "lib/python3.11/site-packages/piponly.py") == -1);
	ocil_conda_split *s = NULL;
	CHECK_OK(ocil_conda_split_prefix(root, &info, 94, NULL, &s, &err), &err);
	const ocil_split_plan *p = ocil_conda_split_plan(s);
	/* python and six are small: groups (maybe the same one), then the unowned */
	CHECK(p->n >= 2 && p->n <= 3);
	size_t py = p->of[0], six = p->of[1], un = p->unowned;
	CHECK(un == p->n - 1 && py != un && six != un);
	CHECK(keeps(s, py, "conda-meta/python-3.11.2-h_0.json", false));
	CHECK(keeps(s, py, "bin/python3.11", false));
	CHECK(keeps(s, six, "lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc", false));
	CHECK(keeps(s, un, "lib/python3.11/site-packages/piponly.py", false));
	CHECK(keeps(s, un, "conda-meta/history", false));
	CHECK(keeps(s, un, "share/empty", true));
	CHECK(!keeps(s, py, "share/empty", true));
	CHECK(keeps(s, six, "lib/python3.11/site-packages", true)); /* its parents */
	CHECK(keeps(s, un, "lib/python3.11", true));
	CHECK(!keeps(s, un, "bin/python3.11", false));
	CHECK(!keeps(s, py, "not/there", false));

	char l1[72], c1[72], l2[72], c2[72];
	key_of(s, six, false, l1);
	key_of(s, six, true, c1);
	ocil_conda_split_free(s);
	ocil_conda_info_clear(&info);

	/* a copy elsewhere: another machine's key (inodes), the same contents' */
	char *copy = ocil_xasprintf("%s/copy", ocil_test_tmpdir());
	make_prefix(copy);
	CHECK_OK(ocil_conda_inspect(copy, NULL, &info, &err), &err);
	CHECK_OK(ocil_conda_split_prefix(copy, &info, 94, NULL, &s, &err), &err);
	six = ocil_conda_split_plan(s)->of[1];
	key_of(s, six, false, l2);
	key_of(s, six, true, c2);
	CHECK(strcmp(l1, l2) != 0);
	CHECK_STREQ(c1, c2);
	ocil_conda_split_free(s);
	ocil_conda_info_clear(&info);

	/* other contents, another key */
	put(copy, "lib/python3.11/site-packages/six.py", "X = 2\n");
	CHECK_OK(ocil_conda_inspect(copy, NULL, &info, &err), &err);
	CHECK_OK(ocil_conda_split_prefix(copy, &info, 94, NULL, &s, &err), &err);
	six = ocil_conda_split_plan(s)->of[1];
	key_of(s, six, true, c2);
	CHECK(strcmp(c1, c2) != 0);
	ocil_conda_split_free(s);
	ocil_conda_info_clear(&info);

	/* one layer: everything, directories included */
	CHECK_OK(ocil_conda_inspect(root, NULL, &info, &err), &err);
	CHECK_OK(ocil_conda_split_prefix(root, &info, 1, NULL, &s, &err), &err);
	CHECK(ocil_conda_split_plan(s)->n == 1);
	CHECK(keeps(s, 0, "share/empty", true));
	CHECK(keeps(s, 0, "conda-meta/history", false));
	CHECK(keeps(s, 0, "bin/python3.11", false));
	ocil_conda_split_free(s);
	ocil_conda_info_clear(&info);
	free(copy);
	free(root);
}

TEST_MAIN(T(budget), T(assign_rule), T(prefix_split))
