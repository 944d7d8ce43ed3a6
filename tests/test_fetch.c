/* The package fetcher (fetch.c) and the HTTP rules it shares with the
 * registry client (http.c): mirrors, masking of secrets, file:// URLs, the
 * retry budget, and downloads from a tiny HTTP/1.1 server in a thread of the
 * test (one connection at a time, Connection: close, every request logged),
 * listening on 127.0.0.1 and on 127.0.0.2 (another host, for redirects). */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "base/util.h"
#include "registry/fetch.h"
#include "registry/http.h"
#include "test.h"

/* --- the server --- */

typedef struct {
	char path[1024];
	char authz[512];
	char range[64];
	int listener; /* 0: 127.0.0.1, 1: 127.0.0.2 */
} sreq;

typedef struct srv srv;
typedef void (*handler_fn)(srv *s, const sreq *q, int fd);
#define LOG_MAX 64

struct srv {
	int lfd[2], port[2];
	pthread_t th;
	atomic_int stop;
	handler_fn h;
	pthread_mutex_t mu;
	sreq log[LOG_MAX];
	int n;
	int state; /* for handlers */
	char *body;
	size_t len;
	char sha256[65], md5[33];
};

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

/* Status line and headers (Content-Length cl, or none when cl < 0); extra
 * is "Name: value\r\n" lines or "". */
static void head(int fd, int st, long long cl, const char *extra)
{
	const char *why = st == 200   ? "OK"
			  : st == 206 ? "Partial Content"
			  : st == 302 ? "Found"
			  : st == 401 ? "Unauthorized"
			  : st == 404 ? "Not Found"
			  : st == 503 ? "Service Unavailable"
				      : "Whatever";
	cleanup_free char *cls =
	    cl >= 0 ? ocil_xasprintf("Content-Length: %lld\r\n", cl) : ocil_xstrdup("");
	cleanup_free char *h =
	    ocil_xasprintf("HTTP/1.1 %d %s\r\n%sConnection: close\r\n%s\r\n", st, why, cls, extra);
	send_all(fd, h, strlen(h));
}

static void reply(int fd, int st, const char *extra, const void *body, size_t len)
{
	head(fd, st, (long long)len, extra);
	send_all(fd, body, len);
}

static void header_value(const char *hdrs, const char *name, char *out, size_t max)
{
	out[0] = '\0';
	size_t nl = strlen(name);
	for (const char *p = hdrs; *p != '\0';) {
		const char *eol = strstr(p, "\r\n");
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, max, "%.*s", (int)(eol - v), v);
			return;
		}
		p = eol + 2;
	}
}

static void handle_conn(srv *s, int fd, int which)
{
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[8192] = "";
	size_t n = 0;
	while (n < sizeof(buf) - 1 && strstr(buf, "\r\n\r\n") == NULL) {
		ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (r <= 0)
			return;
		n += (size_t)r;
		buf[n] = '\0';
	}
	sreq q = {.listener = which};
	char method[16];
	if (sscanf(buf, "%15s %1023s", method, q.path) != 2)
		return;
	const char *hdrs = strstr(buf, "\r\n");
	header_value(hdrs ? hdrs + 2 : "", "Authorization", q.authz, sizeof(q.authz));
	header_value(hdrs ? hdrs + 2 : "", "Range", q.range, sizeof(q.range));
	pthread_mutex_lock(&s->mu);
	if (s->n < LOG_MAX)
		s->log[s->n++] = q;
	pthread_mutex_unlock(&s->mu);
	s->h(s, &q, fd);
}

static void *srv_main(void *arg)
{
	srv *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd p[2] = {{.fd = s->lfd[0], .events = POLLIN},
				      {.fd = s->lfd[1], .events = POLLIN}};
		if (poll(p, 2, 20) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int fd = accept4(s->lfd[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			handle_conn(s, fd, i);
			shutdown(fd, SHUT_WR);
			close(fd);
		}
	}
	return NULL;
}

static int listen_on(const char *addr, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, addr, &sa.sin_addr);
	socklen_t sl = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("test server");
		abort();
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static void hex(const unsigned char *d, unsigned n, char *out)
{
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void srv_start(srv *s, handler_fn h)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->lfd[0] = listen_on("127.0.0.1", &s->port[0]);
	s->lfd[1] = listen_on("127.0.0.2", &s->port[1]);
	s->h = h;
	/* The package: 200000 bytes that are not all one byte. */
	s->len = 200000;
	s->body = ocil_xmalloc(s->len);
	for (size_t i = 0; i < s->len; i++)
		s->body[i] = (char)((i * 7919) >> 5);
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dn = 0;
	EVP_Digest(s->body, s->len, d, &dn, EVP_sha256(), NULL);
	hex(d, dn, s->sha256);
	EVP_Digest(s->body, s->len, d, &dn, EVP_md5(), NULL);
	hex(d, dn, s->md5);
	pthread_create(&s->th, NULL, srv_main, s);
}

static void srv_stop(srv *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	close(s->lfd[0]);
	close(s->lfd[1]);
	pthread_mutex_destroy(&s->mu);
	free(s->body);
}
#define cleanup_srv __attribute__((cleanup(srv_stop)))

static char *url_of(srv *s, int which, const char *path)
{
	return ocil_xasprintf("http://127.0.0.%d:%d%s", which + 1, s->port[which], path);
}

/* --- the client side --- */

typedef struct {
	char text[8192];
	int count;
} notes;

static void on_notice(void *data, const char *msg)
{
	notes *n = data;
	n->count++;
	size_t used = strlen(n->text);
	snprintf(n->text + used, sizeof(n->text) - used, "%s\n", msg);
}

static ocil_fetch_opts opts(notes *n)
{
	static const char *const proxies[] = {"http_proxy", "https_proxy", "all_proxy",
					      "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"};
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	return (ocil_fetch_opts){
	    .tls_verify = true, .retries = 3, .timeout_s = 30, .notice = on_notice, .data = n};
}

static ocil_blobstore *new_store(const char *name)
{
	cleanup_free char *dir = ocil_xasprintf("%s/%s", ocil_test_tmpdir(), name);
	ocil_blobstore *bs = NULL;
	ocil_error *err = NULL;
	if (ocil_blobstore_open(dir, &bs, &err) < 0)
		abort();
	return bs;
}

/* Files in blobs/sha256, temporary ones included. */
static int store_entries(ocil_blobstore *bs)
{
	cleanup_free char *dir = ocil_xasprintf("%s/blobs/sha256", ocil_blobstore_root(bs));
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d)) != NULL;)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	if (d)
		closedir(d);
	return n;
}

/* --- pure functions --- */

static void mirrors(void)
{
	ocil_error *err = NULL;
	ocil_mirror m[3];
	CHECK_OK(ocil_mirror_parse("https://conda.anaconda.org/conda-forge/=https://m.example/cf",
				   &m[0], &err),
		 &err);
	CHECK_STREQ(m[0].from, "https://conda.anaconda.org/conda-forge");
	CHECK_STREQ(m[0].to, "https://m.example/cf");
	CHECK_OK(ocil_mirror_parse("https://conda.anaconda.org=file:///srv/mirror", &m[1], &err),
		 &err);
	CHECK_OK(ocil_mirror_parse("https://conda.anaconda.org/conda-forge/noarch=http://n.example",
				   &m[2], &err),
		 &err);
	char *u =
	    ocil_mirror_apply(m, 3, "https://conda.anaconda.org/conda-forge/linux-64/a.conda");
	CHECK_STREQ(u, "https://m.example/cf/linux-64/a.conda");
	free(u);
	/* the longest FROM wins, whatever the order */
	u = ocil_mirror_apply(m, 3, "https://conda.anaconda.org/conda-forge/noarch/b.conda");
	CHECK_STREQ(u, "http://n.example/b.conda");
	free(u);
	u = ocil_mirror_apply(m, 3, "https://conda.anaconda.org/bioconda/noarch/c.conda");
	CHECK_STREQ(u, "file:///srv/mirror/bioconda/noarch/c.conda");
	free(u);
	/* only at a '/' boundary */
	u = ocil_mirror_apply(m, 3, "https://conda.anaconda.org/conda-forge-extra/x.conda");
	CHECK_STREQ(u, "file:///srv/mirror/conda-forge-extra/x.conda");
	free(u);
	u = ocil_mirror_apply(m, 3, "https://other.example/x.conda");
	CHECK_STREQ(u, "https://other.example/x.conda");
	free(u);
	for (int i = 0; i < 3; i++)
		ocil_mirror_clear(&m[i]);
	static const char *const bad[] = {"https://a.example",
					  "https://a.example=",
					  "=https://b.example",
					  "a.example=https://b.example",
					  "https://a.example=ftp://b.example",
					  "file:///x=https://b.example",
					  "https://=https://b.example",
					  "https://a.example=https://b.example/ x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ocil_mirror x;
		CHECK_FAIL(ocil_mirror_parse(bad[i], &x, &err), &err, OCIL_E_USAGE, "want FROM=TO");
	}
}

static void redaction(void)
{
	struct {
		const char *url, *want;
	} cases[] = {
	    {"https://conda.anaconda.org/t/tk-123-abc/conda-forge/linux-64/a.conda",
	     "https://conda.anaconda.org/t/***/conda-forge/linux-64/a.conda"},
	    {"https://user:pa55@host.example/t/tok/c/t/tok2/x.conda",
	     "https://user:***@host.example/t/***/c/t/***/x.conda"},
	    {"https://user@host.example/a/t/", "https://user@host.example/a/t/"},
	    {"https://host.example/x.conda?t=/t/q/", "https://host.example/x.conda?t=/t/q/"},
	    {"file:///srv/t/x/a.conda", "file:///srv/t/***/a.conda"},
	    {"not a url", "not a url"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cleanup_free char *got = ocil_url_redact(cases[i].url);
		CHECK_STREQ(got, cases[i].want);
	}
	/* what an image records: no credentials, no token segment */
	struct {
		const char *url, *want;
	} pub[] = {
	    {"https://conda.anaconda.org/t/tk-123-abc/conda-forge/linux-64/a.conda",
	     "https://conda.anaconda.org/conda-forge/linux-64/a.conda"},
	    {"https://user:pa55@host.example:8443/t/tok/c/t/tok2/x.conda",
	     "https://host.example:8443/c/x.conda"},
	    {"https://user@host.example/a/t/", "https://host.example/a/t/"},
	    {"https://host.example/x.conda?t=/t/q/", "https://host.example/x.conda?t=/t/q/"},
	    {"file:///srv/t/x/a.conda", "file:///srv/a.conda"},
	    {"not a url", "not a url"},
	};
	for (size_t i = 0; i < sizeof(pub) / sizeof(pub[0]); i++) {
		cleanup_free char *got = ocil_url_public(pub[i].url);
		CHECK_STREQ(got, pub[i].want);
	}
	cleanup_strv ocil_strv sec = {0};
	ocil_url_secrets("https://u:pw@h.example/t/tok/x", &sec);
	CHECK(sec.n == 2);
	cleanup_free char *m =
	    ocil_mask_secrets("failed for https://u:pw@h.example/t/tok/x: tok tok", &sec);
	CHECK_STREQ(m, "failed for https://u:***@h.example/t/***/x: *** ***");
	/* a secret that "***" contains does not loop */
	ocil_strv star = {0};
	ocil_strv_push(&star, ocil_xstrdup("*"));
	cleanup_free char *m2 = ocil_mask_secrets("a*b", &star);
	CHECK_STREQ(m2, "a***b");
	ocil_strv_clear(&star);
}

static void file_urls(void)
{
	cleanup_free char *a = ocil_file_url_path("file:///srv/ch/linux-64/a%20b.conda");
	CHECK_STREQ(a, "/srv/ch/linux-64/a b.conda");
	cleanup_free char *b = ocil_file_url_path("file://localhost/srv/x.conda");
	CHECK_STREQ(b, "/srv/x.conda");
	CHECK(ocil_file_url_path("file://otherhost/srv/x.conda") == NULL);
	CHECK(ocil_file_url_path("https://h.example/x.conda") == NULL);
}

static void http_rules(void)
{
	CHECK(ocil_http_is_loopback("127.0.0.1"));
	CHECK(ocil_http_is_loopback("127.1.2.3"));
	CHECK(ocil_http_is_loopback("LocalHost"));
	CHECK(ocil_http_is_loopback("[::1]"));
	CHECK(!ocil_http_is_loopback("128.0.0.1"));
	CHECK(!ocil_http_is_loopback("localhost.example"));
	CHECK(!ocil_http_is_loopback("[::2]"));
	CHECK(!ocil_http_is_loopback("["));
	ocil_error *err = NULL;
	long d = -1;
	long long far = ocil_http_now_ms() + 3600 * 1000;
	CHECK_OK(ocil_http_retry_delay(0, 3, far, 600, -1, "x", &d, &err), &err);
	CHECK(d == 1);
	CHECK_OK(ocil_http_retry_delay(2, 3, far, 600, -1, "x", &d, &err), &err);
	CHECK(d == 4);
	CHECK_OK(ocil_http_retry_delay(9, 20, far, 600, -1, "x", &d, &err), &err);
	CHECK(d == OCIL_HTTP_BACKOFF_MAX_S);
	CHECK_OK(ocil_http_retry_delay(0, 3, far, 600, 7, "x", &d, &err), &err);
	CHECK(d == 7);
	CHECK_FAIL(ocil_http_retry_delay(3, 3, far, 600, -1, "boom", &d, &err), &err,
		   OCIL_E_REGISTRY, "boom (gave up after 4 attempts)");
	CHECK_FAIL(ocil_http_retry_delay(0, 3, ocil_http_now_ms() + 500, 9, -1, "boom", &d, &err),
		   &err, OCIL_E_REGISTRY, "boom (no time left to retry within 9 s)");
	CHECK(ocil_http_retry_after_s(true, 5) == 5);
	CHECK(ocil_http_retry_after_s(true, 99999) == OCIL_HTTP_RETRY_AFTER_MAX_S);
	CHECK(ocil_http_retry_after_s(true, -3600) == 0);
	CHECK(ocil_http_retry_after_s(false, 5) == -1);
}

/* --- response headers through libcurl's header API --- */

static void h_headers(srv *s, const sreq *q, int fd)
{
	static const struct {
		const char *path, *raw;
	} answers[] = {
	    {"/ra-5", "HTTP/1.1 503 Busy\r\nRetry-After:   5  \r\n"},
	    {"/ra-big", "HTTP/1.1 429 Slow down\r\nRetry-After: 99999\r\n"},
	    {"/ra-soon", "HTTP/1.1 503 Busy\r\nRetry-After: soon\r\n"},
	    {"/ra-past", "HTTP/1.1 503 Busy\r\nRetry-After: Thu, 01 Jan 1970 00:00:00 GMT\r\n"},
	    /* a 1xx's headers are not the response's */
	    {"/continue", "HTTP/1.1 100 Continue\r\nRetry-After: 9\r\n\r\nHTTP/1.1 200 OK\r\n"},
	    {"/repeated", "HTTP/1.1 401 No\r\nWWW-Authenticate: Basic realm=\"a\"\r\n"
			  "Content-Type: text/plain\r\nwww-authenticate:  Bearer realm=\"b\" \r\n"
			  "Content-Type: application/json\r\n"},
	};
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		if (strcmp(q->path, answers[i].path) == 0) {
			send_all(fd, answers[i].raw, strlen(answers[i].raw));
			const char *end = "Content-Length: 0\r\nConnection: close\r\n\r\n";
			send_all(fd, end, strlen(end));
		}
}

typedef struct {
	CURL *c;
	long ra_in_cb; /* read at the end of the headers, as registry.c does */
	char *type, *www[4];
	size_t n_www;
} seen_headers;

static size_t on_header(char *b, size_t size, size_t n, void *data)
{
	seen_headers *h = data;
	long st = 0;
	curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &st);
	if (size * n <= 2 && st >= 200) {
		h->ra_in_cb = ocil_http_retry_after(h->c);
		h->type = ocil_http_header(h->c, "Content-Type");
		h->n_www = ocil_http_header_all(h->c, "WWW-Authenticate", h->www, 4);
	}
	return size * n;
}

/* What the header API gives for url: Retry-After from the callback, and
 * after the transfer (the same). */
static long retry_after_of(srv *s, const char *path, seen_headers *h)
{
	cleanup_free char *url = url_of(s, 0, path);
	memset(h, 0, sizeof(*h));
	h->c = curl_easy_init();
	curl_easy_setopt(h->c, CURLOPT_URL, url);
	curl_easy_setopt(h->c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h->c, CURLOPT_HEADERDATA, h);
	CURLcode rc = curl_easy_perform(h->c);
	long after = ocil_http_retry_after(h->c);
	curl_easy_cleanup(h->c);
	if (rc != CURLE_OK || after != h->ra_in_cb) {
		fprintf(stderr, "%s: %s, Retry-After %ld in the callback, %ld after\n", path,
			curl_easy_strerror(rc), h->ra_in_cb, after);
		return -2;
	}
	return after;
}

static void seen_clear(seen_headers *h)
{
	free(h->type);
	for (size_t i = 0; i < h->n_www; i++)
		free(h->www[i]);
}

static void response_headers(void)
{
	cleanup_srv srv s;
	srv_start(&s, h_headers);
	seen_headers h;
	CHECK(retry_after_of(&s, "/ra-5", &h) == 5);
	seen_clear(&h);
	CHECK(retry_after_of(&s, "/ra-big", &h) == OCIL_HTTP_RETRY_AFTER_MAX_S);
	seen_clear(&h);
	/* what libcurl cannot read, and a date past, mean now */
	CHECK(retry_after_of(&s, "/ra-soon", &h) == 0);
	seen_clear(&h);
	CHECK(retry_after_of(&s, "/ra-past", &h) == 0);
	seen_clear(&h);
	CHECK(retry_after_of(&s, "/continue", &h) == -1);
	seen_clear(&h);
	CHECK(retry_after_of(&s, "/repeated", &h) == -1);
	/* the last of a repeated header, every challenge in order, trimmed */
	bool ok = h.type != NULL && strcmp(h.type, "application/json") == 0 && h.n_www == 2 &&
		  strcmp(h.www[0], "Basic realm=\"a\"") == 0 &&
		  strcmp(h.www[1], "Bearer realm=\"b\"") == 0;
	if (!ok)
		fprintf(stderr, "type %s, %zu challenges: %s | %s\n", h.type, h.n_www,
			h.n_www > 0 ? h.www[0] : "", h.n_www > 1 ? h.www[1] : "");
	seen_clear(&h);
	CHECK(ok);
}

/* --- refused before any request --- */

static void h_never(srv *s, const sreq *q, int fd)
{
	reply(fd, 500, "", "no", 2);
}

static void refused_items(void)
{
	cleanup_srv srv s;
	srv_start(&s, h_never);
	notes n = {0};
	ocil_fetch_opts o = opts(&n);
	__attribute__((cleanup(ocil_blobstore_freep))) ocil_blobstore *bs = new_store("s");
	ocil_error *err = NULL;
	cleanup_free char *ok_url = url_of(&s, 0, "/a.conda");
	ocil_fetch_item it[2] = {
	    {.url = ok_url, .name = "a.conda", .md5 = s.md5, .size = -1},
	    {.url = "ftp://h.example/b.conda", .name = "b.conda", .md5 = s.md5, .size = -1}};
	size_t failed = 9;
	CHECK_FAIL(ocil_fetch_run(bs, it, 2, &o, &failed, &err), &err, OCIL_E_INPUT,
		   "b.conda: ftp://h.example/b.conda: is ftp://h.example/b.conda, which is not an "
		   "http(s) URL");
	CHECK(failed == 1);
	it[1].url = "http://pkgs.example/t/secret-token/b.conda";
	CHECK_FAIL(ocil_fetch_run(bs, it, 2, &o, &failed, &err), &err, OCIL_E_INPUT,
		   "b.conda: http://pkgs.example/t/***/b.conda: refusing plain http to "
		   "pkgs.example (use https, or --tls-verify=false)");
	it[1].url = ok_url;
	it[1].md5 = "123";
	CHECK_FAIL(ocil_fetch_run(bs, it, 2, &o, &failed, &err), &err, OCIL_E_INPUT,
		   "b.conda: "
		   "http://127.0.0.1:");
	it[1].md5 = NULL;
	CHECK_FAIL(ocil_fetch_run(bs, it, 2, &o, &failed, &err), &err, OCIL_E_INPUT,
		   "no valid sha256 or md5 to check it with");
	it[1].md5 = s.md5;
	o.offline = true;
	CHECK_FAIL(ocil_fetch_run(bs, it, 2, &o, &failed, &err), &err, OCIL_E_INPUT,
		   "a.conda: not in the cache (--offline)");
	CHECK(failed == 0);
	CHECK(s.n == 0);
	CHECK(store_entries(bs) == 0);
}

/* --- downloads --- */

/* The package at /pkg/..., 404 elsewhere. */
static void h_pkg(srv *s, const sreq *q, int fd)
{
	if (strncmp(q->path, "/pkg/", 5) != 0) {
		reply(fd, 404, "", "nope", 4);
		return;
	}
	unsigned long long from = 0;
	if (q->range[0] != '\0' && sscanf(q->range, "bytes=%llu-", &from) == 1 && from < s->len) {
		cleanup_free char *cr = ocil_xasprintf("Content-Range: bytes %llu-%zu/%zu\r\n",
						       from, s->len - 1, s->len);
		reply(fd, 206, cr, s->body + from, s->len - from);
		return;
	}
	reply(fd, 200, "", s->body, s->len);
}

static void downloads(void)
{
	cleanup_srv srv s;
	srv_start(&s, h_pkg);
	notes n = {0};
	ocil_fetch_opts o = opts(&n);
	__attribute__((cleanup(ocil_blobstore_freep))) ocil_blobstore *bs = new_store("s");
	ocil_error *err = NULL;
	cleanup_free char *u1 = url_of(&s, 0, "/pkg/a.conda");
	cleanup_free char *u2 = url_of(&s, 1, "/pkg/b.tar.bz2");
	cleanup_free char *u3 = url_of(&s, 0, "/pkg/c.whl");
	/* by md5 only, by sha256 only, both; the third the same blob: fetched once */
	ocil_fetch_item it[3] = {
	    {.url = u1, .name = "a.conda", .md5 = s.md5, .size = -1},
	    {.url = u2, .name = "b.tar.bz2", .sha256 = s.sha256, .size = -1},
	    {.url = u3, .name = "c.whl", .sha256 = s.sha256, .md5 = s.md5, .size = -1},
	};
	size_t failed = 9;
	CHECK_OK(ocil_fetch_run(bs, it, 3, &o, &failed, &err), &err);
	CHECK(failed == 3);
	CHECK(s.n == 2);
	char want[OCIL_DIGEST_STR_SIZE];
	snprintf(want, sizeof(want), "sha256:%s", s.sha256);
	for (int i = 0; i < 3; i++) {
		CHECK_STREQ(it[i].digest, want);
		CHECK(it[i].fetched);
	}
	CHECK(ocil_blobstore_has(bs, want));
	CHECK(store_entries(bs) == 1);
	CHECK(strstr(n.text, "using plain http for 127.0.0.1:") != NULL);
	CHECK(strstr(n.text, "using plain http for 127.0.0.2:") != NULL);
	CHECK(n.count == 2);
	/* the md5 index finds it again: nothing is asked */
	char d[OCIL_DIGEST_STR_SIZE];
	CHECK(ocil_fetch_find(bs, NULL, s.md5, d));
	CHECK_STREQ(d, want);
	o.offline = true;
	CHECK_OK(ocil_fetch_run(bs, it, 1, &o, &failed, &err), &err);
	CHECK(!it[0].fetched);
	CHECK_STREQ(it[0].digest, want);
	CHECK(s.n == 2);
}

/* 404 for everything; 503 once, then the package; dropped halfway once. */
static void h_faults(srv *s, const sreq *q, int fd)
{
	if (strstr(q->path, "/missing") != NULL) {
		reply(fd, 404, "", "nope", 4);
	} else if (strstr(q->path, "/busy") != NULL && s->state++ == 0) {
		reply(fd, 503, "Retry-After: 0\r\n", "busy", 4);
	} else if (strstr(q->path, "/drop") != NULL && q->range[0] == '\0') {
		head(fd, 200, (long long)s->len, "");
		send_all(fd, s->body, s->len / 2);
	} else if (strstr(q->path, "/corrupt") != NULL) {
		s->body[7] ^= 1;
		reply(fd, 200, "", s->body, s->len);
		s->body[7] ^= 1;
	} else if (strstr(q->path, "/big") != NULL) {
		head(fd, 200, -1, "");
		for (int i = 0; i < 10; i++)
			send_all(fd, s->body, s->len);
	} else {
		h_pkg(s, q, fd);
	}
}

static void faults(void)
{
	cleanup_srv srv s;
	srv_start(&s, h_faults);
	notes n = {0};
	ocil_fetch_opts o = opts(&n);
	__attribute__((cleanup(ocil_blobstore_freep))) ocil_blobstore *bs = new_store("s");
	ocil_error *err = NULL;
	size_t failed = 9;
	cleanup_free char *missing = url_of(&s, 0, "/pkg/missing.conda");
	ocil_fetch_item it = {.url = missing, .name = "m.conda", .md5 = s.md5, .size = -1};
	CHECK_FAIL(ocil_fetch_run(bs, &it, 1, &o, &failed, &err), &err, OCIL_E_REGISTRY,
		   "m.conda: http://127.0.0.1:");
	CHECK(failed == 0);

	cleanup_free char *corrupt = url_of(&s, 0, "/pkg/corrupt.conda");
	it.url = corrupt;
	CHECK_FAIL(ocil_fetch_run(bs, &it, 1, &o, &failed, &err), &err, OCIL_E_INPUT,
		   "/pkg/corrupt.conda: md5 mismatch (expected ");
	it.md5 = NULL;
	it.sha256 = s.sha256;
	CHECK_FAIL(ocil_fetch_run(bs, &it, 1, &o, &failed, &err), &err, OCIL_E_INPUT,
		   "sha256 mismatch (expected ");
	CHECK(store_entries(bs) == 0);

	/* more than the expected size, or the cap */
	cleanup_free char *big = url_of(&s, 0, "/pkg/big.conda");
	it.url = big;
	it.size = 1000;
	CHECK_FAIL(ocil_fetch_run(bs, &it, 1, &o, &failed, &err), &err, OCIL_E_REGISTRY,
		   "the server sends more than the expected 1000 bytes");
	it.size = -1;
	o.max_size = 300000;
	CHECK_FAIL(ocil_fetch_run(bs, &it, 1, &o, &failed, &err), &err, OCIL_E_REGISTRY,
		   "the server sends more than the cap of 300000 bytes");
	o.max_size = 0;
	CHECK(store_entries(bs) == 0);

	cleanup_free char *busy = url_of(&s, 0, "/pkg/busy.conda");
	cleanup_free char *drop = url_of(&s, 0, "/pkg/drop.conda");
	ocil_fetch_item two[2] = {
	    {.url = busy, .name = "busy.conda", .md5 = s.md5, .size = -1},
	    {.url = drop, .name = "drop.conda", .sha256 = s.sha256, .size = -1},
	};
	int before = s.n;
	CHECK_OK(ocil_fetch_run(bs, two, 2, &o, &failed, &err), &err);
	CHECK(strstr(n.text, "retrying busy.conda in 0 s (HTTP 503 Service Unavailable)") != NULL);
	CHECK(strstr(n.text, "retrying drop.conda in 0 s") != NULL);
	bool resumed = false;
	for (int i = before; i < s.n; i++)
		resumed = resumed || (strstr(s.log[i].path, "/drop") != NULL &&
				      strcmp(s.log[i].range, "bytes=100000-") == 0);
	CHECK(resumed);
	CHECK(store_entries(bs) == 1);
	/* retries run out */
	s.state = 0;
	o.retries = 0;
	ocil_fetch_item again = {.url = busy,
				 .name = "busy.conda",
				 .md5 = "00000000000000000000000000000000",
				 .size = -1};
	CHECK_FAIL(ocil_fetch_run(bs, &again, 1, &o, &failed, &err), &err, OCIL_E_REGISTRY,
		   "busy.conda: http://127.0.0.1:");
}

/* Redirects to the other host; credentials only for the first. */
static void h_redirect(srv *s, const sreq *q, int fd)
{
	if (q->listener == 0 && strncmp(q->path, "/r/", 3) == 0) {
		cleanup_free char *loc = ocil_xasprintf("Location: http://127.0.0.2:%d/pkg/%s\r\n",
							s->port[1], q->path + 3);
		reply(fd, 302, loc, "", 0);
		return;
	}
	if (strncmp(q->path, "/loop", 5) == 0) {
		reply(fd, 302, "Location: /loop\r\n", "", 0);
		return;
	}
	if (strncmp(q->path, "/ftp", 4) == 0) {
		reply(fd, 302, "Location: ftp://127.0.0.1/x\r\n", "", 0);
		return;
	}
	h_pkg(s, q, fd);
}

static void redirects_and_credentials(void)
{
	cleanup_srv srv s;
	srv_start(&s, h_redirect);
	notes n = {0};
	ocil_fetch_opts o = opts(&n);
	/* a netrc with entries for both hosts: only the first URL's gets used */
	cleanup_free char *netrc = ocil_xasprintf("%s/netrc", ocil_test_tmpdir());
	FILE *f = fopen(netrc, "w");
	fprintf(f, "machine 127.0.0.1 login alice password a1\n"
		   "machine 127.0.0.2 login bob password b2\n");
	fclose(f);
	o.netrc = netrc;
	__attribute__((cleanup(ocil_blobstore_freep))) ocil_blobstore *bs = new_store("s");
	ocil_error *err = NULL;
	size_t failed = 9;
	cleanup_free char *u = url_of(&s, 0, "/r/a.conda");
	ocil_fetch_item it = {.url = u, .name = "a.conda", .md5 = s.md5, .size = -1};
	CHECK_OK(ocil_fetch_run(bs, &it, 1, &o, &failed, &err), &err);
	CHECK(s.n == 2);
	CHECK(s.log[0].listener == 0 && strncmp(s.log[0].authz, "Basic ", 6) == 0);
	CHECK(s.log[1].listener == 1 && s.log[1].authz[0] == '\0');

	/* an item's own Authorization: to its origin only, too */
	o.netrc = NULL;
	cleanup_free char *u2 = url_of(&s, 0, "/r/b.conda");
	ocil_fetch_item it2 = {
	    .url = u2, .name = "b.conda", .sha256 = s.sha256, .size = -1, .authz = "Bearer tok"};
	CHECK_OK(ocil_fetch_run(bs, &it2, 1, &o, &failed, &err), &err);
	CHECK(!it2.fetched); /* the store has it by now */
	ocil_blobstore *bs2 = new_store("s2");
	CHECK_OK(ocil_fetch_run(bs2, &it2, 1, &o, &failed, &err), &err);
	ocil_blobstore_free(bs2);
	CHECK(s.n == 4);
	CHECK_STREQ(s.log[2].authz, "Bearer tok");
	CHECK(s.log[3].listener == 1 && s.log[3].authz[0] == '\0');

	ocil_blobstore *bs3 = new_store("s3");
	cleanup_free char *loop = url_of(&s, 0, "/loop");
	ocil_fetch_item it3 = {.url = loop, .name = "l.conda", .md5 = s.md5, .size = -1};
	CHECK_FAIL(ocil_fetch_run(bs3, &it3, 1, &o, &failed, &err), &err, OCIL_E_REGISTRY,
		   "more than 5 redirects");
	cleanup_free char *ftp = url_of(&s, 0, "/ftp");
	it3.url = ftp;
	CHECK_FAIL(ocil_fetch_run(bs3, &it3, 1, &o, &failed, &err), &err, OCIL_E_REGISTRY,
		   "redirected to ftp://127.0.0.1/x, which is not an http(s) URL");
	ocil_blobstore_free(bs3);
}

TEST_MAIN(T(mirrors), T(redaction), T(file_urls), T(http_rules), T(refused_items), T(downloads),
	  T(faults), T(redirects_and_credentials), T(response_headers))
