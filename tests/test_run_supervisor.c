/* supervisor: what `ocilambda run` does with its sandbox process (start
 * in a group of its own, reap, time out, kill), on small sh children
 * instead of bubblewrap. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "run/supervisor.h"
#include "support_tar.h"
#include "test.h"

/* Bound on every wait below; a wait that reaches it fails the test. */
#define WAIT_S 20.0

static void nap(void)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

static int start_sh(ocil_supervisor *s, const char *script, int errfd)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	ocil_error *err = NULL;
	int r = ocil_supervisor_start(s, argv, errfd, -1, &err);
	if (r < 0) {
		fprintf(stderr, "start: %s\n", err->msg);
		ocil_error_free(err);
	}
	return r;
}

/* Reap until it has exited; false when it has not within WAIT_S. */
static bool wait_exited(ocil_supervisor *s)
{
	double until = ocil_supervisor_now() + WAIT_S;
	while (!ocil_supervisor_exited(s))
		if (ocil_supervisor_now() > until)
			return false;
		else
			nap();
	return true;
}

/* The pid a script wrote into tmp/<rel>, waiting for it; -1 when it did
 * not within WAIT_S. */
static pid_t pid_in(const char *rel)
{
	cleanup_free char *path = tpath(rel);
	double until = ocil_supervisor_now() + WAIT_S;
	while (ocil_supervisor_now() < until) {
		cleanup_free char *text = NULL;
		ocil_error *err = NULL;
		if (ocil_read_file(path, 64, &text, NULL, &err) == 0 && strchr(text, '\n') != NULL)
			return (pid_t)atol(text);
		ocil_error_free(err);
		nap();
	}
	return -1;
}

static bool gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static void exit_status(void)
{
	ocil_supervisor_init();
	ocil_supervisor s = {0};
	CHECK(start_sh(&s, "exit 3", -1) == 0);
	CHECK(s.pid > 0);
	CHECK(wait_exited(&s));
	CHECK(s.pid == 0);
	CHECK(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 3);
	/* none running: exited, not timed out, stop is harmless */
	CHECK(ocil_supervisor_exited(&s));
	CHECK(!ocil_supervisor_timed_out(&s));
	ocil_supervisor_stop(&s);
	CHECK(s.pid == 0);
}

/* A child that leaves an orphan: the orphan comes back to us (subreaper)
 * and is reaped with the child. */
static void orphans_reaped(void)
{
	ocil_supervisor_init();
	cleanup_free char *file = tpath("orphan");
	cleanup_free char *script =
	    ocil_xasprintf("(sleep 0.3 & echo $! >%s.tmp; mv %s.tmp %s); exit 0", file, file, file);
	ocil_supervisor s = {0};
	CHECK(start_sh(&s, script, -1) == 0);
	pid_t orphan = pid_in("orphan");
	CHECK(orphan > 0);
	CHECK(wait_exited(&s));
	CHECK(WIFEXITED(s.status) && WEXITSTATUS(s.status) == 0);
	CHECK(gone(orphan));
}

/* stop kills the whole group, the background job too, and reaps them. */
static void stop_kills_group(void)
{
	ocil_supervisor_init();
	cleanup_free char *file = tpath("bg");
	cleanup_free char *script =
	    ocil_xasprintf("sleep 60 & echo $! >%s.tmp; mv %s.tmp %s; wait", file, file, file);
	ocil_supervisor s = {0};
	CHECK(start_sh(&s, script, -1) == 0);
	pid_t bg = pid_in("bg");
	CHECK(bg > 0);
	CHECK(!ocil_supervisor_exited(&s));
	CHECK(getpgid(bg) == s.pid);
	ocil_supervisor_stop(&s);
	CHECK(s.pid == 0);
	CHECK(WIFSIGNALED(s.status) && WTERMSIG(s.status) == SIGKILL);
	CHECK(gone(bg));
}

/* The deadline: armed, it passes while the child runs; then stopped. */
static void timeout(void)
{
	ocil_supervisor_init();
	ocil_supervisor s = {0};
	CHECK(start_sh(&s, "exec sleep 60", -1) == 0);
	CHECK(!ocil_supervisor_timed_out(&s)); /* not armed */
	ocil_supervisor_arm(&s, 0.2);
	CHECK(s.deadline > 0);
	double until = ocil_supervisor_now() + WAIT_S;
	while (!ocil_supervisor_timed_out(&s) && ocil_supervisor_now() < until)
		nap();
	CHECK(ocil_supervisor_timed_out(&s));
	CHECK(!ocil_supervisor_exited(&s));
	ocil_supervisor_stop(&s);
	CHECK(WIFSIGNALED(s.status) && WTERMSIG(s.status) == SIGKILL);
	CHECK(s.deadline == 0);
	CHECK(!ocil_supervisor_timed_out(&s));
	/* disarmed: never times out */
	CHECK(start_sh(&s, "exec sleep 60", -1) == 0);
	ocil_supervisor_arm(&s, 0.01);
	ocil_supervisor_arm(&s, 0);
	nap();
	CHECK(!ocil_supervisor_timed_out(&s));
	ocil_supervisor_stop(&s);
}

/* stdout and stderr go to errfd; nothing else is inherited. */
static void output_and_fds(void)
{
	ocil_supervisor_init();
	int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	CHECK(leak >= 3);
	int p[2];
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	cleanup_free char *script =
	    ocil_xasprintf("echo out; echo err >&2; [ -e /proc/self/fd/%d ] && echo leaked; "
			   "read x && echo stdin",
			   leak);
	ocil_supervisor s = {0};
	int r = start_sh(&s, script, p[1]);
	close(p[1]);
	close(leak);
	cleanup_free char *text = NULL;
	ocil_error *err = NULL;
	if (r == 0 && ocil_read_fd(p[0], "child", 4096, &text, NULL, &err) < 0)
		ocil_error_free(err);
	close(p[0]);
	CHECK(r == 0);
	CHECK(wait_exited(&s));
	CHECK_STREQ(text, "out\nerr\n");
}

static void missing_program(void)
{
	ocil_supervisor s = {0};
	const char *argv[] = {"/nonexistent/ocil-no-such-program", NULL};
	ocil_error *err = NULL;
	CHECK_FAIL(ocil_supervisor_start(&s, argv, -1, -1, &err), &err, OCIL_E_IO,
		   "bubblewrap (bwrap) is not installed");
	CHECK(s.pid == 0);
	const char *argv2[] = {"/", NULL};
	CHECK_FAIL(ocil_supervisor_start(&s, argv2, -1, -1, &err), &err, OCIL_E_IO,
		   "running /: Permission denied");
}

TEST_MAIN(T(exit_status), T(orphans_reaped), T(stop_kills_group), T(timeout), T(output_and_fds),
	  T(missing_program))
