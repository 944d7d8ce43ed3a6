#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "base/blobstore.h"
#include "base/util.h"
#include "test.h"

#define ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static int count_entries(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 0", dir);
	return system(cmd) == 0 ? 0 : 1;
}

static void put_and_verify(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	char d[OCIL_DIGEST_STR_SIZE];
	CHECK_OK(ocil_blobstore_put(bs, "abc", 3, d, &err), &err);
	CHECK_STREQ(d, ABC);
	CHECK(ocil_blobstore_has(bs, ABC));

	/* put_fd refuses content that does not match, and leaves nothing. */
	char *src = ocil_xasprintf("%s/src", ocil_test_tmpdir());
	CHECK_OK(ocil_write_file_atomic(src, "abd", 3, &err), &err);
	int fd = open(src, O_RDONLY);
	ocil_blobstore *bs2 = NULL;
	char *root2 = ocil_xasprintf("%s/two", ocil_test_tmpdir());
	CHECK_OK(ocil_blobstore_open(root2, &bs2, &err), &err);
	CHECK_FAIL(ocil_blobstore_put_fd(bs2, fd, ABC, 3, &err), &err, OCIL_E_INPUT,
		   "digest mismatch");
	close(fd);
	fd = open(src, O_RDONLY);
	CHECK_FAIL(ocil_blobstore_put_fd(bs2, fd, ABC, 2, &err), &err, OCIL_E_INPUT,
		   "size mismatch");
	close(fd);
	char *blobs2 = ocil_xasprintf("%s/blobs/sha256", root2);
	CHECK(count_entries(blobs2) == 0);
	free(blobs2);
	free(root2);
	free(src);
	ocil_blobstore_free(bs2);
	ocil_blobstore_free(bs);
}

static void writer_reset(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	ocil_blob_writer *w = NULL;
	CHECK_OK(ocil_blobstore_begin(bs, &w, &err), &err);
	CHECK_OK(ocil_blob_writer_write(w, "xyz", 3, &err), &err);
	CHECK(ocil_blob_writer_size(w) == 3);
	CHECK_OK(ocil_blob_writer_reset(w, &err), &err);
	CHECK(ocil_blob_writer_size(w) == 0);
	CHECK_OK(ocil_blob_writer_write(w, "ab", 2, &err), &err);
	CHECK_OK(ocil_blob_writer_write(w, "c", 1, &err), &err);
	char d[OCIL_DIGEST_STR_SIZE];
	uint64_t size = 0;
	CHECK_OK(ocil_blob_writer_commit(w, ABC, 3, d, &size, &err), &err);
	CHECK_STREQ(d, ABC);
	ocil_blob_writer_free(w);
	ocil_blobstore_free(bs);
}

/* The tap hears of every writer: its temporary file, each size, and its
 * end (committed with the digest, or dropped on reset and free). */
typedef struct {
	int begins, ends, dropped;
	uint64_t last_size;
	char digest[OCIL_DIGEST_STR_SIZE];
	char tmp[4096];
} tap_log;

static void *tap_begin(void *data, const char *tmp)
{
	tap_log *l = data;
	l->begins++;
	snprintf(l->tmp, sizeof(l->tmp), "%s", tmp);
	return l;
}

static void tap_wrote(void *w, uint64_t size)
{
	tap_log *l = w;
	l->last_size = size;
}

static void tap_end(void *w, const char *digest, uint64_t size)
{
	tap_log *l = w;
	l->ends++;
	if (digest == NULL)
		l->dropped++;
	else
		snprintf(l->digest, sizeof(l->digest), "%s", digest);
	l->last_size = size;
}

static void tap(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	tap_log l = {0};
	ocil_blob_tap t = {.begin = tap_begin, .wrote = tap_wrote, .end = tap_end, .data = &l};
	ocil_blobstore_set_tap(bs, &t);
	ocil_blob_writer *w = NULL;
	CHECK_OK(ocil_blobstore_begin(bs, &w, &err), &err);
	CHECK(l.begins == 1 && l.tmp[0] != 0);
	struct stat st;
	CHECK(stat(l.tmp, &st) == 0);
	CHECK_OK(ocil_blob_writer_write(w, "xy", 2, &err), &err);
	CHECK(l.last_size == 2);
	CHECK_OK(ocil_blob_writer_reset(w, &err), &err);
	CHECK(l.ends == 1 && l.dropped == 1 && l.begins == 2);
	CHECK_OK(ocil_blob_writer_write(w, "ab", 2, &err), &err);
	CHECK_OK(ocil_blob_writer_write(w, "c", 1, &err), &err);
	CHECK(l.last_size == 3);
	CHECK_OK(ocil_blob_writer_commit(w, ABC, 3, NULL, NULL, &err), &err);
	CHECK(l.ends == 2 && l.dropped == 1);
	CHECK_STREQ(l.digest, ABC);
	ocil_blob_writer_free(w);
	CHECK(l.ends == 2); /* nothing more after the commit */

	/* a writer freed uncommitted: dropped */
	CHECK_OK(ocil_blobstore_begin(bs, &w, &err), &err);
	CHECK_OK(ocil_blob_writer_write(w, "q", 1, &err), &err);
	ocil_blob_writer_free(w);
	CHECK(l.begins == 3 && l.ends == 3 && l.dropped == 2);

	/* untapped: nothing heard */
	ocil_blobstore_set_tap(bs, NULL);
	CHECK_OK(ocil_blobstore_begin(bs, &w, &err), &err);
	ocil_blob_writer_free(w);
	CHECK(l.begins == 3 && l.ends == 3);
	ocil_blobstore_free(bs);
}

TEST_MAIN(T(put_and_verify), T(writer_reset), T(tap))
