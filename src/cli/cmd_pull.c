/* ocilambda pull: copy one platform's image from a registry into an OCI
 * layout, for builds on hosts that cannot reach the registry. */
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "registry/registry.h"
#include "transport/copy.h"

enum {
	OPT_OUTPUT = 256,
	OPT_PLATFORM,
};

static const ocil_option options[] = {
    {"output", OPT_OUTPUT, "oci:DIR[:TAG]", "layout to write (TAG defaults to the ref's tag)"},
    {"platform", OPT_PLATFORM, "OS/ARCH", "which image of a multi-platform index (linux/amd64)"},
    {"quiet", OCIL_OPT_QUIET, NULL, "print nothing but the manifest digest"},
    {"progress", OCIL_OPT_PROGRESS, NULL,
     "print progress on stderr even when it is not a terminal"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	const char *output, *platform;
	bool quiet, progress;
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
	case OPT_OUTPUT:
		o->output = arg;
		break;
	case OPT_PLATFORM:
		o->platform = arg;
		break;
	}
	return 0;
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	opts o = {.platform = "linux/amd64", .registry = OCIL_REGISTRY_OPTS_DEFAULT};
	o.reg.registry = &o.registry;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &o, &first, err);
	if (r != 0)
		return r < 0 ? -1 : 0;
	if (first >= argc)
		return ocil_error_set(err, OCIL_E_USAGE, "missing the image reference to pull");
	if (first + 1 < argc)
		return ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'",
				      argv[first + 1]);
	if (o.output == NULL)
		return ocil_error_set(err, OCIL_E_USAGE, "--output is required");
	ocil_cmd_progress prog = {0};
	ocil_cmd_registry_callbacks(&o.registry,
				    ocil_cmd_progress_on(o.quiet, o.progress) ? &prog : NULL);
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	ocil_copy_opts co = {.from = argv[first],
			     .to = o.output,
			     .platform = o.platform,
			     .registry = o.registry,
			     .cache_dir = o.reg.cache_dir,
			     .cancel = &cancel};
	__attribute__((cleanup(ocil_copy_result_clear))) ocil_copy_result res = {0};
	if (ocil_copy_pull(&co, &res, err) < 0)
		return -1;
	if (!o.quiet)
		fprintf(stderr, "ocilambda: pulled %s (%s) into %s%s\n", argv[first],
			res.source_digest, res.where,
			res.converted ? "; Docker manifest stored as OCI, same blobs" : "");
	printf("%s\n", res.digest);
	return 0;
}

const ocil_command ocil_cmd_pull = {
    .name = "pull",
    .usage = "[options] [docker://]HOST/REPO[:TAG][@DIGEST] --output oci:DIR[:TAG]",
    .summary = "copy a registry image (one platform) into an OCI layout, for offline builds",
    .details = "Blobs go through the shared cache and are verified (sha256 and size) before\n"
	       "they are stored. Prints the manifest digest on stdout.\n"
	       "\nExample:\n"
	       "  ocilambda pull public.ecr.aws/lambda/python:3.8 --output oci:./base:3.8\n"
	       "  ocilambda assemble --base oci:./base:3.8 ...\n",
    .options = options,
    .exits = OCIL_X_IMAGE,
    .run = run,
};
