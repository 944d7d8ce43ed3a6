/* tarstream: layers crafted with libarchive's writer (pax, GNU, gzip, zstd),
 * including hostile names and damaged streams. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "oci/tarstream.h"
#include "support_tar.h"
#include "test.h"

#define PAX ARCHIVE_FORMAT_TAR_PAX_RESTRICTED

static void normalizes_paths(void)
{
	const tent ents[] = {
	    {"./", 'd', NULL, 0, 0},
	    {"./a/", 'd', NULL, 0, 0},
	    {"a//b/./c", 'f', "hello", 0, 0},
	    {"/abs/x", 'f', "", 0, 0},
	    {"s", 'l', "../../etc/passwd", 0, 0},
	    {"./h", 'h', "./a//b/./c", 0, 0},
	    {"dev/null", 'c', NULL, 0, 0},
	};
	cleanup_free char *p = mk_tar("l.tar", NULL, PAX, ents, NENTS(ents));
	CHECK(p != NULL);
	ocil_error *err = NULL;
	cleanup_tarstream ocil_tarstream *ts = NULL;
	CHECK_OK(ocil_tarstream_open_path(p, "layer T", &ts, &err), &err);
	CHECK_STREQ(ocil_tarstream_what(ts), "layer T");
	const ocil_tar_entry *e;

	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/");
	CHECK(e->type == OCIL_TAR_DIR && e->index == 0);

	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/a");
	CHECK(e->type == OCIL_TAR_DIR && S_ISDIR(e->mode) && (e->mode & 07777) == 0755);

	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/a/b/c");
	CHECK(e->type == OCIL_TAR_FILE && e->size == 5 && S_ISREG(e->mode) && e->index == 2);
	size_t len = 0;
	cleanup_free char *data = slurp(ts, 2, &len, &err); /* odd chunks on purpose */
	CHECK(data != NULL && len == 5 && memcmp(data, "hello", 5) == 0);

	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/abs/x");
	CHECK(e->type == OCIL_TAR_FILE && e->size == 0);
	char b[4];
	CHECK(ocil_tarstream_read(ts, b, sizeof(b), &err) == 0);

	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/s");
	CHECK(e->type == OCIL_TAR_SYMLINK);
	CHECK_STREQ(e->link, "../../etc/passwd"); /* stored as is; rootfs resolves it */

	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/h");
	CHECK(e->type == OCIL_TAR_HARDLINK);
	CHECK_STREQ(e->link, "/a/b/c");

	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/dev/null");
	CHECK(e->type == OCIL_TAR_OTHER);

	CHECK(ocil_tarstream_next(ts, &e, &err) == 0);
	CHECK(ocil_tarstream_next(ts, &e, &err) == 0);
	CHECK(err == NULL);
}

/* Open, then read entries until one fails; returns the failing call's
 * error (or NULL if the whole layer read fine). */
static ocil_error *read_all(const char *path, const char *what, int *entries_ok)
{
	ocil_error *err = NULL;
	cleanup_tarstream ocil_tarstream *ts = NULL;
	*entries_ok = 0;
	if (ocil_tarstream_open_path(path, what, &ts, &err) < 0)
		return err;
	char buf[4096];
	for (;;) {
		const ocil_tar_entry *e;
		int r = ocil_tarstream_next(ts, &e, &err);
		if (r < 0)
			return err;
		if (r == 0)
			return NULL;
		ssize_t n;
		while ((n = ocil_tarstream_read(ts, buf, sizeof(buf), &err)) > 0)
			;
		if (n < 0)
			return err;
		(*entries_ok)++;
	}
}

#define CHECK_REJECTED(path, nok, needle1, needle2)                                                \
	do {                                                                                       \
		int _ok = 0;                                                                       \
		cleanup_error ocil_error *_e = read_all((path), "layer sha256:feed", &_ok);        \
		CHECK(_e != NULL);                                                                 \
		if (_e->code != OCIL_E_INPUT || strstr(_e->msg, "layer sha256:feed") == NULL ||    \
		    strstr(_e->msg, (needle1)) == NULL || strstr(_e->msg, (needle2)) == NULL) {    \
			fprintf(stderr, "unexpected error (code %d): %s\n", _e->code, _e->msg);    \
			CHECK(0);                                                                  \
		}                                                                                  \
		CHECK(_ok == (nok));                                                               \
	} while (0)

static void rejects_traversal(void)
{
	const tent rel[] = {{"ok", 'f', "x", 0, 0}, {"../etc/passwd", 'f', "pwned", 0, 0}};
	cleanup_free char *p1 = mk_tar("rel.tar", NULL, PAX, rel, NENTS(rel));
	CHECK(p1 != NULL);
	CHECK_REJECTED(p1, 1, "entry \"../etc/passwd\"", "path traversal");

	const tent mid[] = {{"usr/lib/../../../etc/shadow", 'f', "pwned", 0, 0}};
	cleanup_free char *p2 = mk_tar("mid.tar", NULL, PAX, mid, NENTS(mid));
	CHECK(p2 != NULL);
	CHECK_REJECTED(p2, 0, "usr/lib/../../../etc/shadow", "\"..\"");

	const tent abs[] = {{"/usr/../etc/shadow", 'f', "pwned", 0, 0}};
	cleanup_free char *p3 = mk_tar("abs.tar", "gzip", PAX, abs, NENTS(abs));
	CHECK(p3 != NULL);
	CHECK_REJECTED(p3, 0, "/usr/../etc/shadow", "path traversal");

	const tent hl[] = {{"x", 'h', "../../etc/passwd", 0, 0}};
	cleanup_free char *p4 = mk_tar("hl.tar", NULL, PAX, hl, NENTS(hl));
	CHECK(p4 != NULL);
	CHECK_REJECTED(p4, 0, "entry \"x\"", "hardlink target");

	const tent dots[] = {{"..", 'd', NULL, 0, 0}};
	cleanup_free char *p5 =
	    mk_tar("dots.tar", NULL, ARCHIVE_FORMAT_TAR_GNUTAR, dots, NENTS(dots));
	CHECK(p5 != NULL);
	CHECK_REJECTED(p5, 0, "entry \"..", "path traversal");
}

static void rejects_bad_names(void)
{
	char longname[5001];
	memset(longname, 'a', sizeof(longname) - 1);
	for (size_t i = 100; i < sizeof(longname) - 1; i += 100)
		longname[i] = '/'; /* components stay short; only the total is long */
	longname[sizeof(longname) - 1] = '\0';
	const tent lng[] = {{longname, 'f', "x", 0, 0}};
	cleanup_free char *p1 = mk_tar("long.tar", NULL, PAX, lng, NENTS(lng));
	CHECK(p1 != NULL);
	CHECK_REJECTED(p1, 0, "entry \"aaaa", "longer than 4096 bytes");

	char comp[300];
	memset(comp, 'b', sizeof(comp) - 1);
	comp[sizeof(comp) - 1] = '\0';
	const tent cmp[] = {{comp, 'f', "x", 0, 0}};
	cleanup_free char *p2 = mk_tar("comp.tar", NULL, PAX, cmp, NENTS(cmp));
	CHECK(p2 != NULL);
	CHECK_REJECTED(p2, 0, "entry \"bbbb", "component longer than 255");

	/* control characters are escaped in the message */
	const tent ctl[] = {{"a\033[31m/../x", 'f', "x", 0, 0}};
	cleanup_free char *p3 = mk_tar("ctl.tar", NULL, PAX, ctl, NENTS(ctl));
	CHECK(p3 != NULL);
	CHECK_REJECTED(p3, 0, "a\\x1b[31m/../x", "traversal");

	const tent root[] = {{".", 'f', "x", 0, 0}};
	cleanup_free char *p4 = mk_tar("root.tar", NULL, PAX, root, NENTS(root));
	CHECK(p4 != NULL);
	CHECK_REJECTED(p4, 0, "entry \".\"", "root must be a directory");
}

static void fill_random(char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char)(seed >> 16);
	}
}

static void truncated_input(void)
{
	static char big[300000];
	fill_random(big, sizeof(big), 7);
	const tent ents[] = {{"small", 'f', "abc", 0, 0}, {"big", 'f', big, sizeof(big), 0}};
	const char *filters[] = {"gzip", NULL, "zstd"};
	for (size_t f = 0; f < 3; f++) {
		cleanup_free char *name = ocil_xasprintf("t%zu.tar", f);
		cleanup_free char *p = mk_tar(name, filters[f], PAX, ents, NENTS(ents));
		CHECK(p != NULL);
		int ok = 0;
		cleanup_error ocil_error *whole = read_all(p, "layer sha256:feed", &ok);
		CHECK(whole == NULL && ok == 2);

		struct stat st;
		CHECK(stat(p, &st) == 0);
		CHECK(truncate(p, st.st_size / 2) == 0);
		cleanup_error ocil_error *e = read_all(p, "layer sha256:feed", &ok);
		CHECK(e != NULL);
		if (e->code != OCIL_E_INPUT || strstr(e->msg, "layer sha256:feed") == NULL) {
			fprintf(stderr, "unexpected error: %s\n", e->msg);
			CHECK(0);
		}
		CHECK(ok == 1); /* the small file came through before the cut */
	}
}

static void rejects_other_formats(void)
{
	const tent ents[] = {{"x", 'f', "hello", 0, 0}};
	cleanup_free char *zip = mk_tar("x.zip", NULL, ARCHIVE_FORMAT_ZIP, ents, NENTS(ents));
	CHECK(zip != NULL);
	int ok = 0;
	cleanup_error ocil_error *e1 = read_all(zip, "layer Z", &ok);
	CHECK(e1 != NULL && e1->code == OCIL_E_INPUT && strstr(e1->msg, "layer Z: tar:") != NULL);

	/* a compressor we do not accept, around a valid tar */
	char *xz = ocil_xasprintf("%s/x.tar.xz", ocil_test_tmpdir());
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_xz(a);
	CHECK(archive_write_open_filename(a, xz) == ARCHIVE_OK);
	archive_write_free(a); /* an empty archive is enough */
	cleanup_error ocil_error *e2 = read_all(xz, "layer X", &ok);
	free(xz);
	CHECK(e2 != NULL && e2->code == OCIL_E_INPUT);

	cleanup_free char *junk = ocil_xasprintf("%s/junk", ocil_test_tmpdir());
	ocil_error *err = NULL;
	CHECK_OK(ocil_write_file_atomic(junk, "this is not a tar archive at all\n", 33, &err),
		 &err);
	cleanup_error ocil_error *e3 = read_all(junk, "layer J", &ok);
	CHECK(e3 != NULL && e3->code == OCIL_E_INPUT);

	cleanup_error ocil_error *e4 = read_all("/nonexistent/layer", "layer N", &ok);
	CHECK(e4 != NULL && strstr(e4->msg, "layer N") != NULL);
}

static void streams_from_fd(void)
{
	static char big[200000];
	fill_random(big, sizeof(big), 3);
	const tent ents[] = {{"skipped", 'f', big, sizeof(big), 0},
			     {"usr/", 'd', NULL, 0, 0},
			     {"usr/big", 'f', big, sizeof(big), 0}};
	cleanup_free char *p =
	    mk_tar("fd.tar.zst", "zstd", ARCHIVE_FORMAT_TAR_GNUTAR, ents, NENTS(ents));
	CHECK(p != NULL);
	cleanup_close int fd = open(p, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	ocil_error *err = NULL;
	cleanup_tarstream ocil_tarstream *ts = NULL;
	CHECK_OK(ocil_tarstream_open_fd(fd, "layer F", &ts, &err), &err);
	const ocil_tar_entry *e;
	CHECK(ocil_tarstream_next(ts, &e, &err) == 1); /* data left unread */
	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/usr");
	CHECK(ocil_tarstream_next(ts, &e, &err) == 1);
	CHECK_STREQ(e->path, "/usr/big");
	CHECK(e->size == sizeof(big));
	size_t len = 0;
	cleanup_free char *data = slurp(ts, 4093, &len, &err);
	CHECK(data != NULL && len == sizeof(big) && memcmp(data, big, len) == 0);
	CHECK(ocil_tarstream_next(ts, &e, &err) == 0);
	ocil_tarstream_free(steal_pointer(&ts));
	CHECK(fcntl(fd, F_GETFD) >= 0); /* still ours */
}

static void quotes_names(void)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	CHECK_STREQ(ocil_tar_quote("a\x01\"b\\", q), "a\\x01\\\"b\\\\");
	char lng[1000];
	memset(lng, '\xff', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	ocil_tar_quote(lng, q);
	CHECK(strlen(q) < OCIL_TAR_QUOTE_SIZE);
	CHECK(ocil_str_has_suffix(q, "..."));
}

TEST_MAIN(T(normalizes_paths), T(rejects_traversal), T(rejects_bad_names), T(truncated_input),
	  T(rejects_other_formats), T(streams_from_fd), T(quotes_names))
