#include "registry/fetch.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "registry/http.h"

/* The md5 index beside the store's blobs: <root>/md5/<md5 hex> holds the
 * sha256 digest of the blob with that md5 (locks often give md5 only). */
#define INDEX_DIR "md5"
#define INDEX_MAX 128
/* How long the loop waits in curl_multi_poll at most, so that a
 * cancellation or a retry's time is noticed. */
#define POLL_MS 100

typedef struct fetcher fetcher;

typedef enum { X_WAITING, X_RUNNING, X_DONE } xstate;

/* One download: an item the store lacks. */
typedef struct {
	fetcher *f;
	ocil_fetch_item *item;
	size_t index;
	char *first;	  /* the item's URL: retries start over from it */
	char *url;	  /* this attempt's (after redirects) */
	char *origin;	  /* of first: credentials go there only */
	char *first_host; /* tls_verify false applies to it only */
	int hops;
	int retries_used;
	long long deadline_ms; /* 0: not started yet */
	long long not_before_ms;
	xstate state;
	CURL *easy;
	struct curl_slist *headers;
	ocil_blob_writer *w;
	EVP_MD_CTX *md5;
	uint64_t had;	/* bytes kept when this attempt started */
	uint64_t limit; /* bytes the body may have */
	/* the response */
	long status;
	char *reason, *content_range;
	long retry_after; /* seconds (ocil_http_retry_after), -1: none */
	long long content_length;
	bool body_to_sink;
	ocil_error *err; /* raised in a callback; fatal */
	char errbuf[CURL_ERROR_SIZE];
} xfer;

struct fetcher {
	ocil_blobstore *bs;
	const ocil_fetch_opts *o;
	int retries;
	long timeout_s;
	size_t jobs;
	uint64_t max_size;
	CURLM *multi;
	char *ca;
	size_t ca_len;
	ocil_strv secrets;    /* masked in every message */
	ocil_strv http_hosts; /* plain http said for these */
	ocil_fetch_progress prog;
};

/* --- messages --- */

static void notice(fetcher *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(fetcher *f, const char *fmt, ...)
{
	if (f->o->notice == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) >= 0) {
		cleanup_free char *masked = ocil_mask_secrets(msg, &f->secrets);
		f->o->notice(f->o->data, masked);
		free(msg);
	}
	va_end(ap);
}

/* "<name>: <url>: <what>", secrets masked. */
static int xfail(xfer *x, ocil_error **err, ocil_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int xfail(xfer *x, ocil_error **err, ocil_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *what = NULL;
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	cleanup_free char *url = ocil_url_redact(x->url ? x->url : x->item->url);
	cleanup_free char *msg =
	    ocil_xasprintf("%s: %s: %s", x->item->name, url, what ? what : "out of memory");
	free(what);
	cleanup_free char *masked = ocil_mask_secrets(msg, &x->f->secrets);
	return ocil_error_set(err, code, "%s", masked);
}

/* "host[:port]" of url, for notices. */
static char *hostport(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *res = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
			res = ocil_xasprintf("%s:%s", host, port);
		else
			res = ocil_xstrdup(host);
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return res ? res : ocil_xstrdup("?");
}

static bool is_hex(const char *s, size_t n)
{
	if (s == NULL || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* --- URLs --- */

/* The scheme ("http", "https", …, lowercase) and host of url; false when it
 * does not parse. */
static bool url_parts(const char *url, char **scheme, char **host)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL;
	bool ok = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK;
	if (ok) {
		for (char *p = s; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		*scheme = ocil_xstrdup(s);
		*host = ocil_xstrdup(h);
	}
	curl_free(s);
	curl_free(h);
	curl_url_cleanup(u);
	return ok;
}

/* Whether url may be fetched: http(s), and plain http only to loopback or
 * without TLS verification. */
static int check_url(xfer *x, const char *url, bool redirect, ocil_error **err)
{
	fetcher *f = x->f;
	cleanup_free char *scheme = NULL, *host = NULL;
	ocil_code code = redirect ? OCIL_E_REGISTRY : OCIL_E_INPUT;
	if (!url_parts(url, &scheme, &host) ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		cleanup_free char *shown = ocil_url_redact(url);
		return xfail(x, err, code, "%s %s, which is not an http(s) URL",
			     redirect ? "redirected to" : "is", shown);
	}
	if (strcmp(scheme, "http") == 0 && f->o->tls_verify && !ocil_http_is_loopback(host))
		return xfail(x, err, code,
			     "%srefusing plain http to %s (use https, or --tls-verify=false)",
			     redirect ? "redirected to http: " : "", host);
	return 0;
}

/* --- the md5 index --- */

static char *index_path(const ocil_blobstore *bs, const char *md5)
{
	return ocil_xasprintf("%s/" INDEX_DIR "/%s", ocil_blobstore_root(bs), md5);
}

bool ocil_fetch_find(const ocil_blobstore *bs, const char *sha256, const char *md5, char *digest)
{
	if (is_hex(sha256, 64)) {
		char d[OCIL_DIGEST_STR_SIZE];
		snprintf(d, sizeof(d), "sha256:%s", sha256);
		for (char *p = d; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!ocil_blobstore_has(bs, d))
			return false;
		memcpy(digest, d, sizeof(d));
		return true;
	}
	if (!is_hex(md5, 32))
		return false;
	cleanup_free char *lower = ocil_xstrdup(md5);
	for (char *p = lower; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	cleanup_free char *path = index_path(bs, lower);
	cleanup_free char *text = NULL;
	size_t len = 0;
	cleanup_error ocil_error *ignored = NULL;
	if (ocil_read_file(path, INDEX_MAX, &text, &len, &ignored) < 0)
		return false;
	cleanup_free char *d = ocil_http_trimmed(text, len);
	if (!ocil_digest_valid(d) || !ocil_blobstore_has(bs, d))
		return false;
	memcpy(digest, d, strlen(d) + 1);
	return true;
}

/* Best effort: without it, a lock with md5 only downloads again. */
static void index_put(fetcher *f, const char *md5, const char *digest)
{
	cleanup_free char *dir = ocil_xasprintf("%s/" INDEX_DIR, ocil_blobstore_root(f->bs));
	cleanup_free char *path = index_path(f->bs, md5);
	cleanup_free char *line = ocil_xasprintf("%s\n", digest);
	cleanup_error ocil_error *ignored = NULL;
	if (ocil_mkdir_p(dir, 0755, &ignored) == 0)
		ocil_write_file_atomic(path, line, strlen(line), &ignored);
}

/* --- callbacks --- */

static void md5_restart(xfer *x)
{
	if (x->md5 != NULL)
		EVP_DigestInit_ex(x->md5, EVP_md5(), NULL);
}

static void resp_reset(xfer *x)
{
	free(x->reason);
	free(x->content_range);
	x->reason = x->content_range = NULL;
	x->retry_after = -1;
	x->status = 0;
	x->content_length = -1;
	x->body_to_sink = false;
}

static int on_headers_done(xfer *x)
{
	if (x->status != 200 && x->status != 206)
		return 0;
	uint64_t have = ocil_blob_writer_size(x->w);
	/* 200 to a Range request: the server starts over, so do we. */
	if (x->status == 200 && have > 0) {
		if (ocil_blob_writer_reset(x->w, &x->err) < 0)
			return -1;
		md5_restart(x);
		have = 0;
	}
	if (x->status == 206) {
		unsigned long long start = 0;
		if (x->content_range == NULL ||
		    sscanf(x->content_range, "bytes %llu-", &start) != 1 || start != have)
			return xfail(x, &x->err, OCIL_E_REGISTRY,
				     "partial content starts at the wrong offset (Content-Range: "
				     "%.80s, have %llu bytes)",
				     x->content_range ? x->content_range : "none",
				     (unsigned long long)have);
	}
	long long cl = x->content_length;
	if (cl >= 0 && have + (uint64_t)cl > x->limit)
		return xfail(x, &x->err, OCIL_E_REGISTRY,
			     "the server announces %llu bytes, more than %s %llu",
			     (unsigned long long)(have + (uint64_t)cl),
			     x->item->size >= 0 ? "the expected" : "the cap of",
			     (unsigned long long)x->limit);
	x->body_to_sink = true;
	return 0;
}

/* The headers we act on, from libcurl's header API once a response's
 * headers are all in. */
static void read_headers(xfer *x)
{
	x->content_range = ocil_http_header(x->easy, "Content-Range");
	x->retry_after = ocil_http_retry_after(x->easy);
	cleanup_free char *t = ocil_http_header(x->easy, "Content-Length");
	char *end = NULL;
	errno = 0;
	long long cl = t != NULL ? strtoll(t, &end, 10) : -1;
	x->content_length =
	    t != NULL && isdigit((unsigned char)t[0]) && *end == '\0' && errno == 0 ? cl : -1;
}

/* Each header line: capped in length; the status line's reason phrase
 * (libcurl keeps only the code); at the end of the headers, those we act
 * on and the body's destination. */
static size_t header_cb(char *b, size_t size, size_t n, void *data)
{
	xfer *x = data;
	size_t len = size * n;
	if (len > OCIL_HTTP_HEADER_LINE_MAX) {
		xfail(x, &x->err, OCIL_E_REGISTRY, "response header longer than %zu bytes",
		      OCIL_HTTP_HEADER_LINE_MAX);
		return 0;
	}
	if (len >= 5 && strncmp(b, "HTTP/", 5) == 0) {
		resp_reset(x);
		const char *sp = memchr(b, ' ', len);
		const char *sp2 = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - b)) : NULL;
		if (sp2 != NULL)
			x->reason = ocil_http_trimmed(sp2 + 1, len - (size_t)(sp2 + 1 - b));
		return len;
	}
	if (len <= 2 && (b[0] == '\r' || b[0] == '\n')) {
		long st = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
		x->status = st;
		if (st < 200)
			return len; /* 1xx: the real response follows */
		read_headers(x);
		return on_headers_done(x) < 0 ? 0 : len;
	}
	return len;
}

static void report_progress(fetcher *f)
{
	if (f->o->progress != NULL)
		f->o->progress(f->o->data, &f->prog);
}

static size_t write_cb(char *b, size_t size, size_t n, void *data)
{
	xfer *x = data;
	size_t len = size * n;
	if (!x->body_to_sink)
		return len; /* an error or redirect body: the status says enough */
	uint64_t have = ocil_blob_writer_size(x->w);
	if (have + len > x->limit) {
		xfail(x, &x->err, OCIL_E_REGISTRY, "the server sends more than %s %llu bytes",
		      x->item->size >= 0 ? "the expected" : "the cap of",
		      (unsigned long long)x->limit);
		return 0;
	}
	if (ocil_blob_writer_write(x->w, b, len, &x->err) < 0)
		return 0;
	if (x->md5 != NULL)
		EVP_DigestUpdate(x->md5, b, len);
	x->f->prog.bytes += len;
	report_progress(x->f);
	return len;
}

static int xferinfo_cb(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	const ocil_cancel *c = data;
	return c != NULL && c->flag != NULL && *c->flag ? 1 : 0;
}

/* --- one attempt --- */

static void xfer_detach(xfer *x)
{
	if (x->easy != NULL) {
		curl_multi_remove_handle(x->f->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
	}
	curl_slist_free_all(x->headers);
	x->headers = NULL;
}

static void xfer_clear(xfer *x)
{
	xfer_detach(x);
	resp_reset(x);
	ocil_blob_writer_free(x->w);
	EVP_MD_CTX_free(x->md5);
	ocil_error_free(x->err);
	free(x->first);
	free(x->url);
	free(x->origin);
	free(x->first_host);
	memset(x, 0, sizeof(*x));
}

static int xfer_start(xfer *x, ocil_error **err)
{
	fetcher *f = x->f;
	const ocil_fetch_opts *o = f->o;
	if (x->w == NULL) {
		if (ocil_blobstore_begin(f->bs, &x->w, err) < 0)
			return -1;
		if (x->item->md5 != NULL) {
			x->md5 = EVP_MD_CTX_new();
			if (x->md5 == NULL || EVP_DigestInit_ex(x->md5, EVP_md5(), NULL) != 1)
				return ocil_error_set(err, OCIL_E_IO, "cannot set up md5");
		}
	}
	if (x->deadline_ms == 0)
		x->deadline_ms = ocil_http_now_ms() + f->timeout_s * 1000;
	resp_reset(x);
	x->errbuf[0] = '\0';
	x->had = ocil_blob_writer_size(x->w);
	cleanup_free char *host = NULL;
	cleanup_free char *origin = ocil_http_url_origin(x->url, &host);
	if (origin == NULL)
		return xfail(x, err, OCIL_E_INPUT, "not a URL");
	bool same = strcmp(origin, x->origin) == 0;
	if (ocil_str_has_prefix(origin, "http://")) {
		bool said = false;
		for (size_t i = 0; i < f->http_hosts.n && !said; i++)
			said = strcmp(f->http_hosts.v[i], origin) == 0;
		if (!said) {
			cleanup_free char *hp = hostport(x->url);
			notice(f, "using plain http for %s%s", hp,
			       ocil_http_is_loopback(host) ? "" : " (--tls-verify=false)");
			ocil_strv_push(&f->http_hosts, ocil_xstrdup(origin));
		}
	}

	CURL *c = curl_easy_init();
	if (c == NULL)
		return ocil_error_set(err, OCIL_E_IO, "cannot initialise libcurl");
	x->easy = c;
	if (x->had > 0) {
		char range[64];
		snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)x->had);
		x->headers = curl_slist_append(x->headers, range);
	}
	cleanup_free char *auth_line = same && x->item->authz != NULL
					   ? ocil_xasprintf("Authorization: %s", x->item->authz)
					   : NULL;
	if (auth_line != NULL)
		x->headers = curl_slist_append(x->headers, auth_line);
	if (auth_line != NULL)
		explicit_bzero(auth_line, strlen(auth_line));
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers);
	/* --tls-verify=false is about the lock's host, not where it
	 * redirects to. */
	ocil_http_setup(c, x->deadline_ms, f->ca, f->ca_len,
			o->tls_verify || strcasecmp(host, x->first_host) != 0);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, o->cancel);
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	/* The user's netrc, for the item's own origin only: a redirect to
	 * another host (a CDN, S3) gets no credentials. */
	if (same && o->netrc != NULL) {
		curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(c, CURLOPT_NETRC_FILE, o->netrc);
	}
	if (curl_multi_add_handle(f->multi, c) != CURLM_OK)
		return ocil_error_set(err, OCIL_E_IO, "cannot start a transfer");
	x->state = X_RUNNING;
	f->prog.active++;
	return 0;
}

/* Wait, then start over from the item's own URL (a redirect target, signed
 * for a while, is asked for again). */
static int retry_later(xfer *x, const char *why, const char *full, long retry_after_s,
		       ocil_error **err)
{
	fetcher *f = x->f;
	long delay = 0;
	cleanup_free char *masked = ocil_mask_secrets(full, &f->secrets);
	if (ocil_http_retry_delay(x->retries_used, f->retries, x->deadline_ms, f->timeout_s,
				  retry_after_s, masked, &delay, err) < 0)
		return -1;
	x->retries_used++;
	cleanup_free char *hp = hostport(x->url);
	notice(f, "%s: retrying %s in %ld s (%s)", hp, x->item->name, delay, why);
	free(x->url);
	x->url = ocil_xstrdup(x->first);
	x->hops = 0;
	x->not_before_ms = ocil_http_now_ms() + delay * 1000;
	x->state = X_WAITING;
	return 0;
}

static char *status_text(const xfer *x)
{
	if (x->reason != NULL && *x->reason != '\0')
		return ocil_xasprintf("HTTP %ld %.100s", x->status, x->reason);
	return ocil_xasprintf("HTTP %ld", x->status);
}

/* The blob is all there: check it against the item, then keep it. */
static int xfer_commit(xfer *x, ocil_error **err)
{
	fetcher *f = x->f;
	ocil_fetch_item *it = x->item;
	uint64_t size = ocil_blob_writer_size(x->w);
	if (it->size >= 0 && size != (uint64_t)it->size)
		return xfail(x, err, OCIL_E_REGISTRY, "%llu bytes, expected %lld",
			     (unsigned long long)size, (long long)it->size);
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_blob_writer_digest(x->w, got);
	if (it->sha256 != NULL && strcasecmp(ocil_digest_hex(got), it->sha256) != 0)
		return xfail(x, err, OCIL_E_INPUT,
			     "sha256 mismatch (expected %s, the download has %s); nothing was kept",
			     it->sha256, ocil_digest_hex(got));
	char md5[33] = "";
	if (x->md5 != NULL) {
		unsigned char d[EVP_MAX_MD_SIZE];
		unsigned int dn = 0;
		EVP_DigestFinal_ex(x->md5, d, &dn);
		for (unsigned i = 0; i < dn && i < 16; i++)
			snprintf(md5 + 2 * i, 3, "%02x", d[i]);
		if (strcasecmp(md5, it->md5) != 0)
			return xfail(x, err, OCIL_E_INPUT,
				     "md5 mismatch (expected %s, the download has %s); nothing was "
				     "kept",
				     it->md5, md5);
	}
	if (ocil_blob_writer_commit(x->w, got, (int64_t)size, NULL, NULL, err) < 0)
		return ocil_error_wrap(err, "%s", it->name);
	if (md5[0] != '\0')
		index_put(f, md5, got);
	memcpy(it->digest, got, sizeof(got));
	it->fetched = true;
	return 0;
}

/* A transfer ended (rc): done, to be tried again or redirected (then
 * X_WAITING), or failed (-1). */
static int xfer_done(xfer *x, CURLcode rc, ocil_error **err)
{
	fetcher *f = x->f;
	char *loc = NULL;
	if (rc == CURLE_OK)
		curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
	cleanup_free char *location = loc ? ocil_xstrdup(loc) : NULL;
	xfer_detach(x);
	f->prog.active--;
	if (x->err != NULL) {
		*err = steal_pointer(&x->err);
		return -1;
	}
	if (rc == CURLE_ABORTED_BY_CALLBACK && ocil_cancel_check(f->o->cancel, err) < 0)
		return -1;
	if (rc != CURLE_OK) {
		cleanup_free char *shown = ocil_url_redact(x->url);
		cleanup_free char *net = ocil_http_net_error(shown, rc, x->errbuf);
		cleanup_free char *full = ocil_xasprintf("%s: %s", x->item->name, net);
		if (!ocil_http_retryable(rc)) {
			cleanup_free char *masked = ocil_mask_secrets(full, &f->secrets);
			return ocil_error_set(err, OCIL_E_REGISTRY, "%s", masked);
		}
		/* A download that dropped after making progress resumes at
		 * once: the connection worked until just now. */
		bool progressed = ocil_blob_writer_size(x->w) > x->had;
		const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
		return retry_later(x, why, full, progressed ? 0 : -1, err);
	}
	long st = x->status;
	if (st >= 300 && st < 400 && st != 304) {
		if (location == NULL)
			return xfail(x, err, OCIL_E_REGISTRY, "HTTP %ld without a Location", st);
		if (++x->hops > OCIL_HTTP_MAX_REDIRECTS)
			return xfail(x, err, OCIL_E_REGISTRY, "more than %d redirects",
				     OCIL_HTTP_MAX_REDIRECTS);
		if (strncasecmp(x->url, "https:", 6) == 0 &&
		    strncasecmp(location, "https:", 6) != 0) {
			cleanup_free char *shown = ocil_url_redact(location);
			return xfail(x, err, OCIL_E_REGISTRY,
				     "refusing a redirect from https to %s", shown);
		}
		if (check_url(x, location, true, err) < 0)
			return -1;
		free(x->url);
		x->url = steal_pointer(&location);
		x->not_before_ms = 0;
		x->state = X_WAITING;
		return 0;
	}
	if (st == 429 || st >= 500) {
		cleanup_free char *why = status_text(x);
		cleanup_free char *shown = ocil_url_redact(x->url);
		cleanup_free char *full = ocil_xasprintf("%s: %s: %s", x->item->name, shown, why);
		long ra = st == 429 || st == 503 ? x->retry_after : -1;
		return retry_later(x, why, full, ra, err);
	}
	/* Our Range is past the end: start over from byte 0. */
	if (st == 416 && ocil_blob_writer_size(x->w) > 0) {
		if (ocil_blob_writer_reset(x->w, err) < 0)
			return -1;
		md5_restart(x);
		cleanup_free char *shown = ocil_url_redact(x->url);
		cleanup_free char *full =
		    ocil_xasprintf("%s: %s: HTTP 416 to a resumed download", x->item->name, shown);
		return retry_later(x, "HTTP 416 to a resumed download", full, 0, err);
	}
	if (st != 200 && st != 206) {
		cleanup_free char *why = status_text(x);
		if ((st == 401 || st == 403) && f->o->netrc != NULL)
			return xfail(x, err, OCIL_E_REGISTRY, "%s (credentials come from %s)", why,
				     f->o->netrc);
		if (st == 401)
			return xfail(x, err, OCIL_E_REGISTRY,
				     "%s (no netrc file: credentials go in ~/.netrc, or the file "
				     "$NETRC names)",
				     why);
		return xfail(x, err, OCIL_E_REGISTRY, "%s", why);
	}
	if (xfer_commit(x, err) < 0)
		return -1;
	x->state = X_DONE;
	f->prog.done++;
	report_progress(f);
	return 0;
}

/* --- the loop --- */

static int check_items(fetcher *f, xfer *xs, size_t n, size_t *failed, ocil_error **err)
{
	for (size_t i = 0; i < n; i++) {
		xfer *x = &xs[i];
		const ocil_fetch_item *it = x->item;
		*failed = i;
		if (it->url == NULL || it->name == NULL)
			return ocil_error_set(err, OCIL_E_INPUT, "item %zu: no URL or name", i);
		if ((it->sha256 != NULL && !is_hex(it->sha256, 64)) ||
		    (it->md5 != NULL && !is_hex(it->md5, 32)) ||
		    (it->sha256 == NULL && it->md5 == NULL))
			return xfail(x, err, OCIL_E_INPUT,
				     "no valid sha256 or md5 to check it with");
		if (check_url(x, it->url, false, err) < 0)
			return -1;
	}
	*failed = n;
	return 0;
}

/* The key two items are the same blob by. */
static char *item_key(const ocil_fetch_item *it)
{
	char *k = it->sha256 ? ocil_xasprintf("s%s", it->sha256) : ocil_xasprintf("m%s", it->md5);
	for (char *p = k; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return k;
}

typedef struct {
	char *key;
	size_t i;
} keyed;

static int by_key(const void *a, const void *b)
{
	const keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : (x->i < y->i ? -1 : x->i > y->i);
}

/* dup[i]: the index of the first item with i's blob (i itself if first). */
static void find_duplicates(ocil_fetch_item *items, size_t n, size_t *dup)
{
	keyed *k = ocil_xcalloc(n + 1, sizeof(*k));
	for (size_t i = 0; i < n; i++)
		k[i] = (keyed){item_key(&items[i]), i};
	qsort(k, n, sizeof(*k), by_key);
	for (size_t i = 0; i < n; i++)
		dup[k[i].i] =
		    i > 0 && strcmp(k[i].key, k[i - 1].key) == 0 ? dup[k[i - 1].i] : k[i].i;
	for (size_t i = 0; i < n; i++)
		free(k[i].key);
	free(k);
}

static int run_loop(fetcher *f, xfer *xs, size_t n, size_t *failed, ocil_error **err)
{
	size_t left = 0;
	for (size_t i = 0; i < n; i++)
		left += xs[i].state != X_DONE;
	while (left > 0) {
		if (ocil_cancel_check(f->o->cancel, err) < 0)
			return -1;
		/* start what may start, in order */
		long long now = ocil_http_now_ms();
		long long next = now + POLL_MS;
		for (size_t i = 0; i < n && f->prog.active < f->jobs; i++) {
			xfer *x = &xs[i];
			if (x->state != X_WAITING)
				continue;
			if (x->not_before_ms > now) {
				if (x->not_before_ms < next)
					next = x->not_before_ms;
				continue;
			}
			*failed = x->index;
			if (xfer_start(x, err) < 0)
				return -1;
		}
		int running = 0;
		if (curl_multi_perform(f->multi, &running) != CURLM_OK)
			return ocil_error_set(err, OCIL_E_IO, "libcurl: transfer loop failed");
		CURLMsg *m;
		int queued = 0;
		bool ended = false;
		while ((m = curl_multi_info_read(f->multi, &queued)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			*failed = x->index;
			if (xfer_done(x, m->data.result, err) < 0)
				return -1;
			left -= x->state == X_DONE;
			ended = true;
		}
		if (ended || left == 0)
			continue; /* start the next ones at once */
		long long wait = next - ocil_http_now_ms();
		if (wait < 0)
			wait = 0;
		if (f->prog.active > 0) {
			curl_multi_poll(f->multi, NULL, 0, (int)wait, NULL);
		} else if (wait > 0) {
			struct timespec ts = {0, (long)wait * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	*failed = n;
	return 0;
}

static int prepare(fetcher *f, ocil_error **err)
{
	f->multi = curl_multi_init();
	CURL *probe = curl_easy_init();
	if (f->multi == NULL || probe == NULL) {
		curl_easy_cleanup(probe);
		return ocil_error_set(err, OCIL_E_IO, "cannot initialise libcurl");
	}
	int r = ocil_http_load_cas(probe, f->o->ca_file, f->o->cert_dir, &f->ca, &f->ca_len, err);
	curl_easy_cleanup(probe);
	return r;
}

int ocil_fetch_run(ocil_blobstore *bs, ocil_fetch_item *items, size_t n, const ocil_fetch_opts *o,
		   size_t *failed, ocil_error **err)
{
	size_t failed_local = n;
	if (failed == NULL)
		failed = &failed_local;
	*failed = n;
	fetcher f = {.bs = bs,
		     .o = o,
		     .retries = o->retries >= 0 ? o->retries : 3,
		     .timeout_s = o->timeout_s > 0 ? o->timeout_s : 600,
		     .jobs = o->jobs > 0 ? (size_t)o->jobs : OCIL_FETCH_JOBS_DEFAULT,
		     .max_size = o->max_size > 0 ? o->max_size : OCIL_FETCH_MAX_SIZE};
	if (f.jobs > OCIL_FETCH_JOBS_MAX)
		f.jobs = OCIL_FETCH_JOBS_MAX;
	xfer *xs = ocil_xcalloc(n + 1, sizeof(*xs));
	size_t *dup = ocil_xcalloc(n + 1, sizeof(*dup));
	for (size_t i = 0; i < n; i++) {
		xs[i] = (xfer){.f = &f, .item = &items[i], .index = i, .content_length = -1};
		items[i].digest[0] = '\0';
		items[i].fetched = false;
		if (items[i].url != NULL)
			ocil_url_secrets(items[i].url, &f.secrets);
	}
	int r = check_items(&f, xs, n, failed, err);
	if (r == 0)
		find_duplicates(items, n, dup);
	size_t todo = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		xfer *x = &xs[i];
		ocil_fetch_item *it = x->item;
		x->state = X_DONE;
		if (dup[i] != i || ocil_fetch_find(bs, it->sha256, it->md5, it->digest))
			continue;
		if (o->offline) {
			*failed = i;
			r = ocil_error_set(err, OCIL_E_INPUT, "%s: not in the cache (--offline)",
					   it->name);
			break;
		}
		x->state = X_WAITING;
		x->first = ocil_xstrdup(it->url);
		x->url = ocil_xstrdup(it->url);
		x->origin = ocil_http_url_origin(it->url, &x->first_host);
		x->limit = it->size >= 0 ? (uint64_t)it->size : f.max_size;
		todo++;
	}
	f.prog.total = todo;
	bool inited = false;
	if (r == 0 && todo > 0) {
		/* Reference-counted and thread-safe since curl 7.84. */
		inited = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
		if (!inited)
			r = ocil_error_set(err, OCIL_E_IO, "cannot initialise libcurl");
		if (r == 0)
			r = prepare(&f, err);
		if (r == 0)
			report_progress(&f);
		if (r == 0)
			r = run_loop(&f, xs, n, failed, err);
	}
	for (size_t i = 0; r == 0 && i < n; i++)
		if (dup[i] != i) {
			memcpy(items[i].digest, items[dup[i]].digest, OCIL_DIGEST_STR_SIZE);
			items[i].fetched = items[dup[i]].fetched;
		}
	for (size_t i = 0; i < n; i++)
		xfer_clear(&xs[i]);
	free(xs);
	free(dup);
	if (f.multi != NULL)
		curl_multi_cleanup(f.multi);
	if (inited)
		curl_global_cleanup();
	free(f.ca);
	ocil_strv_clear(&f.secrets);
	ocil_strv_clear(&f.http_hosts);
	return r;
}

/* --- mirrors --- */

static bool web_url(const char *s)
{
	return ocil_str_has_prefix(s, "https://") || ocil_str_has_prefix(s, "http://");
}

static char *without_slash(const char *s, size_t n)
{
	while (n > 0 && s[n - 1] == '/')
		n--;
	return ocil_xstrndup(s, n);
}

int ocil_mirror_parse(const char *arg, ocil_mirror *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	const char *eq = strchr(arg, '=');
	cleanup_free char *from = eq ? without_slash(arg, (size_t)(eq - arg)) : NULL;
	cleanup_free char *to = eq ? without_slash(eq + 1, strlen(eq + 1)) : NULL;
	/* something after "scheme://" in both */
	bool ok = from != NULL && web_url(from) && strlen(strstr(from, "://")) > 3 &&
		  (web_url(to) || ocil_str_has_prefix(to, "file://")) &&
		  strlen(strstr(to, "://")) > 3;
	for (const char *p = arg; ok && *p != '\0'; p++)
		ok = (unsigned char)*p > 0x20 && *p != 0x7f;
	if (!ok)
		return ocil_error_set(
		    err, OCIL_E_USAGE,
		    "--mirror \"%s\": want FROM=TO, an http(s) URL prefix and "
		    "the http(s) or file URL to fetch it from instead, e.g. "
		    "https://conda.anaconda.org/conda-forge=https://mirror.example/"
		    "conda-forge",
		    arg);
	out->from = steal_pointer(&from);
	out->to = steal_pointer(&to);
	return 0;
}

void ocil_mirror_clear(ocil_mirror *m)
{
	free(m->from);
	free(m->to);
	memset(m, 0, sizeof(*m));
}

char *ocil_mirror_apply(const ocil_mirror *m, size_t n, const char *url)
{
	const ocil_mirror *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(m[i].from);
		if (strncmp(url, m[i].from, len) == 0 && (url[len] == '/' || url[len] == '\0') &&
		    len > best_len) {
			best = &m[i];
			best_len = len;
		}
	}
	if (best == NULL)
		return ocil_xstrdup(url);
	return ocil_xasprintf("%s%s", best->to, url + best_len);
}

char *ocil_file_url_path(const char *url)
{
	if (strncasecmp(url, "file://", 7) != 0)
		return NULL;
	CURLU *u = curl_url();
	char *host = NULL, *path = NULL, *res = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) == CURLUE_OK) {
		CURLUcode hc = curl_url_get(u, CURLUPART_HOST, &host, 0);
		bool local = hc != CURLUE_OK || host == NULL || host[0] == '\0' ||
			     strcasecmp(host, "localhost") == 0;
		if (local && path[0] == '/')
			res = ocil_xstrdup(path);
	}
	curl_free(host);
	curl_free(path);
	curl_url_cleanup(u);
	return res;
}

char *ocil_fetch_default_netrc(void)
{
	const char *env = getenv("NETRC");
	const char *home = getenv("HOME");
	char *path = env != NULL && env[0] != '\0'     ? ocil_xstrdup(env)
		     : home != NULL && home[0] != '\0' ? ocil_xasprintf("%s/.netrc", home)
						       : NULL;
	struct stat st;
	if (path != NULL && (stat(path, &st) < 0 || !S_ISREG(st.st_mode))) {
		free(path);
		path = NULL;
	}
	return path;
}
