/* The unit tests' HTTP server (see support_http.h). */
#include "support_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "base/util.h"

void thttp_send(int fd, const void *buf, size_t len)
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

const char *thttp_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 302:
		return "Found";
	case 307:
		return "Temporary Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	default:
		return "Whatever";
	}
}

void thttp_head(int fd, int status, long long cl, const char *extra)
{
	cleanup_free char *cls =
	    cl >= 0 ? ocil_xasprintf("Content-Length: %lld\r\n", cl) : ocil_xstrdup("");
	cleanup_free char *h = ocil_xasprintf("HTTP/1.1 %d %s\r\n%sConnection: close\r\n%s\r\n",
					      status, thttp_reason(status), cls, extra);
	thttp_send(fd, h, strlen(h));
}

void thttp_reply(int fd, int status, const char *extra, const void *body, size_t len)
{
	thttp_head(fd, status, (long long)len, extra);
	thttp_send(fd, body, len);
}

/* The value of header name in headers ("Name: value\r\n" lines), cut to
 * max - 1 bytes; "" when absent. */
static void header_value(const char *headers, const char *name, char *out, size_t max)
{
	out[0] = '\0';
	size_t nl = strlen(name);
	for (const char *p = headers; *p != '\0';) {
		const char *eol = strstr(p, "\r\n");
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t n = (size_t)(eol - v);
			if (n >= max)
				n = max - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return;
		}
		p = eol + 2;
	}
}

static void handle_conn(thttp *s, int fd, int which)
{
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[16384];
	size_t n = 0;
	while (n < sizeof(buf) - 1) {
		ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (r <= 0)
			return;
		/* A TLS ClientHello (the client probing for https): hang up,
		 * as a plain http server's garbage answer would end it too. */
		if (n == 0 && !(buf[0] >= 'A' && buf[0] <= 'Z')) {
			pthread_mutex_lock(&s->mu);
			s->tls_probes++;
			pthread_mutex_unlock(&s->mu);
			return;
		}
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			break;
	}
	thttp_req q = {.listener = which};
	if (sscanf(buf, "%15s %2047s", q.method, q.path) != 2)
		return;
	char *end = strstr(buf, "\r\n\r\n");
	if (end == NULL)
		return;
	end[2] = '\0'; /* headers end with the last "\r\n" */
	const char *hdrs = strstr(buf, "\r\n");
	hdrs = hdrs ? hdrs + 2 : "";
	static const struct {
		const char *name;
		size_t off, size;
	} fields[] = {
#define F(name, member) {name, offsetof(thttp_req, member), sizeof(((thttp_req *)0)->member)}
	    F("Host", host),
	    F("Authorization", authz),
	    F("Range", range),
	    F("Accept", accept),
	    F("User-Agent", ua),
	    F("Content-Type", content_type),
	    F("Content-Range", content_range),
	    F("Content-Length", content_length),
	    F("Expect", expect),
	    F("Transfer-Encoding", te),
#undef F
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		header_value(hdrs, fields[i].name, (char *)&q + fields[i].off, fields[i].size);
	/* The body: what came with the headers, then the rest. */
	size_t want = q.content_length[0] ? strtoul(q.content_length, NULL, 10) : 0;
	if (want > THTTP_BODY_MAX)
		return;
	cleanup_free char *body = ocil_xmalloc(want + 1);
	size_t have = n - (size_t)(end + 4 - buf);
	if (have > want)
		have = want;
	memcpy(body, end + 4, have);
	while (have < want) {
		ssize_t r = recv(fd, body + have, want - have, 0);
		if (r <= 0)
			return;
		have += (size_t)r;
	}
	body[want] = '\0';
	q.body_len = want;
	ocil_digest_buf(body, want, q.body_digest);
	pthread_mutex_lock(&s->mu);
	if (s->n < THTTP_LOG_MAX)
		s->log[s->n++] = q;
	pthread_mutex_unlock(&s->mu);
	q.body = body;
	s->h(s, &q, fd);
}

static void *serve(void *arg)
{
	thttp *s = arg;
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

int thttp_listen(const char *addr, int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		fprintf(stderr, "test server: cannot listen on %s: %m\n", addr);
		abort();
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

void thttp_start(thttp *s, const char *addr0, thttp_handler h)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	snprintf(s->addr[0], sizeof(s->addr[0]), "%s", addr0);
	snprintf(s->addr[1], sizeof(s->addr[1]), "127.0.0.2");
	s->lfd[0] = thttp_listen(s->addr[0], &s->port[0]);
	s->lfd[1] = thttp_listen(s->addr[1], &s->port[1]);
	s->h = h;
	if (pthread_create(&s->th, NULL, serve, s) != 0) {
		fprintf(stderr, "test server: cannot start its thread\n");
		abort();
	}
}

void thttp_stop(thttp *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	close(s->lfd[0]);
	close(s->lfd[1]);
	pthread_mutex_destroy(&s->mu);
}

int thttp_count(thttp *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->n;
	pthread_mutex_unlock(&s->mu);
	return n;
}
