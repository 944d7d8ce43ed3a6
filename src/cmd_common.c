#include <stdio.h>
#include <string.h>

#include "cmd.h"

#define OPT_HELP 'h'

void ocil_cmd_help(const ocil_command *cmd, FILE *f)
{
	fprintf(f, "Usage: ocilambda %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
	if (cmd->options != NULL && cmd->options[0].name != NULL) {
		fputs("\nOptions:\n", f);
		for (const ocil_option *o = cmd->options; o->name != NULL; o++) {
			char left[64];
			snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
			fprintf(f, "  %-28s %s\n", left, o->help);
		}
	}
	fprintf(f, "  %-28s %s\n", "--help", "show this help and exit");
	if (cmd->details != NULL)
		fprintf(f, "\n%s", cmd->details);
	fputs("\nExit status: 0 ok, 1 usage, 2 bad input (file, ref, image, prefix),\n"
	      "3 registry/network/auth, 4 check failed, 5 I/O or internal, 130 interrupted.\n",
	      f);
}

int ocil_cmd_parse(const ocil_command *cmd, int argc, char **argv,
		   int (*on_opt)(void *data, int key, const char *arg, ocil_error **err),
		   void *data, int *optind_out, ocil_error **err)
{
	size_t n = 0;
	while (cmd->options != NULL && cmd->options[n].name != NULL)
		n++;
	cleanup_free struct option *lo = ocil_xcalloc(n + 2, sizeof(struct option));
	for (size_t i = 0; i < n; i++) {
		lo[i].name = cmd->options[i].name;
		lo[i].has_arg = cmd->options[i].arg ? required_argument : no_argument;
		lo[i].val = cmd->options[i].key;
	}
	lo[n].name = "help";
	lo[n].val = OPT_HELP;
	optind = 1;
	opterr = 0;
	for (;;) {
		int longidx = -1;
		/* "+" stops at the first operand; ":" reports missing arguments. */
		int c = getopt_long(argc, argv, "+:", lo, &longidx);
		if (c == -1)
			break;
		if (c == OPT_HELP) {
			ocil_cmd_help(cmd, stdout);
			return 1;
		}
		if (c == '?')
			return ocil_error_set(err, OCIL_E_USAGE, "%s: unknown option '%s'",
					      cmd->name, argv[optind - 1]);
		if (c == ':')
			return ocil_error_set(err, OCIL_E_USAGE,
					      "%s: option '%s' needs an argument", cmd->name,
					      argv[optind - 1]);
		if (on_opt(data, c, optarg, err) < 0)
			return -1;
	}
	*optind_out = optind;
	return 0;
}
