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

TEST_MAIN(T(put_and_verify), T(writer_reset))
