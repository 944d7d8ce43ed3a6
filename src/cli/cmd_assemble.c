/* ocilambda assemble: base image + conda prefix + code -> Lambda image. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "base/walk.h"
#include "cli/cmd.h"
#include "compress/gzip.h"
#include "lambda/check.h"
#include "lambda/sbom.h"
#include "layers/bytecode.h"
#include "layers/code.h"
#include "layers/conda.h"
#include "layers/condaenv.h"
#include "layers/pyc_prefix.h"
#include "layers/pylink.h"
#include "oci/layer_cache.h"
#include "oci/layer_writer.h"
#include "oci/plan.h"
#include "oci/rootfs.h"
#include "registry/fetch.h"
#include "registry/registry.h"
#include "transport/sink.h"
#include "transport/source.h"

enum {
	OPT_BASE = 256,
	OPT_PREFIX,
	OPT_CODE,
	OPT_HANDLER,
	OPT_OUTPUT,
	OPT_PREFIX_DEST,
	OPT_CODE_DEST,
	OPT_ENV,
	OPT_ENTRYPOINT,
	OPT_PLATFORM,
	OPT_ALLOW_MISMATCH,
	OPT_SOURCE_PREFIX,
	OPT_QUIET,
	OPT_PROGRESS,
	OPT_FORMAT,
	OPT_DIGESTFILE,
	OPT_EXCLUDE,
	OPT_STRICT,
	OPT_SBOM,
	OPT_NO_CHECK,
	OPT_COMPRESSION,
	OPT_LEVEL,
	OPT_NO_CACHE,
	OPT_CONDA_LOCK,
	OPT_PKGS_DIR,
	OPT_WHEELS_DIR,
	OPT_MIRROR,
	OPT_JOBS,
	OPT_OFFLINE,
	OPT_NO_COMPILE,
	OPT_COMPILE_CODE,
};

static const ocil_option options[] = {
    {"base", OPT_BASE, "REF",
     "base image: [docker://]HOST/REPO[:TAG][@DIGEST], oci:DIR[:TAG] or docker-archive:FILE"},
    {"conda-prefix", OPT_PREFIX, "DIR", "conda environment to pack (a prefix with conda-meta/)"},
    {"conda-lock", OPT_CONDA_LOCK, "FILE",
     "instead of --conda-prefix: an @EXPLICIT lock (conda list --explicit --md5) or a "
     "conda-lock.yml; no conda needed"},
    {"pkgs-dir", OPT_PKGS_DIR, "DIR",
     "with --conda-lock: directory of locked .conda/.tar.bz2 files; those not in it are "
     "downloaded from the lock's URLs into the blob cache (or found there)"},
    {"wheels-dir", OPT_WHEELS_DIR, "DIR",
     "with --conda-lock: wheels to install into site-packages (the lock's pip entries, "
     "downloaded when not in DIR; else every *.whl in DIR)"},
    {"mirror", OPT_MIRROR, "FROM=TO",
     "with --conda-lock: download what the lock has under the URL prefix FROM from TO "
     "instead (repeatable; the longest FROM wins)"},
    {"jobs", OPT_JOBS, "N", "downloads at once (default 4)"},
    {"offline", OPT_OFFLINE, NULL,
     "never touch the network: packages must be in --pkgs-dir or the cache, the base and "
     "the output local"},
    {"no-compile", OPT_NO_COMPILE, NULL,
     "with --conda-lock: no bytecode layer (python then compiles the modules at every cold "
     "start)"},
    {"code", OPT_CODE, "DIR", "handler code directory"},
    {"compile-code", OPT_COMPILE_CODE, NULL,
     "compile the code's .py files with the environment's python (unchecked-hash pycs in "
     "the code layer)"},
    {"handler", OPT_HANDLER, "MODULE.FUNCTION", "Lambda handler, e.g. example.lambda_handler"},
    {"output", OPT_OUTPUT, "REF",
     "where to write: oci:DIR[:TAG] (TAG defaults to latest), docker-archive:FILE[:REPO:TAG] "
     "or [docker://]HOST/REPO[:TAG] (push)"},
    {"format", OPT_FORMAT, "oci|docker",
     "manifest format for docker:// (default: the base's; oci: outputs are always OCI)"},
    {"digestfile", OPT_DIGESTFILE, "FILE", "write the manifest digest to FILE"},
    {"sbom", OPT_SBOM, "FILE", "write an SPDX 2.3 JSON SBOM of the conda packages to FILE"},
    {"no-check", OPT_NO_CHECK, NULL,
     "publish even if the image fails Lambda's rules (see 'ocilambda check')"},
    {"compression", OPT_COMPRESSION, "gzip|zstd",
     "new layers' compression (default gzip; Lambda does not take zstd images)"},
    {"compression-level", OPT_LEVEL, "N",
     "1 (fastest) .. 9 (smallest), as gzip's (default 6; zstd: see README)"},
    {"no-cache", OPT_NO_CACHE, NULL,
     "take nothing from the layer cache: pack, hash and read everything (then refresh it)"},
    {"prefix-dest", OPT_PREFIX_DEST, "PATH", "where the prefix goes in the image (/opt/conda-env)"},
    {"code-dest", OPT_CODE_DEST, "PATH", "where the code goes in the image (/opt/my-code)"},
    {"env", OPT_ENV, "K=V", "set an environment variable (repeatable; replaces the base's)"},
    {"entrypoint", OPT_ENTRYPOINT, "JSON|PATH",
     "entrypoint as a JSON array or one path (default: the base's)"},
    {"platform", OPT_PLATFORM, "OS/ARCH", "platform the base must have (linux/amd64)"},
    {"allow-python-mismatch", OPT_ALLOW_MISMATCH, NULL,
     "build even if the prefix's python minor differs from the base's"},
    {"source-prefix", OPT_SOURCE_PREFIX, "PATH",
     "path the prefix was built at (default: detected from its files)"},
    {"exclude", OPT_EXCLUDE, "GLOB",
     "leave prefix files matching GLOB out (relative to the prefix; repeatable)"},
    {"strict", OPT_STRICT, NULL,
     "fail on unmanaged prefix files that still name the build path, and on package paths "
     "missing from their package (default: warn)"},
    {"quiet", OPT_QUIET, NULL, "print nothing but the manifest digest"},
    {"progress", OPT_PROGRESS, NULL, "print progress on stderr even when it is not a terminal"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	const char *base, *prefix, *code, *handler, *output, *source_prefix;
	const char *prefix_dest, *code_dest, *entrypoint, *platform, *digestfile, *sbom;
	const char *lock, *pkgs_dir, *wheels_dir;
	ocil_format format;
	ocil_strv env, excludes;
	bool allow_mismatch, quiet, progress, strict, no_check, zstd, no_cache;
	bool no_compile, compile_code;
	int level;
	ocil_registry_opts registry;
	ocil_cmd_registry reg;
	ocil_mirror *mirrors;
	size_t n_mirrors;
	int jobs;
	bool offline;
} opts;

static int on_opt(void *data, int key, const char *arg, ocil_error **err)
{
	opts *o = data;
	int handled = ocil_cmd_registry_opt(&o->reg, key, arg, err);
	if (handled != 0)
		return handled < 0 ? -1 : 0;
	switch (key) {
	case OPT_BASE:
		o->base = arg;
		break;
	case OPT_PREFIX:
		o->prefix = arg;
		break;
	case OPT_CONDA_LOCK:
		o->lock = arg;
		break;
	case OPT_PKGS_DIR:
		o->pkgs_dir = arg;
		break;
	case OPT_WHEELS_DIR:
		o->wheels_dir = arg;
		break;
	case OPT_CODE:
		o->code = arg;
		break;
	case OPT_HANDLER:
		o->handler = arg;
		break;
	case OPT_OUTPUT:
		o->output = arg;
		break;
	case OPT_PREFIX_DEST:
		o->prefix_dest = arg;
		break;
	case OPT_CODE_DEST:
		o->code_dest = arg;
		break;
	case OPT_ENTRYPOINT:
		o->entrypoint = arg;
		break;
	case OPT_PLATFORM:
		o->platform = arg;
		break;
	case OPT_SOURCE_PREFIX:
		o->source_prefix = arg;
		break;
	case OPT_ALLOW_MISMATCH:
		o->allow_mismatch = true;
		break;
	case OPT_QUIET:
		o->quiet = true;
		break;
	case OPT_PROGRESS:
		o->progress = true;
		break;
	case OPT_FORMAT:
		return ocil_format_parse(arg, &o->format, err);
	case OPT_EXCLUDE:
		ocil_strv_push(&o->excludes, ocil_xstrdup(arg));
		break;
	case OPT_STRICT:
		o->strict = true;
		break;
	case OPT_SBOM:
		o->sbom = arg;
		break;
	case OPT_NO_CHECK:
		o->no_check = true;
		break;
	case OPT_DIGESTFILE:
		o->digestfile = arg;
		break;
	case OPT_NO_CACHE:
		o->no_cache = true;
		break;
	case OPT_NO_COMPILE:
		o->no_compile = true;
		break;
	case OPT_COMPILE_CODE:
		o->compile_code = true;
		break;
	case OPT_COMPRESSION:
		if (strcmp(arg, "gzip") != 0 && strcmp(arg, "zstd") != 0)
			return ocil_error_set(err, OCIL_E_USAGE,
					      "--compression \"%s\": want gzip or zstd", arg);
		o->zstd = strcmp(arg, "zstd") == 0;
		break;
	case OPT_LEVEL:
		if (strlen(arg) != 1 || arg[0] < '1' || arg[0] > '9')
			return ocil_error_set(err, OCIL_E_USAGE,
					      "--compression-level \"%s\": want 1..9", arg);
		o->level = arg[0] - '0';
		break;
	case OPT_ENV:
		return ocil_cmd_env_opt(&o->env, arg, err);
	case OPT_MIRROR:
		o->mirrors = ocil_xrealloc(o->mirrors, (o->n_mirrors + 1) * sizeof(*o->mirrors));
		if (ocil_mirror_parse(arg, &o->mirrors[o->n_mirrors], err) < 0)
			return -1;
		o->n_mirrors++;
		break;
	case OPT_JOBS: {
		long v = 0;
		if (ocil_cmd_long_opt("jobs", arg, 1, OCIL_FETCH_JOBS_MAX, "1..64", &v, err) < 0)
			return -1;
		o->jobs = (int)v;
		break;
	}
	case OPT_OFFLINE:
		o->offline = true;
		break;
	}
	return 0;
}

static bool identifier(const char *s, size_t n)
{
	if (n == 0 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* module.function, where module may be dotted or a path with '/'. */
static int check_handler(const char *h, ocil_error **err)
{
	const char *dot = strrchr(h, '.');
	bool ok = dot != NULL && dot > h && identifier(dot + 1, strlen(dot + 1));
	for (const char *p = h; ok;) {
		size_t n = strcspn(p, "./");
		if (p + n > dot)
			n = (size_t)(dot - p);
		ok = identifier(p, n);
		if (p + n >= dot)
			break;
		p += n + 1;
	}
	if (!ok)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--handler \"%s\": want MODULE.FUNCTION, e.g. "
				      "example.lambda_handler",
				      h);
	return 0;
}

static int check_dest(const char *opt, const char *p, ocil_error **err)
{
	bool ok = p[0] == '/' && p[1] != '\0' && !ocil_str_has_suffix(p, "/") &&
		  strstr(p, "//") == NULL && strstr(p, "/./") == NULL &&
		  strstr(p, "/../") == NULL && !ocil_str_has_suffix(p, "/..") &&
		  !ocil_str_has_suffix(p, "/.");
	if (!ok)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--%s \"%s\": want a normalized absolute path such as "
				      "/opt/conda-env",
				      opt, p);
	return 0;
}

static int parse_entrypoint(const char *s, json_t **out, ocil_error **err)
{
	if (s[0] != '[') {
		*out = json_pack("[s]", s);
		return 0;
	}
	json_t *j = NULL;
	if (ocil_json_parse(s, strlen(s), "--entrypoint", &j, err) < 0) {
		(*err)->code = OCIL_E_USAGE;
		return -1;
	}
	bool ok = json_is_array(j) && json_array_size(j) > 0;
	size_t i;
	json_t *v;
	json_array_foreach(j, i, v) ok = ok && json_is_string(v);
	if (!ok) {
		json_decref(j);
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--entrypoint: want a non-empty JSON array of strings");
	}
	*out = j;
	return 0;
}

typedef struct {
	bool on;
} progress;

static void say(const progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const progress *p, const char *fmt, ...)
{
	if (!p->on)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("ocilambda: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Everything one build owns, freed in one place. */
typedef struct {
	ocil_ref base_ref, out_ref;
	ocil_platform platform;
	ocil_conda_info conda;
	ocil_condaenv lockenv; /* --conda-lock */
	ocil_sink *sink;
	ocil_source *src;
	ocil_descriptor *base_layers;
	size_t n_base_layers;
	ocil_rootfs *fs;
	json_t *entrypoint;
	ocil_strv env, pythons;
	ocil_strv conda_warnings; /* what packing the prefix (or loading the lock) reported */
	char *bytecode_note;	  /* what became of the bytecode (pyc.h), or NULL */
	char *cache_dir;	  /* the cache's directory (also when it is not usable) */
	char *compiled_dir;	  /* the bytecode layer's pycs, while it is written */
	char *code_bytecode;	  /* --compile-code: the code's pycs, or NULL */
	/* --conda-lock, kept with a cached layer: each wheel's fn and tags
	 * (the glibc check), and the packages --sbom lists */
	json_t *wheel_tags;
	ocil_sbom_packages lock_sbom;
	bool lock_sbom_ready;	 /* lock_sbom filled (from the cache, or made once) */
	ocil_layer_cache *cache; /* NULL: none usable */
	char *index_dir;	 /* layer entry indexes (under the cache), or NULL */
	char *minor;
	ocil_descriptor manifest;
} build;

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
	ocil_descriptor_clear(&b->manifest);
}

/* The python the runtime patch targets: the base's /var/lang/bin/python3.X
 * that matches the prefix, else refuse (or, when allowed, the base's own). */
static int choose_python(build *b, bool allow_mismatch, ocil_error **err)
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
	if (!allow_mismatch || b->pythons.n != 1)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "python version mismatch: the conda prefix has python %s but "
				      "the base %s has /var/lang/bin/python%s%s",
				      b->conda.python_version, b->base_ref.input, b->pythons.v[0],
				      b->pythons.n == 1 ? " (--allow-python-mismatch builds anyway)"
							: " and others");
	b->minor = ocil_xstrdup(b->pythons.v[0]);
	return 0;
}

static int check_base_python(build *b, bool allow_mismatch, ocil_error **err)
{
	if (choose_python(b, allow_mismatch, err) < 0)
		return -1;
	if (ocil_pylink_check_unpatched(b->fs, b->minor, err) < 0)
		return ocil_error_wrap(err, "%s", b->base_ref.input);
	return 0;
}

/* manylinux wheels need the base's glibc (or a newer one) at run time,
 * where a missing GLIBC_2.NN symbol only shows on import. */
static int check_wheels_glibc(const opts *o, build *b, const progress *pr, ocil_error **err)
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
		say(pr, "no libc.so.6 with a version in the base: the wheels' manylinux tags are "
			"not checked against its glibc");
	else
		say(pr, "base glibc %u.%u (%s)", glibc.major, glibc.minor, where);
	size_t i;
	const json_t *w;
	json_array_foreach(b->wheel_tags, i, w)
	{
		const char *fn = json_string_value(json_object_get(w, "fn"));
		cleanup_free char *file =
		    o->wheels_dir ? ocil_xasprintf("%s/%s", o->wheels_dir, fn) : ocil_xstrdup(fn);
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

/* What the glibc check needs of the lock's wheels, kept with the layer. */
static json_t *wheel_tags_of(const ocil_condaenv *env)
{
	json_t *a = json_array();
	for (size_t i = 0; i < env->n_wheels; i++) {
		const ocil_wheel *w = env->wheels[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s}", "fn", w->fn, "py",
						   w->py, "abi", w->abi, "plat", w->plat, "arch",
						   w->arch));
	}
	return a;
}

/* Back from the facts: false unless every wheel has all of them. */
static bool wheel_tags_valid(const json_t *a)
{
	static const char *const keys[] = {"fn", "py", "abi", "plat", "arch"};
	if (!json_is_array(a))
		return false;
	for (size_t i = 0; i < json_array_size(a); i++)
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!json_is_string(json_object_get(json_array_get(a, i), keys[k])))
				return false;
	return true;
}

static void print_warnings(const opts *o, const ocil_strv *w)
{
	for (size_t i = 0; !o->quiet && i < w->n; i++)
		fprintf(stderr, "ocilambda: warning: %s\n", w->v[i]);
}

typedef int (*producer_fn)(build *b, const opts *o, const ocil_cancel *c, ocil_layer_writer *w,
			   ocil_error **err);

static int produce_conda_lock(build *b, const opts *o, const ocil_cancel *c, ocil_layer_writer *w,
			      ocil_error **err)
{
	int64_t epoch = 0;
	if (ocil_source_date_epoch(&epoch, err) < 0)
		return -1;
	cleanup_strv ocil_strv warnings = {0};
	ocil_condaenv_opts eo = {.dest = o->prefix_dest,
				 .created = epoch,
				 .minor = b->conda.python_minor,
				 .cancel = c,
				 .strict = o->strict,
				 .warnings = &warnings};
	int r = ocil_condaenv_write_layer(&b->lockenv, &eo, w, err);
	/* paths packages list and lack: shown now, kept with a cached layer */
	print_warnings(o, &warnings);
	for (size_t i = 0; i < warnings.n; i++)
		ocil_strv_push(&b->conda_warnings, steal_pointer(&warnings.v[i]));
	return r;
}

static int produce_conda(build *b, const opts *o, const ocil_cancel *c, ocil_layer_writer *w,
			 ocil_error **err)
{
	if (o->lock != NULL)
		return produce_conda_lock(b, o, c, w, err);
	ocil_conda_opts co = {.prefix = o->prefix,
			      .dest = o->prefix_dest,
			      .info = &b->conda,
			      .cancel = c,
			      .strict = o->strict};
	ocil_conda_report rep = {0};
	int r = ocil_conda_write_layer(&co, w, &rep, err);
	/* What relocation could not fix is the user's to know, even on failure. */
	b->conda_warnings = rep.warnings;
	rep.warnings = (ocil_strv){0};
	b->bytecode_note = ocil_pyc_counts_summary(&rep.bytecode);
	print_warnings(o, &b->conda_warnings);
	ocil_conda_report_clear(&rep);
	return r;
}

static int produce_code(build *b, const opts *o, const ocil_cancel *c, ocil_layer_writer *w,
			ocil_error **err)
{
	return ocil_code_write_layer_bytecode(o->code, o->code_dest, b->code_bytecode, c, w, err);
}

static int produce_bytecode(build *b, const opts *o, const ocil_cancel *c, ocil_layer_writer *w,
			    ocil_error **err)
{
	return ocil_bytecode_write_layer(b->compiled_dir, w, c, err);
}

static int produce_runtime(build *b, const opts *o, const ocil_cancel *c, ocil_layer_writer *w,
			   ocil_error **err)
{
	return ocil_pylink_write_layer(b->fs, b->minor, o->prefix_dest, w, err);
}

/* res: what the summary table shows of the layer. */
static int write_layer(build *b, const opts *o, const ocil_cancel *c, const ocil_layer_opts *lo,
		       producer_fn fn, ocil_plan_layer *out, ocil_layer_result *res,
		       ocil_error **err)
{
	ocil_layer_writer *w = NULL;
	if (ocil_layer_writer_new(ocil_sink_blobs(b->sink), lo, &w, err) < 0)
		return -1;
	int r = fn(b, o, c, w, err);
	if (r == 0)
		r = ocil_layer_writer_finish(w, res, err);
	ocil_layer_writer_free(w);
	if (r < 0)
		return -1;
	memcpy(out->digest, res->digest, OCIL_DIGEST_STR_SIZE);
	memcpy(out->diff_id, res->diff_id, OCIL_DIGEST_STR_SIZE);
	out->size = (int64_t)res->size;
	return 0;
}

/* On stderr after a build (not with --quiet): each layer, what made it,
 * its sizes, whether a cache gave it; the output, its digest, the time. */
static void print_summary(const opts *o, const build *b, const ocil_layer_result *res,
			  const char *const *made_by, size_t n, double seconds)
{
	size_t total = b->n_base_layers + n;
	cleanup_free ocil_cmd_layer_row *rows = ocil_xcalloc(total, sizeof(*rows));
	for (size_t i = 0; i < b->n_base_layers; i++)
		rows[i] = (ocil_cmd_layer_row){.made_by = "base",
					       .digest = b->base_layers[i].digest,
					       .size = b->base_layers[i].size,
					       .uncompressed = -1,
					       .base = true};
	for (size_t i = 0; i < n; i++)
		rows[b->n_base_layers + i] =
		    (ocil_cmd_layer_row){.made_by = made_by[i],
					 .digest = res[i].digest,
					 .size = (int64_t)res[i].size,
					 .uncompressed = (int64_t)res[i].uncompressed_size,
					 .cached = res[i].cached};
	ocil_cmd_print_summary(stderr, o->output, b->manifest.digest, rows, total, seconds);
	if (b->bytecode_note != NULL)
		fprintf(stderr, "ocilambda: %s\n", b->bytecode_note);
}

/* Exactly one of --conda-prefix and --conda-lock (with --pkgs-dir). */
static int check_conda_source(const opts *o, ocil_error **err)
{
	if (o->prefix != NULL && o->lock != NULL)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--conda-prefix and --conda-lock are mutually exclusive");
	if (o->prefix == NULL && o->lock == NULL)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--conda-prefix or --conda-lock is required");
	if (o->lock == NULL &&
	    (o->pkgs_dir != NULL || o->wheels_dir != NULL || o->n_mirrors > 0 || o->no_compile))
		return ocil_error_set(err, OCIL_E_USAGE, "%s goes with --conda-lock",
				      o->pkgs_dir     ? "--pkgs-dir"
				      : o->wheels_dir ? "--wheels-dir"
				      : o->n_mirrors  ? "--mirror"
						      : "--no-compile");
	const char *prefix_only = o->source_prefix != NULL ? "--source-prefix"
				  : o->excludes.n > 0	   ? "--exclude"
							   : NULL;
	if (o->lock != NULL && prefix_only != NULL)
		return ocil_error_set(err, OCIL_E_USAGE, "%s applies to --conda-prefix only",
				      prefix_only);
	return 0;
}

static int check_options(opts *o, ocil_error **err)
{
	static const struct {
		const char *name;
		size_t off;
	} required[] = {
	    {"--code", offsetof(opts, code)},
	    {"--handler", offsetof(opts, handler)},
	    {"--output", offsetof(opts, output)},
	};
	if (o->base == NULL)
		return ocil_error_set(err, OCIL_E_USAGE, "--base is required");
	if (check_conda_source(o, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (*(const char **)((const char *)o + required[i].off) == NULL)
			return ocil_error_set(err, OCIL_E_USAGE, "%s is required",
					      required[i].name);
	if (check_handler(o->handler, err) < 0 ||
	    check_dest("prefix-dest", o->prefix_dest, err) < 0 ||
	    check_dest("code-dest", o->code_dest, err) < 0)
		return -1;
	if (strcmp(o->prefix_dest, o->code_dest) == 0)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--prefix-dest and --code-dest are the same");
	if (o->zstd && o->format == OCIL_FORMAT_DOCKER)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--compression zstd needs OCI manifests; Docker v2s2 "
				      "(--format docker) has no zstd layers");
	return 0;
}

/* A lock build's packages as --sbom lists them: kept with a cached layer,
 * else made once from the loaded lock (for the cache and for --sbom). */
static int lock_packages(build *b, ocil_error **err)
{
	if (b->lock_sbom_ready)
		return 0;
	if (ocil_condaenv_sbom_packages(&b->lockenv, &b->lock_sbom, err) < 0) {
		ocil_sbom_packages_clear(&b->lock_sbom);
		return -1;
	}
	b->lock_sbom_ready = true;
	return 0;
}

/* The conda packages of the prefix as SPDX, named after the output and
 * tied to the image's digest. */
static int write_sbom(const opts *o, build *b, ocil_error **err)
{
	int64_t epoch = 0;
	if (ocil_source_date_epoch(&epoch, err) < 0)
		return -1;
	cleanup_sbom_packages ocil_sbom_packages pk = {0};
	int r =
	    o->lock == NULL ? ocil_sbom_read_prefix(o->prefix, &pk, err) : lock_packages(b, err);
	ocil_sbom_opts so = {.name = o->output,
			     .image_digest = b->manifest.digest,
			     .prefix = o->prefix_dest,
			     .created = epoch};
	if (r < 0 || ocil_sbom_write(o->sbom, &so, o->lock ? &b->lock_sbom : &pk, err) < 0)
		return ocil_error_wrap(err, "--sbom");
	return 0;
}

/* Hand the finished image to the sink, then say where it went: stdout gets
 * the manifest digest (files) or HOST/REPO@sha256:… (registry). */
/* Lambda's rules on what is about to be published: errors stop the build
 * (exit 4) unless --no-check; warnings (mostly the base's own, e.g. /root
 * 0550 on Amazon Linux) are shown with the progress. A python mismatch the
 * user allowed is not an error here either. */
static int check_output(const opts *o, build *b, const progress *pr, const ocil_cancel *cancel,
			ocil_error **err)
{
	ocil_findings f = {0};
	ocil_check_opts co = {.platform = &b->platform,
			      .cancel = cancel,
			      .index_dir = o->no_cache ? NULL : b->index_dir};
	int r = ocil_check_blobs(ocil_sink_blobs(b->sink), &b->manifest, &co, &f, err);
	cleanup_free char *failed = ocil_xstrdup("");
	for (size_t i = 0; r == 0 && i < f.n; i++) {
		ocil_finding *x = &f.v[i];
		if (x->sev == OCIL_SEV_ERROR && o->allow_mismatch && strcmp(x->rule, "L014") == 0)
			x->sev = OCIL_SEV_WARNING;
		/* zstd was asked for: say once more what it costs, but build */
		bool asked = x->sev == OCIL_SEV_ERROR && o->zstd && strcmp(x->rule, "L002") == 0 &&
			     strstr(x->msg, "zstd-compressed") != NULL;
		if (asked)
			x->sev = OCIL_SEV_WARNING;
		if (x->sev == OCIL_SEV_INFO || o->quiet ||
		    (x->sev == OCIL_SEV_WARNING && !pr->on && !asked))
			continue;
		ocil_cmd_put_finding(stderr, "ocilambda: check: ", x, ocil_cmd_color(2));
		if (x->sev == OCIL_SEV_ERROR && strstr(failed, x->rule) == NULL) {
			char *n = ocil_xasprintf("%s%s%s", failed, failed[0] ? ", " : "", x->rule);
			free(failed);
			failed = n;
		}
	}
	if (r == 0 && ocil_findings_have_errors(&f))
		r = ocil_error_set(err, OCIL_E_CHECK,
				   "the image breaks Lambda's rules (%s); nothing was published "
				   "(--no-check publishes anyway)",
				   failed[0] ? failed : "see 'ocilambda check'");
	ocil_findings_clear(&f);
	return r;
}

static int publish(const opts *o, build *b, const json_t *config, const progress *pr,
		   const ocil_cancel *cancel, ocil_error **err)
{
	if (!o->no_check && check_output(o, b, pr, cancel, err) < 0)
		return -1;
	/* Before publishing: a failed SBOM must not leave a published image. */
	if (o->sbom != NULL && write_sbom(o, b, err) < 0)
		return -1;
	cleanup_free char *raw = NULL;
	size_t len = 0;
	cleanup_free char *path = ocil_blobstore_path(ocil_sink_blobs(b->sink), b->manifest.digest);
	ocil_manifest m = {0};
	if (ocil_read_file(path, OCIL_JSON_MAX, &raw, &len, err) < 0 ||
	    ocil_manifest_parse(raw, len, "new manifest", NULL, &m, err) < 0)
		return -1;
	const json_t *ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	cleanup_free const char **diff_ids = ocil_xcalloc(m.n_layers + 1, sizeof(char *));
	for (size_t i = 0; i < m.n_layers; i++)
		diff_ids[i] = json_string_value(json_array_get(ids, i));
	ocil_sink_image img = {.manifest = &b->manifest,
			       .config = &m.config,
			       .layers = m.layers,
			       .n_layers = m.n_layers,
			       .diff_ids = diff_ids};
	say(pr, "writing %s", o->output);
	cleanup_free char *published = NULL;
	int r = ocil_sink_commit(b->sink, &img, &published, err);
	ocil_manifest_clear(&m);
	if (r < 0)
		return ocil_error_wrap(err, "output %s", o->output);
	if (o->digestfile != NULL && ocil_write_file_atomic(o->digestfile, b->manifest.digest,
							    strlen(b->manifest.digest), err) < 0)
		return ocil_error_wrap(err, "--digestfile");
	printf("%s\n", published);
	return 0;
}

/* The end of every layer key: the options of packing any layer. */
static void key_packing(ocil_hasher *h, const opts *o, int64_t epoch)
{
	ocil_layer_cache_key_int(h, o->zstd);
	ocil_layer_cache_key_int(h, o->level ? o->level : 6);
	ocil_layer_cache_key_int(h, epoch);
}

/* The conda layer's cache key: every option that changes its bytes, then
 * the metadata of every file of the prefix (ocil_walk_fingerprint). */
static int conda_key(const opts *o, int64_t epoch, const ocil_cancel *cancel,
		     char key[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	cleanup_free char *real = realpath(o->prefix, NULL);
	if (real == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s", o->prefix);
	ocil_hasher *h = ocil_layer_cache_key_begin("conda-layer/2");
	ocil_layer_cache_key_str(h, real);
	ocil_layer_cache_key_str(h, o->prefix_dest);
	ocil_layer_cache_key_str(h, o->source_prefix);
	ocil_layer_cache_key_int(h, (int64_t)o->excludes.n);
	for (size_t i = 0; i < o->excludes.n; i++)
		ocil_layer_cache_key_str(h, o->excludes.v[i]);
	ocil_layer_cache_key_int(h, o->strict);
	key_packing(h, o, epoch);
	int r = ocil_walk_fingerprint(real, h, cancel, err);
	ocil_layer_cache_key_finish(h, key);
	return r;
}

/* A layer from the cache: 1 when found (ce filled), 0 when it has to be
 * made (no cache, --no-cache, or not there). */
static int from_cache(const opts *o, build *b, const char *key, ocil_layer_cache_entry *ce,
		      const ocil_cancel *cancel, ocil_error **err)
{
	if (b->cache == NULL || o->no_cache)
		return 0;
	return ocil_layer_cache_get(b->cache, key, ce, cancel, err);
}

/* Put a cached layer into the output. */
static int use_cached(build *b, const ocil_layer_cache_entry *ce, ocil_plan_layer *l,
		      ocil_layer_result *res, ocil_error **err)
{
	if (ocil_layer_cache_export(b->cache, ce, ocil_sink_blobs(b->sink), err) < 0)
		return -1;
	memcpy(l->digest, ce->digest, OCIL_DIGEST_STR_SIZE);
	memcpy(l->diff_id, ce->diff_id, OCIL_DIGEST_STR_SIZE);
	l->size = ce->size;
	memcpy(res->digest, ce->digest, OCIL_DIGEST_STR_SIZE);
	memcpy(res->diff_id, ce->diff_id, OCIL_DIGEST_STR_SIZE);
	res->size = (uint64_t)ce->size;
	res->uncompressed_size = (uint64_t)ce->uncompressed_size;
	res->cached = true;
	return 0;
}

/* Keep a new layer for next time (facts taken over); failing to is only
 * said with the progress. */
static void remember(build *b, const progress *pr, const char *key, const ocil_plan_layer *l,
		     const ocil_layer_result *res, json_t *facts)
{
	ocil_layer_cache_entry ce = {
	    .size = l->size, .uncompressed_size = (int64_t)res->uncompressed_size, .facts = facts};
	memcpy(ce.digest, l->digest, sizeof(ce.digest));
	memcpy(ce.diff_id, l->diff_id, sizeof(ce.diff_id));
	ocil_error *not_kept = NULL;
	if (b->cache != NULL &&
	    ocil_layer_cache_put(b->cache, key, &ce, ocil_sink_blobs(b->sink), &not_kept) < 0) {
		say(pr, "not caching a layer: %s", not_kept->msg);
		ocil_error_free(not_kept);
	}
	ocil_layer_cache_entry_clear(&ce);
}

/* The conda layer from the cache: 1 when found (b->conda and the warnings
 * filled from what the first build found), 0 when it has to be packed. */
static int conda_cached(const opts *o, build *b, const char *key, ocil_layer_cache_entry *ce,
			const ocil_cancel *cancel, ocil_error **err)
{
	int r = from_cache(o, b, key, ce, cancel, err);
	if (r <= 0)
		return r;
	const json_t *warnings = json_object_get(ce->facts, "warnings");
	if (!ocil_conda_info_from_json(json_object_get(ce->facts, "conda"), &b->conda) ||
	    !json_is_array(warnings)) {
		ocil_conda_info_clear(&b->conda);
		ocil_layer_cache_entry_clear(ce);
		return 0;
	}
	if (o->lock != NULL) {
		/* what the rest of the build would have from loading the lock */
		const json_t *tags = json_object_get(ce->facts, "wheels");
		ocil_error *bad = NULL;
		if (!wheel_tags_valid(tags) ||
		    ocil_sbom_packages_from_json(json_object_get(ce->facts, "sbom"), &b->lock_sbom,
						 &bad) < 0) {
			ocil_error_free(bad);
			ocil_sbom_packages_clear(&b->lock_sbom);
			ocil_conda_info_clear(&b->conda);
			ocil_layer_cache_entry_clear(ce);
			return 0;
		}
		b->wheel_tags = json_incref((json_t *)tags);
		b->lock_sbom_ready = true;
	}
	size_t i;
	json_t *w;
	json_array_foreach(warnings, i, w) if (json_is_string(w))
	    ocil_strv_push(&b->conda_warnings, ocil_xstrdup(json_string_value(w)));
	const char *note = ocil_json_opt_string(ce->facts, "bytecode");
	b->bytecode_note = note ? ocil_xstrdup(note) : NULL;
	return 1;
}

/* NULL when they cannot be had (then the layer is not kept). */
static json_t *conda_facts(const opts *o, build *b, const progress *pr)
{
	json_t *warnings = json_array();
	for (size_t i = 0; i < b->conda_warnings.n; i++)
		json_array_append_new(warnings, json_string(b->conda_warnings.v[i]));
	json_t *facts = json_pack("{s:o, s:o}", "conda", ocil_conda_info_to_json(&b->conda),
				  "warnings", warnings);
	if (facts != NULL && b->bytecode_note != NULL)
		json_object_set_new(facts, "bytecode", json_string(b->bytecode_note));
	if (facts == NULL)
		say(pr, "not caching the conda layer: what it holds cannot be recorded");
	if (facts == NULL || o->lock == NULL)
		return facts;
	ocil_error *no_sbom = NULL;
	if (lock_packages(b, &no_sbom) < 0) {
		say(pr, "not caching the conda layer: %s", no_sbom->msg);
		ocil_error_free(no_sbom);
		json_decref(facts);
		return NULL;
	}
	json_object_set(facts, "wheels", b->wheel_tags);
	json_object_set_new(facts, "sbom", ocil_sbom_packages_to_json(&b->lock_sbom));
	return facts;
}

/* The runtime patch depends on the base's layers (the python it keeps),
 * the python minor and where the prefix goes. */
static void runtime_key(const opts *o, const build *b, int64_t epoch,
			char key[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher *h = ocil_layer_cache_key_begin("runtime-layer/1");
	ocil_layer_cache_key_int(h, (int64_t)b->n_base_layers);
	for (size_t i = 0; i < b->n_base_layers; i++)
		ocil_layer_cache_key_str(h, b->base_layers[i].digest);
	ocil_layer_cache_key_str(h, b->minor);
	ocil_layer_cache_key_str(h, o->prefix_dest);
	key_packing(h, o, epoch);
	ocil_layer_cache_key_finish(h, key);
}

static const char *lock_subdir(const opts *o, const build *b, ocil_error **err)
{
	const char *subdir = ocil_conda_subdir_for(b->platform.os, b->platform.arch);
	if (subdir == NULL)
		ocil_error_set(err, OCIL_E_USAGE, "--platform %s: no conda subdir for it",
			       o->platform);
	return subdir;
}

/* The cap on one download: OCIL_FETCH_MAX_SIZE, or the bytes
 * $OCIL_FETCH_MAX_SIZE says. */
static int fetch_max_size(uint64_t *out, ocil_error **err)
{
	const char *v = getenv("OCIL_FETCH_MAX_SIZE");
	*out = OCIL_FETCH_MAX_SIZE;
	if (v == NULL || v[0] == '\0')
		return 0;
	char *end = NULL;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (!isdigit((unsigned char)v[0]) || *end != '\0' || errno != 0 || n == 0)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "OCIL_FETCH_MAX_SIZE \"%s\": want a number of bytes", v);
	*out = n;
	return 0;
}

/* --conda-lock: the packages are found (downloaded if need be), checked and
 * their info read up front. */
static int load_lock(const opts *o, build *b, const char *subdir, const char *cache_dir,
		     const ocil_cancel *cancel, const progress *pr, ocil_error **err)
{
	cleanup_free char *netrc = ocil_fetch_default_netrc();
	ocil_cmd_progress prog = {0};
	ocil_condaenv_fetch fe = {
	    .cache_dir = cache_dir,
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
		      .cancel = cancel,
		      .notice = ocil_cmd_print_notice,
		      .progress = pr->on ? ocil_cmd_fetch_progress : NULL,
		      .data = &prog},
	};
	if (fetch_max_size(&fe.fetch.max_size, err) < 0)
		return -1;
	int r = ocil_condaenv_load(o->lock, o->pkgs_dir, o->wheels_dir, &fe, subdir, &b->lockenv,
				   &b->conda, err);
	ocil_cmd_fetch_progress_end(&prog);
	if (r < 0)
		return -1;
	if (b->lockenv.n_fetched > 0)
		say(pr, "downloaded %zu package%s into %s", b->lockenv.n_fetched,
		    b->lockenv.n_fetched == 1 ? "" : "s", cache_dir);
	for (size_t i = 0; i < b->lockenv.warnings.n; i++)
		ocil_strv_push(&b->conda_warnings, ocil_xstrdup(b->lockenv.warnings.v[i]));
	b->wheel_tags = wheel_tags_of(&b->lockenv);
	return 0;
}

/* A directory the lock's files are read from: its real path and the
 * metadata of everything in it; a symlinked entry is opened through the
 * link, so what it points at counts too. */
static int key_dir(ocil_hasher *h, const char *what, const char *dir, const ocil_cancel *cancel,
		   ocil_error **err)
{
	cleanup_free char *real = realpath(dir, NULL);
	if (real == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s %s", what, dir);
	ocil_layer_cache_key_str(h, real);
	if (ocil_walk_fingerprint(real, h, cancel, err) < 0)
		return -1;
	DIR *d = opendir(real);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s %s", what, dir);
	cleanup_strv ocil_strv links = {0};
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		if (de->d_type == DT_LNK || de->d_type == DT_UNKNOWN)
			ocil_strv_push(&links, ocil_xasprintf("%s/%s", real, de->d_name));
	closedir(d);
	ocil_strv_sort(&links);
	for (size_t i = 0; i < links.n; i++) {
		struct stat st;
		if (lstat(links.v[i], &st) < 0 || !S_ISLNK(st.st_mode))
			continue;
		ocil_layer_cache_key_str(h, links.v[i]);
		if (stat(links.v[i], &st) < 0) {
			ocil_layer_cache_key_int(h, -1); /* dangling: loading says so */
			continue;
		}
		ocil_walk_fold_stat(h, &st);
	}
	return 0;
}

/* The lock's conda layer: the lock (its path, which the history names,
 * and its bytes), the metadata of the package and wheel directories, and
 * every option that changes the layer's bytes. */
static int lock_key(const opts *o, const char *subdir, int64_t epoch, const ocil_cancel *cancel,
		    char key[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	cleanup_free char *real = realpath(o->lock, NULL);
	if (real == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda lock %s", o->lock);
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (ocil_read_file(real, OCIL_CONDALOCK_MAX_SIZE, &text, &len, err) < 0)
		return -1;
	char sum[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(text, len, sum);
	ocil_hasher *h = ocil_layer_cache_key_begin("conda-lock-layer/2");
	ocil_layer_cache_key_str(h, real);
	ocil_layer_cache_key_str(h, sum);
	int r = 0;
	if (o->pkgs_dir == NULL)
		ocil_layer_cache_key_str(h, NULL);
	else
		r = key_dir(h, "packages directory", o->pkgs_dir, cancel, err);
	if (r == 0 && o->wheels_dir == NULL)
		ocil_layer_cache_key_str(h, NULL);
	else if (r == 0)
		r = key_dir(h, "wheels directory", o->wheels_dir, cancel, err);
	ocil_layer_cache_key_str(h, subdir);
	ocil_layer_cache_key_str(h, o->prefix_dest);
	ocil_layer_cache_key_int(h, o->strict);
	key_packing(h, o, epoch);
	ocil_layer_cache_key_finish(h, key);
	return r;
}

/* The conda layer's key (conda_key, lock_key); one that cannot be had
 * leaves the layer uncached (packing says what is wrong, if anything):
 * key[0] is then '\0'. -1 only on cancellation. */
static int cache_key(const opts *o, const build *b, const char *subdir, int64_t epoch,
		     const ocil_cancel *cancel, const progress *pr, char key[OCIL_DIGEST_STR_SIZE],
		     ocil_error **err)
{
	key[0] = '\0';
	if (b->cache == NULL)
		return 0;
	ocil_error *no_key = NULL;
	int r = o->lock != NULL ? lock_key(o, subdir, epoch, cancel, key, &no_key)
				: conda_key(o, epoch, cancel, key, &no_key);
	if (r == 0)
		return 0;
	key[0] = '\0';
	if (no_key->code == OCIL_E_CANCELLED) {
		*err = no_key;
		return -1;
	}
	say(pr, "not caching the conda layer: %s", no_key->msg);
	ocil_error_free(no_key);
	return 0;
}

/* ---- bytecode (bytecode.h) ---- */

/* The tree the environment's python runs on: the base's layers, plus for
 * a lock the conda layer (a prefix is bound from the host). Kept in the
 * cache when keep (it serves every --compile-code rebuild), else made in
 * a temporary directory. */
static int python_tree(const opts *o, build *b, const ocil_plan_layer *conda, bool keep,
		       const ocil_cancel *cancel, ocil_bytecode_tree *t, ocil_error **err)
{
	ocil_blobstore *bs = ocil_sink_blobs(b->sink);
	size_t n = b->n_base_layers + (o->lock != NULL);
	cleanup_free const char **paths = ocil_xcalloc(n + 1, sizeof(char *));
	cleanup_free const char **digests = ocil_xcalloc(n + 1, sizeof(char *));
	ocil_strv owned = {0};
	for (size_t i = 0; i < n; i++) {
		digests[i] = i < b->n_base_layers ? b->base_layers[i].digest : conda->digest;
		ocil_strv_push(&owned, ocil_blobstore_path(bs, digests[i]));
		paths[i] = owned.v[i];
	}
	/* mount points of the binds (the prefix and the code) */
	const char *mounts[] = {o->code_dest, o->lock ? NULL : o->prefix_dest, NULL};
	const char *dir = keep && b->cache != NULL && !o->no_cache ? b->cache_dir : NULL;
	int r = ocil_bytecode_tree_make(dir, paths, digests, n, mounts, cancel, t, err);
	ocil_strv_clear(&owned);
	if (r < 0)
		return ocil_error_wrap(err, "unpacking the image for its python");
	return 0;
}

/* The python of the environment, as the image has it. */
static char *env_python(const opts *o, const build *b)
{
	return ocil_xasprintf("%s/bin/python%s", o->prefix_dest, b->conda.python_minor);
}

/* The bytecode layer's key: the conda layer it compiles, the base it runs
 * on, where, and the packing options. */
static void bytecode_key(const opts *o, const build *b, const ocil_plan_layer *conda, int64_t epoch,
			 char key[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher *h = ocil_layer_cache_key_begin("bytecode-layer/1");
	ocil_layer_cache_key_str(h, ocil_bytecode_driver());
	ocil_layer_cache_key_str(h, conda->diff_id);
	ocil_layer_cache_key_int(h, (int64_t)b->n_base_layers);
	for (size_t i = 0; i < b->n_base_layers; i++)
		ocil_layer_cache_key_str(h, b->base_layers[i].digest);
	ocil_layer_cache_key_str(h, o->prefix_dest);
	ocil_layer_cache_key_str(h, b->conda.python_minor);
	key_packing(h, o, epoch);
	ocil_layer_cache_key_finish(h, key);
}

static char *compiled_note(const opts *o, const build *b, json_int_t compiled, json_int_t failed,
			   const char *first_failed)
{
	cleanup_free char *py = env_python(o, b);
	cleanup_free char *bad =
	    failed > 0 ? ocil_xasprintf("; %lld did not compile (e.g. %s), as with conda",
					(long long)failed, first_failed ? first_failed : "?")
		       : ocil_xstrdup("");
	return ocil_xasprintf("bytecode: %lld modules compiled by %s into their own layer%s",
			      (long long)compiled, py, bad);
}

/* What python compiles at every cold start when there is no bytecode
 * layer, and why. */
static void uncompiled(const opts *o, build *b, size_t n, const char *why)
{
	free(b->bytecode_note);
	b->bytecode_note = ocil_xasprintf(
	    "bytecode: %zu modules of the environment have no valid .pyc: python compiles them "
	    "at every cold start (%s)",
	    n, why);
	if (!o->no_compile && !o->quiet)
		fprintf(stderr,
			"ocilambda: warning: not compiling the environment's bytecode: %s; "
			"%zu modules will be compiled at every cold start (--no-compile "
			"builds so on purpose)\n",
			why, n);
}

/* A lock build's bytecode layer: 1 when it is made (or cached) into l,
 * 0 when there is none (nothing to compile, --no-compile, or it cannot be
 * compiled here: said). */
static int bytecode_layer(const opts *o, build *b, const ocil_plan_layer *conda,
			  const ocil_layer_opts *lo, const progress *pr, const ocil_cancel *cancel,
			  ocil_plan_layer *l, ocil_layer_result *res, ocil_error **err)
{
	if (o->lock == NULL)
		return 0;
	char key[OCIL_DIGEST_STR_SIZE];
	bytecode_key(o, b, conda, lo->mtime, key);
	__attribute__((cleanup(ocil_layer_cache_entry_clear))) ocil_layer_cache_entry ce = {0};
	int hit = o->no_compile ? 0 : from_cache(o, b, key, &ce, cancel, err);
	if (hit < 0)
		return -1;
	json_int_t done = 0, failed = 0;
	const char *first = NULL;
	if (hit > 0 && json_unpack(ce.facts, "{s:I, s:I, s?s}", "compiled", &done, "failed",
				   &failed, "first_failed", &first) == 0) {
		say(pr, "bytecode layer %s from the cache", ce.digest);
		if (use_cached(b, &ce, l, res, err) < 0)
			return -1;
		free(b->bytecode_note);
		b->bytecode_note = compiled_note(o, b, done, failed, first);
		return 1;
	}
	/* what the conda layer lacks, from its sources and pycs */
	ocil_blobstore *bs = ocil_sink_blobs(b->sink);
	cleanup_free char *blob = ocil_blobstore_path(bs, conda->digest);
	const char *facts_dir = o->no_cache ? NULL : b->index_dir;
	ocil_pyc_facts f = {0};
	if (ocil_pyc_facts_of_layer(blob, "conda layer", facts_dir, cancel, &f, err) < 0)
		return -1;
	cleanup_strv ocil_strv sources = {0};
	ocil_bytecode_select(&f, o->prefix_dest, b->conda.python_minor, &sources);
	ocil_pyc_facts_clear(&f);
	if (sources.n == 0)
		return 0;
	if (o->no_compile) {
		uncompiled(o, b, sources.n, "--no-compile");
		return 0;
	}
	cleanup_free char *why = NULL;
	if (!ocil_bytecode_runs_here(b->platform.arch, &why)) {
		uncompiled(o, b, sources.n, why);
		return 0;
	}
	say(pr, "compiling %zu modules with %s/bin/python%s", sources.n, o->prefix_dest,
	    b->conda.python_minor);
	__attribute__((cleanup(ocil_bytecode_tree_clear))) ocil_bytecode_tree tree = {0};
	__attribute__((cleanup(ocil_tmpdir_remove))) ocil_tmpdir out = {0};
	cleanup_free char *python = env_python(o, b);
	__attribute__((cleanup(ocil_bytecode_result_clear))) ocil_bytecode_result br = {0};
	ocil_error *no = NULL;
	if (python_tree(o, b, conda, o->compile_code, cancel, &tree, &no) == 0 &&
	    ocil_tmpdir_create(NULL, "bytecode", &out, &no) == 0) {
		ocil_bytecode_opts bo = {.tree = tree.path, .python = python, .cancel = cancel};
		ocil_bytecode_compile(&bo, &sources, out.path, &br, &no);
	}
	if (no != NULL) {
		if (no->code == OCIL_E_CANCELLED) {
			*err = no;
			return -1;
		}
		uncompiled(o, b, sources.n, no->msg);
		ocil_error_free(no);
		return 0;
	}
	b->compiled_dir = out.path;
	int r = write_layer(b, o, cancel, lo, produce_bytecode, l, res, err);
	b->compiled_dir = NULL;
	if (r < 0)
		return ocil_error_wrap(err, "bytecode layer");
	free(b->bytecode_note);
	b->bytecode_note =
	    compiled_note(o, b, (json_int_t)br.compiled, (json_int_t)br.failed, br.first_failed);
	json_t *facts = json_pack("{s:I, s:I}", "compiled", (json_int_t)br.compiled, "failed",
				  (json_int_t)br.failed);
	if (br.first_failed != NULL)
		json_object_set_new(facts, "first_failed", json_string(br.first_failed));
	remember(b, pr, key, l, res, facts);
	return 1;
}

/* --compile-code: the code's sources compiled into b->code_bytecode (a
 * temporary directory out), with the prefix (or the lock's conda layer)
 * and the code where the image has them. */
static int compile_code(const opts *o, build *b, const ocil_plan_layer *conda, const progress *pr,
			const ocil_cancel *cancel, ocil_tmpdir *out, ocil_error **err)
{
	cleanup_strv ocil_strv sources = {0};
	if (ocil_code_sources(o->code, o->code_dest, &sources, err) < 0)
		return ocil_error_wrap(err, "--compile-code");
	if (sources.n == 0)
		return 0;
	cleanup_free char *why = NULL;
	if (!ocil_bytecode_runs_here(b->platform.arch, &why))
		return ocil_error_set(err, OCIL_E_IO, "--compile-code: %s", why);
	cleanup_free char *code = realpath(o->code, NULL);
	cleanup_free char *prefix = o->lock ? NULL : realpath(o->prefix, NULL);
	if (code == NULL || (o->lock == NULL && prefix == NULL))
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "--compile-code: %s",
					    code == NULL ? o->code : o->prefix);
	say(pr, "compiling %zu modules of the code with %s/bin/python%s", sources.n, o->prefix_dest,
	    b->conda.python_minor);
	__attribute__((cleanup(ocil_bytecode_tree_clear))) ocil_bytecode_tree tree = {0};
	cleanup_free char *python = env_python(o, b);
	const char *binds[] = {code, o->code_dest, prefix, o->prefix_dest, NULL};
	if (prefix == NULL)
		binds[2] = NULL;
	__attribute__((cleanup(ocil_bytecode_result_clear))) ocil_bytecode_result br = {0};
	if (python_tree(o, b, conda, true, cancel, &tree, err) < 0 ||
	    ocil_tmpdir_create(NULL, "code-bytecode", out, err) < 0)
		return ocil_error_wrap(err, "--compile-code");
	ocil_bytecode_opts bo = {
	    .tree = tree.path, .ro_binds = binds, .python = python, .cancel = cancel};
	if (ocil_bytecode_compile(&bo, &sources, out->path, &br, err) < 0)
		return ocil_error_wrap(err, "--compile-code");
	if (br.failed > 0 && !o->quiet)
		fprintf(
		    stderr,
		    "ocilambda: warning: --compile-code: %zu of %zu files did not compile (e.g. "
		    "%s): left without bytecode\n",
		    br.failed, sources.n, br.first_failed ? br.first_failed : "?");
	b->code_bytecode = out->path;
	return 0;
}

static int assemble(const opts *o, build *b, const ocil_cancel *cancel, ocil_error **err)
{
	double t0 = ocil_cmd_now();
	progress pr = {.on = ocil_cmd_progress_on(o->quiet, o->progress)};
	int64_t epoch = 0;
	if (ocil_source_date_epoch(&epoch, err) < 0 ||
	    ocil_platform_parse(o->platform, &b->platform, err) < 0)
		return -1;
	if (o->entrypoint != NULL && parse_entrypoint(o->entrypoint, &b->entrypoint, err) < 0)
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

	/* Cheap checks of local inputs before any heavy work; an unchanged
	 * prefix was inspected (and packed) before. */
	cleanup_free char *cache_dir =
	    o->reg.cache_dir ? ocil_xstrdup(o->reg.cache_dir) : ocil_source_default_cache_dir();
	b->cache_dir = ocil_xstrdup(cache_dir);
	ocil_error *no_cache = NULL;
	if (ocil_layer_cache_open(cache_dir, &b->cache, &no_cache) < 0) {
		say(&pr, "not caching the conda layer: %s", no_cache->msg);
		ocil_error_free(no_cache);
	} else {
		b->index_dir = ocil_xasprintf("%s/index", cache_dir);
	}
	char key[OCIL_DIGEST_STR_SIZE] = "";
	__attribute__((cleanup(ocil_layer_cache_entry_clear))) ocil_layer_cache_entry ce = {0};
	int hit = 0;
	if (o->lock != NULL) {
		/* An unchanged lock and package files need not be read again:
		 * the cache keeps what loading them found. */
		const char *subdir = lock_subdir(o, b, err);
		if (subdir == NULL || cache_key(o, b, subdir, epoch, cancel, &pr, key, err) < 0)
			return -1;
		hit = key[0] != '\0' ? conda_cached(o, b, key, &ce, cancel, err) : 0;
		if (hit < 0 || (!hit && load_lock(o, b, subdir, cache_dir, cancel, &pr, err) < 0))
			return -1;
		print_warnings(o, &b->conda_warnings);
	} else {
		/* The key is only for the cache: a prefix it cannot walk (an
		 * unreadable directory that --exclude leaves out, say) is
		 * packed uncached, and packing says what is wrong, if anything. */
		if (cache_key(o, b, NULL, epoch, cancel, &pr, key, err) < 0)
			return -1;
		hit = key[0] != '\0' ? conda_cached(o, b, key, &ce, cancel, err) : 0;
		if (hit < 0)
			return -1;
		ocil_conda_inspect_opts io = {.source_prefix = o->source_prefix,
					      .excludes = (const char *const *)o->excludes.v,
					      .n_excludes = o->excludes.n};
		if ((!hit && ocil_conda_inspect(o->prefix, &io, &b->conda, err) < 0) ||
		    ocil_conda_check_platform(&b->conda, b->platform.os, b->platform.arch, err) < 0)
			return -1;
	}
	const char *conda_src = o->lock != NULL ? o->lock : o->prefix;
	if (hit)
		say(&pr, "conda %s %s unchanged: layer %s from the cache",
		    o->lock ? "lock" : "prefix", conda_src, ce.digest);
	say(&pr, "conda %s %s: python %s, %s, awslambdaric %s", o->lock ? "lock" : "prefix",
	    conda_src, b->conda.python_version,
	    b->conda.subdir ? b->conda.subdir : "no platform recorded",
	    b->conda.has_awslambdaric ? "present"
				      : "not present (the base's runtime client is used)");
	struct stat st;
	if (stat(o->code, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "--code %s", o->code);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "--code %s: not a directory", o->code);
	ocil_registry_opts ro = o->registry;
	ocil_cmd_progress prog = {0};
	ocil_cmd_registry_callbacks(&ro, pr.on ? &prog : NULL);
	/* Pushing next to the base: its blobs can be mounted, not uploaded. */
	bool same_registry = b->base_ref.transport == OCIL_REF_DOCKER;
	ocil_sink_opts sko = {.registry = &ro,
			      .cache_dir = o->reg.cache_dir,
			      .cancel = cancel,
			      .mtime = epoch,
			      .mount_registry = same_registry ? b->base_ref.registry : NULL,
			      .mount_repo = same_registry ? b->base_ref.repository : NULL};
	if (ocil_sink_open(&b->out_ref, &sko, &b->sink, err) < 0)
		return -1;

	say(&pr, "reading base %s", o->base);
	ocil_source_opts so = {.platform = &b->platform,
			       .cancel = cancel,
			       .registry = &ro,
			       .cache_dir = o->reg.cache_dir};
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
	bool docker = false;
	if (ocil_sink_family(b->sink, o->format, b->src->manifest.docker, &docker, err) < 0)
		return -1;
	if (docker && o->zstd)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--compression zstd needs OCI manifests but the base %s is "
				      "Docker v2s2; add --format oci",
				      o->base);
	ocil_blobstore *bs = ocil_sink_blobs(b->sink);
	say(&pr, "importing %zu base layers", b->src->manifest.n_layers);
	if (ocil_source_import_layers(b->src, bs, docker, cancel, &b->base_layers, err) < 0)
		return -1;
	b->n_base_layers = b->src->manifest.n_layers;
	cleanup_free const char **paths = ocil_xcalloc(b->n_base_layers + 1, sizeof(char *));
	ocil_strv owned = {0};
	for (size_t i = 0; i < b->n_base_layers; i++) {
		ocil_strv_push(&owned, ocil_blobstore_path(bs, b->base_layers[i].digest));
		paths[i] = owned.v[i];
	}
	int r = ocil_rootfs_open_indexed(paths, b->n_base_layers, o->no_cache ? NULL : b->index_dir,
					 cancel, &b->fs, err);
	ocil_strv_clear(&owned);
	if (r < 0 || check_base_python(b, o->allow_mismatch, err) < 0 ||
	    check_wheels_glibc(o, b, &pr, err) < 0)
		return -1;

	ocil_layer_opts lo = {.mtime = epoch,
			      .compression_level = o->level,
			      .zstd = o->zstd,
			      .index_dir = b->index_dir};
	ocil_plan_layer layers[4] = {0};
	ocil_layer_result results[4] = {0};
	const char *made_by[4] = {"conda"};
	size_t nl = 1;
	cleanup_free char *conda_by =
	    ocil_xasprintf("ocilambda: conda prefix at %s", o->prefix_dest);
	cleanup_free char *bytecode_by =
	    ocil_xasprintf("ocilambda: bytecode compiled by %s/bin/python%s (unchecked-hash pycs)",
			   o->prefix_dest, b->conda.python_minor);
	cleanup_free char *code_by = ocil_xasprintf("ocilambda: handler code at %s", o->code_dest);
	cleanup_free char *rt_by =
	    ocil_xasprintf("ocilambda: /var/lang/bin/python%s -> %s/bin/python (original kept as "
			   "python%s-clean)",
			   b->minor, o->prefix_dest, b->minor);
	for (size_t i = 0; i < 4; i++)
		layers[i].zstd = o->zstd;
	layers[0].created_by = conda_by;
	if (hit) {
		/* (a lock's were shown with what it holds, as on a miss) */
		if (o->lock == NULL)
			print_warnings(o, &b->conda_warnings);
		if (use_cached(b, &ce, &layers[0], &results[0], err) < 0)
			return -1;
	} else {
		say(&pr, "packing conda %s %s (python %s) at %s", o->lock ? "lock" : "prefix",
		    conda_src, b->conda.python_version, o->prefix_dest);
		if (write_layer(b, o, cancel, &lo, produce_conda, &layers[0], &results[0], err) < 0)
			return ocil_error_wrap(err, "conda %s %s", o->lock ? "lock" : "prefix",
					       conda_src);
		json_t *facts = key[0] != '\0' ? conda_facts(o, b, &pr) : NULL;
		if (facts != NULL)
			remember(b, &pr, key, &layers[0], &results[0], facts);
	}
	int bc = bytecode_layer(o, b, &layers[0], &lo, &pr, cancel, &layers[nl], &results[nl], err);
	if (bc < 0)
		return -1;
	if (bc > 0) {
		layers[nl].created_by = bytecode_by;
		made_by[nl++] = "bytecode";
	}
	__attribute__((cleanup(ocil_tmpdir_remove))) ocil_tmpdir code_pycs = {0};
	if (o->compile_code && compile_code(o, b, &layers[0], &pr, cancel, &code_pycs, err) < 0)
		return -1;
	say(&pr, "packing code %s at %s", o->code, o->code_dest);
	layers[nl].created_by = code_by;
	made_by[nl] = "code";
	if (write_layer(b, o, cancel, &lo, produce_code, &layers[nl], &results[nl], err) < 0)
		return ocil_error_wrap(err, "code %s", o->code);
	nl++;
	say(&pr, "pointing /var/lang/bin/python%s at %s/bin/python", b->minor, o->prefix_dest);
	char rt_key[OCIL_DIGEST_STR_SIZE];
	runtime_key(o, b, epoch, rt_key);
	__attribute__((cleanup(ocil_layer_cache_entry_clear))) ocil_layer_cache_entry rt = {0};
	layers[nl].created_by = rt_by;
	made_by[nl] = "runtime";
	int rt_hit = from_cache(o, b, rt_key, &rt, cancel, err);
	if (rt_hit < 0 || (rt_hit > 0 && use_cached(b, &rt, &layers[nl], &results[nl], err) < 0))
		return -1;
	if (rt_hit) {
		say(&pr, "runtime patch %s from the cache", rt.digest);
	} else {
		if (write_layer(b, o, cancel, &lo, produce_runtime, &layers[nl], &results[nl],
				err) < 0)
			return ocil_error_wrap(err, "runtime patch");
		remember(b, &pr, rt_key, &layers[nl], &results[nl], NULL);
	}
	nl++;

	/* PYTHONPATH by default, then the user's --env in order. */
	if (b->minor != NULL)
		ocil_strv_push(&b->env,
			       ocil_xasprintf("PYTHONPATH=/var/lang/lib/python%s/site-packages:%s",
					      b->minor, o->code_dest));
	for (size_t i = 0; i < o->env.n; i++)
		ocil_strv_push(&b->env, ocil_xstrdup(o->env.v[i]));
	ocil_plan plan = {
	    .docker = docker,
	    .base_config = b->src->config,
	    .base_layers = b->base_layers,
	    .n_base_layers = b->n_base_layers,
	    .layers = layers,
	    .n_layers = nl,
	    .env = b->env.v,
	    .n_env = b->env.n,
	    .entrypoint = b->entrypoint,
	    .handler = o->handler,
	    .created = epoch,
	};
	cleanup_json json_t *config = NULL;
	if (ocil_plan_write(&plan, bs, &b->manifest, &config, err) < 0)
		return -1;
	if (publish(o, b, config, &pr, cancel, err) < 0)
		return -1;
	if (!o->quiet)
		print_summary(o, b, results, made_by, nl, ocil_cmd_now() - t0);
	return 0;
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	opts o = {
	    .prefix_dest = "/opt/conda-env",
	    .code_dest = "/opt/my-code",
	    .platform = "linux/amd64",
	    .registry = OCIL_REGISTRY_OPTS_DEFAULT,
	};
	o.reg.registry = &o.registry;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &o, &first, err);
	if (r == 0 && first < argc)
		r = ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'", argv[first]);
	if (r == 0)
		r = check_options(&o, err);
	if (r == 0) {
		build b = {0};
		ocil_cancel cancel = {.flag = ctx->cancel_flag};
		r = assemble(&o, &b, &cancel, err);
		build_clear(&b);
	}
	ocil_strv_clear(&o.env);
	ocil_strv_clear(&o.excludes);
	for (size_t i = 0; i < o.n_mirrors; i++)
		ocil_mirror_clear(&o.mirrors[i]);
	free(o.mirrors);
	return r < 0 ? -1 : 0;
}

const ocil_command ocil_cmd_assemble = {
    .name = "assemble",
    .usage = "--base REF (--conda-prefix DIR | --conda-lock FILE [--pkgs-dir DIR]) --code DIR "
	     "--handler MODULE.FUNCTION --output REF [options]",
    .summary = "build a Lambda container image from a base image, a conda prefix and code",
    .details =
	"Writes the base layers unchanged plus three new layers: the conda prefix\n"
	"(relocated to --prefix-dest), the code, and a runtime patch that keeps the\n"
	"base python as /var/lang/bin/python3.X-clean and points python3.X at the\n"
	"prefix's bin/python. The config gets PYTHONPATH, Entrypoint and Cmd [handler].\n"
	"Prints the manifest digest on stdout. Output is built under a temporary name\n"
	"and renamed into place; an existing layout keeps its other tags.\n"
	"SOURCE_DATE_EPOCH sets the timestamps (default 0): same inputs, same digests.\n"
	"New layers are gzip (one member, what Lambda takes); --compression zstd\n"
	"writes OCI zstd layers instead, which Lambda does not deploy: check's L002\n"
	"finding is then shown as a warning.\n"
	"An unchanged conda prefix (every file's metadata, every option) and runtime\n"
	"patch come from the layer cache under --cache-dir; --no-cache takes nothing from it.\n"
	"With --conda-lock the conda layer is built from the locked package files in\n"
	"--pkgs-dir (each checked against the lock's md5/sha256), without conda; it\n"
	"is cached too (the lock's bytes, the metadata of --pkgs-dir and --wheels-dir).\n"
	"Packages not in --pkgs-dir are downloaded from the lock's URLs (--mirror\n"
	"rewrites them; --jobs at once; https verified as for registries; credentials\n"
	"from ~/.netrc or $NETRC) into the blob cache, checked before they are kept,\n"
	"and taken from there next time; --offline never downloads.\n"
	"Python bytecode stays valid: a prefix's .py files get the mtime their valid\n"
	"__pycache__ files record; a lock's modules without valid bytecode are compiled\n"
	"by the environment's python (under bubblewrap, unchecked-hash pycs) into a\n"
	"bytecode layer after the conda layer, unless --no-compile or the image's\n"
	"programs cannot run here (then the build says what every cold start will\n"
	"compile); --compile-code compiles the code the same way.\n"
	"\nExample:\n"
	"  ocilambda assemble --base oci:./base:3.8 --conda-prefix ./env --code ./src \\\n"
	"      --handler example.lambda_handler --output oci:./out:latest\n"
	"  ocilambda assemble --base oci:./base:3.8 --conda-lock explicit.txt \\\n"
	"      --pkgs-dir ./pkgs --code ./src --handler example.lambda_handler \\\n"
	"      --output oci:./out:latest\n"
	"  ocilambda assemble --base oci:./base:3.8 --conda-lock conda-lock.yml \\\n"
	"      --mirror https://conda.anaconda.org/conda-forge=https://mirror.example/cf \\\n"
	"      --code ./src --handler example.lambda_handler --output oci:./out:latest\n",
    .options = options,
    .exits = OCIL_X_IMAGE | OCIL_X_CHECK,
    .run = run,
};
