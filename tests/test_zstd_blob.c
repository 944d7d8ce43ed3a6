/* zstd layers: the blob decompresses (libzstd's reference decoder, and the
 * zstd tool) to exactly the input; diff_id and digest are the sha256 of
 * input and blob; the bytes are the same whatever the worker count and the
 * write sizes; the level map is monotone. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <zstd.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/util.h"
#include "compress/zstd_blob.h"
#include "test.h"

#define MiB ((size_t)1 << 20)

/* Text-like input that compresses, with a random stretch that does not. */
static unsigned char *make_data(size_t len, uint64_t seed)
{
	static const char *words[] = {"import ", "numpy", "\n", "    ", "def ",
				      "return ", "self",  "(",	")",	"pandas"};
	unsigned char *d = ocil_xmalloc(len + 1);
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (size_t i = 0; i < len;) {
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		uint64_t r = s * 2685821657736338717ULL;
		if ((i / 100000) % 5 == 4) {
			d[i++] = (unsigned char)(r >> 24);
			continue;
		}
		for (const char *w = words[r % 10]; *w && i < len; w++)
			d[i++] = (unsigned char)*w;
	}
	return d;
}

static int compress(ocil_blobstore *bs, const ocil_zstd_opts *o, const unsigned char *d, size_t len,
		    size_t chunk, ocil_gzip_result *res, ocil_error **err)
{
	ocil_zstd_blob *z = NULL;
	if (ocil_zstd_blob_begin(bs, o, &z, err) < 0)
		return -1;
	int r = 0;
	for (size_t off = 0; r == 0 && off < len; off += chunk)
		r = ocil_zstd_blob_write(z, d + off, len - off < chunk ? len - off : chunk, err);
	if (r == 0)
		r = ocil_zstd_blob_finish(z, res, err);
	ocil_zstd_blob_free(z);
	return r;
}

/* The reference decompression of a stored blob. */
static unsigned char *decompress(ocil_blobstore *bs, const char *digest, size_t *out_len)
{
	cleanup_free char *path = ocil_blobstore_path(bs, digest);
	cleanup_free char *raw = NULL;
	size_t n = 0;
	ocil_error *err = NULL;
	if (ocil_read_file(path, 256 * MiB, &raw, &n, &err) < 0) {
		ocil_error_free(err);
		return NULL;
	}
	unsigned long long cap = ZSTD_getFrameContentSize(raw, n);
	/* streamed frames do not record their size */
	if (cap == ZSTD_CONTENTSIZE_UNKNOWN || cap == ZSTD_CONTENTSIZE_ERROR)
		cap = 64 * MiB;
	unsigned char *out = ocil_xmalloc((size_t)cap + 1);
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	ZSTD_inBuffer in = {raw, n, 0};
	ZSTD_outBuffer o = {out, (size_t)cap, 0};
	size_t rc;
	do
		rc = ZSTD_decompressStream(dc, &o, &in);
	while (!ZSTD_isError(rc) && rc != 0 && o.pos < o.size);
	ZSTD_freeDCtx(dc);
	if (ZSTD_isError(rc) || rc != 0 || in.pos != in.size) {
		free(out);
		return NULL;
	}
	*out_len = o.pos;
	return out;
}

static void roundtrip(void)
{
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	size_t len = 3 * MiB + 12345;
	cleanup_free unsigned char *d = make_data(len, 1);
	static const int levels[] = {1, 6, 9};
	for (size_t li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
		int level = levels[li];
		ocil_zstd_opts o = {.level = level, .threads = 2};
		ocil_gzip_result res;
		CHECK_OK(compress(bs, &o, d, len, 100000, &res, &err), &err);
		char want[OCIL_DIGEST_STR_SIZE];
		ocil_digest_buf(d, len, want);
		CHECK_STREQ(res.diff_id, want);
		CHECK(res.raw_size == len);
		CHECK(res.size < len);
		cleanup_free char *path = ocil_blobstore_path(bs, res.digest);
		CHECK_OK(ocil_blob_file_verify(path, res.digest, (int64_t)res.size, NULL, &err),
			 &err);
		size_t n = 0;
		cleanup_free unsigned char *back = decompress(bs, res.digest, &n);
		CHECK(back != NULL);
		CHECK(n == len && memcmp(back, d, len) == 0);
		/* and the zstd tool agrees */
		cleanup_free char *cmd = ocil_xasprintf(
		    "zstd -q -t '%s' && [ \"$(zstd -dc '%s' | sha256sum | cut -c1-64)\" "
		    "= %s ]",
		    path, path, ocil_digest_hex(want));
		CHECK(system(cmd) == 0);
	}
}

static void empty_input(void)
{
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	ocil_zstd_opts o = {.threads = 1};
	ocil_gzip_result res;
	CHECK_OK(compress(bs, &o, (const unsigned char *)"", 0, 1, &res, &err), &err);
	size_t n = 99;
	cleanup_free unsigned char *back = decompress(bs, res.digest, &n);
	CHECK(back != NULL && n == 0);
	char want[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf("", 0, want);
	CHECK_STREQ(res.diff_id, want);
}

/* Same bytes for 1, 2, 3 and 4 workers and for any write size, over
 * several jobs (2 MiB each). */
static void deterministic(void)
{
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	size_t len = 5 * MiB + 7;
	cleanup_free unsigned char *d = make_data(len, 2);
	static const size_t chunks[] = {1000, 65536, 3 * MiB, 5 * MiB + 7};
	char first[OCIL_DIGEST_STR_SIZE] = "";
	for (unsigned t = 1; t <= 4; t++) {
		ocil_zstd_opts o = {.level = 6, .threads = t};
		ocil_gzip_result res;
		CHECK_OK(compress(bs, &o, d, len, chunks[t - 1], &res, &err), &err);
		if (t == 1)
			memcpy(first, res.digest, sizeof(first));
		CHECK_STREQ(res.digest, first);
	}
}

static void levels(void)
{
	ocil_error *err = NULL;
	int prev = 0;
	for (int l = 1; l <= 9; l++) {
		CHECK(ocil_zstd_level(l) >= prev);
		prev = ocil_zstd_level(l);
	}
	CHECK(ocil_zstd_level(0) == ocil_zstd_level(6));
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	ocil_zstd_blob *z = NULL;
	ocil_zstd_opts o = {.level = 10};
	CHECK_FAIL(ocil_zstd_blob_begin(bs, &o, &z, &err), &err, OCIL_E_USAGE, "not in 1..9");
	CHECK(z == NULL);
}

/* A discarded blob leaves nothing in the store. */
static void discard(void)
{
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	ocil_zstd_blob *z = NULL;
	ocil_zstd_opts o = {.threads = 2};
	CHECK_OK(ocil_zstd_blob_begin(bs, &o, &z, &err), &err);
	cleanup_free unsigned char *d = make_data(3 * MiB, 3);
	CHECK_OK(ocil_zstd_blob_write(z, d, 3 * MiB, &err), &err);
	ocil_zstd_blob_free(z);
	cleanup_free char *cmd =
	    ocil_xasprintf("[ -z \"$(ls -A '%s/blobs/sha256')\" ]", ocil_blobstore_root(bs));
	CHECK(system(cmd) == 0);
}

TEST_MAIN(T(roundtrip), T(empty_input), T(deterministic), T(levels), T(discard))
