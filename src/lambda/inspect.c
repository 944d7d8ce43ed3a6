#include "lambda/inspect.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "lambda/lambda.h"
#include "oci/pyc.h"
#include "oci/rootfs.h"

/* A JSON string (see ocil_json_string_lossy), or null for NULL. */
static json_t *str_or_null(const char *s)
{
	return s == NULL ? json_null() : ocil_json_string_lossy(s);
}

static json_t *descriptor_json(const char *digest, const char *media_type, int64_t size)
{
	json_t *j = json_object();
	json_object_set_new(j, "digest", json_string(digest));
	json_object_set_new(j, "mediaType", str_or_null(media_type));
	json_object_set_new(j, "size", json_integer(size));
	return j;
}

/* An array of strings copied from v, or null when v is not an array
 * (other elements are left out: the config was only checked for what the
 * build needs). */
static json_t *strings_or_null(const json_t *v)
{
	if (!json_is_array(v))
		return json_null();
	json_t *a = json_array();
	size_t i;
	const json_t *e;
	json_array_foreach(v, i, e)
	{
		if (json_is_string(e))
			json_array_append_new(a, json_string(json_string_value(e)));
	}
	return a;
}

static json_t *nonempty_or_null(const json_t *obj, const char *key)
{
	const char *s = ocil_json_opt_string(obj, key);
	return str_or_null(s != NULL && s[0] != '\0' ? s : NULL);
}

/* ---- what the config says ---- */

static json_t *layers_json(const ocil_source *src, int64_t *total)
{
	const ocil_manifest *m = &src->manifest;
	const json_t *diff_ids =
	    json_object_get(json_object_get(src->config, "rootfs"), "diff_ids");
	const json_t *history = json_object_get(src->config, "history");
	size_t h = 0, nh = json_is_array(history) ? json_array_size(history) : 0;
	json_t *layers = json_array();
	*total = 0;
	for (size_t i = 0; i < m->n_layers; i++) {
		const ocil_descriptor *d = &m->layers[i];
		json_t *l = descriptor_json(d->digest, d->media_type, d->size);
		*total += d->size;
		json_object_set_new(l, "diffId",
				    str_or_null(json_string_value(json_array_get(diff_ids, i))));
		/* The i-th history entry that made a layer. */
		const json_t *entry = NULL;
		while (h < nh && entry == NULL) {
			const json_t *e = json_array_get(history, h++);
			if (!json_is_true(json_object_get(e, "empty_layer")))
				entry = e;
		}
		json_object_set_new(l, "createdBy", nonempty_or_null(entry, "created_by"));
		json_object_set_new(l, "comment", nonempty_or_null(entry, "comment"));
		json_array_append_new(layers, l);
	}
	return layers;
}

static json_t *config_doc(const ocil_ref *ref, const ocil_source *src)
{
	const json_t *cfg = src->config;
	const json_t *cc = json_object_get(cfg, "config");
	json_t *doc = json_object();
	json_object_set_new(doc, "schemaVersion", json_integer(OCIL_INSPECT_SCHEMA_VERSION));
	json_object_set_new(doc, "ref", str_or_null(ref->input));
	json_object_set_new(doc, "manifest",
			    descriptor_json(src->manifest_digest, src->manifest.media_type,
					    (int64_t)src->manifest_len));
	const ocil_descriptor *c = &src->manifest.config;
	json_object_set_new(doc, "config", descriptor_json(c->digest, c->media_type, c->size));
	json_t *platform = json_object();
	json_object_set_new(platform, "os", nonempty_or_null(cfg, "os"));
	json_object_set_new(platform, "architecture", nonempty_or_null(cfg, "architecture"));
	json_object_set_new(platform, "variant", nonempty_or_null(cfg, "variant"));
	json_object_set_new(doc, "platform", platform);
	json_object_set_new(doc, "created", nonempty_or_null(cfg, "created"));
	int64_t total = 0;
	json_object_set_new(doc, "layers", layers_json(src, &total));
	json_object_set_new(doc, "layersSize", json_integer(total));
	json_t *env = strings_or_null(json_object_get(cc, "Env"));
	json_object_set_new(doc, "env", json_is_null(env) ? json_array() : env);
	json_object_set_new(doc, "entrypoint", strings_or_null(json_object_get(cc, "Entrypoint")));
	json_object_set_new(doc, "cmd", strings_or_null(json_object_get(cc, "Cmd")));
	json_object_set_new(doc, "workingDir", nonempty_or_null(cc, "WorkingDir"));
	json_object_set_new(doc, "user", nonempty_or_null(cc, "User"));
	return doc;
}

/* ---- what the rootfs holds ---- */

/* "3.N" when name is python3.N, else NULL. */
static const char *python_minor(const char *name)
{
	return ocil_lambda_python_name(name, NULL) ? name + strlen("python") : NULL;
}

static int cmp_minor(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	long d = strtol(x + 2, NULL, 10) - strtol(y + 2, NULL, 10);
	return d < 0 ? -1 : d > 0;
}

static int python_json(ocil_rootfs *fs, const char *minor, json_t **out, ocil_error **err)
{
	cleanup_free char *path = ocil_xasprintf(OCIL_LAMBDA_PYTHON_DIR "/python%s", minor);
	cleanup_rootfs_node ocil_rootfs_node self = {0};
	if (ocil_rootfs_lookup(fs, path, false, &self, err) < 0)
		return -1;
	cleanup_rootfs_node ocil_rootfs_node target = {0};
	cleanup_error ocil_error *lerr = NULL;
	int found = ocil_rootfs_lookup(fs, path, true, &target, &lerr);
	/* A loop is something to report, not a failure of inspect. */
	if (found < 0 && lerr->code != OCIL_E_INPUT) {
		if (err != NULL && *err == NULL)
			*err = steal_pointer(&lerr);
		return -1;
	}
	json_t *j = json_object();
	json_object_set_new(j, "path", json_string(path));
	json_object_set_new(j, "minor", json_string(minor));
	bool link = self.type == OCIL_TAR_SYMLINK;
	json_object_set_new(j, "link", str_or_null(link ? self.link : NULL));
	bool ok = found > 0 && target.type == OCIL_TAR_FILE;
	json_object_set_new(j, "target", str_or_null(ok ? target.path : NULL));
	cleanup_free char *why = NULL;
	if (found < 0)
		why = ocil_xstrdup(lerr->msg);
	else if (found == 0)
		why = ocil_xstrdup(target.missing ? target.missing : "not found");
	else if (!ok)
		why = ocil_xasprintf("%s is not a regular file", target.path);
	json_object_set_new(j, "missing", str_or_null(why));
	*out = j;
	return 0;
}

static int pythons_json(ocil_rootfs *fs, json_t **out, ocil_error **err)
{
	cleanup_strv ocil_strv names = {0};
	if (ocil_rootfs_list(fs, OCIL_LAMBDA_PYTHON_DIR, &names, err) < 0)
		return -1;
	cleanup_free const char **minors = ocil_xcalloc(names.n + 1, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; i < names.n; i++)
		if (python_minor(names.v[i]) != NULL)
			minors[n++] = python_minor(names.v[i]);
	qsort(minors, n, sizeof(char *), cmp_minor);
	cleanup_json json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *p = NULL;
		if (python_json(fs, minors[i], &p, err) < 0)
			return -1;
		json_array_append_new(a, p);
	}
	*out = steal_pointer(&a);
	return 0;
}

static int has_conda_meta(ocil_rootfs *fs, const char *prefix, bool *yes, ocil_error **err)
{
	cleanup_free char *meta = ocil_xasprintf("%s/conda-meta", prefix);
	cleanup_rootfs_node ocil_rootfs_node node = {0};
	cleanup_error ocil_error *lerr = NULL;
	int r = ocil_rootfs_lookup(fs, meta, true, &node, &lerr);
	if (r < 0 && lerr->code != OCIL_E_INPUT) {
		if (err != NULL && *err == NULL)
			*err = steal_pointer(&lerr);
		return -1;
	}
	*yes = r > 0 && node.type == OCIL_TAR_DIR;
	return 0;
}

/* See the header: the python's prefix, else the first /opt/<name>. */
static int find_prefix(ocil_rootfs *fs, const json_t *pythons, char **out, ocil_error **err)
{
	*out = NULL;
	bool yes = false;
	for (size_t i = json_array_size(pythons); i > 0; i--) {
		const char *target = ocil_json_opt_string(json_array_get(pythons, i - 1), "target");
		if (target == NULL)
			continue;
		/* <prefix>/bin/python3.N */
		cleanup_free char *prefix = ocil_xstrdup(target);
		for (int up = 0; up < 2; up++) {
			char *slash = strrchr(prefix, '/');
			if (slash != NULL)
				*slash = '\0';
		}
		if (prefix[0] == '\0')
			continue;
		if (has_conda_meta(fs, prefix, &yes, err) < 0)
			return -1;
		if (yes) {
			*out = steal_pointer(&prefix);
			return 0;
		}
		break; /* only the highest python says where the env is */
	}
	cleanup_strv ocil_strv names = {0};
	if (ocil_rootfs_list(fs, "/opt", &names, err) < 0)
		return -1;
	for (size_t i = 0; i < names.n; i++) {
		cleanup_free char *prefix = ocil_xasprintf("/opt/%s", names.v[i]);
		if (has_conda_meta(fs, prefix, &yes, err) < 0)
			return -1;
		if (yes) {
			*out = steal_pointer(&prefix);
			return 0;
		}
	}
	return 0;
}

static json_t *conda_json(const char *prefix, const ocil_sbom_packages *pk)
{
	json_t *a = json_array();
	for (size_t i = 0; i < pk->n; i++) {
		const ocil_sbom_package *p = &pk->v[i];
		cleanup_free char *channel = ocil_sbom_channel_name(p);
		json_t *j = json_object();
		json_object_set_new(j, "name", str_or_null(p->name));
		json_object_set_new(j, "version", str_or_null(p->version));
		json_object_set_new(j, "build", str_or_null(p->build));
		json_object_set_new(j, "channel", str_or_null(channel));
		json_object_set_new(j, "subdir", str_or_null(p->subdir));
		json_object_set_new(j, "license", str_or_null(p->license));
		json_object_set_new(j, "sha256", str_or_null(p->sha256));
		json_object_set_new(j, "url", str_or_null(p->url));
		json_array_append_new(a, j);
	}
	json_t *c = json_object();
	json_object_set_new(c, "prefix", str_or_null(prefix));
	json_object_set_new(c, "packages", a);
	return c;
}

/* Fill the document's pythons and conda from the merged rootfs. */
static int describe_rootfs(ocil_rootfs *fs, const ocil_source *src, ocil_inspect_result *out,
			   ocil_error **err)
{
	json_t *pythons = NULL;
	if (pythons_json(fs, &pythons, err) < 0)
		return -1;
	json_object_set_new(out->doc, "pythons", pythons);
	if (find_prefix(fs, pythons, &out->conda_prefix, err) < 0)
		return -1;
	if (out->conda_prefix == NULL) {
		json_object_set_new(out->doc, "conda", json_null());
		return 0;
	}
	if (ocil_sbom_read_rootfs(fs, out->conda_prefix, &out->packages, err) < 0)
		return ocil_error_wrap(err, "%s", src->name);
	json_object_set_new(out->doc, "conda", conda_json(out->conda_prefix, &out->packages));
	return 0;
}

/* The bytecode the newest python reads (pyc.h): how much, how much stale,
 * the biggest stale sources; null without a python. */
static int bytecode_json(ocil_rootfs *fs, const ocil_layer_files *f, const ocil_inspect_opts *o,
			 json_t *doc, ocil_error **err)
{
	const json_t *pythons = json_object_get(doc, "pythons");
	const char *minor = NULL;
	for (size_t i = json_array_size(pythons); i > 0 && minor == NULL; i--)
		minor = ocil_json_opt_string(json_array_get(pythons, i - 1), "minor");
	if (minor == NULL || ocil_pyc_minor(minor) < 0) {
		json_object_set_new(doc, "bytecode", json_null());
		return 0;
	}
	ocil_pyc_scan_opts so = {.cancel = o->cancel};
	ocil_pyc_stats st;
	if (ocil_pyc_scan_image((const char *const *)f->paths.v, f->paths.n, fs,
				ocil_pyc_minor(minor), &so, &st, err) < 0)
		return -1;
	json_t *top = json_array();
	for (size_t i = 0; i < st.n_top; i++)
		json_array_append_new(top,
				      json_pack("{s:o, s:I, s:s}", "source",
						ocil_json_string_lossy(st.top[i].source), "size",
						(json_int_t)st.top[i].size, "why", st.top[i].why));
	json_object_set_new(doc, "bytecode",
			    json_pack("{s:s, s:I, s:I, s:o}", "python", minor, "pycs",
				      (json_int_t)st.pycs, "stale", (json_int_t)st.stale,
				      "biggestStale", top));
	ocil_pyc_stats_clear(&st);
	return 0;
}

static int read_rootfs(const ocil_ref *ref, ocil_source *src, const ocil_inspect_opts *o,
		       ocil_inspect_result *out, ocil_error **err)
{
	ocil_layer_files f = {0};
	ocil_rootfs *fs = NULL;
	int r = ocil_layer_files_get(ref, src, o->cache_dir, o->tmp_dir, o->cancel, &f, err);
	if (r == 0 &&
	    ocil_rootfs_open((const char *const *)f.paths.v, f.paths.n, o->cancel, &fs, err) < 0)
		r = ocil_error_wrap(err, "%s", src->name);
	if (r == 0)
		r = describe_rootfs(fs, src, out, err);
	if (r == 0 && bytecode_json(fs, &f, o, out->doc, err) < 0)
		r = ocil_error_wrap(err, "%s", src->name);
	/* The rootfs reads the layer files until it is freed; then they can
	 * go. */
	ocil_rootfs_free(fs);
	ocil_layer_files_clear(&f);
	return r;
}

int ocil_inspect_image(const ocil_ref *ref, ocil_source *src, const ocil_inspect_opts *o,
		       ocil_inspect_result *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	out->doc = config_doc(ref, src);
	if (read_rootfs(ref, src, o, out, err) < 0) {
		ocil_inspect_result_clear(out);
		return -1;
	}
	return 0;
}

void ocil_inspect_result_clear(ocil_inspect_result *r)
{
	json_decref(r->doc);
	free(r->conda_prefix);
	ocil_sbom_packages_clear(&r->packages);
	memset(r, 0, sizeof(*r));
}

int ocil_inspect_ref(const ocil_inspect_ref_opts *o, ocil_inspect_result *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	int64_t epoch = 0;
	ocil_platform platform = {0};
	ocil_ref ref = {0};
	ocil_source *src = NULL;
	int r = -1;
	if (ocil_source_date_epoch(&epoch, err) == 0 &&
	    ocil_platform_parse(o->platform ? o->platform : "linux/amd64", &platform, err) == 0 &&
	    ocil_ref_parse(o->image, &ref, err) == 0) {
		ocil_source_opts so = {.platform = &platform,
				       .cancel = o->cancel,
				       .registry = o->registry,
				       .cache_dir = o->cache_dir};
		ocil_inspect_opts io = {.cancel = o->cancel, .cache_dir = o->cache_dir};
		r = ocil_source_open(&ref, &so, &src, err) < 0 ||
			    ocil_inspect_image(&ref, src, &io, out, err) < 0
			? -1
			: 0;
	}
	if (r == 0 && o->sbom != NULL) {
		ocil_sbom_opts sb = {.name = o->image,
				     .image_digest = src->manifest_digest,
				     .prefix = out->conda_prefix,
				     .created = epoch};
		if (ocil_sbom_write(o->sbom, &sb, &out->packages, err) < 0)
			r = ocil_error_wrap(err, "--sbom");
	}
	ocil_source_free(src);
	ocil_ref_clear(&ref);
	ocil_platform_clear(&platform);
	return r;
}
