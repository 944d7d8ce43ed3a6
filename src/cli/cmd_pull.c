/* ocilambda pull: copy one platform's image from a registry into an OCI
 * layout, for builds on hosts that cannot reach the registry. */
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "registry/registry.h"
#include "transport/sink_layout.h"
#include "transport/source.h"

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

typedef struct {
	ocil_ref in, out;
	ocil_platform platform;
	ocil_source *src;
	ocil_layout_sink *sink;
	ocil_descriptor manifest;
} pull;

static void pull_clear(pull *p)
{
	ocil_ref_clear(&p->in);
	ocil_ref_clear(&p->out);
	ocil_platform_clear(&p->platform);
	ocil_source_free(p->src);
	ocil_layout_sink_free(p->sink);
	ocil_descriptor_clear(&p->manifest);
}

/* The manifest as the layout will hold it: the registry's own bytes for an
 * OCI manifest; a Docker one translated to OCI (same blobs), because skopeo
 * and umoci read nothing else from an OCI layout. */
static int store_manifest(pull *p, ocil_blobstore *bs, bool *converted, ocil_error **err)
{
	const ocil_manifest *m = &p->src->manifest;
	*converted = m->docker;
	if (m->docker)
		return ocil_manifest_write(false, &m->config, m->layers, m->n_layers, bs,
					   &p->manifest, err);
	if (ocil_blobstore_put(bs, p->src->manifest_raw, p->src->manifest_len, p->manifest.digest,
			       err) < 0)
		return -1;
	p->manifest.media_type = ocil_xstrdup(OCIL_MT_OCI_MANIFEST);
	p->manifest.size = (int64_t)p->src->manifest_len;
	return 0;
}

static int do_pull(const opts *o, const char *ref, pull *p, const ocil_cancel *cancel,
		   ocil_error **err)
{
	bool progress = ocil_cmd_progress_on(o->quiet, o->progress);
	if (ocil_platform_parse(o->platform, &p->platform, err) < 0)
		return -1;
	if (ocil_ref_parse(ref, &p->in, err) < 0)
		return -1;
	if (p->in.transport != OCIL_REF_DOCKER)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "%s: pull reads from a registry (HOST/REPO[:TAG]); use it "
				      "directly as --base",
				      ref);
	if (ocil_ref_parse(o->output, &p->out, err) < 0)
		return ocil_error_wrap(err, "--output");
	if (p->out.transport != OCIL_REF_OCI)
		return ocil_error_set(err, OCIL_E_USAGE, "--output %s: want oci:DIR[:TAG]",
				      o->output);
	if (ocil_layout_sink_open(p->out.path, &p->sink, err) < 0)
		return -1;
	ocil_registry_opts ro = o->registry;
	ocil_cmd_progress prog = {0};
	ocil_cmd_registry_callbacks(&ro, progress ? &prog : NULL);
	ocil_source_opts so = {.platform = &p->platform,
			       .cancel = cancel,
			       .registry = &ro,
			       .cache_dir = o->reg.cache_dir};
	if (ocil_source_open(&p->in, &so, &p->src, err) < 0)
		return -1;
	ocil_blobstore *bs = ocil_layout_sink_blobs(p->sink);
	const ocil_manifest *m = &p->src->manifest;
	if (ocil_source_copy_blob(p->src, &m->config, bs, cancel, err) < 0)
		return -1;
	for (size_t i = 0; i < m->n_layers; i++)
		if (ocil_source_copy_blob(p->src, &m->layers[i], bs, cancel, err) < 0)
			return -1;
	bool converted = false;
	if (store_manifest(p, bs, &converted, err) < 0 || ocil_cancel_check(cancel, err) < 0)
		return -1;
	const char *tag = p->out.tag ? p->out.tag : p->in.tag ? p->in.tag : "latest";
	if (ocil_layout_sink_commit(p->sink, tag, &p->manifest, err) < 0)
		return ocil_error_wrap(err, "output %s", o->output);
	if (!o->quiet)
		fprintf(stderr, "ocilambda: pulled %s (%s) into oci:%s:%s%s\n", ref,
			p->src->manifest_digest, p->out.path, tag,
			converted ? "; Docker manifest stored as OCI, same blobs" : "");
	printf("%s\n", p->manifest.digest);
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
	pull p = {0};
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	r = do_pull(&o, argv[first], &p, &cancel, err);
	pull_clear(&p);
	return r;
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
