/* tarstream: reading one image layer safely.
 *
 * A layer blob is a tar archive (ustar, pax or GNU), plain or compressed with
 * gzip or zstd; nothing else is accepted, so a layer can never make
 * libarchive run an external program or parse an unexpected format. Entry
 * names are normalized to absolute image paths and anything that could
 * escape the image root ("..", overlong names) is rejected with an
 * OCIL_E_INPUT error naming the layer and the entry. Whiteouts are ordinary
 * entries at this level; rootfs gives them their meaning. */
#ifndef OCIL_TARSTREAM_H
#define OCIL_TARSTREAM_H

#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

/* Longest entry name or link target we accept (the kernel's PATH_MAX). */
#define OCIL_TAR_NAME_MAX 4096
/* Longest path component (the kernel's NAME_MAX); longer ones cannot be
 * created by a runtime anyway. */
#define OCIL_TAR_COMPONENT_MAX 255
/* Lambda's limit on an image's uncompressed size; a layer larger than
 * that is unusable, and the cap bounds what a decompression bomb costs. */
#define OCIL_TAR_MAX_BYTES ((uint64_t)10 << 30)
/* Decompression bombs. Every layer is capped at OCIL_TAR_MAX_BYTES
 * uncompressed (declared sizes are checked before any data is inflated),
 * which bounds what any bomb costs. Past OCIL_TAR_BOMB_FLOOR bytes a layer
 * that inflates to more than OCIL_TAR_MAX_RATIO times what was read of its
 * blob is refused at once: gzip cannot go beyond about 1032:1 (a layer of
 * zeros, such as a big sparse file, is legitimate and stays accepted), so
 * this stops zstd bombs, which reach far higher ratios. */
#define OCIL_TAR_BOMB_FLOOR ((uint64_t)256 << 20)
#define OCIL_TAR_MAX_RATIO 1100
/* Entries per layer; the real Lambda bases have a few tens of thousands. */
#define OCIL_TAR_MAX_ENTRIES ((uint64_t)1 << 21)

typedef enum {
	OCIL_TAR_FILE,
	OCIL_TAR_DIR,
	OCIL_TAR_SYMLINK,
	OCIL_TAR_HARDLINK,
	OCIL_TAR_OTHER, /* devices, fifos, sockets */
} ocil_tar_type;

typedef struct {
	/* normalized absolute path: "/a/b"; the root directory is "/" */
	const char *path;
	ocil_tar_type type;
	/* st_mode as stored: file type bits and permissions (07777) */
	mode_t mode;
	/* bytes of data ocil_tarstream_read will give (0 for non-files) */
	uint64_t size;
	/* SYMLINK: the target exactly as stored; HARDLINK: the normalized
	 * absolute path of the earlier entry it links to; else NULL */
	const char *link;
	/* 0-based position of this entry in the layer */
	uint64_t index;
	/* modification time as stored (seconds, nanoseconds; 0 when unset) */
	int64_t mtime;
	long mtime_nsec;
} ocil_tar_entry;

typedef struct ocil_tarstream ocil_tarstream;

/* Start reading the layer in fd (not taken over: it must stay open until
 * ocil_tarstream_free, and the caller closes it). what names the layer in
 * errors, e.g. "layer sha256:ab12...". */
int ocil_tarstream_open_fd(int fd, const char *what, ocil_tarstream **out, ocil_error **err);
/* Same for a file; the stream owns the descriptor it opens. */
int ocil_tarstream_open_path(const char *path, const char *what, ocil_tarstream **out,
			     ocil_error **err);
/* Advance to the next entry, skipping whatever data of the current one was
 * not read. Returns 1 and sets *e (valid until the next call) for an entry,
 * 0 at the end of the archive, -1 on error. After an error the stream is
 * unusable. */
int ocil_tarstream_next(ocil_tarstream *ts, const ocil_tar_entry **e, ocil_error **err);
/* Read data of the current entry: bytes read, 0 at its end, -1 on error. */
ssize_t ocil_tarstream_read(ocil_tarstream *ts, void *buf, size_t len, ocil_error **err);
/* The name given at open, for callers wrapping errors. */
const char *ocil_tarstream_what(const ocil_tarstream *ts);
/* Safe on NULL. */
void ocil_tarstream_free(ocil_tarstream *ts);

static inline void ocil_tarstream_freep(ocil_tarstream **ts)
{
	ocil_tarstream_free(*ts);
}
#define cleanup_tarstream __attribute__((cleanup(ocil_tarstream_freep)))

/* Quote a name from an archive for an error message: at most about 200
 * bytes, non-printable bytes as \xNN, so hostile names cannot mess up a
 * terminal. Returns buf. */
#define OCIL_TAR_QUOTE_SIZE 256
const char *ocil_tar_quote(const char *s, char buf[OCIL_TAR_QUOTE_SIZE]);

#endif
