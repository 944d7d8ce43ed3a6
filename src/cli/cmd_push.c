/* ocilambda push: copy an image (one platform) to a registry, a
 * docker-archive or a layout; e.g. a layout built by assemble to ECR. */
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "registry/registry.h"
#include "transport/copy.h"

enum {
	OPT_FORMAT = 256,
	OPT_DIGESTFILE,
	OPT_PLATFORM,
};

static const ocil_option options[] = {
    {"format", OPT_FORMAT, "oci|docker", "manifest format (default: the source's)"},
    {"digestfile", OPT_DIGESTFILE, "FILE", "write the manifest digest to FILE"},
    {"platform", OPT_PLATFORM, "OS/ARCH", "which image of a multi-platform source (linux/amd64)"},
    {"quiet", OCIL_OPT_QUIET, NULL, "print nothing but the result"},
    {"progress", OCIL_OPT_PROGRESS, NULL,
     "print progress on stderr even when it is not a terminal"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	const char *digestfile, *platform;
	ocil_format format;
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
	case OPT_FORMAT:
		return ocil_format_parse(arg, &o->format, err);
	case OPT_DIGESTFILE:
		o->digestfile = arg;
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
	if (argc - first != 2)
		return ocil_error_set(err, OCIL_E_USAGE, "want a SOURCE and a DESTINATION (got %d)",
				      argc - first);
	ocil_cmd_progress prog = {0};
	ocil_cmd_registry_callbacks(&o.registry,
				    ocil_cmd_progress_on(o.quiet, o.progress) ? &prog : NULL);
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	ocil_copy_opts co = {.from = argv[first],
			     .to = argv[first + 1],
			     .platform = o.platform,
			     .format = o.format,
			     .digestfile = o.digestfile,
			     .registry = o.registry,
			     .cache_dir = o.reg.cache_dir,
			     .cancel = &cancel};
	__attribute__((cleanup(ocil_copy_result_clear))) ocil_copy_result res = {0};
	if (ocil_copy_push(&co, &res, err) < 0)
		return -1;
	if (!o.quiet)
		fprintf(stderr, "ocilambda: pushed %s to %s\n", argv[first], argv[first + 1]);
	printf("%s\n", res.published);
	return 0;
}

const ocil_command ocil_cmd_push = {
    .name = "push",
    .usage = "[options] SOURCE DESTINATION",
    .summary = "copy an image to a registry (or a docker-archive, or a layout)",
    .details = "SOURCE and DESTINATION are oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG] or\n"
	       "[docker://]HOST/REPO[:TAG]. Blobs go first (skipping what the registry has,\n"
	       "mounting from the source repository on the same registry), then the config,\n"
	       "then the manifest: a failed push publishes nothing. A registry destination\n"
	       "prints HOST/REPO@sha256:…, the form `aws lambda update-function-code\n"
	       "--image-uri` wants; files print the manifest digest.\n"
	       "\nExample:\n"
	       "  ocilambda push oci:./out:latest "
	       "docker://123456789012.dkr.ecr.eu-west-1.amazonaws.com/fn:v1\n",
    .options = options,
    .exits = OCIL_X_IMAGE,
    .run = run,
};
