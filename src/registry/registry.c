#include "registry/registry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "base/digest.h"
#include "base/json.h"
#include "oci/ref.h"
#include "registry/challenge.h"
#include "registry/credentials.h"
#include "registry/http.h"
#include "registry/net.h"

#define TOKEN_MAX ((size_t)1 << 20)
/* Error bodies are only read for their message. */
#define ERROR_BODY_MAX ((size_t)64 << 10)
#define MAX_CHALLENGES 8
#define CHUNK_DEFAULT ((uint64_t)32 << 20)
/* A registry's OCI-Chunk-Min-Length above this is not believed. */
#define CHUNK_MIN_MAX ((uint64_t)1 << 30)
/* Cancelling an abandoned upload session is a courtesy: brief, no retries. */
#define SESSION_DELETE_TIMEOUT_S 10
#define OCTET_STREAM "application/octet-stream"

#define MANIFEST_ACCEPT                                                                            \
	"Accept: " OCIL_MT_OCI_MANIFEST ", " OCIL_MT_OCI_INDEX ", " OCIL_MT_DOCKER_MANIFEST        \
	", " OCIL_MT_DOCKER_LIST

struct ocil_registry {
	char *host;	/* host[:port] as given */
	char *hostname; /* host alone ("[::1]" keeps its brackets, as in URLs) */
	char *repo;
	char *name; /* host/repo, for messages */
	ocil_registry_opts o;
	char *authfile;
	bool may_use_http; /* loopback, or tls_verify=false */
	bool scheme_known; /* a response arrived: stop probing */
	bool plain_http;
	char *authz;	       /* cached Authorization value for the registry */
	bool authz_with_creds; /* it carries (or was obtained with) the user's credentials */
	bool creds_loaded;
	bool creds_found;
	ocil_creds creds;
	char *ca; /* system CAs + ca_file + cert_dir, PEM; NULL for curl's default */
	size_t ca_len;
	CURL *curl; /* one handle: connections and TLS sessions are reused */
	bool curl_inited;
	bool talked; /* a request was made */
};

/* One operation (a manifest, a blob, a token): its time budget, retry count
 * and where a successful body goes. */
typedef struct {
	ocil_registry *r;
	const char *what; /* "manifest 3.8", "blob sha256:…", "token" */
	long long deadline_ms;
	int *retries_used;	/* shared by an operation and the token request it makes */
	bool push;		/* writes: needs a push token; 401/403 mean push denied */
	const char *mount_from; /* the token also needs pull on this repository */
	bool discard;		/* a 2xx body is not wanted (HEAD, push requests) */
	/* blob sink */
	ocil_blob_writer *w;
	const ocil_descriptor *d;
	/* buffer sink (w == NULL) */
	char *buf;
	size_t len, cap, max;
} op;

/* A request body: a buffer, or a range of a file read as curl sends it. */
typedef struct {
	const char *buf; /* or NULL: read from fd */
	int fd;
	const char *path;  /* the file, for messages */
	uint64_t off, len; /* the part sent by this request */
	uint64_t pos;	   /* bytes of it sent so far */
	/* Across requests, for the whole blob: progress, and its hash. */
	const char *digest; /* NULL: no progress reports */
	uint64_t total;
	ocil_hasher *h;
	uint64_t hashed; /* bytes hashed, always a prefix of the file */
	bool hash_done;
	char got[OCIL_DIGEST_STR_SIZE];
} req_body;

/* One HTTP response. */
typedef struct {
	op *o;
	char *host;	/* for messages */
	char *url;	/* that answered; relative Locations resolve against it */
	req_body *body; /* what the request sends, or NULL */
	long status;
	char *reason;
	bool body_to_sink;
	bool on_registry; /* came from the registry itself, not a redirect target */
	char *content_type, *docker_digest, *content_range;
	long retry_after;		    /* seconds (ocil_http_retry_after), -1: none */
	char *location, *range, *chunk_min; /* upload session answers */
	long long content_length;	    /* -1 when absent */
	char *www[MAX_CHALLENGES];
	size_t n_www;
	char *ebuf; /* an error status's body, truncated */
	size_t elen;
	ocil_error *err; /* raised inside a callback: fatal, not retried */
	/* Set when a request made once (an upload step) failed in a way that
	 * is worth another try: the notice's reason and Retry-After. */
	char *retry_why;
	long retry_ra;
	char errbuf[CURL_ERROR_SIZE];
} resp;

static void notice(ocil_registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(ocil_registry *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ocil_vsay(r->o.notice, r->o.data, fmt, ap);
	va_end(ap);
}

/* Headers of a new response (after a 1xx, or a fresh attempt) replace the
 * previous ones. */
static void resp_reset_headers(resp *rs)
{
	free(rs->reason);
	free(rs->content_type);
	free(rs->docker_digest);
	free(rs->content_range);
	free(rs->location);
	free(rs->range);
	free(rs->chunk_min);
	for (size_t i = 0; i < rs->n_www; i++)
		free(rs->www[i]);
	rs->reason = rs->content_type = rs->docker_digest = rs->content_range = NULL;
	rs->retry_after = -1;
	rs->location = rs->range = rs->chunk_min = NULL;
	rs->n_www = 0;
	rs->content_length = -1;
	rs->status = 0;
	rs->body_to_sink = false;
}

static void resp_clear(resp *rs)
{
	resp_reset_headers(rs);
	free(rs->ebuf);
	free(rs->host);
	free(rs->url);
	free(rs->retry_why);
	ocil_error_free(rs->err);
	op *o = rs->o;
	memset(rs, 0, sizeof(*rs));
	rs->o = o;
}
static void resp_clearp(resp *rs)
{
	resp_clear(rs);
}
#define cleanup_resp __attribute__((cleanup(resp_clearp)))

/* --- names and URLs --- */

/* host[:port] by the reference grammar (ref.h), with a port in 1..65535;
 * *hostname gets the host alone ("[::1]" keeps its brackets). */
static bool valid_registry(const char *s, char **hostname)
{
	size_t n = strlen(s);
	if (!ocil_ref_domain_valid(s, n))
		return false;
	const char *close = s[0] == '[' ? strchr(s, ']') : NULL;
	const char *port = strchr(close ? close : s, ':');
	if (port != NULL) {
		char *end = NULL;
		long p = strtol(port + 1, &end, 10);
		if (p < 1 || p > 65535 || *end != '\0')
			return false;
	}
	*hostname = ocil_xstrndup(s, port ? (size_t)(port - s) : n);
	return true;
}

static bool valid_repository(const char *s)
{
	return ocil_ref_path_valid(s, strlen(s));
}

static char *registry_url(ocil_registry *r, const char *path)
{
	return ocil_xasprintf("%s://%s%s", r->plain_http ? "http" : "https", r->host, path);
}

/* --- callbacks --- */

static int on_headers_done(resp *rs)
{
	op *o = rs->o;
	ocil_registry *r = o->r;
	long long cl = rs->content_length;
	if (o->discard)
		return 0;
	if (o->w != NULL) {
		if (rs->status != 200 && rs->status != 206)
			return 0;
		uint64_t have = ocil_blob_writer_size(o->w);
		/* 200 to a Range request: the server starts over, so do we. */
		if (rs->status == 200 && have > 0) {
			if (ocil_blob_writer_reset(o->w, &rs->err) < 0)
				return -1;
			have = 0;
		}
		if (rs->status == 206) {
			unsigned long long start = 0;
			if (rs->content_range == NULL ||
			    sscanf(rs->content_range, "bytes %llu-", &start) != 1 || start != have)
				return ocil_error_set(&rs->err, OCIL_E_REGISTRY,
						      "%s: %s: partial content starts at the wrong "
						      "offset (Content-Range: %s, have %llu bytes)",
						      rs->host, o->what,
						      rs->content_range ? rs->content_range
									: "none",
						      (unsigned long long)have);
		}
		if (cl >= 0 && have + (uint64_t)cl > (uint64_t)o->d->size)
			return ocil_error_set(&rs->err, OCIL_E_REGISTRY,
					      "%s: %s: server sends %llu bytes, more than the "
					      "expected %lld",
					      r->name, o->what, (unsigned long long)(have + cl),
					      (long long)o->d->size);
		rs->body_to_sink = true;
		return 0;
	}
	if (rs->status != 200)
		return 0;
	if (cl >= 0 && (uint64_t)cl > o->max)
		return ocil_error_set(&rs->err, OCIL_E_REGISTRY,
				      "%s: %s: larger than %zu bytes (Content-Length: %lld)",
				      r->name, o->what, o->max, (long long)cl);
	o->len = 0;
	rs->body_to_sink = true;
	return 0;
}

/* The headers we act on, from libcurl's header API once a response's
 * headers are all in (the last of a repeated one; WWW-Authenticate: each,
 * up to MAX_CHALLENGES). */
static void read_headers(resp *rs)
{
	CURL *c = rs->o->r->curl;
	rs->content_type = ocil_http_header(c, "Content-Type");
	rs->docker_digest = ocil_http_header(c, "Docker-Content-Digest");
	rs->content_range = ocil_http_header(c, "Content-Range");
	rs->location = ocil_http_header(c, "Location");
	rs->range = ocil_http_header(c, "Range");
	rs->chunk_min = ocil_http_header(c, "OCI-Chunk-Min-Length");
	rs->n_www = ocil_http_header_all(c, "WWW-Authenticate", rs->www, MAX_CHALLENGES);
	rs->retry_after = ocil_http_retry_after(c);
	cleanup_free char *t = ocil_http_header(c, "Content-Length");
	char *end = NULL;
	errno = 0;
	long long x = t != NULL ? strtoll(t, &end, 10) : -1;
	rs->content_length =
	    t != NULL && isdigit((unsigned char)t[0]) && *end == '\0' && errno == 0 ? x : -1;
}

/* Each header line: capped in length; the status line's reason phrase
 * (libcurl keeps only the code); at the end of the headers, those we act
 * on and the body's destination. */
static size_t header_cb(char *b, size_t size, size_t n, void *data)
{
	resp *rs = data;
	size_t len = size * n;
	if (len > OCIL_HTTP_HEADER_LINE_MAX) {
		ocil_error_set(&rs->err, OCIL_E_REGISTRY,
			       "%s: response header longer than %zu bytes", rs->host,
			       OCIL_HTTP_HEADER_LINE_MAX);
		return 0;
	}
	if (len >= 5 && strncmp(b, "HTTP/", 5) == 0) {
		resp_reset_headers(rs);
		const char *sp = memchr(b, ' ', len);
		const char *sp2 = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - b)) : NULL;
		if (sp2 != NULL)
			rs->reason = ocil_http_trimmed(sp2 + 1, len - (size_t)(sp2 + 1 - b));
		return len;
	}
	if (len <= 2 && (b[0] == '\r' || b[0] == '\n')) {
		long st = 0;
		curl_easy_getinfo(rs->o->r->curl, CURLINFO_RESPONSE_CODE, &st);
		rs->status = st;
		if (st < 200)
			return len; /* 1xx: the real response follows */
		read_headers(rs);
		return on_headers_done(rs) < 0 ? 0 : len;
	}
	return len;
}

static size_t write_cb(char *b, size_t size, size_t n, void *data)
{
	resp *rs = data;
	op *o = rs->o;
	size_t len = size * n;
	if (!rs->body_to_sink) {
		size_t take = rs->elen < ERROR_BODY_MAX ? ERROR_BODY_MAX - rs->elen : 0;
		if (take > len)
			take = len;
		if (take > 0) {
			rs->ebuf = ocil_xrealloc(rs->ebuf, rs->elen + take + 1);
			memcpy(rs->ebuf + rs->elen, b, take);
			rs->elen += take;
			rs->ebuf[rs->elen] = '\0';
		}
		return len;
	}
	if (o->w != NULL) {
		uint64_t have = ocil_blob_writer_size(o->w);
		if (have + len > (uint64_t)o->d->size) {
			ocil_error_set(&rs->err, OCIL_E_REGISTRY,
				       "%s: %s: server sends more than the expected %lld bytes",
				       o->r->name, o->what, (long long)o->d->size);
			return 0;
		}
		if (ocil_blob_writer_write(o->w, b, len, &rs->err) < 0)
			return 0;
		if (o->r->o.progress != NULL)
			o->r->o.progress(o->r->o.data, o->d->digest, have + len,
					 (uint64_t)o->d->size);
		return len;
	}
	if (o->len + len > o->max) {
		ocil_error_set(&rs->err, OCIL_E_REGISTRY, "%s: %s: larger than %zu bytes",
			       o->r->name, o->what, o->max);
		return 0;
	}
	if (o->len + len + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 16384;
		while (cap < o->len + len + 1)
			cap *= 2;
		o->buf = ocil_xrealloc(o->buf, cap);
		o->cap = cap;
	}
	memcpy(o->buf + o->len, b, len);
	o->len += len;
	o->buf[o->len] = '\0';
	return len;
}

static int xferinfo_cb(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	const ocil_cancel *c = data;
	return c != NULL && c->flag != NULL && *c->flag ? 1 : 0;
}

/* The hash of the whole file, once every byte of it went through. */
static const char *body_digest(req_body *b)
{
	if (b->h == NULL || b->hashed != b->total)
		return NULL;
	if (!b->hash_done) {
		ocil_hasher_final(b->h, b->got);
		b->hash_done = true;
	}
	return b->got;
}

static size_t read_cb(char *b, size_t size, size_t n, void *data)
{
	resp *rs = data;
	req_body *bd = rs->body;
	size_t want = size * n;
	if (bd == NULL || bd->pos >= bd->len)
		return 0;
	if (want > bd->len - bd->pos)
		want = (size_t)(bd->len - bd->pos);
	uint64_t at = bd->off + bd->pos;
	if (bd->buf != NULL) {
		memcpy(b, bd->buf + at, want);
	} else {
		ssize_t got;
		do
			got = pread(bd->fd, b, want, (off_t)at);
		while (got < 0 && errno == EINTR);
		if (got < 0) {
			ocil_error_set_errno(&rs->err, OCIL_E_IO, errno, "reading %s", bd->path);
			return CURL_READFUNC_ABORT;
		}
		if (got == 0) {
			ocil_error_set(&rs->err, OCIL_E_INPUT,
				       "%s: ends at %llu bytes, expected %llu (changed while "
				       "uploading?)",
				       bd->path, (unsigned long long)at,
				       (unsigned long long)bd->total);
			return CURL_READFUNC_ABORT;
		}
		want = (size_t)got;
	}
	/* Each byte is hashed once and in order, whatever curl sends again. */
	if (bd->h != NULL && !bd->hash_done && at <= bd->hashed && at + want > bd->hashed) {
		ocil_hasher_update(bd->h, b + (bd->hashed - at), (size_t)(at + want - bd->hashed));
		bd->hashed = at + want;
	}
	bd->pos += want;
	ocil_registry *r = rs->o->r;
	if (bd->digest != NULL && r->o.progress != NULL)
		r->o.progress(r->o.data, bd->digest, bd->off + bd->pos, bd->total);
	return want;
}

static int seek_cb(void *data, curl_off_t offset, int origin)
{
	resp *rs = data;
	if (rs->body == NULL || origin != SEEK_SET || offset < 0 ||
	    (uint64_t)offset > rs->body->len)
		return CURL_SEEKFUNC_CANTSEEK;
	rs->body->pos = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* --- one HTTP exchange --- */

typedef struct {
	const char *method;   /* NULL: GET */
	const char *path;     /* on the registry ("/v2/…"), or NULL with url */
	const char *url;      /* absolute (a token realm, an upload session) */
	bool url_on_registry; /* url came from the registry: its authz goes where its origin is */
	const char *authz;
	const char *accept;
	const char *content_type;
	const char *content_range;
	req_body *body; /* for PUT and PATCH; NULL sends nothing */
	/* One step of an upload: a failure worth retrying is reported (in
	 * resp.retry_why) rather than retried, as the whole upload starts over. */
	bool once;
} req;

static bool is_method(const req *q, const char *m)
{
	return strcmp(q->method ? q->method : "GET", m) == 0;
}

static void slist_freep(struct curl_slist **l)
{
	curl_slist_free_all(*l);
}

static CURLcode perform(op *o, const req *q, const char *url, const char *url_host,
			const char *authz, resp *rs)
{
	ocil_registry *r = o->r;
	CURL *c = r->curl;
	curl_easy_reset(c);
	__attribute__((cleanup(slist_freep))) struct curl_slist *h = NULL;
	if (q->accept != NULL)
		h = curl_slist_append(h, q->accept);
	cleanup_free char *auth_line = authz ? ocil_xasprintf("Authorization: %s", authz) : NULL;
	if (auth_line != NULL)
		h = curl_slist_append(h, auth_line);
	cleanup_free char *range = NULL;
	if (o->w != NULL && ocil_blob_writer_size(o->w) > 0) {
		range = ocil_xasprintf("Range: bytes=%llu-",
				       (unsigned long long)ocil_blob_writer_size(o->w));
		h = curl_slist_append(h, range);
	}
	/* "Content-Type:" alone drops the form type curl gives a POST. */
	cleanup_free char *ctype = ocil_xasprintf("Content-Type:%s%s", q->content_type ? " " : "",
						  q->content_type ? q->content_type : "");
	cleanup_free char *crange =
	    q->content_range ? ocil_xasprintf("Content-Range: %s", q->content_range) : NULL;
	bool upload = is_method(q, "PUT") || is_method(q, "PATCH");
	if (upload || is_method(q, "POST")) {
		h = curl_slist_append(h, ctype);
		/* Registries answer at once; waiting for a 100 only costs time
		 * (and Go clients do not ask either). */
		h = curl_slist_append(h, "Expect:");
	}
	if (crange != NULL)
		h = curl_slist_append(h, crange);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (is_method(q, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (is_method(q, "POST")) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	} else if (upload) {
		if (q->body != NULL)
			q->body->pos = 0;
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)(q->body ? q->body->len : 0));
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, rs);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, rs);
		if (is_method(q, "PATCH"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
	} else if (is_method(q, "GET")) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	/* --tls-verify=false is about the registry, not about the CDN it
	 * redirects to. */
	ocil_http_setup(c, o->deadline_ms, r->ca, r->ca_len,
			r->o.tls_verify || strcasecmp(url_host, r->hostname) != 0);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, rs->errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, rs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, rs);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, r->o.cancel);
	/* Through the shared loop when there is one: its connections are
	 * every handle's (see net.h). */
	r->talked = true;
	CURLcode rc = r->o.net != NULL ? ocil_net_perform(r->o.net, c) : curl_easy_perform(c);
	/* The handle outlives this stack frame; drop pointers into it. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_READDATA, NULL);
	curl_easy_setopt(c, CURLOPT_SEEKDATA, NULL);
	return rc;
}

/* --- errors --- */

/* "CODE: message; CODE: message" from a distribution-spec error body. Sets
 * *ref_wrong for the codes that mean the reference names nothing. */
static char *registry_errors(const char *body, size_t len, bool *ref_wrong)
{
	if (body == NULL)
		return NULL;
	json_error_t je;
	cleanup_json json_t *j = json_loadb(body, len, 0, &je);
	json_t *errs = json_is_object(j) ? json_object_get(j, "errors") : NULL;
	if (!json_is_array(errs) || json_array_size(errs) == 0)
		return NULL;
	char *out = NULL;
	size_t i;
	json_t *e;
	json_array_foreach(errs, i, e)
	{
		if (i == 3)
			break;
		const char *code = ocil_json_opt_string(e, "code");
		const char *msg = ocil_json_opt_string(e, "message");
		if (code == NULL && msg == NULL)
			continue;
		static const char *const unknown[] = {"NAME_UNKNOWN", "MANIFEST_UNKNOWN",
						      "BLOB_UNKNOWN"};
		for (size_t k = 0; code != NULL && k < 3; k++)
			if (strcmp(code, unknown[k]) == 0)
				*ref_wrong = true;
		char *part = ocil_xasprintf("%.64s%s%.300s", code ? code : "",
					    code && msg ? ": " : "", msg ? msg : "");
		for (char *p = part; *p != '\0'; p++)
			if (!isprint((unsigned char)*p))
				*p = '?';
		char *joined = out ? ocil_xasprintf("%s; %s", out, part) : ocil_xstrdup(part);
		free(out);
		free(part);
		out = joined;
	}
	return out;
}

static char *status_text(const resp *rs)
{
	if (rs->reason != NULL && *rs->reason != '\0')
		return ocil_xasprintf("HTTP %ld %.100s", rs->status, rs->reason);
	return ocil_xasprintf("HTTP %ld", rs->status);
}

static int http_error(op *o, resp *rs, ocil_error **err)
{
	bool ref_wrong = false;
	cleanup_free char *msg = registry_errors(rs->ebuf, rs->elen, &ref_wrong);
	cleanup_free char *st = status_text(rs);
	ocil_code code = rs->status == 404 || ref_wrong ? OCIL_E_INPUT : OCIL_E_REGISTRY;
	return ocil_error_set(err, code, "%s: %s: %s", o->r->name, o->what, msg ? msg : st);
}

/* Errors that mean "nothing speaks TLS there", after which a registry that
 * may use plain http is tried over http. */
static bool no_tls_there(CURLcode rc)
{
	return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_COULDNT_CONNECT ||
	       rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR;
}

/* --- retries --- */

static int check_cancel(ocil_registry *r, ocil_error **err)
{
	return ocil_cancel_check(r->o.cancel, err);
}

/* Wait before the next attempt, or fail when the budget is spent. why is
 * the short reason for the notice ("HTTP 503", curl's message), full the
 * error message if there is no retry left. */
static int backoff(op *o, const char *why, const char *full, long retry_after_s, ocil_error **err)
{
	ocil_registry *r = o->r;
	long delay = 0;
	if (ocil_http_retry_delay(*o->retries_used, r->o.retries, o->deadline_ms, r->o.timeout_s,
				  retry_after_s, full, &delay, err) < 0)
		return -1;
	(*o->retries_used)++;
	notice(r, "%s: retrying %s in %ld s (%s)", r->host, o->what, delay, why);
	long long until = ocil_http_now_ms() + delay * 1000;
	for (;;) {
		if (check_cancel(r, err) < 0)
			return -1;
		long long left = until - ocil_http_now_ms();
		if (left <= 0)
			return 0;
		if (left > 100)
			left = 100;
		struct timespec ts = {0, (long)left * 1000000};
		nanosleep(&ts, NULL);
	}
}

/* --- one logical request --- */

/* A failure worth another try, in a request made once: say why and
 * return, the caller decides. */
static int retry_later(resp *rs, const char *why, const char *full, long retry_after_s,
		       ocil_error **err)
{
	free(rs->retry_why);
	rs->retry_why = ocil_xstrdup(why);
	rs->retry_ra = retry_after_s;
	return ocil_error_set(err, OCIL_E_REGISTRY, "%s", full);
}

/* A request with the registry's rules: follow redirects by hand (at most
 * OCIL_HTTP_MAX_REDIRECTS, never https to http, authz only to the origin it belongs
 * to; a request with a body only on 307/308, sending it again), probe https
 * then http on a registry that may use plain http, retry connection errors,
 * 429 and 5xx (unless q->once). On 0, *rs is the final response, whatever
 * its status. */
static int request(op *o, const req *q, resp *rs, ocil_error **err)
{
	ocil_registry *r = o->r;
	cleanup_free char *url = NULL;
	int hops = 0;
	for (;;) {
		if (check_cancel(r, err) < 0)
			return -1;
		if (ocil_http_now_ms() >= o->deadline_ms)
			return ocil_error_set(err, OCIL_E_REGISTRY, "%s: %s: timed out after %ld s",
					      r->name, o->what, r->o.timeout_s);
		bool first_hop = url == NULL;
		if (first_hop) {
			url = q->path ? registry_url(r, q->path) : ocil_xstrdup(q->url);
			hops = 0;
		}
		bool ours = q->path != NULL || q->url_on_registry;
		cleanup_free char *start = ours ? registry_url(r, "/") : ocil_xstrdup(q->url);
		cleanup_free char *host = NULL;
		cleanup_free char *origin = ocil_http_url_origin(url, &host);
		cleanup_free char *auth_origin = ocil_http_url_origin(start, NULL);
		if (origin == NULL || auth_origin == NULL)
			return ocil_error_set(err, OCIL_E_REGISTRY, "%s: %s: invalid URL %s",
					      r->name, o->what, url);
		bool same = strcmp(origin, auth_origin) == 0;
		bool probing = q->path != NULL && same && r->may_use_http && !r->scheme_known;
		const char *msg_host = ours && same ? r->host : host;

		resp_clear(rs);
		rs->content_length = -1;
		rs->host = ocil_xstrdup(msg_host);
		rs->url = ocil_xstrdup(url);
		rs->body = q->body;
		rs->on_registry = ours && same;
		uint64_t had = o->w != NULL ? ocil_blob_writer_size(o->w) : 0;
		CURLcode rc = perform(o, q, url, host, same ? q->authz : NULL, rs);
		if (rs->err != NULL) {
			*err = steal_pointer(&rs->err);
			return -1;
		}
		if (rc == CURLE_ABORTED_BY_CALLBACK && check_cancel(r, err) < 0)
			return -1;
		if (rc != CURLE_OK) {
			if (probing && !r->plain_http && no_tls_there(rc)) {
				r->plain_http = true;
				free(steal_pointer(&url));
				continue;
			}
			cleanup_free char *full = ocil_http_net_error(msg_host, rc, rs->errbuf);
			if (!ocil_http_retryable(rc))
				return ocil_error_set(err, OCIL_E_REGISTRY, "%s", full);
			/* Probe https again on the next attempt: the server
			 * may just not have been up yet. */
			if (probing)
				r->plain_http = false;
			const char *why = rs->errbuf[0] ? rs->errbuf : curl_easy_strerror(rc);
			if (q->once)
				return retry_later(rs, why, full, -1, err);
			/* A download that dropped after making progress resumes
			 * at once: the connection worked until just now. */
			bool progressed = o->w != NULL && ocil_blob_writer_size(o->w) > had;
			if (backoff(o, why, full, progressed ? 0 : -1, err) < 0)
				return -1;
			free(steal_pointer(&url));
			continue;
		}
		if (probing) {
			r->scheme_known = true;
			if (r->plain_http)
				notice(r, "using plain http for %s", r->host);
		}
		long st = rs->status;
		if (st >= 300 && st < 400 && st != 304) {
			char *loc = NULL;
			curl_easy_getinfo(r->curl, CURLINFO_REDIRECT_URL, &loc);
			if (loc == NULL)
				return ocil_error_set(err, OCIL_E_REGISTRY,
						      "%s: %s: HTTP %ld without a Location",
						      msg_host, o->what, st);
			if (++hops > OCIL_HTTP_MAX_REDIRECTS)
				return ocil_error_set(err, OCIL_E_REGISTRY,
						      "%s: %s: more than %d redirects", r->name,
						      o->what, OCIL_HTTP_MAX_REDIRECTS);
			/* Only these keep the method and the body. */
			if (!is_method(q, "GET") && !is_method(q, "HEAD") && st != 307 && st != 308)
				return ocil_error_set(err, OCIL_E_REGISTRY,
						      "%s: %s: HTTP %ld redirect to a %s", msg_host,
						      o->what, st, q->method);
			if (strncasecmp(url, "https:", 6) == 0 &&
			    strncasecmp(loc, "https:", 6) != 0)
				return ocil_error_set(
				    err, OCIL_E_REGISTRY,
				    "%s: %s: refusing a redirect from https to %s", msg_host,
				    o->what, loc);
			char *next = ocil_xstrdup(loc);
			free(url);
			url = next;
			continue;
		}
		if (st == 429 || st >= 500) {
			bool ref_wrong = false;
			cleanup_free char *emsg = registry_errors(rs->ebuf, rs->elen, &ref_wrong);
			cleanup_free char *why = status_text(rs);
			cleanup_free char *full =
			    emsg ? ocil_xasprintf("%s: %s: %s (%s)", r->name, o->what, why, emsg)
				 : ocil_xasprintf("%s: %s: %s", r->name, o->what, why);
			long ra = st == 429 || st == 503 ? rs->retry_after : -1;
			if (q->once)
				return retry_later(rs, why, full, ra, err);
			if (backoff(o, why, full, ra, err) < 0)
				return -1;
			free(steal_pointer(&url));
			continue;
		}
		/* Our Range is past the end: start over from byte 0. */
		if (st == 416 && o->w != NULL && ocil_blob_writer_size(o->w) > 0) {
			if (ocil_blob_writer_reset(o->w, err) < 0 ||
			    backoff(o, "HTTP 416 to a resumed download",
				    "HTTP 416 to a resumed download", 0, err) < 0)
				return -1;
			free(steal_pointer(&url));
			continue;
		}
		return 0;
	}
}

/* --- authentication --- */

static int load_creds(ocil_registry *r, ocil_error **err)
{
	if (r->creds_loaded)
		return 0;
	if (ocil_auth_find(r->host, r->o.authfile, &r->creds, &r->creds_found, err) < 0)
		return ocil_error_wrap(err, "%s: looking up credentials", r->host);
	r->creds_loaded = true;
	return 0;
}

static char *basic_value(const ocil_creds *c)
{
	size_t n = strlen(c->username) + 1 + strlen(c->password);
	char *plain = ocil_xasprintf("%s:%s", c->username, c->password);
	char *b = ocil_base64_encode(plain, n);
	explicit_bzero(plain, n);
	free(plain);
	char *v = ocil_xasprintf("Basic %s", b);
	explicit_bzero(b, strlen(b));
	free(b);
	return v;
}

static void set_authz(ocil_registry *r, char *v, bool with_creds)
{
	if (r->authz != NULL) {
		explicit_bzero(r->authz, strlen(r->authz));
		free(r->authz);
	}
	r->authz = v;
	r->authz_with_creds = with_creds;
}

/* What the registry said about a 401/403, to append to our message. */
static char *registry_says(const resp *rs)
{
	bool ignored = false;
	cleanup_free char *m = registry_errors(rs->ebuf, rs->elen, &ignored);
	return m ? ocil_xasprintf(" (registry: %s)", m) : ocil_xstrdup("");
}

static int auth_refused(ocil_registry *r, const resp *rs, ocil_error **err)
{
	cleanup_free char *says = registry_says(rs);
	if (r->authz_with_creds)
		return ocil_error_set(err, OCIL_E_REGISTRY, "%s: authentication failed for %s%s",
				      r->host, r->creds.username, says);
	cleanup_free char *files = ocil_auth_sources(r->o.authfile);
	return ocil_error_set(err, OCIL_E_REGISTRY,
			      "%s: authentication required (no credentials in %s); use --authfile "
			      "or docker login%s",
			      r->host, *files ? files : "any auth file", says);
}

static bool token_ok(const char *t)
{
	if (*t == '\0')
		return false;
	/* It goes into a header line: visible ASCII only. */
	for (const unsigned char *p = (const unsigned char *)t; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e)
			return false;
	return true;
}

/* Whether one scope of a challenge ("repository:NAME:a,b") asks for no
 * more than ours: pull,push on our repository, pull on the one mounted
 * from. */
static bool scope_covered(const op *o, const char *scope)
{
	const ocil_registry *r = o->r;
	if (!ocil_str_has_prefix(scope, "repository:"))
		return false;
	const char *name = scope + strlen("repository:");
	const char *colon = strrchr(name, ':');
	if (colon == NULL)
		return false;
	size_t n = (size_t)(colon - name);
	bool ours = strlen(r->repo) == n && strncmp(name, r->repo, n) == 0;
	bool from = o->mount_from != NULL && strlen(o->mount_from) == n &&
		    strncmp(name, o->mount_from, n) == 0;
	if (!ours && !from)
		return false;
	cleanup_free char *actions = ocil_xstrdup(colon + 1);
	char *save = NULL;
	for (char *a = strtok_r(actions, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save))
		if (strcmp(a, "pull") != 0 && !(ours && strcmp(a, "push") == 0))
			return false;
	return true;
}

/* The scope parameters of a token request. A pull asks for what the
 * challenge names (the registry knows what the request needs), else pull on
 * the repository. A push asks for pull,push on the repository, pull on the
 * one mounted from, and any other scope the challenge names; one scope
 * parameter each, as docker and containerd send them. */
static char *scope_params(const op *o, const ocil_challenge *ch)
{
	ocil_registry *r = o->r;
	ocil_strv v = {0};
	if (!r->o.push && !o->push && o->mount_from == NULL) {
		ocil_strv_push(&v, ch->scope ? ocil_xstrdup(ch->scope)
					     : ocil_xasprintf("repository:%s:pull", r->repo));
	} else {
		ocil_strv_push(&v, ocil_xasprintf("repository:%s:pull,push", r->repo));
		if (o->mount_from != NULL)
			ocil_strv_push(&v, ocil_xasprintf("repository:%s:pull", o->mount_from));
		cleanup_free char *extra = ch->scope ? ocil_xstrdup(ch->scope) : NULL;
		char *save = NULL;
		for (char *sc = extra ? strtok_r(extra, " ", &save) : NULL; sc != NULL;
		     sc = strtok_r(NULL, " ", &save)) {
			bool dup = scope_covered(o, sc);
			for (size_t i = 0; i < v.n && !dup; i++)
				dup = strcmp(v.v[i], sc) == 0;
			if (!dup)
				ocil_strv_push(&v, ocil_xstrdup(sc));
		}
	}
	char *out = NULL;
	for (size_t i = 0; i < v.n; i++) {
		char *esc = curl_easy_escape(r->curl, v.v[i], 0);
		char *next =
		    ocil_xasprintf("%s%sscope=%s", out ? out : "", out ? "&" : "", esc ? esc : "");
		curl_free(esc);
		free(out);
		out = next;
	}
	ocil_strv_clear(&v);
	return out;
}

static int fetch_token(op *o, const ocil_challenge *ch, ocil_error **err)
{
	ocil_registry *r = o->r;
	if (ch->realm == NULL || *ch->realm == '\0')
		return ocil_error_set(err, OCIL_E_REGISTRY, "%s: bearer challenge without a realm",
				      r->host);
	bool https = strncasecmp(ch->realm, "https://", 8) == 0;
	bool http = strncasecmp(ch->realm, "http://", 7) == 0;
	if (!https && !http)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s: token realm %s is not an http(s) URL", r->host,
				      ch->realm);
	if (http && !r->plain_http)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s: refusing to get a token over plain http from %s",
				      r->host, ch->realm);
	cleanup_free char *scopes = scope_params(o, ch);
	char *esc_service = ch->service ? curl_easy_escape(r->curl, ch->service, 0) : NULL;
	const char *sep = strchr(ch->realm, '?') ? "&" : "?";
	cleanup_free char *url =
	    esc_service ? ocil_xasprintf("%s%sservice=%s&%s", ch->realm, sep, esc_service, scopes)
			: ocil_xasprintf("%s%s%s", ch->realm, sep, scopes);
	curl_free(esc_service);

	cleanup_free char *basic = r->creds_found ? basic_value(&r->creds) : NULL;
	cleanup_free char *what = ocil_xasprintf("token from %s", ch->realm);
	op t = {.r = r,
		.what = what,
		.deadline_ms = o->deadline_ms,
		.retries_used = o->retries_used,
		.max = TOKEN_MAX};
	cleanup_resp resp rs = {.o = &t};
	req q = {.url = url, .authz = basic, .accept = "Accept: application/json"};
	int rc = request(&t, &q, &rs, err);
	if (basic != NULL)
		explicit_bzero(basic, strlen(basic));
	cleanup_free char *body = t.buf;
	if (rc < 0)
		return -1;
	if (rs.status == 401 || rs.status == 403) {
		r->authz_with_creds = r->creds_found;
		return auth_refused(r, &rs, err);
	}
	if (rs.status != 200)
		return http_error(&t, &rs, err);
	/* strict, as every JSON from outside: a duplicate "token" is no token */
	cleanup_json json_t *j = NULL;
	cleanup_error ocil_error *perr = NULL;
	if (ocil_json_parse_max(body ? body : "", t.len, TOKEN_MAX, what, &j, &perr) < 0)
		return ocil_error_set(err, OCIL_E_REGISTRY, "%s: %s", r->host, perr->msg);
	const char *tok = ocil_json_opt_string(j, "token");
	if (tok == NULL || *tok == '\0')
		tok = ocil_json_opt_string(j, "access_token");
	if (tok == NULL || !token_ok(tok))
		return ocil_error_set(
		    err, OCIL_E_REGISTRY,
		    "%s: %s: no usable \"token\" or \"access_token\" in the answer", r->host, what);
	set_authz(r, ocil_xasprintf("Bearer %s", tok), r->creds_found);
	return 0;
}

/* Answer a 401 from the registry: the first Bearer challenge, else Basic. */
static int authenticate(op *o, const resp *rs, ocil_error **err)
{
	ocil_registry *r = o->r;
	ocil_challenge ch = {0}, pick = {0};
	cleanup_error ocil_error *perr = NULL;
	for (size_t i = 0; i < rs->n_www; i++) {
		ocil_error *e = NULL;
		if (ocil_challenge_parse(rs->www[i], &ch, &e) < 0) {
			if (perr == NULL)
				perr = e;
			else
				ocil_error_free(e);
			continue;
		}
		bool bearer = strcmp(ch.scheme, "bearer") == 0;
		if ((bearer && (pick.scheme == NULL || strcmp(pick.scheme, "bearer") != 0)) ||
		    pick.scheme == NULL) {
			ocil_challenge_clear(&pick);
			pick = ch;
			memset(&ch, 0, sizeof(ch));
		} else {
			ocil_challenge_clear(&ch);
		}
	}
	if (pick.scheme == NULL)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s: %s: HTTP 401 without a usable "
				      "WWW-Authenticate challenge%s%s",
				      r->name, o->what, perr ? ": " : "", perr ? perr->msg : "");
	int rc;
	if (load_creds(r, err) < 0) {
		rc = -1;
	} else if (strcmp(pick.scheme, "bearer") == 0) {
		rc = fetch_token(o, &pick, err);
	} else if (strcmp(pick.scheme, "basic") == 0) {
		if (!r->creds_found) {
			r->authz_with_creds = false;
			rc = auth_refused(r, rs, err);
		} else {
			set_authz(r, basic_value(&r->creds), true);
			rc = 0;
		}
	} else {
		rc = ocil_error_set(err, OCIL_E_REGISTRY,
				    "%s: unsupported authentication scheme \"%s\"", r->host,
				    pick.scheme);
	}
	ocil_challenge_clear(&pick);
	return rc;
}

/* Whether the registry's error body has this errors[].code. */
static bool has_error_code(const resp *rs, const char *code)
{
	if (rs->ebuf == NULL)
		return false;
	json_error_t je;
	cleanup_json json_t *j = json_loadb(rs->ebuf, rs->elen, 0, &je);
	json_t *errs = json_is_object(j) ? json_object_get(j, "errors") : NULL;
	size_t i;
	json_t *e;
	json_array_foreach(errs, i, e)
	{
		const char *c = ocil_json_opt_string(e, "code");
		if (c != NULL && strcmp(c, code) == 0)
			return true;
	}
	return false;
}

/* A 401/403 (or DENIED) to a push: the credentials, if any, were good
 * enough to get in but not to write. */
static int push_denied(op *o, const resp *rs, ocil_error **err)
{
	ocil_registry *r = o->r;
	ocil_error *ignored = NULL;
	if (load_creds(r, &ignored) < 0)
		ocil_error_free(ignored);
	bool unused = false;
	cleanup_free char *m = registry_errors(rs->ebuf, rs->elen, &unused);
	cleanup_free char *st = status_text(rs);
	if (r->creds_found)
		return ocil_error_set(err, OCIL_E_REGISTRY, "%s: push denied: %s (as %s)", r->name,
				      m ? m : st, r->creds.username);
	cleanup_free char *files = ocil_auth_sources(r->o.authfile);
	return ocil_error_set(err, OCIL_E_REGISTRY,
			      "%s: push denied: %s (no credentials in %s; use --authfile or docker "
			      "login)",
			      r->name, m ? m : st, *files ? files : "any auth file");
}

/* Send a request to the registry, authenticating when challenged. A 401
 * right after fresh credentials is final; a 401 with cached ones (an
 * expired token, or one without the scope this request needs) gets one
 * more round. */
static int registry_request(op *o, const req *q0, resp *rs, ocil_error **err)
{
	ocil_registry *r = o->r;
	bool fresh = false;
	for (;;) {
		req q = *q0;
		q.authz = r->authz;
		if (request(o, &q, rs, err) < 0)
			return -1;
		if (rs->status != 401 || !rs->on_registry)
			return 0;
		if (fresh) {
			/* Basic credentials that do not work are wrong; a
			 * token that does not is one without push rights. */
			bool basic = r->authz != NULL && strncmp(r->authz, "Basic ", 6) == 0;
			return o->push && !basic ? push_denied(o, rs, err)
						 : auth_refused(r, rs, err);
		}
		if (authenticate(o, rs, err) < 0)
			return -1;
		fresh = true;
	}
}

static int registry_get(op *o, const char *path, const char *accept, resp *rs, ocil_error **err)
{
	req q = {.path = path, .accept = accept};
	return registry_request(o, &q, rs, err);
}

/* --- open / free --- */

void ocil_registry_free(ocil_registry *r)
{
	if (r == NULL)
		return;
	if (r->curl != NULL)
		curl_easy_cleanup(r->curl);
	if (r->curl_inited)
		curl_global_cleanup();
	set_authz(r, NULL, false);
	ocil_creds_clear(&r->creds);
	free(r->host);
	free(r->hostname);
	free(r->repo);
	free(r->name);
	free(r->authfile);
	free(r->ca);
	free(r);
}

/* libcurl for r: the global state (reference-counted and thread-safe
 * since curl 7.84; paired with the cleanup in ocil_registry_free) and the
 * handle. On failure the caller frees r. */
static int curl_start(ocil_registry *r, ocil_error **err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return ocil_error_set(err, OCIL_E_IO, "cannot initialise libcurl");
	r->curl_inited = true;
	r->curl = curl_easy_init();
	if (r->curl == NULL)
		return ocil_error_set(err, OCIL_E_IO, "cannot initialise libcurl");
	return 0;
}

int ocil_registry_open(const char *registry, const char *repository, const ocil_registry_opts *o,
		       ocil_registry **out, ocil_error **err)
{
	char *hostname = NULL;
	if (registry == NULL || !valid_registry(registry, &hostname))
		return ocil_error_set(err, OCIL_E_INPUT, "invalid registry \"%s\"",
				      registry ? registry : "");
	if (repository == NULL || !valid_repository(repository)) {
		free(hostname);
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid repository name \"%s\"",
				      registry, repository ? repository : "");
	}
	ocil_registry *r = ocil_xcalloc(1, sizeof(*r));
	r->hostname = hostname;
	r->host = ocil_xstrdup(registry);
	r->repo = ocil_xstrdup(repository);
	r->name = ocil_xasprintf("%s/%s", registry, repository);
	if (o != NULL) {
		r->o = *o;
	} else {
		r->o = (ocil_registry_opts){.tls_verify = true, .retries = 3, .timeout_s = 600};
	}
	if (r->o.retries < 0)
		r->o.retries = 3;
	if (r->o.timeout_s <= 0)
		r->o.timeout_s = 600;
	/* Our own copy: the caller's option strings may not outlive us. */
	r->authfile = r->o.authfile ? ocil_xstrdup(r->o.authfile) : NULL;
	r->o.authfile = r->authfile;
	r->may_use_http = !r->o.tls_verify || ocil_http_is_loopback(r->hostname);

	if (curl_start(r, err) < 0) {
		ocil_registry_free(r);
		return -1;
	}
	if (ocil_http_load_cas(r->curl, r->o.ca_file, r->o.cert_dir, &r->ca, &r->ca_len, err) < 0) {
		ocil_error_wrap(err, "%s", registry);
		ocil_registry_free(r);
		return -1;
	}
	/* The option strings we keep pointing at are ours or NULL now. */
	r->o.ca_file = NULL;
	r->o.cert_dir = NULL;
	*out = r;
	return 0;
}

/* --- operations --- */

static int get_manifest(ocil_registry *r, const char *reference, char **body, size_t *len,
			char **media_type, char digest[OCIL_DIGEST_STR_SIZE], bool *found,
			ocil_error **err);

int ocil_registry_get_manifest(ocil_registry *r, const char *reference, char **body, size_t *len,
			       char **media_type, char digest[OCIL_DIGEST_STR_SIZE],
			       ocil_error **err)
{
	return get_manifest(r, reference, body, len, media_type, digest, NULL, err);
}

int ocil_registry_find_manifest(ocil_registry *r, const char *reference, char **body, size_t *len,
				char **media_type, char digest[OCIL_DIGEST_STR_SIZE], bool *found,
				ocil_error **err)
{
	*found = false;
	return get_manifest(r, reference, body, len, media_type, digest, found, err);
}

/* found NULL: a manifest the registry does not have is an error */
static int get_manifest(ocil_registry *r, const char *reference, char **body, size_t *len,
			char **media_type, char digest[OCIL_DIGEST_STR_SIZE], bool *found,
			ocil_error **err)
{
	bool by_digest = ocil_digest_valid(reference);
	if (!by_digest && !ocil_ref_tag_valid(reference))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid tag or digest \"%s\"",
				      r->name, reference);
	cleanup_free char *what = ocil_xasprintf("manifest %s", reference);
	cleanup_free char *path = ocil_xasprintf("/v2/%s/manifests/%s", r->repo, reference);
	int retries = 0;
	op o = {.r = r,
		.what = what,
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.max = OCIL_JSON_MAX};
	cleanup_resp resp rs = {.o = &o};
	int rc = registry_get(&o, path, MANIFEST_ACCEPT, &rs, err);
	cleanup_free char *buf = o.buf;
	if (rc < 0)
		return -1;
	if (rs.status == 404 && found != NULL)
		return 0;
	if (rs.status != 200)
		return http_error(&o, &rs, err);
	if (found != NULL)
		*found = true;
	if (buf == NULL)
		buf = ocil_xstrdup("");
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(buf, o.len, got);
	if (by_digest && strcmp(got, reference) != 0)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s: manifest %s: digest mismatch: content is %s", r->name,
				      reference, got);
	/* Only sha256 is ours to check; another algorithm is not an error. */
	if (rs.docker_digest != NULL && ocil_str_has_prefix(rs.docker_digest, "sha256:") &&
	    strcmp(rs.docker_digest, got) != 0)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s: %s: Docker-Content-Digest %.80s does not match the "
				      "content (%s)",
				      r->name, what, rs.docker_digest, got);
	char *mt = NULL;
	if (rs.content_type != NULL) {
		size_t n = strcspn(rs.content_type, ";");
		while (n > 0 && isspace((unsigned char)rs.content_type[n - 1]))
			n--;
		if (n > 0)
			mt = ocil_xstrndup(rs.content_type, n);
	}
	*len = o.len;
	*body = steal_pointer(&buf);
	*media_type = mt;
	memcpy(digest, got, OCIL_DIGEST_STR_SIZE);
	return 0;
}

static void writer_freep(ocil_blob_writer **w)
{
	ocil_blob_writer_free(*w);
}

int ocil_registry_fetch_blob(ocil_registry *r, const ocil_descriptor *d, ocil_blobstore *bs,
			     ocil_error **err)
{
	if (ocil_digest_check(d->digest, "blob", err) < 0)
		return ocil_error_wrap(err, "%s", r->name);
	if (d->size < 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: blob %s: negative size", r->name,
				      d->digest);
	if (ocil_blobstore_has(bs, d->digest))
		return 0;
	__attribute__((cleanup(writer_freep))) ocil_blob_writer *w = NULL;
	if (ocil_blobstore_begin(bs, &w, err) < 0)
		return -1;
	cleanup_free char *what = ocil_xasprintf("blob %s", d->digest);
	cleanup_free char *path = ocil_xasprintf("/v2/%s/blobs/%s", r->repo, d->digest);
	int retries = 0;
	op o = {.r = r,
		.what = what,
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.w = w,
		.d = d};
	cleanup_resp resp rs = {.o = &o};
	if (registry_get(&o, path, NULL, &rs, err) < 0)
		return -1;
	if (rs.status != 200 && rs.status != 206)
		return http_error(&o, &rs, err);
	if (ocil_blob_writer_commit(w, d->digest, d->size, NULL, NULL, err) < 0) {
		/* The registry sent the wrong bytes: a registry problem, not
		 * a wrong reference. */
		if (err != NULL && *err != NULL)
			(*err)->code = OCIL_E_REGISTRY;
		return ocil_error_wrap(err, "%s", r->name);
	}
	return 0;
}

/* --- push --- */

static int check_descriptor(ocil_registry *r, const ocil_descriptor *d, ocil_error **err)
{
	if (ocil_digest_check(d->digest, "blob", err) < 0)
		return ocil_error_wrap(err, "%s", r->name);
	if (d->size < 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: blob %s: negative size", r->name,
				      d->digest);
	return 0;
}

/* An error answer to a push request (or to the HEAD before it). hint_404:
 * it was the POST that opens an upload, where a 404 means no repository. */
static int push_error(op *o, const resp *rs, bool hint_404, ocil_error **err)
{
	ocil_registry *r = o->r;
	if (rs->status == 401 || rs->status == 403 || has_error_code(rs, "DENIED"))
		return push_denied(o, rs, err);
	bool unused = false;
	cleanup_free char *msg = registry_errors(rs->ebuf, rs->elen, &unused);
	cleanup_free char *st = status_text(rs);
	if (has_error_code(rs, "NAME_UNKNOWN") || (hint_404 && rs->status == 404))
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s: %s: %s (on ECR, create the repository first: aws ecr "
				      "create-repository --repository-name %s)",
				      r->name, o->what, msg ? msg : st, r->repo);
	return ocil_error_set(err, OCIL_E_REGISTRY, "%s: %s: %s", r->name, o->what, msg ? msg : st);
}

/* Only sha256 is ours to check; another algorithm is not an error. */
static int check_docker_digest(op *o, const resp *rs, const char *want, ocil_error **err)
{
	if (rs->docker_digest == NULL || !ocil_str_has_prefix(rs->docker_digest, "sha256:") ||
	    strcmp(rs->docker_digest, want) == 0)
		return 0;
	return ocil_error_set(err, OCIL_E_REGISTRY,
			      "%s: %s: Docker-Content-Digest %.80s does not match the content (%s)",
			      o->r->name, o->what, rs->docker_digest, want);
}

/* The Location of a 201/202 as an absolute URL; a relative one is resolved
 * against the URL that answered. Its query is the registry's and is kept. */
static int session_location(op *o, const resp *rs, char **out, ocil_error **err)
{
	ocil_registry *r = o->r;
	if (rs->location == NULL || *rs->location == '\0')
		return ocil_error_set(err, OCIL_E_REGISTRY, "%s: %s: HTTP %ld without a Location",
				      r->name, o->what, rs->status);
	CURLU *u = curl_url();
	char *abs = NULL;
	bool ok = curl_url_set(u, CURLUPART_URL, rs->url, 0) == CURLUE_OK &&
		  curl_url_set(u, CURLUPART_URL, rs->location, 0) == CURLUE_OK &&
		  curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK;
	curl_url_cleanup(u);
	if (!ok) {
		curl_free(abs);
		return ocil_error_set(err, OCIL_E_REGISTRY, "%s: %s: invalid Location %.200s",
				      r->name, o->what, rs->location);
	}
	bool down = strncasecmp(rs->url, "https:", 6) == 0 && strncasecmp(abs, "https:", 6) != 0;
	bool web = strncasecmp(abs, "https:", 6) == 0 || strncasecmp(abs, "http:", 5) == 0;
	if (down || !web) {
		int rc = ocil_error_set(err, OCIL_E_REGISTRY,
					"%s: %s: refusing an upload location %.200s from %s",
					r->name, o->what, abs, rs->url);
		curl_free(abs);
		return rc;
	}
	*out = ocil_xstrdup(abs);
	curl_free(abs);
	return 0;
}

/* location?digest=… or location?their=query&digest=… */
static char *with_digest(const char *location, const char *digest)
{
	const char *q = strchr(location, '?');
	const char *sep = q == NULL						 ? "?"
			  : (q[1] == '\0' || ocil_str_has_suffix(location, "&")) ? ""
										 : "&";
	/* Escaped as Go clients do (docker, containerd, skopeo). */
	return ocil_xasprintf("%s%sdigest=sha256%%3A%s", location, sep, ocil_digest_hex(digest));
}

/* Tell the registry an upload session is abandoned. Failures do not
 * matter (the registry expires sessions anyway), so they are dropped. */
static void cancel_session(ocil_registry *r, const char *url)
{
	if (url == NULL || (r->o.cancel && r->o.cancel->flag && *r->o.cancel->flag))
		return;
	int retries = 0;
	op o = {.r = r,
		.what = "cancelling an upload",
		.deadline_ms = ocil_http_now_ms() + SESSION_DELETE_TIMEOUT_S * 1000,
		.retries_used = &retries,
		.push = true,
		.discard = true};
	cleanup_resp resp rs = {.o = &o};
	req q = {.method = "DELETE",
		 .url = url,
		 .url_on_registry = true,
		 .authz = r->authz,
		 .once = true};
	cleanup_error ocil_error *ignored = NULL;
	request(&o, &q, &rs, &ignored);
}

/* HEAD of a blob: *found, and *size the length the registry gives (-1 when
 * it gives none). push: a failure is worded as a push's. */
static int blob_head(ocil_registry *r, const char *digest, bool push, bool *found, int64_t *size,
		     ocil_error **err)
{
	cleanup_free char *what = ocil_xasprintf("blob %s", digest);
	cleanup_free char *path = ocil_xasprintf("/v2/%s/blobs/%s", r->repo, digest);
	int retries = 0;
	op o = {.r = r,
		.what = what,
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.discard = true};
	cleanup_resp resp rs = {.o = &o};
	req q = {.method = "HEAD", .path = path};
	if (registry_request(&o, &q, &rs, err) < 0)
		return -1;
	*found = false;
	*size = -1;
	if (rs.status == 404)
		return 0;
	if (rs.status != 200)
		return push ? push_error(&o, &rs, false, err) : http_error(&o, &rs, err);
	*found = true;
	*size = rs.content_length;
	return 0;
}

int ocil_registry_blob_exists(ocil_registry *r, const ocil_descriptor *d, bool *exists,
			      ocil_error **err)
{
	bool found = false;
	int64_t size = -1;
	if (check_descriptor(r, d, err) < 0 ||
	    blob_head(r, d->digest, true, &found, &size, err) < 0)
		return -1;
	if (found && size >= 0 && size != d->size) {
		notice(r, "%s: blob %s has %lld bytes there, expected %lld: uploading it again",
		       r->name, d->digest, (long long)size, (long long)d->size);
		found = false;
	}
	*exists = found;
	return 0;
}

int ocil_registry_blob_size(ocil_registry *r, const char *digest, int64_t *size, ocil_error **err)
{
	ocil_descriptor d = {.digest = "", .size = 0};
	snprintf(d.digest, sizeof(d.digest), "%s", digest);
	bool found = false;
	if (check_descriptor(r, &d, err) < 0 || blob_head(r, digest, false, &found, size, err) < 0)
		return -1;
	return 0;
}

int ocil_registry_mount_blob(ocil_registry *r, const ocil_descriptor *d, const char *from_repo,
			     bool *mounted, ocil_error **err)
{
	if (check_descriptor(r, d, err) < 0)
		return -1;
	if (from_repo == NULL || !valid_repository(from_repo))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid repository name \"%s\"",
				      r->host, from_repo ? from_repo : "");
	cleanup_free char *what = ocil_xasprintf("blob %s (mount from %s)", d->digest, from_repo);
	char *esc_from = curl_easy_escape(r->curl, from_repo, 0);
	cleanup_free char *path =
	    ocil_xasprintf("/v2/%s/blobs/uploads/?mount=sha256%%3A%s&from=%s", r->repo,
			   ocil_digest_hex(d->digest), esc_from ? esc_from : "");
	curl_free(esc_from);
	int retries = 0;
	op o = {.r = r,
		.what = what,
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.push = true,
		.mount_from = from_repo,
		.discard = true};
	cleanup_resp resp rs = {.o = &o};
	req q = {.method = "POST", .path = path};
	if (registry_request(&o, &q, &rs, err) < 0)
		return -1;
	if (rs.status == 201) {
		if (check_docker_digest(&o, &rs, d->digest, err) < 0)
			return -1;
		*mounted = true;
		return 0;
	}
	if (rs.status >= 300 || rs.status < 200)
		return push_error(&o, &rs, true, err);
	/* Not mounted: the registry opened an upload session instead. */
	cleanup_free char *session = NULL;
	cleanup_error ocil_error *ignored = NULL;
	if (rs.location != NULL && session_location(&o, &rs, &session, &ignored) == 0)
		cancel_session(r, session);
	*mounted = false;
	return 0;
}

/* One attempt at an upload. */
typedef struct {
	char *session;	  /* the upload's current URL */
	bool answered;	  /* the registry answered the last request */
	char *why;	  /* set (with the error) when the upload is worth another try */
	long retry_after; /* for backoff */
} attempt;

static void attempt_clear(attempt *a)
{
	free(a->session);
	free(a->why);
	memset(a, 0, sizeof(*a));
}

/* One PATCH or PUT of an upload. 1: a failure worth trying the whole upload
 * again for (a->why set, *err the message). */
static int upload_step(op *o, const req *q, resp *rs, attempt *a, ocil_error **err)
{
	int rc = registry_request(o, q, rs, err);
	a->answered = rs->status != 0;
	if (rc == 0)
		return 0;
	if (rs->retry_why == NULL)
		return -1;
	a->why = steal_pointer(&rs->retry_why);
	a->retry_after = rs->retry_ra;
	return 1;
}

/* An answer to a PATCH or PUT that is not success. The session gone
 * (expired, or another replica) or out of step is worth a new one. */
static int upload_refused(op *o, const resp *rs, attempt *a, ocil_error **err)
{
	bool lost =
	    rs->status == 416 ||
	    (rs->status == 404 && (has_error_code(rs, "BLOB_UPLOAD_UNKNOWN") || rs->elen == 0));
	if (!lost)
		return push_error(o, rs, false, err);
	bool unused = false;
	cleanup_free char *msg = registry_errors(rs->ebuf, rs->elen, &unused);
	a->why = status_text(rs);
	a->retry_after = 0;
	ocil_error_set(err, OCIL_E_REGISTRY, "%s: %s: upload session lost: %s", o->r->name, o->what,
		       msg ? msg : a->why);
	return 1;
}

/* A file that is not the blob is the caller's problem, not the registry's. */
static int check_file_digest(op *o, req_body *bd, const ocil_descriptor *d, ocil_error **err)
{
	const char *got = body_digest(bd);
	if (got == NULL || strcmp(got, d->digest) == 0)
		return 0;
	return ocil_error_set(err, OCIL_E_INPUT, "%s: %s: content is %s, not the blob's digest",
			      o->r->name, bd->path, got);
}

/* Registries tell which bytes they have as "0-<last>" ("bytes=0-<last>"
 * from some). */
static bool range_ends_at(const char *range, uint64_t last)
{
	unsigned long long a = 0, b = 0;
	int used = 0;
	if (ocil_str_has_prefix(range, "bytes="))
		range += 6;
	return sscanf(range, "%llu-%llu%n", &a, &b, &used) == 2 && range[used] == '\0' && a == 0 &&
	       b == last;
}

/* A new upload session (POST) in a->session; *part is floor, or the
 * registry's OCI-Chunk-Min-Length when that is more (within reason). */
static int session_open(op *o, attempt *a, uint64_t floor, uint64_t *part, ocil_error **err)
{
	cleanup_free char *path = ocil_xasprintf("/v2/%s/blobs/uploads/", o->r->repo);
	cleanup_resp resp rs = {.o = o};
	req post = {.method = "POST", .path = path};
	if (registry_request(o, &post, &rs, err) < 0)
		return -1;
	if (rs.status != 202)
		return push_error(o, &rs, true, err);
	if (session_location(o, &rs, &a->session, err) < 0)
		return -1;
	unsigned long long min = 0;
	*part = floor;
	if (rs.chunk_min != NULL && sscanf(rs.chunk_min, "%llu", &min) == 1 && min > floor &&
	    min <= CHUNK_MIN_MAX)
		*part = min;
	return 0;
}

/* PATCH bytes off..off+n-1 of bd to the session: upload_step's answer,
 * the response in rs. */
static int part_send(op *o, attempt *a, req_body *bd, uint64_t off, uint64_t n, resp *rs,
		     ocil_error **err)
{
	cleanup_free char *range =
	    ocil_xasprintf("%llu-%llu", (unsigned long long)off, (unsigned long long)(off + n - 1));
	bd->off = off;
	bd->len = n;
	req q = {.method = "PATCH",
		 .url = a->session,
		 .url_on_registry = true,
		 .content_type = OCTET_STREAM,
		 .content_range = range,
		 .body = bd,
		 .once = true};
	return upload_step(o, &q, rs, a, err);
}

/* The answer rs to a PATCH of bytes off..off+n-1: the registry has every
 * byte up to there, and the session goes on where it says. */
static int part_taken(op *o, const resp *rs, attempt *a, uint64_t off, uint64_t n, ocil_error **err)
{
	if (rs->status != 202 && rs->status != 204)
		return upload_refused(o, rs, a, err);
	if (rs->range != NULL && !range_ends_at(rs->range, off + n - 1)) {
		a->why = ocil_xasprintf("registry has Range %.40s", rs->range);
		a->retry_after = 0;
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s: %s: after sending bytes %llu-%llu the registry reports "
				      "Range %.80s",
				      o->r->name, o->what, (unsigned long long)off,
				      (unsigned long long)(off + n - 1), rs->range);
	}
	if (rs->location != NULL) {
		char *next = NULL;
		if (session_location(o, rs, &next, err) < 0)
			return -1;
		free(a->session);
		a->session = next;
	}
	return 0;
}

/* The answer rs to the closing PUT: the blob is there under digest, the
 * session over (nothing to cancel). */
static int session_closed(op *o, const resp *rs, attempt *a, const char *digest, ocil_error **err)
{
	if (rs->status < 200 || rs->status >= 300)
		return upload_refused(o, rs, a, err);
	if (check_docker_digest(o, rs, digest, err) < 0)
		return -1;
	free(steal_pointer(&a->session));
	return 0;
}

static int upload_attempt(op *o, const ocil_descriptor *d, req_body *bd, uint64_t chunk, attempt *a,
			  ocil_error **err)
{
	if (session_open(o, a, chunk, &chunk, err) < 0)
		return -1;
	cleanup_resp resp rs = {.o = o};
	uint64_t size = (uint64_t)d->size;
	bool chunked = size > chunk;
	for (uint64_t off = 0; chunked && off < size; off += chunk) {
		uint64_t n = size - off < chunk ? size - off : chunk;
		int rc = part_send(o, a, bd, off, n, &rs, err);
		if (rc != 0)
			return rc;
		rc = part_taken(o, &rs, a, off, n, err);
		if (rc != 0)
			return rc;
	}
	/* Everything went through in a chunked upload: check before it is
	 * committed. */
	if (chunked && check_file_digest(o, bd, d, err) < 0)
		return -1;
	cleanup_free char *url = with_digest(a->session, d->digest);
	bd->off = 0;
	bd->len = size;
	req put = {.method = "PUT",
		   .url = url,
		   .url_on_registry = true,
		   .content_type = chunked ? NULL : OCTET_STREAM,
		   .body = chunked ? NULL : bd,
		   .once = true};
	int rc = upload_step(o, &put, &rs, a, err);
	/* Monolithic: the registry's DIGEST_INVALID says less than this. */
	if (!chunked && rc != 1 && check_file_digest(o, bd, d, err) < 0)
		return -1;
	if (rc != 0)
		return rc;
	return session_closed(o, &rs, a, d->digest, err);
}

/* After an attempt at an upload (rc: the attempt's answer, e its error):
 * 0 done, -1 failed (*err set), 1 to try again, after the backoff. A
 * session abandoned is cancelled when the registry is there to hear it. */
static int attempt_over(op *o, attempt *a, int rc, bool abandoned, ocil_error *e, ocil_error **err)
{
	if (abandoned && a->answered)
		cancel_session(o->r, a->session);
	if (rc <= 0) {
		attempt_clear(a);
		if (rc == 0)
			return 0;
		if (err != NULL && *err == NULL)
			*err = e;
		else
			ocil_error_free(e);
		return -1;
	}
	rc = backoff(o, a->why, e->msg, a->retry_after, err);
	ocil_error_free(e);
	attempt_clear(a);
	return rc < 0 ? -1 : 1;
}

static void hasher_freep(ocil_hasher **h)
{
	ocil_hasher_free(*h);
}

static int push_file(ocil_registry *r, const ocil_descriptor *d, const char *path, uint64_t chunk,
		     ocil_error **err)
{
	if (check_descriptor(r, d, err) < 0)
		return -1;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s: blob %s: %s", r->name,
					    d->digest, path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", path);
	if (!S_ISREG(st.st_mode) || st.st_size != d->size)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: blob %s: %s has %lld bytes, expected %lld", r->name,
				      d->digest, path, (long long)st.st_size, (long long)d->size);
	cleanup_free char *what = ocil_xasprintf("blob %s", d->digest);
	int retries = 0;
	op o = {.r = r,
		.what = what,
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.push = true,
		.discard = true};
	__attribute__((cleanup(hasher_freep))) ocil_hasher *h = ocil_hasher_new();
	req_body bd = {
	    .fd = fd, .path = path, .digest = d->digest, .total = (uint64_t)d->size, .h = h};
	for (;;) {
		attempt a = {0};
		ocil_error *e = NULL;
		int rc = upload_attempt(&o, d, &bd, chunk, &a, &e);
		rc = attempt_over(&o, &a, rc, rc != 0, e, err);
		if (rc <= 0)
			return rc;
	}
}

int ocil_registry_push_blob(ocil_registry *r, const ocil_descriptor *d, const char *path,
			    ocil_error **err)
{
	return push_file(r, d, path, r->o.chunk_size > 0 ? r->o.chunk_size : CHUNK_DEFAULT, err);
}

int ocil_registry_push_blob_whole(ocil_registry *r, const ocil_descriptor *d, const char *path,
				  ocil_error **err)
{
	return push_file(r, d, path, UINT64_MAX, err);
}

int ocil_registry_put_manifest(ocil_registry *r, const char *reference, const char *body_buf,
			       size_t len, const char *media_type,
			       char digest_out[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	bool by_digest = ocil_digest_valid(reference);
	if (!by_digest && !ocil_ref_tag_valid(reference))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid tag or digest \"%s\"",
				      r->name, reference);
	if (len > OCIL_JSON_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: manifest %s: larger than %zu bytes",
				      r->name, reference, (size_t)OCIL_JSON_MAX);
	bool mt_ok = media_type != NULL && *media_type != '\0' && strlen(media_type) <= 255;
	for (const char *p = media_type; mt_ok && *p != '\0'; p++)
		mt_ok = *p > 0x20 && *p < 0x7f;
	if (!mt_ok)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: manifest %s: invalid media type",
				      r->name, reference);
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(body_buf, len, got);
	if (by_digest && strcmp(got, reference) != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: manifest %s: content is %s", r->name,
				      reference, got);
	cleanup_free char *what = ocil_xasprintf("manifest %s", reference);
	cleanup_free char *path = ocil_xasprintf("/v2/%s/manifests/%s", r->repo, reference);
	int retries = 0;
	op o = {.r = r,
		.what = what,
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.push = true,
		.discard = true};
	cleanup_resp resp rs = {.o = &o};
	req_body bd = {.buf = body_buf, .len = len};
	req q = {.method = "PUT", .path = path, .content_type = media_type, .body = &bd};
	if (registry_request(&o, &q, &rs, err) < 0)
		return -1;
	if (rs.status < 200 || rs.status >= 300)
		return push_error(&o, &rs, false, err);
	if (check_docker_digest(&o, &rs, got, err) < 0)
		return -1;
	memcpy(digest_out, got, OCIL_DIGEST_STR_SIZE);
	return 0;
}

/* --- concurrent transfers (issue 18) --- */

static char *dup_or_null(const char *s)
{
	return s ? ocil_xstrdup(s) : NULL;
}

int ocil_registry_clone(const ocil_registry *r, const ocil_cancel *cancel, ocil_registry **out,
			ocil_error **err)
{
	ocil_registry *c = ocil_xcalloc(1, sizeof(*c));
	c->host = ocil_xstrdup(r->host);
	c->hostname = ocil_xstrdup(r->hostname);
	c->repo = ocil_xstrdup(r->repo);
	c->name = ocil_xstrdup(r->name);
	c->o = r->o;
	c->o.cancel = cancel;
	c->authfile = dup_or_null(r->authfile);
	c->o.authfile = c->authfile;
	c->talked = r->talked;
	c->may_use_http = r->may_use_http;
	c->scheme_known = r->scheme_known;
	c->plain_http = r->plain_http;
	c->authz = dup_or_null(r->authz);
	c->authz_with_creds = r->authz_with_creds;
	c->creds_loaded = r->creds_loaded;
	c->creds_found = r->creds_found;
	c->creds.username = dup_or_null(r->creds.username);
	c->creds.password = dup_or_null(r->creds.password);
	if (r->ca != NULL) {
		c->ca = ocil_xmalloc(r->ca_len + 1);
		memcpy(c->ca, r->ca, r->ca_len);
		c->ca[r->ca_len] = '\0';
		c->ca_len = r->ca_len;
	}
	if (curl_start(c, err) < 0) {
		ocil_registry_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

bool ocil_registry_used(const ocil_registry *r)
{
	return r->talked;
}

int ocil_registry_login(ocil_registry *r, ocil_error **err)
{
	int retries = 0;
	op o = {.r = r,
		.what = "API check",
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.push = r->o.push,
		.discard = true};
	cleanup_resp resp rs = {.o = &o};
	req q = {.path = "/v2/"};
	return registry_request(&o, &q, &rs, err);
}

uint64_t ocil_registry_stream_part_max(uint64_t part_min)
{
	return part_min > OCIL_REGISTRY_STREAM_PART_MAX ? part_min : OCIL_REGISTRY_STREAM_PART_MAX;
}

/* Wait until the stream has at least want bytes, or is finished. */
static int stream_wait(const ocil_blob_stream *s, uint64_t want, ocil_blob_stream_state *st,
		       ocil_error **err)
{
	while (!st->done && st->size < want)
		if (s->wait(s->data, st->size, st, err) < 0)
			return -1;
	return 0;
}

static int stream_attempt(op *o, const ocil_blob_stream *s, req_body *bd,
			  ocil_blob_stream_state *st, attempt *a, bool *refused, ocil_error **err)
{
	ocil_registry *r = o->r;
	o->deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000;
	uint64_t min = 0;
	if (session_open(o, a, OCIL_REGISTRY_STREAM_PART_MIN, &min, err) < 0)
		return -1;
	uint64_t max = ocil_registry_stream_part_max(min);
	if (s->acked != NULL)
		s->acked(s->data, 0, min);
	cleanup_resp resp rs = {.o = o};
	uint64_t off = 0;
	for (bool first = true;; first = false) {
		if (stream_wait(s, off + min, st, err) < 0)
			return -1;
		uint64_t n = st->size - off;
		if (n == 0)
			break; /* done, everything sent */
		if (n > max)
			n = max;
		if (st->done)
			bd->total = st->size;
		o->deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000;
		int rc = part_send(o, a, bd, off, n, &rs, err);
		if (rc != 0)
			return rc;
		if (first && rs.status >= 400 && rs.status < 500 && rs.status != 401 &&
		    rs.status != 403 && rs.status != 404 && rs.status != 408 && rs.status != 416 &&
		    rs.status != 429) {
			/* A registry without chunked uploads: the caller sends the
			 * whole blob once it is finished. */
			*refused = true;
			return 0;
		}
		rc = part_taken(o, &rs, a, off, n, err);
		if (rc != 0)
			return rc;
		off += n;
		if (s->acked != NULL)
			s->acked(s->data, off, min);
		if (st->done && off == st->size)
			break;
	}
	/* every byte went through, hashed in order: the writer's digest? */
	bd->total = st->size;
	const char *got = body_digest(bd);
	if (got == NULL || strcmp(got, st->digest) != 0)
		return ocil_error_set(err, OCIL_E_IO,
				      "%s: %s: the bytes sent are %s, not the blob written (%s)",
				      r->name, s->what, got ? got : "incomplete", st->digest);
	cleanup_free char *url = with_digest(a->session, st->digest);
	req put = {.method = "PUT", .url = url, .url_on_registry = true, .once = true};
	o->deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000;
	int rc = upload_step(o, &put, &rs, a, err);
	if (rc != 0)
		return rc;
	return session_closed(o, &rs, a, st->digest, err);
}

int ocil_registry_push_stream(ocil_registry *r, const ocil_blob_stream *s, ocil_descriptor *d,
			      bool *refused, ocil_error **err)
{
	*refused = false;
	cleanup_free char *what = ocil_xasprintf("blob %s", s->label);
	int retries = 0;
	op o = {.r = r,
		.what = what,
		.deadline_ms = ocil_http_now_ms() + r->o.timeout_s * 1000,
		.retries_used = &retries,
		.push = true,
		.discard = true};
	__attribute__((cleanup(hasher_freep))) ocil_hasher *h = ocil_hasher_new();
	req_body bd = {.fd = s->fd, .path = s->what, .digest = s->label, .h = h};
	ocil_blob_stream_state st = {0};
	for (;;) {
		attempt a = {0};
		ocil_error *e = NULL;
		int rc = stream_attempt(&o, s, &bd, &st, &a, refused, &e);
		/* what is written stays written: only the upload starts over */
		rc = attempt_over(&o, &a, rc, rc != 0 || *refused, e, err);
		if (rc == 0 && !*refused) {
			memcpy(d->digest, st.digest, OCIL_DIGEST_STR_SIZE);
			d->size = (int64_t)st.size;
		}
		if (rc <= 0)
			return rc;
	}
}
