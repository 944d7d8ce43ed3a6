/* run: an image's function invoked locally the way Lambda runs it, without
 * Docker or root:
 *
 *   the image opened -> its Entrypoint, Cmd, Env, WorkingDir read -> its
 *   layers unpacked once into the cache (oci/unpack.h) -> the Runtime API
 *   served on 127.0.0.1 (runtime_api.h) -> a sandbox (sandbox.h) started
 *   under the supervisor (supervisor.h), extensions first -> events handed
 *   to the runtime, its answers, errors, exits and timeouts turned into
 *   Lambda's bodies and the emulator's START/END/REPORT lines
 *   (run_report.h), the memory bounded and measured (run_memory.h).
 *
 * One invocation (an event: the answer comes back in the result), or an
 * invoke URL served until cancelled. Nothing here prints: the lines go to
 * the events callbacks; the function's own output goes to our stderr. */
#ifndef OCIL_RUN_H
#define OCIL_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/util.h"
#include "registry/registry.h"

#define OCIL_RUN_DEFAULT_TIMEOUT_S 300
#define OCIL_RUN_DEFAULT_MEMORY_MB 3008

/* What a run says; every callback may be NULL (nothing said). */
typedef struct {
	void *data;
	/* what is unpacked or reused: "unpacking oci:./out (6 layers)" */
	void (*progress)(void *data, const char *msg);
	/* ocilambda's own lines: where it serves, how the function failed,
	 * an extension registered, memory not enforced */
	void (*notice)(void *data, const char *msg);
	/* the emulator's lines: START, END, REPORT */
	void (*log)(void *data, const char *line);
} ocil_run_events;

typedef struct {
	const char *image;    /* the reference to run */
	const char *platform; /* NULL: linux and this machine's architecture */
	const char *handler;  /* replaces the image's Cmd, or NULL */
	/* KEY=VALUE for the function, last; also AWS_LAMBDA_FUNCTION_NAME,
	 * _TIMEOUT and _MEMORY_SIZE as the emulator reads them */
	const char *const *env;
	size_t n_env;
	long timeout_s, memory_mb; /* 0: not given (then --env, else the defaults) */
	/* exactly one of: an event to invoke once with, or a port to serve
	 * the invoke URL on until cancelled */
	const char *event;
	size_t event_len;
	int port;
	ocil_registry_opts registry; /* with the caller's notice and progress */
	const char *cache_dir;	     /* NULL: ocil_source_default_cache_dir() */
	const ocil_cancel *cancel;
	const ocil_run_events *events; /* NULL: nothing said */
} ocil_run_opts;

typedef struct {
	/* the event's answer: the function's response, or Lambda's error
	 * JSON when it failed (then ocil_run_function fails with
	 * OCIL_E_FUNCTION); NULL when it never came to that */
	char *body;
	size_t len;
} ocil_run_result;
void ocil_run_result_clear(ocil_run_result *r);

/* An event given as JSON or as @FILE: its bytes (NUL-terminated), checked
 * to be JSON (OCIL_E_INPUT) and no larger than Lambda takes. */
int ocil_run_load_event(const char *arg, char **out, size_t *len, ocil_error **err);

/* Run the function: OCIL_E_USAGE (options, the port in use), OCIL_E_INPUT
 * (the image), OCIL_E_REGISTRY, OCIL_E_IO (bubblewrap missing or unable),
 * OCIL_E_FUNCTION (it failed: out->body says how), OCIL_E_CANCELLED (the
 * end of serving). The process becomes a subreaper (supervisor.h). */
int ocil_run_function(const ocil_run_opts *o, ocil_run_result *out, ocil_error **err);

#endif
