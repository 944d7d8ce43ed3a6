/* runtime_api: raw HTTP/1.1 over loopback sockets against the server,
 * pumped by ocil_rapi_wait in the same thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"
#include "run/runtime_api.h"
#include "test.h"

#define EVENTS_MAX 16

typedef struct {
	ocil_rapi *r;
	ocil_rapi_event ev[EVENTS_MAX];
	size_t n;
} server;

static void server_clear(server *s)
{
	for (size_t i = 0; i < s->n; i++)
		ocil_rapi_event_clear(&s->ev[i]);
	ocil_rapi_free(s->r);
}

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One round of the server, waiting at most ms for something to do. */
static bool serve_once(server *s, int ms)
{
	ocil_rapi_event ev;
	ocil_error *err = NULL;
	int r = ocil_rapi_wait(s->r, ms, &ev, &err);
	if (r < 0) {
		fprintf(stderr, "ocil_rapi_wait: %s\n", err->msg);
		ocil_error_free(err);
		return false;
	}
	if (r > 0 && s->n < EVENTS_MAX)
		s->ev[s->n++] = ev;
	else if (r > 0)
		ocil_rapi_event_clear(&ev);
	return true;
}

/* Serve until fd has something to read (or is closed), keeping the
 * events; false after many rounds with nothing. */
static bool pump(server *s, int fd)
{
	for (int i = 0; i < 200; i++) {
		if (!serve_once(s, 10))
			return false;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0)
			return true;
	}
	return false;
}

/* Read one response (headers and Content-Length body) from fd. */
static char *read_response(server *s, int fd)
{
	char buf[65536];
	size_t n = 0;
	for (;;) {
		if (!pump(s, fd))
			return NULL;
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
		const char *end = strstr(buf, "\r\n\r\n");
		if (end == NULL)
			continue;
		if (strncmp(buf, "HTTP/1.1 100", 12) == 0)
			break;
		const char *cl = strcasestr(buf, "Content-Length: ");
		size_t want = cl ? strtoul(cl + 16, NULL, 10) : 0;
		if (n >= (size_t)(end - buf) + 4 + want)
			break;
	}
	buf[n] = '\0';
	return ocil_xstrdup(buf);
}

static bool send_str(int fd, const char *s)
{
	return write(fd, s, strlen(s)) == (ssize_t)strlen(s);
}

static const char *body_of(const char *resp)
{
	const char *b = strstr(resp, "\r\n\r\n");
	return b ? b + 4 : "";
}

/* The request id the runtime got in resp; static buffer. */
static const char *request_id(const char *resp)
{
	static char id[64];
	const char *h = strstr(resp, "Lambda-Runtime-Aws-Request-Id: ");
	if (h == NULL)
		return "";
	h += strlen("Lambda-Runtime-Aws-Request-Id: ");
	size_t n = strcspn(h, "\r");
	snprintf(id, sizeof(id), "%.*s", (int)n, h);
	return id;
}

static bool open_server(server *s, int invoke_port)
{
	memset(s, 0, sizeof(*s));
	ocil_rapi_opts o = {.invoke_port = invoke_port,
			    .function_arn = "arn:aws:lambda:us-east-1:012345678912:function:f",
			    .timeout_ms = 3000};
	ocil_error *err = NULL;
	if (ocil_rapi_open(&o, &s->r, &err) < 0) {
		fprintf(stderr, "ocil_rapi_open: %s\n", err->msg);
		ocil_error_free(err);
		return false;
	}
	return true;
}

static bool has_event(const server *s, ocil_rapi_kind kind, const char *body)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ev[i].kind == kind && (body == NULL || strcmp(s->ev[i].body, body) == 0))
			return true;
	return false;
}

static void test_next_and_response(void)
{
	server s;
	CHECK(open_server(&s, 0));
	ocil_rapi_submit(s.r, "{\"k\":1}", 7);
	cleanup_close int rt = dial(ocil_rapi_port(s.r));
	CHECK(rt >= 0);
	CHECK(send_str(rt, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"));
	cleanup_free char *r1 = read_response(&s, rt);
	CHECK(r1 != NULL);
	CHECK(strncmp(r1, "HTTP/1.1 200 ", 13) == 0);
	CHECK_STREQ(body_of(r1), "{\"k\":1}");
	CHECK(strlen(request_id(r1)) == 36);
	CHECK(strstr(r1, "Lambda-Runtime-Deadline-Ms: ") != NULL);
	CHECK(strstr(r1, "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:"
			 "012345678912:function:f\r\n") != NULL);
	CHECK(strstr(r1, "Lambda-Runtime-Trace-Id: Root=1-") != NULL);
	CHECK(ocil_rapi_running(s.r));
	/* the result, chunked, on the same connection */
	cleanup_free char *post = ocil_xasprintf(
	    "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\n\"Hell\r\n8\r\no World\"\r\n0\r\n\r\n",
	    request_id(r1));
	CHECK(send_str(rt, post));
	cleanup_free char *r2 = read_response(&s, rt);
	CHECK(r2 != NULL && strncmp(r2, "HTTP/1.1 202 ", 13) == 0);
	CHECK(has_event(&s, OCIL_RAPI_STARTED, NULL));
	CHECK(has_event(&s, OCIL_RAPI_RESPONSE, "\"Hello World\""));
	CHECK(!ocil_rapi_busy(s.r));
	/* a second answer for the same id is refused */
	CHECK(send_str(rt, post));
	cleanup_free char *r3 = read_response(&s, rt);
	CHECK(r3 != NULL && strncmp(r3, "HTTP/1.1 400 ", 13) == 0);
	CHECK(strstr(r3, "InvalidRequestID") != NULL);
	server_clear(&s);
}

static void test_invoke_client(void)
{
	server s;
	CHECK(open_server(&s, -1));
	int port = ocil_rapi_invoke_port(s.r);
	CHECK(port > 0);
	cleanup_close int cl = dial(port);
	CHECK(cl >= 0);
	/* curl sends Expect: 100-continue for large bodies */
	CHECK(send_str(cl, "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
			   "Content-Length: 2\r\nExpect: 100-continue\r\n\r\n"));
	cleanup_free char *c1 = read_response(&s, cl);
	CHECK(c1 != NULL && strncmp(c1, "HTTP/1.1 100 Continue", 21) == 0);
	CHECK(send_str(cl, "{}"));
	for (int i = 0; i < 200 && !has_event(&s, OCIL_RAPI_QUEUED, NULL); i++)
		CHECK(serve_once(&s, 10));
	CHECK(has_event(&s, OCIL_RAPI_QUEUED, NULL));
	CHECK(ocil_rapi_busy(s.r) && !ocil_rapi_running(s.r));
	cleanup_close int rt = dial(ocil_rapi_port(s.r));
	CHECK(send_str(rt, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n"));
	cleanup_free char *r1 = read_response(&s, rt);
	CHECK(r1 != NULL);
	CHECK_STREQ(body_of(r1), "{}");
	cleanup_free char *post = ocil_xasprintf(
	    "POST /2018-06-01/runtime/invocation/%s/error HTTP/1.1\r\n"
	    "Lambda-Runtime-Function-Error-Type: Unhandled\r\nContent-Length: 26\r\n\r\n"
	    "{\"errorType\":\"ValueError\"}",
	    request_id(r1));
	CHECK(send_str(rt, post));
	cleanup_free char *c2 = read_response(&s, cl);
	CHECK(c2 != NULL && strncmp(c2, "HTTP/1.1 200 ", 13) == 0);
	CHECK(strstr(c2, "X-Amz-Function-Error: Unhandled\r\n") != NULL);
	CHECK_STREQ(body_of(c2), "{\"errorType\":\"ValueError\"}");
	CHECK(has_event(&s, OCIL_RAPI_ERROR, "{\"errorType\":\"ValueError\"}"));
	CHECK_STREQ(s.ev[s.n - 1].error_type, "Unhandled");
	/* the function dies during the next one: the client gets what fail says */
	CHECK(send_str(cl, "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
			   "Content-Length: 4\r\n\r\nnull"));
	for (int i = 0; i < 200 && !ocil_rapi_busy(s.r); i++)
		CHECK(serve_once(&s, 10));
	CHECK(ocil_rapi_busy(s.r));
	ocil_rapi_fail(s.r, "{\"errorType\":\"Runtime.ExitError\"}");
	cleanup_free char *c3 = read_response(&s, cl);
	/* Lambda's Invoke: every function failure is 200 and Unhandled */
	CHECK(c3 != NULL && strncmp(c3, "HTTP/1.1 200 ", 13) == 0);
	CHECK(strcasestr(c3, "X-Amz-Function-Error: Unhandled\r\n") != NULL);
	CHECK_STREQ(body_of(c3), "{\"errorType\":\"Runtime.ExitError\"}");
	CHECK(!ocil_rapi_busy(s.r));
	server_clear(&s);
}

static void test_bad_requests(void)
{
	server s;
	CHECK(open_server(&s, -1));
	int inv = ocil_rapi_invoke_port(s.r);
	struct {
		int port;
		const char *req, *want;
	} cases[] = {
	    /* a lone word is no HTTP/1.x request line: libmicrohttpd closes
	     * the connection without an answer ("" below) */
	    {ocil_rapi_port(s.r), "garbage\r\n\r\n", ""},
	    {ocil_rapi_port(s.r), "garbage x y\r\n\r\n", "HTTP/1.1 400 "},
	    {ocil_rapi_port(s.r), "GET /x HTTP/9.9\r\n\r\n", "HTTP/1.1 505 "},
	    {ocil_rapi_port(s.r), "GET /x HTTP/1.1\r\nbad header\r\n\r\n", "HTTP/1.1 400 "},
	    /* a transfer coding other than chunked */
	    {ocil_rapi_port(s.r),
	     "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
	     "HTTP/1.1 400 "},
	    {ocil_rapi_port(s.r), "GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "},
	    {ocil_rapi_port(s.r), "POST /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n",
	     "HTTP/1.1 405 "},
	    {ocil_rapi_port(s.r), "POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\n\r\n",
	     "HTTP/1.1 400 "},
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Content-Length: 99999999\r\n\r\n",
	     "HTTP/1.1 413 "},
	    /* two framings of one body: refused, not guessed */
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	     "HTTP/1.1 400 "},
	    /* one framing given twice, even with the same value */
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Content-Length: 2\r\ncontent-length: 2\r\n\r\n{}",
	     "HTTP/1.1 400 "},
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	     "HTTP/1.1 400 "},
	    /* numbers strtoull would take but HTTP does not */
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Content-Length: +2\r\n\r\n{}",
	     "HTTP/1.1 400 "},
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n",
	     "HTTP/1.1 400 "},
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Transfer-Encoding: chunked\r\n\r\n 2\r\n{}\r\n0\r\n\r\n",
	     "HTTP/1.1 400 "},
	    {inv,
	     "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
	     "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
	     "HTTP/1.1 413 "},
	    {inv, "POST /2015-03-31/functions/function/other HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "},
	    {inv, "GET /2015-03-31/functions/function/invocations HTTP/1.1\r\n\r\n",
	     "HTTP/1.1 405 "},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cleanup_close int fd = dial(cases[i].port);
		CHECK(fd >= 0 && send_str(fd, cases[i].req));
		cleanup_free char *resp = read_response(&s, fd);
		bool ok = resp != NULL &&
			  (cases[i].want[0] == '\0'
			       ? resp[0] == '\0'
			       : strncmp(resp, cases[i].want, strlen(cases[i].want)) == 0);
		if (!ok)
			fprintf(stderr, "case %zu: %s\n", i, resp ? resp : "(none)");
		CHECK(ok);
	}
	CHECK(!ocil_rapi_busy(s.r));
	/* an init error with nothing queued is only an event */
	cleanup_close int rt = dial(ocil_rapi_port(s.r));
	CHECK(send_str(rt, "POST /2018-06-01/runtime/init/error HTTP/1.1\r\n"
			   "Content-Length: 2\r\nConnection: close\r\n\r\n{}"));
	cleanup_free char *r = read_response(&s, rt);
	CHECK(r != NULL && strncmp(r, "HTTP/1.1 202 ", 13) == 0);
	CHECK(strstr(r, "Connection: close\r\n") != NULL);
	CHECK(has_event(&s, OCIL_RAPI_INIT_ERROR, "{}"));
	server_clear(&s);
}

/* Idle invoke connections, as many as a client cares to open, leave room
 * for the function's runtime client. */
static void test_invoke_clients_leave_room(void)
{
	server s;
	CHECK(open_server(&s, -1));
	int fds[70];
	for (size_t i = 0; i < 70; i++) {
		fds[i] = dial(ocil_rapi_invoke_port(s.r));
		CHECK(fds[i] >= 0);
		ocil_rapi_event ev;
		ocil_error *err = NULL;
		CHECK(ocil_rapi_wait(s.r, 0, &ev, &err) == 0);
	}
	ocil_rapi_submit(s.r, "{}", 2);
	cleanup_close int rt = dial(ocil_rapi_port(s.r));
	CHECK(send_str(rt, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n"));
	cleanup_free char *r = read_response(&s, rt);
	CHECK(r != NULL && strncmp(r, "HTTP/1.1 200 ", 13) == 0);
	CHECK(ocil_rapi_running(s.r));
	for (size_t i = 0; i < 70; i++)
		close(fds[i]);
	server_clear(&s);
}

static void test_port_in_use(void)
{
	server a;
	CHECK(open_server(&a, -1));
	ocil_rapi_opts o = {.invoke_port = ocil_rapi_invoke_port(a.r), .timeout_ms = 1000};
	ocil_rapi *b = NULL;
	ocil_error *err = NULL;
	CHECK_FAIL(ocil_rapi_open(&o, &b, &err), &err, OCIL_E_USAGE, "is in use");
	CHECK(b == NULL);
	server_clear(&a);
}

/* A chunked body that trickles in a byte at a time, with the server
 * running between bytes, comes out whole: scanning resumes where the last
 * read stopped. */
static void test_chunked_trickle(void)
{
	server s;
	CHECK(open_server(&s, -1));
	cleanup_close int cl = dial(ocil_rapi_invoke_port(s.r));
	CHECK(cl >= 0);
	char body[3 * 200 + 1] = "";
	char wire[8192];
	size_t w = (size_t)snprintf(wire, sizeof(wire),
				    "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 200; i++) {
		char piece[4];
		snprintf(piece, sizeof(piece), "%03d", i);
		strcat(body, piece);
		w += (size_t)snprintf(wire + w, sizeof(wire) - w, "3\r\n%s\r\n", piece);
	}
	w += (size_t)snprintf(wire + w, sizeof(wire) - w, "0\r\nX-Trailer: 1\r\n\r\n");
	CHECK(w < sizeof(wire));
	for (size_t i = 0; i < w; i++) {
		CHECK(write(cl, wire + i, 1) == 1);
		if (i % 7 == 0)
			CHECK(serve_once(&s, 0));
	}
	for (int i = 0; i < 200 && !has_event(&s, OCIL_RAPI_QUEUED, NULL); i++)
		CHECK(serve_once(&s, 10));
	CHECK(has_event(&s, OCIL_RAPI_QUEUED, NULL));
	cleanup_close int rt = dial(ocil_rapi_port(s.r));
	CHECK(send_str(rt, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n"));
	cleanup_free char *r1 = read_response(&s, rt);
	CHECK(r1 != NULL);
	CHECK_STREQ(body_of(r1), body);
	server_clear(&s);
}

TEST_MAIN(T(test_next_and_response), T(test_invoke_client), T(test_bad_requests),
	  T(test_invoke_clients_leave_room), T(test_port_in_use), T(test_chunked_trickle))
