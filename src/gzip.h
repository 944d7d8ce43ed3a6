/* Deterministic gzip into the blob store, hashing the raw stream (diff_id)
 * and the compressed stream (digest) in one pass. The gzip header carries no
 * name and mtime 0, so equal input gives equal bytes. */
#ifndef OCIL_GZIP_H
#define OCIL_GZIP_H

#include <stdint.h>

#include "blobstore.h"

typedef struct ocil_gzip_blob ocil_gzip_blob;

typedef struct {
	char digest[OCIL_DIGEST_STR_SIZE];  /* of the gzip blob */
	char diff_id[OCIL_DIGEST_STR_SIZE]; /* of the raw input */
	uint64_t size;			    /* compressed */
	uint64_t raw_size;
} ocil_gzip_result;

/* level: zlib level 1..9, or 0 for the default (6). */
int ocil_gzip_blob_begin(ocil_blobstore *bs, int level, ocil_gzip_blob **out, ocil_error **err);
int ocil_gzip_blob_write(ocil_gzip_blob *g, const void *buf, size_t len, ocil_error **err);
int ocil_gzip_blob_finish(ocil_gzip_blob *g, ocil_gzip_result *res, ocil_error **err);
/* Free; an unfinished blob is discarded. Safe on NULL. */
void ocil_gzip_blob_free(ocil_gzip_blob *g);

#endif
