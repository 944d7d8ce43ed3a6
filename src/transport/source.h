/* Where a base image comes from. A source resolves its reference to one
 * single-platform manifest and its config (both verified by digest and size
 * when opened), and streams blobs on demand. Blob bytes are handed to a
 * callback; whoever stores or uses them verifies digest and size (see
 * ocil_source_copy_blob). */
#ifndef OCIL_SOURCE_H
#define OCIL_SOURCE_H

#include <jansson.h>

#include "base/blobstore.h"
#include "base/util.h"
#include "oci/image.h"
#include "oci/ref.h"

typedef struct ocil_source ocil_source;

typedef struct {
	int (*read_blob)(ocil_source *s, const ocil_descriptor *d, ocil_bytes_fn fn, void *data,
			 const ocil_cancel *cancel, ocil_error **err);
	/* Optional: the blob as a file (fetched first if need be), so a copy
	 * can be a hardlink. Caller frees *path. */
	int (*blob_path)(ocil_source *s, const ocil_descriptor *d, char **path,
			 const ocil_cancel *cancel, ocil_error **err);
	void (*free)(ocil_source *s);
} ocil_source_ops;

struct ocil_source {
	const ocil_source_ops *ops;
	char *name;		/* the ref as given, for messages */
	ocil_manifest manifest; /* layers as the source stores them */
	char manifest_digest[OCIL_DIGEST_STR_SIZE];
	char *manifest_raw; /* the manifest's bytes as stored by the source */
	size_t manifest_len;
	json_t *config; /* parsed, verified config */
	char *config_raw;
	size_t config_len;
	/* blob files hashed on an earlier run are linked without hashing
	 * them again when still the same files (layer_cache.h); set by the
	 * caller, may be NULL */
	struct ocil_layer_cache *verified;
};

typedef struct ocil_registry_opts ocil_registry_opts;

typedef struct {
	const ocil_platform *platform; /* which image of an index; checked against the config */
	const ocil_cancel *cancel;
	const ocil_registry_opts *registry; /* docker:// only */
	const char *cache_dir;		    /* docker:// only: the blob cache */
} ocil_source_opts;

int ocil_source_open(const ocil_ref *ref, const ocil_source_opts *o, ocil_source **out,
		     ocil_error **err);
void ocil_source_free(ocil_source *s);
int ocil_source_read_blob(ocil_source *s, const ocil_descriptor *d, ocil_bytes_fn fn, void *data,
			  const ocil_cancel *cancel, ocil_error **err);
/* Copy a blob into bs, verifying digest and size before it becomes visible.
 * When the source keeps the blob as a file, the verified file is hardlinked
 * instead of copied (blobs are never modified in place). */
int ocil_source_copy_blob(ocil_source *s, const ocil_descriptor *d, ocil_blobstore *bs,
			  const ocil_cancel *cancel, ocil_error **err);

/* Bring the image's layers into bs as Lambda wants them: gzip layers byte
 * for byte (verified), uncompressed ones (docker-archive) compressed with
 * their diff_id verified. *out gets one descriptor per layer, media types
 * in the docker or OCI family; free each with ocil_descriptor_clear. */
int ocil_source_import_layers(ocil_source *s, ocil_blobstore *bs, bool docker,
			      const ocil_cancel *cancel, ocil_descriptor **out, ocil_error **err);

/* For implementations: check the config against the manifest and platform,
 * then keep it (takes ownership of raw). */
int ocil_source_set_config(ocil_source *s, char *raw, size_t len, const ocil_platform *platform,
			   ocil_error **err);
/* Verify buf against a descriptor. */
int ocil_verify_bytes(const char *buf, size_t len, const ocil_descriptor *d, const char *what,
		      ocil_error **err);

int ocil_source_layout_open(const ocil_ref *ref, const ocil_platform *platform, ocil_source **out,
			    ocil_error **err);
int ocil_source_archive_open(const ocil_ref *ref, const ocil_platform *platform,
			     const ocil_cancel *cancel, ocil_source **out, ocil_error **err);
int ocil_source_registry_open(const ocil_ref *ref, const ocil_source_opts *o, ocil_source **out,
			      ocil_error **err);
/* An image's layers as verified files, bottom first, for readers that want
 * paths (rootfs, unpack): an oci: layout's own blobs (never written to), the
 * blob cache for docker:// (fetched when missing), a temporary directory
 * under tmp_dir (NULL: $TMPDIR, else /tmp) for docker-archive:. Blobs that
 * were there before are hashed first. Clear f afterwards, also on failure
 * (the temporary directory goes then). */
typedef struct {
	ocil_blobstore *bs;
	ocil_tmpdir tmp; /* docker-archive: the directory of ours to remove */
	ocil_strv paths;
} ocil_layer_files;
int ocil_layer_files_get(const ocil_ref *ref, ocil_source *src, const char *cache_dir,
			 const char *tmp_dir, const ocil_cancel *cancel, ocil_layer_files *f,
			 ocil_error **err);
void ocil_layer_files_clear(ocil_layer_files *f);

/* The blob cache: $XDG_CACHE_HOME/ocilambda, else ~/.cache/ocilambda.
 * Caller frees. */
char *ocil_source_default_cache_dir(void);

#endif
