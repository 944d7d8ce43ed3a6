/* A cache repository (assemble --cache-repo, issue 17): the layers builds
 * made, recorded in a registry repository under their cache keys, so that
 * another machine (a fresh CI runner, whose layer cache is empty) takes
 * them instead of packing them, and a push to the same registry mounts
 * them instead of uploading them.
 *
 * One entry per key (the sha256 of everything the layer's bytes depend on,
 * with nothing of one machine's: see the keys in the build), an OCI image
 * manifest tagged "sha256-<hex of the key>":
 *   artifactType  OCIL_CACHE_REPO_ARTIFACT
 *   config        the empty descriptor (OCI 1.1: application/vnd.oci.empty.v1+json, "{}")
 *   layers        the layer itself (its own media type), then its facts
 *                 (OCIL_CACHE_REPO_FACTS), JSON: {"key", "diff_id",
 *                 "uncompressed_size", "facts" (what the build would
 *                 otherwise learn by packing: warnings, bytecode counts),
 *                 "index" (base64 of its entry index, layer_index.h),
 *                 "pyc" (base64 of its python facts, pyc.h, or null)}, so
 *                 that Lambda's checks need not read a layer that was
 *                 mounted
 *   annotations   {OCIL_CACHE_REPO_KEY_ANN: the key}
 * docker-registry and the clouds' registries store such manifests (they
 * take config and layer media types they do not know). Several entries are
 * looked up and recorded at once (OCIL_CACHE_REPO_JOBS clients).
 *
 * Trust: whoever can push to the repository decides what a key gives, so
 * the bytes of the images built with it: a mounted layer is never read
 * here (its diff_id is taken from the entry); a downloaded one is checked
 * against its digest and diff_id. */
#ifndef OCIL_CACHE_REPO_H
#define OCIL_CACHE_REPO_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "oci/image.h"
#include "registry/registry.h"

#define OCIL_CACHE_REPO_ARTIFACT "application/vnd.ocilambda.layer-cache.v1+json"
#define OCIL_CACHE_REPO_FACTS "application/vnd.ocilambda.layer-facts.v1+json"
#define OCIL_CACHE_REPO_EMPTY "application/vnd.oci.empty.v1+json"
#define OCIL_CACHE_REPO_KEY_ANN "org.ocilambda.cache.key"
/* caps on what an entry may make us read */
#define OCIL_CACHE_REPO_FACTS_MAX ((int64_t)256 << 20)
/* entries looked up or recorded at once */
#define OCIL_CACHE_REPO_JOBS 4

typedef struct ocil_cache_repo ocil_cache_repo;

typedef struct {
	ocil_descriptor layer; /* the layer blob: media type, digest, size */
	char diff_id[OCIL_DIGEST_STR_SIZE];
	int64_t uncompressed_size;
	json_t *facts; /* owned; may be NULL */
} ocil_cache_repo_entry;
void ocil_cache_repo_entry_clear(ocil_cache_repo_entry *e);

/* "HOST[:PORT]/REPO" (docker:// may come first): a registry and a
 * repository, no tag, no digest. OCIL_E_USAGE otherwise. */
int ocil_cache_repo_parse(const char *s, char **registry, char **repository, ocil_error **err);

/* Parses s (as above) and opens a client (no network yet). The workers of
 * the batches below get the same options without notice and progress
 * callbacks. */
int ocil_cache_repo_open(const char *s, const ocil_registry_opts *ro, ocil_cache_repo **out,
			 ocil_error **err);
void ocil_cache_repo_free(ocil_cache_repo *c);
const char *ocil_cache_repo_registry(const ocil_cache_repo *c);
const char *ocil_cache_repo_repository(const ocil_cache_repo *c);
/* "HOST/REPO", for messages */
const char *ocil_cache_repo_name(const ocil_cache_repo *c);

/* "sha256-<hex>" for key "sha256:<hex>" (tag: at least 72 bytes). */
void ocil_cache_repo_tag(const char *key, char tag[OCIL_DIGEST_STR_SIZE]);

/* A key to look up. */
typedef struct {
	const char *key; /* in */
	bool download;	 /* in: the layer itself too (else it stays there, to be mounted) */
	bool found;	 /* out: an entry of ours for key, usable: e filled */
	ocil_cache_repo_entry e;
	char *why; /* out: why an entry that is there was not used (a wrong one), or NULL */
} ocil_cache_repo_find;
void ocil_cache_repo_find_clear(ocil_cache_repo_find *f);

/* Look each key up and fetch what the build needs of those found: their
 * index and python facts into index_dir under the layer's digest (as the
 * layer writer leaves them), checked to load; with download, the layer
 * into bs, its digest, size and diff_id checked. An entry is used only
 * when it is ours, for that key, and its layer is in the repository with
 * the size it says; any other (its blob gone, its descriptor or facts
 * wrong) is not found, with why set: the caller packs the layer. Small
 * blobs go through scratch (the blob cache). -1 when the registry cannot
 * be asked (OCIL_E_REGISTRY, OCIL_E_IO) or on OCIL_E_CANCELLED. */
int ocil_cache_repo_find_all(ocil_cache_repo *c, ocil_cache_repo_find *finds, size_t n,
			     const char *index_dir, ocil_blobstore *bs, ocil_blobstore *scratch,
			     const ocil_cancel *cancel, ocil_error **err);

/* An entry to record. */
typedef struct {
	const char *key;	 /* in */
	ocil_cache_repo_entry e; /* in: the layer's descriptor, diff_id, size, facts */
	ocil_error *err;	 /* out: why it was not recorded, or NULL */
} ocil_cache_repo_put;
void ocil_cache_repo_put_clear(ocil_cache_repo_put *p);

/* Record each key -> entry: the layer blob mounted from mount_repo (a
 * repository of the same registry that has it; NULL: none), else uploaded
 * from layer_bs; the facts blob (with the index and python facts from
 * index_dir) through scratch; then the manifest, tagged. Returns how many
 * failed (their err set). */
size_t ocil_cache_repo_record_all(ocil_cache_repo *c, ocil_cache_repo_put *puts, size_t n,
				  ocil_blobstore *layer_bs, ocil_blobstore *scratch,
				  const char *mount_repo, const char *index_dir,
				  const ocil_cancel *cancel);

/* For tests and fuzzing: the entry a manifest and a facts blob make for
 * key (false: not one of ours, or malformed); index and pyc (caller
 * frees; pyc may be NULL) are the decoded side files. */
bool ocil_cache_repo_parse_manifest(const char *key, const char *body, size_t len,
				    ocil_cache_repo_entry *e, ocil_descriptor *facts);
bool ocil_cache_repo_parse_facts(const char *key, const char *buf, size_t len,
				 ocil_cache_repo_entry *e, char **index, size_t *index_len,
				 char **pyc, size_t *pyc_len);

#endif
