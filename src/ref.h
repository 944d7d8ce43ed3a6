/* Image references: docker://host/repo:tag@digest (or bare), oci:DIR[:TAG],
 * docker-archive:FILE[:REPO:TAG]. */
#ifndef OCIL_REF_H
#define OCIL_REF_H

#include "error.h"

typedef enum {
	OCIL_REF_DOCKER,
	OCIL_REF_OCI,
	OCIL_REF_DOCKER_ARCHIVE,
} ocil_transport;

typedef struct {
	ocil_transport transport;
	char *input;	  /* as the user wrote it, for messages */
	char *path;	  /* oci: directory, docker-archive: file */
	char *tag;	  /* oci: tag; docker: tag; docker-archive: "repo:tag" or NULL */
	char *registry;	  /* docker: "registry-1.docker.io", "public.ecr.aws", "127.0.0.1:5000" */
	char *repository; /* docker: "library/python", "lambda/python" */
	char *digest;	  /* docker: "sha256:..." when pinned */
} ocil_ref;

int ocil_ref_parse(const char *s, ocil_ref *out, ocil_error **err);
void ocil_ref_clear(ocil_ref *r);
/* True for a valid OCI layout tag (org.opencontainers.image.ref.name). */
int ocil_ref_check_tag(const char *tag, const char *what, ocil_error **err);

#endif
