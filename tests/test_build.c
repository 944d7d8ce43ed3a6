/* build: the assemble pipeline on small inputs made here: a Lambda-shaped
 * base (an OCI layout written with our layer writer), a conda prefix with
 * a python record, and a handler. The output is read back with
 * libarchive's reader and jansson. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "build/build.h"
#include "oci/image.h"
#include "support_tar.h"
#include "test.h"

#define GOOD_CODE "import json\n\ndef handler(event, context):\n    return 'Hello'\n"

/* ---- inputs ---- */

static int put(const char *rel, const char *content, mode_t mode)
{
	return putn(rel, content, strlen(content), mode);
}

/* index.json naming md "3.8", and oci-layout, in tmp/<rel>. */
static int index_json(const char *rel, const ocil_descriptor *md)
{
	cleanup_json json_t *idx = json_pack(
	    "{s:i, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "manifests", "mediaType",
	    md->media_type, "digest", md->digest, "size", (json_int_t)md->size, "annotations",
	    "org.opencontainers.image.ref.name", "3.8");
	cleanup_free char *raw = ocil_json_dump(idx);
	cleanup_free char *ij = ocil_xasprintf("%s/index.json", rel);
	cleanup_free char *ol = ocil_xasprintf("%s/oci-layout", rel);
	return put(ij, raw, 0644) || put(ol, "{\"imageLayoutVersion\":\"1.0.0\"}", 0644);
}

/* The Lambda python 3.<minor> base in small, as an OCI layout tmp/base:
 * /var/lang/bin/python3.<minor>, /var/task and the entrypoint. */
static int make_base(const char *minor, ocil_error **err)
{
	cleanup_free char *dir = tpath("base");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	if (ocil_blobstore_open(dir, &bs, err) < 0)
		return -1;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	ocil_layer_opts lo = {0};
	cleanup_free char *py = ocil_xasprintf("/var/lang/bin/python%s", minor);
	ocil_layer_result res;
	if (ocil_layer_writer_new(bs, &lo, &w, err) < 0 ||
	    ocil_layer_writer_add_parents(w, py, err) < 0 ||
	    ocil_layer_writer_add_file(w, py, 0755, "#!/bin/sh\n", 10, err) < 0 ||
	    ocil_layer_writer_add_dir(w, "/var/task", 0755, err) < 0 ||
	    ocil_layer_writer_add_file(w, "/lambda-entrypoint.sh", 0755, "#!/bin/sh\n", 10, err) <
		0 ||
	    ocil_layer_writer_finish(w, &res, err) < 0)
		return -1;
	cleanup_json json_t *cfg =
	    json_pack("{s:s, s:s, s:{s:[s, s], s:[s], s:[s], s:s}, s:{s:s, s:[s]}}", "architecture",
		      "amd64", "os", "linux", "config", "Env", "PATH=/var/lang/bin:/usr/bin",
		      "LAMBDA_TASK_ROOT=/var/task", "Entrypoint", "/lambda-entrypoint.sh", "Cmd",
		      "base.handler", "WorkingDir", "/var/task", "rootfs", "type", "layers",
		      "diff_ids", res.diff_id);
	cleanup_free char *raw = ocil_json_dump(cfg);
	ocil_descriptor cd = {.media_type = OCIL_MT_OCI_CONFIG, .size = (int64_t)strlen(raw)};
	ocil_descriptor ld = {.media_type = OCIL_MT_OCI_LAYER_GZIP, .size = (int64_t)res.size};
	memcpy(ld.digest, res.digest, sizeof(ld.digest));
	ocil_descriptor md = {0};
	if (ocil_blobstore_put(bs, raw, strlen(raw), cd.digest, err) < 0 ||
	    ocil_manifest_write(false, &cd, &ld, 1, bs, &md, err) < 0)
		return -1;
	int r = index_json("base", &md);
	ocil_descriptor_clear(&md);
	return r;
}

/* A conda prefix tmp/<rel> with python <version> (one record). */
static int make_prefix(const char *rel, const char *version)
{
	char minor[8];
	snprintf(minor, sizeof(minor), "%.*s", (int)(strrchr(version, '.') - version), version);
	cleanup_free char *rec = ocil_xasprintf(
	    "{\"name\": \"python\", \"version\": \"%s\", \"build\": \"h0_0\", \"subdir\": "
	    "\"linux-64\", \"paths_data\": {\"paths_version\": 1, \"paths\": ["
	    "{\"_path\": \"bin/python%s\", \"path_type\": \"hardlink\"},"
	    "{\"_path\": \"bin/python\", \"path_type\": \"softlink\"},"
	    "{\"_path\": \"lib/python%s/os.py\", \"path_type\": \"hardlink\"}]}}",
	    version, minor, minor);
	cleanup_free char *meta = ocil_xasprintf("%s/conda-meta/python-%s-h0_0.json", rel, version);
	cleanup_free char *bin = ocil_xasprintf("%s/bin/python%s", rel, minor);
	cleanup_free char *link = ocil_xasprintf("%s/bin/python", rel);
	cleanup_free char *target = ocil_xasprintf("python%s", minor);
	cleanup_free char *os_py = ocil_xasprintf("%s/lib/python%s/os.py", rel, minor);
	return put(meta, rec, 0644) || put(bin, "#!/bin/sh\n", 0755) || sym(target, link) ||
	       put(os_py, "sep = '/'\n", 0644);
}

/* ---- the report ---- */

typedef struct {
	ocil_strv progress, warnings, findings; /* "L012 notable" */
} seen;

static void on_progress(void *data, const char *msg)
{
	ocil_strv_push(&((seen *)data)->progress, ocil_xstrdup(msg));
}

static void on_warning(void *data, const char *msg)
{
	ocil_strv_push(&((seen *)data)->warnings, ocil_xstrdup(msg));
}

static void on_finding(void *data, const ocil_finding *f, bool notable)
{
	ocil_strv_push(&((seen *)data)->findings,
		       ocil_xasprintf("%s %s%s", f->rule, ocil_severity_name(f->sev),
				      notable ? " notable" : ""));
}

static void seen_clear(seen *s)
{
	ocil_strv_clear(&s->progress);
	ocil_strv_clear(&s->warnings);
	ocil_strv_clear(&s->findings);
}

/* Whether one of v starts with prefix; prints v when not. */
static bool has_line(const ocil_strv *v, const char *prefix)
{
	for (size_t i = 0; i < v->n; i++)
		if (ocil_str_has_prefix(v->v[i], prefix))
			return true;
	fprintf(stderr, "no \"%s\" among:\n", prefix);
	for (size_t i = 0; i < v->n; i++)
		fprintf(stderr, "  %s\n", v->v[i]);
	return false;
}

/* ---- one build ---- */

typedef struct {
	ocil_build_opts o;
	ocil_build_report rep;
	seen seen;
	char *base, *prefix, *code, *output, *cache;
} setup;

/* Options for base + prefix tmp/env + code tmp/code -> oci:tmp/<out>. */
static void setup_init(setup *s, const char *out)
{
	memset(s, 0, sizeof(*s));
	cleanup_free char *base = tpath("base");
	cleanup_free char *dir = tpath(out);
	s->base = ocil_xasprintf("oci:%s:3.8", base);
	s->output = ocil_xasprintf("oci:%s:latest", dir);
	s->prefix = tpath("env");
	s->code = tpath("code");
	s->cache = tpath("cache");
	s->rep = (ocil_build_report){.data = &s->seen,
				     .progress = on_progress,
				     .warning = on_warning,
				     .finding = on_finding};
	s->o = (ocil_build_opts){.base = s->base,
				 .prefix = s->prefix,
				 .code = s->code,
				 .handler = "app.handler",
				 .output = s->output,
				 .registry = {.tls_verify = true, .retries = 0, .timeout_s = 60},
				 .cache_dir = s->cache,
				 .report = &s->rep};
}

static void setup_clear(setup *s)
{
	seen_clear(&s->seen);
	free(s->base);
	free(s->prefix);
	free(s->code);
	free(s->output);
	free(s->cache);
}

static int inputs(const char *base_minor, const char *py_version, const char *code)
{
	ocil_error *err = NULL;
	unsetenv("SOURCE_DATE_EPOCH");
	if (make_base(base_minor, &err) < 0) {
		fprintf(stderr, "base: %s\n", err->msg);
		ocil_error_free(err);
		return -1;
	}
	return make_prefix("env", py_version) || put("code/app.py", code, 0644);
}

/* The blob digest names in the output layout tmp/<out>. */
static char *blob(const char *out, const char *digest)
{
	cleanup_free char *rel = ocil_xasprintf("%s/blobs/sha256/%s", out, ocil_digest_hex(digest));
	return tpath(rel);
}

/* The image config of the manifest digest in tmp/<out>. */
static json_t *config_of(const char *out, const char *digest)
{
	cleanup_free char *mpath = blob(out, digest);
	cleanup_free char *raw = NULL;
	size_t len = 0;
	ocil_error *err = NULL;
	ocil_manifest m = {0};
	json_t *cfg = NULL;
	if (ocil_read_file(mpath, 1 << 20, &raw, &len, &err) == 0 &&
	    ocil_manifest_parse(raw, len, "manifest", NULL, &m, &err) == 0) {
		cleanup_free char *cpath = blob(out, m.config.digest);
		cfg = json_load_file(cpath, 0, NULL);
	}
	if (err != NULL)
		fprintf(stderr, "config_of: %s\n", err->msg);
	ocil_error_free(err);
	ocil_manifest_clear(&m);
	return cfg;
}

/* ---- tests ---- */

static void assembles(void)
{
	CHECK(inputs("3.8", "3.8.16", GOOD_CODE) == 0);
	setup s;
	setup_init(&s, "out");
	ocil_error *err = NULL;
	__attribute__((cleanup(ocil_build_result_clear))) ocil_build_result res = {0};
	int r = ocil_build_assemble(&s.o, &res, &err);
	if (r < 0)
		fprintf(stderr, "assemble: %s\n", err->msg);
	CHECK(r == 0);
	CHECK_STREQ(res.published, res.digest);
	/* the base's layer, then conda, code and the python link */
	static const char *const made_by[] = {"base", "conda", "code", "runtime"};
	CHECK(res.n_layers == NENTS(made_by));
	for (size_t i = 0; i < res.n_layers; i++) {
		CHECK_STREQ(res.layers[i].made_by, made_by[i]);
		CHECK(!res.layers[i].cached);
		CHECK(res.layers[i].base == (i == 0));
		CHECK((res.layers[i].uncompressed < 0) == (i == 0));
	}
	CHECK(has_line(&s.seen.progress, "reading base oci:"));
	CHECK(has_line(&s.seen.progress, "packing code "));
	CHECK(has_line(&s.seen.progress, "writing oci:"));
	/* the base's warnings are no errors, and no finding stopped it */
	for (size_t i = 0; i < s.seen.findings.n; i++)
		CHECK(strstr(s.seen.findings.v[i], "error") == NULL);

	/* what the layers hold, read back with libarchive */
	rlayer l = {0};
	cleanup_free char *conda = blob("out", res.layers[1].digest);
	CHECK(read_layer(conda, &l) == 0);
	const rentry *py = rlayer_find(&l, "opt/conda-env/bin/python3.8");
	CHECK(py != NULL && py->perm == 0755);
	CHECK(rlayer_find(&l, "opt/conda-env/lib/python3.8/os.py") != NULL);
	rlayer_clear(&l);
	cleanup_free char *link = blob("out", res.layers[3].digest);
	CHECK(read_layer(link, &l) == 0);
	const rentry *e = rlayer_find(&l, "var/lang/bin/python3.8");
	bool linked =
	    e != NULL && e->link != NULL && strcmp(e->link, "/opt/conda-env/bin/python") == 0;
	rlayer_clear(&l);
	CHECK(linked);

	/* the config: the handler as Cmd, PYTHONPATH, the base's entrypoint */
	cleanup_json json_t *cfg = config_of("out", res.digest);
	CHECK(cfg != NULL);
	const json_t *c = json_object_get(cfg, "config");
	CHECK_STREQ(json_string_value(json_array_get(json_object_get(c, "Cmd"), 0)), "app.handler");
	CHECK_STREQ(json_string_value(json_array_get(json_object_get(c, "Entrypoint"), 0)),
		    "/lambda-entrypoint.sh");
	const json_t *env = json_object_get(c, "Env");
	bool pp = false;
	for (size_t i = 0; i < json_array_size(env); i++)
		pp = pp ||
		     strcmp(json_string_value(json_array_get(env, i)),
			    "PYTHONPATH=/var/lang/lib/python3.8/site-packages:/opt/my-code") == 0;
	CHECK(pp);
	CHECK(json_array_size(json_object_get(json_object_get(cfg, "rootfs"), "diff_ids")) == 4);
	setup_clear(&s);
}

/* The same inputs give the same digest: again from the cache (conda and
 * link layers taken from it), and without it. */
static void reproducible(void)
{
	CHECK(inputs("3.8", "3.8.16", GOOD_CODE) == 0);
	char digests[3][OCIL_DIGEST_STR_SIZE];
	static const char *const outs[] = {"out1", "out2", "out3"};
	for (size_t run = 0; run < 3; run++) {
		setup s;
		setup_init(&s, outs[run]);
		s.o.no_cache = run == 2;
		ocil_error *err = NULL;
		ocil_build_result res = {0};
		int r = ocil_build_assemble(&s.o, &res, &err);
		if (r < 0)
			fprintf(stderr, "assemble %zu: %s\n", run, err->msg);
		bool cached_ok = r == 0 && res.n_layers == 4 &&
				 res.layers[1].cached == (run == 1) && !res.layers[2].cached &&
				 res.layers[3].cached == (run == 1);
		bool said = run != 1 || has_line(&s.seen.progress, "runtime patch sha256:");
		memcpy(digests[run], res.digest, sizeof(digests[run]));
		ocil_build_result_clear(&res);
		ocil_error_free(err);
		setup_clear(&s);
		CHECK(cached_ok);
		CHECK(said);
	}
	CHECK_STREQ(digests[0], digests[1]);
	CHECK_STREQ(digests[0], digests[2]);
	/* and SOURCE_DATE_EPOCH is what moves them */
	setenv("SOURCE_DATE_EPOCH", "86400", 1);
	setup s;
	setup_init(&s, "out4");
	ocil_error *err = NULL;
	__attribute__((cleanup(ocil_build_result_clear))) ocil_build_result res = {0};
	int r = ocil_build_assemble(&s.o, &res, &err);
	unsetenv("SOURCE_DATE_EPOCH");
	ocil_error_free(err);
	setup_clear(&s);
	CHECK(r == 0);
	CHECK(strcmp(res.digest, digests[0]) != 0);
}

/* Lambda's rules stop a build before anything is published, unless
 * no_check; the failed rule is reported, notably. */
static void check_stops(void)
{
	CHECK(inputs("3.8", "3.8.16", "def other(event, context):\n    return 1\n") == 0);
	setup s;
	setup_init(&s, "out");
	s.o.report = NULL; /* nothing reported: nothing breaks either */
	ocil_error *err = NULL;
	ocil_build_result res = {0};
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_CHECK,
		   "the image breaks Lambda's rules (L012); nothing was published");
	cleanup_free char *index = tpath("out/index.json");
	struct stat st;
	CHECK(stat(index, &st) < 0);
	s.o.report = &s.rep;
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_CHECK, "(L012)");
	CHECK(has_line(&s.seen.findings, "L012 error notable"));
	s.o.no_check = true;
	CHECK_OK(ocil_build_assemble(&s.o, &res, &err), &err);
	CHECK(stat(index, &st) == 0);
	ocil_build_result_clear(&res);
	setup_clear(&s);
}

/* The prefix's python must be the base's, unless allowed: then the base's
 * own is linked and L014 is a warning. */
static void python_mismatch(void)
{
	CHECK(inputs("3.8", "3.11.2", GOOD_CODE) == 0);
	setup s;
	setup_init(&s, "out");
	ocil_error *err = NULL;
	ocil_build_result res = {0};
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_INPUT,
		   "python version mismatch: the conda prefix has python 3.11.2 but the base");
	s.o.allow_mismatch = true;
	CHECK_OK(ocil_build_assemble(&s.o, &res, &err), &err);
	ocil_build_result_clear(&res);
	CHECK(has_line(&s.seen.findings, "L014 warning"));
	setup_clear(&s);
}

static void options(void)
{
	setup s;
	setup_init(&s, "out");
	ocil_error *err = NULL;
	CHECK_OK(ocil_build_check_opts(&s.o, &err), &err);
	s.o.base = NULL;
	CHECK_FAIL(ocil_build_check_opts(&s.o, &err), &err, OCIL_E_USAGE, "--base is required");
	s.o.base = s.base;
	s.o.lock = "x.lock";
	CHECK_FAIL(ocil_build_check_opts(&s.o, &err), &err, OCIL_E_USAGE, "mutually exclusive");
	s.o.lock = NULL;
	s.o.pkgs_dir = "pkgs";
	CHECK_FAIL(ocil_build_check_opts(&s.o, &err), &err, OCIL_E_USAGE,
		   "--pkgs-dir goes with --conda-lock");
	s.o.pkgs_dir = NULL;
	s.o.handler = "app";
	CHECK_FAIL(ocil_build_check_opts(&s.o, &err), &err, OCIL_E_USAGE,
		   "--handler \"app\": want MODULE.FUNCTION");
	s.o.handler = "pkg/mod.sub.fn";
	CHECK_OK(ocil_build_check_opts(&s.o, &err), &err);
	s.o.code_dest = "/opt/conda-env";
	CHECK_FAIL(ocil_build_check_opts(&s.o, &err), &err, OCIL_E_USAGE,
		   "--prefix-dest and --code-dest are the same");
	s.o.code_dest = "/opt//code";
	CHECK_FAIL(ocil_build_check_opts(&s.o, &err), &err, OCIL_E_USAGE,
		   "--code-dest \"/opt//code\": want a normalized absolute path");
	s.o.code_dest = NULL;
	s.o.zstd = true;
	s.o.format = OCIL_FORMAT_DOCKER;
	CHECK_FAIL(ocil_build_check_opts(&s.o, &err), &err, OCIL_E_USAGE,
		   "--compression zstd needs OCI manifests");
	/* and assemble checks them before touching anything */
	ocil_build_result res = {0};
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_USAGE,
		   "--compression zstd needs OCI manifests");
	s.o.format = OCIL_FORMAT_DEFAULT;
	s.o.entrypoint = "[1]";
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_USAGE,
		   "--entrypoint: want a non-empty JSON array of strings");
	setup_clear(&s);
}

/* A missing input names itself. */
static void bad_inputs(void)
{
	CHECK(inputs("3.8", "3.8.16", GOOD_CODE) == 0);
	setup s;
	setup_init(&s, "out");
	ocil_error *err = NULL;
	ocil_build_result res = {0};
	free(s.code);
	s.code = tpath("nocode");
	s.o.code = s.code;
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_INPUT, "--code ");
	free(s.code);
	s.code = tpath("code/app.py");
	s.o.code = s.code;
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_INPUT, "not a directory");
	s.o.code = NULL;
	CHECK_FAIL(ocil_build_assemble(&s.o, &res, &err), &err, OCIL_E_USAGE, "--code is required");
	setup_clear(&s);
}

TEST_MAIN(T(assembles), T(reproducible), T(check_stops), T(python_mismatch), T(options),
	  T(bad_inputs))
