/* Image references: docker://host/repo:tag@digest (or bare), oci:DIR[:TAG],
 * docker-archive:FILE[:REPO:TAG]. */
#ifndef OCIL_REF_H
#define OCIL_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

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
/* A tag by the grammar below, else "WHAT: invalid tag ..." (also for OCI
 * layout tags, org.opencontainers.image.ref.name). */
int ocil_ref_check_tag(const char *tag, const char *what, ocil_error **err);

/* Docker distribution's reference grammar, the only one in ocilambda (ref.c
 * spells it out). Lengths are in bytes; nothing here allocates. */
#define OCIL_REF_NAME_MAX 255
#define OCIL_REF_TAG_MAX 128
#define OCIL_REF_TAG_RULE                                                                          \
	"letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-'"
#define OCIL_REF_PATH_RULE                                                                         \
	"lowercase letters and digits, joined by '.', '_', '__' or dashes, components "            \
	"separated by '/'"
#define OCIL_REF_DOMAIN_RULE                                                                       \
	"dot-separated letters, digits and inner '-', or [IPv6], then an optional :port"
bool ocil_ref_tag_valid(const char *tag);
/* host[:port], or [IPv6][:port] */
bool ocil_ref_domain_valid(const char *s, size_t n);
/* a repository path: path-component ['/' path-component]*, at most 255 */
bool ocil_ref_path_valid(const char *s, size_t n);
/* How many leading bytes of NAME (before its first '/') are a registry
 * domain by Docker's rule (a '.', a ':', "localhost" or an uppercase letter
 * in the first component); 0 when the first component is part of the path. */
size_t ocil_ref_domain_len(const char *name);

#endif
