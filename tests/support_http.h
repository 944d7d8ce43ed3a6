/* A tiny HTTP/1.1 server for the unit tests of the clients (registry,
 * package fetcher), run in a thread of the test: one connection at a time,
 * one request per connection (Connection: close), listening on two loopback
 * addresses (the second, 127.0.0.2, is "another host" for redirects). It
 * reads each request whole, logs it, and hands it to the test's handler,
 * which answers on the socket with thttp_reply/thttp_head/thttp_send. */
#ifndef OCIL_SUPPORT_HTTP_H
#define OCIL_SUPPORT_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "base/digest.h"

/* One request, as the server read it. */
typedef struct {
	char method[16];
	char path[2048];
	char host[256];
	char authz[2048];
	char range[128];
	char accept[1024];
	char ua[256];
	char content_type[256];
	char content_range[128];
	char content_length[32];
	char expect[64];
	char te[64];  /* Transfer-Encoding */
	int listener; /* 0: the first address, 1: 127.0.0.2 */
	size_t body_len;
	char body_digest[OCIL_DIGEST_STR_SIZE];
	const char *body; /* only while the handler runs */
} thttp_req;

typedef struct thttp thttp;
typedef void (*thttp_handler)(thttp *s, const thttp_req *q, int fd);

#define THTTP_LOG_MAX 64
/* Request bodies the server accepts; a longer one drops the connection. */
#define THTTP_BODY_MAX ((size_t)4 << 20)

struct thttp {
	int lfd[2];
	int port[2];
	char addr[2][64];
	pthread_t th;
	atomic_int stop;
	thttp_handler h;
	pthread_mutex_t mu;
	thttp_req log[THTTP_LOG_MAX];
	int n;		/* requests logged */
	int tls_probes; /* connections that did not start with an HTTP method */
};

/* Listens on addr0 and 127.0.0.2 (ephemeral ports) and serves with h until
 * thttp_stop; aborts the test when it cannot listen. */
void thttp_start(thttp *s, const char *addr0, thttp_handler h);
void thttp_stop(thttp *s);
/* A listening TCP socket on addr (IPv4) and an ephemeral port, stored in
 * *port; aborts the test when it cannot listen. */
int thttp_listen(const char *addr, int *port);
/* Requests logged so far (locked). */
int thttp_count(thttp *s);

void thttp_send(int fd, const void *buf, size_t len);
/* The reason phrase of a status code. */
const char *thttp_reason(int status);
/* Status line and headers: Content-Length cl (none when cl < 0),
 * Connection: close, then extra ("Name: value\r\n" lines or ""). */
void thttp_head(int fd, int status, long long cl, const char *extra);
/* A complete response. */
void thttp_reply(int fd, int status, const char *extra, const void *body, size_t len);

#endif
