#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "registry.h"

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
		/* Options and operands may mix (GNU permutation); ":" reports a
		 * missing argument apart from an unknown option. */
		int c = getopt_long(argc, argv, ":", lo, &longidx);
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

int ocil_cmd_registry_opt(ocil_cmd_registry *r, int key, const char *arg, ocil_error **err)
{
	ocil_registry_opts *o = r->registry;
	char *end = NULL;
	long v;
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
		v = strtol(arg, &end, 10);
		if (*arg == '\0' || *end != '\0' || v < 0 || v > 100000)
			return ocil_error_set(
			    err, OCIL_E_USAGE, "--%s \"%s\": want a number",
			    key == OCIL_OPT_REGISTRY_BASE + 5 ? "retry" : "timeout", arg);
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

static void print_notice(void *data, const char *msg)
{
	fprintf(stderr, "ocilambda: %s\n", msg);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One line per blob, rewritten in place: bytes so far, total, rate. */
static void print_progress(void *data, const char *digest, uint64_t done, uint64_t total)
{
	ocil_cmd_progress *p = data;
	double t = now_s();
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

void ocil_cmd_registry_callbacks(ocil_registry_opts *o, ocil_cmd_progress *progress)
{
	o->notice = print_notice;
	o->progress = progress ? print_progress : NULL;
	o->data = progress;
}
