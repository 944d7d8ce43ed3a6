/* runtime_api: libmicrohttpd daemons (the runtime listener, the invoke
 * listeners) in external-epoll mode, run by ocil_rapi_wait. */
#include "run/runtime_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/util.h"

/* The function's runtime client and its extensions are few; invoke clients
 * get a daemon (and so a cap) of their own, so that no number of idle curl
 * connections locks the runtime out of /next. */
#define RUNTIME_CONNS 32
#define INVOKE_CONNS 48
/* request headers: the runtime side carries the X-Ray error cause (up to
 * 1 MiB); MHD keeps the request line, the headers and its read buffer in
 * one pool of this size per connection */
#define RUNTIME_POOL (((size_t)1 << 20) + ((size_t)64 << 10))
#define INVOKE_POOL ((size_t)64 << 10)
/* a chunked body past the limit is read and dropped up to this much (the
 * client gets its 413), then the connection is closed */
#define MAX_DISCARD (4 * OCIL_RAPI_MAX_PAYLOAD)
/* Lambda: ClientContext is up to 3,583 bytes of base64 */
#define MAX_CLIENT_CONTEXT 3583
#define MAX_TRACE_ID 2048
#define MAX_TENANT_ID 256

#define API "/2018-06-01"
#define NEXT_PATH API "/runtime/invocation/next"
#define INVOCATION_PREFIX API "/runtime/invocation/"
#define INIT_ERROR_PATH API "/runtime/init/error"
#define EXT_API "/2020-01-01/extension"
#define EXT_REGISTER EXT_API "/register"
#define EXT_NEXT EXT_API "/event/next"
#define EXT_INIT_ERROR EXT_API "/init/error"
#define EXT_EXIT_ERROR EXT_API "/exit/error"
#define LOGS_PATH "/2020-08-15/logs"
#define TELEMETRY_PATH "/2022-07-01/telemetry"
#define INVOKE_PREFIX "/2015-03-31/functions/"
#define INVOKE_SUFFIX "/invocations"
/* the end of answer()'s header list */
#define NO_MORE ((const char *)NULL)

typedef struct req req;

typedef struct invocation {
	char id[40];
	char *body;
	size_t len;
	char *client_context, *trace_id, *tenant_id; /* NULL: none */
	req *client; /* the invoke request waiting for it, NULL: none */
	struct invocation *next;
} invocation;

typedef struct ext {
	char id[40];
	char *name;
	bool want_invoke, want_shutdown;
	req *parked;   /* its /event/next, waiting */
	char *pending; /* an event for its next /event/next */
	struct ext *next;
} ext;

typedef enum { SIDE_RUNTIME, SIDE_INVOKE } side;

struct req {
	ocil_rapi *r;
	struct MHD_Connection *conn;
	side side;
	bool started;	      /* past the first call (headers) */
	bool in_handler;      /* its access handler call is on the stack */
	bool suspended;	      /* parked: a long-poll or an invoke waiting */
	bool queued;	      /* its response is given to MHD */
	bool too_large;	      /* the body went past the limit: dropped */
	bool too_large_early; /* a response announced too large: fail it now */
	size_t discarded;     /* bytes dropped */
	char *body;
	size_t len, cap;
	/* the answer, once there is one */
	bool answered;
	int status;
	char *resp;
	size_t resp_len;
	ocil_strv headers; /* name, value, name, value, ... */
	bool close;
	struct req *next_parked; /* in r->parked_next */
};

struct ocil_rapi {
	ocil_rapi_opts o;
	char *arn, *fn_name, *fn_version, *handler;
	struct MHD_Daemon *daemons[3]; /* runtime, invoke 127.0.0.1, invoke ::1 */
	size_t n_daemons;
	int port, invoke_port;
	bool invoke_v6;
	bool kick; /* connections resumed: run the daemons again */
	bool closing;
	/* bumped with each sandbox: a runtime connection opened before is a
	 * dead sandbox's (its requests may still sit unread in our buffers) */
	uintptr_t generation;
	req *parked_next;
	invocation *queue, *current;
	ext *exts;
	size_t ext_expected;
	ocil_rapi_event *events;
	size_t n_events, cap_events;
};

void ocil_rapi_event_clear(ocil_rapi_event *ev)
{
	free(ev->body);
	free(ev->error_type);
	memset(ev, 0, sizeof(*ev));
}

/* ---- ids ---- */

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

static void new_uuid(char out[40])
{
	unsigned char b[16];
	random_bytes(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	char h[33];
	ocil_hex_encode(b, 16, h);
	snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

/* An X-Ray trace header as Lambda makes one when the caller sent none. */
static char *new_trace_id(void)
{
	unsigned char b[20];
	random_bytes(b, sizeof(b));
	char root[25], parent[17];
	ocil_hex_encode(b, 12, root);
	ocil_hex_encode(b + 12, 8, parent);
	return ocil_xasprintf("Root=1-%08llx-%s;Parent=%s;Sampled=0",
			      (unsigned long long)time(NULL), root, parent);
}

static long long now_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- events for the caller ---- */

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

static bool pop_event(ocil_rapi *r, ocil_rapi_event *ev)
{
	if (r->n_events == 0)
		return false;
	*ev = r->events[0];
	memmove(r->events, r->events + 1, (r->n_events - 1) * sizeof(*r->events));
	r->n_events--;
	return true;
}

/* ---- answering a request ---- */

static void header_add(req *q, const char *name, const char *value)
{
	ocil_strv_push(&q->headers, ocil_xstrdup(name));
	ocil_strv_push(&q->headers, ocil_xstrdup(value));
}

/* Give q's answer to MHD (q's handler call is on the stack). */
static enum MHD_Result queue_answer(req *q)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    q->resp_len, q->resp ? q->resp : (char *)"", MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	for (size_t i = 0; i + 1 < q->headers.n; i += 2)
		MHD_add_response_header(resp, q->headers.v[i], q->headers.v[i + 1]);
	if (q->close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(q->conn, (unsigned)q->status, resp);
	MHD_destroy_response(resp);
	q->queued = true;
	return ret;
}

/* Answer q: at once when its handler is running, else by resuming it (its
 * handler is called again and queues the answer). Extra headers: name,
 * value pairs, NULL-terminated. */
static void answer(req *q, int status, const char *body, size_t len, ...)
{
	if (q->answered)
		return;
	q->answered = true;
	q->status = status;
	q->resp = ocil_xmalloc(len + 1);
	memcpy(q->resp, body, len);
	q->resp[len] = '\0';
	q->resp_len = len;
	va_list ap;
	va_start(ap, len);
	for (const char *name; (name = va_arg(ap, const char *)) != NULL;)
		header_add(q, name, va_arg(ap, const char *));
	va_end(ap);
	/* suspended in MHD only once its handler call has returned */
	if (q->suspended && !q->in_handler) {
		MHD_resume_connection(q->conn);
		q->r->kick = true;
	}
	q->suspended = false;
}

/* {"errorMessage": msg, "errorType": type} */
static void answer_error(req *q, int status, const char *type, const char *msg)
{
	json_t *j = json_pack("{s:s, s:s}", "errorMessage", msg, "errorType", type);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	answer(q, status, s, strlen(s), NO_MORE);
	free(s);
}

static const char ok_body[] = "{\"status\":\"OK\"}";

/* ---- invocations ---- */

static void invocation_free(invocation *inv)
{
	if (inv == NULL)
		return;
	free(inv->body);
	free(inv->client_context);
	free(inv->trace_id);
	free(inv->tenant_id);
	free(inv);
}

static invocation *enqueue(ocil_rapi *r, const char *body, size_t len, req *client)
{
	invocation *inv = ocil_xcalloc(1, sizeof(*inv));
	new_uuid(inv->id);
	inv->body = ocil_xmalloc(len + 1);
	memcpy(inv->body, body, len);
	inv->body[len] = '\0';
	inv->len = len;
	inv->client = client;
	invocation **p = &r->queue;
	while (*p != NULL)
		p = &(*p)->next;
	*p = inv;
	return inv;
}

void ocil_rapi_set_handler(ocil_rapi *r, const char *handler)
{
	free(r->handler);
	r->handler = ocil_xstrdup(handler ? handler : "");
}

void ocil_rapi_submit(ocil_rapi *r, const char *body, size_t len)
{
	enqueue(r, body, len, NULL);
}

/* Answer the invoke client waiting for inv, if there is one. */
static void answer_client(invocation *inv, const char *body, size_t len, bool failed)
{
	if (inv->client == NULL)
		return;
	if (failed)
		answer(inv->client, 200, body, len, "X-Amz-Function-Error", "Unhandled", NO_MORE);
	else
		answer(inv->client, 200, body, len, NO_MORE);
	inv->client = NULL;
}

/* ---- extensions ---- */

static void ext_free(ext *e)
{
	free(e->name);
	free(e->pending);
	free(e);
}

static ext *find_ext(ocil_rapi *r, const char *id)
{
	for (ext *e = r->exts; id != NULL && e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

/* Give e its event: now when it waits, else on its next /event/next. */
static void ext_deliver(ext *e, char *event)
{
	if (e->parked != NULL && e->pending == NULL) {
		req *q = e->parked;
		e->parked = NULL;
		char eid[40];
		new_uuid(eid);
		answer(q, 200, event, strlen(event), "Lambda-Extension-Event-Identifier", eid,
		       NO_MORE);
		free(event);
		return;
	}
	free(e->pending);
	e->pending = event;
}

/* Every expected extension registered, and each waits for its next event. */
static bool extensions_ready(const ocil_rapi *r)
{
	size_t n = 0;
	for (const ext *e = r->exts; e != NULL; e = e->next, n++)
		if (e->parked == NULL || e->pending != NULL)
			return false;
	return n >= r->ext_expected;
}

size_t ocil_rapi_extensions_busy(const ocil_rapi *r)
{
	size_t n = 0;
	for (const ext *e = r->exts; e != NULL; e = e->next)
		n += e->parked == NULL || e->pending != NULL;
	return n;
}

void ocil_rapi_sandbox(ocil_rapi *r, size_t n_extensions)
{
	while (r->parked_next != NULL) {
		req *q = r->parked_next;
		r->parked_next = q->next_parked;
		q->next_parked = NULL;
		q->close = true;
		answer_error(q, 410, "Runtime.Gone", "the sandbox this runtime ran in is gone");
	}
	while (r->exts != NULL) {
		ext *e = r->exts;
		r->exts = e->next;
		if (e->parked != NULL) {
			e->parked->close = true;
			answer_error(e->parked, 410, "Extension.Gone",
				     "the sandbox this extension ran in is gone");
		}
		ext_free(e);
	}
	r->ext_expected = n_extensions;
	r->generation++;
}

size_t ocil_rapi_shutdown(ocil_rapi *r, const char *reason, long deadline_ms)
{
	size_t n = 0;
	for (ext *e = r->exts; e != NULL; e = e->next) {
		if (!e->want_shutdown)
			continue;
		ext_deliver(e, ocil_xasprintf("{\"eventType\":\"SHUTDOWN\",\"shutdownReason\":"
					      "\"%s\",\"deadlineMs\":%lld}",
					      reason, now_ms() + deadline_ms));
		n++;
	}
	return n;
}

/* ---- handing out ---- */

static void hand_out(ocil_rapi *r)
{
	if (r->current != NULL || r->queue == NULL || r->parked_next == NULL ||
	    !extensions_ready(r))
		return;
	req *q = r->parked_next;
	r->parked_next = q->next_parked;
	q->next_parked = NULL;
	invocation *inv = r->queue;
	r->queue = inv->next;
	inv->next = NULL;
	r->current = inv;
	if (inv->trace_id == NULL)
		inv->trace_id = new_trace_id();
	if (r->o.on_started != NULL)
		r->o.on_started(r->o.cls, inv->id);
	long long deadline = now_ms() + r->o.timeout_ms;
	char dl[32];
	snprintf(dl, sizeof(dl), "%lld", deadline);
	answer(q, 200, inv->body, inv->len, "Lambda-Runtime-Aws-Request-Id", inv->id,
	       "Lambda-Runtime-Deadline-Ms", dl, "Lambda-Runtime-Invoked-Function-Arn", r->arn,
	       "Lambda-Runtime-Trace-Id", inv->trace_id, NO_MORE);
	if (inv->client_context != NULL)
		header_add(q, "Lambda-Runtime-Client-Context", inv->client_context);
	if (inv->tenant_id != NULL)
		header_add(q, "Lambda-Runtime-Aws-Tenant-Id", inv->tenant_id);
	push_event(r, OCIL_RAPI_STARTED, inv->id, NULL, 0, NULL);
	json_t *ev =
	    json_pack("{s:s, s:I, s:s, s:s, s:{s:s, s:s}}", "eventType", "INVOKE", "deadlineMs",
		      (json_int_t)deadline, "requestId", inv->id, "invokedFunctionArn", r->arn,
		      "tracing", "type", "X-Amzn-Trace-Id", "value", inv->trace_id);
	for (ext *e = r->exts; e != NULL; e = e->next)
		if (e->want_invoke)
			ext_deliver(e, json_dumps(ev, JSON_COMPACT));
	json_decref(ev);
}

/* The invocation running, else the first queued one, ends with this error
 * (its client, when it waits, gets it) and is forgotten. */
static void fail_head(ocil_rapi *r, const char *body, size_t len)
{
	invocation *inv = r->current ? r->current : r->queue;
	if (inv == NULL)
		return;
	answer_client(inv, body, len, true);
	if (inv == r->current)
		r->current = NULL;
	else
		r->queue = inv->next;
	invocation_free(inv);
}

/* ---- the requests ---- */

/* How many times header name came, its first value in *value. */
typedef struct {
	const char *name;
	const char *value;
	int n;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	header_count *c = cls;
	if (strcasecmp(key, c->name) == 0 && c->n++ == 0)
		c->value = value;
	return MHD_YES;
}

static int header_n(struct MHD_Connection *conn, const char *name, const char **value)
{
	header_count c = {.name = name};
	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &c);
	if (value != NULL)
		*value = c.value;
	return c.n;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* The framing rules MHD leaves to us; 0 when the request may go on, else
 * the status to refuse it with. */
static int check_framing(req *q)
{
	const char *cl = NULL, *te = NULL;
	int n_cl = header_n(q->conn, MHD_HTTP_HEADER_CONTENT_LENGTH, &cl);
	int n_te = header_n(q->conn, MHD_HTTP_HEADER_TRANSFER_ENCODING, &te);
	/* two framings, or one given twice: which one ends the body is what
	 * request smuggling plays on (RFC 9112 6.1 and 6.3 allow refusing) */
	if (n_te > 1 || n_cl > 1 || (n_te > 0 && n_cl > 0))
		return 400;
	if (n_te > 0 && strcasecmp(te, "chunked") != 0)
		return 400;
	if (n_cl > 0) {
		if (cl[0] == '\0' || strspn(cl, "0123456789") != strlen(cl) || strlen(cl) > 19)
			return 400; /* no sign, no spaces, no list */
		if (strtoull(cl, NULL, 10) > OCIL_RAPI_MAX_PAYLOAD)
			return 413;
	}
	return 0;
}

static void park_next(ocil_rapi *r, req *q)
{
	req **p = &r->parked_next;
	while (*p != NULL)
		p = &(*p)->next_parked;
	*p = q;
	q->suspended = true;
}

static void unpark(ocil_rapi *r, req *q)
{
	for (req **p = &r->parked_next; *p != NULL; p = &(*p)->next_parked)
		if (*p == q) {
			*p = q->next_parked;
			q->next_parked = NULL;
			return;
		}
}

static bool is_invocation_path(const char *url, const char *id, const char *what)
{
	size_t n = strlen(INVOCATION_PREFIX);
	if (strncmp(url, INVOCATION_PREFIX, n) != 0)
		return false;
	size_t idl = strlen(id);
	return strncmp(url + n, id, idl) == 0 && url[n + idl] == '/' &&
	       strcmp(url + n + idl + 1, what) == 0;
}

static void on_invocation_post(ocil_rapi *r, req *q, const char *url)
{
	const char *rest = url + strlen(INVOCATION_PREFIX);
	const char *slash = strchr(rest, '/');
	bool is_response = slash && strcmp(slash, "/response") == 0;
	bool is_error = slash && strcmp(slash, "/error") == 0;
	if (!is_response && !is_error) {
		answer_error(q, 404, "NotFound", "not found");
		return;
	}
	invocation *inv = r->current;
	bool match =
	    inv != NULL && is_invocation_path(url, inv->id, is_response ? "response" : "error");
	if (is_response && (q->too_large || q->too_large_early)) {
		/* Lambda: the caller gets a function error (as soon as the size
		 * is known: see on_request), the runtime 413 once the body is
		 * read */
		if (match) {
			char *body = ocil_xasprintf(
			    "{\"errorMessage\":\"Response payload size exceeded maximum allowed "
			    "payload size (%zu bytes).\",\"errorType\":\"Function."
			    "ResponseSizeTooLarge\"}",
			    OCIL_RAPI_MAX_PAYLOAD);
			push_event(r, OCIL_RAPI_ERROR, inv->id, body, strlen(body),
				   "Function.ResponseSizeTooLarge");
			answer_client(inv, body, strlen(body), true);
			free(body);
			r->current = NULL;
			invocation_free(inv);
			hand_out(r);
		}
		if (q->too_large) {
			cleanup_free char *msg =
			    ocil_xasprintf("Exceeded maximum allowed payload size (%zu bytes).",
					   OCIL_RAPI_MAX_PAYLOAD);
			answer_error(q, 413, "RequestEntityTooLarge", msg);
		}
		return;
	}
	if (!match) {
		answer_error(q, 400, "InvalidRequestID", "Invalid request ID");
		return;
	}
	const char *type = header(q->conn, "Lambda-Runtime-Function-Error-Type");
	push_event(r, is_response ? OCIL_RAPI_RESPONSE : OCIL_RAPI_ERROR, inv->id,
		   q->body ? q->body : "", q->len, is_error ? type : NULL);
	answer_client(inv, q->body ? q->body : "", q->len, is_error);
	r->current = NULL;
	invocation_free(inv);
	answer(q, 202, ok_body, strlen(ok_body), NO_MORE);
	hand_out(r);
}

static void on_register(ocil_rapi *r, req *q)
{
	const char *name = header(q->conn, "Lambda-Extension-Name");
	if (name == NULL || name[0] == '\0') {
		answer_error(q, 400, "InvalidRequest", "missing Lambda-Extension-Name");
		return;
	}
	json_error_t je;
	json_t *j = json_loadb(q->body ? q->body : "", q->len, JSON_REJECT_DUPLICATES, &je);
	const json_t *events = json_is_object(j) ? json_object_get(j, "events") : NULL;
	bool want_invoke = false, want_shutdown = false, ok = json_is_array(events);
	size_t i;
	const json_t *v;
	json_array_foreach(events, i, v)
	{
		const char *s = json_string_value(v);
		if (s != NULL && strcmp(s, "INVOKE") == 0)
			want_invoke = true;
		else if (s != NULL && strcmp(s, "SHUTDOWN") == 0)
			want_shutdown = true;
		else
			ok = false;
	}
	json_decref(j);
	if (!ok) {
		answer_error(q, 400, "InvalidRequest",
			     "the body must be {\"events\": [\"INVOKE\" and/or \"SHUTDOWN\"]}");
		return;
	}
	ext *e = ocil_xcalloc(1, sizeof(*e));
	new_uuid(e->id);
	e->name = ocil_xstrdup(name);
	e->want_invoke = want_invoke;
	e->want_shutdown = want_shutdown;
	ext **p = &r->exts;
	while (*p != NULL)
		p = &(*p)->next;
	*p = e;
	json_t *a = json_pack("{s:s, s:s, s:s}", "functionName", r->fn_name, "functionVersion",
			      r->fn_version, "handler", r->handler);
	char *s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	answer(q, 200, s, strlen(s), "Lambda-Extension-Identifier", e->id, NO_MORE);
	free(s);
	push_event(r, OCIL_RAPI_EXTENSION, "", name, strlen(name), NULL);
}

/* The extension a request names (403 answered when none). */
static ext *named_ext(ocil_rapi *r, req *q)
{
	const char *id = header(q->conn, "Lambda-Extension-Identifier");
	ext *e = find_ext(r, id);
	if (e == NULL)
		answer_error(q, 403,
			     id ? "Extension.UnknownExtensionIdentifier"
				: "Extension.MissingExtensionIdentifier",
			     id ? "unknown Lambda-Extension-Identifier"
				: "missing Lambda-Extension-Identifier");
	return e;
}

static void on_extension(ocil_rapi *r, req *q, const char *url, const char *method)
{
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	if (strcmp(url, EXT_REGISTER) == 0 && post) {
		on_register(r, q);
		return;
	}
	ext *e = named_ext(r, q);
	if (e == NULL)
		return;
	if (strcmp(url, EXT_NEXT) == 0 && get) {
		if (e->parked != NULL) {
			answer_error(q, 400, "InvalidRequest", "this extension already waits");
			return;
		}
		if (e->pending != NULL) {
			char *ev = e->pending;
			e->pending = NULL;
			char eid[40];
			new_uuid(eid);
			answer(q, 200, ev, strlen(ev), "Lambda-Extension-Event-Identifier", eid,
			       NO_MORE);
			free(ev);
			return;
		}
		e->parked = q;
		q->suspended = true;
		hand_out(r);
		return;
	}
	if ((strcmp(url, EXT_INIT_ERROR) == 0 || strcmp(url, EXT_EXIT_ERROR) == 0) && post) {
		answer(q, 202, ok_body, strlen(ok_body), NO_MORE);
		return;
	}
	if ((strcmp(url, LOGS_PATH) == 0 || strcmp(url, TELEMETRY_PATH) == 0) &&
	    strcmp(method, "PUT") == 0) {
		answer(q, 200, "\"OK\"", 4, NO_MORE);
		return;
	}
	answer_error(q, 404, "NotFound", "not found");
}

static void on_runtime(ocil_rapi *r, req *q, const char *url, const char *method)
{
	if (strcmp(url, NEXT_PATH) == 0) {
		if (strcmp(method, "GET") != 0) {
			answer_error(q, 405, "MethodNotAllowed", "use GET");
			return;
		}
		push_event(r, OCIL_RAPI_NEXT, "", NULL, 0, NULL);
		park_next(r, q);
		hand_out(r);
		return;
	}
	if (ocil_str_has_prefix(url, EXT_API "/") || strcmp(url, LOGS_PATH) == 0 ||
	    strcmp(url, TELEMETRY_PATH) == 0) {
		on_extension(r, q, url, method);
		return;
	}
	if (strcmp(method, "POST") != 0) {
		answer_error(q, 404, "NotFound", "not found");
		return;
	}
	if (strcmp(url, INIT_ERROR_PATH) == 0) {
		const char *type = header(q->conn, "Lambda-Runtime-Function-Error-Type");
		const char *body = q->body ? q->body : "";
		push_event(r, OCIL_RAPI_INIT_ERROR, "", body, q->len, type);
		/* the invocation it was started for fails with it */
		fail_head(r, body, q->len);
		answer(q, 202, ok_body, strlen(ok_body), NO_MORE);
		return;
	}
	if (ocil_str_has_prefix(url, INVOCATION_PREFIX)) {
		on_invocation_post(r, q, url);
		return;
	}
	answer_error(q, 404, "NotFound", "not found");
}

/* The context headers of an invoke (400 answered when one is bad). */
static bool invoke_context(req *q, char **client_context, char **trace_id, char **tenant_id)
{
	const char *cc = header(q->conn, "X-Amz-Client-Context");
	if (cc != NULL) {
		char *raw = NULL;
		size_t len = 0;
		ocil_error *err = NULL;
		json_t *j = NULL;
		if (strlen(cc) <= MAX_CLIENT_CONTEXT &&
		    ocil_base64_decode(cc, "client context", &raw, &len, &err) == 0)
			j = json_loadb(raw, len, JSON_REJECT_DUPLICATES, NULL);
		ocil_error_free(err);
		free(raw);
		if (!json_is_object(j)) {
			json_decref(j);
			answer_error(q, 400, "InvalidRequestContentException",
				     "Client context must be a valid Base64-encoded JSON object.");
			return false;
		}
		/* compact: what goes into a header has no line breaks */
		*client_context = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	const char *tr = header(q->conn, "X-Amzn-Trace-Id");
	if (tr != NULL && tr[0] != '\0') {
		if (strlen(tr) > MAX_TRACE_ID) {
			answer_error(q, 400, "InvalidRequestContentException",
				     "X-Amzn-Trace-Id is too long");
			return false;
		}
		*trace_id = ocil_xstrdup(tr);
	}
	const char *tn = header(q->conn, "X-Amz-Tenant-Id");
	if (tn != NULL) {
		if (tn[0] == '\0' || strlen(tn) > MAX_TENANT_ID) {
			answer_error(q, 400, "InvalidParameterValueException",
				     "X-Amz-Tenant-Id must be 1 to 256 characters");
			return false;
		}
		*tenant_id = ocil_xstrdup(tn);
	}
	return true;
}

static void on_invoke(ocil_rapi *r, req *q, const char *url, const char *method)
{
	const char *name = url + strlen(INVOKE_PREFIX);
	bool match = ocil_str_has_prefix(url, INVOKE_PREFIX) &&
		     ocil_str_has_suffix(name, INVOKE_SUFFIX) &&
		     strlen(name) > strlen(INVOKE_SUFFIX);
	if (!match) {
		answer_error(q, 404, "ResourceNotFoundException", "not found");
		return;
	}
	if (strcmp(method, "POST") != 0) {
		answer_error(q, 405, "MethodNotAllowed", "use POST");
		return;
	}
	char *cc = NULL, *tr = NULL, *tn = NULL;
	if (!invoke_context(q, &cc, &tr, &tn))
		return;
	invocation *inv = enqueue(r, q->body ? q->body : "", q->len, q);
	inv->client_context = cc;
	inv->trace_id = tr;
	inv->tenant_id = tn;
	q->suspended = true;
	push_event(r, OCIL_RAPI_QUEUED, inv->id, NULL, 0, NULL);
	hand_out(r);
}

static void too_large(req *q)
{
	if (q->side == SIDE_INVOKE) {
		cleanup_free char *msg = ocil_xasprintf(
		    "Request must be smaller than %zu bytes for the InvokeFunction operation",
		    OCIL_RAPI_MAX_PAYLOAD);
		json_t *j = json_pack("{s:s, s:s}", "errorMessage", msg, "errorType",
				      "RequestTooLargeException");
		char *s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		answer(q, 413, s, strlen(s), "X-Amzn-ErrorType", "RequestTooLargeException",
		       NO_MORE);
		free(s);
	} else {
		cleanup_free char *msg = ocil_xasprintf(
		    "Exceeded maximum allowed payload size (%zu bytes).", OCIL_RAPI_MAX_PAYLOAD);
		answer_error(q, 413, "RequestEntityTooLarge", msg);
	}
}

/* The request is all there: act on it. */
static void dispatch(ocil_rapi *r, req *q, const char *url, const char *method)
{
	if (q->side == SIDE_INVOKE) {
		if (q->too_large)
			too_large(q);
		else
			on_invoke(r, q, url, method);
		return;
	}
	/* a response too large fails its invocation (on_invocation_post);
	 * any other body too large is refused */
	if (q->too_large &&
	    !(strcmp(method, "POST") == 0 && ocil_str_has_prefix(url, INVOCATION_PREFIX) &&
	      ocil_str_has_suffix(url, "/response"))) {
		too_large(q);
		return;
	}
	on_runtime(r, q, url, method);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	ocil_rapi *r = cls;
	req *q = *con_cls;
	if (q == NULL) {
		/* headers: refuse what we refuse before any body is read */
		q = ocil_xcalloc(1, sizeof(*q));
		q->r = r;
		q->conn = conn;
		q->side = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON)->daemon ==
				  r->daemons[0]
			      ? SIDE_RUNTIME
			      : SIDE_INVOKE;
		*con_cls = q;
		q->in_handler = true;
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		bool stale = q->side == SIDE_RUNTIME && ci != NULL &&
			     (uintptr_t)ci->socket_context != r->generation + 1;
		int status = check_framing(q);
		if (r->closing || stale) {
			answer_error(q, 410, "Runtime.Gone",
				     r->closing ? "shutting down"
						: "the sandbox this connection came from is gone");
		} else if (status == 413 && q->side == SIDE_RUNTIME &&
			   strcmp(method, "POST") == 0 &&
			   ocil_str_has_prefix(url, INVOCATION_PREFIX) &&
			   ocil_str_has_suffix(url, "/response")) {
			/* its invocation fails now; the client gets its 413 once
			 * the body is read (an answer before would reach a
			 * client still sending as a reset) */
			q->too_large_early = true;
			on_invocation_post(r, q, url);
			q->too_large_early = false;
			q->too_large = true;
		} else if (status == 413) {
			too_large(q);
		} else if (status != 0) {
			answer_error(q, status, "InvalidRequest", "bad request");
		}
		q->in_handler = false;
		if (q->answered) {
			q->close = true;
			return queue_answer(q);
		}
		return MHD_YES;
	}
	if (q->queued)
		return MHD_YES;
	if (*upload_size > 0) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (q->too_large || q->len + n > OCIL_RAPI_MAX_PAYLOAD) {
			q->too_large = true;
			q->discarded += n;
			free(q->body);
			q->body = NULL;
			q->len = q->cap = 0;
			return q->discarded > MAX_DISCARD ? MHD_NO : MHD_YES;
		}
		if (q->len + n > q->cap) {
			q->cap = q->cap ? q->cap : 8192;
			while (q->cap < q->len + n)
				q->cap *= 2;
			q->body = ocil_xrealloc(q->body, q->cap + 1);
		}
		memcpy(q->body + q->len, upload, n);
		q->len += n;
		return MHD_YES;
	}
	if (!q->started) {
		q->started = true;
		q->in_handler = true;
		dispatch(r, q, url, method);
		q->in_handler = false;
	}
	if (q->answered)
		return queue_answer(q);
	if (q->suspended)
		MHD_suspend_connection(conn);
	return MHD_YES;
}

/* A request is over (answered, or its connection gone): nothing may point
 * to it any longer. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	ocil_rapi *r = cls;
	req *q = *con_cls;
	if (q == NULL)
		return;
	*con_cls = NULL;
	unpark(r, q);
	if (r->current != NULL && r->current->client == q)
		r->current->client = NULL; /* its invocation runs on; nobody gets the answer */
	for (invocation *inv = r->queue; inv != NULL; inv = inv->next)
		if (inv->client == q)
			inv->client = NULL;
	for (ext *e = r->exts; e != NULL; e = e->next)
		if (e->parked == q)
			e->parked = NULL;
	free(q->body);
	free(q->resp);
	ocil_strv_clear(&q->headers);
	free(q);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	const ocil_rapi *r = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		*socket_context = (void *)(r->generation + 1);
}

/* ---- listening ---- */

/* A listening socket on 127.0.0.1 (v6: ::1) at port (0: ephemeral). -1
 * with errno set when it cannot be had. */
static int listen_fd(bool v6, int port)
{
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	if (port > 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int rc;
	if (v6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		struct sockaddr_in6 a = {.sin6_family = AF_INET6,
					 .sin6_port = htons((uint16_t)port),
					 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (rc < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int bound_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	if (a.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
	return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static int start_daemon(ocil_rapi *r, int fd, unsigned limit, size_t pool, ocil_error **err)
{
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request, r,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, limit,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, r, MHD_OPTION_END);
	if (d == NULL) {
		close(fd);
		return ocil_error_set(err, OCIL_E_IO,
				      "cannot start the HTTP server (libmicrohttpd)");
	}
	r->daemons[r->n_daemons++] = d;
	return 0;
}

static int in_use(int port, bool v6, ocil_error **err)
{
	if (errno == EADDRINUSE)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--port %d: %s:%d is in use (pick another port)", port,
				      v6 ? "[::1]" : "127.0.0.1", port);
	return ocil_error_set_errno(err, OCIL_E_IO, errno, "listening on %s:%d",
				    v6 ? "[::1]" : "127.0.0.1", port);
}

int ocil_rapi_open(const ocil_rapi_opts *o, ocil_rapi **out, ocil_error **err)
{
	ocil_rapi *r = ocil_xcalloc(1, sizeof(*r));
	r->o = *o;
	r->arn = ocil_xstrdup(o->function_arn ? o->function_arn : "");
	r->fn_name = ocil_xstrdup(o->function_name ? o->function_name : "function");
	r->fn_version = ocil_xstrdup(o->function_version ? o->function_version : "$LATEST");
	r->handler = ocil_xstrdup(o->handler ? o->handler : "");
	int fd = listen_fd(false, 0);
	if (fd < 0) {
		ocil_error_set_errno(err, OCIL_E_IO, errno, "listening on 127.0.0.1");
		ocil_rapi_free(r);
		return -1;
	}
	r->port = bound_port(fd);
	if (start_daemon(r, fd, RUNTIME_CONNS, RUNTIME_POOL, err) < 0)
		goto fail;
	if (o->invoke_port != 0) {
		int want = o->invoke_port > 0 ? o->invoke_port : 0;
		fd = listen_fd(false, want);
		if (fd < 0) {
			in_use(want, false, err);
			goto fail;
		}
		r->invoke_port = bound_port(fd);
		if (start_daemon(r, fd, INVOKE_CONNS, INVOKE_POOL, err) < 0)
			goto fail;
		fd = listen_fd(true, r->invoke_port);
		if (fd >= 0) {
			if (start_daemon(r, fd, INVOKE_CONNS, INVOKE_POOL, err) < 0)
				goto fail;
			r->invoke_v6 = true;
		} else if (errno == EADDRINUSE && o->invoke_port > 0) {
			in_use(want, true, err);
			goto fail;
		}
		/* else no IPv6 loopback here (or the ephemeral port is taken
		 * there): 127.0.0.1 only */
	}
	*out = r;
	return 0;
fail:
	ocil_rapi_free(r);
	return -1;
}

int ocil_rapi_port(const ocil_rapi *r)
{
	return r->port;
}

int ocil_rapi_invoke_port(const ocil_rapi *r)
{
	return r->invoke_port;
}

bool ocil_rapi_invoke_v6(const ocil_rapi *r)
{
	return r->invoke_v6;
}

/* ---- the loop ---- */

static void run_daemons(ocil_rapi *r)
{
	/* answering one request may resume another (of any daemon), which
	 * MHD acts on in its next run */
	bool again = true;
	for (int round = 0; round < 8 && again; round++) {
		/* a resumed connection takes MHD two runs: one to move it back
		 * among the live ones, one to act on it */
		again = r->kick;
		r->kick = false;
		for (size_t i = 0; i < r->n_daemons; i++)
			MHD_run(r->daemons[i]);
		again = again || r->kick;
	}
}

int ocil_rapi_wait(ocil_rapi *r, int timeout_ms, ocil_rapi_event *ev, ocil_error **err)
{
	memset(ev, 0, sizeof(*ev));
	if (pop_event(r, ev))
		return 1;
	struct pollfd pfd[3];
	int wait = timeout_ms;
	for (size_t i = 0; i < r->n_daemons; i++) {
		const union MHD_DaemonInfo *info =
		    MHD_get_daemon_info(r->daemons[i], MHD_DAEMON_INFO_EPOLL_FD);
		pfd[i] = (struct pollfd){.fd = info ? info->epoll_fd : -1, .events = POLLIN};
		MHD_UNSIGNED_LONG_LONG t;
		if (MHD_get_timeout(r->daemons[i], &t) == MHD_YES && (long long)t < wait)
			wait = (int)t;
	}
	if (r->kick)
		wait = 0;
	int k = poll(pfd, r->n_daemons, wait);
	if (k < 0 && errno != EINTR)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "poll");
	run_daemons(r);
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

void ocil_rapi_fail(ocil_rapi *r, const char *body)
{
	fail_head(r, body, strlen(body));
	run_daemons(r);
}

void ocil_rapi_free(ocil_rapi *r)
{
	if (r == NULL)
		return;
	/* resumed and answered, the waiting requests complete (and are freed)
	 * as the daemons stop; new ones are turned away */
	r->closing = true;
	ocil_rapi_sandbox(r, 0);
	for (invocation *inv = r->current; inv != NULL; inv = NULL)
		if (inv->client != NULL)
			answer_error(inv->client, 503, "ServiceUnavailable", "shutting down");
	for (invocation *inv = r->queue; inv != NULL; inv = inv->next)
		if (inv->client != NULL)
			answer_error(inv->client, 503, "ServiceUnavailable", "shutting down");
	run_daemons(r);
	for (size_t i = 0; i < r->n_daemons; i++)
		MHD_stop_daemon(r->daemons[i]);
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
	free(r->fn_name);
	free(r->fn_version);
	free(r->handler);
	free(r);
}
