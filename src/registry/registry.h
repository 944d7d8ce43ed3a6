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
	/* Blob transfers at once (--jobs), for those that run several: the
	 * sources and sinks of transport/; <= 0: OCIL_NET_JOBS_DEFAULT. */
	int jobs;
	/* Every request through this loop (registry/net.h), shared with the
	 * handles cloned from this one; NULL: each handle on its own. */
	struct ocil_net *net;
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

/* ---- several transfers at once (issue 18) ---- */

/* A handle of its own for another thread: the same registry, repository
 * and options, and what r learnt so far (the scheme, the token or
 * credentials: no challenge, token request or credential helper again),
 * honouring cancel instead of r's. Later tokens are not shared. */
int ocil_registry_clone(const ocil_registry *r, const ocil_cancel *cancel, ocil_registry **out,
			ocil_error **err);
/* GET /v2/, answering the challenge if any, so that clones start with the
 * credentials or token (for push when opts.push) the repository needs.
 * Network and authentication errors only; any other answer is left to the
 * requests that follow. */
int ocil_registry_login(ocil_registry *r, ocil_error **err);
/* Whether r has talked to the registry yet. */
bool ocil_registry_used(const ocil_registry *r);

/* ocil_registry_push_blob in one PUT, whatever the size (a registry that
 * takes no chunks). */
int ocil_registry_push_blob_whole(ocil_registry *r, const ocil_descriptor *d, const char *path,
				  ocil_error **err);

/* A blob while it is written: its bytes so far in a growing file. */
typedef struct {
	uint64_t size; /* in the file now */
	bool done;     /* finished: size is final and digest set */
	char digest[OCIL_DIGEST_STR_SIZE];
} ocil_blob_stream_state;

typedef struct {
	int fd;		   /* the file, read with pread */
	const char *what;  /* the file's name, for messages */
	const char *label; /* for progress, until the digest is known */
	/* Block until the file has more than have bytes or is finished,
	 * then fill *st; -1 (err set) when neither will happen. */
	int (*wait)(void *data, uint64_t have, ocil_blob_stream_state *st, ocil_error **err);
	/* The registry has the first n bytes; the parts are at least
	 * part_min bytes but the last. n goes back to 0 when an upload starts
	 * over. May be NULL. */
	void (*acked)(void *data, uint64_t n, uint64_t part_min);
	void *data;
} ocil_blob_stream;

/* The largest part a streamed upload sends at once, for parts of at
 * least part_min bytes (OCIL_REGISTRY_STREAM_PART_MAX, or part_min if
 * larger). */
#define OCIL_REGISTRY_STREAM_PART_MIN ((uint64_t)5 << 20)
#define OCIL_REGISTRY_STREAM_PART_MAX ((uint64_t)16 << 20)
uint64_t ocil_registry_stream_part_max(uint64_t part_min);

/* Upload a blob while it is being written: POST a session; PATCH it a
 * part at a time as the file grows (at least
 * max(OCIL_REGISTRY_STREAM_PART_MIN, the registry's OCI-Chunk-Min-Length)
 * bytes but the last, as much as is there up to the part maximum, each
 * with its Content-Range); once the blob is finished and all of it sent,
 * PUT ?digest= with no body. The bytes sent must hash to the finished
 * blob's digest. A failure worth another try (connection, 429, 5xx, the
 * session lost) starts the upload over in a new session from byte 0 (the
 * file has every byte), within the retry budget; each request has
 * opts.timeout_s. d gets the blob's digest and size. *refused: the first
 * PATCH got a 4xx that says the registry takes no chunks (not 401, 403,
 * 404, 408, 416, 429): the session is cancelled and nothing is uploaded;
 * send the finished blob with ocil_registry_push_blob_whole. */
int ocil_registry_push_stream(ocil_registry *r, const ocil_blob_stream *s, ocil_descriptor *d,
			      bool *refused, ocil_error **err);

#endif
