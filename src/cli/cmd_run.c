/* ocilambda run: invoke an image's function locally, without Docker or
 * root: the rootfs unpacked once into the cache, the Entrypoint+Cmd under
 * bubblewrap as Lambda's sandbox user, the Runtime API served by us. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "run/run.h"

enum {
	OPT_EVENT = 256,
	OPT_PORT,
	OPT_HANDLER,
	OPT_ENV,
	OPT_TIMEOUT_S,
	OPT_PLATFORM,
	OPT_MEMORY,
};

static const ocil_option options[] = {
    {"event", OPT_EVENT, "JSON|@FILE",
     "invoke once with this event, print the response on stdout, exit"},
    {"port", OPT_PORT, "N",
     "serve POST /2015-03-31/functions/function/invocations on 127.0.0.1:N until Ctrl-C"},
    {"handler", OPT_HANDLER, "MODULE.FUNCTION",
     "replace the image's Cmd (as the function's ImageConfig Command does)"},
    {"env", OPT_ENV, "KEY=VALUE", "set a variable for the function (repeatable)"},
    {"timeout-s", OPT_TIMEOUT_S, "SECONDS",
     "the function's timeout per invocation, init included (default 300, as the emulator's; "
     "or --env AWS_LAMBDA_FUNCTION_TIMEOUT=SECONDS)"},
    {"memory", OPT_MEMORY, "MB",
     "the function's memory, 128-10240 (default 3008, as the emulator's; or --env "
     "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=MB): enforced where a memory cgroup can be made"},
    {"platform", OPT_PLATFORM, "OS/ARCH",
     "which image of an index (default: linux and this machine's architecture)"},
    {"quiet", OCIL_OPT_QUIET, NULL,
     "nothing of ocilambda's own on stderr but errors (the function's output stays)"},
    {"progress", OCIL_OPT_PROGRESS, NULL,
     "say what is unpacked or reused, and download progress, even when stderr is not a "
     "terminal"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	const char *event;
	int port;
	const char *handler;
	ocil_strv env;
	long timeout_s, memory_mb; /* 0: not given */
	const char *platform;
	bool quiet, progress;
	ocil_registry_opts registry;
	ocil_cmd_registry reg;
} opts;

static int on_opt(void *data, int key, const char *arg, ocil_error **err)
{
	opts *o = data;
	int handled = ocil_cmd_shared_opt(&o->reg, &o->quiet, &o->progress, key, arg, err);
	if (handled != 0)
		return handled < 0 ? -1 : 0;
	long v;
	switch (key) {
	case OPT_EVENT:
		o->event = arg;
		break;
	case OPT_PORT:
		if (ocil_cmd_long_opt("port", arg, 1, 65535, "1-65535", &v, err) < 0)
			return -1;
		o->port = (int)v;
		break;
	case OPT_HANDLER:
		if (arg[0] == '\0')
			return ocil_error_set(err, OCIL_E_USAGE, "--handler: empty");
		o->handler = arg;
		break;
	case OPT_ENV:
		return ocil_cmd_env_opt(&o->env, arg, err);
	case OPT_TIMEOUT_S:
		return ocil_cmd_long_opt("timeout-s", arg, 1, 86400, "1-86400 seconds",
					 &o->timeout_s, err);
	case OPT_MEMORY:
		return ocil_cmd_long_opt("memory", arg, 128, 10240, "128-10240 MB", &o->memory_mb,
					 err);
	case OPT_PLATFORM:
		o->platform = arg;
		break;
	}
	return 0;
}

/* ---- what the run says, on stderr; the answer on stdout ---- */

static void on_line(void *data, const char *line)
{
	fprintf(stderr, "%s\n", line);
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	opts o = {.registry = OCIL_REGISTRY_OPTS_DEFAULT};
	o.reg.registry = &o.registry;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &o, &first, err);
	if (r == 0 && first >= argc)
		r = ocil_error_set(err, OCIL_E_USAGE, "missing the image reference to run");
	if (r == 0 && first + 1 < argc)
		r = ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'", argv[first + 1]);
	if (r == 0 && (o.event == NULL) == (o.port == 0))
		r = ocil_error_set(err, OCIL_E_USAGE,
				   o.event
				       ? "--event and --port exclude each other"
				       : "give --event JSON (one invocation) or --port N (serve)");
	cleanup_free char *event = NULL;
	size_t event_len = 0;
	if (r == 0 && o.event != NULL)
		r = ocil_run_load_event(o.event, &event, &event_len, err);
	if (r != 0) {
		ocil_strv_clear(&o.env);
		return r < 0 ? -1 : 0;
	}
	bool progress = ocil_cmd_progress_on(o.quiet, o.progress);
	ocil_run_events ev = {.progress = progress ? ocil_cmd_print_notice : NULL,
			      .notice = o.quiet ? NULL : ocil_cmd_print_notice,
			      .log = o.quiet ? NULL : on_line};
	ocil_cmd_progress prog = {0};
	ocil_cmd_registry_callbacks(&o.registry, progress ? &prog : NULL);
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	ocil_run_opts ro = {.image = argv[first],
			    .platform = o.platform,
			    .handler = o.handler,
			    .env = (const char *const *)o.env.v,
			    .n_env = o.env.n,
			    .timeout_s = o.timeout_s,
			    .memory_mb = o.memory_mb,
			    .event = event,
			    .event_len = event_len,
			    .port = o.port,
			    .registry = o.registry,
			    .cache_dir = o.reg.cache_dir,
			    .cancel = &cancel,
			    .events = &ev};
	ocil_run_result res = {0};
	r = ocil_run_function(&ro, &res, err);
	/* the answer, or Lambda's error body for a failure */
	if (res.body != NULL) {
		fwrite(res.body, 1, res.len, stdout);
		fputc('\n', stdout);
		if (fflush(stdout) != 0 && r == 0)
			r = ocil_error_set_errno(err, OCIL_E_IO, errno, "writing to stdout");
	}
	ocil_run_result_clear(&res);
	ocil_strv_clear(&o.env);
	return r;
}

/* clang-format off */
#define DETAILS \
	"Runs the image's Entrypoint + Cmd the way Lambda does, without Docker or\n" \
	"root: its layers are unpacked once per image (config and layer digests) into\n" \
	"CACHE/rootfs/<hex> (CACHE: --cache-dir, else $XDG_CACHE_HOME/ocilambda or\n" \
	"~/.cache/ocilambda; whiteouts applied, no chown, setuid bits and device\n" \
	"nodes dropped), then started under bubblewrap: the tree read-only at /,\n" \
	"fresh /proc, /dev and /tmp, uid 993 / gid 990 (Lambda's sbx_user1051) in a\n" \
	"user namespace, the image's Env and WorkingDir, plus AWS_LAMBDA_RUNTIME_API\n" \
	"(ocilambda serves the Runtime API on 127.0.0.1), AWS_LAMBDA_FUNCTION_NAME=\n" \
	"function, _VERSION=$LATEST, _MEMORY_SIZE (--memory), LAMBDA_TASK_ROOT, _HANDLER,\n" \
	"AWS_REGION (yours, else us-east-1), TZ=:UTC, your AWS credentials if set,\n" \
	"then --env. The function's output goes to stderr. The host's network is\n" \
	"shared (for the Runtime API): the function reaches what listens on loopback.\n" \
	"\n" \
	"--event: one invocation; the response body is printed on stdout, exit 0.\n" \
	"Any function failure prints Lambda's error JSON on stdout and exits 6: its\n" \
	"own error or init error, Sandbox.Timedout past the timeout (it is killed),\n" \
	"Runtime.ExitError (Runtime.OutOfMemory) for a runtime that exits,\n" \
	"Function.ResponseSizeTooLarge for a response over 6,291,556 bytes.\n" \
	"--port: the Runtime Interface Emulator's invoke URL on 127.0.0.1 and ::1, so\n" \
	"that\n" \
	"  curl -XPOST http://localhost:N/2015-03-31/functions/function/invocations -d '{}'\n" \
	"works as with 'docker run -p N:8080'. One invocation at a time, the\n" \
	"function's process kept between them. Answers as Lambda's Invoke: 200 with\n" \
	"the response; 200, X-Amz-Function-Error: Unhandled and the error JSON for\n" \
	"every failure above (a new process for the next invocation after a\n" \
	"timeout or an exit); 413 RequestTooLargeException for an event over the\n" \
	"limit. X-Amz-Client-Context (base64 JSON, else 400), X-Amzn-Trace-Id and\n" \
	"X-Amz-Tenant-Id reach the runtime. Ctrl-C (SIGINT, SIGTERM) stops it and\n" \
	"exits 130.\n" \
	"\n" \
	"Each invocation is reported on stderr as the emulator does (START, END,\n" \
	"REPORT with Init Duration, Duration, Billed Duration, Memory Size, Max\n" \
	"Memory Used); --quiet hides them. --memory is enforced by a memory cgroup\n" \
	"where one can be made (else it is said, and Max Memory Used is the largest\n" \
	"process's peak RSS). Executables in /opt/extensions start before the\n" \
	"runtime and get the Extensions API (INVOKE, SHUTDOWN).\n" \
	"\n" \
	"Needs bubblewrap (bwrap) and unprivileged user namespaces; exit 5 when\n" \
	"either is missing.\n" \
	"\nExamples:\n" \
	"  ocilambda run oci:./out:latest --event '{}'\n" \
	"  ocilambda run oci:./out:latest --event @event.json --handler app.other\n" \
	"  ocilambda run oci:./out:latest --port 9000\n"
/* clang-format on */

const ocil_command ocil_cmd_run = {
    .name = "run",
    .usage = "[options] IMAGE (--event JSON|@FILE | --port N)",
    .summary = "invoke an image's function locally under bubblewrap (no Docker, no root)",
    .details = DETAILS,
    .options = options,
    .exits = OCIL_X_IMAGE | OCIL_X_FUNCTION,
    .run = run,
};
