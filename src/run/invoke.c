/* The invoke loop of run.h: the Runtime API served, the sandbox started
 * and watched, each invocation's end reported as the emulator does. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "base/json.h"
#include "run/internal.h"
#include "run/run_memory.h"
#include "run/run_report.h"
#include "run/runtime_api.h"
#include "run/supervisor.h"

/* what an extension that got SHUTDOWN has to finish (Lambda: 2 s) */
#define SHUTDOWN_GRACE_S 2.0

/* "errorType: errorMessage" of a Lambda error JSON, or what there is. */
static char *error_summary(const char *body, size_t len, const char *error_type)
{
	json_t *j = json_loadb(body ? body : "", len, JSON_DECODE_ANY, NULL);
	const char *type = json_is_object(j) ? ocil_json_opt_string(j, "errorType") : NULL;
	const char *msg = json_is_object(j) ? ocil_json_opt_string(j, "errorMessage") : NULL;
	if (type == NULL)
		type = error_type ? error_type : "Unhandled";
	char *s = msg ? ocil_xasprintf("%s: %.300s", type, msg) : ocil_xstrdup(type);
	json_decref(j);
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return s;
}

typedef struct {
	const ocil_run_opts *o;
	const ocil_run_events *ev;
	const run_config *cfg;
	ocil_rapi *rapi;
	ocil_supervisor sup;
	ocil_strv argv;
	size_t n_ext;
	ocil_run_memory *mem;
	bool memory_said;
	/* the sandbox */
	double t_start, init_ms; /* init_ms < 0: not measured yet */
	bool first;		 /* its first invocation is still to come */
	/* the invocation the runtime holds */
	char current[40];
	double t_invoke, first_init_ms;
} session;

/* A line of ocilambda's own (events->notice). */
static void note(const session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const session *s, const char *fmt, ...)
{
	if (s->ev->notice == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	s->ev->notice(s->ev->data, msg);
	free(msg);
}

/* A START / END / REPORT line (events->log). */
static void log_line(const session *s, char *line)
{
	if (s->ev->log != NULL)
		s->ev->log(s->ev->data, line);
	free(line);
}

static int start_sandbox(session *s, ocil_error **err)
{
	char *why = NULL;
	if (ocil_run_memory_open(s->cfg->memory_mb, &s->mem, &why, err) < 0)
		return -1;
	if (why != NULL && !s->memory_said)
		note(s,
		     "memory: %ld MB is not enforced (%s); Max Memory Used is the peak RSS "
		     "(VmHWM) of the sandbox's largest process",
		     s->cfg->memory_mb, why);
	free(why);
	s->memory_said = true;
	ocil_rapi_sandbox(s->rapi, s->n_ext);
	s->t_start = ocil_supervisor_now();
	s->init_ms = -1;
	s->first = true;
	return ocil_supervisor_start(&s->sup, (const char *const *)s->argv.v, -1,
				     ocil_run_memory_procs_fd(s->mem), err);
}

/* Extensions that asked for SHUTDOWN get it and a little time, then the
 * sandbox goes, with all its processes. */
static void stop_sandbox(session *s, const char *reason)
{
	if (s->sup.pid > 0 && ocil_rapi_shutdown(s->rapi, reason, 2000) > 0) {
		double until = ocil_supervisor_now() + SHUTDOWN_GRACE_S;
		while (ocil_rapi_extensions_busy(s->rapi) > 0 && ocil_supervisor_now() < until &&
		       !ocil_supervisor_exited(&s->sup)) {
			ocil_rapi_event ev;
			ocil_error *e = NULL;
			if (ocil_rapi_wait(s->rapi, 50, &ev, &e) < 0) {
				ocil_error_free(e);
				break;
			}
			ocil_rapi_event_clear(&ev);
		}
	}
	ocil_supervisor_stop(&s->sup);
	ocil_rapi_sandbox(s->rapi, 0);
	ocil_run_memory_free(s->mem);
	s->mem = NULL;
}

/* The runtime takes an invocation: START (called by the server). */
static void on_started(void *cls, const char *id)
{
	session *s = cls;
	snprintf(s->current, sizeof(s->current), "%s", id);
	s->t_invoke = ocil_supervisor_now();
	s->first_init_ms = -1;
	if (s->first) {
		s->first = false;
		s->first_init_ms = s->init_ms >= 0 ? s->init_ms : (s->t_invoke - s->t_start) * 1000;
	}
	log_line(s, ocil_run_start_line(id, OCIL_RUN_FUNCTION_VERSION));
}

/* The invocation is over: END and REPORT (status and error_type for the
 * failures the runtime did not report itself). */
static void on_ended(session *s, const char *status, const char *error_type)
{
	if (s->current[0] == '\0')
		return;
	double ms = (ocil_supervisor_now() - s->t_invoke) * 1000;
	if (status != NULL && strcmp(status, "timeout") == 0)
		ms = (double)s->cfg->timeout_s * 1000;
	ocil_run_report rep = {.init_ms = s->first_init_ms,
			       .duration_ms = ms,
			       .memory_mb = s->cfg->memory_mb,
			       .max_used_mb = ocil_run_memory_peak_mb(s->mem, s->sup.pid),
			       .status = status,
			       .error_type = error_type};
	log_line(s, ocil_run_end_line(s->current));
	log_line(s, ocil_run_report_line(s->current, &rep));
	s->current[0] = '\0';
}

/* Serve a tenth of a second: 1 with an event, 0 without, -1 on error or
 * cancellation. Keeps the sandbox's init time (its runtime's first /next). */
static int next_event(session *s, ocil_rapi_event *ev, ocil_error **err)
{
	if (ocil_cancel_check(s->o->cancel, err) < 0)
		return -1;
	int r = ocil_rapi_wait(s->rapi, 100, ev, err);
	if (r > 0 && ev->kind == OCIL_RAPI_NEXT && s->init_ms < 0)
		s->init_ms = (ocil_supervisor_now() - s->t_start) * 1000;
	return r;
}

static void set_body(ocil_run_result *out, const char *body, size_t len)
{
	free(out->body);
	out->body = ocil_xmalloc(len + 1);
	memcpy(out->body, body, len);
	out->body[len] = '\0';
	out->len = len;
}

/* The sandbox exited before answering: Lambda's body and error. */
static int exited(session *s, ocil_run_result *out, ocil_error **err)
{
	bool oom = ocil_run_memory_oom(s->mem);
	/* bwrap says 137 for the kernel's kill: Lambda says what it was */
	int st = oom ? SIGKILL : s->sup.status;
	cleanup_free char *body = ocil_run_exit_body(s->current, st, oom);
	cleanup_free char *text = ocil_run_exit_text(st);
	on_ended(s, "error", oom ? "Runtime.OutOfMemory" : "Runtime.ExitError");
	set_body(out, body, strlen(body));
	stop_sandbox(s, "failure");
	return ocil_error_set(err, OCIL_E_FUNCTION, "the function exited (%s) without answering%s",
			      text,
			      WIFEXITED(st) && WEXITSTATUS(st) == 142
				  ? " (the entrypoint wants exactly one argument, the handler: "
				    "give --handler)"
			      : oom ? " (out of memory: --memory)"
				    : "; its log is above");
}

/* What an event of the one invocation means: 1 when it answered, -1
 * when it failed (err set), 0 to go on. */
static int invoke_event(session *s, const ocil_rapi_event *ev, ocil_run_result *out,
			ocil_error **err)
{
	if (ev->kind == OCIL_RAPI_STARTED)
		ocil_supervisor_arm(&s->sup, (double)s->cfg->timeout_s);
	if (ev->kind == OCIL_RAPI_RESPONSE) {
		on_ended(s, NULL, NULL);
		set_body(out, ev->body, ev->len);
		stop_sandbox(s, "spindown");
		return 1;
	}
	if (ev->kind != OCIL_RAPI_ERROR && ev->kind != OCIL_RAPI_INIT_ERROR)
		return 0;
	on_ended(s, NULL, NULL);
	set_body(out, ev->body, ev->len);
	cleanup_free char *sum = error_summary(ev->body, ev->len, ev->error_type);
	stop_sandbox(s, "spindown");
	return ocil_error_set(err, OCIL_E_FUNCTION, "the function %s: %s",
			      ev->kind == OCIL_RAPI_INIT_ERROR ? "failed to initialize" : "failed",
			      sum);
}

static int invoke_once(session *s, ocil_run_result *out, ocil_error **err)
{
	ocil_rapi_submit(s->rapi, s->o->event, s->o->event_len);
	if (start_sandbox(s, err) < 0)
		return -1;
	ocil_supervisor_arm(&s->sup, (double)s->cfg->timeout_s);
	for (;;) {
		ocil_rapi_event ev;
		int r = next_event(s, &ev, err);
		if (r < 0)
			return -1;
		if (r > 0) {
			int done = invoke_event(s, &ev, out, err);
			ocil_rapi_event_clear(&ev);
			if (done != 0)
				return done > 0 ? 0 : -1;
		}
		if (ocil_supervisor_exited(&s->sup))
			return exited(s, out, err);
		if (ocil_supervisor_timed_out(&s->sup)) {
			cleanup_free char *body =
			    ocil_run_timeout_body(s->current, s->cfg->timeout_s);
			on_ended(s, "timeout", NULL);
			set_body(out, body, strlen(body));
			stop_sandbox(s, "timeout");
			return ocil_error_set(err, OCIL_E_FUNCTION,
					      "the function timed out after %ld s (--timeout-s): "
					      "stopped",
					      s->cfg->timeout_s);
		}
	}
}

/* An event while serving. */
static void serve_event(session *s, const ocil_rapi_event *ev)
{
	switch (ev->kind) {
	case OCIL_RAPI_STARTED:
		ocil_supervisor_arm(&s->sup, (double)s->cfg->timeout_s);
		break;
	case OCIL_RAPI_INIT_ERROR:
	case OCIL_RAPI_ERROR: {
		cleanup_free char *sum = error_summary(ev->body, ev->len, ev->error_type);
		note(s, "the function %s: %s",
		     ev->kind == OCIL_RAPI_INIT_ERROR ? "failed to initialize" : "failed", sum);
		if (ev->kind == OCIL_RAPI_ERROR)
			on_ended(s, NULL, NULL);
		ocil_supervisor_arm(&s->sup, 0);
		break;
	}
	case OCIL_RAPI_RESPONSE:
		on_ended(s, NULL, NULL);
		ocil_supervisor_arm(&s->sup, 0);
		break;
	case OCIL_RAPI_EXTENSION:
		note(s, "extension %s registered", ev->body);
		break;
	case OCIL_RAPI_QUEUED: /* the clock starts in serve */
	case OCIL_RAPI_NEXT:
	case OCIL_RAPI_NONE:
		break;
	}
}

/* Serving: the sandbox timed out or exited; the invocation it held fails
 * (its caller gets Lambda's body). */
static void serve_failure(session *s)
{
	if (ocil_rapi_busy(s->rapi) && ocil_supervisor_timed_out(&s->sup)) {
		cleanup_free char *body = ocil_run_timeout_body(s->current, s->cfg->timeout_s);
		note(s, "the function timed out after %ld s: stopped", s->cfg->timeout_s);
		ocil_rapi_fail(s->rapi, body);
		on_ended(s, "timeout", NULL);
		stop_sandbox(s, "timeout");
	} else if (s->sup.pid > 0 && ocil_supervisor_exited(&s->sup)) {
		bool oom = ocil_run_memory_oom(s->mem);
		int st = oom ? SIGKILL : s->sup.status;
		cleanup_free char *text = ocil_run_exit_text(st);
		note(s, "the function exited (%s)%s", text, oom ? " out of memory" : "");
		if (ocil_rapi_busy(s->rapi)) {
			cleanup_free char *body = ocil_run_exit_body(s->current, st, oom);
			ocil_rapi_fail(s->rapi, body);
		}
		on_ended(s, "error", oom ? "Runtime.OutOfMemory" : "Runtime.ExitError");
		stop_sandbox(s, "failure");
	}
}

static int serve(session *s, ocil_error **err)
{
	char v6[64] = "";
	if (ocil_rapi_invoke_v6(s->rapi))
		snprintf(v6, sizeof(v6), " and [::1]:%d", s->o->port);
	note(s,
	     "serving http://127.0.0.1:%d/2015-03-31/functions/%s/invocations%s (Ctrl-C "
	     "stops)",
	     s->o->port, s->cfg->name, v6);
	if (start_sandbox(s, err) < 0)
		return -1;
	for (;;) {
		ocil_rapi_event ev;
		int r = next_event(s, &ev, err);
		if (r < 0)
			return -1;
		if (r > 0) {
			serve_event(s, &ev);
			ocil_rapi_event_clear(&ev);
		}
		if (ocil_rapi_busy(s->rapi) && s->sup.deadline == 0)
			ocil_supervisor_arm(&s->sup, (double)s->cfg->timeout_s);
		serve_failure(s);
		/* a fresh sandbox for the next invocation, as Lambda makes one */
		if (s->sup.pid == 0 && ocil_rapi_busy(s->rapi)) {
			if (start_sandbox(s, err) < 0)
				return -1;
			ocil_supervisor_arm(&s->sup, (double)s->cfg->timeout_s);
		}
	}
}

void ocil_run_result_clear(ocil_run_result *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* The server, the image, bubblewrap: the cheap checks first (the port,
 * bubblewrap), then the image; then invoke or serve. */
static int run(session *s, run_image *im, ocil_run_result *out, ocil_error **err)
{
	const ocil_run_opts *o = s->o;
	ocil_rapi_opts rao = {.invoke_port = o->port,
			      .function_arn = s->cfg->arn,
			      .function_name = s->cfg->name,
			      .function_version = OCIL_RUN_FUNCTION_VERSION,
			      .timeout_ms = s->cfg->timeout_s * 1000,
			      .on_started = on_started,
			      .cls = s};
	if (run_image_parse(o, im, err) < 0 || ocil_rapi_open(&rao, &s->rapi, err) < 0)
		return -1;
	if (ocil_supervisor_check_bwrap(err) < 0 || run_image_open(o, im, err) < 0)
		return -1;
	ocil_rapi_set_handler(s->rapi, im->handler);
	s->n_ext = im->extensions.n;
	run_image_argv(o, s->cfg, im, ocil_rapi_port(s->rapi), &s->argv);
	int r = o->event ? invoke_once(s, out, err) : serve(s, err);
	stop_sandbox(s, "spindown");
	return r;
}

int ocil_run_function(const ocil_run_opts *given, ocil_run_result *out, ocil_error **err)
{
	static const ocil_run_events none = {0};
	ocil_run_opts o = *given;
	if (o.events == NULL)
		o.events = &none;
	memset(out, 0, sizeof(*out));
	if ((o.event == NULL) == (o.port == 0))
		return ocil_error_set(err, OCIL_E_USAGE,
				      o.event ? "--event and --port exclude each other"
					      : "give --event JSON (one invocation) or --port N "
						"(serve)");
	/* the sandbox's pid 1 is reparented to us when bwrap goes, so that
	 * we can wait for it (and so for all of the sandbox) */
	ocil_supervisor_init();
	run_config cfg = {0};
	run_image im = {0};
	session s = {.o = &o, .ev = o.events, .cfg = &cfg};
	int r = run_config_resolve(&o, &cfg, err);
	if (r == 0)
		r = run(&s, &im, out, err);
	ocil_rapi_free(s.rapi);
	ocil_strv_clear(&s.argv);
	run_image_clear(&im);
	run_config_clear(&cfg);
	return r;
}
