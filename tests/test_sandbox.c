#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "run/sandbox.h"
#include "support_tar.h"
#include "test.h"

static void failed_messages(void)
{
	ocil_error *err = NULL;
	CHECK(ocil_sandbox_failed("bwrap: No permissions to creating new namespace, likely "
				  "because the kernel does not allow non-privileged user "
				  "namespaces\n",
				  &err) < 0);
	CHECK(err->code == OCIL_E_IO && strstr(err->msg, "user namespace") != NULL &&
	      strstr(err->msg, "unprivileged_userns_clone") != NULL);
	ocil_error_free(err);
	err = NULL;
	CHECK(ocil_sandbox_failed("bwrap: Can't mount proc on /newroot/proc\nmore\n", &err) < 0);
	CHECK_STREQ(err->msg, "bubblewrap cannot create the sandbox: bwrap: Can't mount proc on "
			      "/newroot/proc");
	ocil_error_free(err);
}

static void args(void)
{
	ocil_strv a = {0};
	ocil_sandbox_args(&a, "/some/root", true);
	cleanup_free char *joined = ocil_xstrdup("");
	for (size_t i = 0; i < a.n; i++) {
		char *j = ocil_xasprintf("%s%s%s", joined, i ? " " : "", a.v[i]);
		free(joined);
		joined = j;
	}
	ocil_strv_clear(&a);
	CHECK_STREQ(joined, "bwrap --unshare-all --share-net --unshare-user --uid 993 --gid 990 "
			    "--die-with-parent --new-session --ro-bind /some/root / --proc /proc "
			    "--dev /dev --perms 1777 --tmpfs /tmp");
}

/* The host's / as the tree: stdin in, stdout out, stderr kept, the exit
 * status, the uid, the environment given and nothing else, a read-only
 * root, a writable bind. */
static void run(void)
{
	CHECK(putn("in", "hello", 5, 0644) == 0);
	CHECK(putn("rw/.keep", "", 0, 0644) == 0);
	cleanup_free char *inp = tpath("in"), *outp = tpath("out"), *rw = tpath("rw");
	cleanup_close int in = open(inp, O_RDONLY | O_CLOEXEC);
	cleanup_close int out = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(in >= 0 && out >= 0);
	const char *rw_binds[] = {rw, "/tmp/rw", NULL};
	const char *env[] = {"PATH=/usr/bin:/bin", "ONLY=this", NULL};
	ocil_sandbox_opts o = {.root = "/",
			       .rw_binds = rw_binds,
			       .env = env,
			       .cwd = "/tmp",
			       .stdin_fd = in,
			       .stdout_fd = out};
	const char *argv[] = {"/bin/sh", "-c",
			      "cat; id -u; env | sort | tr '\\n' ' '; pwd; "
			      "touch /usr/nope 2>/dev/null || echo ro; echo w > /tmp/rw/x; "
			      "echo oops >&2; exit 3",
			      NULL};
	int status = 0;
	cleanup_free char *errtext = NULL;
	ocil_error *err = NULL;
	CHECK_OK(ocil_sandbox_run(&o, argv, &status, &errtext, &err), &err);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CHECK_STREQ(errtext, "oops\n");
	cleanup_free char *got = NULL;
	size_t len = 0;
	CHECK_OK(ocil_read_file(outp, 4096, &got, &len, &err), &err);
	CHECK_STREQ(got, "hello993\nONLY=this PATH=/usr/bin:/bin PWD=/tmp /tmp\nro\n");
	cleanup_free char *x = tpath("rw/x"), *w = NULL;
	CHECK_OK(ocil_read_file(x, 16, &w, &len, &err), &err);
	CHECK_STREQ(w, "w\n");
}

static void no_program(void)
{
	const char *argv[] = {"/no/such/program", NULL};
	ocil_sandbox_opts o = {.root = "/", .stdin_fd = -1, .stdout_fd = -1};
	int status = 0;
	cleanup_free char *errtext = NULL;
	ocil_error *err = NULL;
	CHECK_OK(ocil_sandbox_run(&o, argv, &status, &errtext, &err), &err);
	/* bwrap's own complaint, its non-zero exit */
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	CHECK(strstr(errtext, "bwrap: execvp /no/such/program") != NULL);
}

TEST_MAIN(T(failed_messages), T(args), T(run), T(no_program))
