/* runtime_api: the Lambda Runtime API (2018-06-01) served on 127.0.0.1, a
 * small single-threaded HTTP/1.1 server (keep-alive, Content-Length or
 * chunked bodies, Expect: 100-continue), for `ocilambda run`.
 *
 * The function's runtime client speaks to it:
 *   GET  /2018-06-01/runtime/invocation/next       parks until an invocation
 *        is queued; answers its event with Lambda-Runtime-Aws-Request-Id,
 *        -Deadline-Ms, -Invoked-Function-Arn and -Trace-Id
 *   POST /2018-06-01/runtime/invocation/<id>/response   the result
 *   POST /2018-06-01/runtime/invocation/<id>/error      an error JSON
 *        (Lambda-Runtime-Function-Error-Type header)
 *   POST /2018-06-01/runtime/init/error                 init failed
 * and, when asked for, the Runtime Interface Emulator's invoke URL on a
 * port of its own:
 *   POST /2015-03-31/functions/<name>/invocations   queues the body as an
 *        event and answers, once the function has, with its result (200),
 *        its error JSON (200 and X-Amz-Function-Error: Unhandled), or what
 *        ocil_rapi_fail gives.
 * Invocations are handed out one at a time, in order. Bodies are capped at
 * OCIL_RAPI_MAX_BODY (Lambda's 6 MB payload limit), headers at 64 KiB.
 *
 * The library never prints: the caller waits for events and decides. */
#ifndef OCIL_RUNTIME_API_H
#define OCIL_RUNTIME_API_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define OCIL_RAPI_MAX_BODY ((size_t)6 << 20)

typedef struct ocil_rapi ocil_rapi;

typedef struct {
	/* > 0: serve the invoke URL on 127.0.0.1:invoke_port too; -1: on an
	 * ephemeral port (ocil_rapi_invoke_port tells which) */
	int invoke_port;
	/* Lambda-Runtime-Invoked-Function-Arn */
	const char *function_arn;
	/* Lambda-Runtime-Deadline-Ms: when the invocation is handed out plus
	 * this */
	long timeout_ms;
} ocil_rapi_opts;

typedef enum {
	OCIL_RAPI_NONE,
	OCIL_RAPI_QUEUED,     /* an invoke client posted an event */
	OCIL_RAPI_STARTED,    /* the runtime took the invocation id */
	OCIL_RAPI_RESPONSE,   /* body: the function's result */
	OCIL_RAPI_ERROR,      /* body: its error JSON; error_type: the header */
	OCIL_RAPI_INIT_ERROR, /* body and error_type as for ERROR */
} ocil_rapi_kind;

typedef struct {
	ocil_rapi_kind kind;
	char id[40];
	char *body;
	size_t len;
	char *error_type; /* NULL when not given */
} ocil_rapi_event;

void ocil_rapi_event_clear(ocil_rapi_event *ev);

/* Listen on 127.0.0.1: an ephemeral port for the runtime, and
 * o->invoke_port when set (in use: OCIL_E_USAGE naming the port). */
int ocil_rapi_open(const ocil_rapi_opts *o, ocil_rapi **out, ocil_error **err);
/* The runtime API's port (for AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>). */
int ocil_rapi_port(const ocil_rapi *r);
/* The invoke URL's port, 0 when not served. */
int ocil_rapi_invoke_port(const ocil_rapi *r);
/* Queue an invocation nobody waits for over HTTP (run --event). */
void ocil_rapi_submit(ocil_rapi *r, const char *body, size_t len);
/* Serve for at most timeout_ms; returns 1 with *ev filled (clear it),
 * 0 when nothing happened (or a signal came), -1 on error. */
int ocil_rapi_wait(ocil_rapi *r, int timeout_ms, ocil_rapi_event *ev, ocil_error **err);
/* Whether an invocation is being run or waits. */
bool ocil_rapi_busy(const ocil_rapi *r);
/* Whether the runtime holds an invocation (it asked /next and got one). */
bool ocil_rapi_running(const ocil_rapi *r);
/* The function is gone (timed out and killed, or exited): answer the
 * invocation it held, or else the first one waiting, with status and body
 * (an invoke client gets them; none for a submitted one), drop it, and
 * close the runtime's connections. */
void ocil_rapi_fail(ocil_rapi *r, int status, const char *body);
void ocil_rapi_free(ocil_rapi *r);

#endif
