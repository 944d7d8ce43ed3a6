/* ocilambda push: copy an image (one platform) to a registry, a
 * docker-archive or a layout; e.g. a layout built by assemble to ECR. */
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "cli/cmd.h"
#include "registry/registry.h"
#include "transport/sink.h"
#include "transport/source.h"

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

typedef struct {
	ocil_ref in, out;
	ocil_platform platform;
	ocil_source *src;
	ocil_sink *sink;
	ocil_descriptor *layers;
	size_t n_layers;
	ocil_descriptor manifest;
} push;

static void push_clear(push *p)
{
	ocil_ref_clear(&p->in);
	ocil_ref_clear(&p->out);
	ocil_platform_clear(&p->platform);
	ocil_source_free(p->src);
	ocil_sink_free(p->sink);
	for (size_t i = 0; i < p->n_layers; i++)
		ocil_descriptor_clear(&p->layers[i]);
	free(p->layers);
	ocil_descriptor_clear(&p->manifest);
}

/* The source's own manifest bytes when nothing needs translating (so the
 * digest stays the one the user built); otherwise a new manifest. */
static int store_manifest(push *p, bool docker, ocil_blobstore *bs, ocil_error **err)
{
	const ocil_manifest *m = &p->src->manifest;
	bool same = m->docker == docker;
	for (size_t i = 0; same && i < m->n_layers; i++)
		same = strcmp(m->layers[i].media_type, p->layers[i].media_type) == 0 &&
		       strcmp(m->layers[i].digest, p->layers[i].digest) == 0;
	if (!same)
		return ocil_manifest_write(docker, &m->config, p->layers, p->n_layers, bs,
					   &p->manifest, err);
	if (ocil_blobstore_put(bs, p->src->manifest_raw, p->src->manifest_len, p->manifest.digest,
			       err) < 0)
		return -1;
	p->manifest.media_type = ocil_xstrdup(m->media_type);
	p->manifest.size = (int64_t)p->src->manifest_len;
	return 0;
}

static int do_push(const opts *o, const char *from, const char *to, push *p,
		   const ocil_cancel *cancel, ocil_error **err)
{
	bool progress = ocil_cmd_progress_on(o->quiet, o->progress);
	if (ocil_platform_parse(o->platform, &p->platform, err) < 0)
		return -1;
	if (ocil_ref_parse(from, &p->in, err) < 0 || ocil_ref_parse(to, &p->out, err) < 0)
		return -1;
	ocil_registry_opts ro = o->registry;
	ocil_cmd_progress prog = {0};
	ocil_cmd_registry_callbacks(&ro, progress ? &prog : NULL);
	bool same_registry = p->in.transport == OCIL_REF_DOCKER;
	ocil_sink_opts sko = {.registry = &ro,
			      .cache_dir = o->reg.cache_dir,
			      .cancel = cancel,
			      .mount_registry = same_registry ? p->in.registry : NULL,
			      .mount_repo = same_registry ? p->in.repository : NULL};
	if (ocil_sink_open(&p->out, &sko, &p->sink, err) < 0)
		return -1;
	ocil_source_opts so = {.platform = &p->platform,
			       .cancel = cancel,
			       .registry = &ro,
			       .cache_dir = o->reg.cache_dir};
	if (ocil_source_open(&p->in, &so, &p->src, err) < 0)
		return -1;
	bool docker = false;
	if (ocil_sink_family(p->sink, o->format, p->src->manifest.docker, &docker, err) < 0)
		return -1;
	ocil_blobstore *bs = ocil_sink_blobs(p->sink);
	const ocil_manifest *m = &p->src->manifest;
	if (ocil_source_import_layers(p->src, bs, docker, cancel, &p->layers, err) < 0)
		return -1;
	p->n_layers = m->n_layers;
	if (ocil_source_copy_blob(p->src, &m->config, bs, cancel, err) < 0 ||
	    store_manifest(p, docker, bs, err) < 0)
		return -1;
	const json_t *ids = json_object_get(json_object_get(p->src->config, "rootfs"), "diff_ids");
	cleanup_free const char **diff_ids = ocil_xcalloc(p->n_layers + 1, sizeof(char *));
	for (size_t i = 0; i < p->n_layers; i++)
		diff_ids[i] = json_string_value(json_array_get(ids, i));
	ocil_descriptor config = m->config;
	config.media_type = docker ? OCIL_MT_DOCKER_CONFIG : OCIL_MT_OCI_CONFIG;
	ocil_sink_image img = {.manifest = &p->manifest,
			       .config = &config,
			       .layers = p->layers,
			       .n_layers = p->n_layers,
			       .diff_ids = diff_ids};
	cleanup_free char *published = NULL;
	if (ocil_sink_commit(p->sink, &img, &published, err) < 0)
		return ocil_error_wrap(err, "%s", to);
	if (o->digestfile != NULL && ocil_write_file_atomic(o->digestfile, p->manifest.digest,
							    strlen(p->manifest.digest), err) < 0)
		return ocil_error_wrap(err, "--digestfile");
	if (!o->quiet)
		fprintf(stderr, "ocilambda: pushed %s to %s\n", from, to);
	printf("%s\n", published);
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
	push p = {0};
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	r = do_push(&o, argv[first], argv[first + 1], &p, &cancel, err);
	push_clear(&p);
	return r;
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
