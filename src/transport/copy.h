/* copy: one platform's image from a source to a sink, unchanged where the
 * sink allows (the digest the user built stays the digest published).
 *
 *   pull: a registry image into an OCI layout, for builds on hosts that
 *         cannot reach the registry (a Docker manifest is stored as OCI,
 *         same blobs: skopeo and umoci read nothing else from a layout);
 *   push: any image to a registry, a docker-archive or a layout: blobs
 *         first (skipping what a registry has, mounting from the source
 *         repository on the same registry), then the config, then the
 *         manifest, so that a failed push publishes nothing. */
#ifndef OCIL_COPY_H
#define OCIL_COPY_H

#include <stdbool.h>

#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "registry/registry.h"
#include "transport/sink.h"

typedef struct {
	const char *from, *to;	/* references (pull: to is oci:DIR[:TAG]) */
	const char *platform;	/* NULL: linux/amd64 */
	ocil_format format;	/* push: the manifests' family (default: the source's) */
	const char *digestfile; /* push: the manifest digest written there, or NULL */
	ocil_registry_opts registry;
	const char *cache_dir; /* NULL: the default blob cache */
	const ocil_cancel *cancel;
} ocil_copy_opts;

typedef struct {
	char digest[OCIL_DIGEST_STR_SIZE];	  /* the manifest written */
	char source_digest[OCIL_DIGEST_STR_SIZE]; /* the source's manifest */
	char *published; /* push: the digest, or HOST/REPO@digest for a registry */
	char *where;	 /* pull: "oci:DIR:TAG" */
	bool converted;	 /* pull: a Docker manifest stored as OCI */
} ocil_copy_result;
void ocil_copy_result_clear(ocil_copy_result *r);

/* OCIL_E_USAGE for a source that is not a registry or a destination that
 * is not oci:DIR; then the source's and the sink's errors. */
int ocil_copy_pull(const ocil_copy_opts *o, ocil_copy_result *out, ocil_error **err);
int ocil_copy_push(const ocil_copy_opts *o, ocil_copy_result *out, ocil_error **err);

#endif
