/* Content-addressed blob store in OCI layout shape: <root>/blobs/sha256/<hex>.
 *
 * Blobs are written to a temporary file inside blobs/sha256 and renamed into
 * place only after their digest (and, when known, size) has been checked, so
 * a blob that exists is always complete and correct. */
#ifndef OCIL_BLOBSTORE_H
#define OCIL_BLOBSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"

typedef struct ocil_blobstore ocil_blobstore;
/* A consumer of streamed bytes. */
typedef int (*ocil_bytes_fn)(void *data, const void *buf, size_t len, ocil_error **err);
typedef struct ocil_blob_writer ocil_blob_writer;

/* Open (creating blobs/sha256 if needed) a store rooted at dir. */
int ocil_blobstore_open(const char *dir, ocil_blobstore **out, ocil_error **err);
void ocil_blobstore_free(ocil_blobstore *bs);
static inline void ocil_blobstore_freep(ocil_blobstore **bs)
{
	ocil_blobstore_free(*bs);
}
#define cleanup_blobstore __attribute__((cleanup(ocil_blobstore_freep)))
const char *ocil_blobstore_root(const ocil_blobstore *bs);

/* Path of a blob (whether or not it exists); caller frees. */
char *ocil_blobstore_path(const ocil_blobstore *bs, const char *digest);
bool ocil_blobstore_has(const ocil_blobstore *bs, const char *digest);
/* Open a stored blob for reading. */
int ocil_blobstore_open_blob(const ocil_blobstore *bs, const char *digest, int *fd,
			     ocil_error **err);

/* Streaming write. */
int ocil_blobstore_begin(ocil_blobstore *bs, ocil_blob_writer **out, ocil_error **err);
int ocil_blob_writer_write(ocil_blob_writer *w, const void *buf, size_t len, ocil_error **err);
/* Finish: fsync, check against expected_digest/expected_size when given
 * (NULL / -1 to skip), rename into place. Fills digest_out and size_out.
 * On a mismatch the temporary file is removed and an OCIL_E_INPUT error set. */
int ocil_blob_writer_commit(ocil_blob_writer *w, const char *expected_digest, int64_t expected_size,
			    char digest_out[OCIL_DIGEST_STR_SIZE], uint64_t *size_out,
			    ocil_error **err);
/* The digest of the bytes written so far (to say what arrived before
 * refusing it). */
void ocil_blob_writer_digest(const ocil_blob_writer *w, char digest_out[OCIL_DIGEST_STR_SIZE]);
/* Bytes written so far (e.g. to resume a download with Range). */
uint64_t ocil_blob_writer_size(const ocil_blob_writer *w);
/* Drop everything written so far and start again (a download that must
 * restart from byte 0). */
int ocil_blob_writer_reset(ocil_blob_writer *w, ocil_error **err);
/* Abort (if not committed) and free. Safe on NULL. */
void ocil_blob_writer_free(ocil_blob_writer *w);

/* Store a buffer; returns its digest. */
int ocil_blobstore_put(ocil_blobstore *bs, const void *buf, size_t len,
		       char digest_out[OCIL_DIGEST_STR_SIZE], ocil_error **err);
/* Hand a stored blob's bytes to fn, in bounded chunks. */
int ocil_blobstore_stream(const ocil_blobstore *bs, const char *digest, ocil_bytes_fn fn,
			  void *data, const ocil_cancel *cancel, ocil_error **err);
/* Check that the file at path has this digest and size (size < 0: any),
 * reading it once. Mismatch: OCIL_E_INPUT. */
int ocil_blob_file_verify(const char *path, const char *digest, int64_t size,
			  const ocil_cancel *cancel, ocil_error **err);
/* Verify the file at path (digest and size), then hardlink it into the
 * store. Returns 1 when linked, 0 when linking is not possible here (other
 * filesystem, no permission: copy instead), -1 on error (mismatch:
 * OCIL_E_INPUT). */
int ocil_blobstore_link(ocil_blobstore *bs, const char *path, const char *digest, int64_t size,
			const ocil_cancel *cancel, ocil_error **err);
/* The same without the verification pass, for a file the caller knows to
 * have this digest. */
int ocil_blobstore_link_unchecked(ocil_blobstore *bs, const char *path, const char *digest,
				  ocil_error **err);
/* Copy from fd to the store, verifying digest and size (both required). */
int ocil_blobstore_put_fd(ocil_blobstore *bs, int fd, const char *digest, int64_t size,
			  ocil_error **err);

#endif
