/* Manifests (OCI and Docker v2s2), indexes / manifest lists with platform
 * selection, descriptors and media types. */
#ifndef OCIL_IMAGE_H
#define OCIL_IMAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/error.h"

#define OCIL_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCIL_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define OCIL_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCIL_MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define OCIL_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCIL_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define OCIL_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define OCIL_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define OCIL_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define OCIL_MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar"
#define OCIL_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"

typedef enum {
	OCIL_LAYER_TAR,
	OCIL_LAYER_GZIP,
	OCIL_LAYER_ZSTD,
	OCIL_LAYER_UNKNOWN,
} ocil_layer_compression;

typedef struct {
	char *media_type;
	char digest[OCIL_DIGEST_STR_SIZE];
	int64_t size;
} ocil_descriptor;

typedef struct {
	bool docker; /* Docker v2s2 family (else OCI) */
	char *media_type;
	ocil_descriptor config;
	ocil_descriptor *layers;
	size_t n_layers;
} ocil_manifest;

typedef struct {
	char *os;
	char *arch;
	char *variant; /* may be NULL */
} ocil_platform;

bool ocil_media_type_is_index(const char *mt);
bool ocil_media_type_is_manifest(const char *mt);
ocil_layer_compression ocil_layer_media_compression(const char *mt);
/* The layer media type for a compression in the OCI or Docker family. */
const char *ocil_layer_media_type(bool docker, ocil_layer_compression c);

/* Parse and validate a descriptor object; what names it in errors. */
int ocil_descriptor_parse(const json_t *j, const char *what, ocil_descriptor *out,
			  ocil_error **err);
json_t *ocil_descriptor_to_json(const ocil_descriptor *d);
void ocil_descriptor_clear(ocil_descriptor *d);
void ocil_descriptor_copy(ocil_descriptor *dst, const ocil_descriptor *src);

/* Media type of a manifest document: its mediaType field, else the hint
 * (from the index or Content-Type), else guessed from its shape. */
const char *ocil_manifest_detect_type(const json_t *doc, const char *hint);

/* Write a single-platform manifest of the OCI or Docker family into bs: the
 * config and layer descriptors keep digest and size, their media types are
 * translated to the family (same bytes, other name). Fills out. */
int ocil_manifest_write(bool docker, const ocil_descriptor *config, const ocil_descriptor *layers,
			size_t n_layers, ocil_blobstore *bs, ocil_descriptor *out,
			ocil_error **err);

int ocil_manifest_parse(const char *buf, size_t len, const char *what, const char *hint,
			ocil_manifest *out, ocil_error **err);
void ocil_manifest_clear(ocil_manifest *m);

/* "linux/amd64", "linux/arm64/v8". */
int ocil_platform_parse(const char *s, ocil_platform *out, ocil_error **err);
void ocil_platform_clear(ocil_platform *p);
char *ocil_platform_format(const ocil_platform *p);

/* From an index/manifest list, pick the manifest for platform, skipping
 * attestation manifests. Errors list what is available. */
int ocil_index_select(const char *buf, size_t len, const char *what, const ocil_platform *want,
		      ocil_descriptor *out, ocil_error **err);

#endif
