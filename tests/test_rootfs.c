/* rootfs: merged views of layers crafted with libarchive's writer. */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "oci/rootfs.h"
#include "support_tar.h"
#include "test.h"

/* Layers here are pax; gzip and zstd as the filter says. */
#define LAYER(fname, filter, ents)                                                                 \
	mk_tar(fname, filter, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ents, NENTS(ents))

/* Open a rootfs over up to 4 layer files (NULL-terminated). */
static ocil_rootfs *open_fs(const char *l0, const char *l1, const char *l2, const char *l3)
{
	const char *paths[] = {l0, l1, l2, l3};
	size_t n = 0;
	while (n < 4 && paths[n] != NULL)
		n++;
	ocil_rootfs *fs = NULL;
	ocil_error *err = NULL;
	if (ocil_rootfs_open(paths, n, NULL, &fs, &err) < 0) {
		fprintf(stderr, "ocil_rootfs_open: %s\n", err->msg);
		ocil_error_free(err);
		return NULL;
	}
	return fs;
}

/* dir's listing joined with ",". */
static char *list(ocil_rootfs *fs, const char *dir)
{
	cleanup_strv ocil_strv names = {0};
	ocil_error *err = NULL;
	int r = ocil_rootfs_list(fs, dir, &names, &err);
	if (r < 0) {
		fprintf(stderr, "list %s: %s\n", dir, err->msg);
		ocil_error_free(err);
		return ocil_xstrdup("(error)");
	}
	if (r == 0)
		return ocil_xstrdup("(none)");
	size_t len = 1;
	for (size_t i = 0; i < names.n; i++)
		len += strlen(names.v[i]) + 1;
	char *s = ocil_xcalloc(1, len);
	for (size_t i = 0; i < names.n; i++) {
		if (i > 0)
			strcat(s, ",");
		strcat(s, names.v[i]);
	}
	return s;
}

/* Content of a file node, read through open_file; NULL unless it is
 * exactly node->size bytes. */
static char *content(ocil_rootfs *fs, const ocil_rootfs_node *node)
{
	cleanup_error ocil_error *err = NULL;
	cleanup_tarstream ocil_tarstream *ts = NULL;
	if (ocil_rootfs_open_file(fs, node, &ts, &err) < 0) {
		fprintf(stderr, "open_file: %s\n", err->msg);
		return NULL;
	}
	size_t len = 0;
	cleanup_free char *buf = slurp(ts, 4096, &len, &err);
	if (buf == NULL || len != node->size) {
		fprintf(stderr, "reading a node of %llu bytes: %s\n",
			(unsigned long long)node->size, err ? err->msg : "wrong length");
		return NULL;
	}
	return steal_pointer(&buf);
}

/* lookup with follow, expecting a file with this content */
#define CHECK_FILE(fs_, path_, want)                                                               \
	do {                                                                                       \
		cleanup_rootfs_node ocil_rootfs_node _n = {0};                                     \
		ocil_error *_err = NULL;                                                           \
		int _r = ocil_rootfs_lookup((fs_), (path_), true, &_n, &_err);                     \
		if (_r != 1)                                                                       \
			fprintf(stderr, "lookup %s: %d %s\n", (path_), _r,                         \
				_err ? _err->msg : _n.missing);                                    \
		CHECK(_r == 1);                                                                    \
		CHECK(_n.type == OCIL_TAR_FILE);                                                   \
		cleanup_free char *_c = content((fs_), &_n);                                       \
		CHECK_STREQ(_c, (want));                                                           \
	} while (0)

#define CHECK_MISSING(fs_, path_, needle)                                                          \
	do {                                                                                       \
		cleanup_rootfs_node ocil_rootfs_node _n = {0};                                     \
		ocil_error *_err = NULL;                                                           \
		int _r = ocil_rootfs_lookup((fs_), (path_), true, &_n, &_err);                     \
		if (_r != 0 || strstr(_n.missing, (needle)) == NULL)                               \
			fprintf(stderr, "lookup %s: %d %s\n", (path_), _r,                         \
				_err	     ? _err->msg                                           \
				: _n.missing ? _n.missing                                          \
					     : _n.path);                                           \
		CHECK(_r == 0);                                                                    \
		CHECK(strstr(_n.missing, (needle)) != NULL);                                       \
	} while (0)

#define CHECK_LIST(fs, dir, want)                                                                  \
	do {                                                                                       \
		cleanup_free char *_l = list((fs), (dir));                                         \
		CHECK_STREQ(_l, (want));                                                           \
	} while (0)

static void whiteout_file(void)
{
	const tent l0[] = {
	    {"a/", 'd', NULL, 0, 0}, {"a/f1", 'f', "one", 0, 0}, {"a/f2", 'f', "two", 0, 0}};
	const tent l1[] = {{"a/", 'd', NULL, 0, 0}, {"a/.wh.f1", 'f', "", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	cleanup_free char *p1 = LAYER("l1.tar.gz", "gzip", l1);
	CHECK(p0 && p1);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1, NULL, NULL);
	CHECK(fs != NULL);
	CHECK(ocil_rootfs_layer_count(fs) == 2);
	CHECK_MISSING(fs, "/a/f1", "/a/f1 was deleted by a whiteout in layer 1");
	CHECK_FILE(fs, "/a/f2", "two");
	CHECK_LIST(fs, "/a", "f2");
	CHECK_MISSING(fs, "/a/.wh.f1", "does not exist"); /* markers are never visible */

	/* the whiteout only affects the view with it: layer 0 alone has f1 */
	cleanup_rootfs ocil_rootfs *lower = open_fs(p0, NULL, NULL, NULL);
	CHECK(lower != NULL);
	CHECK_FILE(lower, "/a/f1", "one");
}

static void whiteout_dir(void)
{
	const tent l0[] = {
	    {"d/x/y", 'f', "deep", 0, 0}, {"d/z", 'f', "z", 0, 0}, {"keep", 'f', "k", 0, 0}};
	const tent l1[] = {{".wh.d", 'f', "", 0, 0}};
	const tent l2[] = {{"d/new", 'f', "new", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar.gz", "gzip", l0);
	cleanup_free char *p1 = LAYER("l1.tar", NULL, l1);
	cleanup_free char *p2 = LAYER("l2.tar.gz", "gzip", l2);
	CHECK(p0 && p1 && p2);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1, NULL, NULL);
	CHECK(fs != NULL);
	CHECK_MISSING(fs, "/d", "/d was deleted by a whiteout in layer 1");
	CHECK_MISSING(fs, "/d/x/y", "/d was deleted");
	CHECK_LIST(fs, "/", "keep");
	CHECK_LIST(fs, "/d", "(none)");

	/* a later layer re-creating the directory starts from nothing */
	cleanup_rootfs ocil_rootfs *fs2 = open_fs(p0, p1, p2, NULL);
	CHECK(fs2 != NULL);
	CHECK_LIST(fs2, "/", "d,keep");
	CHECK_LIST(fs2, "/d", "new");
	CHECK_MISSING(fs2, "/d/x/y", "/d/x was deleted by a whiteout in layer 1");
}

static void opaque_dir(void)
{
	const tent l0[] = {{"o/old1", 'f', "1", 0, 0},
			   {"o/sub/old2", 'f', "2", 0, 0},
			   {"o/mine", 'f', "lower mine", 0, 0},
			   {"other/x", 'f', "x", 0, 0}};
	/* the layer's own entries before and after the marker both stay */
	const tent l1[] = {{"o/", 'd', NULL, 0, 0700},
			   {"o/mine", 'f', "upper mine", 0, 0},
			   {"o/.wh..wh..opq", 'f', "", 0, 0},
			   {"o/sub/mine2", 'f', "m2", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	cleanup_free char *p1 = LAYER("l1.tar.gz", "gzip", l1);
	CHECK(p0 && p1);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1, NULL, NULL);
	CHECK(fs != NULL);
	CHECK_LIST(fs, "/o", "mine,sub");
	CHECK_LIST(fs, "/o/sub", "mine2");
	CHECK_FILE(fs, "/o/mine", "upper mine");
	CHECK_MISSING(fs, "/o/old1", "hidden by an opaque directory in layer 1");
	CHECK_MISSING(fs, "/o/sub/old2", "hidden by an opaque directory in layer 1");
	CHECK_LIST(fs, "/other", "x");
	cleanup_rootfs_node ocil_rootfs_node n = {0};
	ocil_error *err = NULL;
	CHECK(ocil_rootfs_lookup(fs, "/o", false, &n, &err) == 1);
	CHECK(n.type == OCIL_TAR_DIR && (n.mode & 07777) == 0700 && n.layer == 1);
	CHECK_LIST(fs, "/", "o,other");
}

static void replaced_by_file(void)
{
	const tent l0[] = {
	    {"p/q/r", 'f', "r", 0, 0}, {"p/s", 'f', "s", 0, 0}, {"lnk", 'l', "p", 0, 0}};
	/* a file over a directory, and a directory over a symlink */
	const tent l1[] = {{"p/q", 'f', "now a file", 0, 0}, {"lnk/own", 'f', "own", 0, 0}};
	/* a directory again: the old contents do not come back */
	const tent l2[] = {{"p/q/", 'd', NULL, 0, 0}, {"p/q/new", 'f', "new", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	cleanup_free char *p1 = LAYER("l1.tar", NULL, l1);
	cleanup_free char *p2 = LAYER("l2.tar", NULL, l2);
	CHECK(p0 && p1 && p2);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1, NULL, NULL);
	CHECK(fs != NULL);
	CHECK_FILE(fs, "/p/q", "now a file");
	CHECK_MISSING(fs, "/p/q/r", "/p/q is not a directory");
	CHECK_FILE(fs, "/p/s", "s");
	CHECK_LIST(fs, "/lnk", "own");
	CHECK_MISSING(fs, "/lnk/s", "/lnk/s does not exist");
	cleanup_rootfs ocil_rootfs *fs2 = open_fs(p0, p1, p2, NULL);
	CHECK(fs2 != NULL);
	CHECK_LIST(fs2, "/p/q", "new");
	CHECK_MISSING(fs2, "/p/q/r", "/p/q/r was replaced by a non-directory in layer 1");
}

static void symlinks(void)
{
	const tent l0[] = {
	    {"usr/bin/python3.8", 'f', "PY", 0, 0755},
	    {"usr/lib/libx.so", 'f', "LIB", 0, 0},
	    {"etc/passwd", 'f', "root:x:0:0", 0, 0},
	    {"lib", 'l', "usr/lib", 0, 0},			  /* relative */
	    {"abs", 'l', "/usr/bin", 0, 0},			  /* absolute */
	    {"usr/bin/rel", 'l', "python3.8", 0, 0},		  /* same dir */
	    {"usr/bin/up", 'l', "../lib/libx.so", 0, 0},	  /* ".." */
	    {"chain", 'l', "/abs/rel", 0, 0},			  /* through a dir link */
	    {"deep", 'l', "../../../../usr/bin/python3.8", 0, 0}, /* clamped at / */
	    {"escape", 'l', "../../../../etc/passwd", 0, 0},	  /* stays in the image */
	    {"hostabs", 'l', "/etc/passwd", 0, 0},
	    {"loop1", 'l', "loop2", 0, 0},
	    {"loop2", 'l', "/loop1", 0, 0},
	    {"self", 'l', "self", 0, 0},
	    {"dangling", 'l', "/nope/x", 0, 0},
	    {"trail", 'l', "usr/bin/python3.8/", 0, 0},
	    {"usr/lib/abs2", 'l', "/etc/passwd", 0, 0}, /* absolute, from below the root */
	};
	cleanup_free char *p0 = LAYER("l0.tar.zst", "zstd", l0);
	CHECK(p0);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, NULL, NULL, NULL);
	CHECK(fs != NULL);
	CHECK_FILE(fs, "/lib/libx.so", "LIB");
	CHECK_FILE(fs, "/abs/python3.8", "PY");
	CHECK_FILE(fs, "/usr/bin/rel", "PY");
	CHECK_FILE(fs, "/abs/up", "LIB");
	CHECK_FILE(fs, "/chain", "PY");
	CHECK_FILE(fs, "/deep", "PY");
	CHECK_FILE(fs, "/escape", "root:x:0:0");
	CHECK_FILE(fs, "/hostabs", "root:x:0:0");
	CHECK_FILE(fs, "/lib/abs2", "root:x:0:0");
	CHECK_FILE(fs, "/../../usr/bin/python3.8", "PY");
	CHECK_FILE(fs, "usr//bin/./python3.8", "PY");
	/* ".." after a directory symlink is the physical parent (/usr) */
	CHECK_FILE(fs, "/lib/../bin/python3.8", "PY");
	CHECK_MISSING(fs, "/dangling", "/nope does not exist");
	CHECK_MISSING(fs, "/trail", "/usr/bin/python3.8 is not a directory");
	CHECK_MISSING(fs, "/usr/bin/python3.8/", "is not a directory");

	ocil_error *err = NULL;
	cleanup_rootfs_node ocil_rootfs_node n = {0};
	CHECK(ocil_rootfs_lookup(fs, "/chain", true, &n, &err) == 1);
	CHECK_STREQ(n.path, "/usr/bin/python3.8");
	CHECK_STREQ(n.layer_path, "/usr/bin/python3.8");
	CHECK(n.size == 2 && (n.mode & 07777) == 0755 && n.layer == 0);
	CHECK(ocil_rootfs_lookup(fs, "/abs", false, &n, &err) == 1); /* node reused */
	CHECK(n.type == OCIL_TAR_SYMLINK);
	CHECK_STREQ(n.link, "/usr/bin");
	CHECK_STREQ(n.path, "/abs");
	CHECK(ocil_rootfs_lookup(fs, "/abs", true, &n, &err) == 1);
	CHECK(n.type == OCIL_TAR_DIR);
	CHECK_STREQ(n.path, "/usr/bin");
	/* only the last component is left alone without follow */
	CHECK(ocil_rootfs_lookup(fs, "/abs/rel", false, &n, &err) == 1);
	CHECK(n.type == OCIL_TAR_SYMLINK);
	CHECK_STREQ(n.path, "/usr/bin/rel");
	CHECK(ocil_rootfs_lookup(fs, "/loop1", false, &n, &err) == 1);
	CHECK(n.type == OCIL_TAR_SYMLINK);

	CHECK_FAIL(ocil_rootfs_lookup(fs, "/loop1", true, &n, &err), &err, OCIL_E_INPUT,
		   "/loop1: too many levels of symbolic links");
	CHECK_FAIL(ocil_rootfs_lookup(fs, "/self/x", false, &n, &err), &err, OCIL_E_INPUT,
		   "too many levels of symbolic links");
	cleanup_strv ocil_strv names = {0};
	CHECK_FAIL(ocil_rootfs_list(fs, "/loop2", &names, &err), &err, OCIL_E_INPUT,
		   "too many levels");

	/* listing goes through links too */
	CHECK_LIST(fs, "/abs", "python3.8,rel,up");
	CHECK_LIST(fs, "/lib/", "abs2,libx.so");
	CHECK_LIST(fs, "/usr/bin/python3.8", "(none)");
	CHECK_LIST(fs, "/",
		   "abs,chain,dangling,deep,escape,etc,hostabs,lib,loop1,loop2,self,trail,usr");
}

/* Exactly OCIL_ROOTFS_MAX_HOPS links are followed, one more is an error. */
static void hop_limit(void)
{
	tent l0[OCIL_ROOTFS_MAX_HOPS + 2];
	char names[OCIL_ROOTFS_MAX_HOPS + 1][16], targets[OCIL_ROOTFS_MAX_HOPS + 1][16];
	/* h0 -> h1 -> ... -> h39 -> f, and g -> h0 */
	for (int i = 0; i < OCIL_ROOTFS_MAX_HOPS; i++) {
		snprintf(names[i], sizeof(names[i]), "h%d", i);
		if (i + 1 == OCIL_ROOTFS_MAX_HOPS)
			snprintf(targets[i], sizeof(targets[i]), "f");
		else
			snprintf(targets[i], sizeof(targets[i]), "h%d", i + 1);
		l0[i] = (tent){names[i], 'l', targets[i], 0, 0};
	}
	l0[OCIL_ROOTFS_MAX_HOPS] = (tent){"g", 'l', "h0", 0, 0};
	l0[OCIL_ROOTFS_MAX_HOPS + 1] = (tent){"f", 'f', "end", 0, 0};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	CHECK(p0);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, NULL, NULL, NULL);
	CHECK(fs != NULL);
	CHECK_FILE(fs, "/h0", "end");
	ocil_error *err = NULL;
	cleanup_rootfs_node ocil_rootfs_node n = {0};
	CHECK_FAIL(ocil_rootfs_lookup(fs, "/g", true, &n, &err), &err, OCIL_E_INPUT,
		   "/g: too many levels of symbolic links");
}

static void hardlinks(void)
{
	const tent l0[] = {{"bin/a", 'f', "DATA", 0, 0750}, {"bin/b", 'h', "bin/a", 0, 0}};
	const tent l1[] = {{"bin/a", 'f', "NEW", 0, 0}, {"bin/c", 'h', "./bin/b", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar.gz", "gzip", l0);
	cleanup_free char *p1 = LAYER("l1.tar", NULL, l1);
	CHECK(p0 && p1);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1, NULL, NULL);
	CHECK(fs != NULL);
	/* the link keeps the data it was made with, whatever replaces the
	 * original later */
	CHECK_FILE(fs, "/bin/a", "NEW");
	CHECK_FILE(fs, "/bin/b", "DATA");
	CHECK_FILE(fs, "/bin/c", "DATA");
	ocil_error *err = NULL;
	cleanup_rootfs_node ocil_rootfs_node n = {0};
	CHECK(ocil_rootfs_lookup(fs, "/bin/c", true, &n, &err) == 1);
	CHECK_STREQ(n.path, "/bin/c");
	CHECK_STREQ(n.layer_path, "/bin/a");
	CHECK(n.layer == 0 && n.size == 4 && (n.mode & 07777) == 0750 && n.type == OCIL_TAR_FILE);

	const tent bad[] = {{"x", 'h', "missing", 0, 0}};
	cleanup_free char *pb = LAYER("bad.tar", NULL, bad);
	CHECK(pb);
	const char *paths[] = {p0, pb};
	ocil_rootfs *fs2 = NULL;
	CHECK_FAIL(ocil_rootfs_open(paths, 2, NULL, &fs2, &err), &err, OCIL_E_INPUT,
		   "entry \"/x\": hardlink to \"/missing\", which is not in the image");
	CHECK(fs2 == NULL);
}

static void file_in_middle_layer(void)
{
	static char big[150000];
	unsigned seed = 1;
	for (size_t i = 0; i < sizeof(big) - 1; i++) {
		seed = seed * 1103515245u + 12345u;
		big[i] = (char)('a' + (seed >> 16) % 26);
	}
	const tent l0[] = {{"x/other", 'f', "other", 0, 0},
			   {"var/lang/bin/python3.8", 'f', "OLD", 0, 0}};
	const tent l1[] = {{"var/lang/bin/python3.8", 'f', "decoy", 0, 0},
			   {"var/lang/bin/python3.8", 'f', big, 0, 0755},
			   {"var/lang/bin/after", 'f', "after", 0, 0}};
	const tent l2[] = {{"tmp/foo", 'f', "foo", 0, 0}, {"x/.wh.other", 'f', "", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	cleanup_free char *p1 = LAYER("l1.tar.gz", "gzip", l1);
	cleanup_free char *p2 = LAYER("l2.tar.zst", "zstd", l2);
	CHECK(p0 && p1 && p2);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1, p2, NULL);
	CHECK(fs != NULL);
	ocil_error *err = NULL;
	cleanup_rootfs_node ocil_rootfs_node n = {0};
	CHECK(ocil_rootfs_lookup(fs, "/var/lang/bin/python3.8", true, &n, &err) == 1);
	/* the same path twice in one layer: the later entry wins */
	CHECK(n.layer == 1 && n.entry_index == 1 && n.size == strlen(big));
	CHECK_FILE(fs, "/var/lang/bin/python3.8", big);
	CHECK_FILE(fs, "/var/lang/bin/after", "after");
	CHECK_FILE(fs, "/tmp/foo", "foo");
	CHECK_MISSING(fs, "/x/other", "deleted by a whiteout in layer 2");
	/* implicit parents exist as directories */
	CHECK_LIST(fs, "/var/lang", "bin");
	CHECK(ocil_rootfs_lookup(fs, "/var", true, &n, &err) == 1);
	CHECK(n.type == OCIL_TAR_DIR && n.entry_index == OCIL_ROOTFS_NO_ENTRY);
	CHECK_FAIL(ocil_rootfs_open_file(fs, &n, NULL, &err), &err, OCIL_E_INPUT,
		   "not a regular file");
}

static void bad_layers(void)
{
	const tent ok[] = {{"a", 'f', "a", 0, 0}};
	const tent trav[] = {{"b", 'f', "b", 0, 0}, {"../../etc/shadow", 'f', "x", 0, 0}};
	cleanup_free char *p0 = LAYER("ok.tar", NULL, ok);
	cleanup_free char *p1 = LAYER("trav.tar", NULL, trav);
	CHECK(p0 && p1);
	const char *paths[] = {p0, p1};
	ocil_rootfs *fs = NULL;
	ocil_error *err = NULL;
	CHECK_FAIL(ocil_rootfs_open(paths, 2, NULL, &fs, &err), &err, OCIL_E_INPUT,
		   "trav.tar): entry \"../../etc/shadow\": \"..\" component");

	/* blob store paths are named by digest */
	cleanup_free char *dir = ocil_xasprintf("%s/blobs/sha256", ocil_test_tmpdir());
	CHECK_OK(ocil_mkdir_p(dir, 0755, &err), &err);
	cleanup_free char *blob = ocil_xasprintf(
	    "%s/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", dir);
	CHECK(rename(p1, blob) == 0);
	paths[1] = blob;
	CHECK_FAIL(
	    ocil_rootfs_open(paths, 2, NULL, &fs, &err), &err, OCIL_E_INPUT,
	    "layer 1 (sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef)"
	    ": entry \"../../etc/shadow\"");

	const tent wh[] = {{"d/.wh.", 'f', "", 0, 0}};
	cleanup_free char *p2 = LAYER("wh.tar", NULL, wh);
	CHECK(p2);
	paths[1] = p2;
	CHECK_FAIL(ocil_rootfs_open(paths, 2, NULL, &fs, &err), &err, OCIL_E_INPUT,
		   "invalid whiteout");

	volatile int flag = 1;
	ocil_cancel cancel = {&flag};
	CHECK_FAIL(ocil_rootfs_open(paths, 1, &cancel, &fs, &err), &err, OCIL_E_CANCELLED,
		   "interrupted");
	CHECK(fs == NULL);
}

TEST_MAIN(T(whiteout_file), T(whiteout_dir), T(opaque_dir), T(replaced_by_file), T(symlinks),
	  T(hop_limit), T(hardlinks), T(file_in_middle_layer), T(bad_layers))
