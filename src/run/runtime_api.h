/* runtime_api: the Lambda Runtime API (2018-06-01) and Extensions API
 * (2020-01-01) served on 127.0.0.1, and the Invoke API the emulator serves,
 * for `ocilambda run`. HTTP is libmicrohttpd's, driven by one event loop of
 * ours (ocil_rapi_wait); a long-poll (/next, /event/next) or an invoke
 * waiting for its function is a suspended connection, resumed with its
 * answer.
 *
 * The function's runtime client speaks to it:
 *   GET  /2018-06-01/runtime/invocation/next       waits until an invocation
 *        is queued (and the sandbox's extensions are ready); answers its
 *        event with Lambda-Runtime-Aws-Request-Id, -Deadline-Ms,
 *        -Invoked-Function-Arn, -Trace-Id and, when the caller gave them,
 *        -Client-Context and -Aws-Tenant-Id
 *   POST /2018-06-01/runtime/invocation/<id>/response   the result (413 over
 *        OCIL_RAPI_MAX_PAYLOAD: the invocation fails with
 *        Function.ResponseSizeTooLarge)
 *   POST /2018-06-01/runtime/invocation/<id>/error      an error JSON
 *        (Lambda-Runtime-Function-Error-Type header)
 *   POST /2018-06-01/runtime/init/error                 init failed
 * its extensions (executables in /opt/extensions):
 *   POST /2020-01-01/extension/register (Lambda-Extension-Name, events
 *        INVOKE and SHUTDOWN), GET /2020-01-01/extension/event/next,
 *   POST /2020-01-01/extension/{init,exit}/error, PUT /2020-08-15/logs and
 *        /2022-07-01/telemetry (subscriptions accepted; nothing is sent)
 * and, when asked for, the Runtime Interface Emulator's invoke URL on a port
 * of its own (127.0.0.1 and ::1):
 *   POST /2015-03-31/functions/<name>/invocations[?Qualifier=…] queues the
 *        body (X-Amz-Client-Context, X-Amzn-Trace-Id, X-Amz-Tenant-Id go to
 *        the runtime) and answers once the function has: 200 with its result,
 *        or 200, X-Amz-Function-Error: Unhandled and the error JSON for any
 *        function failure (Lambda's Invoke semantics); 413
 *        RequestTooLargeException for an event over the limit, 400 for a
 *        client context that is not base64 of a JSON object.
 * Invocations are handed out one at a time, in order. A request carrying
 * both Content-Length and Transfer-Encoding, or either twice, is refused
 * (400). Request headers: up to 1 MiB on the runtime side (the X-Ray error
 * cause header can be that long), 64 KiB on the invoke side.
 *
 * The library never prints: the caller waits for events and decides. */
#ifndef OCIL_RUNTIME_API_H
#define OCIL_RUNTIME_API_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* Lambda's synchronous payload limit, as the emulator counts it: an event
 * or a response longer than this is refused */
#define OCIL_RAPI_MAX_PAYLOAD ((size_t)6291556)

typedef struct ocil_rapi ocil_rapi;

typedef struct {
	/* > 0: serve the invoke URL on 127.0.0.1 and ::1 at invoke_port too;
	 * -1: on an ephemeral port (ocil_rapi_invoke_port tells which) */
	int invoke_port;
	/* Lambda-Runtime-Invoked-Function-Arn */
	const char *function_arn;
	/* what an extension's registration answers */
	const char *function_name, *function_version, *handler;
	/* Lambda-Runtime-Deadline-Ms: when the invocation is handed out plus
	 * this */
	long timeout_ms;
	/* called as an invocation is handed out, before the runtime can see
	 * it (so that what the caller says about it comes first); may be
	 * NULL */
	void (*on_started)(void *cls, const char *id);
	void *cls;
} ocil_rapi_opts;

typedef enum {
	OCIL_RAPI_NONE,
	OCIL_RAPI_QUEUED,     /* an invoke client posted an event */
	OCIL_RAPI_STARTED,    /* the runtime took the invocation id */
	OCIL_RAPI_RESPONSE,   /* body: the function's result */
	OCIL_RAPI_ERROR,      /* body: its error JSON; error_type: the header
				 (Function.ResponseSizeTooLarge: ours) */
	OCIL_RAPI_INIT_ERROR, /* body and error_type as for ERROR */
	OCIL_RAPI_EXTENSION,  /* an extension registered: body its name */
	OCIL_RAPI_NEXT,	      /* the runtime asks for an invocation */
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
 * o->invoke_port when set (in use: OCIL_E_USAGE naming the port; ::1 is
 * served too where the host has IPv6). */
int ocil_rapi_open(const ocil_rapi_opts *o, ocil_rapi **out, ocil_error **err);
/* The runtime API's port (for AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>). */
int ocil_rapi_port(const ocil_rapi *r);
/* The invoke URL's port, 0 when not served. */
int ocil_rapi_invoke_port(const ocil_rapi *r);
/* Whether the invoke URL is served on ::1 too. */
bool ocil_rapi_invoke_v6(const ocil_rapi *r);
/* The handler an extension's registration names (once the image's
 * config is read). */
void ocil_rapi_set_handler(ocil_rapi *r, const char *handler);
/* Queue an invocation nobody waits for over HTTP (run --event). */
void ocil_rapi_submit(ocil_rapi *r, const char *body, size_t len);
/* Serve for at most timeout_ms; returns 1 with *ev filled (clear it),
 * 0 when nothing happened (or a signal came), -1 on error. */
int ocil_rapi_wait(ocil_rapi *r, int timeout_ms, ocil_rapi_event *ev, ocil_error **err);
/* Whether an invocation is being run or waits. */
bool ocil_rapi_busy(const ocil_rapi *r);
/* Whether the runtime holds an invocation (it asked /next and got one). */
bool ocil_rapi_running(const ocil_rapi *r);
/* A new sandbox starts with n_extensions executables in /opt/extensions:
 * the first invocation waits until that many have registered and each
 * registered one asks for its next event (or the caller's timeout). The
 * previous sandbox's runtime and extensions are let go of (their waiting
 * requests answered 410, connection closed). */
void ocil_rapi_sandbox(ocil_rapi *r, size_t n_extensions);
/* Send SHUTDOWN (reason: spindown, timeout or failure) to the extensions
 * registered for it, with a deadline deadline_ms from now; returns how many
 * got it. */
size_t ocil_rapi_shutdown(ocil_rapi *r, const char *reason, long deadline_ms);
/* How many registered extensions are not waiting for their next event
 * (after a SHUTDOWN: the ones still cleaning up). */
size_t ocil_rapi_extensions_busy(const ocil_rapi *r);
/* The function failed without saying so (timed out, or exited): answer
 * the invocation it held, or else the first one waiting, with 200,
 * X-Amz-Function-Error: Unhandled and body (an invoke client gets them; none
 * for a submitted one), and drop it. */
void ocil_rapi_fail(ocil_rapi *r, const char *body);
void ocil_rapi_free(ocil_rapi *r);

#endif
