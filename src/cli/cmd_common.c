#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cmd.h"
#include "lambda/check.h"
#include "registry/fetch.h"
#include "registry/registry.h"

#define OPT_HELP 'h'
/* --help text: wrapped at this column, option help from HELP_COL on */
#define HELP_WIDTH 79
#define HELP_COL 31

const ocil_exit_status ocil_exit_statuses[] = {
    {0, 0, "success"},
    {1, OCIL_X_USAGE, "usage: unknown option, missing or malformed argument"},
    {2, OCIL_X_INPUT,
     "bad input: a file, ref, image or prefix that is missing, malformed or fails verification"},
    {3, OCIL_X_REGISTRY, "registry, network or authentication"},
    {4, OCIL_X_CHECK, "check failed"},
    {5, OCIL_X_IO, "I/O or internal error"},
    {6, OCIL_X_FUNCTION,
     "the function failed: an error or init error, exited without answering, or timed out"},
    {130, OCIL_X_CANCELLED, "interrupted (SIGINT/SIGTERM); nothing is left half-written"},
    {0, 0, NULL},
};

const ocil_env_var ocil_env_vars[] = {
    {"SOURCE_DATE_EPOCH",
     "seconds since the epoch for every timestamp in the image (default 0), so that the same "
     "inputs give the same digests"},
    {"XDG_CACHE_HOME", "the blob cache is $XDG_CACHE_HOME/ocilambda (default ~/.cache/ocilambda)"},
    {"REGISTRY_AUTH_FILE", "registry credentials file, read before the default ones"},
    {"XDG_RUNTIME_DIR", "$XDG_RUNTIME_DIR/containers/auth.json holds credentials (podman login)"},
    {"XDG_CONFIG_HOME",
     "$XDG_CONFIG_HOME/containers/auth.json holds credentials (default ~/.config)"},
    {"DOCKER_CONFIG", "directory of Docker's config.json (default ~/.docker)"},
    {"OCIL_GZIP_THREADS", "threads compressing a layer (default: the CPUs this process may use)"},
    {"NO_COLOR", "when set and not empty, nothing is coloured (https://no-color.org)"},
    {"TMPDIR", "where check and inspect keep temporary copies of what they read (default /tmp)"},
    {"PATH", "where docker-credential-HELPER programs (credHelpers, credsStore) are found"},
    {"NETRC", "the netrc file with credentials for package downloads (default ~/.netrc)"},
    {"OCIL_FETCH_MAX_SIZE",
     "bytes one downloaded package may have at most when its size is not known (default 4 GiB)"},
    {NULL, NULL},
};

bool ocil_cmd_exits(const ocil_command *cmd, unsigned bit)
{
	return bit == 0 || cmd->exits == 0 || (cmd->exits & bit) != 0;
}

/* Print text from column col (the cursor is there), wrapped at
 * HELP_WIDTH, continuation lines indented to col. */
static void put_wrapped(FILE *f, const char *text, int col)
{
	int at = col;
	const char *p = text;
	while (*p != '\0') {
		size_t n = strcspn(p, " ");
		if (at > col && at + 1 + (int)n > HELP_WIDTH) {
			fprintf(f, "\n%*s", col, "");
			at = col;
		} else if (at > col) {
			fputc(' ', f);
			at++;
		}
		fwrite(p, 1, n, f);
		at += (int)n;
		p += n;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

/* "  LEFT      wrapped help", LEFT alone on its line when it is long. */
static void put_item(FILE *f, const char *left, const char *help)
{
	int n = fprintf(f, "  %s", left);
	if (n >= HELP_COL)
		fprintf(f, "\n%*s", HELP_COL, "");
	else
		fprintf(f, "%*s", HELP_COL - n, "");
	put_wrapped(f, help, HELP_COL);
}

void ocil_cmd_print_help(const ocil_command *cmd, FILE *f)
{
	int col = fprintf(f, "Usage: ocilambda %s ", cmd->name);
	put_wrapped(f, cmd->usage, col);
	fprintf(f, "\n%s\n", cmd->summary);
	fputs("\nOptions:\n", f);
	for (const ocil_option *o = cmd->options; o != NULL && o->name != NULL; o++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		put_item(f, left, o->help);
	}
	put_item(f, "-h, --help", "show this help and exit");
	if (cmd->details != NULL)
		fprintf(f, "\n%s", cmd->details);
	fputs("\nExit status:\n", f);
	for (const ocil_exit_status *x = ocil_exit_statuses; x->meaning != NULL; x++)
		if (ocil_cmd_exits(cmd, x->bit)) {
			int n = fprintf(f, "  %-4d ", x->code);
			put_wrapped(f, x->meaning, n);
		}
}

void ocil_cmd_usage(const ocil_cmd_ctx *ctx, FILE *f)
{
	fputs("Usage: ocilambda <command> [options]\n\n"
	      "Build AWS Lambda container images from a conda environment, without Docker.\n\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < ctx->n_commands; i++)
		fprintf(f, "  %-10s %s\n", ctx->commands[i]->name, ctx->commands[i]->summary);
	fputs("\nRun 'ocilambda help <command>' or 'ocilambda <command> --help' for a command's\n"
	      "options, 'man ocilambda' for everything.\n",
	      f);
}

const ocil_command *ocil_cmd_find(const ocil_cmd_ctx *ctx, const char *name)
{
	for (size_t i = 0; i < ctx->n_commands; i++)
		if (strcmp(ctx->commands[i]->name, name) == 0)
			return ctx->commands[i];
	return NULL;
}

int ocil_cmd_unknown(const ocil_cmd_ctx *ctx, const char *name, ocil_error **err)
{
	cleanup_free const char **names = ocil_xcalloc(ctx->n_commands + 1, sizeof(char *));
	for (size_t i = 0; i < ctx->n_commands; i++)
		names[i] = ctx->commands[i]->name;
	const char *near = ocil_str_nearest(name, names, ctx->n_commands);
	if (near != NULL)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "unknown command '%s' (did you mean '%s'? see 'ocilambda "
				      "help')",
				      name, near);
	return ocil_error_set(err, OCIL_E_USAGE, "unknown command '%s' (see 'ocilambda help')",
			      name);
}

/* An option getopt refused: ambiguous abbreviation, or a typo of one. */
static int bad_option(const ocil_command *cmd, const char *arg, ocil_error **err)
{
	if (strncmp(arg, "--", 2) != 0)
		return ocil_error_set(err, OCIL_E_USAGE, "unknown option '%s'", arg);
	cleanup_free char *name = ocil_xstrndup(arg + 2, strcspn(arg + 2, "="));
	size_t n = 0;
	while (cmd->options[n].name != NULL)
		n++;
	cleanup_free const char **names = ocil_xcalloc(n + 2, sizeof(char *));
	cleanup_free char *matches = ocil_xstrdup("");
	size_t nmatch = 0;
	for (size_t i = 0; i <= n; i++) {
		names[i] = i < n ? cmd->options[i].name : "help";
		if (name[0] == '\0' || strncmp(names[i], name, strlen(name)) != 0)
			continue;
		char *m = ocil_xasprintf("%s%s--%s", matches, nmatch ? ", " : "", names[i]);
		free(matches);
		matches = m;
		nmatch++;
	}
	if (nmatch > 1)
		return ocil_error_set(err, OCIL_E_USAGE, "option '--%s' is ambiguous (%s)", name,
				      matches);
	for (size_t i = 0; nmatch == 1 && strchr(arg, '=') != NULL && i <= n; i++)
		if (strncmp(names[i], name, strlen(name)) == 0)
			return ocil_error_set(err, OCIL_E_USAGE, "option '--%s' takes no argument",
					      names[i]);
	const char *near = ocil_str_nearest(name, names, n + 1);
	if (near != NULL)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "unknown option '--%s' (did you mean '--%s'?)", name, near);
	return ocil_error_set(err, OCIL_E_USAGE, "unknown option '--%s'", name);
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
		/* Options and operands may mix (GNU permutation); ":" reports a
		 * missing argument apart from an unknown option. */
		int c = getopt_long(argc, argv, ":h", lo, &longidx);
		if (c == -1)
			break;
		if (c == OPT_HELP) {
			ocil_cmd_print_help(cmd, stdout);
			return 1;
		}
		if (c == '?')
			return bad_option(cmd, argv[optind - 1], err);
		if (c == ':')
			return ocil_error_set(err, OCIL_E_USAGE, "option '%s' needs an argument",
					      argv[optind - 1]);
		if (on_opt(data, c, optarg, err) < 0)
			return -1;
	}
	*optind_out = optind;
	return 0;
}

int ocil_cmd_registry_opt(ocil_cmd_registry *r, int key, const char *arg, ocil_error **err)
{
	ocil_registry_opts *o = r->registry;
	long v = 0;
	switch (key - OCIL_OPT_REGISTRY_BASE) {
	case 0:
		if (strcmp(arg, "true") == 0)
			o->tls_verify = true;
		else if (strcmp(arg, "false") == 0)
			o->tls_verify = false;
		else
			return ocil_error_set(err, OCIL_E_USAGE,
					      "--tls-verify \"%s\": want true or false", arg);
		return 1;
	case 1:
		o->tls_verify = false;
		return 1;
	case 2:
		o->cert_dir = arg;
		return 1;
	case 3:
		o->ca_file = arg;
		return 1;
	case 4:
		o->authfile = arg;
		return 1;
	case 5:
	case 6:
		if (ocil_cmd_long_opt(key == OCIL_OPT_REGISTRY_BASE + 5 ? "retry" : "timeout", arg,
				      0, 100000, "a number", &v, err) < 0)
			return -1;
		if (key == OCIL_OPT_REGISTRY_BASE + 5)
			o->retries = (int)v;
		else if (v == 0)
			return ocil_error_set(err, OCIL_E_USAGE, "--timeout must be at least 1");
		else
			o->timeout_s = v;
		return 1;
	case 7:
		r->cache_dir = arg;
		return 1;
	}
	return 0;
}

void ocil_cmd_print_notice(void *data, const char *msg)
{
	fprintf(stderr, "ocilambda: %s\n", msg);
}

double ocil_cmd_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One line per blob, rewritten in place: bytes so far, total, rate. */
static void print_progress(void *data, const char *digest, uint64_t done, uint64_t total)
{
	ocil_cmd_progress *p = data;
	double t = ocil_cmd_now();
	if (strcmp(p->digest, digest) != 0) {
		snprintf(p->digest, sizeof(p->digest), "%s", digest);
		p->start = t;
		p->last = 0;
	}
	/* Called for every chunk: redraw at most five times a second. */
	if (done != total && t - p->last < 0.2)
		return;
	p->last = t;
	double dt = t - p->start;
	double rate = dt > 0 ? done / dt / 1048576.0 : 0;
	fprintf(stderr, "\rocilambda: %.19s %7.1f/%.1f MiB %6.1f MiB/s", digest, done / 1048576.0,
		total / 1048576.0, rate);
	if (done == total)
		fputc('\n', stderr);
}

void ocil_cmd_fetch_progress(void *data, const ocil_fetch_progress *p)
{
	ocil_cmd_progress *st = data;
	double t = ocil_cmd_now();
	if (st->start == 0)
		st->start = t;
	bool all = p->done == p->total;
	/* Called for every chunk: redraw at most five times a second. */
	if (!all && t - st->last < 0.2)
		return;
	st->last = t;
	double dt = t - st->start;
	double mib = p->bytes / 1048576.0;
	fprintf(stderr, "\rocilambda: downloaded %zu/%zu, %zu under way, %.1f MiB, %.1f MiB/s ",
		p->done, p->total, p->active, mib, dt > 0 ? mib / dt : 0);
	st->drawn = !all;
	if (all)
		fputc('\n', stderr);
}

void ocil_cmd_fetch_progress_end(ocil_cmd_progress *p)
{
	if (p->drawn)
		fputc('\n', stderr);
	p->drawn = false;
}

void ocil_cmd_registry_callbacks(ocil_registry_opts *o, ocil_cmd_progress *progress)
{
	o->notice = ocil_cmd_print_notice;
	o->progress = progress ? print_progress : NULL;
	o->data = progress;
}

bool ocil_cmd_color(int fd)
{
	const char *no = getenv("NO_COLOR");
	return isatty(fd) && (no == NULL || no[0] == '\0');
}

void ocil_cmd_put_finding(FILE *f, const char *prefix, const ocil_finding *x, bool color)
{
	cleanup_free char *line = ocil_finding_format(x);
	const char *on = !color			      ? ""
			 : x->sev == OCIL_SEV_ERROR   ? OCIL_SGR_RED
			 : x->sev == OCIL_SEV_WARNING ? OCIL_SGR_YELLOW
						      : "";
	fprintf(f, "%s%s%s%s\n", prefix, on, line, on[0] ? OCIL_SGR_RESET : "");
}

bool ocil_cmd_output_opt(int key, bool *quiet, bool *progress)
{
	if (key == OCIL_OPT_QUIET)
		*quiet = true;
	else if (key == OCIL_OPT_PROGRESS)
		*progress = true;
	return key == OCIL_OPT_QUIET || key == OCIL_OPT_PROGRESS;
}

int ocil_cmd_long_opt(const char *name, const char *arg, long lo, long hi, const char *want,
		      long *out, ocil_error **err)
{
	char *end = NULL;
	long v = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || v < lo || v > hi)
		return ocil_error_set(err, OCIL_E_USAGE, "--%s \"%s\": want %s", name, arg, want);
	*out = v;
	return 0;
}

int ocil_cmd_env_opt(ocil_strv *env, const char *arg, ocil_error **err)
{
	if (strchr(arg, '=') == NULL || arg[0] == '=')
		return ocil_error_set(err, OCIL_E_USAGE, "--env \"%s\": want KEY=VALUE", arg);
	ocil_strv_push(env, ocil_xstrdup(arg));
	return 0;
}

int ocil_cmd_shared_opt(ocil_cmd_registry *r, bool *quiet, bool *progress, int key, const char *arg,
			ocil_error **err)
{
	if (ocil_cmd_output_opt(key, quiet, progress))
		return 1;
	return ocil_cmd_registry_opt(r, key, arg, err);
}

bool ocil_cmd_progress_on(bool quiet, bool progress)
{
	return !quiet && (progress || isatty(2));
}

void ocil_cmd_human_size(int64_t n, char *buf, size_t len)
{
	if (n < 1024)
		snprintf(buf, len, "%lld B", (long long)n);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", n / 1024.0);
	else if (n < (int64_t)1024 * 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", n / 1048576.0);
	else
		snprintf(buf, len, "%.2f GiB", n / 1073741824.0);
}
