#include "run/sandbox.h"

#include <errno.h>
#include <string.h>

#include "base/spawn.h"

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

int ocil_sandbox_run(const ocil_sandbox_opts *o, const char *const *argv, int *status,
		     char **errtext, ocil_error **err)
{
	*errtext = NULL;
	cleanup_strv ocil_strv a = {0};
	build_argv(o, argv, &a);
	ocil_spawn_capture text = {.max = ERRTEXT_MAX};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.argv = (const char *const *)a.v;
	so.stdin_fd = o->stdin_fd;
	so.stdout_fd = o->stdout_fd;
	so.err = &text;
	so.new_group = true;
	so.cancel = o->cancel;
	ocil_spawn_result res;
	int r = ocil_spawn_run(&so, &res, err);
	*status = res.status;
	if (r < 0 && res.exec_errno == ENOENT) {
		ocil_error_free(*err);
		*err = NULL;
		r = ocil_error_set(err, OCIL_E_IO,
				   "bubblewrap (bwrap) is not installed: install bubblewrap "
				   "(e.g. apt-get install bubblewrap)");
	}
	if (r < 0) {
		free(text.buf);
		return -1;
	}
	*errtext = text.buf ? text.buf : ocil_xstrdup("");
	return 0;
}
