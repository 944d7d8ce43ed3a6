/* The inputs of a build: the conda environment (a prefix inspected, or a
 * lock loaded with its packages), the output opened, and the base, whose
 * python must be the environment's. */
#include <string.h>

#include "build/internal.h"
#include "lambda/lambda.h"
#include "layers/conda.h"
#include "layers/pylink.h"
#include "layers/wheel.h"

static void on_fetch_notice(void *data, const char *msg)
{
	const build *b = data;
	if (b->rep->notice != NULL)
		b->rep->notice(b->rep->data, msg);
}

static void on_fetch_progress(void *data, const ocil_fetch_progress *p)
{
	const build *b = data;
	b->rep->fetch(b->rep->data, p);
}

/* --conda-lock: the packages are found (downloaded if need be), checked and
 * their info read up front. */
int build_load_lock(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	const char *subdir = ocil_conda_subdir_for(b->platform.os, b->platform.arch);
	cleanup_free char *netrc = ocil_fetch_default_netrc();
	ocil_condaenv_fetch fe = {
	    .cache_dir = b->cache_dir,
	    .mirrors = o->mirrors,
	    .n_mirrors = o->n_mirrors,
	    .fetch = {.tls_verify = o->registry.tls_verify,
		      .ca_file = o->registry.ca_file,
		      .cert_dir = o->registry.cert_dir,
		      .netrc = netrc,
		      .retries = o->registry.retries,
		      .timeout_s = o->registry.timeout_s,
		      .jobs = o->jobs,
		      .offline = o->offline,
		      .cancel = o->cancel,
		      .notice = on_fetch_notice,
		      .progress = b->rep->fetch ? on_fetch_progress : NULL,
		      .data = b},
	};
	if (build_fetch_max_size(&fe.fetch.max_size, err) < 0)
		return -1;
	int r = ocil_condaenv_load(o->lock, o->pkgs_dir, o->wheels_dir, &fe, subdir, &b->lockenv,
				   &b->conda, err);
	if (b->rep->fetch != NULL)
		b->rep->fetch(b->rep->data, NULL);
	if (r < 0)
		return -1;
	if (b->lockenv.n_fetched > 0)
		build_say(b, "downloaded %zu package%s into %s", b->lockenv.n_fetched,
			  b->lockenv.n_fetched == 1 ? "" : "s", b->cache_dir);
	for (size_t i = 0; i < b->lockenv.warnings.n; i++)
		ocil_strv_push(&b->conda_warnings, ocil_xstrdup(b->lockenv.warnings.v[i]));
	b->wheel_tags = build_wheel_tags(&b->lockenv);
	return 0;
}

/* An unchanged lock and package files need not be read again: the cache
 * keeps what loading them found. */
static int read_lock(build *b, ocil_error **err)
{
	const char *subdir = ocil_conda_subdir_for(b->platform.os, b->platform.arch);
	if (subdir == NULL)
		return ocil_error_set(err, OCIL_E_USAGE, "--platform %s: no conda subdir for it",
				      b->o.platform);
	if (build_conda_key(b, subdir, b->conda_key, err) < 0)
		return -1;
	int hit = build_split(b)    ? build_list_cached(b, b->conda_key)
		  : b->conda_key[0] ? build_conda_cached(b, b->conda_key, &b->conda_ce, err)
				    : 0;
	if (hit < 0 || (!hit && build_load_lock(b, err) < 0))
		return -1;
	b->conda_hit = hit > 0;
	build_warn_all(b, &b->conda_warnings);
	return 0;
}

int build_inspect_prefix(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	ocil_conda_inspect_opts io = {.source_prefix = o->source_prefix,
				      .excludes = o->excludes,
				      .n_excludes = o->n_excludes};
	return ocil_conda_inspect(o->prefix, &io, &b->conda, err);
}

/* The key is only for the cache: a prefix it cannot walk (an unreadable
 * directory that --exclude leaves out, say) is packed uncached, and
 * packing says what is wrong, if anything. */
static int read_prefix(build *b, ocil_error **err)
{
	if (build_conda_key(b, NULL, b->conda_key, err) < 0)
		return -1;
	int hit = build_split(b)    ? build_list_cached(b, b->conda_key)
		  : b->conda_key[0] ? build_conda_cached(b, b->conda_key, &b->conda_ce, err)
				    : 0;
	if (hit < 0)
		return -1;
	b->conda_hit = hit > 0;
	if ((!hit && build_inspect_prefix(b, err) < 0) ||
	    ocil_conda_check_platform(&b->conda, b->platform.os, b->platform.arch, err) < 0)
		return -1;
	return 0;
}

int build_read_environment(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	if ((o->lock != NULL ? read_lock(b, err) : read_prefix(b, err)) < 0)
		return -1;
	const char *what = o->lock ? "lock" : "prefix";
	const char *src = o->lock ? o->lock : o->prefix;
	if (b->conda_hit && !build_split(b))
		build_say(b, "conda %s %s unchanged: layer %s from the cache", what, src,
			  b->conda_ce.digest);
	else if (b->conda_hit) /* its layers are looked up later, each by its key */
		build_say(b, "conda %s %s: its record from the cache", what, src);
	build_say(b, "conda %s %s: python %s, %s, awslambdaric %s", what, src,
		  b->conda.python_version,
		  b->conda.subdir ? b->conda.subdir : "no platform recorded",
		  b->conda.has_awslambdaric ? "present"
					    : "not present (the base's runtime client is used)");
	return 0;
}

/* The python the link layer targets: the base's /var/lang/bin/python3.X
 * that matches the prefix, else refuse (or, when allowed, the base's own). */
static int choose_python(build *b, ocil_error **err)
{
	if (ocil_pylink_list_pythons(b->fs, &b->pythons, err) < 0)
		return ocil_error_wrap(err, "%s", b->base_ref.input);
	if (b->pythons.n == 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: base image has no /var/lang/bin/python3.X; is it a "
				      "Lambda Python base image?",
				      b->base_ref.input);
	const char *want = b->conda.python_minor;
	for (size_t i = 0; i < b->pythons.n; i++)
		if (strcmp(b->pythons.v[i], want) == 0) {
			b->minor = ocil_xstrdup(want);
			return 0;
		}
	if (!b->o.allow_mismatch || b->pythons.n != 1)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "python version mismatch: the conda prefix has python %s but "
				      "the base %s has /var/lang/bin/python%s%s",
				      b->conda.python_version, b->base_ref.input, b->pythons.v[0],
				      b->pythons.n == 1 ? " (--allow-python-mismatch builds anyway)"
							: " and others");
	b->minor = ocil_xstrdup(b->pythons.v[0]);
	return 0;
}

static int check_base_python(build *b, ocil_error **err)
{
	if (choose_python(b, err) < 0)
		return -1;
	if (ocil_pylink_check_unpatched(b->fs, b->minor, err) < 0)
		return ocil_error_wrap(err, "%s", b->base_ref.input);
	return 0;
}

/* manylinux wheels need the base's glibc (or a newer one) at run time,
 * where a missing GLIBC_2.NN symbol only shows on import. */
static int check_wheels_glibc(build *b, ocil_error **err)
{
	if (json_array_size(b->wheel_tags) == 0)
		return 0;
	const char *arch =
	    json_string_value(json_object_get(json_array_get(b->wheel_tags, 0), "arch"));
	ocil_glibc glibc;
	cleanup_free char *where = NULL;
	if (ocil_lambda_base_glibc(b->fs, arch, &glibc, &where, err) < 0)
		return ocil_error_wrap(err, "%s", b->base_ref.input);
	if (where == NULL)
		build_say(b, "no libc.so.6 with a version in the base: the wheels' manylinux tags "
			     "are not checked against its glibc");
	else
		build_say(b, "base glibc %u.%u (%s)", glibc.major, glibc.minor, where);
	size_t i;
	const json_t *w;
	json_array_foreach(b->wheel_tags, i, w)
	{
		const char *fn = json_string_value(json_object_get(w, "fn"));
		cleanup_free char *file = b->o.wheels_dir
					      ? ocil_xasprintf("%s/%s", b->o.wheels_dir, fn)
					      : ocil_xstrdup(fn);
		ocil_wheel_tags t = {.file = file,
				     .py = json_string_value(json_object_get(w, "py")),
				     .abi = json_string_value(json_object_get(w, "abi")),
				     .plat = json_string_value(json_object_get(w, "plat")),
				     .arch = json_string_value(json_object_get(w, "arch"))};
		if (ocil_wheel_tags_check_glibc(&t, glibc, err) < 0)
			return -1;
	}
	return 0;
}

/* The base's source, and the output's manifest family. */
static int open_source(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	build_say(b, "reading base %s", o->base);
	ocil_source_opts so = {.platform = &b->platform,
			       .cancel = o->cancel,
			       .registry = &o->registry,
			       .cache_dir = o->cache_dir};
	if (ocil_source_open(&b->base_ref, &so, &b->src, err) < 0) {
		/* Offline is the case a carried-in layout solves. */
		if (*err != NULL && (*err)->code == OCIL_E_REGISTRY &&
		    strstr((*err)->msg, "cannot connect") != NULL)
			ocil_error_append_hint(err,
					       "for air-gapped builds, run 'ocilambda pull' "
					       "where the registry is reachable and use --base "
					       "oci:DIR:TAG");
		return -1;
	}
	/* --no-cache takes nothing from the cache: base blobs are hashed */
	b->src->verified = o->no_cache ? NULL : b->cache;
	if (ocil_sink_family(b->sink, o->format, b->src->manifest.docker, &b->docker, err) < 0)
		return -1;
	if (b->docker && o->zstd)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--compression zstd needs OCI manifests but the base %s is "
				      "Docker v2s2; add --format oci",
				      o->base);
	return 0;
}

int build_open_base(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	/* Pushing next to the base: its blobs can be mounted, not uploaded. */
	bool same_registry = b->base_ref.transport == OCIL_REF_DOCKER;
	if (build_repo_open(b, err) < 0)
		return -1;
	ocil_sink_opts sko = {.registry = &o->registry,
			      .cache_dir = o->cache_dir,
			      .cancel = o->cancel,
			      .mtime = b->epoch,
			      .mount_registry = same_registry ? b->base_ref.registry : NULL,
			      .mount_repo = same_registry ? b->base_ref.repository : NULL,
			      .cache_registry = b->repo ? ocil_cache_repo_registry(b->repo) : NULL,
			      .cache_repo = b->repo ? ocil_cache_repo_repository(b->repo) : NULL};
	if (ocil_sink_open(&b->out_ref, &sko, &b->sink, err) < 0 || open_source(b, err) < 0)
		return -1;
	ocil_blobstore *bs = ocil_sink_blobs(b->sink);
	build_say(b, "importing %zu base layers", b->src->manifest.n_layers);
	if (ocil_source_import_layers(b->src, bs, b->docker, o->cancel, &b->base_layers, err) < 0)
		return -1;
	b->n_base_layers = b->src->manifest.n_layers;
	/* a registry output takes them while the new layers are made */
	ocil_sink_upload(b->sink, b->base_layers, b->n_base_layers);
	cleanup_free const char **paths = ocil_xcalloc(b->n_base_layers + 1, sizeof(char *));
	ocil_strv owned = {0};
	for (size_t i = 0; i < b->n_base_layers; i++) {
		ocil_strv_push(&owned, ocil_blobstore_path(bs, b->base_layers[i].digest));
		paths[i] = owned.v[i];
	}
	int r = ocil_rootfs_open_indexed(paths, b->n_base_layers, o->no_cache ? NULL : b->index_dir,
					 o->cancel, &b->fs, err);
	ocil_strv_clear(&owned);
	if (r < 0 || check_base_python(b, err) < 0 || check_wheels_glibc(b, err) < 0)
		return -1;
	return 0;
}
