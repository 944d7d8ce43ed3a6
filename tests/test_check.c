/* check: the Lambda rules on images built here from layers crafted with
 * libarchive's writer (a blob store plus manifest and config), and the
 * index detection on OCI layouts written by hand. */
#include <archive.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "base/util.h"
#include "lambda/check.h"
#include "support_tar.h"
#include "test.h"

#define LAYER(fname, filter, ents)                                                                 \
	mk_tar(fname, filter, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ents, NENTS(ents))

/* The Lambda base in small: python3.8 under /var/lang/bin, a task root. */
static const tent base_ents[] = {
    {"./", 'd', NULL, 0, 0},
    {"var/", 'd', NULL, 0, 0},
    {"var/lang/", 'd', NULL, 0, 0},
    {"var/lang/bin/", 'd', NULL, 0, 0},
    {"var/lang/bin/python3.8", 'f', "#!/bin/sh\n", 0, 0755},
    {"var/task/", 'd', NULL, 0, 0},
    {"opt/", 'd', NULL, 0, 0},
    {"root/", 'd', NULL, 0, 0700},
    {"etc/", 'd', NULL, 0, 0},
    {"etc/shadow", 'f', "root:*:1::::::\n", 0, 0400},
    {"lambda-entrypoint.sh", 'f', "#!/bin/sh\n", 0, 0755},
};

/* conda prefix at /opt/conda-env with python 3.8 (or what minor says),
 * python3.8 pointed at it, and the handler code. */
static char *app_layer(const char *fname, const char *conda_json, const char *code)
{
	const tent ents[] = {
	    {"opt/", 'd', NULL, 0, 0},
	    {"opt/conda-env/", 'd', NULL, 0, 0},
	    {"opt/conda-env/bin/", 'd', NULL, 0, 0},
	    {"opt/conda-env/bin/python3.8", 'f', "#!/bin/sh\n", 0, 0755},
	    {"opt/conda-env/bin/python", 'l', "python3.8", 0, 0},
	    {"opt/conda-env/conda-meta/", 'd', NULL, 0, 0},
	    {conda_json, 'f', "{}", 0, 0},
	    {"opt/my-code/", 'd', NULL, 0, 0},
	    {"opt/my-code/app.py", 'f', code, 0, 0},
	    {"var/", 'd', NULL, 0, 0},
	    {"var/lang/", 'd', NULL, 0, 0},
	    {"var/lang/bin/", 'd', NULL, 0, 0},
	    {"var/lang/bin/python3.8", 'l', "/opt/conda-env/bin/python", 0, 0},
	};
	return LAYER(fname, "gzip", ents);
}

#define GOOD_CODE "import json\n\ndef handler(event, context):\n    return 'Hello'\n"
#define GOOD_CONFIG                                                                                \
	"{\"Env\": [\"PATH=/var/lang/bin:/usr/bin\", \"LAMBDA_TASK_ROOT=/var/task\", "             \
	"\"PYTHONPATH=/var/lang/lib/python3.8/site-packages:/opt/my-code\"], "                     \
	"\"Entrypoint\": [\"/lambda-entrypoint.sh\"], \"Cmd\": [\"app.handler\"], "                \
	"\"WorkingDir\": \"/var/task\"}"

static const char *media_type_of(const char *path)
{
	if (ocil_str_has_suffix(path, ".gz"))
		return OCIL_MT_OCI_LAYER_GZIP;
	if (ocil_str_has_suffix(path, ".zst"))
		return OCIL_MT_OCI_LAYER_ZSTD;
	return OCIL_MT_OCI_LAYER;
}

/* An image in tmp/img (a blob store that is also an OCI layout once
 * tag() writes index.json): these layers, config "config" = cc. */
static int mk_image(const char *const *layers, size_t n, const char *os, const char *arch,
		    const char *cc, ocil_blobstore **bs, ocil_descriptor *md)
{
	cleanup_error ocil_error *err = NULL;
	cleanup_free char *root = tpath("img");
	int r = ocil_blobstore_open(root, bs, &err);
	ocil_descriptor ds[8] = {0};
	cleanup_json json_t *diff_ids = json_array();
	for (size_t i = 0; r == 0 && i < n; i++) {
		cleanup_free char *buf = NULL;
		size_t len = 0;
		r = ocil_read_file(layers[i], 1 << 24, &buf, &len, &err);
		if (r == 0)
			r = ocil_blobstore_put(*bs, buf, len, ds[i].digest, &err);
		ds[i].media_type = (char *)media_type_of(layers[i]);
		ds[i].size = (int64_t)len;
		/* any well-formed digest: nothing here compares diff_ids */
		json_array_append_new(diff_ids, json_string(ds[i].digest));
	}
	if (r < 0) {
		fprintf(stderr, "mk_image: %s\n", err->msg);
		return -1;
	}
	json_error_t je;
	json_t *ccj = json_loads(cc, 0, &je);
	if (ccj == NULL) {
		fprintf(stderr, "config: %s\n", je.text);
		return -1;
	}
	cleanup_json json_t *cfg =
	    json_pack("{s:s, s:s, s:o, s:{s:s, s:O}}", "os", os, "architecture", arch, "config",
		      ccj, "rootfs", "type", "layers", "diff_ids", diff_ids);
	cleanup_free char *raw = ocil_json_dump(cfg);
	ocil_descriptor cd = {.media_type = OCIL_MT_OCI_CONFIG, .size = (int64_t)strlen(raw)};
	if (ocil_blobstore_put(*bs, raw, strlen(raw), cd.digest, &err) < 0 ||
	    ocil_manifest_write(false, &cd, ds, n, *bs, md, &err) < 0) {
		fprintf(stderr, "mk_image: %s\n", err->msg);
		return -1;
	}
	return 0;
}

/* Write tmp/img/index.json naming d as tag, and oci-layout. */
static int tag(const ocil_descriptor *d, const char *t)
{
	cleanup_json json_t *idx =
	    json_pack("{s:i, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "manifests",
		      "mediaType", d->media_type, "digest", d->digest, "size", (json_int_t)d->size,
		      "annotations", "org.opencontainers.image.ref.name", t);
	cleanup_free char *raw = ocil_json_dump(idx);
	const char *layout = "{\"imageLayoutVersion\":\"1.0.0\"}";
	return putn("img/index.json", raw, strlen(raw), 0644) ||
	       putn("img/oci-layout", layout, strlen(layout), 0644);
}

static void dump(const ocil_findings *f)
{
	for (size_t i = 0; i < f->n; i++)
		fprintf(stderr, "  %s %s %s: %s\n", f->v[i].rule, ocil_severity_name(f->v[i].sev),
			f->v[i].where, f->v[i].msg);
}

/* Whether a finding of rule at sev has needle in its where or message. */
static bool has(const ocil_findings *f, const char *rule, ocil_severity sev, const char *needle)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].rule, rule) == 0 && f->v[i].sev == sev &&
		    (strstr(f->v[i].where, needle) || strstr(f->v[i].msg, needle)))
			return true;
	return false;
}

static size_t count_rule(const ocil_findings *f, const char *rule, ocil_severity sev)
{
	size_t n = 0;
	for (size_t i = 0; i < f->n; i++)
		n += strcmp(f->v[i].rule, rule) == 0 && f->v[i].sev == sev;
	return n;
}

#define EXPECT(f, rule, sev, needle)                                                               \
	do {                                                                                       \
		if (!has((f), (rule), (sev), (needle))) {                                          \
			fprintf(stderr, "no %s %s \"%s\" among:\n", rule, ocil_severity_name(sev), \
				(needle));                                                         \
			dump(f);                                                                   \
		}                                                                                  \
		CHECK(has((f), (rule), (sev), (needle)));                                          \
	} while (0)

#define EXPECT_NO_ERRORS(f)                                                                        \
	do {                                                                                       \
		if (ocil_findings_have_errors(f))                                                  \
			dump(f);                                                                   \
		CHECK(!ocil_findings_have_errors(f));                                              \
	} while (0)

/* Build and check; the findings go to f. */
static int run(const char *const *layers, size_t n, const char *arch, const char *cc,
	       const ocil_check_opts *o, ocil_findings *f)
{
	cleanup_blobstore ocil_blobstore *bs = NULL;
	ocil_descriptor md = {0};
	if (mk_image(layers, n, "linux", arch, cc, &bs, &md) < 0)
		return -1;
	ocil_check_opts dflt = {0};
	ocil_error *err = NULL;
	int r = ocil_check_blobs(bs, &md, o ? o : &dflt, f, &err);
	if (r < 0)
		fprintf(stderr, "ocil_check_blobs: %s\n", err->msg);
	ocil_error_free(err);
	ocil_descriptor_clear(&md);
	return r;
}

static void good_image_passes(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	cleanup_free char *l1 =
	    app_layer("app.tar.gz", "opt/conda-env/conda-meta/python-3.8.16-h0_0.json", GOOD_CODE);
	CHECK(l0 && l1);
	const char *layers[] = {l0, l1};
	ocil_findings f = {0};
	CHECK(run(layers, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT_NO_ERRORS(&f);
	EXPECT(&f, "L003", OCIL_SEV_INFO, "linux/amd64");
	EXPECT(&f, "L009", OCIL_SEV_INFO, "2 layers");
	EXPECT(&f, "L012", OCIL_SEV_INFO, "/opt/my-code/app.py");
	EXPECT(&f, "L013", OCIL_SEV_INFO, "/opt/conda-env/bin/python3.8");
	/* the base's private files: warnings, not errors */
	EXPECT(&f, "L005", OCIL_SEV_WARNING, "/root");
	EXPECT(&f, "L004", OCIL_SEV_WARNING, "/etc/shadow");
	CHECK(!has(&f, "L011", OCIL_SEV_WARNING, ""));
	/* grouped by rule */
	for (size_t i = 1; i < f.n; i++)
		CHECK(strcmp(f.v[i - 1].rule, f.v[i].rule) <= 0);
	ocil_findings_clear(&f);
}

static void modes(void)
{
	const tent l1e[] = {
	    {"opt/", 'd', NULL, 0, 0},
	    {"opt/x/", 'd', NULL, 0, 0},
	    {"opt/x/secret.txt", 'f', "s", 0, 0600},
	    {"opt/x/ok.txt", 'f', "o", 0, 0644},
	    {"opt/priv/", 'd', NULL, 0, 0700},
	    {"opt/noexec/", 'd', NULL, 0, 0666},
	    {"var/", 'd', NULL, 0, 0700}, /* leads to /var/task */
	    {"home/", 'd', NULL, 0, 0},
	    {"home/me/", 'd', NULL, 0, 0700},
	    {"home/me/notes", 'f', "n", 0, 0600},
	    {"opt/x/link", 'l', "secret.txt", 0, 0},
	};
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	cleanup_free char *l1 = LAYER("l1.tar.gz", "gzip", l1e);
	CHECK(l0 && l1);
	const char *layers[] = {l0, l1};
	ocil_findings f = {0};
	CHECK(run(layers, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L004", OCIL_SEV_ERROR, "/opt/x/secret.txt");
	EXPECT(&f, "L004", OCIL_SEV_ERROR, "not world-readable (mode 0600; layer 1 (sha256:");
	EXPECT(&f, "L005", OCIL_SEV_ERROR, "/opt/priv");
	EXPECT(&f, "L005", OCIL_SEV_ERROR, "/opt/noexec");
	EXPECT(&f, "L005", OCIL_SEV_ERROR, "mode 0700; layer 1");
	CHECK(has(&f, "L005", OCIL_SEV_ERROR, "/var"));
	EXPECT(&f, "L005", OCIL_SEV_WARNING, "/home/me");
	EXPECT(&f, "L004", OCIL_SEV_WARNING, "/home/me/notes");
	CHECK(!has(&f, "L004", OCIL_SEV_ERROR, "ok.txt"));
	CHECK(!has(&f, "L004", OCIL_SEV_ERROR, "link"));
	CHECK(count_rule(&f, "L004", OCIL_SEV_ERROR) == 1);
	ocil_findings_clear(&f);
}

static void hardlinks_devices(void)
{
	const tent l1e[] = {
	    {"opt/", 'd', NULL, 0, 0},		 {"opt/a", 'f', "data", 0, 0},
	    {"opt/b", 'h', "opt/a", 0, 0},	 {"opt/dev", 'c', NULL, 0, 0},
	    {"opt/su", 'f', "x", 0, 04755},	 {"opt/sg", 'f', "x", 0, 02755},
	    {"opt/sgdir/", 'd', NULL, 0, 02755}, /* a setgid directory is ordinary */
	};
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	cleanup_free char *l1 = LAYER("l1.tar.gz", "gzip", l1e);
	CHECK(l0 && l1);
	const char *layers[] = {l0, l1};
	ocil_findings f = {0};
	CHECK(run(layers, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L006", OCIL_SEV_ERROR, "/opt/b");
	EXPECT(&f, "L006", OCIL_SEV_ERROR, "hardlink to /opt/a");
	EXPECT(&f, "L008", OCIL_SEV_WARNING, "device node");
	EXPECT(&f, "L015", OCIL_SEV_WARNING, "/opt/su");
	EXPECT(&f, "L015", OCIL_SEV_WARNING, "setuid file (mode 4755; layer 1");
	EXPECT(&f, "L015", OCIL_SEV_WARNING, "setgid file (mode 2755; layer 1");
	CHECK(count_rule(&f, "L015", OCIL_SEV_WARNING) == 2);
	CHECK(!has(&f, "L000", OCIL_SEV_ERROR, ""));
	ocil_findings_clear(&f);

	/* a hardlink to nothing: the layers do not merge */
	const tent bad[] = {{"opt/", 'd', NULL, 0, 0}, {"opt/b", 'h', "opt/ghost", 0, 0}};
	cleanup_free char *l2 = LAYER("l2.tar.gz", "gzip", bad);
	CHECK(l2);
	const char *layers2[] = {l0, l2};
	CHECK(run(layers2, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L000", OCIL_SEV_ERROR, "hardlink to \"/opt/ghost\", which is not in the image");
	EXPECT(&f, "L006", OCIL_SEV_ERROR, "/opt/b");
	CHECK(!has(&f, "L013", OCIL_SEV_INFO, "")); /* merged-view rules skipped */
	ocil_findings_clear(&f);
}

static void parents(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	/* no entry for /opt/app; /var/task from below is fine; /opt/late comes
	 * after its child in the same layer */
	const tent l1e[] = {
	    {"opt/app/main.py", 'f', "x", 0, 0}, {"opt/app/sub/y.py", 'f', "y", 0, 0},
	    {"var/task/t.py", 'f', "t", 0, 0},	 {"opt/late/z", 'f', "z", 0, 0},
	    {"opt/late/", 'd', NULL, 0, 0},
	};
	cleanup_free char *l1 = LAYER("l1.tar.gz", "gzip", l1e);
	CHECK(l0 && l1);
	const char *layers[] = {l0, l1};
	ocil_findings f = {0};
	CHECK(run(layers, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L007", OCIL_SEV_ERROR, "/opt/app");
	EXPECT(&f, "L007", OCIL_SEV_ERROR, "/opt/app/sub");
	EXPECT(&f, "L007", OCIL_SEV_ERROR, "layer 1 (sha256:");
	CHECK(count_rule(&f, "L007", OCIL_SEV_ERROR) == 2); /* one per directory */
	CHECK(!has(&f, "L007", OCIL_SEV_ERROR, "/var/task"));
	CHECK(!has(&f, "L007", OCIL_SEV_ERROR, "/opt/late"));
	ocil_findings_clear(&f);

	/* whiteouts and opaque dirs hide the lower directory; a file over a
	 * lower directory replaces it */
	const tent l2e[] = {
	    {"opt/", 'd', NULL, 0, 0},	   {"opt/gone/", 'd', NULL, 0, 0},
	    {"opt/opq/", 'd', NULL, 0, 0}, {"opt/opq/inner/", 'd', NULL, 0, 0},
	    {"opt/rep/", 'd', NULL, 0, 0}, {"opt/keep/", 'd', NULL, 0, 0},
	};
	const tent l3e[] = {
	    {"opt/", 'd', NULL, 0, 0},
	    {"opt/.wh.gone", 'f', "", 0, 0},
	    {"opt/gone/f", 'f', "f", 0, 0},
	    {"opt/opq/", 'd', NULL, 0, 0},
	    {"opt/opq/.wh..wh..opq", 'f', "", 0, 0},
	    {"opt/opq/inner/f", 'f', "f", 0, 0},
	    {"opt/rep", 'f', "now a file", 0, 0},
	    {"opt/keep/f", 'f', "f", 0, 0},
	};
	const tent l4e[] = {{"opt/rep/f", 'f', "f", 0, 0}};
	cleanup_free char *l2 = LAYER("l2.tar.gz", "gzip", l2e);
	cleanup_free char *l3 = LAYER("l3.tar.gz", "gzip", l3e);
	cleanup_free char *l4 = LAYER("l4.tar.gz", "gzip", l4e);
	CHECK(l2 && l3 && l4);
	const char *layers2[] = {l0, l2, l3, l4};
	CHECK(run(layers2, 4, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L007", OCIL_SEV_ERROR, "/opt/gone");
	EXPECT(&f, "L007", OCIL_SEV_ERROR, "/opt/opq/inner");
	EXPECT(&f, "L007", OCIL_SEV_ERROR, "/opt/rep");
	CHECK(!has(&f, "L007", OCIL_SEV_ERROR, "/opt/keep"));
	CHECK(!has(&f, "L007", OCIL_SEV_ERROR, "/opt/opq:"));
	CHECK(count_rule(&f, "L007", OCIL_SEV_ERROR) == 3);
	ocil_findings_clear(&f);
}

static void capped(void)
{
	tent ents[31];
	char names[30][32];
	ents[0] = (tent){"opt/", 'd', NULL, 0, 0};
	for (int i = 0; i < 30; i++) {
		snprintf(names[i], sizeof(names[i]), "opt/f%02d", i);
		ents[i + 1] = (tent){names[i], 'f', "x", 0, 0600};
	}
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	cleanup_free char *l1 =
	    mk_tar("l1.tar.gz", "gzip", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ents, NENTS(ents));
	CHECK(l0 && l1);
	const char *layers[] = {l0, l1};
	ocil_findings f = {0};
	CHECK(run(layers, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	CHECK(count_rule(&f, "L004", OCIL_SEV_ERROR) == OCIL_CHECK_MAX_PER_RULE + 1);
	EXPECT(&f, "L004", OCIL_SEV_ERROR, "... and 10 more");
	/* the base's warning is not crowded out, nor counted with them */
	EXPECT(&f, "L004", OCIL_SEV_WARNING, "/etc/shadow");
	/* the summary line comes after the paths */
	size_t last = 0;
	for (size_t i = 0; i < f.n; i++)
		if (strcmp(f.v[i].rule, "L004") == 0 && f.v[i].sev == OCIL_SEV_ERROR)
			last = i;
	CHECK_STREQ(f.v[last].msg, "... and 10 more");
	ocil_findings_clear(&f);
}

static void media_types(void)
{
	cleanup_free char *gz = LAYER("base.tar.gz", "gzip", base_ents);
	cleanup_free char *zst = LAYER("base.tar.zst", "zstd", base_ents);
	cleanup_free char *tar = LAYER("base.tar", NULL, base_ents);
	CHECK(gz && zst && tar);
	ocil_findings f = {0};
	const char *zl[] = {zst};
	CHECK(run(zl, 1, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L002", OCIL_SEV_ERROR, "zstd-compressed");
	EXPECT(&f, "L002", OCIL_SEV_ERROR, "layer 0 (sha256:");
	ocil_findings_clear(&f);

	const char *tl[] = {tar, gz};
	CHECK(run(tl, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L002", OCIL_SEV_ERROR, "uncompressed");
	CHECK(count_rule(&f, "L002", OCIL_SEV_ERROR) == 1);
	ocil_findings_clear(&f);

	ocil_check_opts o = {.layers_compressed_on_push = true};
	CHECK(run(tl, 2, "amd64", GOOD_CONFIG, &o, &f) == 0);
	EXPECT(&f, "L002", OCIL_SEV_INFO, "docker-archive");
	CHECK(count_rule(&f, "L002", OCIL_SEV_ERROR) == 0);
	ocil_findings_clear(&f);
}

static void platforms(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	CHECK(l0);
	const char *layers[] = {l0};
	ocil_findings f = {0};
	ocil_error *err = NULL;
	ocil_platform amd = {0};
	CHECK_OK(ocil_platform_parse("linux/amd64", &amd, &err), &err);
	ocil_check_opts o = {.platform = &amd};

	CHECK(run(layers, 1, "arm64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L003", OCIL_SEV_INFO, "linux/arm64");
	ocil_findings_clear(&f);

	CHECK(run(layers, 1, "arm64", GOOD_CONFIG, &o, &f) == 0);
	EXPECT(&f, "L003", OCIL_SEV_ERROR, "image is linux/arm64, the function is linux/amd64");
	ocil_findings_clear(&f);

	CHECK(run(layers, 1, "amd64", GOOD_CONFIG, &o, &f) == 0);
	CHECK(count_rule(&f, "L003", OCIL_SEV_ERROR) == 0);
	ocil_findings_clear(&f);

	CHECK(run(layers, 1, "s390x", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L003", OCIL_SEV_ERROR, "amd64 (x86_64) or arm64 only");
	ocil_findings_clear(&f);
	ocil_platform_clear(&amd);
}

static void entrypoint_cmd(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	CHECK(l0);
	const char *layers[] = {l0};
	ocil_findings f = {0};
	CHECK(run(layers, 1, "amd64", "{\"Entrypoint\": \"/lambda-entrypoint.sh app.handler\"}",
		  NULL, &f) == 0);
	EXPECT(&f, "L010", OCIL_SEV_ERROR, "config.Entrypoint");
	EXPECT(&f, "L010", OCIL_SEV_ERROR, "shell form");
	ocil_findings_clear(&f);

	CHECK(run(layers, 1, "amd64",
		  "{\"Entrypoint\": [\"/lambda-entrypoint.sh\"], \"Cmd\": [\"/bin/sh\", \"-c\", "
		  "\"app.handler\"]}",
		  NULL, &f) == 0);
	EXPECT(&f, "L010", OCIL_SEV_ERROR, "config.Cmd");
	CHECK(!has(&f, "L012", OCIL_SEV_ERROR, "")); /* no handler to look for */
	ocil_findings_clear(&f);

	CHECK(run(layers, 1, "amd64", "{\"Cmd\": [\"app.handler\", 3]}", NULL, &f) == 0);
	EXPECT(&f, "L010", OCIL_SEV_ERROR, "element 1 is not a string");
	ocil_findings_clear(&f);

	CHECK(run(layers, 1, "amd64", "{\"Entrypoint\": [\"/lambda-entrypoint.sh\"]}", NULL, &f) ==
	      0);
	EXPECT(&f, "L011", OCIL_SEV_WARNING, "no Cmd");
	EXPECT_NO_ERRORS(&f);
	ocil_findings_clear(&f);
}

static void handler(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	cleanup_free char *l1 =
	    app_layer("app.tar.gz", "opt/conda-env/conda-meta/python-3.8.16-h0_0.json", GOOD_CODE);
	const tent pkg[] = {
	    {"var/", 'd', NULL, 0, 0},
	    {"var/task/", 'd', NULL, 0, 0},
	    {"var/task/pkg/", 'd', NULL, 0, 0},
	    {"var/task/pkg/__init__.py", 'f', "async def run(e, c):\n    pass\n", 0, 0},
	    {"var/task/pkg/mod.py", 'f', "from .impl import (\n    other,\n    go,\n)\n", 0, 0},
	    {"var/task/pkg/fast.cpython-38-x86_64-linux-gnu.so", 'f', "ELF", 0, 0755},
	    {"var/task/rel/", 'd', NULL, 0, 0},
	    {"var/task/rel/r.py", 'f', "r = make()\n", 0, 0},
	};
	cleanup_free char *l2 = LAYER("pkg.tar.gz", "gzip", pkg);
	CHECK(l0 && l1 && l2);
	const char *layers[] = {l0, l1, l2};
	ocil_findings f = {0};
#define CFG(cmd, env)                                                                              \
	"{\"Env\": [" env "], \"Entrypoint\": [\"/lambda-entrypoint.sh\"], \"Cmd\": [\"" cmd       \
	"\"], \"WorkingDir\": \"/var/task\"}"
#define PP "\"PYTHONPATH=/opt/my-code\""

	CHECK(run(layers, 3, "amd64", CFG("nope.handler", PP), NULL, &f) == 0);
	EXPECT(&f, "L012", OCIL_SEV_ERROR,
	       "handler nope.handler: no nope.py or nope/__init__.py under PYTHONPATH or "
	       "LAMBDA_TASK_ROOT (/opt/my-code:/var/task)");
	ocil_findings_clear(&f);

	CHECK(run(layers, 3, "amd64", CFG("app.missing", PP), NULL, &f) == 0);
	EXPECT(&f, "L012", OCIL_SEV_ERROR, "does not define missing at top level");
	EXPECT(&f, "L012", OCIL_SEV_ERROR, "/opt/my-code/app.py");
	ocil_findings_clear(&f);

	/* not on PYTHONPATH, not in the task root */
	CHECK(run(layers, 3, "amd64", CFG("app.handler", ""), NULL, &f) == 0);
	EXPECT(&f, "L012", OCIL_SEV_ERROR, "no app.py");
	ocil_findings_clear(&f);

	/* the task root from LAMBDA_TASK_ROOT */
	CHECK(run(layers, 3, "amd64", CFG("app.handler", "\"LAMBDA_TASK_ROOT=/opt/my-code\""), NULL,
		  &f) == 0);
	EXPECT_NO_ERRORS(&f);
	EXPECT(&f, "L012", OCIL_SEV_INFO, "defines handler");
	ocil_findings_clear(&f);

	/* packages, dotted and slashed, from the default task root */
	const char *ok[] = {CFG("pkg.run", PP), CFG("pkg.mod.go", PP), CFG("pkg/mod.go", PP),
			    CFG("r.r", "\"PYTHONPATH=rel\"")};
	for (size_t i = 0; i < NENTS(ok); i++) {
		CHECK(run(layers, 3, "amd64", ok[i], NULL, &f) == 0);
		if (!has(&f, "L012", OCIL_SEV_INFO, "defines"))
			fprintf(stderr, "case %zu: %s\n", i, ok[i]);
		EXPECT_NO_ERRORS(&f);
		EXPECT(&f, "L012", OCIL_SEV_INFO, "defines");
		ocil_findings_clear(&f);
	}

	CHECK(run(layers, 3, "amd64", CFG("pkg.fast.handler", PP), NULL, &f) == 0);
	EXPECT(&f, "L012", OCIL_SEV_WARNING, "is compiled");
	EXPECT_NO_ERRORS(&f);
	ocil_findings_clear(&f);

	CHECK(run(layers, 3, "amd64", CFG("nodot", PP), NULL, &f) == 0);
	EXPECT(&f, "L012", OCIL_SEV_ERROR, "not MODULE.FUNCTION");
	ocil_findings_clear(&f);

	/* another entry point: Cmd[0] is its argument, not a handler */
	CHECK(run(layers, 3, "amd64",
		  "{\"Entrypoint\": [\"/usr/bin/myprog\"], \"Cmd\": [\"app.nothere\"]}", NULL,
		  &f) == 0);
	EXPECT(&f, "L012", OCIL_SEV_INFO, "not checked as a handler");
	CHECK(count_rule(&f, "L012", OCIL_SEV_ERROR) == 0);
	ocil_findings_clear(&f);
	CHECK(run(layers, 3, "amd64",
		  "{\"Entrypoint\": [\"/var/lang/bin/python3.8\", \"-m\", \"awslambdaric\"], "
		  "\"Cmd\": [\"app.nothere\"], \"Env\": [\"PYTHONPATH=/opt/my-code\"]}",
		  NULL, &f) == 0);
	EXPECT(&f, "L012", OCIL_SEV_ERROR, "does not define nothere");
	ocil_findings_clear(&f);

	/* a program as Cmd: no handler to look for */
	CHECK(run(layers, 3, "amd64", CFG("/usr/bin/true", PP), NULL, &f) == 0);
	CHECK(count_rule(&f, "L012", OCIL_SEV_ERROR) == 0);
	ocil_findings_clear(&f);
#undef CFG
#undef PP
}

static void python(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	cleanup_free char *mism =
	    app_layer("app.tar.gz", "opt/conda-env/conda-meta/python-3.9.7-h0_0.json", GOOD_CODE);
	/* python-dateutil is not python */
	cleanup_free char *dateutil = app_layer(
	    "du.tar.gz", "opt/conda-env/conda-meta/python-dateutil-2.8.2-py_0.json", GOOD_CODE);
	const tent dangling[] = {
	    {"var/", 'd', NULL, 0, 0},
	    {"var/lang/", 'd', NULL, 0, 0},
	    {"var/lang/bin/", 'd', NULL, 0, 0},
	    {"var/lang/bin/python3.8", 'l', "/opt/conda-env/bin/python", 0, 0},
	};
	cleanup_free char *dl = LAYER("dangling.tar.gz", "gzip", dangling);
	CHECK(l0 && mism && dateutil && dl);
	ocil_findings f = {0};

	const char *m[] = {l0, mism};
	CHECK(run(m, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L014", OCIL_SEV_ERROR, "/var/lang/bin/python3.8");
	EXPECT(&f, "L014", OCIL_SEV_ERROR,
	       "runs the python 3.9 of the conda prefix /opt/conda-env "
	       "(/opt/conda-env/conda-meta/python-3.9.7-h0_0.json)");
	ocil_findings_clear(&f);

	const char *d[] = {l0, dateutil};
	CHECK(run(d, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT_NO_ERRORS(&f);
	ocil_findings_clear(&f);

	const char *g[] = {l0, dl};
	CHECK(run(g, 2, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L013", OCIL_SEV_ERROR, "python symlink target missing");
	EXPECT(&f, "L013", OCIL_SEV_ERROR, "-> /opt/conda-env/bin/python");
	ocil_findings_clear(&f);

	/* not a python image: nothing to resolve the handler with */
	const tent bare[] = {{"opt/", 'd', NULL, 0, 0}, {"opt/x", 'f', "x", 0, 0}};
	cleanup_free char *bl = LAYER("bare.tar.gz", "gzip", bare);
	CHECK(bl);
	const char *b[] = {bl};
	CHECK(run(b, 1, "amd64", GOOD_CONFIG, NULL, &f) == 0);
	EXPECT(&f, "L013", OCIL_SEV_INFO, "not a Lambda python image");
	CHECK(!has(&f, "L012", OCIL_SEV_ERROR, ""));
	ocil_findings_clear(&f);
}

static void damaged_layer(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	CHECK(l0);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	ocil_error *err = NULL;
	CHECK_OK(ocil_read_file(l0, 1 << 20, &buf, &len, &err), &err);
	CHECK(putn("cut.tar.gz", buf, len / 2, 0644) == 0);
	cleanup_free char *cut = tpath("cut.tar.gz");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	ocil_descriptor md = {0};
	const char *layers[] = {cut};
	CHECK(mk_image(layers, 1, "linux", "amd64", GOOD_CONFIG, &bs, &md) == 0);
	ocil_findings f = {0};
	ocil_check_opts o = {0};
	CHECK_FAIL(ocil_check_blobs(bs, &md, &o, &f, &err), &err, OCIL_E_INPUT, "layer 0");
	ocil_findings_clear(&f);
	ocil_descriptor_clear(&md);
}

/* An index of two platforms in tmp/img as oci:img:multi. */
static void index_ref(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	CHECK(l0);
	cleanup_blobstore ocil_blobstore *bs = NULL;
	ocil_descriptor md = {0};
	const char *layers[] = {l0};
	CHECK(mk_image(layers, 1, "linux", "amd64", GOOD_CONFIG, &bs, &md) == 0);
	cleanup_json json_t *idx = json_pack(
	    "{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s, s:s}}, {s:s, s:s, s:I, s:{s:s, s:s}}]}",
	    "schemaVersion", 2, "mediaType", OCIL_MT_OCI_INDEX, "manifests", "mediaType",
	    md.media_type, "digest", md.digest, "size", (json_int_t)md.size, "platform", "os",
	    "linux", "architecture", "amd64", "mediaType", md.media_type, "digest", md.digest,
	    "size", (json_int_t)md.size, "platform", "os", "linux", "architecture", "ppc64le");
	cleanup_free char *raw = ocil_json_dump(idx);
	ocil_error *err = NULL;
	ocil_descriptor id = {.media_type = OCIL_MT_OCI_INDEX, .size = (int64_t)strlen(raw)};
	CHECK_OK(ocil_blobstore_put(bs, raw, strlen(raw), id.digest, &err), &err);
	CHECK(tag(&id, "multi") == 0);

	cleanup_free char *input = ocil_xasprintf("oci:%s/img:multi", ocil_test_tmpdir());
	ocil_ref ref = {0};
	CHECK_OK(ocil_ref_parse(input, &ref, &err), &err);
	ocil_source_opts so = {0};
	ocil_check_opts o = {0};
	ocil_check_target t = {0};
	ocil_findings f = {0};
	CHECK_OK(ocil_check_target_open(&ref, &so, &o, &t, &f, &err), &err);
	CHECK(t.src != NULL);
	CHECK_STREQ(t.media_type, OCIL_MT_OCI_INDEX);
	CHECK_STREQ(t.platform.arch, "amd64");
	CHECK_STREQ(t.src->manifest_digest, md.digest);
	o.blobs = t.blobs;
	CHECK_OK(ocil_check_source(t.src, t.media_type, &o, &f, &err), &err);
	EXPECT(&f, "L001", OCIL_SEV_ERROR, "the reference names an index");
	EXPECT(&f, "L003", OCIL_SEV_INFO, "linux/amd64");
	CHECK(count_rule(&f, "L001", OCIL_SEV_ERROR) == 1);
	ocil_check_target_clear(&t);
	ocil_findings_clear(&f);

	/* no image for the function's platform: findings, no source */
	ocil_platform arm = {0};
	CHECK_OK(ocil_platform_parse("linux/arm64", &arm, &err), &err);
	o = (ocil_check_opts){.platform = &arm};
	CHECK_OK(ocil_check_target_open(&ref, &so, &o, &t, &f, &err), &err);
	CHECK(t.src == NULL);
	EXPECT(&f, "L001", OCIL_SEV_ERROR, "the reference names an index");
	EXPECT(&f, "L003", OCIL_SEV_ERROR,
	       "the index has no linux/arm64 image (available: linux/amd64, linux/ppc64le)");
	ocil_check_target_clear(&t);
	ocil_findings_clear(&f);
	ocil_platform_clear(&arm);

	/* the same image tagged directly: no L001 */
	CHECK(tag(&md, "single") == 0);
	cleanup_free char *input2 = ocil_xasprintf("oci:%s/img:single", ocil_test_tmpdir());
	ocil_ref ref2 = {0};
	CHECK_OK(ocil_ref_parse(input2, &ref2, &err), &err);
	o = (ocil_check_opts){0};
	CHECK_OK(ocil_check_target_open(&ref2, &so, &o, &t, &f, &err), &err);
	CHECK_STREQ(t.media_type, OCIL_MT_OCI_MANIFEST);
	o.blobs = t.blobs;
	CHECK_OK(ocil_check_source(t.src, t.media_type, &o, &f, &err), &err);
	CHECK(count_rule(&f, "L001", OCIL_SEV_ERROR) == 0);
	CHECK(f.n > 0);
	ocil_check_target_clear(&t);
	ocil_findings_clear(&f);

	ocil_ref_clear(&ref);
	ocil_ref_clear(&ref2);
	ocil_descriptor_clear(&md);
}

static void tampered_layout_blob(void)
{
	cleanup_free char *l0 = LAYER("base.tar.gz", "gzip", base_ents);
	CHECK(l0);
	cleanup_blobstore ocil_blobstore *bs = NULL;
	ocil_descriptor md = {0};
	const char *layers[] = {l0};
	CHECK(mk_image(layers, 1, "linux", "amd64", GOOD_CONFIG, &bs, &md) == 0);
	CHECK(tag(&md, "t") == 0);
	ocil_error *err = NULL;
	cleanup_free char *input = ocil_xasprintf("oci:%s/img:t", ocil_test_tmpdir());
	ocil_ref ref = {0};
	CHECK_OK(ocil_ref_parse(input, &ref, &err), &err);
	ocil_source_opts so = {0};
	ocil_check_opts o = {0};
	ocil_check_target t = {0};
	ocil_findings f = {0};
	CHECK_OK(ocil_check_target_open(&ref, &so, &o, &t, &f, &err), &err);
	cleanup_free char *p = ocil_blobstore_path(bs, t.src->manifest.layers[0].digest);
	FILE *fp = fopen(p, "r+b");
	CHECK(fp != NULL);
	fseek(fp, 40, SEEK_SET);
	fputc('X', fp);
	fclose(fp);
	o.blobs = t.blobs;
	CHECK_FAIL(ocil_check_source(t.src, t.media_type, &o, &f, &err), &err, OCIL_E_INPUT,
		   "digest mismatch");
	ocil_check_target_clear(&t);
	ocil_findings_clear(&f);
	ocil_ref_clear(&ref);
	ocil_descriptor_clear(&md);
}

static bool defines(const char *text, const char *name)
{
	return ocil_check_py_defines(text, strlen(text), name);
}

static void py_defines(void)
{
	CHECK(defines("def handler(event, context):\n    pass\n", "handler"));
	CHECK(defines("import os\n\n\nasync def handler (e, c):\n  pass\n", "handler"));
	CHECK(defines("@wrap\ndef  handler(e, c): pass", "handler"));
	CHECK(defines("class handler:\n    pass\n", "handler"));
	CHECK(defines("handler = make_handler()\n", "handler"));
	CHECK(defines("handler: Callable = make()\n", "handler"));
	CHECK(defines("from app.impl import handler\n", "handler"));
	CHECK(defines("from app.impl import other, run as handler\n", "handler"));
	CHECK(defines("from .impl import (\n    other,\n    handler,\n)\n", "handler"));
	CHECK(defines("import app.impl as handler\n", "handler"));
	CHECK(defines("x = 1\r\ndef handler(e, c):\r\n    pass\r\n", "handler"));
	CHECK(defines("def handler(e, c): pass", "handler")); /* no final newline */

	CHECK(!defines("", "handler"));
	CHECK(!defines("def handler_v2(e, c):\n    pass\n", "handler"));
	CHECK(!defines("def my_handler(e, c):\n    pass\n", "handler"));
	CHECK(!defines("class A:\n    def handler(self):\n        pass\n", "handler"));
	CHECK(!defines("# def handler(e, c):\n", "handler"));
	CHECK(!defines("\"\"\"Docs.\ndef handler(e, c):\n\"\"\"\n", "handler"));
	CHECK(!defines("x = '''\ndef handler(e, c):\n'''\n", "handler"));
	CHECK(!defines("handler == 3\n", "handler"));
	CHECK(!defines("import handler\n", "handler"));
	CHECK(!defines("from app import other\nhandler_x = 1\n", "handler"));
	CHECK(!defines("from app import other\n\nx = handler\n", "handler"));
	/* a string with quotes inside does not open a triple-quoted one */
	CHECK(defines("s = \"it's\"\ndef handler(e, c):\n    pass\n", "handler"));
	CHECK(defines("s = '\"\"\"'\ndef handler(e, c):\n    pass\n", "handler"));
}

TEST_MAIN(T(good_image_passes), T(modes), T(hardlinks_devices), T(parents), T(capped),
	  T(media_types), T(platforms), T(entrypoint_cmd), T(handler), T(python), T(damaged_layer),
	  T(index_ref), T(tampered_layout_blob), T(py_defines))
