/* The plan: base config + new layers -> new config and manifest.
 * The base config is kept (Env, WorkingDir, labels, os/architecture);
 * Env gets the given K=V (replaced or appended, in order), Entrypoint the
 * given one (else the base's stays), Cmd [handler] in exec form,
 * rootfs.diff_ids the new layers', history one entry each (when the base
 * has a history), created the given time (docs/ARCHITECTURE.md, assemble). */
#ifndef OCIL_PLAN_H
#define OCIL_PLAN_H

#include <jansson.h>

#include "base/blobstore.h"
#include "oci/image.h"

typedef struct {
	char digest[OCIL_DIGEST_STR_SIZE];
	char diff_id[OCIL_DIGEST_STR_SIZE];
	int64_t size;
	bool zstd;		/* a zstd layer (OCI only), else gzip */
	const char *created_by; /* history text */
} ocil_plan_layer;

typedef struct {
	bool docker; /* Docker v2s2 family, else OCI; base layer
		      * descriptors are translated */
	const json_t *base_config;
	const ocil_descriptor *base_layers; /* as stored in the output */
	size_t n_base_layers;
	const ocil_plan_layer *layers; /* new layers, in order */
	size_t n_layers;
	char *const *env; /* "K=V" to set, in order (replace or append) */
	size_t n_env;
	const json_t *entrypoint; /* array of strings, or NULL to keep the base's */
	const char *handler;	  /* becomes Cmd [handler] */
	int64_t created;	  /* seconds since the epoch */
} ocil_plan;

/* RFC 3339 UTC, "1970-01-01T00:00:00Z". */
char *ocil_plan_timestamp(int64_t t);
/* Build the config (returned, for tests and inspection) and store config and
 * manifest in bs; fills the manifest descriptor. */
int ocil_plan_write(const ocil_plan *p, ocil_blobstore *bs, ocil_descriptor *manifest,
		    json_t **config_out, ocil_error **err);

#endif
