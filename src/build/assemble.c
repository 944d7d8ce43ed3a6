/* assemble: the pipeline of build.h, step by step. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "build/internal.h"

void build_say(const build *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ocil_vsay(b->rep->progress, b->rep->data, fmt, ap);
	va_end(ap);
}

void build_warn(const build *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ocil_vsay(b->rep->warning, b->rep->data, fmt, ap);
	va_end(ap);
}

void build_warn_all(const build *b, const ocil_strv *w)
{
	for (size_t i = 0; b->rep->warning != NULL && i < w->n; i++)
		b->rep->warning(b->rep->data, w->v[i]);
}

static void build_clear(build *b)
{
	ocil_ref_clear(&b->base_ref);
	ocil_ref_clear(&b->out_ref);
	ocil_platform_clear(&b->platform);
	ocil_conda_info_clear(&b->conda);
	ocil_condaenv_clear(&b->lockenv);
	ocil_rootfs_free(b->fs);
	ocil_source_free(b->src);
	ocil_sink_free(b->sink);
	for (size_t i = 0; i < b->n_base_layers; i++)
		ocil_descriptor_clear(&b->base_layers[i]);
	free(b->base_layers);
	json_decref(b->entrypoint);
	ocil_strv_clear(&b->env);
	ocil_strv_clear(&b->pythons);
	ocil_strv_clear(&b->conda_warnings);
	free(b->bytecode_note);
	free(b->cache_dir);
	json_decref(b->wheel_tags);
	ocil_sbom_packages_clear(&b->lock_sbom);
	ocil_layer_cache_free(b->cache);
	free(b->index_dir);
	free(b->minor);
	ocil_layer_cache_entry_clear(&b->conda_ce);
	for (size_t i = 0; i < BUILD_MAX_LAYERS; i++) {
		free(b->created_by[i]);
		free(b->what[i]);
	}
	json_decref(b->conda_list);
	ocil_conda_split_free(b->split);
	ocil_conda_report_clear(&b->part_rep);
	ocil_pyc_counts_clear(&b->pyc_sum);
	build_repo_clear(b);
	ocil_descriptor_clear(&b->manifest);
	free(b->published);
}

void ocil_build_result_clear(ocil_build_result *r)
{
	free(r->published);
	free(r->layers);
	free(r->bytecode_note);
	for (size_t i = 0; i < r->n_whats; i++)
		free(r->whats[i]);
	free(r->whats);
	memset(r, 0, sizeof(*r));
}

/* What needs only the options: the timestamps, the platform, the
 * entrypoint, the references, and what they exclude. */
static int begin(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	if (ocil_build_check_opts(o, err) < 0 || ocil_source_date_epoch(&b->epoch, err) < 0 ||
	    ocil_platform_parse(o->platform, &b->platform, err) < 0)
		return -1;
	if (o->entrypoint != NULL && build_parse_entrypoint(o->entrypoint, &b->entrypoint, err) < 0)
		return -1;
	if (ocil_ref_parse(o->base, &b->base_ref, err) < 0)
		return ocil_error_wrap(err, "--base");
	if (ocil_ref_parse(o->output, &b->out_ref, err) < 0)
		return ocil_error_wrap(err, "--output");
	if (o->offline &&
	    (b->base_ref.transport == OCIL_REF_DOCKER || b->out_ref.transport == OCIL_REF_DOCKER))
		return ocil_error_set(
		    err, OCIL_E_USAGE,
		    "--offline: %s %s is a registry; pull the base first "
		    "('ocilambda pull') and write oci:DIR or docker-archive:FILE",
		    b->base_ref.transport == OCIL_REF_DOCKER ? "--base" : "--output",
		    b->base_ref.transport == OCIL_REF_DOCKER ? o->base : o->output);
	if (o->zstd && b->out_ref.transport == OCIL_REF_DOCKER_ARCHIVE)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--compression zstd: a docker-archive holds Docker v2s2 "
				      "images, which have no zstd layers; write oci:DIR instead");
	return 0;
}

/* The layer cache (and the entry indexes beside it); a cache that cannot
 * be had only costs time. */
static void open_cache(build *b)
{
	b->cache_dir =
	    b->o.cache_dir ? ocil_xstrdup(b->o.cache_dir) : ocil_source_default_cache_dir();
	ocil_error *no_cache = NULL;
	if (ocil_layer_cache_open(b->cache_dir, &b->cache, &no_cache) < 0) {
		build_say(b, "not caching the conda layer: %s", no_cache->msg);
		ocil_error_free(no_cache);
	} else {
		b->index_dir = ocil_xasprintf("%s/index", b->cache_dir);
	}
}

static int check_code(const build *b, ocil_error **err)
{
	struct stat st;
	if (stat(b->o.code, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "--code %s", b->o.code);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "--code %s: not a directory", b->o.code);
	return 0;
}

/* The config (PYTHONPATH by default, then the user's --env in order;
 * entrypoint, handler) and the manifest, into the output's blobs. */
static int write_image(build *b, json_t **config, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	if (b->minor != NULL)
		ocil_strv_push(&b->env,
			       ocil_xasprintf("PYTHONPATH=/var/lang/lib/python%s/site-packages:%s",
					      b->minor, o->code_dest));
	for (size_t i = 0; i < o->n_env; i++)
		ocil_strv_push(&b->env, ocil_xstrdup(o->env[i]));
	ocil_plan plan = {
	    .docker = b->docker,
	    .base_config = b->src->config,
	    .base_layers = b->base_layers,
	    .n_base_layers = b->n_base_layers,
	    .layers = b->layers,
	    .n_layers = b->nl,
	    .env = b->env.v,
	    .n_env = b->env.n,
	    .entrypoint = b->entrypoint,
	    .handler = o->handler,
	    .created = b->epoch,
	};
	return ocil_plan_write(&plan, ocil_sink_blobs(b->sink), &b->manifest, config, err);
}

/* What the caller gets: the digest, where it went, the layers. */
static void fill_result(build *b, ocil_build_result *out)
{
	memcpy(out->digest, b->manifest.digest, sizeof(out->digest));
	out->published = steal_pointer(&b->published);
	out->bytecode_note = steal_pointer(&b->bytecode_note);
	out->n_layers = b->n_base_layers + b->nl;
	out->layers = ocil_xcalloc(out->n_layers, sizeof(*out->layers));
	for (size_t i = 0; i < b->n_base_layers; i++) {
		ocil_build_layer *l = &out->layers[i];
		*l = (ocil_build_layer){.made_by = "base",
					.size = b->base_layers[i].size,
					.uncompressed = -1,
					.base = true};
		memcpy(l->digest, b->base_layers[i].digest, sizeof(l->digest));
	}
	out->whats = ocil_xcalloc(b->nl + 1, sizeof(char *));
	for (size_t i = 0; i < b->nl; i++) {
		ocil_build_layer *l = &out->layers[b->n_base_layers + i];
		*l = (ocil_build_layer){.made_by = b->made_by[i],
					.size = (int64_t)b->results[i].size,
					.uncompressed = (int64_t)b->results[i].uncompressed_size,
					.cached = b->results[i].cached,
					.remote = b->remote[i]};
		memcpy(l->digest, b->results[i].digest, sizeof(l->digest));
		if (b->what[i] != NULL) {
			l->what = out->whats[out->n_whats++] = steal_pointer(&b->what[i]);
		}
	}
}

int ocil_build_assemble(const ocil_build_opts *o, ocil_build_result *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	build b = {0};
	build_opts_defaults(o, &b.o);
	b.rep = b.o.report;
	cleanup_json json_t *config = NULL;
	int r = -1;
	if (begin(&b, err) == 0) {
		/* Cheap checks of local inputs before any heavy work; an
		 * unchanged environment was read (and packed) before. */
		open_cache(&b);
		if (build_read_environment(&b, err) == 0 && check_code(&b, err) == 0 &&
		    build_open_base(&b, err) == 0 && build_make_layers(&b, err) == 0 &&
		    write_image(&b, &config, err) == 0 && build_publish(&b, config, err) == 0)
			r = 0;
	}
	if (r == 0)
		fill_result(&b, out);
	build_clear(&b);
	return r;
}
