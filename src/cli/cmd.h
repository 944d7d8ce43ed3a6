/* Command table shared by main.c and the cmd_*.c files. Each command has an
 * option table from which its --help text is generated. */
#ifndef OCIL_CMD_H
#define OCIL_CMD_H

#include <getopt.h>

#include "base/util.h"

typedef struct {
	const char *name; /* long option name */
	int key;	  /* getopt value */
	const char *arg;  /* argument name, NULL for a flag */
	const char *help; /* one line */
} ocil_option;

struct ocil_command;

typedef struct {
	volatile int *cancel_flag; /* set by main's SIGINT/SIGTERM handler */
	/* main's command table, for help, the man page and the completion */
	const struct ocil_command *const *commands;
	size_t n_commands;
} ocil_cmd_ctx;

/* The exit codes a command documents (besides 0), one bit each. */
enum {
	OCIL_X_USAGE = 1 << 0,
	OCIL_X_INPUT = 1 << 1,
	OCIL_X_REGISTRY = 1 << 2,
	OCIL_X_CHECK = 1 << 3,
	OCIL_X_IO = 1 << 4,
	OCIL_X_CANCELLED = 1 << 5,
	OCIL_X_FUNCTION = 1 << 6,
};
/* What a command that reads images can end with. */
#define OCIL_X_IMAGE (OCIL_X_USAGE | OCIL_X_INPUT | OCIL_X_REGISTRY | OCIL_X_IO | OCIL_X_CANCELLED)

/* One documented exit status; the table ends with {0, 0, NULL}. README's
 * table and the man page say the same (tests/cli/t_exit_codes.sh). */
typedef struct {
	int code;
	unsigned bit; /* OCIL_X_*, 0 for success */
	const char *meaning;
} ocil_exit_status;
extern const ocil_exit_status ocil_exit_statuses[];

typedef struct ocil_command {
	const char *name;
	const char *usage;	    /* after "ocilambda <name> " */
	const char *summary;	    /* one line */
	const char *details;	    /* extra --help text or NULL */
	const ocil_option *options; /* terminated by {NULL} */
	unsigned exits;		    /* OCIL_X_* it can end with; 0: all of them */
	int (*run)(const struct ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
		   ocil_error **err);
} ocil_command;

/* Whether cmd documents exit status bit (OCIL_X_*; 0, success, always). */
bool ocil_cmd_exits(const ocil_command *cmd, unsigned bit);
/* Print generated help for cmd to f. */
void ocil_cmd_print_help(const ocil_command *cmd, FILE *f);
/* The command list: what `ocilambda help` prints. */
void ocil_cmd_usage(const ocil_cmd_ctx *ctx, FILE *f);
/* The command named name in ctx's table, or NULL. */
const ocil_command *ocil_cmd_find(const ocil_cmd_ctx *ctx, const char *name);
/* "unknown command 'x'", with the nearest command's name when one is close. */
int ocil_cmd_unknown(const ocil_cmd_ctx *ctx, const char *name, ocil_error **err);
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
	     "bound on each registry request, blob or package download, retries included "         \
	     "(default 600)"},                                                                     \
	{                                                                                          \
		"cache-dir", OCIL_OPT_REGISTRY_BASE + 7, "DIR",                                    \
		    "blob cache (default $XDG_CACHE_HOME/ocilambda or ~/.cache/ocilambda)"         \
	}

typedef struct ocil_registry_opts ocil_registry_opts;
/* Initializer for an ocil_registry_opts (include registry/registry.h). */
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
	bool drawn; /* a line is shown and not ended yet */
} ocil_cmd_progress;
void ocil_cmd_registry_callbacks(ocil_registry_opts *o, ocil_cmd_progress *progress);
/* A fetch.h progress callback (data: an ocil_cmd_progress): one line,
 * rewritten in place, of what the downloads have done; _end ends the line
 * if one is shown. */
typedef struct ocil_fetch_progress ocil_fetch_progress;
void ocil_cmd_fetch_progress(void *data, const ocil_fetch_progress *p);
void ocil_cmd_fetch_progress_end(ocil_cmd_progress *p);
/* A notice callback: "ocilambda: <msg>" on stderr (data unused). */
void ocil_cmd_print_notice(void *data, const char *msg);

/* Colour for terminals: on when fd is a TTY and NO_COLOR is unset or
 * empty (https://no-color.org). */
bool ocil_cmd_color(int fd);
/* SGR sequences, or "" when colour is off. */
#define OCIL_SGR_RED "\033[31m"
#define OCIL_SGR_YELLOW "\033[33m"
#define OCIL_SGR_GREEN "\033[32m"
#define OCIL_SGR_RESET "\033[0m"
typedef struct ocil_finding ocil_finding;
/* prefix, then the finding's line, red for errors and yellow for warnings
 * when color. */
void ocil_cmd_put_finding(FILE *f, const char *prefix, const ocil_finding *x, bool color);
/* --quiet and --progress: the same keys in every table that has them (the
 * help text says what --quiet leaves), applied by ocil_cmd_output_opt. */
#define OCIL_OPT_QUIET 900
#define OCIL_OPT_PROGRESS 901
/* Whether key was --quiet or --progress (then applied). */
bool ocil_cmd_output_opt(int key, bool *quiet, bool *progress);
/* The options every image-reading command shares: the registry's, --quiet
 * and --progress. Returns 1 if key was one of them (applied), 0 if not, -1
 * on a bad value. */
int ocil_cmd_shared_opt(ocil_cmd_registry *r, bool *quiet, bool *progress, int key, const char *arg,
			ocil_error **err);
/* A whole decimal in [lo, hi] as the value of --name, else OCIL_E_USAGE
 * "--name \"arg\": want <want>". */
int ocil_cmd_long_opt(const char *name, const char *arg, long lo, long hi, const char *want,
		      long *out, ocil_error **err);
/* --env KEY=VALUE (a non-empty KEY), kept in env. */
int ocil_cmd_env_opt(ocil_strv *env, const char *arg, ocil_error **err);
/* Whether progress goes to stderr: not --quiet, and --progress or a TTY. */
bool ocil_cmd_progress_on(bool quiet, bool progress);
/* "12.3 MiB" */
void ocil_cmd_human_size(int64_t n, char *buf, size_t len);

/* Monotonic seconds, for durations. */
double ocil_cmd_now(void);

/* Environment variables ocilambda reads; the table ends with {NULL}. */
typedef struct {
	const char *name;
	const char *meaning;
} ocil_env_var;
extern const ocil_env_var ocil_env_vars[];

extern const ocil_command ocil_cmd_assemble;
extern const ocil_command ocil_cmd_check;
extern const ocil_command ocil_cmd_help;
extern const ocil_command ocil_cmd_inspect;
extern const ocil_command ocil_cmd_pull;
extern const ocil_command ocil_cmd_push;
extern const ocil_command ocil_cmd_run;
extern const ocil_command ocil_cmd_version;

#endif
