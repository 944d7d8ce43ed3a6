/* Concurrent downloads: a set of URLs with the hashes their bytes must have
 * -> verified blobs in a content-addressed store (blobstore.h).
 *
 * One libcurl multi handle drives up to `jobs` transfers at once. Each
 * transfer follows the rules the registry client follows (http.h): redirects
 * followed by hand (at most OCIL_HTTP_MAX_REDIRECTS, never from https to
 * http, never to another scheme), credentials (the user's netrc, an item's
 * Authorization) sent only to the origin of the item's first URL, never to
 * a host it is redirected to; https verified with the system CAs plus
 * --ca-file/--cert-dir; plain http only to a loopback host or with
 * tls_verify off, said in a notice; connection errors, 429 and 5xx retried
 * with backoff or the server's Retry-After, within `retries` and
 * `timeout_s` per item; a transfer that drops resumes with a Range request.
 *
 * Bytes are hashed as they arrive (sha256, and md5 when the item gives one)
 * and a blob appears in the store only once its hashes matched; a body
 * larger than the item's size (or, unknown, than max_size) is cut off. An
 * item whose blob the store already has (by sha256, or by md5 through the
 * store's md5 index, which every download with an md5 feeds) is not
 * fetched. Duplicate items are fetched once.
 *
 * Nothing is printed: notices ("using plain http for HOST", "HOST:
 * retrying NAME in 2 s (HTTP 503)") and progress go to callbacks; errors
 * are values. URLs in messages have their password and anaconda.org token
 * masked (ocil_url_redact). */
#ifndef OCIL_FETCH_H
#define OCIL_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/blobstore.h"
#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"

/* A download whose size is not known may have this many bytes at most
 * (the biggest conda packages are about 2 GB). */
#define OCIL_FETCH_MAX_SIZE ((uint64_t)4 << 30)
#define OCIL_FETCH_JOBS_DEFAULT 4
#define OCIL_FETCH_JOBS_MAX 64

typedef struct ocil_fetch_progress {
	size_t done, total; /* items finished, of those to download */
	size_t active;	    /* transfers under way */
	uint64_t bytes;	    /* received, over all items (a restart counts again) */
} ocil_fetch_progress;

typedef struct {
	/* Default true. false: the certificate of each item's first host is
	 * not verified, and plain http is allowed to any host. */
	bool tls_verify;
	const char *ca_file;  /* extra CA bundle (PEM), or NULL */
	const char *cert_dir; /* directory whose *.crt files are CAs, or NULL */
	const char *netrc;    /* credentials file (libcurl's netrc), or NULL */
	int retries;	      /* retries after the first attempt, per item */
	long timeout_s;	      /* bound on one item's download, retries included */
	int jobs;	      /* transfers at once; <= 0: OCIL_FETCH_JOBS_DEFAULT */
	uint64_t max_size;    /* 0: OCIL_FETCH_MAX_SIZE */
	/* Nothing touches the network: an item not in the store is an
	 * OCIL_E_INPUT error naming it. */
	bool offline;
	const ocil_cancel *cancel;
	void (*notice)(void *data, const char *msg);
	/* After every chunk received and every item finished; throttle the
	 * display. */
	void (*progress)(void *data, const ocil_fetch_progress *p);
	void *data;
} ocil_fetch_opts;

typedef struct {
	/* in */
	const char *url;    /* http or https */
	const char *name;   /* what it is, for messages ("numpy-1.26.4-py311_0.conda") */
	const char *sha256; /* expected, 64 hex digits, or NULL */
	const char *md5;    /* expected, 32 hex digits, or NULL; one of the two is given */
	int64_t size;	    /* expected size, or -1 */
	const char *authz;  /* Authorization value for the first URL's origin, or NULL */
	/* out */
	char digest[OCIL_DIGEST_STR_SIZE]; /* the stored blob's */
	bool fetched;			   /* false: the store had it */
} ocil_fetch_item;

/* Fetch what bs lacks of items. On failure *failed (if not NULL) is the
 * index of the item the error is about (n when none is), and the error:
 *   OCIL_E_INPUT "<name>: <url>: md5 mismatch (expected X, got Y); nothing
 *     was kept" (or sha256), a URL that is not http(s), plain http refused,
 *     "<name>: not in the cache (--offline)"
 *   OCIL_E_REGISTRY "<name>: <url>: HTTP 404 Not Found", network errors
 *     and retries spent ("… (gave up after 4 attempts)"), a body over the
 *     cap, a redirect refused;
 *   OCIL_E_IO, OCIL_E_CANCELLED.
 * Blobs verified before a failure stay in the store. */
int ocil_fetch_run(ocil_blobstore *bs, ocil_fetch_item *items, size_t n, const ocil_fetch_opts *o,
		   size_t *failed, ocil_error **err);

/* Whether bs has the blob with this sha256 (hex, or NULL), or failing that
 * the one its md5 index maps this md5 to; *digest (OCIL_DIGEST_STR_SIZE) is
 * then its digest. The index is only as trustworthy as the store: read the
 * blob against the md5 before relying on it. */
bool ocil_fetch_find(const ocil_blobstore *bs, const char *sha256, const char *md5, char *digest);

/* --mirror FROM=TO: a URL starting with FROM (at a '/' boundary) is
 * fetched from TO plus the rest, as pixi's mirrors do. */
typedef struct {
	char *from, *to; /* without trailing '/' */
} ocil_mirror;
/* OCIL_E_USAGE "--mirror \"…\": want FROM=TO, …" unless FROM is an http(s)
 * URL and TO an http(s) or file URL. */
int ocil_mirror_parse(const char *arg, ocil_mirror *out, ocil_error **err);
void ocil_mirror_clear(ocil_mirror *m);
/* url rewritten by the longest matching FROM (a copy of url when none
 * matches). Caller frees. */
char *ocil_mirror_apply(const ocil_mirror *m, size_t n, const char *url);

/* The user's netrc: $NETRC, else ~/.netrc; NULL when that is not a file.
 * Caller frees. */
char *ocil_fetch_default_netrc(void);

/* The path of a file:// URL (file:///p or file://localhost/p), NULL when
 * url is not one. Caller frees. */
char *ocil_file_url_path(const char *url);

#endif
