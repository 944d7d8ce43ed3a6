/* supervisor: start, watch and stop a sandbox (see supervisor.h). */
#include "run/supervisor.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/spawn.h"
#include "run/sandbox.h"

void ocil_supervisor_init(void)
{
	prctl(PR_SET_CHILD_SUBREAPER, 1);
}

double ocil_supervisor_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* bwrap's absence in words a user can act on. */
static int not_installed(int exec_errno, ocil_error **err)
{
	if (exec_errno != ENOENT)
		return -1;
	ocil_error_free(*err);
	*err = NULL;
	return ocil_error_set(err, OCIL_E_IO,
			      "bubblewrap (bwrap) is not installed: install bubblewrap "
			      "(e.g. apt-get install bubblewrap)");
}

int ocil_supervisor_start(ocil_supervisor *s, const char *const *argv, int errfd, int cgfd,
			  ocil_error **err)
{
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.argv = argv;
	so.stderr_fd = errfd >= 0 ? errfd : 2;
	so.merge = true;
	so.new_group = true;
	so.cgroup_fd = cgfd;
	int exec_errno = 0;
	if (ocil_spawn(&so, &s->pid, &exec_errno, err) < 0)
		return not_installed(exec_errno, err);
	return 0;
}

void ocil_supervisor_stop(ocil_supervisor *s)
{
	if (s->pid > 0)
		kill(-s->pid, SIGKILL);
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			break;
		if (p == s->pid)
			s->status = st;
	}
	s->pid = 0;
	s->deadline = 0;
}

bool ocil_supervisor_exited(ocil_supervisor *s)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			return s->pid == 0;
		if (p == s->pid) {
			s->status = st;
			s->pid = 0;
			/* the rest of the sandbox goes with it */
			ocil_supervisor_stop(s);
			return true;
		}
	}
}

void ocil_supervisor_arm(ocil_supervisor *s, double seconds)
{
	s->deadline = seconds > 0 ? ocil_supervisor_now() + seconds : 0;
}

bool ocil_supervisor_timed_out(const ocil_supervisor *s)
{
	return s->pid > 0 && s->deadline > 0 && ocil_supervisor_now() > s->deadline;
}

int ocil_supervisor_check_bwrap(ocil_error **err)
{
	cleanup_strv ocil_strv a = {0};
	ocil_sandbox_args(&a, "/", true);
	ocil_strv_push(&a, ocil_xstrdup("--"));
	ocil_strv_push(&a, ocil_xstrdup("true"));
	ocil_spawn_capture text = {.max = 4096};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.argv = (const char *const *)a.v;
	so.err = &text;
	so.merge = true;
	so.new_group = true;
	ocil_spawn_result res;
	int r = ocil_spawn_run(&so, &res, err);
	cleanup_free char *msg = text.buf;
	if (r < 0)
		return not_installed(res.exec_errno, err);
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0)
		return 0;
	return ocil_sandbox_failed(msg, err);
}
