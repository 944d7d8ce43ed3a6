/* HTTP over libcurl: the rules the registry client (registry.c) and the
 * package fetcher (fetch.c) share, so that both behave alike.
 *
 *   - which hosts may be spoken to over plain http (loopback, or any with
 *     --tls-verify=false) and where credentials may go (the origin they
 *     belong to, never another after a redirect);
 *   - the CA bundle of --ca-file and --cert-dir;
 *   - which curl errors are worth another attempt, and their messages;
 *   - Retry-After, and the retry budget: --retry attempts after the first,
 *     all within --timeout, with exponential backoff or the server's word. */
#ifndef OCIL_HTTP_H
#define OCIL_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/util.h"

/* Registries redirect blob GETs once (to S3, a CDN), package servers to a
 * CDN; a chain longer than this is a loop. */
#define OCIL_HTTP_MAX_REDIRECTS 5
/* One response header line, at most. */
#define OCIL_HTTP_HEADER_LINE_MAX ((size_t)8 << 10)
#define OCIL_HTTP_CONNECT_TIMEOUT_S 30
/* A transfer that moves nothing for this long is dead; the retry resumes it. */
#define OCIL_HTTP_STALL_TIME_S 60
/* What the server's Retry-After may ask, and our own backoff, at most. */
#define OCIL_HTTP_RETRY_AFTER_MAX_S 60
#define OCIL_HTTP_BACKOFF_MAX_S 30

/* Monotonic milliseconds. */
long long ocil_http_now_ms(void);

/* What every request of ours sets, whoever sends it: our User-Agent, http
 * and https only, redirects left to the caller (it decides per hop what to
 * send), no signals, a proxy's CONNECT answer not taken for the server's,
 * the connect and stall limits and the deadline (monotonic ms), the CA
 * bundle (ca, ca_len from ocil_http_load_cas; NULL: the system's), and no
 * certificate checks when verify is false. */
void ocil_http_setup(CURL *c, long long deadline_ms, const char *ca, size_t ca_len, bool verify);

/* "localhost", 127.0.0.0/8, "[::1]" (brackets kept, as in URLs). Said of
 * the name as written: a name that resolves to loopback is not. */
bool ocil_http_is_loopback(const char *hostname);

/* "scheme://host:port" with the default port filled in, lowercase; NULL if
 * url does not parse. Two URLs may share credentials only when these match.
 * *host_out (if host_out is not NULL) gets the host alone. */
char *ocil_http_url_origin(const char *url, char **host_out);

/* s[0..n) without leading and trailing white space, as a new string. */
char *ocil_http_trimmed(const char *s, size_t n);

/* Extra CAs (--ca-file, the *.crt of --cert-dir) as one PEM bundle for
 * CURLOPT_CAINFO_BLOB, after the system bundle curl would use (c's
 * CURLINFO_CAINFO) so that public CAs stay trusted. *pem is NULL when
 * neither is given. OCIL_E_INPUT naming the option: unreadable, no PEM
 * certificate in a file. */
int ocil_http_load_cas(CURL *c, const char *ca_file, const char *cert_dir, char **pem, size_t *len,
		       ocil_error **err);

/* A curl error after which the same request may well work: connection
 * refused or reset, timeouts, a transfer cut short, HTTP/2 stream errors. */
bool ocil_http_retryable(CURLcode rc);

/* "<host>: cannot connect: …", "<host>: TLS: … (a private CA goes in
 * --cert-dir or --ca-file)", "<host>: timed out: …", "<host>: transfer
 * failed: …". Caller frees. */
char *ocil_http_net_error(const char *host, CURLcode rc, const char *errbuf);

/* ---- the response c is receiving or received last (libcurl's header
 * API: the final response of the last request, not a 1xx's, a CONNECT's
 * or a trailer; values trimmed). Called from the header callback, they
 * see the headers before the current line. ---- */

/* The value of header name (the last one when it is repeated), or NULL.
 * Caller frees. */
char *ocil_http_header(CURL *c, const char *name);
/* Every value of header name, in order, at most max into out (each
 * allocated); returns how many. */
size_t ocil_http_header_all(CURL *c, const char *name, char **out, size_t max);
/* Retry-After as libcurl reads it (CURLINFO_RETRY_AFTER: seconds, or an
 * HTTP date from now; what it cannot read counts as now), capped at
 * OCIL_HTTP_RETRY_AFTER_MAX_S; -1 when the response has none. */
long ocil_http_retry_after(CURL *c);
/* The same from whether the header is there and libcurl's seconds. */
long ocil_http_retry_after_s(bool present, curl_off_t seconds);

/* The wait before attempt used + 2 (used: retries already made):
 * retry_after_s when the server said (>= 0), else 1, 2, 4 … s up to
 * OCIL_HTTP_BACKOFF_MAX_S. -1 and an OCIL_E_REGISTRY error "<full> (gave up
 * after N attempts)" when the retries are spent, or "<full> (no time left to
 * retry within <timeout_s> s)" when the wait would end past deadline_ms.
 * The caller counts the retry and waits *delay_s. */
int ocil_http_retry_delay(int used, int retries, long long deadline_ms, long timeout_s,
			  long retry_after_s, const char *full, long *delay_s, ocil_error **err);

/* url for messages: a password in it ("user:***@host") and anaconda.org
 * tokens (the segment after "/t/") masked with three stars. Caller frees. */
char *ocil_url_redact(const char *url);
/* url as an image may record it (conda-meta, history, SBOM): the user
 * information ("user:pass@") and every anaconda.org token segment
 * ("/t/<token>") left out, as conda leaves them out of its records.
 * Caller frees. */
char *ocil_url_public(const char *url);
/* The secrets ocil_url_redact masks in url, added to out. */
void ocil_url_secrets(const char *url, ocil_strv *out);
/* msg with every occurrence of each of secrets replaced by "***" (for text
 * that may quote a URL, such as curl's messages). Caller frees. */
char *ocil_mask_secrets(const char *msg, const ocil_strv *secrets);

#endif
