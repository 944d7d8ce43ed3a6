/* Where an image goes: oci:DIR[:TAG] (layout), docker-archive:FILE[:REPO:TAG]
 * (docker load), docker://HOST/REPO[:TAG] (push).
 *
 * The image is first written into the sink's staging blob store; commit
 * then publishes it in one step (rename, or blobs then manifest), so a
 * failure never leaves a half-written output. */
#ifndef OCIL_SINK_H
#define OCIL_SINK_H

#include "base/blobstore.h"
#include "base/util.h"
#include "oci/image.h"
#include "oci/ref.h"

typedef struct ocil_registry_opts ocil_registry_opts;

typedef enum {
	OCIL_FORMAT_DEFAULT, /* the base's family (OCI for a layout) */
	OCIL_FORMAT_OCI,
	OCIL_FORMAT_DOCKER,
} ocil_format;

typedef struct {
	const ocil_registry_opts *registry; /* docker:// */
	const char *cache_dir;		    /* docker://: staging lives under it */
	const ocil_cancel *cancel;
	int64_t mtime; /* docker-archive member times */
	/* docker://: a repository on the same registry holding the base's
	 * blobs, to mount them from instead of uploading */
	const char *mount_registry, *mount_repo;
	/* docker://: a cache repository (issue 17) on the same registry or
	 * not: blobs the output lacks are mounted from it when it is on the
	 * same registry, and blobs the staging lacks (layers found there and
	 * not downloaded) are fetched from it when they cannot be mounted */
	const char *cache_registry, *cache_repo;
} ocil_sink_opts;

typedef struct {
	const ocil_descriptor *manifest; /* stored in the sink's blobs */
	const ocil_descriptor *config;
	const ocil_descriptor *layers;
	size_t n_layers;
	const char *const *diff_ids; /* per layer */
} ocil_sink_image;

typedef struct ocil_sink ocil_sink;

int ocil_sink_open(const ocil_ref *ref, const ocil_sink_opts *o, ocil_sink **out, ocil_error **err);
ocil_blobstore *ocil_sink_blobs(ocil_sink *s);
/* The manifest family to write: --format, else the base's; an OCI layout
 * only takes OCI (skopeo and umoci read nothing else from one). */
int ocil_sink_family(const ocil_sink *s, ocil_format f, bool base_docker, bool *docker,
		     ocil_error **err);
/* Publish. *published (caller frees) says what to use next:
 * "sha256:…" for files, "HOST/REPO@sha256:…" for a registry. */
int ocil_sink_commit(ocil_sink *s, const ocil_sink_image *img, char **published, ocil_error **err);
/* A registry sink uploads these blobs (finished, in its store: a base's
 * layers) now, in the background, while the rest is made; others do
 * nothing. */
void ocil_sink_upload(ocil_sink *s, const ocil_descriptor *ds, size_t n);
/* have[i]: whether the registry has ds[i] already (or, mounted from the
 * source repository, has it now), all looked at together; always false
 * for files. Such blobs need neither be read nor copied into the sink. */
int ocil_sink_probe(ocil_sink *s, const ocil_descriptor *ds, size_t n, bool *have,
		    ocil_error **err);
/* Frees; an uncommitted sink removes its staging. Safe on NULL. */
void ocil_sink_free(ocil_sink *s);

int ocil_format_parse(const char *s, ocil_format *out, ocil_error **err);

#endif
