/* unpack: crafted layers (libarchive's writer) applied to a directory, read
 * back with stat(2); hostile layers must not touch anything outside. */
#include <archive.h>
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "oci/unpack.h"
#include "support_tar.h"
#include "test.h"

#define LAYER(fname, ents)                                                                         \
	mk_tar(fname, "gzip", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ents, NENTS(ents))

static char notes[512];

static void on_notice(void *data, const char *msg)
{
	(void)data;
	snprintf(notes, sizeof(notes), "%s", msg);
}

/* Unpack up to 3 layers into tmpdir/<root> (made empty). */
static int unpack(const char *root, const char *l0, const char *l1, const char *l2,
		  ocil_error **err)
{
	const char *paths[] = {l0, l1, l2};
	size_t n = 0;
	while (n < 3 && paths[n] != NULL)
		n++;
	cleanup_free char *dir = tpath(root);
	if (mkdir(dir, 0755) < 0)
		return ocil_error_set(err, OCIL_E_IO, "mkdir %s", dir);
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY);
	ocil_unpack_opts o = {.notice = on_notice};
	return ocil_unpack_layers(fd, paths, n, &o, err);
}

static bool exists(const char *rel)
{
	cleanup_free char *p = tpath(rel);
	struct stat st;
	return lstat(p, &st) == 0;
}

static mode_t mode_of(const char *rel)
{
	cleanup_free char *p = tpath(rel);
	struct stat st;
	return lstat(p, &st) == 0 ? st.st_mode : 0;
}

static char *read_rel(const char *rel)
{
	cleanup_free char *p = tpath(rel);
	char *buf = NULL;
	size_t len = 0;
	ocil_error *err = NULL;
	if (ocil_read_file(p, 1 << 20, &buf, &len, &err) < 0) {
		ocil_error_free(err);
		return NULL;
	}
	return buf;
}

/* Entries in tmpdir/rel, "." and ".." not counted. */
static int count_entries(const char *rel)
{
	cleanup_free char *p = tpath(rel);
	DIR *d = opendir(p);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void test_basic_tree(void)
{
	static const tent l0[] = {
	    {"etc/", 'd', NULL, 0, 0},
	    {"etc/passwd", 'f', "root:x:0:0\n", 0, 0},
	    {"etc/shadow", 'f', "secret\n", 0, 0400},
	    {"bin/", 'd', NULL, 0, 0},
	    {"bin/su", 'f', "#!/bin/sh\n", 0, 04755},
	    {"bin/sh", 'l', "busybox", 0, 0},
	    {"bin/passwd2", 'h', "etc/passwd", 0, 0},
	    {"ro/", 'd', NULL, 0, 0555},
	    {"ro/inside", 'f', "x", 0, 0},
	    {"dev/null", 'c', NULL, 0, 0},
	    {"implicit/parent/file", 'f', "deep", 0, 0},
	};
	cleanup_free char *p0 = LAYER("l0.tar.gz", l0);
	CHECK(p0 != NULL);
	ocil_error *err = NULL;
	notes[0] = '\0';
	CHECK_OK(unpack("root", p0, NULL, NULL, &err), &err);
	cleanup_free char *passwd = read_rel("root/etc/passwd");
	CHECK_STREQ(passwd, "root:x:0:0\n");
	CHECK((mode_of("root/etc/shadow") & 07777) == 0400);
	CHECK((mode_of("root/bin/su") & 07777) == 0755); /* setuid dropped */
	CHECK(S_ISLNK(mode_of("root/bin/sh")));
	cleanup_free char *a = tpath("root/etc/passwd");
	cleanup_free char *b = tpath("root/bin/passwd2");
	struct stat sa, sb;
	CHECK(stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino);
	CHECK((mode_of("root/ro") & 07777) == 0555);
	CHECK(exists("root/ro/inside"));
	CHECK(!exists("root/dev/null"));
	CHECK(strstr(notes, "skipped 1 device node") != NULL);
	CHECK(strstr(notes, "/dev/null") != NULL);
	cleanup_free char *deep = read_rel("root/implicit/parent/file");
	CHECK_STREQ(deep, "deep");
	/* a tree with 0555 and 0000 entries can still be removed */
	cleanup_free char *root = tpath("root");
	CHECK_OK(ocil_remove_tree(root, &err), &err);
	CHECK(!exists("root"));
}

static void test_whiteouts(void)
{
	static const tent l0[] = {
	    {"a/", 'd', NULL, 0, 0},	       {"a/gone", 'f', "1", 0, 0},
	    {"a/stays", 'f', "2", 0, 0},       {"opq/", 'd', NULL, 0, 0},
	    {"opq/old", 'f', "old", 0, 0},     {"opq/sub/", 'd', NULL, 0, 0},
	    {"opq/sub/old", 'f', "o", 0, 0},   {"dir-to-file/", 'd', NULL, 0, 0},
	    {"dir-to-file/x", 'f', "x", 0, 0}, {"link", 'l', "a", 0, 0},
	    {"wh-dir/", 'd', NULL, 0, 0},      {"wh-dir/deep", 'f', "d", 0, 0},
	};
	/* the layer's own entries come before the opaque marker, and a
	 * whiteout names something this layer also put there */
	static const tent l1[] = {
	    {"a/.wh.gone", 'f', "", 0, 0},
	    {"opq/new", 'f', "new", 0, 0},
	    {"opq/sub/new", 'f', "n", 0, 0},
	    {"opq/.wh..wh..opq", 'f', "", 0, 0},
	    {"dir-to-file", 'f', "now a file", 0, 0},
	    {"link/", 'd', NULL, 0, 0},
	    {".wh.wh-dir", 'f', "", 0, 0},
	    {"mine", 'f', "m", 0, 0},
	    {".wh.mine", 'f', "", 0, 0},
	    {"a/.wh..wh.plnk", 'f', "", 0, 0},
	};
	cleanup_free char *p0 = LAYER("w0.tar.gz", l0);
	cleanup_free char *p1 = LAYER("w1.tar.gz", l1);
	CHECK(p0 != NULL && p1 != NULL);
	ocil_error *err = NULL;
	CHECK_OK(unpack("w", p0, p1, NULL, &err), &err);
	CHECK(!exists("w/a/gone"));
	CHECK(exists("w/a/stays"));
	CHECK(!exists("w/a/.wh.gone"));
	CHECK(!exists("w/opq/old"));
	CHECK(!exists("w/opq/sub/old"));
	CHECK(exists("w/opq/new"));
	CHECK(exists("w/opq/sub/new"));
	CHECK(count_entries("w/opq") == 2);
	CHECK(!exists("w/opq/.wh..wh..opq"));
	CHECK(S_ISREG(mode_of("w/dir-to-file")));
	CHECK(S_ISDIR(mode_of("w/link")));
	CHECK(!exists("w/wh-dir"));
	CHECK(exists("w/mine")); /* a whiteout only hides lower layers */
	CHECK(!exists("w/a/.wh..wh.plnk"));
}

static void test_dotdot_refused(void)
{
	static const tent l0[] = {{"ok", 'f', "ok", 0, 0}, {"../x", 'f', "escaped", 0, 0}};
	static const tent l1[] = {{"a/../../y", 'f', "escaped", 0, 0}};
	cleanup_free char *p0 = LAYER("dd0.tar.gz", l0);
	cleanup_free char *p1 = LAYER("dd1.tar.gz", l1);
	CHECK(p0 != NULL && p1 != NULL);
	ocil_error *err = NULL;
	cleanup_free char *box = tpath("box");
	CHECK(mkdir(box, 0755) == 0);
	CHECK_FAIL(unpack("box/root", p0, NULL, NULL, &err), &err, OCIL_E_INPUT, "path traversal");
	CHECK_FAIL(unpack("box/root2", p1, NULL, NULL, &err), &err, OCIL_E_INPUT, "path traversal");
	CHECK(!exists("box/x") && !exists("x") && !exists("box/y") && !exists("y"));
}

static void test_absolute_names_stay_inside(void)
{
	/* an absolute name naming the test's own directory */
	cleanup_free char *abs = tpath("abs-target/escaped");
	cleanup_free char *absdir = tpath("abs-target");
	CHECK(mkdir(absdir, 0755) == 0);
	tent l0[] = {{abs, 'f', "inside", 0, 0}, {"/etc/abs", 'f', "inside", 0, 0}};
	cleanup_free char *p0 = LAYER("abs.tar.gz", l0);
	CHECK(p0 != NULL);
	ocil_error *err = NULL;
	CHECK_OK(unpack("absroot", p0, NULL, NULL, &err), &err);
	CHECK(count_entries("abs-target") == 0);
	cleanup_free char *rel = ocil_xasprintf("absroot%s", abs);
	CHECK(exists(rel));
	CHECK(exists("absroot/etc/abs"));
}

static void test_symlink_parents_stay_inside(void)
{
	cleanup_free char *outside = tpath("outside");
	CHECK(mkdir(outside, 0755) == 0);
	CHECK(putn("outside/victim", "keep", 4, 0644) == 0);
	CHECK(putn("outside/target", "target", 6, 0644) == 0);
	tent l0[] = {
	    {"abs", 'l', outside, 0, 0},
	    {"rel", 'l', "../outside", 0, 0},
	    {"deeper/", 'd', NULL, 0, 0},
	    {"deeper/up", 'l', "../../outside", 0, 0},
	    /* the same layer writes through its own symlink */
	    {"abs/same-layer", 'f', "pwned", 0, 0},
	};
	tent l1[] = {
	    {"abs/pwned", 'f', "pwned", 0, 0},	       {"rel/pwned", 'f', "pwned", 0, 0},
	    {"deeper/up/pwned", 'f', "pwned", 0, 0},   {"rel/.wh.victim", 'f', "", 0, 0},
	    {"deeper/up/.wh..wh..opq", 'f', "", 0, 0},
	};
	tent l2[] = {{"hl", 'h', "abs/target", 0, 0}};
	tent l3[] = {{"abs", 'l', outside, 0, 0}};
	static const tent l4[] = {{".wh..", 'f', "", 0, 0}};
	cleanup_free char *p0 = LAYER("s0.tar.gz", l0);
	cleanup_free char *p1 = LAYER("s1.tar.gz", l1);
	cleanup_free char *p2 = LAYER("s2.tar.gz", l2);
	cleanup_free char *p3 = LAYER("s3.tar.gz", l3);
	cleanup_free char *p4 = LAYER("s4.tar.gz", l4);
	CHECK(p0 != NULL && p1 != NULL && p2 != NULL && p3 != NULL && p4 != NULL);
	ocil_error *err = NULL;
	cleanup_free char *box = tpath("sbox");
	CHECK(mkdir(box, 0755) == 0);
	CHECK_OK(unpack("sbox/root", p0, p1, NULL, &err), &err);
	/* the outside is as it was */
	CHECK(count_entries("outside") == 2);
	cleanup_free char *victim = read_rel("outside/victim");
	CHECK_STREQ(victim, "keep");
	/* the symlinks became directories holding what was written through them */
	CHECK(S_ISDIR(mode_of("sbox/root/abs")));
	CHECK(exists("sbox/root/abs/pwned"));
	CHECK(S_ISDIR(mode_of("sbox/root/rel")));
	CHECK(exists("sbox/root/rel/pwned"));
	CHECK(exists("sbox/root/deeper/up/pwned"));
	CHECK(count_entries("sbox") == 1);
	/* a hardlink through a symlink names nothing */
	CHECK_FAIL(unpack("sbox/root2", p0, p2, NULL, &err), &err, OCIL_E_INPUT,
		   "not an earlier file");
	CHECK_FAIL(unpack("sbox/root3", p3, p2, NULL, &err), &err, OCIL_E_INPUT,
		   "not an earlier file");
	/* ".wh.." would name the directory above */
	CHECK_FAIL(unpack("sbox/root4", p4, NULL, NULL, &err), &err, OCIL_E_INPUT, "bad whiteout");
	CHECK(count_entries("sbox") == 4);
	cleanup_free char *t = tpath("outside/target");
	struct stat st;
	CHECK(stat(t, &st) == 0 && st.st_nlink == 1);
}

static void test_cached(void)
{
	static const tent l0[] = {
	    {"var/", 'd', NULL, 0, 0}, {"var/task/", 'd', NULL, 0, 0}, {"hello", 'f', "hi", 0, 0}};
	cleanup_free char *p0 = LAYER("c0.tar.gz", l0);
	CHECK(p0 != NULL);
	cleanup_free char *cache = tpath("cache");
	const char *layers[] = {p0};
	const char *dirs[] = {"/proc", "/dev", "/tmp", "/var/task", "//work//dir/", NULL};
	static const char digest[] =
	    "sha256:0123456789012345678901234567890123456789012345678901234567890123";
	ocil_unpack_opts o = {0};
	ocil_error *err = NULL;
	bool made = false;
	CHECK_OK(ocil_unpack_cached(cache, digest, layers, 1, dirs, &o, &made, &err), &err);
	CHECK(made);
	cleanup_free char *path = ocil_unpack_cache_path(cache, digest);
	cleanup_free char *hello = ocil_xasprintf("%s/hello", path);
	struct stat a, b;
	CHECK(stat(hello, &a) == 0);
	CHECK((mode_of(
		   "cache/rootfs/0123456789012345678901234567890123456789012345678901234567890123/"
		   "tmp") &
	       07777) == 01777);
	CHECK(S_ISDIR(
	    mode_of("cache/rootfs/0123456789012345678901234567890123456789012345678901234567890123/"
		    "work/dir")));
	CHECK_OK(ocil_unpack_cached(cache, digest, layers, 1, dirs, &o, &made, &err), &err);
	CHECK(!made);
	CHECK(stat(hello, &b) == 0 && a.st_ino == b.st_ino);
	/* a crashed run's leftovers go with the next unpack */
	CHECK(putn("cache/rootfs/.tmp-crashed.123456/x", "x", 1, 0644) == 0);
	static const char other[] =
	    "sha256:1123456789012345678901234567890123456789012345678901234567890123";
	CHECK_OK(ocil_unpack_cached(cache, other, layers, 1, NULL, &o, &made, &err), &err);
	CHECK(made);
	CHECK(!exists("cache/rootfs/.tmp-crashed.123456"));
	CHECK(count_entries("cache/rootfs") == 3); /* .lock and two trees */
	/* a failed unpack leaves nothing */
	const char *bad[] = {"/nonexistent/layer"};
	static const char third[] =
	    "sha256:2123456789012345678901234567890123456789012345678901234567890123";
	CHECK(ocil_unpack_cached(cache, third, bad, 1, NULL, &o, &made, &err) < 0);
	ocil_error_free(err);
	err = NULL;
	CHECK(count_entries("cache/rootfs") == 3);
}

TEST_MAIN(T(test_basic_tree), T(test_whiteouts), T(test_dotdot_refused),
	  T(test_absolute_names_stay_inside), T(test_symlink_parents_stay_inside), T(test_cached))
