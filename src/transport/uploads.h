/* The uploads of a registry output, made while the image is being made
 * (issue 18): blobs go up --jobs at once, in threads of their own, and a
 * new layer goes up while it is compressed.
 *
 * Install the tap on the store the image is written to: a blob written
 * there that grows past the first part's size (5 MiB) starts an upload
 * session, fed a part at a time as the file grows and closed with the
 * digest once the writer commits it. The compressor is held back while it
 * is more than two parts ahead of what the registry acknowledged, so that
 * a slow or failing registry is noticed early (and the lead is bounded). A
 * registry that turns down chunked uploads gets the blob in one PUT at
 * finish. Finished blobs handed to ocil_uploads_add (a base's layers) go up
 * at once: HEAD first, mounted from a mount_from repository when given,
 * uploaded if neither. ocil_uploads_finish makes sure every blob of the image is at the
 * registry: only then may the manifest go. Nothing here publishes
 * anything. */
#ifndef OCIL_UPLOADS_H
#define OCIL_UPLOADS_H

#include <stddef.h>

#include "base/blobstore.h"
#include "base/error.h"
#include "base/util.h"
#include "oci/image.h"
#include "registry/registry.h"

typedef struct ocil_uploads ocil_uploads;

typedef struct {
	/* the caller's handle, for the repository pushed to; the uploads use
	 * it (one thread at a time) until ocil_uploads_finish returns */
	ocil_registry *registry;
	int jobs; /* uploads at once; <= 0: the default */
	const ocil_cancel *cancel;
	/* repositories on the same registry to mount blobs from, tried in
	 * this order (the base's, the cache repository), or NULL */
	const char *mount_from[2];
} ocil_uploads_opts;

int ocil_uploads_new(const ocil_uploads_opts *o, ocil_uploads **out, ocil_error **err);
/* What to give ocil_blobstore_set_tap. */
void ocil_uploads_tap(ocil_uploads *u, ocil_blob_tap *tap);
/* Upload the finished blob d (the file at path) in the background. */
void ocil_uploads_add(ocil_uploads *u, const ocil_descriptor *d, const char *path);
/* have[i]: whether the registry has ds[i] (HEAD), or has it now (mounted
 * from a mount_from repository); all n looked at together. The blobs it has count as
 * uploaded for ocil_uploads_finish. */
int ocil_uploads_probe(ocil_uploads *u, const ocil_descriptor *ds, size_t n, bool *have,
		       ocil_error **err);
/* Every one of blobs (n; in bs when not uploaded yet) at the registry, or
 * the first failure of one of them (in the order given). Waits for all the
 * uploads under way. */
int ocil_uploads_finish(ocil_uploads *u, const ocil_descriptor *const *blobs, size_t n,
			ocil_blobstore *bs, ocil_error **err);
/* Stops what is under way (abandoned sessions are cancelled) and frees.
 * Every writer the tap saw must be over. Safe on NULL. */
void ocil_uploads_free(ocil_uploads *u);

#endif
