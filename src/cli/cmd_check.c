/* ocilambda check: the Lambda rules on any image reference, one line per
 * finding (or JSON); exit 4 when a rule at error level fails. */
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "cli/cmd.h"
#include "lambda/check.h"
#include "registry/registry.h"

enum {
	OPT_PLATFORM = 256,
	OPT_JSON,
};

static const ocil_option options[] = {
    {"platform", OPT_PLATFORM, "OS/ARCH",
     "the function's platform (default: linux/amd64 or linux/arm64, reported)"},
    {"json", OPT_JSON, NULL, "print the findings and a summary as JSON"},
    {"quiet", OCIL_OPT_QUIET, NULL, "no progress on stderr"},
    {"progress", OCIL_OPT_PROGRESS, NULL,
     "print progress on stderr even when it is not a terminal or with --json"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	const char *platform;
	bool json, quiet, progress;
	ocil_registry_opts registry;
	ocil_cmd_registry reg;
} opts;

static int on_opt(void *data, int key, const char *arg, ocil_error **err)
{
	opts *o = data;
	int handled = ocil_cmd_shared_opt(&o->reg, &o->quiet, &o->progress, key, arg, err);
	if (handled != 0)
		return handled < 0 ? -1 : 0;
	switch (key) {
	case OPT_PLATFORM:
		o->platform = arg;
		break;
	case OPT_JSON:
		o->json = true;
		break;
	}
	return 0;
}

typedef ocil_check_report check;

static void print_json(const char *input, const check *c, const ocil_findings *f)
{
	cleanup_json json_t *doc = ocil_check_report_json(input, &c->target, f);
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

static void print_human(const char *input, const check *c, const ocil_findings *f)
{
	bool color = ocil_cmd_color(1);
	for (size_t i = 0; i < f->n; i++)
		ocil_cmd_put_finding(stdout, "", &f->v[i], color);
	const ocil_source *src = c->target.src;
	cleanup_free char *plat = ocil_check_image_platform(src);
	size_t ne = ocil_findings_count(f, OCIL_SEV_ERROR);
	size_t nw = ocil_findings_count(f, OCIL_SEV_WARNING);
	size_t ni = ocil_findings_count(f, OCIL_SEV_INFO);
	printf("%s%s%.19s%s%s%s: %zu error%s, %zu warning%s, %zu info: %s%s%s\n", input,
	       src ? " (" : "", src ? src->manifest_digest : "", plat ? ", " : "", plat ? plat : "",
	       src ? ")" : "", ne, ne == 1 ? "" : "s", nw, nw == 1 ? "" : "s", ni,
	       !color ? ""
	       : ne   ? OCIL_SGR_RED
		      : OCIL_SGR_GREEN,
	       ne ? "fails" : "passes", color ? OCIL_SGR_RESET : "");
}

static int do_check(const opts *o, const char *input, check *c, const ocil_cancel *cancel,
		    ocil_error **err)
{
	ocil_registry_opts ro = o->registry;
	ocil_cmd_progress prog = {0};
	bool progress = ocil_cmd_progress_on(o->quiet || (o->json && !o->progress), o->progress);
	ocil_cmd_registry_callbacks(&ro, progress ? &prog : NULL);
	ocil_check_ref_opts co = {.image = input,
				  .platform = o->platform,
				  .registry = &ro,
				  .cache_dir = o->reg.cache_dir,
				  .cancel = cancel};
	if (ocil_check_ref(&co, c, err) < 0)
		return -1;
	if (o->json)
		print_json(input, c, &c->findings);
	else
		print_human(input, c, &c->findings);
	fflush(stdout);
	size_t ne = ocil_findings_count(&c->findings, OCIL_SEV_ERROR);
	if (ne == 0)
		return 0;
	/* the failed rules, once each, in table order (findings are grouped) */
	cleanup_free char *rules = ocil_findings_failed_rules(&c->findings);
	return ocil_error_set(err, OCIL_E_CHECK,
			      "%s: %zu error%s (%s): Lambda would refuse this image or fail to run "
			      "it",
			      input, ne, ne == 1 ? "" : "s", rules);
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	opts o = {.registry = OCIL_REGISTRY_OPTS_DEFAULT};
	o.reg.registry = &o.registry;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &o, &first, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (first >= argc)
		return ocil_error_set(err, OCIL_E_USAGE, "missing the image reference to check");
	if (first + 1 < argc)
		return ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'",
				      argv[first + 1]);
	check c = {0};
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	r = do_check(&o, argv[first], &c, &cancel, err);
	ocil_check_report_clear(&c);
	return r;
}

/* clang-format off */
#define RULE_LINE(id, sev, summary) "  " #id "  " summary " (" sev ")\n"
#define DETAILS \
	"One line per finding: RULE SEVERITY WHERE: MESSAGE, then a summary line.\n" \
	"An index given as IMAGE is an error (L001); the other rules then run on its\n" \
	"--platform image (default linux/amd64, else linux/arm64). Per-entry rules\n" \
	"(L004-L008, L015) list 20 paths per severity, then \"... and N more\".\n" \
	"L004/L005 are errors where the function reads (/opt, /var/lang, /var/runtime,\n" \
	"the task root, PYTHONPATH, the Entrypoint and Cmd programs, directories leading\n" \
	"there) and warnings elsewhere (a base's /root or /etc/shadow).\n" \
	"\nRules:\n" \
	OCIL_CHECK_RULES(RULE_LINE) \
	"\nExit 0 when no rule fails at error level, 4 when one does.\n" \
	"\nExample:\n" \
	"  ocilambda check oci:./out:latest\n" \
	"  ocilambda check --platform linux/arm64 --json public.ecr.aws/lambda/python:3.8\n"
/* clang-format on */

const ocil_command ocil_cmd_check = {
    .name = "check",
    .usage = "[options] IMAGE",
    .summary = "run the Lambda rules on an image (oci:, docker-archive:, docker://)",
    .details = DETAILS,
    .options = options,
    .exits = OCIL_X_IMAGE | OCIL_X_CHECK,
    .run = run,
};
