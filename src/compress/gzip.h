/* Deterministic parallel gzip into the blob store, hashing the raw stream
 * (diff_id) and the compressed stream (digest) in the same pass.
 *
 * The output is one gzip member (RFC 1952): header with no name, mtime 0 and
 * OS=Unix, one deflate stream, CRC-32 and ISIZE. Inside, the input is cut
 * into fixed-size blocks by offset, compressed independently on worker
 * threads and joined the pigz way (every block but the last ends on a byte
 * boundary with its final-block bit clear). The bytes depend only on the
 * input, the level and the block size, never on the thread count or on how
 * the input is split into write calls. */
#ifndef OCIL_GZIP_H
#define OCIL_GZIP_H

#include <stdint.h>

#include "base/blobstore.h"

typedef struct ocil_gzip_blob ocil_gzip_blob;

typedef struct {
	char digest[OCIL_DIGEST_STR_SIZE];  /* of the gzip blob */
	char diff_id[OCIL_DIGEST_STR_SIZE]; /* of the raw input */
	uint64_t size;			    /* compressed */
	uint64_t raw_size;
} ocil_gzip_result;

/* Input block size. Part of the output format: changing it changes the bytes
 * (and so every layer digest). */
#define OCIL_GZIP_BLOCK_SIZE ((size_t)1 << 20)
/* Worker threads when neither the options nor $OCIL_GZIP_THREADS say:
 * min(usable CPUs, OCIL_GZIP_MAX_THREADS). */
#define OCIL_GZIP_MAX_THREADS 4

typedef struct {
	int level;	   /* gzip level 1..9, or 0 for the default (6) */
	unsigned threads;  /* 0: $OCIL_GZIP_THREADS, else min(CPUs, 4) */
	size_t block_size; /* 0: OCIL_GZIP_BLOCK_SIZE; others (32 KiB..16 MiB)
			      give other bytes, for tests only */
} ocil_gzip_opts;

/* Commit the compressed blob w and fill res with its digest and size and
 * the raw stream's diff_id (from raw) and size: the last step of both the
 * gzip and the zstd writers. */
int ocil_gzip_result_commit(ocil_blob_writer *w, ocil_hasher *raw, uint64_t raw_size,
			    ocil_gzip_result *res, ocil_error **err);
/* Worker threads to use: $OCIL_GZIP_THREADS (1..64; else OCIL_E_USAGE),
 * else min(usable CPUs, OCIL_GZIP_MAX_THREADS). zstd layers use the same. */
int ocil_gzip_threads(unsigned *out, ocil_error **err);
/* level: 1 (fastest) .. 9 (smallest), as gzip's, or 0 for the default (6);
 * gzip.c maps them to isa-l and libdeflate levels. */
int ocil_gzip_blob_begin(ocil_blobstore *bs, int level, ocil_gzip_blob **out, ocil_error **err);
int ocil_gzip_blob_begin_opts(ocil_blobstore *bs, const ocil_gzip_opts *opts, ocil_gzip_blob **out,
			      ocil_error **err);
/* Errors of the worker threads (a failed write to the blob, say) come back
 * from the next write or finish. */
int ocil_gzip_blob_write(ocil_gzip_blob *g, const void *buf, size_t len, ocil_error **err);
int ocil_gzip_blob_finish(ocil_gzip_blob *g, ocil_gzip_result *res, ocil_error **err);
/* Free (joining the worker threads); an unfinished blob is discarded. Safe on
 * NULL. */
void ocil_gzip_blob_free(ocil_gzip_blob *g);

#endif
