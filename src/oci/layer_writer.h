/* Deterministic layer writer: tar entries -> gzip (or zstd) -> blob store, hashing the
 * uncompressed stream (diff_id) and the compressed stream (digest) in the
 * same pass.
 *
 * Every entry gets uid/gid 0, empty user/group names, and the writer's fixed
 * mtime (or the one set for it: python sources, see _set_next_mtime); no
 * atime/ctime/xattrs are written. Long names use PAX headers. The
 * writer does NOT sort: producers add entries in a deterministic order
 * (depth-first, siblings sorted bytewise) and add every parent directory
 * before its children; a child whose parent directory was not added is an
 * error (Lambda rejects such layers), and so is a symlink or file at a
 * path added as a directory, or a directory at a symlink's path (an
 * extractor would write what is under it through the symlink). Paths are
 * canonical absolute image paths ("/opt/x": no "//", ".", "..", trailing "/", nor "/" itself); the
 * tar member names are relative ("opt/x"), and directory members end in "/"
 * ("opt/x/"), as in Docker's own layers. Adding a directory that was already
 * added is a no-op. Hardlinks are never written. Non-ASCII names are
 * encoded the same whatever the process locale. After a failure other than
 * a rejected argument (bad path, missing parent, bad symlink target) the
 * writer is unusable: later calls fail and _free cleans up. */
#ifndef OCIL_LAYER_WRITER_H
#define OCIL_LAYER_WRITER_H

#include <stdint.h>
#include <sys/types.h>

#include "base/blobstore.h"
#include "base/error.h"
#include "base/util.h"

typedef struct ocil_layer_writer ocil_layer_writer;

typedef struct {
	int64_t mtime;	       /* SOURCE_DATE_EPOCH or 0 */
	int compression_level; /* gzip meaning, 1..9; 0 means the default (6) */
	bool zstd;	       /* zstd (see zstd_blob.h) instead of gzip */
	/* leave the new layer's entry index there (layer_index.h), or NULL */
	const char *index_dir;
} ocil_layer_opts;

typedef struct {
	char digest[OCIL_DIGEST_STR_SIZE];  /* sha256 of the compressed blob */
	char diff_id[OCIL_DIGEST_STR_SIZE]; /* sha256 of the tar */
	uint64_t size;			    /* compressed size */
	uint64_t uncompressed_size;
	uint64_t entries;
	bool cached; /* taken from a layer cache, not written now (the writer: false) */
} ocil_layer_result;

int ocil_layer_writer_new(ocil_blobstore *bs, const ocil_layer_opts *opts, ocil_layer_writer **out,
			  ocil_error **err);
int ocil_layer_writer_add_dir(ocil_layer_writer *w, const char *path, mode_t mode,
			      ocil_error **err);
int ocil_layer_writer_add_symlink(ocil_layer_writer *w, const char *path, const char *target,
				  ocil_error **err);
/* A regular file of exactly size bytes, given by one or more _write calls,
 * then _end_file (which fails if fewer or more bytes were written). */
int ocil_layer_writer_begin_file(ocil_layer_writer *w, const char *path, mode_t mode, uint64_t size,
				 ocil_error **err);
int ocil_layer_writer_write(ocil_layer_writer *w, const void *buf, size_t len, ocil_error **err);
int ocil_layer_writer_end_file(ocil_layer_writer *w, ocil_error **err);
/* Convenience: a whole regular file from a buffer. */
int ocil_layer_writer_add_file(ocil_layer_writer *w, const char *path, mode_t mode, const void *buf,
			       size_t len, ocil_error **err);
/* Convenience: a regular file of exactly size bytes read from fd (its
 * current offset); fewer or more bytes than size is an error naming what
 * (the file changed under us). Checks cancel between chunks. */
int ocil_layer_writer_add_fd(ocil_layer_writer *w, const char *path, mode_t mode, int fd,
			     uint64_t size, const char *what, const ocil_cancel *cancel,
			     ocil_error **err);
/* Add "/a", "/a/b" for path "/a/b/c" (not "/a/b/c" itself) with mode 0755,
 * skipping directories this writer already added. */
int ocil_layer_writer_add_parents(ocil_layer_writer *w, const char *path, ocil_error **err);
/* Close the tar stream, flush gzip, commit the blob; fills res. */
int ocil_layer_writer_finish(ocil_layer_writer *w, ocil_layer_result *res, ocil_error **err);
/* Free; an unfinished writer removes its temporary blob. Safe on NULL. */
void ocil_layer_writer_free(ocil_layer_writer *w);
/* Declare the store's cleanup variable before the writer's: cleanups run
 * in reverse, so the writer goes first. */
static inline void ocil_layer_writer_freep(ocil_layer_writer **w)
{
	ocil_layer_writer_free(*w);
}
#define cleanup_layer_writer __attribute__((cleanup(ocil_layer_writer_freep)))

/* The next entry added gets this mtime instead of the writer's (a python
 * source the mtime its bytecode records, pyc.h); later ones the writer's
 * again. -1 (nothing changed) when it does not fit a ustar header
 * (0..8^11-1). A new layer's python sources and bytecode headers are kept
 * with its entry index (index_dir/<hex>.bytecode, see ocil_pyc_facts_save). */
int ocil_layer_writer_set_next_mtime(ocil_layer_writer *w, int64_t mtime);
/* The writer's mtime (ocil_layer_opts.mtime). */
int64_t ocil_layer_writer_mtime(const ocil_layer_writer *w);

/* Normalize modes the way Lambda needs them: files 0644 or (any x bit) 0755,
 * directories 0755. Setuid/setgid/sticky bits are dropped. */
mode_t ocil_layer_file_mode(mode_t st_mode);

#endif
