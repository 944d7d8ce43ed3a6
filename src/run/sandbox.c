#include "run/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Most of the program's stderr kept for the caller. */
#define ERRTEXT_MAX ((size_t)64 << 10)

void ocil_sandbox_args(ocil_strv *a, const char *root, bool share_net)
{
	static const char *const fixed[] = {"bwrap",	      "--unshare-all",	   "--unshare-user",
					    "--uid",	      OCIL_SANDBOX_UID,	   "--gid",
					    OCIL_SANDBOX_GID, "--die-with-parent", "--new-session"};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		ocil_strv_push(a, ocil_xstrdup(fixed[i]));
		if (i == 1 && share_net)
			ocil_strv_push(a, ocil_xstrdup("--share-net"));
	}
	static const char *const mounts[] = {"--proc",	"/proc", "--dev",   "/dev",
					     "--perms", "1777",	 "--tmpfs", "/tmp"};
	ocil_strv_push(a, ocil_xstrdup("--ro-bind"));
	ocil_strv_push(a, ocil_xstrdup(root));
	ocil_strv_push(a, ocil_xstrdup("/"));
	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++)
		ocil_strv_push(a, ocil_xstrdup(mounts[i]));
}

int ocil_sandbox_failed(const char *bwrap_stderr, ocil_error **err)
{
	const char *m = bwrap_stderr ? bwrap_stderr : "";
	cleanup_free char *line = ocil_xstrndup(m, strcspn(m, "\n"));
	if (strstr(m, "namespace") != NULL || strstr(m, "uid map") != NULL ||
	    strstr(m, "setting up uid") != NULL || strstr(m, "Operation not permitted") != NULL)
		return ocil_error_set(
		    err, OCIL_E_IO,
		    "bubblewrap cannot create the sandbox's user namespace (%s): "
		    "enable unprivileged user namespaces (sysctl "
		    "user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1, "
		    "or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)",
		    line[0] ? line : "no message");
	return ocil_error_set(err, OCIL_E_IO, "bubblewrap cannot create the sandbox: %s",
			      line[0] ? line : "no message");
}

static void push_pairs(ocil_strv *a, const char *opt, const char *const *pairs)
{
	for (size_t i = 0; pairs != NULL && pairs[i] != NULL && pairs[i + 1] != NULL; i += 2) {
		ocil_strv_push(a, ocil_xstrdup(opt));
		ocil_strv_push(a, ocil_xstrdup(pairs[i]));
		ocil_strv_push(a, ocil_xstrdup(pairs[i + 1]));
	}
}

static void build_argv(const ocil_sandbox_opts *o, const char *const *argv, ocil_strv *a)
{
	ocil_sandbox_args(a, o->root, false);
	push_pairs(a, "--ro-bind", o->ro_binds);
	push_pairs(a, "--bind", o->rw_binds);
	ocil_strv_push(a, ocil_xstrdup("--clearenv"));
	for (size_t i = 0; o->env != NULL && o->env[i] != NULL; i++) {
		const char *eq = strchr(o->env[i], '=');
		if (eq == NULL)
			continue;
		ocil_strv_push(a, ocil_xstrdup("--setenv"));
		ocil_strv_push(a, ocil_xstrndup(o->env[i], (size_t)(eq - o->env[i])));
		ocil_strv_push(a, ocil_xstrdup(eq + 1));
	}
	ocil_strv_push(a, ocil_xstrdup("--chdir"));
	ocil_strv_push(a, ocil_xstrdup(o->cwd ? o->cwd : "/"));
	ocil_strv_push(a, ocil_xstrdup("--"));
	for (size_t i = 0; argv[i] != NULL; i++)
		ocil_strv_push(a, ocil_xstrdup(argv[i]));
}

/* In the child: stdin, stdout, stderr, nothing else inherited, exec. */
static void child(const ocil_sandbox_opts *o, const ocil_strv *a, int errfd, int report)
{
	setpgid(0, 0);
	signal(SIGPIPE, SIG_DFL);
	int null = open("/dev/null", O_RDWR);
	dup2(o->stdin_fd >= 0 ? o->stdin_fd : null, 0);
	dup2(o->stdout_fd >= 0 ? o->stdout_fd : null, 1);
	dup2(errfd, 2);
	/* bwrap passes every open descriptor on into the sandbox */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 3; fd < 65536; fd++)
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	execvp(a->v[0], a->v);
	int e = errno;
	ssize_t w = write(report, &e, sizeof(e));
	(void)w;
	_exit(127);
}

/* Read the child's stderr until it closes, keeping ERRTEXT_MAX bytes;
 * -1 on cancellation. */
static int drain(int fd, const ocil_cancel *cancel, char **out, ocil_error **err)
{
	size_t len = 0;
	char *buf = ocil_xmalloc(ERRTEXT_MAX + 1);
	char scratch[4096];
	for (;;) {
		if (ocil_cancel_check(cancel, err) < 0) {
			free(buf);
			return -1;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, 100);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			continue;
		ssize_t n = read(fd, scratch, sizeof(scratch));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = ERRTEXT_MAX - len < (size_t)n ? ERRTEXT_MAX - len : (size_t)n;
		memcpy(buf + len, scratch, take);
		len += take;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

int ocil_sandbox_run(const ocil_sandbox_opts *o, const char *const *argv, int *status,
		     char **errtext, ocil_error **err)
{
	*errtext = NULL;
	cleanup_strv ocil_strv a = {0};
	build_argv(o, argv, &a);
	int errp[2], rep[2];
	if (pipe2(errp, O_CLOEXEC) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "pipe");
	if (pipe2(rep, O_CLOEXEC) < 0) {
		int e = errno;
		close(errp[0]);
		close(errp[1]);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "pipe");
	}
	pid_t pid = fork();
	if (pid == 0)
		child(o, &a, errp[1], rep[1]);
	int fe = errno;
	close(errp[1]);
	close(rep[1]);
	if (pid < 0) {
		close(errp[0]);
		close(rep[0]);
		return ocil_error_set_errno(err, OCIL_E_IO, fe, "fork");
	}
	int e = 0;
	ssize_t n;
	do
		n = read(rep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(rep[0]);
	if (n == (ssize_t)sizeof(e)) {
		close(errp[0]);
		waitpid(pid, NULL, 0);
		if (e == ENOENT)
			return ocil_error_set(
			    err, OCIL_E_IO,
			    "bubblewrap (bwrap) is not installed: install bubblewrap "
			    "(e.g. apt-get install bubblewrap)");
		return ocil_error_set_errno(err, OCIL_E_IO, e, "running bwrap");
	}
	int r = drain(errp[0], o->cancel, errtext, err);
	close(errp[0]);
	if (r < 0)
		kill(-pid, SIGKILL);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	return r;
}
