/* run_report: the emulator's START / END / REPORT lines and Lambda's error
 * bodies, byte for byte (the texts the Runtime Interface Emulator and
 * Lambda print for the same events). */
#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "base/util.h"
#include "run/run_report.h"
#include "test.h"

/* wait statuses as waitpid gives them */
#define EXITED(n) ((n) << 8)
#define SIGNALED(sig) (sig)

static void lines(void)
{
	cleanup_free char *start = ocil_run_start_line("id-1", "$LATEST");
	CHECK_STREQ(start, "START RequestId: id-1 Version: $LATEST");
	cleanup_free char *end = ocil_run_end_line("id-1");
	CHECK_STREQ(end, "END RequestId: id-1");
}

static void report_line(void)
{
	/* a first invocation: its init, the billed duration rounded up */
	ocil_run_report first = {
	    .init_ms = 123.456, .duration_ms = 12.3, .memory_mb = 3008, .max_used_mb = 41};
	cleanup_free char *a = ocil_run_report_line("id-1", &first);
	CHECK_STREQ(a, "REPORT RequestId: id-1\tInit Duration: 123.46 ms\tDuration: 12.30 ms\t"
		       "Billed Duration: 13 ms\tMemory Size: 3008 MB\tMax Memory Used: 41 MB\t");
	/* a later one, a whole number of ms, the peak unknown */
	ocil_run_report later = {
	    .init_ms = -1, .duration_ms = 12.0, .memory_mb = 128, .max_used_mb = -1};
	cleanup_free char *b = ocil_run_report_line("id-2", &later);
	CHECK_STREQ(b, "REPORT RequestId: id-2\tDuration: 12.00 ms\tBilled Duration: 12 ms\t"
		       "Memory Size: 128 MB\tMax Memory Used: ? MB\t");
	/* a failure Lambda reports itself; a negative duration counts as 0 */
	ocil_run_report failed = {.init_ms = -1,
				  .duration_ms = -5,
				  .memory_mb = 128,
				  .max_used_mb = 7,
				  .status = "error",
				  .error_type = "Runtime.ExitError"};
	cleanup_free char *c = ocil_run_report_line("id-3", &failed);
	CHECK_STREQ(c, "REPORT RequestId: id-3\tDuration: 0.00 ms\tBilled Duration: 0 ms\t"
		       "Memory Size: 128 MB\tMax Memory Used: 7 MB\tStatus: error\t"
		       "Error Type: Runtime.ExitError\t");
	ocil_run_report timeout = {.init_ms = -1,
				   .duration_ms = 3000,
				   .memory_mb = 128,
				   .max_used_mb = 7,
				   .status = "timeout"};
	cleanup_free char *d = ocil_run_report_line("id-4", &timeout);
	CHECK(ocil_str_has_suffix(d, "Max Memory Used: 7 MB\tStatus: timeout\t"));
}

static void exit_texts(void)
{
	static const struct {
		int status;
		const char *text;
	} cases[] = {
	    {EXITED(0), "exit status 0"},
	    {EXITED(3), "exit status 3"},
	    {SIGNALED(SIGKILL), "signal: killed"},
	    {SIGNALED(SIGSEGV), "signal: segmentation fault"},
	    {SIGNALED(SIGABRT), "signal: aborted"},
	    {SIGNALED(SIGUSR1), "signal: 10"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cleanup_free char *t = ocil_run_exit_text(cases[i].status);
		CHECK_STREQ(t, cases[i].text);
	}
}

/* errorType and errorMessage of a body. */
static bool body_is(const char *body, const char *type, const char *msg)
{
	json_t *j = json_loads(body, 0, NULL);
	bool ok = json_is_object(j) && json_object_size(j) == 2 &&
		  strcmp(json_string_value(json_object_get(j, "errorType")), type) == 0 &&
		  strcmp(json_string_value(json_object_get(j, "errorMessage")), msg) == 0;
	if (!ok)
		fprintf(stderr, "body: %s\n", body);
	json_decref(j);
	return ok;
}

static void bodies(void)
{
	cleanup_free char *t = ocil_run_timeout_body("id-1", 3);
	CHECK(body_is(t, "Sandbox.Timedout",
		      "RequestId: id-1 Error: Task timed out after 3.00 seconds"));
	cleanup_free char *e = ocil_run_exit_body("id-2", EXITED(2), 0);
	CHECK(body_is(e, "Runtime.ExitError",
		      "RequestId: id-2 Error: Runtime exited with error: exit status 2"));
	cleanup_free char *m = ocil_run_exit_body("id-3", SIGNALED(SIGKILL), 1);
	CHECK(body_is(m, "Runtime.OutOfMemory",
		      "RequestId: id-3 Error: Runtime exited with error: signal: killed"));
	/* an id with quotes stays JSON */
	cleanup_free char *q = ocil_run_timeout_body("a\"b", 1);
	CHECK(body_is(q, "Sandbox.Timedout",
		      "RequestId: a\"b Error: Task timed out after 1.00 seconds"));
}

TEST_MAIN(T(lines), T(report_line), T(exit_texts), T(bodies))
