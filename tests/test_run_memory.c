/* run_memory: the sandbox's memory group where the host lets us make one,
 * else the peak RSS of the process tree; either way a child that touched
 * 32 MiB is measured at 32 MB or more. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "run/run_memory.h"
#include "run/supervisor.h"
#include "test.h"

#define WAIT_S 20.0

static void open_or_why(void)
{
	ocil_run_memory *m = NULL;
	char *why = NULL;
	ocil_error *err = NULL;
	CHECK_OK(ocil_run_memory_open(128, &m, &why, &err), &err);
	/* a group, or the reason there is none: never both, never neither */
	CHECK((m == NULL) != (why == NULL));
	const char *kind = ocil_run_memory_kind(m);
	if (m != NULL) {
		CHECK(strcmp(kind, "cgroup v2") == 0 || strcmp(kind, "cgroup v1") == 0);
		CHECK(ocil_run_memory_procs_fd(m) >= 0);
	} else {
		CHECK_STREQ(kind, "VmHWM");
		CHECK(why[0] != '\0');
		CHECK(ocil_run_memory_procs_fd(m) == -1);
	}
	CHECK(!ocil_run_memory_oom(m));
	free(why);
	ocil_run_memory_free(m);
	ocil_run_memory_free(NULL);
}

/* A child that holds 32 MiB of a shell variable, in the group if there
 * is one: its peak is seen while it sleeps, by the group and by the
 * process tree's VmHWM (read from /proc/PID/status, "VmHWM:\t…"). */
static void peak(void)
{
	ocil_supervisor_init();
	ocil_run_memory *m = NULL;
	char *why = NULL;
	ocil_error *err = NULL;
	CHECK_OK(ocil_run_memory_open(1024, &m, &why, &err), &err);
	free(why);
	const char *argv[] = {"sh", "-c",
			      "x=$(head -c 33554432 /dev/zero | tr '\\0' a); echo ready; "
			      "sleep 60",
			      NULL};
	int p[2];
	CHECK(pipe(p) == 0);
	ocil_supervisor s = {0};
	int r = ocil_supervisor_start(&s, argv, p[1], ocil_run_memory_procs_fd(m), &err);
	close(p[1]);
	char buf[16] = "";
	ssize_t n = r == 0 ? read(p[0], buf, sizeof(buf) - 1) : -1; /* "ready" once it holds it */
	close(p[0]);
	long mb = r == 0 ? ocil_run_memory_peak_mb(m, s.pid) : -1;
	/* and without a group: the process tree's VmHWM */
	long tree_mb = r == 0 ? ocil_run_memory_peak_mb(NULL, s.pid) : -1;
	ocil_supervisor_stop(&s);
	ocil_run_memory_free(m);
	if (r < 0)
		fprintf(stderr, "start: %s\n", err->msg);
	ocil_error_free(err);
	CHECK(r == 0);
	CHECK(n > 0 && strncmp(buf, "ready", 5) == 0);
	if (mb < 32 || tree_mb < 32)
		fprintf(stderr, "peak %ld MB, tree %ld MB\n", mb, tree_mb);
	CHECK(mb >= 32);
	CHECK(tree_mb >= 32);
}

/* No group: no process (or one that is gone) is unknown; our own peak is
 * the process tree's. */
static void without_group(void)
{
	CHECK(ocil_run_memory_peak_mb(NULL, 0) == -1);
	CHECK(ocil_run_memory_peak_mb(NULL, 999999999) == -1);
	CHECK(ocil_run_memory_peak_mb(NULL, getpid()) > 0);
	CHECK(!ocil_run_memory_oom(NULL));
}

TEST_MAIN(T(open_or_why), T(peak), T(without_group))
