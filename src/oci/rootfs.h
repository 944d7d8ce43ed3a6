/* rootfs: the merged, read-only view of an image's layers, as a container
 * runtime would see it after unpacking them in order.
 *
 * Opening reads every layer once and indexes entry metadata only (names,
 * types, modes, sizes, link targets); file data stays in the layer blobs
 * and is streamed from there by ocil_rootfs_open_file. Memory grows with
 * the number of entries, never with data size.
 *
 * Layer semantics (OCI image-spec "Representing Changes"):
 * - ".wh.<name>" in a layer removes <name>, and everything below it, as
 *   contributed by LOWER layers;
 * - ".wh..wh..opq" in directory D of layer L hides everything below D from
 *   lower layers, while L's own entries in D stay;
 * - a non-directory replaces whatever was at its path, including a lower
 *   directory's whole contents; a directory over a directory merges;
 * - entry paths are literal: a layer's "lib/x" over a lower symlink "lib"
 *   replaces the symlink with a directory (each layer is its own overlay
 *   directory), it is not written through it;
 * - a hardlink shares the data (and mode) of the entry it names, which must
 *   already exist in the merged view.
 * Whiteout markers are never visible. Other ".wh..wh.*" names (AUFS
 * metadata) are ignored. */
#ifndef OCIL_ROOTFS_H
#define OCIL_ROOTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "oci/tarstream.h"

/* Most layers accepted (Docker and containerd stop near 127). */
#define OCIL_ROOTFS_MAX_LAYERS 128
/* Most entries indexed over all layers, to bound memory (about 100 bytes
 * each). */
#define OCIL_ROOTFS_MAX_NODES ((size_t)4 << 20)
/* Symlinks followed in one lookup, as the kernel's MAXSYMLINKS. */
#define OCIL_ROOTFS_MAX_HOPS 40
/* entry_index of directories that no entry declared (implicit parents) */
#define OCIL_ROOTFS_NO_ENTRY UINT64_MAX

typedef struct ocil_rootfs ocil_rootfs;

/* What a lookup found. The strings are owned by the node: start with a
 * zeroed node, and call ocil_rootfs_node_clear when done (lookup clears
 * the node itself before filling it, so a node can be reused). */
typedef struct {
	char *path;	      /* where it is in the merged view, symlinks resolved */
	size_t layer;	      /* the layer holding the entry (for hardlinks: the data) */
	char *layer_path;     /* the entry's path inside that layer */
	uint64_t entry_index; /* its position in that layer, or OCIL_ROOTFS_NO_ENTRY */
	ocil_tar_type type;   /* FILE, DIR, SYMLINK or OTHER; never HARDLINK */
	mode_t mode;	      /* st_mode: type bits and permissions */
	uint64_t size;	      /* data bytes of a FILE */
	char *link;	      /* SYMLINK: the target as stored */
	/* when lookup returns 0: why, e.g. "/a/b was removed by a whiteout
	 * in layer 2" or "/a is not a directory" */
	char *missing;
} ocil_rootfs_node;

/* Index the layers (blob files, plain tar or gzip/zstd; index 0 is the
 * bottom layer). Checks cancel between entries. Errors name the layer
 * ("layer 2 (sha256:...)") and the entry. */
int ocil_rootfs_open(const char *const *layer_paths, size_t n, const ocil_cancel *cancel,
		     ocil_rootfs **out, ocil_error **err);
/* The same, taking the entries of layers seen before from their indexes in
 * index_dir (see layer_index.h; the layer paths must be verified blobs
 * named by their digest), and leaving indexes of the others there. File
 * data still comes from the blobs. */
int ocil_rootfs_open_indexed(const char *const *layer_paths, size_t n, const char *index_dir,
			     const ocil_cancel *cancel, ocil_rootfs **out, ocil_error **err);
/* Safe on NULL. */
void ocil_rootfs_free(ocil_rootfs *fs);
size_t ocil_rootfs_layer_count(const ocil_rootfs *fs);

/* Resolve path (absolute; a relative one is taken from the root) in the
 * merged view, following symlinks in every intermediate component and, when
 * follow_last, in the last one. Symlinks resolve INSIDE the image: absolute
 * targets start at the image root and ".." stops at "/", so nothing can
 * point outside. Returns 1 and fills node when found, 0 when not (with
 * node->missing set), -1 on error (more than OCIL_ROOTFS_MAX_HOPS links,
 * which includes loops: OCIL_E_INPUT). */
int ocil_rootfs_lookup(ocil_rootfs *fs, const char *path, bool follow_last, ocil_rootfs_node *node,
		       ocil_error **err);
void ocil_rootfs_node_clear(ocil_rootfs_node *node);

/* Append the names of dir's children in the merged view to names, sorted
 * bytewise; dir is resolved as by lookup with follow_last. Returns 1 when
 * dir is a directory, 0 when it is missing or not a directory (names
 * unchanged), -1 on error. */
int ocil_rootfs_list(ocil_rootfs *fs, const char *dir, ocil_strv *names, ocil_error **err);

/* Re-open the layer holding node's data (node must be a FILE from lookup
 * on this fs) and position the stream at it: ocil_tarstream_read then
 * streams node->size bytes. The caller frees *ts. */
int ocil_rootfs_open_file(ocil_rootfs *fs, const ocil_rootfs_node *node, ocil_tarstream **ts,
			  ocil_error **err);

static inline void ocil_rootfs_freep(ocil_rootfs **fs)
{
	ocil_rootfs_free(*fs);
}
#define cleanup_rootfs __attribute__((cleanup(ocil_rootfs_freep)))
#define cleanup_rootfs_node __attribute__((cleanup(ocil_rootfs_node_clear)))

#endif
