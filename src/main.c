/* ocilambda: the only place that prints errors and picks exit codes. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

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
    &ocil_cmd_inspect,
    &ocil_cmd_pull,
    &ocil_cmd_push,
    &ocil_cmd_version,
};
/* clang-format on */

static void usage(FILE *f)
{
	fputs("Usage: ocilambda <command> [options]\n\n"
	      "Build AWS Lambda container images from a conda environment, without Docker.\n\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fputs("  help       show this help, or a command's (help <command>)\n\n"
	      "Run 'ocilambda <command> --help' for a command's options.\n",
	      f);
}

static const ocil_command *find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i]->name, name) == 0)
			return commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return OCIL_E_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		const ocil_command *c = argc > 2 ? find(argv[2]) : NULL;
		if (argc > 2 && c == NULL) {
			fprintf(stderr, "ocilambda: unknown command '%s'\n", argv[2]);
			return OCIL_E_USAGE;
		}
		if (c != NULL)
			ocil_cmd_help(c, stdout);
		else
			usage(stdout);
		return 0;
	}
	if (strcmp(name, "--version") == 0)
		name = "version";
	const ocil_command *cmd = find(name);
	if (cmd == NULL) {
		fprintf(stderr, "ocilambda: unknown command '%s' (see 'ocilambda help')\n", name);
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

	ocil_cmd_ctx ctx = {.cancel_flag = &cancel_flag};
	ocil_error *err = NULL;
	int r = cmd->run(cmd, &ctx, argc - 1, argv + 1, &err);
	if (r == 0)
		return 0;
	int code = err ? (int)err->code : OCIL_E_IO;
	fprintf(stderr, "ocilambda %s: %s\n", cmd->name, err ? err->msg : "unknown error");
	if (code == OCIL_E_USAGE)
		fprintf(stderr, "Run 'ocilambda %s --help' for usage.\n", cmd->name);
	ocil_error_free(err);
	return code;
}
