/* Command table shared by main.c and the cmd_*.c files. Each command has an
 * option table from which its --help text is generated. */
#ifndef OCIL_CMD_H
#define OCIL_CMD_H

#include <getopt.h>

#include "util.h"

typedef struct {
	const char *name; /* long option name */
	int key;	  /* getopt value */
	const char *arg;  /* argument name, NULL for a flag */
	const char *help; /* one line */
} ocil_option;

typedef struct {
	volatile int *cancel_flag; /* set by main's SIGINT/SIGTERM handler */
} ocil_cmd_ctx;

typedef struct ocil_command {
	const char *name;
	const char *usage;	    /* after "ocilambda <name> " */
	const char *summary;	    /* one line */
	const char *details;	    /* extra --help text or NULL */
	const ocil_option *options; /* terminated by {NULL} */
	int (*run)(const struct ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
		   ocil_error **err);
} ocil_command;

/* Print generated help for cmd to f. */
void ocil_cmd_help(const ocil_command *cmd, FILE *f);
/* Parse argv against cmd->options with getopt_long; calls on_opt for each
 * option. --help is handled here (returns 1 after printing). Returns 0 to
 * proceed, 1 if help was printed, -1 on a usage error (err set). *optind_out
 * is the index of the first operand. */
int ocil_cmd_parse(const ocil_command *cmd, int argc, char **argv,
		   int (*on_opt)(void *data, int key, const char *arg, ocil_error **err),
		   void *data, int *optind_out, ocil_error **err);

extern const ocil_command ocil_cmd_assemble;
extern const ocil_command ocil_cmd_version;

#endif
