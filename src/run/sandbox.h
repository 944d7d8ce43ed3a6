/* sandbox: a program run on an image's unpacked tree under bubblewrap, the
 * way Lambda runs the function: the tree read-only at /, fresh /proc, /dev
 * and /tmp, uid 993 / gid 990 (Lambda's sbx_user1051) in a user namespace,
 * every namespace unshared (the network too, unless asked). `ocilambda
 * run` starts the function so; assemble compiles bytecode so, with the
 * image's own python. */
#ifndef OCIL_SANDBOX_H
#define OCIL_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/util.h"

/* Lambda's sandbox user (sbx_user1051) */
#define OCIL_SANDBOX_UID "993"
#define OCIL_SANDBOX_GID "990"

/* bwrap and its options for a sandbox on root: the namespaces, the user,
 * root read-only at /, /proc, /dev, /tmp. share_net keeps the host's
 * network namespace. The caller adds binds, --setenv, --chdir, "--" and
 * the program. */
void ocil_sandbox_args(ocil_strv *a, const char *root, bool share_net);

/* What bwrap printed when it could not make the sandbox, as an error
 * (OCIL_E_IO): unprivileged user namespaces disabled get the sysctls to
 * look at. */
int ocil_sandbox_failed(const char *bwrap_stderr, ocil_error **err);

typedef struct {
	const char *root;
	/* host path, image path pairs bound over the tree: read-only, and
	 * writable (NULL-terminated lists, may be NULL) */
	const char *const *ro_binds;
	const char *const *rw_binds;
	const char *const *env; /* KEY=VALUE, the whole environment */
	const char *cwd;	/* NULL: / */
	int stdin_fd;		/* -1: /dev/null */
	int stdout_fd;		/* -1: /dev/null */
	const ocil_cancel *cancel;
} ocil_sandbox_opts;

/* Run argv (argv[0] an image path) in the sandbox and wait for it.
 * *status is its wait status; *errtext (caller frees) the first 64 KiB of
 * its stderr, bwrap's own complaints included. -1 when bwrap is not
 * installed (OCIL_E_IO naming the package), cannot be started, or on
 * cancellation (the sandbox is killed). */
int ocil_sandbox_run(const ocil_sandbox_opts *o, const char *const *argv, int *status,
		     char **errtext, ocil_error **err);

#endif
