/* Reading a layer blob's bytes back as the tar it holds: gzip (every member
 * of a multi-member file, as Go's reader and pigz's output want), zstd, or
 * a plain tar, streamed from a file descriptor to a callback, with the
 * compressed bytes optionally hashed and counted on the way (a blob's
 * digest and size, its diff_id in the same pass). */
#ifndef OCIL_LAYER_READ_H
#define OCIL_LAYER_READ_H

#include <stddef.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "oci/image.h"

/* Takes the next len bytes of the tar; -1 (with *err) stops the read. */
typedef int (*ocil_tar_bytes_fn)(void *ctx, const void *buf, size_t len, ocil_error **err);

/* The tar in the blob read from fd (from its offset to EOF), compressed as
 * comp, handed to fn a buffer at a time. zh (when not NULL) hashes the
 * blob's own bytes and *zsize counts them. what names the blob in errors:
 * a damaged or truncated stream is OCIL_E_INPUT, "<what>: gzip: ..." or
 * "<what>: zstd: ...". Honours cancel between reads. */
int ocil_layer_read_fd(int fd, ocil_layer_compression comp, const char *what, ocil_hasher *zh,
		       uint64_t *zsize, ocil_tar_bytes_fn fn, void *ctx, const ocil_cancel *cancel,
		       ocil_error **err);

/* The diff_id of the layer in the file at path: the sha256 of its tar. */
int ocil_layer_diff_id(const char *path, ocil_layer_compression comp, const ocil_cancel *cancel,
		       char out[OCIL_DIGEST_STR_SIZE], ocil_error **err);

#endif
