/* Layer entry indexes: what ocil_tarstream_next gives for a layer blob
 * (path, type, mode, size, link, in order), kept under the cache so a
 * layer seen before is not decompressed again to learn its entries.
 *
 * An index is the file <dir>/<hex> for the layer sha256:<hex>, written
 * atomically, ending in the sha256 of its own content (checked on
 * reading: a damaged index is removed and the layer read again). Entries
 * that break what ocil_tarstream guarantees (a path not normalized, a root
 * that is not a directory, a link where none belongs) fail the read with
 * "damaged layer index" and the file is removed. mtimes are not kept: an
 * entry from an index has mtime 0 (unpacking reads the layer itself). It is
 * written by whoever reads a layer fully (ocil_layer_entries below) or
 * writes one (the layer writer). Trust: an index describes the blob with
 * that digest; callers use it only for blobs they have verified, whose
 * file name is their digest (blobs/sha256/<hex>). */
#ifndef OCIL_LAYER_INDEX_H
#define OCIL_LAYER_INDEX_H

#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "oci/tarstream.h"

typedef struct ocil_layer_index_writer ocil_layer_index_writer;

/* A temporary file in dir (created if needed). */
int ocil_layer_index_writer_begin(const char *dir, ocil_layer_index_writer **out, ocil_error **err);
/* Errors (a full disk) are kept for _commit. */
void ocil_layer_index_writer_add(ocil_layer_index_writer *w, const ocil_tar_entry *e);
/* Name the index after the layer's digest. */
int ocil_layer_index_writer_commit(ocil_layer_index_writer *w, const char *digest,
				   ocil_error **err);
/* An uncommitted index is removed. Safe on NULL. */
void ocil_layer_index_writer_free(ocil_layer_index_writer *w);

/* Entries of a layer blob file: from its index when index_dir has a good
 * one for it, else from the blob itself (and then, once the end is
 * reached, an index is written for next time). index_dir NULL, or a path
 * that is not .../sha256/<hex>: always from the blob, no index. Data is
 * never readable through this. */
typedef struct ocil_layer_entries ocil_layer_entries;
int ocil_layer_entries_open(const char *path, const char *what, const char *index_dir,
			    ocil_layer_entries **out, ocil_error **err);
/* As ocil_tarstream_next. */
int ocil_layer_entries_next(ocil_layer_entries *it, const ocil_tar_entry **e, ocil_error **err);
/* Whether the entries come from an index (for tests). */
bool ocil_layer_entries_indexed(const ocil_layer_entries *it);
void ocil_layer_entries_free(ocil_layer_entries *it);
static inline void ocil_layer_entries_freep(ocil_layer_entries **it)
{
	ocil_layer_entries_free(*it);
}
#define cleanup_layer_entries __attribute__((cleanup(ocil_layer_entries_freep)))

#endif
