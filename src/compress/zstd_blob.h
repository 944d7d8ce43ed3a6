/* zstd layers into the blob store, hashing the raw stream (diff_id) and the
 * compressed stream (digest) in the same pass.
 *
 * One zstd frame, compressed by libzstd's own worker threads
 * (ZSTD_c_nbWorkers). libzstd's multithreaded mode cuts the input into jobs
 * of a size set by the parameters alone, so the bytes depend on the input
 * and the level, never on the number of workers or on how the input is
 * split into write calls; at least one worker is always used, because the
 * single-threaded mode (0 workers) writes other bytes. */
#ifndef OCIL_ZSTD_BLOB_H
#define OCIL_ZSTD_BLOB_H

#include "compress/gzip.h"

typedef struct ocil_zstd_blob ocil_zstd_blob;

/* zstd level for a gzip-meaning level 1..9 (0: the default, 6). */
int ocil_zstd_level(int gzip_level);

typedef struct {
	int level;	  /* gzip meaning, 1..9, or 0 for the default (6) */
	unsigned threads; /* 0: as gzip ($OCIL_GZIP_THREADS, else min(CPUs, 4)) */
} ocil_zstd_opts;

int ocil_zstd_blob_begin(ocil_blobstore *bs, const ocil_zstd_opts *opts, ocil_zstd_blob **out,
			 ocil_error **err);
int ocil_zstd_blob_write(ocil_zstd_blob *z, const void *buf, size_t len, ocil_error **err);
/* The result has the same shape as gzip's (digest of the blob, diff_id). */
int ocil_zstd_blob_finish(ocil_zstd_blob *z, ocil_gzip_result *res, ocil_error **err);
/* An unfinished blob is discarded. Safe on NULL. */
void ocil_zstd_blob_free(ocil_zstd_blob *z);

#endif
