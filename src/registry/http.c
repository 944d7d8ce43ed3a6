#include "registry/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/util.h"
#include "base/version.h"

#define CA_FILE_MAX ((size_t)16 << 20)

long long ocil_http_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool ocil_http_is_loopback(const char *hostname)
{
	if (strcasecmp(hostname, "localhost") == 0)
		return true;
	struct in_addr a4;
	if (inet_pton(AF_INET, hostname, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	size_t n = strlen(hostname);
	if (n > 2 && hostname[0] == '[' && hostname[n - 1] == ']') {
		cleanup_free char *inner = ocil_xstrndup(hostname + 1, n - 2);
		struct in6_addr a6;
		return inet_pton(AF_INET6, inner, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

char *ocil_http_url_origin(const char *url, char **host_out)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *res = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		for (char *p = host; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		for (char *p = scheme; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		res = ocil_xasprintf("%s://%s:%s", scheme, host, port);
		if (host_out != NULL)
			*host_out = ocil_xstrdup(host);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return res;
}

char *ocil_http_trimmed(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return ocil_xstrndup(s, n);
}

static int append_file(const char *path, size_t max, char **buf, size_t *len, bool need_cert,
		       ocil_error **err)
{
	cleanup_free char *data = NULL;
	size_t n = 0;
	if (ocil_read_file(path, max, &data, &n, err) < 0)
		return -1;
	if (need_cert && strstr(data, "-----BEGIN CERTIFICATE-----") == NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: no PEM certificate in it", path);
	*buf = ocil_xrealloc(*buf, *len + n + 2);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[(*len)++] = '\n';
	(*buf)[*len] = '\0';
	return 0;
}

/* One in-memory PEM bundle (CURLOPT_CAINFO_BLOB): OpenSSL's CAPATH wants
 * c_rehash names, which certs.d directories do not have. The blob replaces
 * curl's CA file, so the system bundle is put first to keep trusting public
 * CAs (redirect targets need them). */
int ocil_http_load_cas(CURL *c, const char *ca_file, const char *cert_dir, char **pem, size_t *len,
		       ocil_error **err)
{
	*pem = NULL;
	*len = 0;
	if (ca_file == NULL && cert_dir == NULL)
		return 0;
	cleanup_free char *buf = NULL;
	size_t n = 0;
	char *sys = NULL;
	if (curl_easy_getinfo(c, CURLINFO_CAINFO, &sys) == CURLE_OK && sys != NULL) {
		ocil_error *ignored = NULL;
		if (append_file(sys, CA_FILE_MAX, &buf, &n, false, &ignored) < 0)
			ocil_error_free(ignored); /* no system bundle: only the given CAs */
	}
	if (ca_file != NULL && append_file(ca_file, CA_FILE_MAX, &buf, &n, true, err) < 0)
		return ocil_error_wrap(err, "--ca-file");
	if (cert_dir != NULL) {
		DIR *d = opendir(cert_dir);
		if (d == NULL)
			return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "--cert-dir %s",
						    cert_dir);
		ocil_strv names = {0};
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			if (ocil_str_has_suffix(e->d_name, ".crt"))
				ocil_strv_push(&names,
					       ocil_xasprintf("%s/%s", cert_dir, e->d_name));
		closedir(d);
		ocil_strv_sort(&names);
		int rc = 0;
		for (size_t i = 0; i < names.n && rc == 0; i++)
			rc = append_file(names.v[i], CA_FILE_MAX, &buf, &n, true, err);
		ocil_strv_clear(&names);
		if (rc < 0)
			return ocil_error_wrap(err, "--cert-dir");
	}
	*pem = steal_pointer(&buf);
	*len = n;
	return 0;
}

bool ocil_http_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

char *ocil_http_net_error(const char *host, CURLcode rc, const char *errbuf)
{
	const char *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		return ocil_xasprintf("%s: cannot connect: %s", host, detail);
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		return ocil_xasprintf("%s: TLS: %s (a private CA goes in --cert-dir or --ca-file)",
				      host, detail);
	case CURLE_OPERATION_TIMEDOUT:
		return ocil_xasprintf("%s: timed out: %s", host, detail);
	default:
		return ocil_xasprintf("%s: transfer failed: %s", host, detail);
	}
}

char *ocil_http_header(CURL *c, const char *name)
{
	struct curl_header *h = NULL;
	if (curl_easy_header(c, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	if (h->amount > 1 &&
	    curl_easy_header(c, name, h->amount - 1, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return ocil_http_trimmed(h->value, strlen(h->value));
}

size_t ocil_http_header_all(CURL *c, const char *name, char **out, size_t max)
{
	size_t n = 0;
	struct curl_header *h = NULL;
	for (size_t i = 0; n < max; i++) {
		if (curl_easy_header(c, name, i, CURLH_HEADER, -1, &h) != CURLHE_OK)
			break;
		out[n++] = ocil_http_trimmed(h->value, strlen(h->value));
		if (i + 1 >= h->amount)
			break;
	}
	return n;
}

long ocil_http_retry_after_s(bool present, curl_off_t seconds)
{
	if (!present)
		return -1;
	if (seconds <= 0)
		return 0;
	return seconds > OCIL_HTTP_RETRY_AFTER_MAX_S ? OCIL_HTTP_RETRY_AFTER_MAX_S : (long)seconds;
}

long ocil_http_retry_after(CURL *c)
{
	struct curl_header *h = NULL;
	bool present = curl_easy_header(c, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK;
	curl_off_t seconds = 0;
	if (present && curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &seconds) != CURLE_OK)
		seconds = 0;
	return ocil_http_retry_after_s(present, seconds);
}

int ocil_http_retry_delay(int used, int retries, long long deadline_ms, long timeout_s,
			  long retry_after_s, const char *full, long *delay_s, ocil_error **err)
{
	if (used >= retries)
		return ocil_error_set(err, OCIL_E_REGISTRY, "%s (gave up after %d attempt%s)", full,
				      used + 1, used ? "s" : "");
	long delay = retry_after_s >= 0 ? retry_after_s : 1L << (used < 20 ? used : 20);
	long max = retry_after_s >= 0 ? OCIL_HTTP_RETRY_AFTER_MAX_S : OCIL_HTTP_BACKOFF_MAX_S;
	if (delay > max)
		delay = max;
	if (ocil_http_now_ms() + delay * 1000 > deadline_ms)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "%s (no time left to retry within %ld s)", full, timeout_s);
	*delay_s = delay;
	return 0;
}

/* The parts of url that are secret: [start, end) pairs, at most max. */
static size_t secret_spans(const char *url, size_t spans[][2], size_t max)
{
	size_t n = 0;
	const char *scheme_end = strstr(url, "://");
	if (scheme_end == NULL)
		return 0;
	const char *auth = scheme_end + 3;
	const char *auth_end = auth + strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', (size_t)(auth_end - auth));
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon != NULL && colon + 1 < at && n < max) {
		spans[n][0] = (size_t)(colon + 1 - url);
		spans[n][1] = (size_t)(at - url);
		n++;
	}
	const char *path_end = auth_end + strcspn(auth_end, "?#");
	for (const char *p = auth_end; p < path_end && n < max;) {
		const char *t = strstr(p, "/t/");
		if (t == NULL || t >= path_end)
			break;
		const char *tok = t + 3;
		const char *slash = memchr(tok, '/', (size_t)(path_end - tok));
		if (slash == NULL)
			break;
		if (slash > tok) {
			spans[n][0] = (size_t)(tok - url);
			spans[n][1] = (size_t)(slash - url);
			n++;
		}
		p = slash;
	}
	return n;
}

#define MAX_SECRETS 8

char *ocil_url_redact(const char *url)
{
	size_t spans[MAX_SECRETS][2];
	size_t n = secret_spans(url, spans, MAX_SECRETS);
	char *out = ocil_xstrdup("");
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		char *next = ocil_xasprintf("%s%.*s***", out, (int)(spans[i][0] - at), url + at);
		free(out);
		out = next;
		at = spans[i][1];
	}
	char *full = ocil_xasprintf("%s%s", out, url + at);
	free(out);
	return full;
}

char *ocil_url_public(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	if (scheme_end == NULL)
		return ocil_xstrdup(url);
	const char *auth = scheme_end + 3;
	const char *auth_end = auth + strcspn(auth, "/?#");
	const char *at = memrchr(auth, '@', (size_t)(auth_end - auth));
	const char *path_end = auth_end + strcspn(auth_end, "?#");
	/* scheme://, then the host without user information */
	char *out = ocil_xasprintf("%.*s%.*s", (int)(auth - url), url,
				   (int)(auth_end - (at ? at + 1 : auth)), at ? at + 1 : auth);
	for (const char *p = auth_end; p < path_end;) {
		const char *t = strstr(p, "/t/");
		const char *slash =
		    t && t < path_end ? memchr(t + 3, '/', (size_t)(path_end - t - 3)) : NULL;
		const char *keep_end = slash ? t : path_end;
		char *next = ocil_xasprintf("%s%.*s", out, (int)(keep_end - p), p);
		free(out);
		out = next;
		p = slash ? slash : path_end;
	}
	char *full = ocil_xasprintf("%s%s", out, path_end);
	free(out);
	return full;
}

void ocil_url_secrets(const char *url, ocil_strv *out)
{
	size_t spans[MAX_SECRETS][2];
	size_t n = secret_spans(url, spans, MAX_SECRETS);
	for (size_t i = 0; i < n; i++)
		ocil_strv_push(out, ocil_xstrndup(url + spans[i][0], spans[i][1] - spans[i][0]));
}

char *ocil_mask_secrets(const char *msg, const ocil_strv *secrets)
{
	char *s = ocil_xstrdup(msg);
	for (size_t i = 0; secrets != NULL && i < secrets->n; i++) {
		const char *sec = secrets->v[i];
		size_t len = strlen(sec);
		if (len == 0)
			continue;
		char *out = ocil_xstrdup("");
		const char *p = s;
		for (const char *hit; (hit = strstr(p, sec)) != NULL; p = hit + len) {
			char *next = ocil_xasprintf("%s%.*s***", out, (int)(hit - p), p);
			free(out);
			out = next;
		}
		char *next = ocil_xasprintf("%s%s", out, p);
		free(out);
		free(s);
		s = next;
	}
	return s;
}

void ocil_http_setup(CURL *c, long long deadline_ms, const char *ca, size_t ca_len, bool verify)
{
	long long left = deadline_ms - ocil_http_now_ms();
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ocilambda/" OCIL_VERSION);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)OCIL_HTTP_CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)OCIL_HTTP_STALL_TIME_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
	if (ca != NULL) {
		struct curl_blob blob = {
		    .data = (void *)ca, .len = ca_len, .flags = CURL_BLOB_NOCOPY};
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
	}
	if (!verify) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}
