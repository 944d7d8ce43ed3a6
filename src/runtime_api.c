/* runtime_api: one poll loop over two listeners and their connections. */
#include "runtime_api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAX_CONNS 64
/* Invoke clients get at most this many of them: the rest stay for the
 * function's runtime client, which no number of idle curl connections may
 * lock out of /next. */
#define MAX_INVOKE_CONNS 48
#define MAX_HEADER ((size_t)64 << 10)
#define API "/2018-06-01"
#define NEXT_PATH API "/runtime/invocation/next"
#define INVOCATION_PREFIX API "/runtime/invocation/"
#define INIT_ERROR_PATH API "/runtime/init/error"
#define INVOKE_PREFIX "/2015-03-31/functions/"
#define INVOKE_SUFFIX "/invocations"

typedef struct invocation {
	char id[40];
	char *body;
	size_t len;
	uint64_t client; /* the invoke connection waiting for it, 0: none */
	struct invocation *next;
} invocation;

typedef struct {
	int fd;
	uint64_t id;
	bool runtime_side; /* accepted on the runtime listener */
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off;
	bool close_after, parked, waiting, continued;
	/* a chunked body arriving: chunks before chunk_off (from the body's
	 * start) are validated and hold chunk_total bytes, so that each read
	 * scans only what is new */
	size_t chunk_off, chunk_total;
} conn;

/* A parsed request; body points into the connection's buffer or into
 * decoded (chunked). */
typedef struct {
	char method[8];
	char path[512];
	bool keep_alive;
	char error_type[128];
	const char *body;
	size_t len;
	char *decoded;
	size_t consumed; /* bytes of the input buffer it took */
} request;

struct ocil_rapi {
	ocil_rapi_opts o;
	char *arn;
	int listen_rt, listen_inv, port, invoke_port;
	conn conns[MAX_CONNS];
	size_t n_conns;
	uint64_t next_conn_id;
	invocation *queue, *current;
	ocil_rapi_event *events;
	size_t n_events, cap_events;
};

void ocil_rapi_event_clear(ocil_rapi_event *ev)
{
	free(ev->body);
	free(ev->error_type);
	memset(ev, 0, sizeof(*ev));
}

static int listen_on(int port, int *fd_out, int *port_out, ocil_error **err)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "socket");
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (port > 0) {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		if (e == EADDRINUSE)
			return ocil_error_set(
			    err, OCIL_E_USAGE,
			    "--port %d: 127.0.0.1:%d is in use (pick another port)", port, port);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "listening on 127.0.0.1:%d", port);
	}
	socklen_t len = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		int e = errno;
		close(fd);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "getsockname");
	}
	*fd_out = fd;
	*port_out = ntohs(a.sin_port);
	return 0;
}

int ocil_rapi_open(const ocil_rapi_opts *o, ocil_rapi **out, ocil_error **err)
{
	ocil_rapi *r = ocil_xcalloc(1, sizeof(*r));
	r->o = *o;
	r->arn = ocil_xstrdup(o->function_arn ? o->function_arn : "");
	r->listen_rt = r->listen_inv = -1;
	r->next_conn_id = 1;
	if (listen_on(0, &r->listen_rt, &r->port, err) < 0 ||
	    (o->invoke_port != 0 && listen_on(o->invoke_port > 0 ? o->invoke_port : 0,
					      &r->listen_inv, &r->invoke_port, err) < 0)) {
		ocil_rapi_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

int ocil_rapi_port(const ocil_rapi *r)
{
	return r->port;
}

int ocil_rapi_invoke_port(const ocil_rapi *r)
{
	return r->invoke_port;
}

static void hex(char *out, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void random_bytes(unsigned char *b, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = getrandom(b + got, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	/* no entropy at all (a very old kernel): ids only need to differ */
	for (; got < n; got++)
		b[got] = (unsigned char)(rand() & 0xff);
}

static void new_request_id(char out[40])
{
	unsigned char b[16];
	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	char h[33];
	hex(h, b, 16);
	snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

static void enqueue(ocil_rapi *r, const char *body, size_t len, uint64_t client)
{
	invocation *inv = ocil_xcalloc(1, sizeof(*inv));
	new_request_id(inv->id);
	inv->body = ocil_xmalloc(len + 1);
	memcpy(inv->body, body, len);
	inv->body[len] = '\0';
	inv->len = len;
	inv->client = client;
	invocation **p = &r->queue;
	while (*p != NULL)
		p = &(*p)->next;
	*p = inv;
}

void ocil_rapi_submit(ocil_rapi *r, const char *body, size_t len)
{
	enqueue(r, body, len, 0);
}

static void invocation_free(invocation *inv)
{
	if (inv == NULL)
		return;
	free(inv->body);
	free(inv);
}

static void push_event(ocil_rapi *r, ocil_rapi_kind kind, const char *id, const char *body,
		       size_t len, const char *error_type)
{
	if (r->n_events == r->cap_events) {
		r->cap_events = r->cap_events ? r->cap_events * 2 : 8;
		r->events = ocil_xrealloc(r->events, r->cap_events * sizeof(*r->events));
	}
	ocil_rapi_event *ev = &r->events[r->n_events++];
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	snprintf(ev->id, sizeof(ev->id), "%s", id ? id : "");
	if (body != NULL) {
		ev->body = ocil_xmalloc(len + 1);
		memcpy(ev->body, body, len);
		ev->body[len] = '\0';
		ev->len = len;
	}
	if (error_type != NULL && error_type[0] != '\0')
		ev->error_type = ocil_xstrdup(error_type);
}

static conn *find_conn(ocil_rapi *r, uint64_t id)
{
	for (size_t i = 0; id != 0 && i < r->n_conns; i++)
		if (r->conns[i].id == id)
			return &r->conns[i];
	return NULL;
}

static const char *reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Request Entity Too Large";
	case 502:
		return "Bad Gateway";
	case 504:
		return "Gateway Timeout";
	}
	return "Error";
}

static void out_append(conn *c, const char *buf, size_t len)
{
	c->out = ocil_xrealloc(c->out, c->out_len + len + 1);
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
}

/* Queue a response; extra: more header lines, each ending in \r\n. */
static void reply(conn *c, int status, const char *extra, const char *body, size_t len,
		  bool keep_alive)
{
	cleanup_free char *head =
	    ocil_xasprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			   "Content-Length: %zu\r\n%s%s\r\n",
			   status, reason(status), len, extra ? extra : "",
			   keep_alive ? "" : "Connection: close\r\n");
	out_append(c, head, strlen(head));
	out_append(c, body, len);
	if (!keep_alive)
		c->close_after = true;
}

static void reply_json(conn *c, int status, const char *body, bool keep_alive)
{
	reply(c, status, NULL, body, strlen(body), keep_alive);
}

/* Answer the invoke client waiting for inv, if it is still there. */
static void answer_client(ocil_rapi *r, const invocation *inv, int status, const char *extra,
			  const char *body, size_t len)
{
	conn *c = find_conn(r, inv->client);
	if (c == NULL || !c->waiting)
		return;
	c->waiting = false;
	reply(c, status, extra, body, len, !c->close_after);
}

/* The invocation running, else the first queued one, ends with this
 * answer to its client (when it still waits) and is forgotten. */
static void fail_head(ocil_rapi *r, int status, const char *extra, const char *body, size_t len)
{
	invocation *inv = r->current ? r->current : r->queue;
	if (inv == NULL)
		return;
	answer_client(r, inv, status, extra, body, len);
	if (inv == r->current)
		r->current = NULL;
	else
		r->queue = inv->next;
	invocation_free(inv);
}

static void close_conn(ocil_rapi *r, size_t i)
{
	conn *c = &r->conns[i];
	close(c->fd);
	free(c->in);
	free(c->out);
	r->conns[i] = r->conns[--r->n_conns];
}

static void hand_out(ocil_rapi *r)
{
	if (r->current != NULL || r->queue == NULL)
		return;
	conn *c = NULL;
	for (size_t i = 0; i < r->n_conns && c == NULL; i++)
		if (r->conns[i].parked)
			c = &r->conns[i];
	if (c == NULL)
		return;
	invocation *inv = r->queue;
	r->queue = inv->next;
	inv->next = NULL;
	r->current = inv;
	c->parked = false;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long long deadline = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + r->o.timeout_ms;
	unsigned char b[20];
	random_bytes(b, sizeof(b));
	char root[25], parent[17];
	hex(root, b, 12);
	hex(parent, b + 12, 8);
	cleanup_free char *extra = ocil_xasprintf(
	    "Lambda-Runtime-Aws-Request-Id: %s\r\nLambda-Runtime-Deadline-Ms: %lld\r\n"
	    "Lambda-Runtime-Invoked-Function-Arn: %s\r\n"
	    "Lambda-Runtime-Trace-Id: Root=1-%08llx-%s;Parent=%s;Sampled=0\r\n",
	    inv->id, deadline, r->arn, (unsigned long long)now.tv_sec, root, parent);
	reply(c, 200, extra, inv->body, inv->len, !c->close_after);
	push_event(r, OCIL_RAPI_STARTED, inv->id, NULL, 0, NULL);
}

/* How many times name appears in the header block hdr (lines after the
 * request line); the first value is copied into out when there is one. */
static int header_n(const char *hdr, size_t hlen, const char *name, char *out, size_t outsz)
{
	size_t nlen = strlen(name);
	const char *p = hdr, *end = hdr + hlen;
	int found = 0;
	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0 &&
		    found++ == 0) {
			const char *v = p + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			size_t n = (size_t)(ve - v);
			if (n >= outsz)
				n = outsz - 1;
			memcpy(out, v, n);
			out[n] = '\0';
		}
		p = eol + 2;
	}
	return found;
}

static bool header(const char *hdr, size_t hlen, const char *name, char *out, size_t outsz)
{
	return header_n(hdr, hlen, name, out, outsz) > 0;
}

/* One chunk-size line at p + off (len bytes in all): 1 with the chunk's
 * size in *n and its data's offset in *data, 0 when the line is not all
 * there yet, -1 when it is not bare hex digits (no sign, no "0x", no
 * spaces) with an optional extension, or longer than 64 bytes, -2 when the
 * size is over the body limit. */
static int chunk_line(const char *p, size_t off, size_t len, size_t *n, size_t *data)
{
	const char *eol = memmem(p + off, len - off, "\r\n", 2);
	if (eol == NULL)
		return len - off > 64 ? -1 : 0;
	if (eol - (p + off) > 64)
		return -1;
	size_t v = 0;
	const char *q = p + off;
	for (; q < eol && isxdigit((unsigned char)*q); q++) {
		v = v * 16 + (size_t)(isdigit((unsigned char)*q)
					  ? *q - '0'
					  : (tolower((unsigned char)*q) - 'a' + 10));
		if (v > OCIL_RAPI_MAX_BODY)
			return -2;
	}
	if (q == p + off || (q != eol && *q != ';'))
		return -1;
	*n = v;
	*data = (size_t)(eol - p) + 2;
	return 1;
}

/* Scan a chunked body starting at p (len bytes available), resuming at the
 * connection's chunk_off. Returns 1 when the last chunk and the trailers
 * are in (*used: the body's length on the wire), 0 when more input is
 * needed, -1 when malformed, -2 when too large. */
static int chunk_scan(conn *c, const char *p, size_t len, size_t *used)
{
	for (;;) {
		size_t n = 0, data = 0;
		int r = chunk_line(p, c->chunk_off, len, &n, &data);
		if (r <= 0)
			return r;
		if (c->chunk_total + n > OCIL_RAPI_MAX_BODY)
			return -2;
		if (n == 0) {
			/* trailers, then an empty line */
			const char *fin = memmem(p + data - 2, len - (data - 2), "\r\n\r\n", 4);
			if (fin == NULL)
				return len - data > MAX_HEADER ? -1 : 0;
			*used = (size_t)(fin - p) + 4;
			return 1;
		}
		if (len < data + n + 2)
			return 0;
		if (memcmp(p + data + n, "\r\n", 2) != 0)
			return -1;
		c->chunk_total += n;
		c->chunk_off = data + n + 2;
	}
}

/* The data of a chunked body that chunk_scan found whole (len bytes on the
 * wire, total of data), into one buffer. */
static char *dechunk(const char *p, size_t len, size_t total)
{
	char *buf = ocil_xmalloc(total + 1);
	size_t off = 0, got = 0, n = 0, data = 0;
	while (got < total && chunk_line(p, off, len, &n, &data) == 1) {
		memcpy(buf + got, p + data, n);
		got += n;
		off = data + n + 2;
	}
	buf[total] = '\0';
	return buf;
}

/* 1: a whole request in req; 0: need more; -1: bad (status in *status). */
static int parse(conn *c, request *req, int *status)
{
	memset(req, 0, sizeof(*req));
	const char *hend = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	if (hend == NULL) {
		*status = 400;
		return c->in_len > MAX_HEADER ? -1 : 0;
	}
	size_t hlen = (size_t)(hend - c->in);
	if (hlen > MAX_HEADER) {
		*status = 400;
		return -1;
	}
	const char *eol = memmem(c->in, hlen + 2, "\r\n", 2);
	char version[16] = "";
	char line[600];
	size_t ll = (size_t)(eol - c->in);
	if (ll >= sizeof(line)) {
		*status = 400;
		return -1;
	}
	memcpy(line, c->in, ll);
	line[ll] = '\0';
	*status = 400;
	if (sscanf(line, "%7s %511s %15s", req->method, req->path, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0)
		return -1;
	const char *hdr = eol + 2;
	size_t hl = hlen > ll + 2 ? hlen - ll - 2 : 0;
	char v[128];
	req->keep_alive = strcmp(version, "HTTP/1.1") == 0;
	if (header(hdr, hl, "Connection", v, sizeof(v)))
		req->keep_alive = strcasecmp(v, "close") != 0 &&
				  (req->keep_alive || strcasecmp(v, "keep-alive") == 0);
	header(hdr, hl, "Lambda-Runtime-Function-Error-Type", req->error_type,
	       sizeof(req->error_type));
	size_t body_at = hlen + 4;
	/* Two framings, or one given twice: which one ends the body is what
	 * request smuggling plays on (RFC 9112 6.1 and 6.3 allow rejecting) */
	char cl[64];
	int n_te = header_n(hdr, hl, "Transfer-Encoding", v, sizeof(v));
	int n_cl = header_n(hdr, hl, "Content-Length", cl, sizeof(cl));
	if (n_te > 1 || n_cl > 1 || (n_te > 0 && n_cl > 0))
		return -1;
	if (n_te > 0) {
		if (strcasecmp(v, "chunked") != 0)
			return -1;
		size_t used = 0;
		int r = chunk_scan(c, c->in + body_at, c->in_len - body_at, &used);
		if (r < 0) {
			*status = r == -2 ? 413 : 400;
			return -1;
		}
		if (r == 0)
			goto more;
		req->len = c->chunk_total;
		req->decoded = dechunk(c->in + body_at, used, req->len);
		req->body = req->decoded;
		req->consumed = body_at + used;
		return 1;
	}
	size_t clen = 0;
	if (n_cl > 0) {
		if (strlen(cl) >= sizeof(cl) - 1) /* perhaps cut short */
			return -1;
		char *end = NULL;
		unsigned long long n = strtoull(cl, &end, 10);
		if (!isdigit((unsigned char)cl[0]) || *end != '\0') /* no sign, no list */
			return -1;
		if (n > OCIL_RAPI_MAX_BODY) {
			*status = 413;
			return -1;
		}
		clen = (size_t)n;
	}
	if (c->in_len - body_at < clen)
		goto more;
	req->body = c->in + body_at;
	req->len = clen;
	req->consumed = body_at + clen;
	return 1;
more:
	if (!c->continued && header(hdr, hl, "Expect", v, sizeof(v)) &&
	    strcasecmp(v, "100-continue") == 0) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		out_append(c, cont, sizeof(cont) - 1);
		c->continued = true;
	}
	return 0;
}

static const char ok_body[] = "{\"status\":\"OK\"}";

static void on_runtime_request(ocil_rapi *r, conn *c, const request *q)
{
	bool ka = q->keep_alive;
	if (strcmp(q->path, NEXT_PATH) == 0) {
		if (strcmp(q->method, "GET") != 0) {
			reply_json(c, 405, "{\"errorMessage\":\"use GET\"}", ka);
			return;
		}
		c->parked = true;
		if (!ka)
			c->close_after = true;
		hand_out(r);
		return;
	}
	if (strcmp(q->method, "POST") != 0) {
		reply_json(c, 404, "{\"errorMessage\":\"not found\"}", ka);
		return;
	}
	if (strcmp(q->path, INIT_ERROR_PATH) == 0) {
		push_event(r, OCIL_RAPI_INIT_ERROR, "", q->body, q->len, q->error_type);
		/* the invocation it was started for fails with it */
		fail_head(r, 200, "X-Amz-Function-Error: Unhandled\r\n", q->body, q->len);
		reply_json(c, 202, ok_body, ka);
		return;
	}
	if (ocil_str_has_prefix(q->path, INVOCATION_PREFIX)) {
		const char *id = q->path + strlen(INVOCATION_PREFIX);
		const char *slash = strchr(id, '/');
		invocation *inv = r->current;
		bool is_response = slash && strcmp(slash, "/response") == 0;
		bool is_error = slash && strcmp(slash, "/error") == 0;
		if (!is_response && !is_error) {
			reply_json(c, 404, "{\"errorMessage\":\"not found\"}", ka);
			return;
		}
		if (inv == NULL || strlen(inv->id) != (size_t)(slash - id) ||
		    strncmp(inv->id, id, (size_t)(slash - id)) != 0) {
			reply_json(c, 400,
				   "{\"errorMessage\":\"Invalid request ID\","
				   "\"errorType\":\"InvalidRequestID\"}",
				   ka);
			return;
		}
		push_event(r, is_response ? OCIL_RAPI_RESPONSE : OCIL_RAPI_ERROR, inv->id, q->body,
			   q->len, q->error_type);
		answer_client(r, inv, 200,
			      is_response ? NULL : "X-Amz-Function-Error: Unhandled\r\n", q->body,
			      q->len);
		r->current = NULL;
		invocation_free(inv);
		reply_json(c, 202, ok_body, ka);
		hand_out(r);
		return;
	}
	reply_json(c, 404, "{\"errorMessage\":\"not found\"}", ka);
}

static void on_invoke_request(ocil_rapi *r, conn *c, const request *q)
{
	const char *name = q->path + strlen(INVOKE_PREFIX);
	bool match = ocil_str_has_prefix(q->path, INVOKE_PREFIX) &&
		     ocil_str_has_suffix(name, INVOKE_SUFFIX) &&
		     strlen(name) > strlen(INVOKE_SUFFIX);
	if (!match) {
		reply_json(c, 404, "{\"errorMessage\":\"not found\"}", q->keep_alive);
		return;
	}
	if (strcmp(q->method, "POST") != 0) {
		reply_json(c, 405, "{\"errorMessage\":\"use POST\"}", q->keep_alive);
		return;
	}
	c->waiting = true;
	if (!q->keep_alive)
		c->close_after = true;
	enqueue(r, q->body, q->len, c->id);
	push_event(r, OCIL_RAPI_QUEUED, "", NULL, 0, NULL);
	hand_out(r);
}

/* Handle the requests buffered on c while it is not waiting on one. */
static void process(ocil_rapi *r, conn *c)
{
	while (!c->parked && !c->waiting && !c->close_after && c->in_len > 0) {
		request q;
		int status = 0;
		int k = parse(c, &q, &status);
		if (k == 0)
			return;
		if (k < 0) {
			c->in_len = 0;
			c->chunk_off = c->chunk_total = 0;
			reply_json(c, status,
				   status == 413 ? "{\"errorMessage\":\"Request Entity Too Large\"}"
						 : "{\"errorMessage\":\"bad request\"}",
				   false);
			return;
		}
		c->continued = false;
		c->chunk_off = c->chunk_total = 0;
		if (c->runtime_side)
			on_runtime_request(r, c, &q);
		else
			on_invoke_request(r, c, &q);
		free(q.decoded);
		memmove(c->in, c->in + q.consumed, c->in_len - q.consumed);
		c->in_len -= q.consumed;
	}
}

static void accept_on(ocil_rapi *r, int lfd, bool runtime_side)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		size_t same = 0;
		for (size_t i = 0; i < r->n_conns; i++)
			same += r->conns[i].runtime_side == runtime_side;
		if (r->n_conns == MAX_CONNS || (!runtime_side && same >= MAX_INVOKE_CONNS)) {
			close(fd);
			continue;
		}
		conn *c = &r->conns[r->n_conns++];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->id = r->next_conn_id++;
		c->runtime_side = runtime_side;
	}
}

/* Read what is there; false when the peer is gone. */
static bool read_conn(conn *c)
{
	for (;;) {
		if (c->in_cap - c->in_len < 4096) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 8192;
			c->in = ocil_xrealloc(c->in, c->in_cap);
		}
		ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
		if (n > 0) {
			c->in_len += (size_t)n;
			/* a request can never be larger than this */
			if (c->in_len > OCIL_RAPI_MAX_BODY + 2 * MAX_HEADER)
				return false;
			continue;
		}
		if (n == 0)
			return false;
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	}
}

/* Write what is pending; false when the peer is gone or we are done. */
static bool write_conn(conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return !c->close_after || c->parked || c->waiting;
}

static bool pop_event(ocil_rapi *r, ocil_rapi_event *ev)
{
	if (r->n_events == 0)
		return false;
	*ev = r->events[0];
	memmove(r->events, r->events + 1, (r->n_events - 1) * sizeof(*r->events));
	r->n_events--;
	return true;
}

int ocil_rapi_wait(ocil_rapi *r, int timeout_ms, ocil_rapi_event *ev, ocil_error **err)
{
	memset(ev, 0, sizeof(*ev));
	if (pop_event(r, ev))
		return 1;
	struct pollfd pfd[MAX_CONNS + 2];
	size_t n = 0;
	pfd[n++] = (struct pollfd){.fd = r->listen_rt, .events = POLLIN};
	if (r->listen_inv >= 0)
		pfd[n++] = (struct pollfd){.fd = r->listen_inv, .events = POLLIN};
	size_t first = n;
	for (size_t i = 0; i < r->n_conns; i++)
		pfd[n++] = (struct pollfd){
		    .fd = r->conns[i].fd,
		    .events = (short)(POLLIN | (r->conns[i].out_len > 0 ? POLLOUT : 0))};
	int k = poll(pfd, n, timeout_ms);
	if (k < 0) {
		if (errno == EINTR)
			return 0;
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "poll");
	}
	/* connections first (accepting may reorder the array) */
	for (size_t j = n; j-- > first;) {
		size_t i = j - first;
		conn *c = &r->conns[i];
		bool alive = true;
		if (pfd[j].revents & (POLLIN | POLLHUP | POLLERR))
			alive = read_conn(c);
		if (!alive) {
			if (c->waiting) {
				/* its invocation runs on; nobody gets the answer */
				if (r->current != NULL && r->current->client == c->id)
					r->current->client = 0;
				for (invocation *inv = r->queue; inv; inv = inv->next)
					if (inv->client == c->id)
						inv->client = 0;
			}
			close_conn(r, i);
			continue;
		}
		process(r, c);
		if (c->out_len > 0 && !write_conn(c))
			close_conn(r, i);
	}
	if (pfd[0].revents & POLLIN)
		accept_on(r, r->listen_rt, true);
	if (r->listen_inv >= 0 && (pfd[1].revents & POLLIN))
		accept_on(r, r->listen_inv, false);
	/* answers that events above queued on other connections */
	for (size_t i = r->n_conns; i-- > 0;) {
		conn *c = &r->conns[i];
		process(r, c);
		if (c->out_len > 0 && !write_conn(c))
			close_conn(r, i);
	}
	return pop_event(r, ev) ? 1 : 0;
}

bool ocil_rapi_busy(const ocil_rapi *r)
{
	return r->current != NULL || r->queue != NULL;
}

bool ocil_rapi_running(const ocil_rapi *r)
{
	return r->current != NULL;
}

void ocil_rapi_fail(ocil_rapi *r, int status, const char *body)
{
	fail_head(r, status, NULL, body, strlen(body));
	for (size_t i = r->n_conns; i-- > 0;) {
		conn *c = &r->conns[i];
		if (c->runtime_side) {
			close_conn(r, i);
			continue;
		}
		if (c->out_len > 0 && !write_conn(c))
			close_conn(r, i);
	}
}

void ocil_rapi_free(ocil_rapi *r)
{
	if (r == NULL)
		return;
	while (r->n_conns > 0)
		close_conn(r, r->n_conns - 1);
	if (r->listen_rt >= 0)
		close(r->listen_rt);
	if (r->listen_inv >= 0)
		close(r->listen_inv);
	invocation_free(r->current);
	while (r->queue != NULL) {
		invocation *next = r->queue->next;
		invocation_free(r->queue);
		r->queue = next;
	}
	for (size_t i = 0; i < r->n_events; i++)
		ocil_rapi_event_clear(&r->events[i]);
	free(r->events);
	free(r->arn);
	free(r);
}
