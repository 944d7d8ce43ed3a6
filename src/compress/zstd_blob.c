/* zstd layers (see zstd_blob.h): the caller's bytes are hashed into the diff_id
 * and handed to libzstd, whose workers compress while the caller produces
 * the next input; what comes out goes to the blob writer, which hashes it
 * into the digest. */
#include "compress/zstd_blob.h"

#include <string.h>
/* ZSTD_getCParams: the level defaults the caps below apply to */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "base/digest.h"
#include "base/util.h"

/* zstd levels for gzip's 1..9. 6, the default, is zstd's own default (3):
 * on the bench prefix 10 % smaller than our gzip level 6 for half its CPU;
 * 9 stops at 12, already 15 CPU-seconds for 600 MB. */
static const int level_map[10] = {3, 1, 2, 2, 3, 3, 3, 6, 9, 12};

/* Caps on the window and match table logs, and the job size. */
#define MAX_WINDOW_LOG 20u
#define MAX_TABLE_LOG 19u
#define JOB_SIZE ((size_t)2 << 20)

struct ocil_zstd_blob {
	ZSTD_CCtx *cctx;
	ocil_blob_writer *w;
	ocil_hasher *raw;
	uint64_t raw_size;
	unsigned char *out;
	size_t out_cap;
	bool done, broken;
};

int ocil_zstd_level(int gzip_level)
{
	return gzip_level >= 0 && gzip_level <= 9 ? level_map[gzip_level] : level_map[0];
}

static int zfail(ocil_zstd_blob *z, size_t rc, ocil_error **err)
{
	z->broken = true;
	return ocil_error_set(err, OCIL_E_IO, "zstd: %s", ZSTD_getErrorName(rc));
}

int ocil_zstd_blob_begin(ocil_blobstore *bs, const ocil_zstd_opts *opts, ocil_zstd_blob **out,
			 ocil_error **err)
{
	int level = opts->level;
	if (level < 0 || level > 9)
		return ocil_error_set(err, OCIL_E_USAGE, "zstd: level %d is not in 1..9", level);
	unsigned threads = opts->threads;
	if (threads == 0 && ocil_gzip_threads(&threads, err) < 0)
		return -1;
	ocil_zstd_blob *z = ocil_xcalloc(1, sizeof(*z));
	z->cctx = ZSTD_createCCtx();
	if (z->cctx == NULL)
		abort(); /* out of memory, as in ocil_xmalloc */
	/* Memory: each worker holds a window and match tables, and each job
	 * its input, so all are capped (the defaults of zstd's middle levels
	 * went past 200 MB with 4 workers). Part of the output format. */
	ZSTD_compressionParameters cp = ZSTD_getCParams(ocil_zstd_level(level), 0, 0);
	const struct {
		ZSTD_cParameter p;
		int v;
	} params[] = {
	    {ZSTD_c_compressionLevel, ocil_zstd_level(level)},
	    {ZSTD_c_checksumFlag, 1},
	    {ZSTD_c_windowLog,
	     (int)(cp.windowLog < MAX_WINDOW_LOG ? cp.windowLog : MAX_WINDOW_LOG)},
	    {ZSTD_c_hashLog, (int)(cp.hashLog < MAX_TABLE_LOG ? cp.hashLog : MAX_TABLE_LOG)},
	    {ZSTD_c_chainLog, (int)(cp.chainLog < MAX_TABLE_LOG ? cp.chainLog : MAX_TABLE_LOG)},
	    {ZSTD_c_jobSize, (int)JOB_SIZE},
	    /* >= 1 always: 0 is the single-threaded mode, which writes other bytes */
	    {ZSTD_c_nbWorkers, (int)threads},
	};
	size_t rc = 0;
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]) && !ZSTD_isError(rc); i++)
		rc = ZSTD_CCtx_setParameter(z->cctx, params[i].p, params[i].v);
	if (ZSTD_isError(rc)) {
		ocil_zstd_blob_free(z);
		return ocil_error_set(err, OCIL_E_IO,
				      "zstd: %s (is libzstd built with multithreading?)",
				      ZSTD_getErrorName(rc));
	}
	z->out_cap = ZSTD_CStreamOutSize();
	z->out = ocil_xmalloc(z->out_cap);
	z->raw = ocil_hasher_new();
	if (ocil_blobstore_begin(bs, &z->w, err) < 0) {
		ocil_zstd_blob_free(z);
		return -1;
	}
	*out = z;
	return 0;
}

static int check_open(ocil_zstd_blob *z, ocil_error **err)
{
	if (z->broken)
		return ocil_error_set(err, OCIL_E_IO, "zstd: unusable after an earlier error");
	if (z->done)
		return ocil_error_set(err, OCIL_E_IO, "zstd: already finished");
	return 0;
}

/* Feed in (possibly empty) with mode and write whatever comes out; *left
 * is what ZSTD_compressStream2 returned (for e_end: bytes still to
 * flush). */
static int pump(ocil_zstd_blob *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode, size_t *left,
		ocil_error **err)
{
	ZSTD_outBuffer o = {z->out, z->out_cap, 0};
	size_t rc = ZSTD_compressStream2(z->cctx, &o, in, mode);
	if (ZSTD_isError(rc))
		return zfail(z, rc, err);
	if (o.pos > 0 && ocil_blob_writer_write(z->w, z->out, o.pos, err) < 0) {
		z->broken = true;
		return -1;
	}
	*left = rc;
	return 0;
}

int ocil_zstd_blob_write(ocil_zstd_blob *z, const void *buf, size_t len, ocil_error **err)
{
	if (check_open(z, err) < 0)
		return -1;
	ocil_hasher_update(z->raw, buf, len);
	z->raw_size += len;
	ZSTD_inBuffer in = {buf, len, 0};
	size_t left;
	while (in.pos < in.size)
		if (pump(z, &in, ZSTD_e_continue, &left, err) < 0)
			return -1;
	return 0;
}

int ocil_zstd_blob_finish(ocil_zstd_blob *z, ocil_gzip_result *res, ocil_error **err)
{
	if (check_open(z, err) < 0)
		return -1;
	ZSTD_inBuffer in = {NULL, 0, 0};
	size_t left = 1;
	while (left > 0)
		if (pump(z, &in, ZSTD_e_end, &left, err) < 0)
			return -1;
	if (ocil_gzip_result_commit(z->w, z->raw, z->raw_size, res, err) < 0) {
		z->broken = true;
		return -1;
	}
	z->done = true;
	return 0;
}

void ocil_zstd_blob_free(ocil_zstd_blob *z)
{
	if (z == NULL)
		return;
	ZSTD_freeCCtx(z->cctx); /* joins its workers */
	ocil_blob_writer_free(z->w);
	ocil_hasher_free(z->raw);
	free(z->out);
	free(z);
}
