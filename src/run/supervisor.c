/* supervisor: start, watch and stop a sandbox (see supervisor.h). */
#include "run/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

int ocil_supervisor_start(ocil_supervisor *s, const char *const *argv, int errfd, int cgfd,
			  ocil_error **err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "fork");
	}
	if (pid == 0) {
		setpgid(0, 0);
		/* into the memory cgroup (if that fails, unlimited) */
		if (cgfd >= 0) {
			ssize_t w = write(cgfd, "0", 1);
			(void)w;
		}
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, 0);
		dup2(errfd >= 0 ? errfd : 2, 2);
		dup2(2, 1);
		/* bwrap passes on every open descriptor: whatever we inherited
		 * without close-on-exec (a shell's 3<secret) would reach the
		 * function, a door to files outside its read-only tree */
		if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			for (int fd = 3; fd < 65536; fd++)
				(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		execvp(argv[0], (char *const *)argv);
		int e = errno;
		ssize_t w = write(p[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(p[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(p[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		if (e == ENOENT)
			return ocil_error_set(
			    err, OCIL_E_IO,
			    "bubblewrap (bwrap) is not installed: install bubblewrap "
			    "(e.g. apt-get install bubblewrap)");
		return ocil_error_set_errno(err, OCIL_E_IO, e, "running bwrap");
	}
	s->pid = pid;
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
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "pipe");
	ocil_supervisor s = {0};
	int r = ocil_supervisor_start(&s, (const char *const *)a.v, p[1], -1, err);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return -1;
	}
	char *msg = NULL;
	size_t len = 0;
	ocil_error *rerr = NULL;
	if (ocil_read_fd(p[0], "bwrap", 4096, &msg, &len, &rerr) < 0)
		ocil_error_free(rerr);
	close(p[0]);
	int st = 0;
	while (waitpid(s.pid, &st, 0) < 0 && errno == EINTR)
		;
	cleanup_free char *text = msg;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return ocil_sandbox_failed(text, err);
}
