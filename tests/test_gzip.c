/* The parallel gzip writer: output read back by zlib, Python's gzip module
 * and gzip -t; one member; digests; determinism across runs, write sizes
 * and thread counts; worker errors and discarding mid-stream.
 *
 * Also a bench mode for bench/gzip.sh:
 *   test_gzip --compress LEVEL STORE_DIR [FILE]   (stdin without FILE) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/util.h"
#include "compress/gzip.h"
#include "test.h"

#define MiB ((size_t)1 << 20)
#define SMALL_BLOCK ((size_t)64 << 10)

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

typedef enum { DATA_RANDOM, DATA_TEXT, DATA_ZERO, DATA_MIXED } data_kind;

/* Deterministic test input. Text compresses about 3:1 like source trees;
 * zeros make libdeflate choose static-Huffman blocks, random data stored
 * ones; mixed alternates within a block. */
static unsigned char *make_data(data_kind kind, size_t len, uint64_t seed)
{
	static const char *words[] = {"import ", "def ",   "self",  "return ", "numpy",
				      "\n",	 "    ",   "(",	    ")",       ", ",
				      "pandas",	 "_array", " = ",   "if ",     "None",
				      "class ",	 "scipy.", "value", "index",   ":\n"};
	unsigned char *d = ocil_xmalloc(len + 1);
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i = 0;
	while (i < len) {
		data_kind k = kind;
		if (kind == DATA_MIXED)
			k = (i / 5000) % 3 == 0 ? DATA_RANDOM : DATA_TEXT;
		uint64_t r = rng_next(&s);
		if (k == DATA_RANDOM) {
			for (int b = 0; b < 8 && i < len; b++)
				d[i++] = (unsigned char)(r >> (8 * b));
		} else if (k == DATA_ZERO) {
			d[i++] = 0;
		} else {
			const char *w = words[(r >> 8) % 3 == 0 ? r % 20 : (r >> 16) % 7];
			for (; *w && i < len; w++)
				d[i++] = (unsigned char)*w;
			if ((r >> 32) % 5 == 0 && i < len)
				d[i++] = (unsigned char)('0' + (r >> 40) % 10);
		}
	}
	return d;
}

/* Feed data in random-sized writes: tiny, medium and over a block. */
static int feed(ocil_gzip_blob *g, const unsigned char *d, size_t len, uint64_t seed,
		ocil_error **err)
{
	uint64_t s = seed + 77;
	size_t off = 0;
	while (off < len) {
		uint64_t r = rng_next(&s);
		size_t n;
		switch (r % 4) {
		case 0:
			n = 1 + (r >> 8) % 16;
			break;
		case 1:
			n = 1 + (r >> 8) % 20000;
			break;
		case 2:
			n = 10240;
			break;
		default:
			n = 1 + (r >> 8) % (3 * MiB);
			break;
		}
		if (n > len - off)
			n = len - off;
		if (ocil_gzip_blob_write(g, d + off, n, err) < 0)
			return -1;
		off += n;
	}
	return 0;
}

static int gz_compress(ocil_blobstore *bs, const ocil_gzip_opts *o, const unsigned char *d,
		       size_t len, uint64_t seed, ocil_gzip_result *res, ocil_error **err)
{
	ocil_gzip_blob *g = NULL;
	if (ocil_gzip_blob_begin_opts(bs, o, &g, err) < 0)
		return -1;
	int r = feed(g, d, len, seed, err);
	if (r == 0)
		r = ocil_gzip_blob_finish(g, res, err);
	ocil_gzip_blob_free(g);
	return r;
}

static int read_blob(ocil_blobstore *bs, const char *digest, char **buf, size_t *len)
{
	cleanup_free char *path = ocil_blobstore_path(bs, digest);
	ocil_error *err = NULL;
	int r = ocil_read_file(path, (size_t)1 << 30, buf, len, &err);
	if (r < 0) {
		fprintf(stderr, "%s\n", err->msg);
		ocil_error_free(err);
	}
	return r;
}

/* Inflate with zlib (gzip wrapper) and compare; exactly one member: the
 * stream ends exactly where the blob does. Returns a message or NULL. */
static const char *check_gzip(const unsigned char *gz, size_t gzlen, const unsigned char *want,
			      size_t wantlen, int level)
{
	static const unsigned char hdr[9] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0};
	if (gzlen < 18 || memcmp(gz, hdr, 8) != 0 || gz[9] != 3)
		return "header is not: deflate, no flags, mtime 0, OS 3";
	if (gz[8] != (level == 9 ? 2 : level == 1 ? 4 : 0))
		return "XFL";
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return "inflateInit2";
	unsigned char *out = ocil_xmalloc(wantlen + 1);
	z.next_in = (unsigned char *)gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = out;
	z.avail_out = (uInt)wantlen + 1;
	int zr = inflate(&z, Z_FINISH);
	const char *msg = NULL;
	if (zr != Z_STREAM_END)
		msg = "inflate did not reach the end of the stream";
	else if (z.avail_in != 0)
		msg = "bytes after the first member";
	else if (z.total_out != wantlen || memcmp(out, want, wantlen) != 0)
		msg = "decompressed bytes differ from the input";
	inflateEnd(&z);
	free(out);
	return msg;
}

/* Compress, then check everything about the blob. */
static void roundtrip(ocil_blobstore *bs, const ocil_gzip_opts *o, const unsigned char *d,
		      size_t len, uint64_t seed, ocil_gzip_result *res_out)
{
	ocil_error *err = NULL;
	ocil_gzip_result res;
	CHECK_OK(gz_compress(bs, o, d, len, seed, &res, &err), &err);
	cleanup_free char *gz = NULL;
	size_t gzlen = 0;
	CHECK(read_blob(bs, res.digest, &gz, &gzlen) == 0);
	CHECK(res.size == gzlen);
	CHECK(res.raw_size == len);
	char dg[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(gz, gzlen, dg);
	CHECK_STREQ(res.digest, dg);
	ocil_digest_buf(d, len, dg);
	CHECK_STREQ(res.diff_id, dg);
	const char *msg = check_gzip((unsigned char *)gz, gzlen, d, len, o->level ? o->level : 6);
	if (msg != NULL)
		fprintf(stderr, "len %zu level %d block %zu: %s\n", len, o->level, o->block_size,
			msg);
	CHECK(msg == NULL);
	if (res_out != NULL)
		*res_out = res;
}

static ocil_blobstore *store(void)
{
	ocil_blobstore *bs = NULL;
	ocil_error *err = NULL;
	if (ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err) < 0) {
		fprintf(stderr, "%s\n", err->msg);
		abort();
	}
	return bs;
}

/* Sizes around the real block size, at the fast (isa-l) and default
 * (libdeflate) levels, random and compressible. */
static void sizes_default_block(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	const size_t B = OCIL_GZIP_BLOCK_SIZE;
	const size_t sizes[] = {0, 1, B - 1, B, B + 1, 3 * B + B / 2};
	const int levels[] = {1, 6};
	const data_kind kinds[] = {DATA_RANDOM, DATA_TEXT};
	for (size_t k = 0; k < 2; k++) {
		cleanup_free unsigned char *d = make_data(kinds[k], sizes[5], k);
		for (size_t l = 0; l < 2; l++)
			for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
				ocil_gzip_opts o = {.level = levels[l]};
				roundtrip(bs, &o, d, sizes[i], i, NULL);
				if (ocil_test_failed)
					return;
			}
	}
}

/* Every level, many small blocks, every kind of data (and so every deflate
 * block type libdeflate emits, each walked to find its end). */
static void every_level(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	const size_t len = 3 * SMALL_BLOCK + 12345;
	const data_kind kinds[] = {DATA_RANDOM, DATA_TEXT, DATA_ZERO, DATA_MIXED};
	uint64_t sizes[4][10];
	for (size_t k = 0; k < 4; k++) {
		cleanup_free unsigned char *d = make_data(kinds[k], len, 10 + k);
		for (int level = 1; level <= 9; level++) {
			ocil_gzip_opts o = {.level = level, .block_size = SMALL_BLOCK};
			ocil_gzip_result res;
			roundtrip(bs, &o, d, len, (uint64_t)level, &res);
			if (ocil_test_failed)
				return;
			sizes[k][level] = res.size;
		}
	}
	/* gzip's meaning: 9 is smaller than 1, and 6 than 1 */
	CHECK(sizes[1][9] < sizes[1][1]);
	CHECK(sizes[1][6] < sizes[1][1]);
	CHECK(sizes[3][9] < sizes[3][1]);
}

/* Same input and level: same bytes, whatever the write sizes and thread
 * count; and level 0 is 6. */
static void deterministic(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	const size_t len = 3 * MiB / 2 + 4321;
	cleanup_free unsigned char *d = make_data(DATA_MIXED, len, 3);
	const int levels[] = {1, 6};
	ocil_gzip_result six;
	for (size_t l = 0; l < 2; l++) {
		ocil_gzip_result a, b;
		ocil_gzip_opts o1 = {.level = levels[l], .threads = 1};
		ocil_gzip_opts o4 = {.level = levels[l], .threads = 4};
		roundtrip(bs, &o1, d, len, 1, &a);
		roundtrip(bs, &o4, d, len, 2, &b);
		if (ocil_test_failed)
			return;
		CHECK_STREQ(a.digest, b.digest);
		CHECK_STREQ(a.diff_id, b.diff_id);
		six = b;
	}
	/* one write of everything, default level, default threads */
	ocil_error *err = NULL;
	ocil_gzip_blob *g = NULL;
	ocil_gzip_result one;
	CHECK_OK(ocil_gzip_blob_begin(bs, 0, &g, &err), &err);
	CHECK_OK(ocil_gzip_blob_write(g, d, len, &err), &err);
	CHECK_OK(ocil_gzip_blob_finish(g, &one, &err), &err);
	ocil_gzip_blob_free(g);
	CHECK_STREQ(one.digest, six.digest);
}

/* Many small blocks through few slots: slots are reused while the next
 * block takes its dictionary from the previous one. */
static void slot_reuse(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	const size_t len = MiB + 17;
	cleanup_free unsigned char *d = make_data(DATA_MIXED, len, 11);
	const int levels[] = {1, 2, 3};
	for (size_t l = 0; l < 3; l++) {
		ocil_gzip_result a, b;
		ocil_gzip_opts o1 = {.level = levels[l], .threads = 1, .block_size = 32 << 10};
		ocil_gzip_opts o4 = {.level = levels[l], .threads = 4, .block_size = 32 << 10};
		roundtrip(bs, &o1, d, len, 1, &a);
		roundtrip(bs, &o4, d, len, 2, &b);
		if (ocil_test_failed)
			return;
		CHECK_STREQ(a.digest, b.digest);
	}
}

/* Golden digests: the bytes depend on the input, the level, the block size
 * and the engines' versions only (libdeflate 1.14, isa-l 2.30 here). A
 * change here changes every layer digest users have: do it on purpose. */
static void golden(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	const size_t len = 3 * MiB + 7;
	cleanup_free unsigned char *d = make_data(DATA_MIXED, len, 12);
	static const struct {
		int level;
		const char *digest;
	} want[] = {
#if defined(__x86_64__)
		/* isa-l picks its code by CPU; one result on x86-64 with SSE4.2 */
		{1, "sha256:de5f2698b531bc7cb1aff96501170eda0c4320d19166a63390bebc90b812c165"},
#endif
		{6, "sha256:3aed0fc51812213cbbdac812e6b6f7bce89134ecc0fa4aa4eadd7a9261a57ed5"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ocil_gzip_opts o = {.level = want[i].level};
		ocil_gzip_result res;
		roundtrip(bs, &o, d, len, 1, &res);
		if (ocil_test_failed)
			return;
		if (strcmp(res.digest, want[i].digest) != 0)
			fprintf(stderr, "level %d: %s\n", want[i].level, res.digest);
		CHECK_STREQ(res.digest, want[i].digest);
	}
}

/* The environment variable picks the thread count, and is checked. */
static void threads_env(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	cleanup_free unsigned char *d = make_data(DATA_TEXT, 2 * MiB, 4);
	ocil_gzip_result a, b;
	ocil_gzip_opts o = {.level = 6};
	setenv("OCIL_GZIP_THREADS", "1", 1);
	roundtrip(bs, &o, d, 2 * MiB, 1, &a);
	setenv("OCIL_GZIP_THREADS", "4", 1);
	roundtrip(bs, &o, d, 2 * MiB, 1, &b);
	CHECK_STREQ(a.digest, b.digest);
	ocil_error *err = NULL;
	ocil_gzip_blob *g = NULL;
	setenv("OCIL_GZIP_THREADS", "many", 1);
	CHECK_FAIL(ocil_gzip_blob_begin(bs, 6, &g, &err), &err, OCIL_E_USAGE,
		   "OCIL_GZIP_THREADS=many: not a thread count");
	setenv("OCIL_GZIP_THREADS", "0", 1);
	CHECK_FAIL(ocil_gzip_blob_begin(bs, 6, &g, &err), &err, OCIL_E_USAGE,
		   "OCIL_GZIP_THREADS=0");
	unsetenv("OCIL_GZIP_THREADS");
	CHECK(g == NULL);
}

static void bad_options(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	ocil_error *err = NULL;
	ocil_gzip_blob *g = NULL;
	CHECK_FAIL(ocil_gzip_blob_begin(bs, 10, &g, &err), &err, OCIL_E_USAGE,
		   "gzip: level 10 is not in 1..9");
	CHECK_FAIL(ocil_gzip_blob_begin(bs, -1, &g, &err), &err, OCIL_E_USAGE, "level -1");
	ocil_gzip_opts o = {.level = 6, .block_size = 1000};
	CHECK_FAIL(ocil_gzip_blob_begin_opts(bs, &o, &g, &err), &err, OCIL_E_USAGE,
		   "gzip: block size 1000 is not in");
	CHECK(g == NULL);

	/* used after finish */
	ocil_gzip_result res;
	CHECK_OK(ocil_gzip_blob_begin(bs, 1, &g, &err), &err);
	CHECK_OK(ocil_gzip_blob_write(g, "abc", 3, &err), &err);
	CHECK_OK(ocil_gzip_blob_finish(g, &res, &err), &err);
	CHECK_FAIL(ocil_gzip_blob_write(g, "abc", 3, &err), &err, OCIL_E_IO,
		   "gzip: already finished");
	CHECK_FAIL(ocil_gzip_blob_finish(g, &res, &err), &err, OCIL_E_IO, "already finished");
	ocil_gzip_blob_free(g);
	ocil_gzip_blob_free(NULL);
}

/* Files in blobs/sha256, temporary ones included. */
static size_t count_blob_files(void)
{
	cleanup_free char *dir = ocil_xasprintf("%s/blobs/sha256", ocil_test_tmpdir());
	DIR *dp = opendir(dir);
	if (dp == NULL)
		return (size_t)-1;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

/* Freeing mid-stream joins the workers and removes the temporary blob. */
static void discard_mid_stream(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	cleanup_free unsigned char *d = make_data(DATA_TEXT, 5 * MiB, 6);
	ocil_error *err = NULL;
	const int levels[] = {1, 6};
	for (size_t l = 0; l < 2; l++) {
		ocil_gzip_blob *g = NULL;
		ocil_gzip_opts o = {.level = levels[l], .threads = 4};
		CHECK_OK(ocil_gzip_blob_begin_opts(bs, &o, &g, &err), &err);
		CHECK_OK(feed(g, d, 5 * MiB, 1, &err), &err);
		CHECK(count_blob_files() == 1);
		ocil_gzip_blob_free(g);
		CHECK(count_blob_files() == 0);
	}
	/* and before any input */
	ocil_gzip_blob *g = NULL;
	CHECK_OK(ocil_gzip_blob_begin(bs, 6, &g, &err), &err);
	ocil_gzip_blob_free(g);
	CHECK(count_blob_files() == 0);
}

/* A failure on a worker thread (here: writing the blob past RLIMIT_FSIZE)
 * comes back from the next write or finish, then the blob is unusable. */
static void worker_error(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	cleanup_free unsigned char *d = make_data(DATA_RANDOM, 6 * MiB, 7);
	struct rlimit old, lim;
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 100000;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);

	ocil_error *err = NULL;
	ocil_gzip_blob *g = NULL;
	ocil_gzip_opts o = {.level = 1, .threads = 2};
	int r = ocil_gzip_blob_begin_opts(bs, &o, &g, &err);
	if (r == 0)
		r = feed(g, d, 6 * MiB, 1, &err);
	ocil_gzip_result res;
	if (r == 0)
		r = ocil_gzip_blob_finish(g, &res, &err);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, oldsig);
	CHECK(g != NULL);
	CHECK(r < 0 && err != NULL);
	CHECK(err->code == OCIL_E_IO && err->errno_value == EFBIG);
	if (strncmp(err->msg, "gzip: block ", 12) != 0 ||
	    strstr(err->msg, "File too large") == NULL) {
		fprintf(stderr, "unexpected error: %s\n", err->msg);
		CHECK(0);
	}
	ocil_error_free(err);
	err = NULL;
	CHECK_FAIL(ocil_gzip_blob_write(g, d, 10, &err), &err, OCIL_E_IO,
		   "gzip: unusable after an earlier error");
	CHECK_FAIL(ocil_gzip_blob_finish(g, &res, &err), &err, OCIL_E_IO, "unusable");
	ocil_gzip_blob_free(g);
	CHECK(count_blob_files() == 0);
}

/* Independent readers: Python's gzip/zlib modules (one member, nothing
 * after it) and gzip -t. */
static void other_readers(void)
{
	cleanup_blobstore ocil_blobstore *bs = store();
	const size_t len = MiB + 999;
	cleanup_free unsigned char *d = make_data(DATA_MIXED, len, 8);
	const int levels[] = {1, 2, 3, 6, 9};
	for (size_t l = 0; l < 5; l++) {
		ocil_gzip_opts o = {.level = levels[l], .block_size = 128 << 10};
		ocil_gzip_result res;
		roundtrip(bs, &o, d, len, l, &res);
		if (ocil_test_failed)
			return;
		cleanup_free char *path = ocil_blobstore_path(bs, res.digest);
		cleanup_free char *py = ocil_xasprintf(
		    "/usr/bin/python3 -c '"
		    "import gzip, zlib, hashlib, sys\n"
		    "b = open(sys.argv[1], \"rb\").read()\n"
		    "d = zlib.decompressobj(31)\n"
		    "raw = d.decompress(b)\n"
		    "assert d.eof and d.unused_data == b\"\", \"not exactly one member\"\n"
		    "assert gzip.decompress(b) == raw\n"
		    "sys.exit(0 if \"sha256:\" + hashlib.sha256(raw).hexdigest() == sys.argv[2] "
		    "else 1)' %s %s",
		    path, res.diff_id);
		CHECK(system(py) == 0);
		cleanup_free char *gzt = ocil_xasprintf("gzip -t < %s", path);
		CHECK(system(gzt) == 0);
	}
}

/* Bench mode: compress FILE (or stdin), read 1 MiB at a time and handed
 * over in 10 KiB writes, as libarchive hands the layer writer its tar. */
static int bench(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s --compress LEVEL STORE_DIR [FILE]\n", argv[0]);
		return 2;
	}
	int fd = argc > 4 ? open(argv[4], O_RDONLY) : 0;
	if (fd < 0) {
		perror(argv[4]);
		return 1;
	}
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	ocil_gzip_blob *g = NULL;
	ocil_gzip_result res;
	const size_t bufsize = MiB;
	cleanup_free unsigned char *buf = ocil_xmalloc(bufsize);
	int r = ocil_blobstore_open(argv[3], &bs, &err);
	if (r == 0)
		r = ocil_gzip_blob_begin(bs, atoi(argv[2]), &g, &err);
	while (r == 0) {
		ssize_t n = read(fd, buf, bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = ocil_error_set_errno(&err, OCIL_E_IO, errno, "reading input");
		if (n <= 0)
			break;
		for (size_t off = 0; off < (size_t)n && r == 0; off += 10240)
			r = ocil_gzip_blob_write(
			    g, buf + off, (size_t)n - off < 10240 ? (size_t)n - off : 10240, &err);
	}
	if (r == 0)
		r = ocil_gzip_blob_finish(g, &res, &err);
	ocil_gzip_blob_free(g);
	ocil_blobstore_free(bs);
	if (r < 0) {
		fprintf(stderr, "test_gzip: %s\n", err->msg);
		ocil_error_free(err);
		return 1;
	}
	printf("size=%llu raw_size=%llu digest=%s diff_id=%s\n", (unsigned long long)res.size,
	       (unsigned long long)res.raw_size, res.digest, res.diff_id);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--compress") == 0)
		return bench(argc, argv);
	static const ocil_test_case cases[] = {
	    T(sizes_default_block),
	    T(every_level),
	    T(deterministic),
	    T(slot_reuse),
	    T(golden),
	    T(threads_env),
	    T(bad_options),
	    T(discard_mid_stream),
	    T(worker_error),
	    T(other_readers),
	};
	return ocil_test_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
