#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "base/walk.h"
#include "layers/code.h"
#include "support_tar.h"
#include "test.h"

/* ---- helpers: build a tree, write a layer, read it back ---- */

static int put(const char *rel, const char *content, mode_t mode)
{
	return putn(rel, content, strlen(content), mode);
}

static int mkdirs(const char *rel, mode_t mode)
{
	char *p = tpath(rel);
	ocil_error *err = NULL;
	int r = ocil_mkdir_p(p, 0755, &err) || chmod(p, mode);
	ocil_error_free(err);
	free(p);
	return r;
}

/* Write the code layer for tmp/<rel> at dest into l. */
static int code_layer(const char *rel, const char *dest, const ocil_cancel *cancel, rlayer *l,
		      ocil_error **err)
{
	cleanup_free char *dir = tpath(rel);
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	return open_layer_writer(&bs, &w, err) ||
	       ocil_code_write_layer(dir, dest, cancel, w, err) || finish_read_layer(bs, w, l, err);
}

/* ---- tests ---- */

static void tree(void)
{
	CHECK(put("code/handler.py", "def handler(e, c):\n    return 1\n", 0600) == 0);
	CHECK(put("code/run.sh", "#!/bin/sh\n", 0700) == 0);
	CHECK(put("code/Zeta.txt", "Z", 0644) == 0);
	CHECK(put("code/pkg/__init__.py", "", 0644) == 0);
	CHECK(put("code/pkg/__pycache__/x.cpython-311.pyc", "junk", 0644) == 0);
	CHECK(put("code/.git/config", "[core]", 0644) == 0);
	CHECK(put("code/sub/.git", "gitdir: ../.git/modules/sub", 0644) == 0);
	CHECK(put("code/b.pyc", "junk", 0644) == 0);
	CHECK(put("code/z/deep/file", "deep", 04755) == 0);
	CHECK(mkdirs("code/private", 0700) == 0);
	CHECK(sym("handler.py", "code/link") == 0);
	CHECK(sym("/etc/passwd", "code/abs") == 0);
	char *a = tpath("code/handler.py"), *b = tpath("code/hl");
	int lr = link(a, b);
	free(a);
	free(b);
	CHECK(lr == 0);

	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	int r = code_layer("code", "/opt/my-code", NULL, &l, &err);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	static const char *want[] = {
	    "opt/",
	    "opt/my-code/",
	    "opt/my-code/Zeta.txt", /* bytewise: 'Z' < 'a' */
	    "opt/my-code/abs",
	    "opt/my-code/handler.py",
	    "opt/my-code/hl",
	    "opt/my-code/link",
	    "opt/my-code/pkg/",
	    "opt/my-code/pkg/__init__.py",
	    "opt/my-code/private/",
	    "opt/my-code/run.sh",
	    "opt/my-code/sub/",
	    "opt/my-code/z/",
	    "opt/my-code/z/deep/",
	    "opt/my-code/z/deep/file",
	};
	int names_ok = rlayer_names_are(&l, want, NENTS(want));
	const rentry *h = rlayer_find(&l, "opt/my-code/handler.py"),
		     *hl = rlayer_find(&l, "opt/my-code/hl"),
		     *lk = rlayer_find(&l, "opt/my-code/link"),
		     *ab = rlayer_find(&l, "opt/my-code/abs"),
		     *run = rlayer_find(&l, "opt/my-code/run.sh"),
		     *pv = rlayer_find(&l, "opt/my-code/private/"),
		     *deep = rlayer_find(&l, "opt/my-code/z/deep/file");
	int ok = names_ok && h->perm == 0644 && strstr(h->data, "def handler") &&
		 hl->type == AE_IFREG && hl->link == NULL && strcmp(hl->data, h->data) == 0 &&
		 lk->type == AE_IFLNK && strcmp(lk->link, "handler.py") == 0 &&
		 strcmp(ab->link, "/etc/passwd") == 0 && run->perm == 0755 && pv->perm == 0755 &&
		 deep->perm == 0755 && strcmp(deep->data, "deep") == 0;
	rlayer_clear(&l);
	CHECK(names_ok);
	CHECK(ok);
}

static void errors(void)
{
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	CHECK_FAIL(code_layer("nope", "/opt/my-code", NULL, &l, &err), &err, OCIL_E_INPUT,
		   "code directory ");
	CHECK(put("afile", "x", 0644) == 0);
	CHECK_FAIL(code_layer("afile", "/opt/my-code", NULL, &l, &err), &err, OCIL_E_INPUT,
		   "afile: not a directory");

	CHECK(put("fifo/ok.py", "", 0644) == 0);
	char *f = tpath("fifo/pipe");
	int r = mkfifo(f, 0644);
	free(f);
	CHECK(r == 0);
	CHECK_FAIL(code_layer("fifo", "/opt/my-code", NULL, &l, &err), &err, OCIL_E_INPUT,
		   "fifo/pipe: a fifo can not go into an image layer");

	CHECK(put("c/a.py", "", 0644) == 0);
	volatile int flag = 1;
	ocil_cancel c = {.flag = &flag};
	CHECK_FAIL(code_layer("c", "/opt/my-code", &c, &l, &err), &err, OCIL_E_CANCELLED,
		   "interrupted");
	/* an empty dir is just the dest and its parents */
	CHECK(mkdirs("empty", 0755) == 0);
	r = code_layer("empty", "/var/task", NULL, &l, &err);
	int n = (int)l.n;
	rlayer_clear(&l);
	CHECK_OK(r, &err);
	CHECK(n == 2);
}

/* --compile-code: the sources listed, and the compiled __pycache__ of each
 * directory right after it; the code's own caches still left out. */
static void bytecode(void)
{
	CHECK(put("bc/app.py", "A = 1\n", 0644) == 0);
	CHECK(put("bc/pkg/__init__.py", "", 0644) == 0);
	CHECK(put("bc/pkg/data.txt", "d", 0644) == 0);
	CHECK(put("bc/pkg/__pycache__/__init__.cpython-311.pyc", "old", 0644) == 0);
	CHECK(sym("app.py", "bc/alias.py") == 0);
	CHECK(put("pyc/opt/my-code/__pycache__/app.cpython-311.pyc", "APP", 0600) == 0);
	CHECK(put("pyc/opt/my-code/pkg/__pycache__/__init__.cpython-311.pyc", "INIT", 0600) == 0);
	cleanup_free char *dir = tpath("bc"), *pycs = tpath("pyc");
	ocil_error *err = NULL;
	cleanup_strv ocil_strv src = {0};
	CHECK_OK(ocil_code_sources(dir, "/opt/my-code", &src, &err), &err);
	CHECK(src.n == 2);
	CHECK_STREQ(src.v[0], "/opt/my-code/app.py");
	CHECK_STREQ(src.v[1], "/opt/my-code/pkg/__init__.py");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(open_layer_writer(&bs, &w, &err), &err);
	CHECK_OK(ocil_code_write_layer_bytecode(dir, "/opt/my-code", pycs, NULL, w, &err), &err);
	rlayer l = {.n = 0};
	int r = finish_read_layer(bs, w, &l, &err);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	static const char *want[] = {
	    "opt/",
	    "opt/my-code/",
	    "opt/my-code/__pycache__/",
	    "opt/my-code/__pycache__/app.cpython-311.pyc",
	    "opt/my-code/alias.py",
	    "opt/my-code/app.py",
	    "opt/my-code/pkg/",
	    "opt/my-code/pkg/__pycache__/",
	    "opt/my-code/pkg/__pycache__/__init__.cpython-311.pyc",
	    "opt/my-code/pkg/__init__.py",
	    "opt/my-code/pkg/data.txt",
	};
	int names_ok = rlayer_names_are(&l, want, NENTS(want));
	const rentry *p = rlayer_find(&l, "opt/my-code/pkg/__pycache__/__init__.cpython-311.pyc");
	int ok = names_ok && p != NULL && p->perm == 0644 && strcmp(p->data, "INIT") == 0;
	rlayer_clear(&l);
	CHECK(ok);
}

/* The walker on its own: order, skip, rel/path/name, stat. */
typedef struct {
	ocil_strv seen;
} walk_log;

static int log_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	walk_log *wl = ud;
	const char *base = strrchr(e->path, '/') + 1;
	if (strcmp(base, e->name) != 0 || !ocil_str_has_suffix(e->path, e->rel))
		return ocil_error_set(err, OCIL_E_IO, "bad entry %s", e->path);
	ocil_strv_push(&wl->seen, ocil_xasprintf("%zu:%s%s", e->depth, e->rel,
						 S_ISDIR(e->st->st_mode)   ? "/"
						 : S_ISLNK(e->st->st_mode) ? "@"
									   : ""));
	return 0;
}

static bool skip_b(const ocil_walk_entry *e, void *ud)
{
	return strcmp(e->name, "b") == 0;
}

static void walker(void)
{
	CHECK(put("w/b/x", "", 0644) == 0);
	CHECK(put("w/a/c", "", 0644) == 0);
	CHECK(put("w/a/B", "", 0644) == 0);
	CHECK(put("w/a.txt", "", 0644) == 0);
	CHECK(sym("a", "w/l") == 0);
	walk_log wl = {{0}};
	ocil_error *err = NULL;
	char *root = ocil_xasprintf("%s/w/", ocil_test_tmpdir()); /* trailing slash is fine */
	ocil_walk_opts o = {.fn = log_entry, .skip = skip_b, .ud = &wl};
	int r = ocil_walk(root, &o, &err);
	free(root);
	char *joined = NULL;
	for (size_t i = 0; i < wl.seen.n; i++) {
		char *j = ocil_xasprintf("%s%s ", joined ? joined : "", wl.seen.v[i]);
		free(joined);
		joined = j;
	}
	ocil_strv_clear(&wl.seen);
	if (r != 0)
		free(joined);
	CHECK_OK(r, &err);
	/* "a" < "a.txt" bytewise, so a's subtree comes first */
	int same = joined && strcmp(joined, "1:a/ 2:a/B 2:a/c 1:a.txt 1:l@ ") == 0;
	if (!same)
		fprintf(stderr, "walk order: %s\n", joined);
	free(joined);
	CHECK(same);
}

TEST_MAIN(T(tree), T(errors), T(bytecode), T(walker))
