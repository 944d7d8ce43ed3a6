/* The registry client against a tiny HTTP/1.1 server running in a thread of
 * the test: one connection per request (Connection: close), a handler per
 * test, every request logged so tests can check what the client sent (and
 * the size and sha256 of the body it sent). It listens on 127.0.0.1 and
 * 127.0.0.2 (another host, for redirects). */
#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <string.h>
#include <time.h>

#include "base/digest.h"
#include "base/json.h"
#include "base/util.h"
#include "registry/registry.h"
#include "support_http.h"
#include "test.h"

typedef thttp_req sreq;

typedef struct srv srv;
typedef void (*handler_fn)(srv *s, const sreq *q, int fd);

/* The server (first, so that a thttp * is the srv *) and what the
 * handlers serve and remember. */
struct srv {
	thttp http;
	handler_fn h;
	int state; /* for handlers */
	char *blob;
	size_t blob_len;
	char blob_digest[OCIL_DIGEST_STR_SIZE];
	const char *manifest;
	char manifest_digest[OCIL_DIGEST_STR_SIZE];
	char realm_base[128];
	/* Push handlers: the upload session being written. */
	char *up;
	size_t up_len;
	int sessions;
	int patches;	   /* in the current session */
	char fail_on[64];  /* "s1-p2": 503 to the second PATCH of session 1 */
	char short_on[64]; /* "s1-p2": that PATCH's Range says a byte less came */
};

static void dispatch(thttp *t, const sreq *q, int fd)
{
	srv *s = (srv *)t;
	s->h(s, q, fd);
}

static void reply(int fd, int st, const char *extra, const void *body, size_t len)
{
	thttp_reply(fd, st, extra, body, len);
}

static void reply_str(int fd, int st, const char *extra, const char *body)
{
	reply(fd, st, extra, body, strlen(body));
}

static void srv_start(srv *s, const char *addr0, handler_fn h)
{
	memset(s, 0, sizeof(*s));
	s->h = h;
	/* Test content: a manifest and a blob that is not all one byte. */
	s->manifest = "{\"schemaVersion\":2,\"mediaType\":\"" OCIL_MT_OCI_MANIFEST "\"}";
	ocil_digest_buf(s->manifest, strlen(s->manifest), s->manifest_digest);
	s->blob_len = 300000;
	s->blob = ocil_xmalloc(s->blob_len);
	for (size_t i = 0; i < s->blob_len; i++)
		s->blob[i] = (char)((i * 7919) >> 5);
	ocil_digest_buf(s->blob, s->blob_len, s->blob_digest);
	thttp_start(&s->http, addr0, dispatch);
	snprintf(s->realm_base, sizeof(s->realm_base), "http://%s:%d", s->http.addr[0],
		 s->http.port[0]);
}

static void srv_stop(srv *s)
{
	thttp_stop(&s->http);
	free(s->blob);
	free(s->up);
}
#define cleanup_srv __attribute__((cleanup(srv_stop)))

static int srv_count(srv *s)
{
	return thttp_count(&s->http);
}

static char *host_of(srv *s)
{
	return ocil_xasprintf("%s:%d", s->http.addr[0], s->http.port[0]);
}

/* Notices collected, one per line. */
typedef struct {
	char text[8192];
	int count;
	volatile int *cancel_on_retry;
} notes;

static void on_notice(void *data, const char *msg)
{
	notes *n = data;
	n->count++;
	size_t used = strlen(n->text);
	snprintf(n->text + used, sizeof(n->text) - used, "%s\n", msg);
	if (n->cancel_on_retry != NULL && strstr(msg, "retrying") != NULL)
		*n->cancel_on_retry = 1;
}

static uint64_t last_done, last_total;
static void on_progress(void *data, const char *digest, uint64_t done, uint64_t total)
{
	last_done = done;
	last_total = total;
}

/* Auth lookups see only the test's own (empty) directories. */
static void isolate_auth(void)
{
	cleanup_free char *home = ocil_xasprintf("%s/home", ocil_test_tmpdir());
	ocil_error *err = NULL;
	ocil_mkdir_p(home, 0755, &err);
	setenv("HOME", home, 1);
	unsetenv("REGISTRY_AUTH_FILE");
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("DOCKER_CONFIG");
	/* The test server is local: no proxy in between. */
	static const char *const proxies[] = {"http_proxy", "https_proxy", "all_proxy",
					      "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"};
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
}

static ocil_registry_opts opts(notes *n)
{
	return (ocil_registry_opts){.tls_verify = true,
				    .retries = 3,
				    .timeout_s = 30,
				    .notice = on_notice,
				    .progress = on_progress,
				    .data = n};
}

static char *authfile_for(const char *host, const char *user, const char *pass)
{
	cleanup_free char *up = ocil_xasprintf("%s:%s", user, pass);
	cleanup_free char *b = ocil_base64_encode(up, strlen(up));
	char *path = ocil_xasprintf("%s/auth-%s.json", ocil_test_tmpdir(), pass);
	FILE *f = fopen(path, "w");
	fprintf(f, "{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}", host, b);
	fclose(f);
	return path;
}

static bool is_path(const sreq *q, const char *prefix)
{
	return strncmp(q->path, prefix, strlen(prefix)) == 0;
}

static ocil_blobstore *new_store(void)
{
	cleanup_free char *dir = ocil_xasprintf("%s/store", ocil_test_tmpdir());
	ocil_blobstore *bs = NULL;
	ocil_error *err = NULL;
	if (ocil_blobstore_open(dir, &bs, &err) < 0)
		abort();
	return bs;
}

/* Nothing at all in blobs/sha256: no blob, no temporary file. */
static int store_entries(ocil_blobstore *bs)
{
	cleanup_free char *dir = ocil_xasprintf("%s/blobs/sha256", ocil_blobstore_root(bs));
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' || strncmp(e->d_name, ".tmp", 4) == 0)
			n++;
	if (d)
		closedir(d);
	return n;
}

static void registry_freep(ocil_registry **r)
{
	ocil_registry_free(*r);
}
static void store_freep(ocil_blobstore **b)
{
	ocil_blobstore_free(*b);
}
#define cleanup_registry __attribute__((cleanup(registry_freep)))
#define cleanup_store __attribute__((cleanup(store_freep)))

/* --- anonymous --- */

static void h_anon(srv *s, const sreq *q, int fd)
{
	char extra[512];
	snprintf(extra, sizeof(extra),
		 "Content-Type: " OCIL_MT_OCI_MANIFEST "; charset=utf-8\r\n"
		 "Docker-Content-Digest: %s\r\n",
		 s->manifest_digest);
	if (strcmp(q->path, "/v2/lambda/python/manifests/3.8") == 0 ||
	    (is_path(q, "/v2/lambda/python/manifests/sha256:") &&
	     strcmp(q->path + 28, s->manifest_digest) == 0))
		reply_str(fd, 200, extra, s->manifest);
	else
		reply_str(fd, 404, "", "");
}

static void manifest_anonymous(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_anon);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	CHECK(srv_count(&s) == 0); /* open does no I/O */

	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	CHECK_OK(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err);
	CHECK(len == strlen(s.manifest) && memcmp(body, s.manifest, len) == 0 && body[len] == 0);
	CHECK_STREQ(mt, OCIL_MT_OCI_MANIFEST);
	CHECK_STREQ(digest, s.manifest_digest);
	free(body);
	free(mt);
	CHECK_OK(ocil_registry_get_manifest(r, s.manifest_digest, &body, &len, &mt, digest, &err),
		 &err);
	CHECK_STREQ(digest, s.manifest_digest);
	free(body);
	free(mt);

	/* https was tried (and found missing) once, then plain http, said once. */
	CHECK(s.http.tls_probes == 1);
	cleanup_free char *want = ocil_xasprintf("using plain http for %s\n", host);
	CHECK_STREQ(n.text, want);
	CHECK(srv_count(&s) == 2);
	const sreq *q = &s.http.log[0];
	CHECK_STREQ(q->method, "GET");
	CHECK(q->authz[0] == '\0');
	CHECK(strstr(q->accept, OCIL_MT_OCI_MANIFEST) && strstr(q->accept, OCIL_MT_OCI_INDEX) &&
	      strstr(q->accept, OCIL_MT_DOCKER_MANIFEST) && strstr(q->accept, OCIL_MT_DOCKER_LIST));
	CHECK(strncmp(q->ua, "ocilambda/", 10) == 0);
}

/* --- bearer --- */

static void h_bearer(srv *s, const sreq *q, int fd)
{
	char want[64], extra[512], tok[256];
	snprintf(want, sizeof(want), "Bearer tok-%d", s->state);
	if (is_path(q, "/token?")) {
		/* Rotate tokens: the old one stops working (an expired token). */
		s->state++;
		snprintf(tok, sizeof(tok), "{\"%s\":\"tok-%d\",\"expires_in\":300}",
			 s->state % 2 ? "token" : "access_token", s->state);
		if (s->state == 100) /* a hostile answer: which token is it? */
			snprintf(tok, sizeof(tok), "{\"token\":\"tok-100\",\"token\":\"x\"}");
		reply_str(fd, 200, "Content-Type: application/json\r\n", tok);
		return;
	}
	if (q->listener == 1) {
		reply(fd, 200, "", s->blob, s->blob_len);
		return;
	}
	if (strcmp(q->authz, want) != 0 || s->state == 0) {
		snprintf(extra, sizeof(extra),
			 "WWW-Authenticate: Bearer realm=\"%s/token\",service=\"test.registry\"\r\n"
			 "Content-Type: application/json\r\n",
			 s->realm_base);
		reply_str(fd, 401, extra,
			  "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication "
			  "required\"}]}");
		return;
	}
	if (is_path(q, "/v2/lambda/python/blobs/")) {
		/* Relative redirect on the registry, then to another host. */
		snprintf(extra, sizeof(extra), "Location: /redir/%s\r\n", s->blob_digest);
		reply_str(fd, 307, extra, "");
		return;
	}
	if (is_path(q, "/redir/")) {
		snprintf(extra, sizeof(extra), "Location: http://127.0.0.2:%d/cdn/%s?sig=x\r\n",
			 s->http.port[1], s->blob_digest);
		reply_str(fd, 302, extra, "");
		return;
	}
	reply_str(fd, 200, "Content-Type: " OCIL_MT_OCI_MANIFEST "\r\n", s->manifest);
}

static void manifest_bearer(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_bearer);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	CHECK_OK(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err);
	free(body);
	free(mt);
	CHECK(srv_count(&s) == 3);
	CHECK(s.http.log[0].authz[0] == '\0');
	CHECK_STREQ(s.http.log[1].path,
		    "/token?service=test.registry&scope=repository%3Alambda%2Fpython%3Apull");
	CHECK(s.http.log[1].authz[0] == '\0'); /* no credentials anywhere: anonymous token */
	CHECK_STREQ(s.http.log[2].authz, "Bearer tok-1");

	/* The token is cached ... */
	CHECK_OK(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err);
	free(body);
	free(mt);
	CHECK(srv_count(&s) == 4);
	CHECK_STREQ(s.http.log[3].authz, "Bearer tok-1");
	/* ... and renewed when it stops working ("access_token" this time). */
	s.state = 5;
	CHECK_OK(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err);
	free(body);
	free(mt);
	CHECK(srv_count(&s) == 7);
	CHECK_STREQ(s.http.log[6].authz, "Bearer tok-6");

	/* With credentials, the token request carries them (and only it). */
	cleanup_free char *af = authfile_for(host, "alice", "pw1");
	o.authfile = af;
	cleanup_registry ocil_registry *r2 = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r2, &err), &err);
	CHECK_OK(ocil_registry_get_manifest(r2, "3.8", &body, &len, &mt, digest, &err), &err);
	free(body);
	free(mt);
	CHECK(srv_count(&s) == 10);
	CHECK(s.http.log[7].authz[0] == '\0');
	CHECK_STREQ(s.http.log[8].authz, "Basic YWxpY2U6cHcx");
	CHECK_STREQ(s.http.log[9].authz, "Bearer tok-7");

	/* A token answer with a duplicate key is refused, as any JSON from outside. */
	s.state = 99;
	CHECK_FAIL(ocil_registry_get_manifest(r2, "3.8", &body, &len, &mt, digest, &err), &err,
		   OCIL_E_REGISTRY, "malformed JSON at line 1: duplicate object key");
}

static void redirect_no_credentials(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_bearer);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	cleanup_store ocil_blobstore *bs = new_store();
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	CHECK_OK(ocil_registry_fetch_blob(r, &d, bs, &err), &err);
	CHECK(ocil_blobstore_has(bs, s.blob_digest));
	CHECK(last_done == s.blob_len && last_total == s.blob_len);
	/* 401, token, blob (307), /redir (302), the other host. */
	CHECK(srv_count(&s) == 5);
	CHECK_STREQ(s.http.log[2].authz, "Bearer tok-1");
	CHECK(is_path(&s.http.log[3], "/redir/"));
	CHECK_STREQ(s.http.log[3].authz, "Bearer tok-1"); /* same host: still ours */
	CHECK(s.http.log[4].listener == 1 && is_path(&s.http.log[4], "/cdn/"));
	CHECK(s.http.log[4].authz[0] == '\0');

	/* Already there: no I/O at all. */
	CHECK_OK(ocil_registry_fetch_blob(r, &d, bs, &err), &err);
	CHECK(srv_count(&s) == 5);
}

/* --- basic --- */

static void h_basic(srv *s, const sreq *q, int fd)
{
	/* alice:right */
	if (strcmp(q->authz, "Basic YWxpY2U6cmlnaHQ=") != 0) {
		reply_str(fd, 401, "WWW-Authenticate: Basic realm=\"Registry Realm\"\r\n", "");
		return;
	}
	reply_str(fd, 200, "", s->manifest);
}

static void basic_auth(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_basic);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];

	/* No credentials anywhere. */
	ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	int rc = ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err);
	ocil_registry_free(r);
	CHECK(rc < 0 && err->code == OCIL_E_REGISTRY);
	cleanup_free char *want =
	    ocil_xasprintf("%s: authentication required (no credentials in ", host);
	CHECK(strncmp(err->msg, want, strlen(want)) == 0);
	CHECK(strstr(err->msg, "use --authfile or docker login") != NULL);
	ocil_error_free(err);
	err = NULL;

	/* Wrong password: a clear message that does not show it. */
	cleanup_free char *bad = authfile_for(host, "alice", "wrong-pw");
	o.authfile = bad;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	rc = ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err);
	ocil_registry_free(r);
	CHECK(rc < 0 && err->code == OCIL_E_REGISTRY);
	cleanup_free char *want2 = ocil_xasprintf("%s: authentication failed for alice", host);
	CHECK_STREQ(err->msg, want2);
	CHECK(strstr(err->msg, "wrong-pw") == NULL);
	ocil_error_free(err);
	err = NULL;

	/* Right password: sent after the challenge, then up front. */
	int before = srv_count(&s);
	cleanup_free char *good = authfile_for(host, "alice", "right");
	o.authfile = good;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	rc = ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err);
	free(body);
	free(mt);
	if (rc == 0)
		rc = ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err);
	ocil_registry_free(r);
	CHECK_OK(rc, &err);
	free(body);
	free(mt);
	CHECK(srv_count(&s) == before + 3);
	CHECK(s.http.log[before].authz[0] == '\0');
	CHECK_STREQ(s.http.log[before + 1].authz, "Basic YWxpY2U6cmlnaHQ=");
	CHECK_STREQ(s.http.log[before + 2].authz, "Basic YWxpY2U6cmlnaHQ=");
}

static void h_token_refused(srv *s, const sreq *q, int fd)
{
	char extra[512];
	if (is_path(q, "/token")) {
		reply_str(fd, 401, "", "{\"details\":\"incorrect username or password\"}");
		return;
	}
	snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer realm=\"%s/token\"\r\n",
		 s->realm_base);
	reply_str(fd, 401, extra, "");
}

static void bearer_bad_credentials(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_token_refused);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_free char *af = authfile_for(host, "bob", "nope");
	o.authfile = af;
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	cleanup_free char *want = ocil_xasprintf("%s: authentication failed for bob", host);
	CHECK_FAIL(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err,
		   OCIL_E_REGISTRY, want);
	/* The token request had the credentials; scope built from the repo. */
	CHECK(srv_count(&s) == 2);
	CHECK_STREQ(s.http.log[1].path, "/token?scope=repository%3Alambda%2Fpython%3Apull");
	CHECK_STREQ(s.http.log[1].authz, "Basic Ym9iOm5vcGU=");
}

/* --- retries --- */

static void h_flaky(srv *s, const sreq *q, int fd)
{
	int k = s->state++;
	if (k == 0)
		reply_str(fd, 503, "Content-Type: application/json\r\n",
			  "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"busy\"}]}");
	else if (k == 1)
		reply_str(fd, 429, "Retry-After: 1\r\n", "");
	else
		reply_str(fd, 200, "", s->manifest);
}

static void h_always_503(srv *s, const sreq *q, int fd)
{
	reply_str(fd, 503, s->state ? "Retry-After: 3600\r\n" : "Retry-After: 0\r\n", "");
}

static void retries(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_flaky);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	CHECK_OK(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err);
	free(body);
	free(mt);
	CHECK(srv_count(&s) == 3);
	/* Backoff of 1 s after the 503, Retry-After: 1 after the 429 (the
	 * notices say so; no clock is read here: no timing assertions). */
	cleanup_free char *w1 = ocil_xasprintf(
	    "%s: retrying manifest 3.8 in 1 s (HTTP 503 Service Unavailable)\n", host);
	cleanup_free char *w2 =
	    ocil_xasprintf("%s: retrying manifest 3.8 in 1 s (HTTP 429 Too Many Requests)\n", host);
	CHECK(strstr(n.text, w1) != NULL);
	CHECK(strstr(n.text, w2) != NULL);
}

static void retries_exhausted(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_always_503);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.retries = 2;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	cleanup_free char *want = ocil_xasprintf(
	    "%s/lambda/python: manifest 3.8: HTTP 503 Service Unavailable (gave up after 3 "
	    "attempts)",
	    host);
	CHECK_FAIL(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err,
		   OCIL_E_REGISTRY, want);
	CHECK(srv_count(&s) == 3);

	/* A Retry-After beyond the time budget fails at once (an hour against
	 * 30 s: far apart, so a slow machine cannot blur the two). */
	s.state = 1;
	o.timeout_s = 30;
	cleanup_registry ocil_registry *r2 = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r2, &err), &err);
	CHECK_FAIL(ocil_registry_get_manifest(r2, "3.8", &body, &len, &mt, digest, &err), &err,
		   OCIL_E_REGISTRY, "no time left to retry within 30 s");

	/* Cancelled while waiting to retry. */
	volatile int flag = 0;
	ocil_cancel cancel = {.flag = &flag};
	n.cancel_on_retry = &flag;
	s.state = 0;
	o.timeout_s = 30;
	o.cancel = &cancel;
	o.retries = 5;
	cleanup_registry ocil_registry *r3 = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r3, &err), &err);
	int before = srv_count(&s);
	CHECK_FAIL(ocil_registry_get_manifest(r3, "3.8", &body, &len, &mt, digest, &err), &err,
		   OCIL_E_CANCELLED, "interrupted");
	CHECK(srv_count(&s) == before + 1);
}

static void connection_refused(void)
{
	isolate_auth();
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.retries = 0;
	/* A port nobody listens on: take one and close it. */
	int port = 0;
	int fd = thttp_listen("127.0.0.1", &port);
	close(fd);
	cleanup_free char *host = ocil_xasprintf("127.0.0.1:%d", port);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	cleanup_free char *want = ocil_xasprintf("%s: cannot connect: ", host);
	CHECK_FAIL(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err,
		   OCIL_E_REGISTRY, want);
}

/* --- resuming --- */

static void h_drop(srv *s, const sreq *q, int fd)
{
	int k = s->state++;
	char extra[256];
	if (k == 0 || k == 2) {
		/* Promise everything, send a third, hang up. */
		snprintf(extra, sizeof(extra),
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 s->blob_len);
		thttp_send(fd, extra, strlen(extra));
		thttp_send(fd, s->blob, 100000);
		return;
	}
	unsigned long long from = 0;
	if (k == 1 && sscanf(q->range, "bytes=%llu-", &from) == 1 && from < s->blob_len) {
		snprintf(extra, sizeof(extra), "Content-Range: bytes %llu-%zu/%zu\r\n", from,
			 s->blob_len - 1, s->blob_len);
		reply(fd, 206, extra, s->blob + from, s->blob_len - from);
		return;
	}
	/* k == 3: a server that ignores Range. */
	reply(fd, 200, "", s->blob, s->blob_len);
}

static void resume(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_drop);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	cleanup_store ocil_blobstore *bs = new_store();
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	CHECK_OK(ocil_registry_fetch_blob(r, &d, bs, &err), &err);
	CHECK(ocil_blobstore_has(bs, s.blob_digest));
	CHECK(srv_count(&s) == 2);
	CHECK(s.http.log[0].range[0] == '\0');
	CHECK_STREQ(s.http.log[1].range, "bytes=100000-");
	CHECK(strstr(n.text, "retrying blob sha256:") != NULL);

	/* The server answers the Range with the whole blob: start over. */
	cleanup_free char *p = ocil_blobstore_path(bs, s.blob_digest);
	unlink(p);
	CHECK_OK(ocil_registry_fetch_blob(r, &d, bs, &err), &err);
	CHECK(ocil_blobstore_has(bs, s.blob_digest));
	CHECK(srv_count(&s) == 4);
	CHECK_STREQ(s.http.log[3].range, "bytes=100000-");
	CHECK(store_entries(bs) == 1);
}

/* --- verification --- */

static void h_bad_blob(srv *s, const sreq *q, int fd)
{
	char extra[256];
	switch (s->state) {
	case 0: /* right size, wrong content */
		s->blob[5] ^= 1;
		reply(fd, 200, "", s->blob, s->blob_len);
		s->blob[5] ^= 1;
		return;
	case 1: /* announces too much */
		reply(fd, 200, "", s->blob, s->blob_len);
		return;
	case 2: /* no length, sends too much */
		snprintf(extra, sizeof(extra), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
		thttp_send(fd, extra, strlen(extra));
		thttp_send(fd, s->blob, s->blob_len);
		return;
	default:
		reply_str(fd, 404, "Content-Type: application/json\r\n",
			  "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to "
			  "registry\"}]}");
	}
}

static void blob_verification(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_bad_blob);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	cleanup_store ocil_blobstore *bs = new_store();
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));

	CHECK_FAIL(ocil_registry_fetch_blob(r, &d, bs, &err), &err, OCIL_E_REGISTRY,
		   "digest mismatch");
	CHECK(!ocil_blobstore_has(bs, s.blob_digest));
	CHECK(store_entries(bs) == 0);

	/* More bytes than the descriptor says: an error at once, no retry. */
	d.size = 1000;
	s.state = 1;
	int before = srv_count(&s);
	CHECK_FAIL(ocil_registry_fetch_blob(r, &d, bs, &err), &err, OCIL_E_REGISTRY,
		   "more than the expected 1000");
	CHECK(srv_count(&s) == before + 1);
	s.state = 2;
	CHECK_FAIL(ocil_registry_fetch_blob(r, &d, bs, &err), &err, OCIL_E_REGISTRY,
		   "more than the expected 1000 bytes");
	CHECK(srv_count(&s) == before + 2);
	CHECK(store_entries(bs) == 0);

	s.state = 3;
	cleanup_free char *want = ocil_xasprintf(
	    "%s/lambda/python: blob %s: BLOB_UNKNOWN: blob unknown to registry", host, d.digest);
	CHECK_FAIL(ocil_registry_fetch_blob(r, &d, bs, &err), &err, OCIL_E_INPUT, want);
}

static void h_manifests(srv *s, const sreq *q, int fd)
{
	char extra[256];
	if (strcmp(q->path, "/v2/lambda/python/manifests/big") == 0) {
		snprintf(extra, sizeof(extra),
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n{",
			 OCIL_JSON_MAX + 1);
		thttp_send(fd, extra, strlen(extra));
	} else if (strcmp(q->path, "/v2/lambda/python/manifests/stream") == 0) {
		/* No Content-Length: the cap must hold while reading. */
		const char *h = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
		thttp_send(fd, h, strlen(h));
		char *junk = ocil_xmalloc(1 << 16);
		memset(junk, ' ', 1 << 16);
		for (size_t sent = 0; sent <= OCIL_JSON_MAX; sent += 1 << 16)
			thttp_send(fd, junk, 1 << 16);
		free(junk);
	} else if (strcmp(q->path, "/v2/lambda/python/manifests/3.9") == 0) {
		reply_str(fd, 404, "Content-Type: application/json\r\n",
			  "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest "
			  "unknown\",\"detail\":{\"Tag\":\"3.9\"}}]}");
	} else if (strcmp(q->path, "/v2/lambda/python/manifests/denied") == 0) {
		reply_str(fd, 403, "", "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no\"}]}");
	} else if (strcmp(q->path, "/v2/lambda/python/manifests/wrongdcd") == 0) {
		reply_str(fd, 200,
			  "Docker-Content-Digest: sha256:"
			  "0000000000000000000000000000000000000000000000000000000000000000\r\n",
			  s->manifest);
	} else if (strcmp(q->path, "/v2/lambda/python/manifests/longheader") == 0) {
		char *h = ocil_xmalloc(9000);
		memset(h, 'a', 8990);
		memcpy(h, "X-Long: ", 8);
		memcpy(h + 8990, "\r\n", 3);
		reply_str(fd, 200, h, s->manifest);
		free(h);
	} else if (strcmp(q->path, "/v2/lambda/python/manifests/notype") == 0) {
		reply_str(fd, 200, "", s->manifest);
	} else if (strcmp(q->path, "/v2/lambda/python/manifests/loop") == 0) {
		reply_str(fd, 302, "Location: /v2/lambda/python/manifests/loop\r\n", "");
	} else if (is_path(q, "/v2/lambda/python/manifests/sha256:")) {
		reply_str(fd, 200, "", "{\"not\":\"it\"}");
	} else {
		reply_str(fd, 404, "", "");
	}
}

static void manifest_errors(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_manifests);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
#define GET(ref) ocil_registry_get_manifest(r, ref, &body, &len, &mt, digest, &err)
	CHECK_FAIL(GET("big"), &err, OCIL_E_REGISTRY, "manifest big: larger than 4194304 bytes");
	CHECK_FAIL(GET("stream"), &err, OCIL_E_REGISTRY,
		   "manifest stream: larger than 4194304 bytes");
	cleanup_free char *want = ocil_xasprintf(
	    "%s/lambda/python: manifest 3.9: MANIFEST_UNKNOWN: manifest unknown", host);
	CHECK_FAIL(GET("3.9"), &err, OCIL_E_INPUT, want);
	CHECK_FAIL(GET("nothing"), &err, OCIL_E_INPUT, "manifest nothing: HTTP 404 Not Found");
	CHECK_FAIL(GET("denied"), &err, OCIL_E_REGISTRY, "manifest denied: DENIED: no");
	CHECK_FAIL(GET("wrongdcd"), &err, OCIL_E_REGISTRY,
		   "Docker-Content-Digest sha256:0000000000000000000000000000000000000000000000000"
		   "000000000000000 does not match");
	CHECK_FAIL(GET(s.manifest_digest), &err, OCIL_E_REGISTRY, "digest mismatch: content is");
	CHECK_FAIL(GET("loop"), &err, OCIL_E_REGISTRY, "more than 5 redirects");
	CHECK_FAIL(GET("longheader"), &err, OCIL_E_REGISTRY, "response header longer than 8192");
	CHECK_OK(GET("notype"), &err);
	CHECK(mt == NULL && len == strlen(s.manifest));
	free(body);
	CHECK_FAIL(GET("bad/tag"), &err, OCIL_E_INPUT, "invalid tag or digest");
	CHECK_FAIL(GET("sha256:abc"), &err, OCIL_E_INPUT, "invalid tag or digest");
#undef GET
}

/* --- http only where allowed --- */

/* An address of this machine that is not loopback, or NULL. */
static char *non_loopback_ipv4(void)
{
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) < 0)
		return NULL;
	char *found = NULL;
	for (struct ifaddrs *i = ifa; i != NULL && found == NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
			continue;
		struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		if ((ntohl(a.s_addr) >> 24) == 127)
			continue;
		char buf[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a, buf, sizeof(buf));
		found = ocil_xstrdup(buf);
	}
	freeifaddrs(ifa);
	return found;
}

static void no_plain_http_elsewhere(void)
{
	cleanup_free char *ip = non_loopback_ipv4();
	if (ip == NULL) {
		printf("(skipped: no non-loopback IPv4 address)\n");
		return;
	}
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, ip, h_anon);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.retries = 0;
	cleanup_free char *host = host_of(&s);
	char *body = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r, &err), &err);
	cleanup_free char *want = ocil_xasprintf("%s: cannot connect: ", host);
	CHECK_FAIL(ocil_registry_get_manifest(r, "3.8", &body, &len, &mt, digest, &err), &err,
		   OCIL_E_REGISTRY, want);
	CHECK(s.http.tls_probes == 1 && srv_count(&s) == 0);
	CHECK(n.count == 0);

	/* --tls-verify=false allows it, out loud. */
	o.tls_verify = false;
	cleanup_registry ocil_registry *r2 = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/python", &o, &r2, &err), &err);
	CHECK_OK(ocil_registry_get_manifest(r2, "3.8", &body, &len, &mt, digest, &err), &err);
	free(body);
	free(mt);
	cleanup_free char *note = ocil_xasprintf("using plain http for %s\n", host);
	CHECK_STREQ(n.text, note);
}

/* --- push --- */

/* A registry that takes pushes to lambda/fn the way distribution does:
 * relative upload Locations whose _state query changes with every PATCH
 * (a stale one is refused), Range answers, the blob checked against
 * ?digest= when the session is closed. Repositories "nope", "bare404" and
 * "denied" refuse uploads. s->fail_on makes one request of one session
 * fail with 503 ("s1-p2": the second PATCH of session 1; "s1-put"). */
static void h_push(srv *s, const sreq *q, int fd)
{
	char extra[512], hex_blob[80], want[256];
	snprintf(hex_blob, sizeof(hex_blob), "%s", ocil_digest_hex(s->blob_digest));
	const char *json = "Content-Type: application/json\r\n";
	if (is_path(q, "/v2/nope/")) {
		reply_str(
		    fd, 404, json,
		    "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"repository name not "
		    "known to registry\",\"detail\":{\"name\":\"nope\"}}]}");
		return;
	}
	if (is_path(q, "/v2/bare404/")) {
		reply_str(fd, 404, "", "");
		return;
	}
	if (is_path(q, "/v2/denied/")) {
		reply_str(fd, 403, json,
			  "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"requested access to the "
			  "resource is denied\"}]}");
		return;
	}
	if (strcmp(q->method, "HEAD") == 0 && is_path(q, "/v2/lambda/fn/blobs/sha256:")) {
		const char *d = q->path + strlen("/v2/lambda/fn/blobs/");
		/* HEAD: the length of what a GET would send, and no body. */
		size_t len = strcmp(d, s->blob_digest) == 0	  ? s->blob_len
			     : strcmp(d, s->manifest_digest) == 0 ? 5
								  : 0;
		snprintf(extra, sizeof(extra),
			 "HTTP/1.1 %s\r\nContent-Length: %zu\r\nDocker-Content-Digest: "
			 "%s\r\nConnection: close\r\n\r\n",
			 len ? "200 OK" : "404 Not Found", len, d);
		thttp_send(fd, extra, strlen(extra));
		return;
	}
	if (strcmp(q->method, "POST") == 0 && is_path(q, "/v2/lambda/fn/blobs/uploads/?mount=")) {
		snprintf(want, sizeof(want),
			 "/v2/lambda/fn/blobs/uploads/?mount=sha256%%3A%s&from=lambda%%2Fpython",
			 hex_blob);
		if (strcmp(q->path, want) == 0) {
			snprintf(
			    extra, sizeof(extra),
			    "Location: /v2/lambda/fn/blobs/%s\r\nDocker-Content-Digest: %s\r\n",
			    s->blob_digest, s->blob_digest);
			reply_str(fd, 201, extra, "");
		} else {
			reply_str(fd, 202, "Location: /v2/lambda/fn/blobs/uploads/m1?_state=m\r\n",
				  "");
		}
		return;
	}
	if (strcmp(q->method, "POST") == 0 &&
	    strcmp(q->path, "/v2/lambda/fn/blobs/uploads/") == 0) {
		s->sessions++;
		s->patches = 0;
		s->up_len = 0;
		snprintf(extra, sizeof(extra),
			 "Location: /v2/lambda/fn/blobs/uploads/s%d?_state=%d-0\r\nRange: 0-0\r\n",
			 s->sessions, s->sessions);
		reply_str(fd, 202, extra, "");
		return;
	}
	if (strcmp(q->method, "DELETE") == 0) {
		reply_str(fd, 204, "", "");
		return;
	}
	int sess = 0, st = -1, used = 0;
	if (sscanf(q->path, "/v2/lambda/fn/blobs/uploads/s%d?_state=%*d-%d%n", &sess, &st, &used) ==
		2 &&
	    (strcmp(q->method, "PATCH") == 0 || strcmp(q->method, "PUT") == 0)) {
		bool patch = strcmp(q->method, "PATCH") == 0;
		char step[64];
		snprintf(step, sizeof(step), patch ? "s%d-p%d" : "s%d-put", sess, s->patches + 1);
		if (strcmp(step, s->fail_on) == 0) {
			reply_str(fd, 503, "Retry-After: 0\r\n", "");
			return;
		}
		if (sess != s->sessions || st != s->patches) {
			reply_str(
			    fd, 400, json,
			    "{\"errors\":[{\"code\":\"BLOB_UPLOAD_INVALID\",\"message\":\"stale "
			    "upload location\"}]}");
			return;
		}
		unsigned long long a = 0, b = 0;
		if (patch && (strcmp(q->content_type, "application/octet-stream") != 0 ||
			      sscanf(q->content_range, "%llu-%llu", &a, &b) != 2 ||
			      a != s->up_len || b - a + 1 != q->body_len)) {
			reply_str(fd, 416, "", "");
			return;
		}
		s->up = ocil_xrealloc(s->up, s->up_len + q->body_len + 1);
		memcpy(s->up + s->up_len, q->body, q->body_len);
		s->up_len += q->body_len;
		if (patch) {
			s->patches++;
			size_t last = s->up_len - 1 - (strcmp(step, s->short_on) == 0);
			snprintf(extra, sizeof(extra),
				 "Location: /v2/lambda/fn/blobs/uploads/s%d?_state=%d-%d\r\nRange: "
				 "0-%zu\r\n",
				 sess, sess, s->patches, last);
			reply_str(fd, 202, extra, "");
			return;
		}
		char got[OCIL_DIGEST_STR_SIZE];
		ocil_digest_buf(s->up, s->up_len, got);
		snprintf(want, sizeof(want), "&digest=sha256%%3A%s", ocil_digest_hex(got));
		if (strcmp(q->path + used, want) != 0) {
			reply_str(
			    fd, 400, json,
			    "{\"errors\":[{\"code\":\"DIGEST_INVALID\",\"message\":\"provided "
			    "digest did not match uploaded content\"}]}");
			return;
		}
		snprintf(extra, sizeof(extra),
			 "Location: /v2/lambda/fn/blobs/%s\r\nDocker-Content-Digest: %s\r\n", got,
			 got);
		reply_str(fd, 201, extra, "");
		return;
	}
	if (strcmp(q->method, "PUT") == 0 && is_path(q, "/v2/lambda/fn/manifests/")) {
		const char *ref = q->path + strlen("/v2/lambda/fn/manifests/");
		if (strcmp(ref, "unknownblob") == 0) {
			reply_str(
			    fd, 400, json,
			    "{\"errors\":[{\"code\":\"MANIFEST_BLOB_UNKNOWN\",\"message\":\"blob "
			    "unknown to registry\"}]}");
			return;
		}
		snprintf(extra, sizeof(extra), "Docker-Content-Digest: %s\r\n",
			 strcmp(ref, "wrongdcd") == 0 ? "sha256:0000000000000000000000000000000000"
							"000000000000000000000000000000"
						      : q->body_digest);
		reply_str(fd, 201, extra, "");
		return;
	}
	reply_str(fd, 404, "", "");
}

/* s->blob as a file. */
static char *blob_file(srv *s, bool corrupt)
{
	char *path = ocil_xasprintf("%s/blob%s", ocil_test_tmpdir(), corrupt ? "-bad" : "");
	FILE *f = fopen(path, "w");
	s->blob[7] ^= corrupt;
	fwrite(s->blob, 1, s->blob_len, f);
	s->blob[7] ^= corrupt;
	fclose(f);
	return path;
}

static void blob_exists(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	bool have = false;
	CHECK_OK(ocil_registry_blob_exists(r, &d, &have, &err), &err);
	CHECK(have);
	CHECK_STREQ(s.http.log[0].method, "HEAD");
	cleanup_free char *path = ocil_xasprintf("/v2/lambda/fn/blobs/%s", s.blob_digest);
	CHECK_STREQ(s.http.log[0].path, path);

	/* Missing. */
	ocil_descriptor other = {.size = 3};
	ocil_digest_buf("abc", 3, other.digest);
	CHECK_OK(ocil_registry_blob_exists(r, &other, &have, &err), &err);
	CHECK(!have);

	/* There, but not with this size: upload it again. */
	ocil_descriptor wrong = {.size = 1234};
	memcpy(wrong.digest, s.manifest_digest, sizeof(wrong.digest));
	have = true;
	CHECK_OK(ocil_registry_blob_exists(r, &wrong, &have, &err), &err);
	CHECK(!have);
	CHECK(strstr(n.text, "has 5 bytes there, expected 1234: uploading it again") != NULL);
	CHECK(srv_count(&s) == 3);

	/* Basic-only registry: the credentials, no token. */
	cleanup_srv srv b;
	srv_start(&b, "127.0.0.1", h_basic);
	cleanup_free char *bhost = host_of(&b);
	cleanup_free char *af = authfile_for(bhost, "alice", "right");
	o.authfile = af;
	cleanup_registry ocil_registry *r2 = NULL;
	CHECK_OK(ocil_registry_open(bhost, "lambda/fn", &o, &r2, &err), &err);
	ocil_descriptor m = {.size = (int64_t)strlen(b.manifest)};
	memcpy(m.digest, b.manifest_digest, sizeof(m.digest));
	CHECK_OK(ocil_registry_blob_exists(r2, &m, &have, &err), &err);
	CHECK(have);
	CHECK(srv_count(&b) == 2);
	CHECK_STREQ(b.http.log[1].authz, "Basic YWxpY2U6cmlnaHQ=");
}

static void mount(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	bool mounted = false;
	CHECK_OK(ocil_registry_mount_blob(r, &d, "lambda/python", &mounted, &err), &err);
	CHECK(mounted);
	CHECK(srv_count(&s) == 1);
	CHECK_STREQ(s.http.log[0].method, "POST");
	cleanup_free char *want =
	    ocil_xasprintf("/v2/lambda/fn/blobs/uploads/?mount=sha256%%3A%s&from=lambda%%2Fpython",
			   ocil_digest_hex(s.blob_digest));
	CHECK_STREQ(s.http.log[0].path, want);
	CHECK(s.http.log[0].content_type[0] == '\0'); /* not curl's form type */
	CHECK_STREQ(s.http.log[0].content_length, "0");

	/* Not there: 202, and the session it opened is cancelled. */
	ocil_descriptor other = {.size = 3};
	ocil_digest_buf("abc", 3, other.digest);
	mounted = true;
	CHECK_OK(ocil_registry_mount_blob(r, &other, "lambda/python", &mounted, &err), &err);
	CHECK(!mounted);
	CHECK(srv_count(&s) == 3);
	CHECK_STREQ(s.http.log[2].method, "DELETE");
	CHECK_STREQ(s.http.log[2].path, "/v2/lambda/fn/blobs/uploads/m1?_state=m");

	CHECK_FAIL(ocil_registry_mount_blob(r, &d, "../x", &mounted, &err), &err, OCIL_E_INPUT,
		   "invalid repository name");
}

static void push_monolithic(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	cleanup_free char *file = blob_file(&s, false);
	last_done = last_total = 0;
	CHECK_OK(ocil_registry_push_blob(r, &d, file, &err), &err);
	CHECK(last_done == s.blob_len && last_total == s.blob_len);
	CHECK(srv_count(&s) == 2);
	CHECK_STREQ(s.http.log[0].method, "POST");
	CHECK_STREQ(s.http.log[0].path, "/v2/lambda/fn/blobs/uploads/");
	const sreq *q = &s.http.log[1];
	CHECK_STREQ(q->method, "PUT");
	/* The Location's query is kept, digest= appended. */
	cleanup_free char *want =
	    ocil_xasprintf("/v2/lambda/fn/blobs/uploads/s1?_state=1-0&digest=sha256%%3A%s",
			   ocil_digest_hex(s.blob_digest));
	CHECK_STREQ(q->path, want);
	CHECK_STREQ(q->content_type, "application/octet-stream");
	CHECK_STREQ(q->content_length, "300000");
	CHECK(q->expect[0] == '\0' && q->te[0] == '\0');
	CHECK_STREQ(q->body_digest, s.blob_digest);

	/* The file is not what the descriptor says. */
	d.size = 1000;
	CHECK_FAIL(ocil_registry_push_blob(r, &d, file, &err), &err, OCIL_E_INPUT,
		   "has 300000 bytes, expected 1000");
	d.size = (int64_t)s.blob_len;
	cleanup_free char *bad = blob_file(&s, true);
	CHECK_FAIL(ocil_registry_push_blob(r, &d, bad, &err), &err, OCIL_E_INPUT,
		   "-bad: content is sha256:");
	/* The registry refused it (DIGEST_INVALID); the session is cancelled. */
	CHECK(srv_count(&s) == 5);
	CHECK_STREQ(s.http.log[4].method, "DELETE");
	cleanup_free char *nofile = ocil_xasprintf("%s/none", ocil_test_tmpdir());
	CHECK_FAIL(ocil_registry_push_blob(r, &d, nofile, &err), &err, OCIL_E_IO, "No such file");
}

static volatile int push_cancel_flag;
static uint64_t cancel_after;
static void on_progress_cancel(void *data, const char *digest, uint64_t done, uint64_t total)
{
	on_progress(data, digest, done, total);
	if (cancel_after > 0 && done >= cancel_after)
		push_cancel_flag = 1;
}

static void push_chunked(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	o.chunk_size = 120000;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	cleanup_free char *file = blob_file(&s, false);
	last_done = 0;
	CHECK_OK(ocil_registry_push_blob(r, &d, file, &err), &err);
	CHECK(last_done == s.blob_len);
	CHECK(srv_count(&s) == 5);
	static const char *const ranges[] = {"0-119999", "120000-239999", "240000-299999"};
	for (int i = 0; i < 3; i++) {
		const sreq *q = &s.http.log[1 + i];
		CHECK_STREQ(q->method, "PATCH");
		CHECK_STREQ(q->content_range, ranges[i]);
		CHECK_STREQ(q->content_type, "application/octet-stream");
		/* Each to the Location the previous answer gave. */
		cleanup_free char *at =
		    ocil_xasprintf("/v2/lambda/fn/blobs/uploads/s1?_state=1-%d", i);
		CHECK_STREQ(q->path, at);
		CHECK(q->body_len == (i < 2 ? 120000 : 60000));
	}
	const sreq *put = &s.http.log[4];
	CHECK_STREQ(put->method, "PUT");
	cleanup_free char *want =
	    ocil_xasprintf("/v2/lambda/fn/blobs/uploads/s1?_state=1-3&digest=sha256%%3A%s",
			   ocil_digest_hex(s.blob_digest));
	CHECK_STREQ(put->path, want);
	CHECK(put->body_len == 0 && put->content_type[0] == '\0');

	/* A corrupt file is caught before the session is closed. */
	cleanup_free char *bad = blob_file(&s, true);
	int before = srv_count(&s);
	CHECK_FAIL(ocil_registry_push_blob(r, &d, bad, &err), &err, OCIL_E_INPUT,
		   "-bad: content is sha256:");
	CHECK(srv_count(&s) == before + 5);
	CHECK_STREQ(s.http.log[before + 4].method, "DELETE");

	/* A registry whose Range says it has less than was sent: refused,
	 * the session cancelled. */
	snprintf(s.short_on, sizeof(s.short_on), "s3-p2");
	before = srv_count(&s);
	CHECK_FAIL(ocil_registry_push_blob(r, &d, file, &err), &err, OCIL_E_REGISTRY,
		   "after sending bytes 120000-239999 the registry reports Range 0-239998");
	CHECK(srv_count(&s) == before + 4);
	CHECK_STREQ(s.http.log[before + 3].method, "DELETE");
	s.short_on[0] = '\0';

	/* Cancelled half way: no more requests. */
	ocil_cancel cancel = {.flag = &push_cancel_flag};
	o.cancel = &cancel;
	o.progress = on_progress_cancel;
	cancel_after = 150000;
	cleanup_registry ocil_registry *r2 = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r2, &err), &err);
	before = srv_count(&s);
	int rc = ocil_registry_push_blob(r2, &d, file, &err);
	cancel_after = 0;
	push_cancel_flag = 0;
	CHECK(rc < 0 && err != NULL && err->code == OCIL_E_CANCELLED);
	ocil_error_free(err);
	err = NULL;
	CHECK(srv_count(&s) <= before + 3);
	CHECK_STREQ(s.http.log[srv_count(&s) - 1].method, "PATCH");
}

static void push_retry(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	o.chunk_size = 120000;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	cleanup_free char *file = blob_file(&s, false);

	/* 503 to the second PATCH: the session is cancelled, a new one
	 * uploads everything from byte 0. */
	snprintf(s.fail_on, sizeof(s.fail_on), "s1-p2");
	CHECK_OK(ocil_registry_push_blob(r, &d, file, &err), &err);
	CHECK(s.sessions == 2);
	static const char *const want[] = {"POST",  "PATCH", "PATCH", "DELETE", "POST",
					   "PATCH", "PATCH", "PATCH", "PUT"};
	CHECK(srv_count(&s) == 9);
	for (int i = 0; i < 9; i++)
		CHECK_STREQ(s.http.log[i].method, want[i]);
	CHECK(is_path(&s.http.log[3], "/v2/lambda/fn/blobs/uploads/s1?_state=1-1"));
	CHECK_STREQ(s.http.log[5].content_range, "0-119999");
	cleanup_free char *note = ocil_xasprintf(
	    "%s: retrying blob %s in 0 s (HTTP 503 Service Unavailable)\n", host, s.blob_digest);
	CHECK(strstr(n.text, note) != NULL);

	/* The same in a monolithic upload, and when the budget is spent. */
	o.chunk_size = 0;
	o.retries = 0;
	cleanup_registry ocil_registry *r2 = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r2, &err), &err);
	snprintf(s.fail_on, sizeof(s.fail_on), "s3-put");
	cleanup_free char *gave_up = ocil_xasprintf(
	    "%s/lambda/fn: blob %s: HTTP 503 Service Unavailable (gave up after 1 attempt)", host,
	    s.blob_digest);
	CHECK_FAIL(ocil_registry_push_blob(r2, &d, file, &err), &err, OCIL_E_REGISTRY, gave_up);
	CHECK(s.sessions == 3);
	o.retries = 3;
	cleanup_registry ocil_registry *r3 = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r3, &err), &err);
	snprintf(s.fail_on, sizeof(s.fail_on), "s4-put");
	CHECK_OK(ocil_registry_push_blob(r3, &d, file, &err), &err);
	CHECK(s.sessions == 5);
}

static void put_manifest(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r, &err), &err);
	const char *m = s.manifest;
	size_t len = strlen(m);
	char digest[OCIL_DIGEST_STR_SIZE];
	CHECK_OK(ocil_registry_put_manifest(r, "v1", m, len, OCIL_MT_OCI_MANIFEST, digest, &err),
		 &err);
	CHECK_STREQ(digest, s.manifest_digest);
	const sreq *q = &s.http.log[0];
	CHECK_STREQ(q->method, "PUT");
	CHECK_STREQ(q->path, "/v2/lambda/fn/manifests/v1");
	CHECK_STREQ(q->content_type, OCIL_MT_OCI_MANIFEST);
	CHECK_STREQ(q->body_digest, s.manifest_digest);
	CHECK(q->body_len == len);
	CHECK_OK(ocil_registry_put_manifest(r, s.manifest_digest, m, len, OCIL_MT_DOCKER_MANIFEST,
					    digest, &err),
		 &err);
	CHECK_STREQ(s.http.log[1].content_type, OCIL_MT_DOCKER_MANIFEST);

	CHECK_FAIL(
	    ocil_registry_put_manifest(r, "wrongdcd", m, len, OCIL_MT_OCI_MANIFEST, digest, &err),
	    &err, OCIL_E_REGISTRY,
	    "manifest wrongdcd: Docker-Content-Digest sha256:00000000000000000000000000000"
	    "00000000000000000000000000000000000 does not match the content");
	CHECK_FAIL(ocil_registry_put_manifest(r, "unknownblob", m, len, OCIL_MT_OCI_MANIFEST,
					      digest, &err),
		   &err, OCIL_E_REGISTRY,
		   "manifest unknownblob: MANIFEST_BLOB_UNKNOWN: blob unknown to registry");
	CHECK(srv_count(&s) == 4);
	CHECK_FAIL(ocil_registry_put_manifest(r, s.blob_digest, m, len, OCIL_MT_OCI_MANIFEST,
					      digest, &err),
		   &err, OCIL_E_INPUT, "content is sha256:");
	CHECK_FAIL(
	    ocil_registry_put_manifest(r, "v1", m, len, "text/plain\r\nX-Evil: 1", digest, &err),
	    &err, OCIL_E_INPUT, "invalid media type");
	CHECK(srv_count(&s) == 4);
}

static void push_errors(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	cleanup_free char *host = host_of(&s);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	cleanup_free char *file = blob_file(&s, false);
	char digest[OCIL_DIGEST_STR_SIZE];

	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "nope", &o, &r, &err), &err);
	cleanup_free char *want = ocil_xasprintf(
	    "%s/nope: blob %s: NAME_UNKNOWN: repository name not known to registry (on ECR, "
	    "create the repository first: aws ecr create-repository --repository-name nope)",
	    host, s.blob_digest);
	CHECK_FAIL(ocil_registry_push_blob(r, &d, file, &err), &err, OCIL_E_REGISTRY, want);
	CHECK_FAIL(ocil_registry_put_manifest(r, "v1", s.manifest, strlen(s.manifest),
					      OCIL_MT_OCI_MANIFEST, digest, &err),
		   &err, OCIL_E_REGISTRY,
		   "manifest v1: NAME_UNKNOWN: repository name not known to registry (on ECR, "
		   "create the repository first");

	cleanup_registry ocil_registry *r2 = NULL;
	CHECK_OK(ocil_registry_open(host, "bare404", &o, &r2, &err), &err);
	CHECK_FAIL(ocil_registry_push_blob(r2, &d, file, &err), &err, OCIL_E_REGISTRY,
		   "HTTP 404 Not Found (on ECR, create the repository first: aws ecr "
		   "create-repository --repository-name bare404)");

	cleanup_registry ocil_registry *r3 = NULL;
	CHECK_OK(ocil_registry_open(host, "denied", &o, &r3, &err), &err);
	cleanup_free char *denied = ocil_xasprintf(
	    "%s/denied: push denied: DENIED: requested access to the resource is denied (no "
	    "credentials in ",
	    host);
	CHECK_FAIL(ocil_registry_push_blob(r3, &d, file, &err), &err, OCIL_E_REGISTRY, denied);
	CHECK_FAIL(ocil_registry_put_manifest(r3, "v1", s.manifest, strlen(s.manifest),
					      OCIL_MT_OCI_MANIFEST, digest, &err),
		   &err, OCIL_E_REGISTRY, "push denied: DENIED");
	/* No retries for any of these. */
	CHECK(strstr(n.text, "retrying") == NULL);
}

/* Bearer auth with scopes: tok-p is good for lambda/fn, tok-m also for a
 * mount from lambda/python. Uploads go to 127.0.0.2 (the PUT is redirected
 * there with 307), which must not see the token. */
static void h_push_bearer(srv *s, const sreq *q, int fd)
{
	char extra[1024];
	if (q->listener == 1) {
		char want[160];
		snprintf(want, sizeof(want), "?sig=x&_state=1&digest=sha256%%3A%s",
			 ocil_digest_hex(s->blob_digest));
		if (q->authz[0] != '\0' || strcmp(q->method, "PUT") != 0 ||
		    strcmp(q->path + strcspn(q->path, "?"), want) != 0 ||
		    strcmp(q->body_digest, s->blob_digest) != 0) {
			reply_str(fd, 400, "", "no");
			return;
		}
		snprintf(extra, sizeof(extra), "Docker-Content-Digest: %s\r\n", s->blob_digest);
		reply_str(fd, 201, extra, "");
		return;
	}
	if (is_path(q, "/token?")) {
		bool from = strstr(q->path, "lambda%2Fpython") != NULL;
		reply_str(fd, 200, "Content-Type: application/json\r\n",
			  from ? "{\"token\":\"tok-m\"}" : "{\"token\":\"tok-p\"}");
		return;
	}
	bool mounting = strstr(q->path, "mount=") != NULL;
	if (strcmp(q->authz, "Bearer tok-m") != 0 &&
	    (mounting || strcmp(q->authz, "Bearer tok-p") != 0)) {
		snprintf(extra, sizeof(extra),
			 "WWW-Authenticate: Bearer realm=\"%s/token\",service=\"test.registry\","
			 "scope=\"repository:lambda/fn:push,pull%s\"\r\n",
			 s->realm_base,
			 mounting ? " repository:lambda/python:pull registry:catalog:*" : "");
		reply_str(fd, 401, extra, "");
		return;
	}
	if (mounting) {
		snprintf(extra, sizeof(extra), "Docker-Content-Digest: %s\r\n", s->blob_digest);
		reply_str(fd, 201, extra, "");
	} else if (strcmp(q->method, "POST") == 0) {
		snprintf(extra, sizeof(extra),
			 "Location: http://%s:%d/v2/lambda/fn/blobs/uploads/abs?_state=1\r\n",
			 s->http.addr[0], s->http.port[0]);
		reply_str(fd, 202, extra, "");
	} else if (strcmp(q->method, "PUT") == 0) {
		snprintf(extra, sizeof(extra), "Location: http://127.0.0.2:%d/up?sig=x&%s\r\n",
			 s->http.port[1], q->path + strcspn(q->path, "?") + 1);
		reply_str(fd, 307, extra, "");
	} else {
		reply_str(fd, 404, "", "");
	}
}

static void push_bearer(void)
{
	isolate_auth();
	cleanup_srv srv s;
	srv_start(&s, "127.0.0.1", h_push_bearer);
	ocil_error *err = NULL;
	notes n = {0};
	ocil_registry_opts o = opts(&n);
	o.push = true;
	cleanup_free char *host = host_of(&s);
	cleanup_registry ocil_registry *r = NULL;
	CHECK_OK(ocil_registry_open(host, "lambda/fn", &o, &r, &err), &err);
	ocil_descriptor d = {.size = (int64_t)s.blob_len};
	memcpy(d.digest, s.blob_digest, sizeof(d.digest));
	cleanup_free char *file = blob_file(&s, false);
	CHECK_OK(ocil_registry_push_blob(r, &d, file, &err), &err);
	CHECK(srv_count(&s) == 5);
	/* Push scope, and not the challenge's own again (it asks for less). */
	CHECK_STREQ(s.http.log[1].path,
		    "/token?service=test.registry&scope=repository%3Alambda%2Ffn%3Apull%2Cpush");
	CHECK_STREQ(s.http.log[2].authz, "Bearer tok-p");
	CHECK_STREQ(s.http.log[3].method, "PUT");
	CHECK_STREQ(s.http.log[3].authz, "Bearer tok-p");
	CHECK(s.http.log[4].listener == 1);
	CHECK_STREQ(s.http.log[4].method, "PUT");
	CHECK(s.http.log[4].authz[0] == '\0');
	CHECK_STREQ(s.http.log[4].body_digest, s.blob_digest);

	/* A mount needs pull on the source too: a second token. */
	bool mounted = false;
	CHECK_OK(ocil_registry_mount_blob(r, &d, "lambda/python", &mounted, &err), &err);
	CHECK(mounted);
	CHECK(srv_count(&s) == 8);
	CHECK_STREQ(s.http.log[6].path,
		    "/token?service=test.registry&scope=repository%3Alambda%2Ffn%3A"
		    "pull%2Cpush&scope=repository%3Alambda%2Fpython%3Apull&scope="
		    "registry%3Acatalog%3A%2A");
	CHECK_STREQ(s.http.log[7].authz, "Bearer tok-m");
}

/* --- open --- */

static void open_checks(void)
{
	ocil_error *err = NULL;
	ocil_registry *r = NULL;
	CHECK_FAIL(ocil_registry_open("", "a", NULL, &r, &err), &err, OCIL_E_INPUT,
		   "invalid registry");
	CHECK_FAIL(ocil_registry_open("host:99999", "a", NULL, &r, &err), &err, OCIL_E_INPUT,
		   "invalid registry");
	CHECK_FAIL(ocil_registry_open("user@host", "a", NULL, &r, &err), &err, OCIL_E_INPUT,
		   "invalid registry");
	CHECK_FAIL(ocil_registry_open("host", "A/b", NULL, &r, &err), &err, OCIL_E_INPUT,
		   "invalid repository");
	CHECK_FAIL(ocil_registry_open("host", "a/../b", NULL, &r, &err), &err, OCIL_E_INPUT,
		   "invalid repository");
	CHECK_OK(ocil_registry_open("[::1]:5000", "a/b", NULL, &r, &err), &err);
	ocil_registry_free(r);

	const char *dir = ocil_test_tmpdir();
	ocil_registry_opts o = {.tls_verify = true, .retries = 3, .timeout_s = 60};
	cleanup_free char *nodir = ocil_xasprintf("%s/no-such-dir", dir);
	o.cert_dir = nodir;
	CHECK_FAIL(ocil_registry_open("reg.example", "a", &o, &r, &err), &err, OCIL_E_INPUT,
		   "--cert-dir");
	cleanup_free char *certs = ocil_xasprintf("%s/certs.d", dir);
	CHECK_OK(ocil_mkdir_p(certs, 0755, &err), &err);
	cleanup_free char *junk = ocil_xasprintf("%s/junk.crt", certs);
	FILE *f = fopen(junk, "w");
	fputs("not a certificate\n", f);
	fclose(f);
	o.cert_dir = certs;
	CHECK_FAIL(ocil_registry_open("reg.example", "a", &o, &r, &err), &err, OCIL_E_INPUT,
		   "junk.crt: no PEM certificate");
	unlink(junk);
	/* A real one (any system CA will do); other files are ignored. */
	cleanup_free char *pem = NULL;
	size_t len = 0;
	if (ocil_read_file("/etc/ssl/certs/ca-certificates.crt", 1 << 24, &pem, &len, &err) < 0) {
		ocil_error_free(err);
		err = NULL;
		pem = ocil_xstrdup("-----BEGIN CERTIFICATE-----\n");
	}
	cleanup_free char *good = ocil_xasprintf("%s/ca.crt", certs);
	f = fopen(good, "w");
	fputs(pem, f);
	fclose(f);
	cleanup_free char *key = ocil_xasprintf("%s/client.key", certs);
	f = fopen(key, "w");
	fputs("ignored", f);
	fclose(f);
	o.ca_file = good;
	CHECK_OK(ocil_registry_open("reg.example", "a", &o, &r, &err), &err);
	ocil_registry_free(r);
}

TEST_MAIN(T(manifest_anonymous), T(manifest_bearer), T(redirect_no_credentials), T(basic_auth),
	  T(bearer_bad_credentials), T(retries), T(retries_exhausted), T(connection_refused),
	  T(resume), T(blob_verification), T(manifest_errors), T(no_plain_http_elsewhere),
	  T(blob_exists), T(mount), T(push_monolithic), T(push_chunked), T(push_retry),
	  T(put_manifest), T(push_errors), T(push_bearer), T(open_checks))
