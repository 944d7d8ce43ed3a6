/* run_report: lines and bodies, formatted as the emulator and Lambda do. */
#include "run/run_report.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "base/util.h"

char *ocil_run_start_line(const char *id, const char *version)
{
	return ocil_xasprintf("START RequestId: %s Version: %s", id, version);
}

char *ocil_run_end_line(const char *id)
{
	return ocil_xasprintf("END RequestId: %s", id);
}

char *ocil_run_report_line(const char *id, const ocil_run_report *rep)
{
	char init[64] = "", used[32] = "?", status[160] = "";
	if (rep->init_ms >= 0)
		snprintf(init, sizeof(init), "Init Duration: %.2f ms\t", rep->init_ms);
	if (rep->max_used_mb >= 0)
		snprintf(used, sizeof(used), "%ld", rep->max_used_mb);
	if (rep->status != NULL)
		snprintf(status, sizeof(status), "Status: %s\t%s%s%s", rep->status,
			 rep->error_type ? "Error Type: " : "",
			 rep->error_type ? rep->error_type : "", rep->error_type ? "\t" : "");
	double d = rep->duration_ms < 0 ? 0 : rep->duration_ms;
	long long billed = (long long)d + ((double)(long long)d < d); /* rounded up */
	return ocil_xasprintf("REPORT RequestId: %s\t%sDuration: %.2f ms\tBilled Duration: %lld "
			      "ms\tMemory Size: %ld MB\tMax Memory Used: %s MB\t%s",
			      id, init, d, billed, rep->memory_mb, used, status);
}

/* Go's strings for the signals a runtime dies of (os.ProcessState) */
static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGKILL:
		return "killed";
	case SIGSEGV:
		return "segmentation fault";
	case SIGABRT:
		return "aborted";
	case SIGTERM:
		return "terminated";
	case SIGBUS:
		return "bus error";
	case SIGILL:
		return "illegal instruction";
	case SIGFPE:
		return "floating point exception";
	case SIGINT:
		return "interrupt";
	case SIGPIPE:
		return "broken pipe";
	}
	return NULL;
}

char *ocil_run_exit_text(int st)
{
	if (WIFEXITED(st))
		return ocil_xasprintf("exit status %d", WEXITSTATUS(st));
	if (WIFSIGNALED(st)) {
		const char *name = signal_name(WTERMSIG(st));
		return name ? ocil_xasprintf("signal: %s", name)
			    : ocil_xasprintf("signal: %d", WTERMSIG(st));
	}
	return ocil_xstrdup("unknown status");
}

static char *error_body(const char *type, const char *msg)
{
	json_t *j = json_pack("{s:s, s:s}", "errorType", type, "errorMessage", msg);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

char *ocil_run_timeout_body(const char *id, long timeout_s)
{
	cleanup_free char *msg = ocil_xasprintf(
	    "RequestId: %s Error: Task timed out after %ld.00 seconds", id, timeout_s);
	return error_body("Sandbox.Timedout", msg);
}

char *ocil_run_exit_body(const char *id, int wait_status, int oom)
{
	cleanup_free char *text = ocil_run_exit_text(wait_status);
	cleanup_free char *msg =
	    ocil_xasprintf("RequestId: %s Error: Runtime exited with error: %s", id, text);
	return error_body(oom ? "Runtime.OutOfMemory" : "Runtime.ExitError", msg);
}
