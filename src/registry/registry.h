/* Client for the OCI distribution API (pull and push), over libcurl.
 *
 * One ocil_registry talks to one repository on one registry. It starts
 * anonymous and answers the registry's WWW-Authenticate challenge (bearer
 * token or basic, credentials from ocil_auth_find), follows redirects itself
 * so that credentials never leave the registry's own host, retries
 * connection errors, 429 and 5xx with backoff (honouring Retry-After) within
 * a time budget, and verifies every byte it hands back.
 *
 * Pushing: blobs first (ocil_registry_blob_exists, then _mount_blob or
 * _push_blob), then the config, then ocil_registry_put_manifest; until the
 * manifest is PUT nothing is published. Errors on push requests are
 * OCIL_E_REGISTRY and carry the registry's own errors[].code/message.
 *
 * libcurl's global state: ocil_registry_open calls curl_global_init and
 * ocil_registry_free the matching curl_global_cleanup (both reference-counted
 * and thread-safe in the libcurl we build against), so callers need not do
 * anything and the library keeps no globals of its own. */
#ifndef OCIL_REGISTRY_H
#define OCIL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "oci/image.h"

typedef struct ocil_registry_opts {
	/* Default true. false (--tls-verify=false): the registry's TLS
	 * certificate is not verified AND plain http is allowed for it. Hosts a
	 * blob GET is redirected to are still verified. */
	bool tls_verify;
	const char *ca_file;  /* extra CA bundle (PEM), or NULL */
	const char *cert_dir; /* directory whose *.crt files are CAs (certs.d style), or NULL */
	const char *authfile; /* --authfile, or NULL for the standard search */
	int retries;	      /* retries after the first attempt; default 3 */
	long timeout_s;	      /* bound on one operation including its retries; default 600 */
	const ocil_cancel *cancel;
	/* Notices for the user (the CLI prints them on stderr): "using plain
	 * http for 127.0.0.1:5000", "retrying … in 2 s (HTTP 503)". */
	void (*notice)(void *data, const char *msg);
	/* Progress of a blob download or upload: bytes so far of total. Called
	 * for every chunk received or sent; throttle the display. An upload
	 * that is tried again starts over from 0. */
	void (*progress)(void *data, const char *digest, uint64_t done, uint64_t total);
	void *data;
	/* Ask tokens for push access too ("repository:<repo>:pull,push"), so
	 * that the first token is good for the whole push. The push functions
	 * ask for it anyway when challenged, at the cost of a second token. */
	bool push;
	/* Blobs up to this size are uploaded in one PUT, bigger ones in PATCH
	 * chunks of this size (raised to the registry's OCI-Chunk-Min-Length).
	 * 0: 32 MiB. */
	uint64_t chunk_size;
} ocil_registry_opts;

typedef struct ocil_registry ocil_registry;

/* registry is "host[:port]" ("public.ecr.aws", "registry-1.docker.io",
 * "127.0.0.1:5000", "[::1]:5000"); repository e.g. "lambda/python". o may be
 * NULL for the defaults. Reads ca_file/cert_dir now; no network I/O yet. */
int ocil_registry_open(const char *registry, const char *repository, const ocil_registry_opts *o,
		       ocil_registry **out, ocil_error **err);
void ocil_registry_free(ocil_registry *r);

/* GET /v2/<repo>/manifests/<reference> (a tag or a digest), accepting OCI
 * manifest and index and Docker v2s2 manifest and list. The body is capped at
 * OCIL_JSON_MAX. Returns the body (NUL-terminated; caller frees), its media
 * type (Content-Type without parameters, NULL if absent; caller frees) and
 * its sha256. The body must hash to a digest reference, and to the
 * Docker-Content-Digest header when the registry sends one. */
int ocil_registry_get_manifest(ocil_registry *r, const char *reference, char **body, size_t *len,
			       char **media_type, char digest[OCIL_DIGEST_STR_SIZE],
			       ocil_error **err);

/* The same, except that a manifest the registry does not have (404) is
 * not an error: *found false, 0 returned, nothing else filled. */
int ocil_registry_find_manifest(ocil_registry *r, const char *reference, char **body, size_t *len,
				char **media_type, char digest[OCIL_DIGEST_STR_SIZE], bool *found,
				ocil_error **err);

/* HEAD /v2/<repo>/blobs/<digest>: *size is its Content-Length (-1 when the
 * registry does not say), or -1 when the registry does not have it (404). */
int ocil_registry_blob_size(ocil_registry *r, const char *digest, int64_t *size, ocil_error **err);

/* Download blob d into bs. Nothing becomes visible until digest and size are
 * verified. Returns 0 at once when bs already has it. A transfer that drops
 * is resumed with Range within the retry budget. */
int ocil_registry_fetch_blob(ocil_registry *r, const ocil_descriptor *d, ocil_blobstore *bs,
			     ocil_error **err);

/* HEAD /v2/<repo>/blobs/<digest>. *exists is true on 200, false on 404. A
 * 200 whose Content-Length is not d->size counts as missing (so the blob is
 * uploaded again), with a notice. */
int ocil_registry_blob_exists(ocil_registry *r, const ocil_descriptor *d, bool *exists,
			      ocil_error **err);

/* Cross-repository mount of d from from_repo on the same registry. *mounted
 * is true on 201; false on 202 (the registry does not mount, or does not
 * have it there: the upload session it opened instead is cancelled), and the
 * caller uploads the blob. The token asked for covers pull on from_repo. */
int ocil_registry_mount_blob(ocil_registry *r, const ocil_descriptor *d, const char *from_repo,
			     bool *mounted, ocil_error **err);

/* Upload the file at path (exactly d->size bytes) as blob d, streaming it
 * (memory use does not depend on its size): one PUT up to
 * opts.chunk_size, else PATCH chunks then a PUT. A failure on the way
 * (connection, 429, 5xx, the session lost) starts the whole upload again
 * in a new session, within the retry budget. A file whose bytes do not hash
 * to d->digest is an OCIL_E_INPUT error (checked before a chunked upload
 * is committed). It does not check whether the registry has the blob. */
int ocil_registry_push_blob(ocil_registry *r, const ocil_descriptor *d, const char *path,
			    ocil_error **err);

/* PUT /v2/<repo>/manifests/<reference> (a tag or the body's digest) with
 * Content-Type media_type. body is at most OCIL_JSON_MAX bytes and is sent
 * as is. digest_out is the body's sha256; a Docker-Content-Digest answer
 * that differs is an error. Any 2xx is success (the spec says 201). */
int ocil_registry_put_manifest(ocil_registry *r, const char *reference, const char *body,
			       size_t len, const char *media_type,
			       char digest_out[OCIL_DIGEST_STR_SIZE], ocil_error **err);

#endif
