/* The layer cache: layers made before, found again by a key that covers
 * everything their bytes depend on, so an unchanged input is not packed
 * twice.
 *
 * Under the cache directory ($XDG_CACHE_HOME/ocilambda or --cache-dir):
 *   layers/<key hex>.json   {"digest", "diff_id", "size", "uncompressed_size",
 *                            "facts", "blob"}
 *   blobs/sha256/<hex>      the layer itself, in the shared blob cache
 *   verified/<hex>          blob files hashed before (see the end)
 *   index/<hex>             layer entry indexes (layer_index.h)
 *   index/<hex>.bytecode    a layer's python sources and pyc headers (pyc.h)
 * "facts" is whatever the producer needs again without redoing its work
 * (e.g. what inspecting the conda prefix found); "blob" is the blob file's
 * device, inode, size and mtime when it was last known to hash to digest.
 * Records are written atomically. A record is only trusted with its blob:
 * one whose file still has the recorded identity (any write changes its
 * mtime) is used as is, any other is hashed again, and a missing or wrong
 * blob makes the lookup a miss (the caller packs again), never a failure.
 * Keys come from the caller: the sha256 of a description of every input
 * and option, see ocil_layer_cache_key_*. */
#ifndef OCIL_LAYER_CACHE_H
#define OCIL_LAYER_CACHE_H

#include <jansson.h>
#include <stdbool.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"

typedef struct ocil_layer_cache ocil_layer_cache;

typedef struct {
	char digest[OCIL_DIGEST_STR_SIZE];
	char diff_id[OCIL_DIGEST_STR_SIZE];
	int64_t size;
	int64_t uncompressed_size; /* of the tar */
	json_t *facts;		   /* owned; may be NULL */
} ocil_layer_cache_entry;

void ocil_layer_cache_entry_clear(ocil_layer_cache_entry *e);

int ocil_layer_cache_open(const char *cache_dir, ocil_layer_cache **out, ocil_error **err);
void ocil_layer_cache_free(ocil_layer_cache *lc);
static inline void ocil_layer_cache_freep(ocil_layer_cache **lc)
{
	ocil_layer_cache_free(*lc);
}
#define cleanup_layer_cache __attribute__((cleanup(ocil_layer_cache_freep)))

/* A key: start with the kind of layer and a format version, then add each
 * input (strings and numbers are length- or width-delimited, so no two
 * inputs can run together) and finish into "sha256:<hex>". The ocilambda,
 * libarchive, libdeflate, isa-l and libzstd versions are always part of it. */
ocil_hasher *ocil_layer_cache_key_begin(const char *kind);
void ocil_layer_cache_key_str(ocil_hasher *h, const char *s); /* NULL differs from "" */
void ocil_layer_cache_key_int(ocil_hasher *h, int64_t v);
void ocil_layer_cache_key_finish(ocil_hasher *h, char key[OCIL_DIGEST_STR_SIZE]);

/* 1 and e filled (the blob is in the cache and good), 0 on a miss (no
 * record, a damaged record, a missing or wrong blob: what was wrong is
 * removed), -1 only on cancellation. */
int ocil_layer_cache_get(ocil_layer_cache *lc, const char *key, ocil_layer_cache_entry *e,
			 const ocil_cancel *cancel, ocil_error **err);
/* Record e under key, its blob taken from store from (hardlinked when the
 * filesystem allows, else copied). */
int ocil_layer_cache_put(ocil_layer_cache *lc, const char *key, const ocil_layer_cache_entry *e,
			 ocil_blobstore *from, ocil_error **err);
/* Put e's blob (from the cache) into store to: a hardlink when the
 * filesystem allows, else a streaming copy checked against its digest. */
int ocil_layer_cache_export(ocil_layer_cache *lc, const ocil_layer_cache_entry *e,
			    ocil_blobstore *to, ocil_error **err);

/* Records that are only JSON (e.g. the layers a build made, under the
 * whole build's key): 1 and *out (the caller's), 0 when there is none or
 * it is not JSON; the caller checks the shape and forgets a bad one. */
int ocil_layer_cache_get_json(ocil_layer_cache *lc, const char *key, json_t **out);
int ocil_layer_cache_put_json(ocil_layer_cache *lc, const char *key, const json_t *j,
			      ocil_error **err);
void ocil_layer_cache_forget_json(ocil_layer_cache *lc, const char *key);
/* The cache's blob store (layers downloaded from a cache repository go
 * there before _put). */
ocil_blobstore *ocil_layer_cache_blobs(ocil_layer_cache *lc);

/* Blob files hashed before (a base layout's layers, say): whether the file
 * at path is still the one that hashed to digest (same device, inode, size
 * and mtime, which any write moves) and has the size the descriptor at hand
 * says (a descriptor with a wrong size is for the full check to refuse),
 * and noting one that did. Kept under <cache>/verified. */
bool ocil_layer_cache_verified(ocil_layer_cache *lc, const char *path, const char *digest,
			       int64_t size);
void ocil_layer_cache_note_verified(ocil_layer_cache *lc, const char *path, const char *digest);

#endif
