/* oci/layer_read.c: a layer blob read back as its tar, whatever compression
 * it has. The blobs are made here with zlib and libzstd directly (several
 * gzip members, several zstd frames, cut short, damaged); the answer must be
 * the sha256 of the bytes that went in, and the compressed bytes' own
 * digest and size when asked. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "base/alloc.h"
#include "base/digest.h"
#include "oci/layer_read.h"
#include "test.h"

#define RAW_LEN ((size_t)3 << 20)

/* Bytes that compress somewhat and are not all alike. */
static unsigned char *raw_data(void)
{
	unsigned char *p = ocil_xmalloc(RAW_LEN);
	uint32_t x = 12345;
	for (size_t i = 0; i < RAW_LEN; i++) {
		x = x * 1103515245 + 12345;
		p[i] = (unsigned char)(i % 7 == 0 ? (x >> 16) : 'a' + i % 13);
	}
	return p;
}

/* One gzip member of buf, appended to *out. */
static void gzip_member(const unsigned char *buf, size_t len, unsigned char **out, size_t *olen)
{
	z_stream z = {0};
	CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	size_t cap = deflateBound(&z, (uLong)len);
	*out = ocil_xrealloc(*out, *olen + cap);
	z.next_in = (unsigned char *)buf;
	z.avail_in = (uInt)len;
	z.next_out = *out + *olen;
	z.avail_out = (uInt)cap;
	CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
	*olen += cap - z.avail_out;
	deflateEnd(&z);
}

static void zstd_frame(const unsigned char *buf, size_t len, unsigned char **out, size_t *olen)
{
	size_t cap = ZSTD_compressBound(len);
	*out = ocil_xrealloc(*out, *olen + cap);
	size_t n = ZSTD_compress(*out + *olen, cap, buf, len, 3);
	CHECK(!ZSTD_isError(n));
	*olen += n;
}

static char *put(const char *name, const unsigned char *buf, size_t len)
{
	char *path = ocil_xasprintf("%s/%s", ocil_test_tmpdir(), name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
	return path;
}

static void each_compression(void)
{
	cleanup_free unsigned char *raw = raw_data();
	char want[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(raw, RAW_LEN, want);
	ocil_error *err = NULL;
	char got[OCIL_DIGEST_STR_SIZE];

	cleanup_free char *tar = put("plain.tar", raw, RAW_LEN);
	CHECK_OK(ocil_layer_diff_id(tar, OCIL_LAYER_TAR, NULL, got, &err), &err);
	CHECK_STREQ(got, want);

	/* three gzip members back to back (pigz, concatenated files) */
	cleanup_free unsigned char *gz = NULL;
	size_t gzlen = 0;
	gzip_member(raw, 1000, &gz, &gzlen);
	gzip_member(raw + 1000, RAW_LEN / 2, &gz, &gzlen);
	gzip_member(raw + 1000 + RAW_LEN / 2, RAW_LEN - 1000 - RAW_LEN / 2, &gz, &gzlen);
	cleanup_free char *gzp = put("three.gz", gz, gzlen);
	CHECK_OK(ocil_layer_diff_id(gzp, OCIL_LAYER_GZIP, NULL, got, &err), &err);
	CHECK_STREQ(got, want);

	/* two zstd frames */
	cleanup_free unsigned char *zs = NULL;
	size_t zslen = 0;
	zstd_frame(raw, RAW_LEN / 3, &zs, &zslen);
	zstd_frame(raw + RAW_LEN / 3, RAW_LEN - RAW_LEN / 3, &zs, &zslen);
	cleanup_free char *zsp = put("two.zst", zs, zslen);
	CHECK_OK(ocil_layer_diff_id(zsp, OCIL_LAYER_ZSTD, NULL, got, &err), &err);
	CHECK_STREQ(got, want);

	/* cut short, damaged, empty, or not what it says */
	cleanup_free char *gz_cut = put("cut.gz", gz, gzlen - 9);
	CHECK_FAIL(ocil_layer_diff_id(gz_cut, OCIL_LAYER_GZIP, NULL, got, &err), &err, OCIL_E_INPUT,
		   "cut.gz: gzip: truncated stream");
	cleanup_free char *zs_cut = put("cut.zst", zs, zslen - 9);
	CHECK_FAIL(ocil_layer_diff_id(zs_cut, OCIL_LAYER_ZSTD, NULL, got, &err), &err, OCIL_E_INPUT,
		   "cut.zst: zstd: truncated stream");
	gz[gzlen / 2] ^= 0xff;
	gz[gzlen / 2 + 1] ^= 0xff;
	cleanup_free char *gz_bad = put("bad.gz", gz, gzlen);
	CHECK_FAIL(ocil_layer_diff_id(gz_bad, OCIL_LAYER_GZIP, NULL, got, &err), &err, OCIL_E_INPUT,
		   "bad.gz: gzip: ");
	cleanup_free char *empty = put("empty.zst", zs, 0);
	CHECK_FAIL(ocil_layer_diff_id(empty, OCIL_LAYER_ZSTD, NULL, got, &err), &err, OCIL_E_INPUT,
		   "empty.zst: zstd: truncated stream");
	CHECK_FAIL(ocil_layer_diff_id(tar, OCIL_LAYER_GZIP, NULL, got, &err), &err, OCIL_E_INPUT,
		   "plain.tar: gzip: ");
	cleanup_free char *none = ocil_xasprintf("%s/absent", ocil_test_tmpdir());
	CHECK_FAIL(ocil_layer_diff_id(none, OCIL_LAYER_TAR, NULL, got, &err), &err, OCIL_E_IO,
		   "absent");
}

static int count_bytes(void *ctx, const void *buf, size_t len, ocil_error **err)
{
	(void)buf;
	(void)err;
	*(uint64_t *)ctx += len;
	return 0;
}

static int refuse(void *ctx, const void *buf, size_t len, ocil_error **err)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return ocil_error_set(err, OCIL_E_IO, "full");
}

/* What the blob's own bytes hash and count to, beside the tar; a callback's
 * failure and a cancellation stop the read. */
static void blob_digest_and_stops(void)
{
	cleanup_free unsigned char *raw = raw_data();
	cleanup_free unsigned char *gz = NULL;
	size_t gzlen = 0;
	gzip_member(raw, RAW_LEN, &gz, &gzlen);
	char want_blob[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(gz, gzlen, want_blob);
	cleanup_free char *gzp = put("one.gz", gz, gzlen);
	ocil_error *err = NULL;
	int fd = open(gzp, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	ocil_hasher *zh = ocil_hasher_new();
	uint64_t zsize = 0, n = 0;
	int rc = ocil_layer_read_fd(fd, OCIL_LAYER_GZIP, "one.gz", zh, &zsize, count_bytes, &n,
				    NULL, &err);
	close(fd);
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(zh, got);
	ocil_hasher_free(zh);
	CHECK(rc == 0);
	CHECK(n == RAW_LEN);
	CHECK(zsize == gzlen);
	CHECK_STREQ(got, want_blob);

	fd = open(gzp, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	rc =
	    ocil_layer_read_fd(fd, OCIL_LAYER_GZIP, "one.gz", NULL, NULL, refuse, NULL, NULL, &err);
	close(fd);
	CHECK(rc < 0 && err != NULL && strcmp(err->msg, "full") == 0);
	ocil_error_free(err);
	err = NULL;

	volatile int flag = 1;
	ocil_cancel cancel = {.flag = &flag};
	char d[OCIL_DIGEST_STR_SIZE];
	CHECK_FAIL(ocil_layer_diff_id(gzp, OCIL_LAYER_GZIP, &cancel, d, &err), &err,
		   OCIL_E_CANCELLED, "");
}

TEST_MAIN(T(each_compression), T(blob_digest_and_stops))
