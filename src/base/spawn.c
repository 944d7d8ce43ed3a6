/* spawn: start, feed, read and wait for a program (see spawn.h). */
#include "base/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pipes of one child: the parent's ends and the child's. */
typedef struct {
	int in[2], out[2], err[2], report[2];
} fds;

static void fds_close(fds *f)
{
	for (int i = 0; i < 2; i++) {
		close_fd(&f->in[i]);
		close_fd(&f->out[i]);
		close_fd(&f->err[i]);
		close_fd(&f->report[i]);
	}
}

/* In the child: its streams, nothing else inherited, exec; on failure the
 * errno goes to the parent through report. */
static void child(const ocil_spawn_opts *o, const fds *f)
{
	if (o->new_group)
		setpgid(0, 0);
	/* into the cgroup (if that fails, none) */
	if (o->cgroup_fd >= 0) {
		ssize_t w = write(o->cgroup_fd, "0", 1);
		(void)w;
	}
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	int null = open("/dev/null", O_RDWR);
	int in = f->in[1] >= 0 ? f->in[1] : o->stdin_fd >= 0 ? o->stdin_fd : null;
	int out = f->out[1] >= 0 ? f->out[1] : o->stdout_fd >= 0 ? o->stdout_fd : null;
	int err = f->err[1] >= 0 ? f->err[1] : o->stderr_fd >= 0 ? o->stderr_fd : null;
	dup2(in, 0);
	dup2(err, 2);
	dup2(o->merge ? 2 : out, 1);
	/* a program passes on what it inherits (bwrap into the sandbox):
	 * whatever we hold without close-on-exec (a shell's 3<secret) would
	 * reach it */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3; fd < 65536; fd++)
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	execvp(o->path ? o->path : o->argv[0], (char *const *)o->argv);
	int e = errno;
	ssize_t w = write(f->report[1], &e, sizeof(e));
	(void)w;
	_exit(127);
}

/* Fork and exec with f's pipes (made by the caller); 0 with *pid. */
static int start(const ocil_spawn_opts *o, fds *f, pid_t *pid, int *exec_errno, ocil_error **err)
{
	if (exec_errno != NULL)
		*exec_errno = 0;
	if (pipe2(f->report, O_CLOEXEC) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "pipe");
	pid_t p = fork();
	if (p == 0)
		child(o, f);
	int fe = errno;
	close_fd(&f->in[1]);
	close_fd(&f->out[1]);
	close_fd(&f->err[1]);
	close_fd(&f->report[1]);
	if (p < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, fe, "fork");
	int e = 0;
	ssize_t n;
	do
		n = read(f->report[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close_fd(&f->report[0]);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		if (exec_errno != NULL)
			*exec_errno = e;
		return ocil_error_set_errno(err, OCIL_E_IO, e, "running %s",
					    o->path ? o->path : o->argv[0]);
	}
	*pid = p;
	return 0;
}

int ocil_spawn(const ocil_spawn_opts *o, pid_t *pid, int *exec_errno, ocil_error **err)
{
	fds f = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
	int r = start(o, &f, pid, exec_errno, err);
	fds_close(&f);
	return r;
}

/* One read of a captured stream: false once it is closed (EOF, an error,
 * or a fail_over capture full: then *killed). */
static bool take(int *fd, ocil_spawn_capture *c, bool *killed)
{
	char tmp[4096];
	ssize_t n = read(*fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		close_fd(fd);
		return false;
	}
	size_t room = c->max - c->len;
	size_t keep = (size_t)n < room ? (size_t)n : room;
	if (keep < (size_t)n)
		c->overflow = true;
	if (keep > 0) {
		c->buf = ocil_xrealloc(c->buf, c->len + keep + 1);
		memcpy(c->buf + c->len, tmp, keep);
		c->len += keep;
		c->buf[c->len] = '\0';
	}
	if (c->overflow && c->fail_over) {
		close_fd(fd);
		*killed = true;
		return false;
	}
	return true;
}

typedef struct {
	long long deadline; /* ms; 0: none */
	bool killed;	    /* a reason to kill it came */
	bool timed_out, cancelled;
} watch;

/* The poll timeout until the next thing to look at, or -1 (none). */
static int next_ms(const ocil_spawn_opts *o, const watch *w)
{
	long long ms = -1;
	if (w->deadline > 0) {
		ms = w->deadline - now_ms();
		if (ms < 0)
			ms = 0;
	}
	if (o->cancel != NULL && (ms < 0 || ms > 100))
		ms = 100;
	return (int)ms;
}

/* Whether to stop waiting: the deadline passed, or cancelled. */
static bool expired(const ocil_spawn_opts *o, watch *w)
{
	ocil_error *e = NULL;
	if (ocil_cancel_check(o->cancel, &e) < 0) {
		ocil_error_free(e);
		w->cancelled = w->killed = true;
	} else if (w->deadline > 0 && now_ms() >= w->deadline) {
		w->timed_out = w->killed = true;
	}
	return w->killed;
}

/* Read the captured streams until both close or a reason to kill comes. */
static void drain(const ocil_spawn_opts *o, fds *f, watch *w)
{
	while ((f->out[0] >= 0 || f->err[0] >= 0) && !expired(o, w)) {
		struct pollfd p[2] = {{.fd = f->out[0], .events = POLLIN},
				      {.fd = f->err[0], .events = POLLIN}};
		int n = poll(p, 2, next_ms(o, w));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (f->out[0] >= 0 && p[0].revents != 0)
			take(&f->out[0], o->out, &w->killed);
		if (f->err[0] >= 0 && p[1].revents != 0)
			take(&f->err[0], o->err, &w->killed);
		if (w->killed)
			break;
	}
}

/* Wait for it to exit, within what is left of the deadline; killed (with
 * its group) when a reason came. */
static void reap(const ocil_spawn_opts *o, pid_t pid, watch *w, int *status)
{
	while (!w->killed) {
		pid_t r = waitpid(pid, status, w->deadline > 0 || o->cancel != NULL ? WNOHANG : 0);
		/* ECHILD: the caller ignores SIGCHLD and the child is gone:
		 * nothing left to wait for or to kill */
		if (r == pid || (r < 0 && errno != EINTR))
			return;
		if (r == 0 && !expired(o, w)) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	kill(o->new_group ? -pid : pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

int ocil_spawn_run(const ocil_spawn_opts *o, ocil_spawn_result *res, ocil_error **err)
{
	memset(res, 0, sizeof(*res));
	fds f = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
	/* a socket for stdin, so that writing to a child that already exited
	 * gives EPIPE without SIGPIPE (MSG_NOSIGNAL): the library must not
	 * depend on the caller ignoring SIGPIPE */
	if ((o->input != NULL && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f.in) < 0) ||
	    (o->out != NULL && pipe2(f.out, O_CLOEXEC) < 0) ||
	    (o->err != NULL && pipe2(f.err, O_CLOEXEC) < 0)) {
		int e = errno;
		fds_close(&f);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "%s", o->argv[0]);
	}
	pid_t pid = -1;
	if (start(o, &f, &pid, &res->exec_errno, err) < 0) {
		fds_close(&f);
		return -1;
	}
	if (o->input != NULL)
		(void)!send(f.in[0], o->input, o->input_len, MSG_NOSIGNAL);
	close_fd(&f.in[0]);
	watch w = {.deadline = o->timeout_ms > 0 ? now_ms() + o->timeout_ms : 0};
	drain(o, &f, &w);
	fds_close(&f);
	reap(o, pid, &w, &res->status);
	res->timed_out = w.timed_out;
	if (w.cancelled)
		return ocil_error_set(err, OCIL_E_CANCELLED, "interrupted");
	return 0;
}
