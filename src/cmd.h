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

/* Options shared by the commands that talk to registries. Their keys start
 * at OCIL_OPT_REGISTRY_BASE; put OCIL_REGISTRY_OPTIONS in the command's
 * table and hand unknown keys to ocil_cmd_registry_opt. */
#define OCIL_OPT_REGISTRY_BASE 1000
#define OCIL_REGISTRY_OPTIONS                                                                      \
	{"tls-verify", OCIL_OPT_REGISTRY_BASE + 0, "BOOL",                                         \
	 "verify TLS and refuse plain http (default true; false allows both)"},                    \
	    {"insecure", OCIL_OPT_REGISTRY_BASE + 1, NULL, "same as --tls-verify=false"},          \
	    {"cert-dir", OCIL_OPT_REGISTRY_BASE + 2, "DIR",                                        \
	     "extra CA certificates (*.crt) in DIR"},                                              \
	    {"ca-file", OCIL_OPT_REGISTRY_BASE + 3, "FILE", "extra CA certificates (PEM)"},        \
	    {"authfile", OCIL_OPT_REGISTRY_BASE + 4, "FILE",                                       \
	     "registry credentials (default: $REGISTRY_AUTH_FILE, containers auth.json, "          \
	     "~/.docker/config.json)"},                                                            \
	    {"retry", OCIL_OPT_REGISTRY_BASE + 5, "N",                                             \
	     "retries on connection errors, 429 and 5xx (default 3)"},                             \
	    {"timeout", OCIL_OPT_REGISTRY_BASE + 6, "SECONDS",                                     \
	     "bound on each registry request or blob download, retries included (default 600)"},   \
	{                                                                                          \
		"cache-dir", OCIL_OPT_REGISTRY_BASE + 7, "DIR",                                    \
		    "blob cache (default $XDG_CACHE_HOME/ocilambda or ~/.cache/ocilambda)"         \
	}

typedef struct ocil_registry_opts ocil_registry_opts;
/* Initializer for an ocil_registry_opts (include registry.h). */
#define OCIL_REGISTRY_OPTS_DEFAULT                                                                 \
	{                                                                                          \
		.tls_verify = true, .retries = 3, .timeout_s = 600                                 \
	}
typedef struct {
	ocil_registry_opts *registry;
	const char *cache_dir;
} ocil_cmd_registry;
/* Returns 1 if key was a registry option (applied), 0 if not, -1 on a bad
 * value. */
int ocil_cmd_registry_opt(ocil_cmd_registry *r, int key, const char *arg, ocil_error **err);
/* The CLI's notice/progress callbacks for a registry client; progress
 * (NULL: none) is the caller's per-command state. */
typedef struct {
	char digest[80];
	double start, last;
} ocil_cmd_progress;
void ocil_cmd_registry_callbacks(ocil_registry_opts *o, ocil_cmd_progress *progress);

extern const ocil_command ocil_cmd_assemble;
extern const ocil_command ocil_cmd_check;
extern const ocil_command ocil_cmd_inspect;
extern const ocil_command ocil_cmd_pull;
extern const ocil_command ocil_cmd_push;
extern const ocil_command ocil_cmd_version;

#endif
