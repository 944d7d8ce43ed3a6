/* Helpers for the tests of what reads and writes layers: build a tree in the
 * test's tmp dir, craft tars with libarchive's writer, and read layer blobs
 * back with libarchive's reader (not our own parser). */
#ifndef OCIL_SUPPORT_TAR_H
#define OCIL_SUPPORT_TAR_H

#include <archive.h>
#include <archive_entry.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/blobstore.h"
#include "base/error.h"
#include "oci/layer_writer.h"
#include "oci/tarstream.h"

#define NENTS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a tree under ocil_test_tmpdir() ---- */

/* tmpdir/rel; caller frees. */
char *tpath(const char *rel);
/* A file of n bytes at tmpdir/rel (parents created) with mode; 0 or -1. */
int putn(const char *rel, const void *content, size_t n, mode_t mode);
/* A symlink tmpdir/rel -> target; 0 or -1. */
int sym(const char *target, const char *rel);

/* ---- crafted tars ---- */

typedef struct {
	const char *name;
	char type;	  /* f file, d dir, l symlink, h hardlink, c char device */
	const char *data; /* file content or link target */
	size_t len;	  /* file length; 0 means strlen(data) */
	int mode;	  /* 0: 0644, or 0755 for a dir */
} tent;

/* Write a tar into the test's tmp dir and return its path (caller frees),
 * or NULL after printing why. filter is NULL, "gzip", "zstd" or "bzip2"; format
 * is an ARCHIVE_FORMAT_TAR_* (or ARCHIVE_FORMAT_ZIP, for wheels). */
char *mk_tar(const char *fname, const char *filter, int format, const tent *ents, size_t n);

/* Read the rest of ts's current entry in reads of at most step bytes (odd
 * steps exercise the reader's bookkeeping). The result is NUL-terminated,
 * its length in *len; NULL with *err set on a read error. */
char *slurp(ocil_tarstream *ts, size_t step, size_t *len, ocil_error **err);

/* ---- layers read back ---- */

#define RLAYER_MAX 64

typedef struct {
	char *name;
	mode_t type, perm;
	int64_t uid, gid, mtime;
	size_t size;
	char *data; /* size bytes and a NUL */
	char *link; /* symlink target, "HARDLINK" for a hardlink, else NULL */
} rentry;

typedef struct {
	rentry e[RLAYER_MAX];
	size_t n;
} rlayer;

/* Read a (gzipped) layer into l, in tar order. Fails, printing why, on a
 * damaged tar, more than RLAYER_MAX entries, or an entry with a user or
 * group name (our layers never have one). l needs rlayer_clear either way. */
int read_layer(const char *file, rlayer *l);
const rentry *rlayer_find(const rlayer *l, const char *name);
/* Whether l holds exactly these names in this order; prints what it holds
 * when not. */
bool rlayer_names_are(const rlayer *l, const char *const *want, size_t n);
void rlayer_clear(rlayer *l);

/* A fresh blob store in tmpdir/store and a layer writer (default options)
 * on it; the caller frees both (cleanup_blobstore, cleanup_layer_writer). */
int open_layer_writer(ocil_blobstore **bs, ocil_layer_writer **w, ocil_error **err);
/* Finish w and read its blob into l; fails if l does not hold as many
 * entries as the writer wrote. */
int finish_read_layer(ocil_blobstore *bs, ocil_layer_writer *w, rlayer *l, ocil_error **err);

#endif
