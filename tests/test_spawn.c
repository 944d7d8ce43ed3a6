/* spawn: the one helper that starts programs, on sh and cat: input in,
 * captures (kept, dropped past the cap, or killing), deadlines, process
 * groups, cancellation, exec failures, and nothing inherited. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/spawn.h"
#include "base/util.h"
#include "support_tar.h"
#include "test.h"

static int run_sh(const char *script, ocil_spawn_opts *so, ocil_spawn_result *res, ocil_error **err)
{
	const char *argv[] = {"sh", "-c", script, NULL};
	so->argv = argv;
	return ocil_spawn_run(so, res, err);
}

static void input_and_captures(void)
{
	ocil_spawn_capture out = {.max = 1024}, errc = {.max = 1024};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.input = "server.example\n";
	so.input_len = strlen(so.input);
	so.out = &out;
	so.err = &errc;
	ocil_spawn_result res;
	ocil_error *err = NULL;
	CHECK_OK(run_sh("read x; echo \"got $x\"; echo warn >&2; exit 4", &so, &res, &err), &err);
	cleanup_free char *o = out.buf, *e = errc.buf;
	CHECK(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 4);
	CHECK(!res.timed_out);
	CHECK_STREQ(o, "got server.example\n");
	CHECK_STREQ(e, "warn\n");
	CHECK(!out.overflow && !errc.overflow);
}

/* Past the cap: dropped (the child runs to its end), or the child killed. */
static void capture_caps(void)
{
	ocil_spawn_capture out = {.max = 10};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.out = &out;
	ocil_spawn_result res;
	ocil_error *err = NULL;
	CHECK_OK(run_sh("head -c 100000 /dev/zero | tr '\\0' x; exit 0", &so, &res, &err), &err);
	cleanup_free char *o = out.buf;
	CHECK(out.overflow && out.len == 10);
	CHECK_STREQ(o, "xxxxxxxxxx");
	CHECK(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0);
	ocil_spawn_capture flood = {.max = 10, .fail_over = true};
	so.out = &flood;
	CHECK_OK(run_sh("while :; do echo yyyyyyyyyyyyyyyy; done", &so, &res, &err), &err);
	free(flood.buf);
	CHECK(flood.overflow);
	/* killed (or dead of SIGPIPE first: its pipe is closed before the kill) */
	CHECK(WIFSIGNALED(res.status));
}

/* Whether pid is gone or a zombie ("State: Z" in /proc/PID/status). */
static bool dead(pid_t pid)
{
	cleanup_free char *path = ocil_xasprintf("/proc/%ld/status", (long)pid);
	for (int i = 0; i < 200; i++) {
		cleanup_fclose FILE *f = fopen(path, "re");
		if (f == NULL)
			return true;
		char line[256];
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "State:", 6) == 0 && strchr(line, 'Z') != NULL)
				return true;
		usleep(10000);
	}
	return false;
}

/* A deadline kills the child, and with new_group its whole group. */
static void deadline(void)
{
	cleanup_free char *file = tpath("bg");
	cleanup_free char *script =
	    ocil_xasprintf("sleep 60 & echo $! >%s; wait; echo never", file);
	ocil_spawn_capture out = {.max = 64};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.out = &out;
	so.new_group = true;
	so.timeout_ms = 300;
	ocil_spawn_result res;
	ocil_error *err = NULL;
	CHECK_OK(run_sh(script, &so, &res, &err), &err);
	CHECK(res.timed_out);
	CHECK(WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGKILL);
	cleanup_free char *o = out.buf;
	CHECK(o == NULL);
	cleanup_free char *text = NULL;
	CHECK_OK(ocil_read_file(file, 64, &text, NULL, &err), &err);
	pid_t bg = (pid_t)atol(text);
	CHECK(bg > 0);
	/* the background job went with the group: gone, or a zombie its new
	 * parent has not reaped yet, never a sleeper */
	CHECK(dead(bg));
}

static void cancelled(void)
{
	volatile int flag = 1;
	ocil_cancel cancel = {.flag = &flag};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	ocil_spawn_capture errc = {.max = 64};
	so.err = &errc;
	so.cancel = &cancel;
	ocil_spawn_result res;
	ocil_error *err = NULL;
	CHECK_FAIL(run_sh("exec sleep 60", &so, &res, &err), &err, OCIL_E_CANCELLED, "interrupted");
	CHECK(WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGKILL);
	free(errc.buf);
}

static void exec_failure(void)
{
	const char *argv[] = {"ocil-no-such-program", NULL};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.argv = argv;
	ocil_spawn_result res;
	ocil_error *err = NULL;
	CHECK_FAIL(ocil_spawn_run(&so, &res, &err), &err, OCIL_E_IO,
		   "running ocil-no-such-program: No such file or directory");
	CHECK(res.exec_errno == ENOENT);
	pid_t pid = 0;
	int e = 0;
	so.path = "/";
	CHECK_FAIL(ocil_spawn(&so, &pid, &e, &err), &err, OCIL_E_IO, "running /");
	CHECK(e == EACCES);
}

/* Streams from descriptors, merged; a descriptor we hold without
 * close-on-exec does not reach the child. */
static void descriptors(void)
{
	int leak = open("/dev/null", O_RDONLY);
	int in[2], out[2];
	CHECK(leak >= 3 && pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
	CHECK(write(in[1], "abc", 3) == 3);
	close(in[1]);
	cleanup_free char *script = ocil_xasprintf(
	    "cat; echo; echo err >&2; [ -e /proc/self/fd/%d ] && echo leaked; exit 0", leak);
	const char *argv[] = {"sh", "-c", script, NULL};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.argv = argv;
	so.stdin_fd = in[0];
	so.stderr_fd = out[1];
	so.merge = true;
	pid_t pid = 0;
	ocil_error *err = NULL;
	int r = ocil_spawn(&so, &pid, NULL, &err);
	close(in[0]);
	close(out[1]);
	close(leak);
	cleanup_free char *text = NULL;
	if (r == 0 && ocil_read_fd(out[0], "child", 4096, &text, NULL, &err) < 0)
		r = -1;
	close(out[0]);
	CHECK_OK(r, &err);
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_STREQ(text, "abc\nerr\n");
}

TEST_MAIN(T(input_and_captures), T(capture_caps), T(deadline), T(cancelled), T(exec_failure),
	  T(descriptors))
