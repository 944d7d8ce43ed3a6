/* layers/runtime: finding the base's python and the patch layer, read back
 * with libarchive directly. */
#include <archive.h>
#include <archive_entry.h>
#include <string.h>
#include <sys/stat.h>

#include "base/blobstore.h"
#include "base/util.h"
#include "layers/pylink.h"
#include "oci/layer_writer.h"
#include "oci/rootfs.h"
#include "support_tar.h"
#include "test.h"

/* Layers here are GNU tars, gzipped when the filter says "gzip". */
#define GNUTAR ARCHIVE_FORMAT_TAR_GNUTAR
#define LAYER(fname, filter, ents) mk_tar(fname, filter, GNUTAR, ents, NENTS(ents))

static ocil_rootfs *open_fs(const char *l0, const char *l1)
{
	const char *paths[] = {l0, l1};
	ocil_rootfs *fs = NULL;
	ocil_error *err = NULL;
	if (ocil_rootfs_open(paths, l1 ? 2 : 1, NULL, &fs, &err) < 0) {
		fprintf(stderr, "ocil_rootfs_open: %s\n", err->msg);
		ocil_error_free(err);
		return NULL;
	}
	return fs;
}

static void list_pythons_only_minors(void)
{
	const tent l0[] = {
	    {"var/lang/bin/python3.8", 'f', "PY38", 0, 0755},
	    {"var/lang/bin/python3.8-config", 'f', "#!/bin/sh", 0, 0755},
	    {"var/lang/bin/python3", 'l', "python3.8", 0, 0},
	    {"var/lang/bin/python", 'l', "python3", 0, 0},
	    {"var/lang/bin/python3.7", 'f', "PY37", 0, 0755},	  /* whiteouted above */
	    {"var/lang/bin/python3.9", 'l', "python3.9.1", 0, 0}, /* dangling */
	    {"var/lang/bin/python3.11/", 'd', NULL, 0, 0},	  /* not a file */
	    {"var/lang/bin/python3.x", 'f', "?", 0, 0},
	    {"var/lang/bin/python3.8m", 'f', "?", 0, 0},
	    {"var/lang/bin/xpython3.6", 'f', "?", 0, 0},
	};
	const tent l1[] = {{"var/lang/bin/.wh.python3.7", 'f', "", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	cleanup_free char *p1 = LAYER("l1.tar.gz", "gzip", l1);
	CHECK(p0 && p1);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1);
	CHECK(fs != NULL);
	cleanup_strv ocil_strv minors = {0};
	ocil_error *err = NULL;
	CHECK_OK(ocil_pylink_list_pythons(fs, &minors, &err), &err);
	CHECK(minors.n == 1);
	CHECK_STREQ(minors.v[0], "3.8");
}

static void list_pythons_sorted(void)
{
	const tent l0[] = {
	    {"opt/py/python3.12", 'f', "PY312", 0, 0755},
	    {"var/lang/bin/python3.10", 'f', "PY310", 0, 0755},
	    {"var/lang/bin/python3.9", 'f', "PY39", 0, 0755},
	    {"var/lang/bin/python3.12", 'l', "/opt/py/python3.12", 0, 0},
	    {"var/lang/bin/python3.13", 'l', "python3.13", 0, 0}, /* a loop: skipped */
	};
	const tent none[] = {{"etc/os-release", 'f', "ID=amzn", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	cleanup_free char *pn = LAYER("none.tar", NULL, none);
	CHECK(p0 && pn);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, NULL);
	CHECK(fs != NULL);
	cleanup_strv ocil_strv minors = {0};
	ocil_error *err = NULL;
	CHECK_OK(ocil_pylink_list_pythons(fs, &minors, &err), &err);
	CHECK(minors.n == 3);
	CHECK_STREQ(minors.v[0], "3.9");
	CHECK_STREQ(minors.v[1], "3.10");
	CHECK_STREQ(minors.v[2], "3.12");

	cleanup_rootfs ocil_rootfs *empty = open_fs(pn, NULL);
	CHECK(empty != NULL);
	cleanup_strv ocil_strv none_found = {0};
	CHECK_OK(ocil_pylink_list_pythons(empty, &none_found, &err), &err);
	CHECK(none_found.n == 0);
}

static void fill_bytes(char *buf, size_t n)
{
	unsigned seed = 42;
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char)(seed >> 16); /* includes NUL bytes */
	}
}

static void writes_layer(void)
{
	static char py[300000];
	fill_bytes(py, sizeof(py));
	const tent l0[] = {
	    {"var/", 'd', NULL, 0, 0},
	    {"var/lang/", 'd', NULL, 0, 0},
	    {"var/lang/bin/", 'd', NULL, 0, 0},
	    {"var/lang/bin/python3.8.17", 'f', py, sizeof(py), 0750},
	    {"var/lang/bin/python3.8", 'l', "python3.8.17", 0, 0},
	};
	/* an unrelated top layer */
	const tent l1[] = {{"var/task/app.py", 'f', "print(1)", 0, 0}};
	cleanup_free char *p0 = LAYER("l0.tar.gz", "gzip", l0);
	cleanup_free char *p1 = LAYER("l1.tar", NULL, l1);
	CHECK(p0 && p1);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1);
	CHECK(fs != NULL);

	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(open_layer_writer(&bs, &w, &err), &err);
	CHECK_OK(ocil_pylink_write_layer(fs, "3.8", "/opt/conda-env/", w, &err), &err);
	ocil_layer_result res;
	CHECK_OK(ocil_layer_writer_finish(w, &res, &err), &err);
	CHECK(res.entries == 5);

	cleanup_free char *blob = ocil_blobstore_path(bs, res.digest);
	struct archive *a = archive_read_new();
	archive_read_support_format_all(a);
	archive_read_support_filter_all(a);
	CHECK(archive_read_open_filename(a, blob, 10240) == ARCHIVE_OK);
	const char *want[] = {"var/", "var/lang/", "var/lang/bin/", "var/lang/bin/python3.8",
			      "var/lang/bin/python3.8-clean"};
	struct archive_entry *e;
	size_t i = 0;
	int ok = 1;
	cleanup_free char *got = ocil_xmalloc(sizeof(py) + 1);
	la_ssize_t got_len = -1;
	int r = ARCHIVE_FATAL;
	while (ok && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		ok = i < NENTS(want) && strcmp(archive_entry_pathname(e), want[i]) == 0;
		if (!ok)
			fprintf(stderr, "entry %zu: %s\n", i, archive_entry_pathname(e));
		if (ok && i < 3)
			ok = archive_entry_filetype(e) == AE_IFDIR;
		if (ok && i == 3)
			ok = archive_entry_filetype(e) == AE_IFLNK &&
			     strcmp(archive_entry_symlink(e), "/opt/conda-env/bin/python") == 0;
		if (ok && i == 4) {
			ok = archive_entry_filetype(e) == AE_IFREG &&
			     archive_entry_perm(e) == 0755 && archive_entry_uid(e) == 0 &&
			     archive_entry_size(e) == (la_int64_t)sizeof(py);
			got_len = 0;
			la_ssize_t n;
			while ((n = archive_read_data(a, got + got_len,
						      sizeof(py) + 1 - (size_t)got_len)) > 0)
				got_len += n;
		}
		i++;
	}
	archive_read_free(a);
	CHECK(ok && r == ARCHIVE_EOF && i == NENTS(want));
	CHECK(got_len == (la_ssize_t)sizeof(py) && memcmp(got, py, sizeof(py)) == 0);
}

/* write_layer on a base made of these two layers must fail with needle. */
static void expect_no_python(const tent *l0, size_t n0, const tent *l1, size_t n1,
			     const char *needle)
{
	cleanup_free char *p0 = mk_tar("e0.tar", NULL, GNUTAR, l0, n0);
	cleanup_free char *p1 = n1 ? mk_tar("e1.tar", NULL, GNUTAR, l1, n1) : NULL;
	CHECK(p0 && (n1 == 0 || p1));
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, p1);
	CHECK(fs != NULL);
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(open_layer_writer(&bs, &w, &err), &err);
	CHECK_FAIL(ocil_pylink_write_layer(fs, "3.8", "/opt/conda-env", w, &err), &err,
		   OCIL_E_INPUT, "base image has no /var/lang/bin/python3.8 (");
	int r = ocil_pylink_write_layer(fs, "3.8", "/opt/conda-env", w, &err);
	CHECK(r < 0 && err != NULL);
	if (strstr(err->msg, needle) == NULL) {
		fprintf(stderr, "error without \"%s\": %s\n", needle, err->msg);
		ocil_test_failed = 1;
	}
	ocil_error_free(err);
}

static void no_python_errors(void)
{
	const tent other[] = {{"var/lang/bin/python3.9", 'f', "PY39", 0, 0755}};
	expect_no_python(other, 1, NULL, 0, "(/var/lang/bin/python3.8 does not exist)");
	if (ocil_test_failed)
		return;

	const tent base[] = {{"var/lang/bin/python3.8", 'f', "PY38", 0, 0755}};
	const tent wh[] = {{"var/lang/bin/.wh.python3.8", 'f', "", 0, 0}};
	expect_no_python(base, 1, wh, 1,
			 "(/var/lang/bin/python3.8 was deleted by a whiteout in layer 1)");
	if (ocil_test_failed)
		return;

	const tent dir[] = {{"var/lang/bin/python3.8/", 'd', NULL, 0, 0}};
	expect_no_python(dir, 1, NULL, 0, "(/var/lang/bin/python3.8 is a directory)");
	if (ocil_test_failed)
		return;

	const tent dangling[] = {
	    {"var/lang/bin/python3.8", 'l', "/opt/python/bin/python3.8", 0, 0}};
	expect_no_python(dangling, 1, NULL, 0,
			 "(it is a symbolic link to \"/opt/python/bin/python3.8\" and /opt does "
			 "not exist)");
	if (ocil_test_failed)
		return;

	/* a link "outside" the image resolves inside it, and finds nothing */
	const tent escape[] = {
	    {"var/lang/bin/python3.8", 'l', "../../../../../usr/bin/python3.8", 0, 0},
	    {"usr/bin/python3", 'f', "PY", 0, 0}};
	expect_no_python(escape, 2, NULL, 0, "/usr/bin/python3.8 does not exist)");
	if (ocil_test_failed)
		return;

	const tent loop[] = {{"var/lang/bin/python3.8", 'l', "python3.8", 0, 0}};
	expect_no_python(loop, 1, NULL, 0, "too many levels of symbolic links)");
}

static void bad_arguments(void)
{
	const tent l0[] = {{"var/lang/bin/python3.8", 'f', "PY38", 0, 0755}};
	cleanup_free char *p0 = LAYER("l0.tar", NULL, l0);
	CHECK(p0);
	cleanup_rootfs ocil_rootfs *fs = open_fs(p0, NULL);
	CHECK(fs != NULL);
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(open_layer_writer(&bs, &w, &err), &err);
	CHECK_FAIL(ocil_pylink_write_layer(fs, "3.8/../x", "/opt/conda-env", w, &err), &err,
		   OCIL_E_INPUT, "invalid python version");
	CHECK_FAIL(ocil_pylink_write_layer(fs, "2.7", "/opt/conda-env", w, &err), &err,
		   OCIL_E_INPUT, "invalid python version");
	CHECK_FAIL(ocil_pylink_write_layer(fs, "3.8", "opt/conda-env", w, &err), &err, OCIL_E_INPUT,
		   "is not absolute");
	/* nothing was written by the failed calls: the layer still works */
	CHECK_OK(ocil_pylink_write_layer(fs, "3.8", "/env", w, &err), &err);
	ocil_layer_result res;
	CHECK_OK(ocil_layer_writer_finish(w, &res, &err), &err);
	CHECK(res.entries == 5);
}

TEST_MAIN(T(list_pythons_only_minors), T(list_pythons_sorted), T(writes_layer), T(no_python_errors),
	  T(bad_arguments))
