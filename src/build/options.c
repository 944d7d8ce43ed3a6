/* assemble's options: defaults and the checks that need nothing but the
 * options themselves. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "build/internal.h"

void build_opts_defaults(const ocil_build_opts *o, ocil_build_opts *out)
{
	static const ocil_build_report none = {0};
	*out = *o;
	if (out->prefix_dest == NULL)
		out->prefix_dest = "/opt/conda-env";
	if (out->code_dest == NULL)
		out->code_dest = "/opt/my-code";
	if (out->platform == NULL)
		out->platform = "linux/amd64";
	if (out->report == NULL)
		out->report = &none;
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

/* Exactly one of --conda-prefix and --conda-lock (with --pkgs-dir). */
static int check_conda_source(const ocil_build_opts *o, ocil_error **err)
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
				  : o->n_excludes > 0	   ? "--exclude"
							   : NULL;
	if (o->lock != NULL && prefix_only != NULL)
		return ocil_error_set(err, OCIL_E_USAGE, "%s applies to --conda-prefix only",
				      prefix_only);
	return 0;
}

/* --cache-repo REGISTRY/REPO and its mode; a registry, so not offline. */
static int check_cache_repo(const ocil_build_opts *o, ocil_error **err)
{
	const char *mode = o->cache_repo_mode;
	if (mode != NULL && strcmp(mode, "read") != 0 && strcmp(mode, "readwrite") != 0)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--cache-repo-mode \"%s\": want read or readwrite", mode);
	if (o->cache_repo == NULL && mode != NULL)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--cache-repo-mode goes with --cache-repo");
	if (o->cache_repo == NULL)
		return 0;
	if (o->offline)
		return ocil_error_set(err, OCIL_E_USAGE, "--offline: --cache-repo %s is a registry",
				      o->cache_repo);
	cleanup_free char *registry = NULL, *repository = NULL;
	return ocil_cache_repo_parse(o->cache_repo, &registry, &repository, err);
}

int ocil_build_check_opts(const ocil_build_opts *given, ocil_error **err)
{
	ocil_build_opts o;
	build_opts_defaults(given, &o);
	static const struct {
		const char *name;
		size_t off;
	} required[] = {
	    {"--code", offsetof(ocil_build_opts, code)},
	    {"--handler", offsetof(ocil_build_opts, handler)},
	    {"--output", offsetof(ocil_build_opts, output)},
	};
	if (o.base == NULL)
		return ocil_error_set(err, OCIL_E_USAGE, "--base is required");
	if (check_conda_source(&o, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (*(const char *const *)((const char *)&o + required[i].off) == NULL)
			return ocil_error_set(err, OCIL_E_USAGE, "%s is required",
					      required[i].name);
	if (check_handler(o.handler, err) < 0 ||
	    check_dest("prefix-dest", o.prefix_dest, err) < 0 ||
	    check_dest("code-dest", o.code_dest, err) < 0)
		return -1;
	if (strcmp(o.prefix_dest, o.code_dest) == 0)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--prefix-dest and --code-dest are the same");
	if (o.zstd && o.format == OCIL_FORMAT_DOCKER)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--compression zstd needs OCI manifests; Docker v2s2 "
				      "(--format docker) has no zstd layers");
	if (o.level < 0 || o.level > 9)
		return ocil_error_set(err, OCIL_E_USAGE, "--compression-level %d: want 1..9",
				      o.level);
	if (o.layers > OCIL_SPLIT_MAX_LAYERS)
		return ocil_error_set(err, OCIL_E_USAGE, "--layers %zu: want auto or 1..%d",
				      o.layers, OCIL_SPLIT_MAX_LAYERS);
	return check_cache_repo(&o, err);
}

int build_parse_entrypoint(const char *s, json_t **out, ocil_error **err)
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

int build_fetch_max_size(uint64_t *out, ocil_error **err)
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
