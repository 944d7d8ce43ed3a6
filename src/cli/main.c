/* ocilambda: the only place that prints errors and picks exit codes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"

static volatile int cancel_flag;

static void on_signal(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

/* One command a line. */
/* clang-format off */
static const ocil_command *const commands[] = {
    &ocil_cmd_assemble,
    &ocil_cmd_check,
    &ocil_cmd_help,
    &ocil_cmd_inspect,
    &ocil_cmd_pull,
    &ocil_cmd_push,
    &ocil_cmd_run,
    &ocil_cmd_version,
};
/* clang-format on */

/* stdout is where results go: a failed write (a full disk, a closed pipe)
 * is an I/O error, not a success. */
static int flush_stdout(ocil_error **err)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "writing to standard output");
	return 0;
}

int main(int argc, char **argv)
{
	ocil_cmd_ctx ctx = {.cancel_flag = &cancel_flag,
			    .commands = commands,
			    .n_commands = sizeof(commands) / sizeof(commands[0])};
	if (argc < 2) {
		ocil_cmd_usage(&ctx, stderr);
		return OCIL_E_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
		name = "help";
	else if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
		name = "version";
	ocil_error *err = NULL;
	const ocil_command *cmd = ocil_cmd_find(&ctx, name);
	if (cmd == NULL) {
		if (name[0] == '-')
			ocil_error_set(&err, OCIL_E_USAGE,
				       "unknown option '%s' (options follow the command; see "
				       "'ocilambda help')",
				       name);
		else
			ocil_cmd_unknown(&ctx, name, &err);
		fprintf(stderr, "ocilambda: %s\n", err->msg);
		ocil_error_free(err);
		return OCIL_E_USAGE;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int r = cmd->run(cmd, &ctx, argc - 1, argv + 1, &err);
	if (flush_stdout(r == 0 ? &err : NULL) < 0)
		r = -1;
	if (r == 0)
		return 0;
	int code = err ? (int)err->code : OCIL_E_IO;
	bool color = ocil_cmd_color(2);
	fprintf(stderr, "%socilambda %s: %s%s\n", color ? OCIL_SGR_RED : "", cmd->name,
		err ? err->msg : "unknown error", color ? OCIL_SGR_RESET : "");
	if (code == OCIL_E_USAGE)
		fprintf(stderr, "Run 'ocilambda %s --help' for usage.\n", cmd->name);
	ocil_error_free(err);
	return code;
}
