/* copy: pull and push (see copy.h). */
#include "transport/copy.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "transport/sink_layout.h"
#include "transport/source.h"

/* What one copy owns, freed in one place. */
typedef struct {
	ocil_ref in, out;
	ocil_platform platform;
	ocil_source *src;
	ocil_layout_sink *layout; /* pull */
	ocil_sink *sink;	  /* push */
	ocil_descriptor *layers;  /* push: as the sink stores them */
	size_t n_layers;
	ocil_descriptor manifest;
} copy;

static void copy_clear(copy *c)
{
	ocil_ref_clear(&c->in);
	ocil_ref_clear(&c->out);
	ocil_platform_clear(&c->platform);
	ocil_source_free(c->src);
	ocil_layout_sink_free(c->layout);
	ocil_sink_free(c->sink);
	for (size_t i = 0; i < c->n_layers; i++)
		ocil_descriptor_clear(&c->layers[i]);
	free(c->layers);
	ocil_descriptor_clear(&c->manifest);
}

void ocil_copy_result_clear(ocil_copy_result *r)
{
	free(r->published);
	free(r->where);
	memset(r, 0, sizeof(*r));
}

static int open_source(const ocil_copy_opts *o, copy *c, ocil_error **err)
{
	ocil_source_opts so = {.platform = &c->platform,
			       .cancel = o->cancel,
			       .registry = &o->registry,
			       .cache_dir = o->cache_dir};
	return ocil_source_open(&c->in, &so, &c->src, err);
}

/* ---- pull ---- */

/* The manifest as the layout will hold it: the registry's own bytes for an
 * OCI manifest; a Docker one translated to OCI (same blobs), because skopeo
 * and umoci read nothing else from an OCI layout. */
static int pull_manifest(copy *c, ocil_blobstore *bs, bool *converted, ocil_error **err)
{
	const ocil_manifest *m = &c->src->manifest;
	*converted = m->docker;
	if (m->docker)
		return ocil_manifest_write(false, &m->config, m->layers, m->n_layers, bs,
					   &c->manifest, err);
	if (ocil_blobstore_put(bs, c->src->manifest_raw, c->src->manifest_len, c->manifest.digest,
			       err) < 0)
		return -1;
	c->manifest.media_type = ocil_xstrdup(OCIL_MT_OCI_MANIFEST);
	c->manifest.size = (int64_t)c->src->manifest_len;
	return 0;
}

static int pull(const ocil_copy_opts *o, copy *c, ocil_copy_result *out, ocil_error **err)
{
	if (ocil_platform_parse(o->platform ? o->platform : "linux/amd64", &c->platform, err) < 0 ||
	    ocil_ref_parse(o->from, &c->in, err) < 0)
		return -1;
	if (c->in.transport != OCIL_REF_DOCKER)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "%s: pull reads from a registry (HOST/REPO[:TAG]); use it "
				      "directly as --base",
				      o->from);
	if (ocil_ref_parse(o->to, &c->out, err) < 0)
		return ocil_error_wrap(err, "--output");
	if (c->out.transport != OCIL_REF_OCI)
		return ocil_error_set(err, OCIL_E_USAGE, "--output %s: want oci:DIR[:TAG]", o->to);
	if (ocil_layout_sink_open(c->out.path, &c->layout, err) < 0 || open_source(o, c, err) < 0)
		return -1;
	ocil_blobstore *bs = ocil_layout_sink_blobs(c->layout);
	const ocil_manifest *m = &c->src->manifest;
	if (ocil_source_copy_blob(c->src, &m->config, bs, o->cancel, err) < 0)
		return -1;
	for (size_t i = 0; i < m->n_layers; i++)
		if (ocil_source_copy_blob(c->src, &m->layers[i], bs, o->cancel, err) < 0)
			return -1;
	if (pull_manifest(c, bs, &out->converted, err) < 0 || ocil_cancel_check(o->cancel, err) < 0)
		return -1;
	const char *tag = c->out.tag ? c->out.tag : c->in.tag ? c->in.tag : "latest";
	if (ocil_layout_sink_commit(c->layout, tag, &c->manifest, err) < 0)
		return ocil_error_wrap(err, "output %s", o->to);
	out->where = ocil_xasprintf("oci:%s:%s", c->out.path, tag);
	return 0;
}

int ocil_copy_pull(const ocil_copy_opts *o, ocil_copy_result *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	copy c = {0};
	int r = pull(o, &c, out, err);
	if (r == 0) {
		memcpy(out->digest, c.manifest.digest, sizeof(out->digest));
		memcpy(out->source_digest, c.src->manifest_digest, sizeof(out->source_digest));
		out->published = ocil_xstrdup(c.manifest.digest);
	}
	copy_clear(&c);
	return r;
}

/* ---- push ---- */

/* The source's own manifest bytes when nothing needs translating (so the
 * digest stays the one the user built); otherwise a new manifest. */
static int push_manifest(copy *c, bool docker, ocil_blobstore *bs, ocil_error **err)
{
	const ocil_manifest *m = &c->src->manifest;
	bool same = m->docker == docker;
	for (size_t i = 0; same && i < m->n_layers; i++)
		same = strcmp(m->layers[i].media_type, c->layers[i].media_type) == 0 &&
		       strcmp(m->layers[i].digest, c->layers[i].digest) == 0;
	if (!same)
		return ocil_manifest_write(docker, &m->config, c->layers, c->n_layers, bs,
					   &c->manifest, err);
	if (ocil_blobstore_put(bs, c->src->manifest_raw, c->src->manifest_len, c->manifest.digest,
			       err) < 0)
		return -1;
	c->manifest.media_type = ocil_xstrdup(m->media_type);
	c->manifest.size = (int64_t)c->src->manifest_len;
	return 0;
}

/* The sink's commit of what is in its blobs now. */
static int push_commit(const ocil_copy_opts *o, copy *c, bool docker, ocil_copy_result *out,
		       ocil_error **err)
{
	const ocil_manifest *m = &c->src->manifest;
	const json_t *ids = json_object_get(json_object_get(c->src->config, "rootfs"), "diff_ids");
	cleanup_free const char **diff_ids = ocil_xcalloc(c->n_layers + 1, sizeof(char *));
	for (size_t i = 0; i < c->n_layers; i++)
		diff_ids[i] = json_string_value(json_array_get(ids, i));
	ocil_descriptor config = m->config;
	config.media_type = docker ? OCIL_MT_DOCKER_CONFIG : OCIL_MT_OCI_CONFIG;
	ocil_sink_image img = {.manifest = &c->manifest,
			       .config = &config,
			       .layers = c->layers,
			       .n_layers = c->n_layers,
			       .diff_ids = diff_ids};
	if (ocil_sink_commit(c->sink, &img, &out->published, err) < 0)
		return ocil_error_wrap(err, "%s", o->to);
	if (o->digestfile != NULL && ocil_write_file_atomic(o->digestfile, c->manifest.digest,
							    strlen(c->manifest.digest), err) < 0)
		return ocil_error_wrap(err, "--digestfile");
	return 0;
}

static int push(const ocil_copy_opts *o, copy *c, ocil_copy_result *out, ocil_error **err)
{
	if (ocil_platform_parse(o->platform ? o->platform : "linux/amd64", &c->platform, err) < 0)
		return -1;
	if (ocil_ref_parse(o->from, &c->in, err) < 0 || ocil_ref_parse(o->to, &c->out, err) < 0)
		return -1;
	bool same_registry = c->in.transport == OCIL_REF_DOCKER;
	ocil_sink_opts sko = {.registry = &o->registry,
			      .cache_dir = o->cache_dir,
			      .cancel = o->cancel,
			      .mount_registry = same_registry ? c->in.registry : NULL,
			      .mount_repo = same_registry ? c->in.repository : NULL};
	if (ocil_sink_open(&c->out, &sko, &c->sink, err) < 0 || open_source(o, c, err) < 0)
		return -1;
	bool docker = false;
	if (ocil_sink_family(c->sink, o->format, c->src->manifest.docker, &docker, err) < 0)
		return -1;
	ocil_blobstore *bs = ocil_sink_blobs(c->sink);
	const ocil_manifest *m = &c->src->manifest;
	if (ocil_source_import_layers(c->src, bs, docker, o->cancel, &c->layers, err) < 0)
		return -1;
	c->n_layers = m->n_layers;
	if (ocil_source_copy_blob(c->src, &m->config, bs, o->cancel, err) < 0 ||
	    push_manifest(c, docker, bs, err) < 0)
		return -1;
	return push_commit(o, c, docker, out, err);
}

int ocil_copy_push(const ocil_copy_opts *o, ocil_copy_result *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	copy c = {0};
	int r = push(o, &c, out, err);
	if (r == 0) {
		memcpy(out->digest, c.manifest.digest, sizeof(out->digest));
		memcpy(out->source_digest, c.src->manifest_digest, sizeof(out->source_digest));
	}
	copy_clear(&c);
	return r;
}
