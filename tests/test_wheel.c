#include <openssl/evp.h>
#include <string.h>

#include "base/util.h"
#include "layers/wheel.h"
#include "support_tar.h"
#include "test.h"

#define DEST "/opt/conda-env"

static const char init_py[] = "def main():\n    print('hi')\n";
static const char script[] = "#!python\nimport demo\n";
static const char metadata[] = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n";
static const char entry_points[] = "[console_scripts]\ndemo-cli = demo:main [extra]\n"
				   "[other]\nnot = a:script\n";

/* RECORD's form of a file's hash: sha256=<urlsafe base64, no padding>. */
static char *rec_hash(const char *data)
{
	unsigned char d[32];
	EVP_Digest(data, strlen(data), d, NULL, EVP_sha256(), NULL);
	return ocil_wheel_record_hash(d);
}

/* tmp/<fn>: a wheel of demo 1.0; tamper changes __init__.py after RECORD
 * was made; no_record leaves RECORD out. */
static char *mk_wheel(const char *fn, bool tamper, bool no_record)
{
	cleanup_free char *h1 = rec_hash(init_py), *h2 = rec_hash(script), *h3 = rec_hash(metadata),
			  *h4 = rec_hash(entry_points);
	cleanup_free char *record = ocil_xasprintf(
	    "demo/__init__.py,%s,%zu\ndemo-1.0.data/scripts/demo-run,%s,%zu\n"
	    "demo-1.0.dist-info/METADATA,%s,%zu\n\"demo-1.0.dist-info/entry_points.txt\",%s,%zu\n"
	    "demo-1.0.dist-info/RECORD,,\n",
	    h1, strlen(init_py), h2, strlen(script), h3, strlen(metadata), h4,
	    strlen(entry_points));
	tent ents[] = {
	    {"demo/__init__.py", 'f', tamper ? "changed\n" : init_py, 0, 0},
	    {"demo-1.0.data/scripts/demo-run", 'f', script, 0, 0},
	    {"demo-1.0.dist-info/METADATA", 'f', metadata, 0, 0},
	    {"demo-1.0.dist-info/entry_points.txt", 'f', entry_points, 0, 0},
	    {"demo-1.0.dist-info/RECORD", 'f', record, 0, 0},
	};
	return mk_tar(fn, NULL, ARCHIVE_FORMAT_ZIP, ents, NENTS(ents) - (no_record ? 1 : 0));
}

/* pip's own hash of "hello\n" (hashlib.sha256, urlsafe_b64encode). */
static void test_record_hash(void)
{
	unsigned char d[32];
	EVP_Digest("hello\n", 6, d, NULL, EVP_sha256(), NULL);
	cleanup_free char *h = ocil_wheel_record_hash(d);
	CHECK_STREQ(h, "sha256=WJG1tSLV3whtD_CxEPvZ0hu0_HFjrzTQgoai6Eb2vgM");
}

static void test_install(void)
{
	ocil_error *err = NULL;
	cleanup_free char *file = mk_wheel("demo-1.0-py3-none-any.whl", false, false);
	CHECK(file != NULL);
	ocil_wheel *w = NULL;
	CHECK_OK(ocil_wheel_open(file, NULL, "3.11", "x86_64", &w, &err), &err);
	CHECK_STREQ(w->name, "demo");
	CHECK_STREQ(w->dist_info, "demo-1.0.dist-info");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *lw = NULL;
	ocil_wheel_install_opts o = {.dest = DEST, .minor = "3.11"};
	rlayer l = {0};
	int r = open_layer_writer(&bs, &lw, &err);
	if (r == 0)
		r = ocil_wheel_install(w, &o, lw, &err);
	if (r == 0)
		r = finish_read_layer(bs, lw, &l, &err);
	if (r < 0)
		fprintf(stderr, "install: %s\n", err ? err->msg : "?");
#define SP "opt/conda-env/lib/python3.11/site-packages/"
	const rentry *init = rlayer_find(&l, SP "demo/__init__.py");
	const rentry *run = rlayer_find(&l, "opt/conda-env/bin/demo-run");
	const rentry *cli = rlayer_find(&l, "opt/conda-env/bin/demo-cli");
	const rentry *inst = rlayer_find(&l, SP "demo-1.0.dist-info/INSTALLER");
	const rentry *rec = rlayer_find(&l, SP "demo-1.0.dist-info/RECORD");
	bool ok = r == 0 && init && run && cli && inst && rec && strcmp(init->data, init_py) == 0 &&
		  strcmp(run->data, "#!" DEST "/bin/python3.11\nimport demo\n") == 0 &&
		  run->perm == 0755 &&
		  ocil_str_has_prefix(cli->data, "#!" DEST "/bin/python3.11\n") &&
		  strstr(cli->data, "from demo import main\n") != NULL &&
		  rlayer_find(&l, "opt/conda-env/bin/not") == NULL &&
		  strcmp(inst->data, "ocilambda\n") == 0 &&
		  strstr(rec->data, "../../../bin/demo-cli,sha256=") != NULL &&
		  strstr(rec->data, "demo-1.0.dist-info/RECORD,,\n") != NULL &&
		  strstr(rec->data, "demo/__init__.py,sha256=") != NULL;
	if (!ok && rec != NULL)
		fprintf(stderr, "RECORD:\n%s", rec->data);
	rlayer_clear(&l);
	ocil_wheel_free(w);
	ocil_error_free(err);
	CHECK(ok);
}

static bool open_fails(const char *fn, bool tamper, bool no_record, const char *sha,
		       const char *minor, const char *needle)
{
	ocil_error *err = NULL;
	cleanup_free char *file = mk_wheel(fn, tamper, no_record);
	ocil_wheel *w = NULL;
	int r = file ? ocil_wheel_open(file, sha, minor, "x86_64", &w, &err) : 0;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *lw = NULL;
	ocil_wheel_install_opts o = {.dest = DEST, .minor = minor};
	if (r == 0 && w != NULL)
		r = open_layer_writer(&bs, &lw, &err) || ocil_wheel_install(w, &o, lw, &err);
	bool ok = r != 0 && err != NULL && err->code == OCIL_E_INPUT && strstr(err->msg, needle);
	if (!ok)
		fprintf(stderr, "%s: want \"%s\", got: %s\n", fn, needle,
			err ? err->msg : "success");
	ocil_wheel_free(w);
	ocil_error_free(err);
	return ok;
}

static void test_tags(void)
{
	static const struct {
		const char *fn;
		bool ok;
	} cases[] = {
	    {"demo-1.0-py3-none-any.whl", true},
	    {"demo-1.0-py2.py3-none-any.whl", true},
	    {"demo-1.0-1-py310-none-any.whl", true},
	    {"demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", true},
	    {"demo-1.0-cp38-abi3-manylinux2014_x86_64.whl", true},
	    {"demo-1.0-cp311-cp311-linux_x86_64.whl", true},
	    {"demo-1.0-cp39-cp39-manylinux2014_x86_64.whl", false},
	    {"demo-1.0-py312-none-any.whl", false},
	    {"demo-1.0-py2-none-any.whl", false},
	    {"demo-1.0-cp311-cp311-manylinux2014_aarch64.whl", false},
	    {"demo-1.0-cp311-cp311-win_amd64.whl", false},
	    {"demo-1.0-cp311-cp311-macosx_11_0_x86_64.whl", false},
	};
	for (size_t i = 0; i < NENTS(cases); i++) {
		ocil_error *err = NULL;
		cleanup_free char *file = mk_wheel(cases[i].fn, false, false);
		ocil_wheel *w = NULL;
		int r = ocil_wheel_open(file, NULL, "3.11", "x86_64", &w, &err);
		bool ok = cases[i].ok ? r == 0
				      : r < 0 && strstr(err->msg, "which python 3.11 on x86_64 "
								  "can not use") != NULL;
		if (!ok)
			fprintf(stderr, "%s: %s\n", cases[i].fn, err ? err->msg : "accepted");
		ocil_wheel_free(w);
		ocil_error_free(err);
		CHECK(ok);
	}
}

static void test_bad(void)
{
	CHECK(open_fails("demo-1.0-py3-none-any.whl", true, false, NULL, "3.11",
			 "demo/__init__.py: does not match RECORD"));
	CHECK(open_fails("demo-1.0-py3-none-any.whl", false, true, NULL, "3.11",
			 "no <name>.dist-info/RECORD"));
	CHECK(
	    open_fails("demo-1.0-py3-none-any.whl", false, false, "00", "3.11", "sha256 mismatch"));
	CHECK(open_fails("demo.whl", false, false, NULL, "3.11", "not a wheel name"));
	CHECK(open_fails("demo-1.0-py3-none-any.zip", false, false, NULL, "3.11",
			 "not a wheel (.whl)"));
	tent escape[] = {{"../evil.py", 'f', "x", 0, 0}};
	cleanup_free char *file =
	    mk_tar("evil-1.0-py3-none-any.whl", NULL, ARCHIVE_FORMAT_ZIP, escape, 1);
	ocil_error *err = NULL;
	ocil_wheel *w = NULL;
	CHECK_FAIL(ocil_wheel_open(file, NULL, "3.11", "x86_64", &w, &err), &err, OCIL_E_INPUT,
		   "member \"../evil.py\" escapes the prefix");
}

/* PEP 600 and its predecessors against the base's glibc. */
static void test_glibc_tags(void)
{
	static const struct {
		const char *plats;
		unsigned major, minor; /* the base's; 0: unknown */
		bool ok;
		unsigned need_minor; /* of 2.N, 0: no manylinux tag of x86_64 */
	} cases[] = {
	    {"manylinux1_x86_64", 2, 26, true, 5},
	    {"manylinux2010_x86_64", 2, 26, true, 12},
	    {"manylinux2014_x86_64", 2, 26, true, 17},
	    {"manylinux_2_17_x86_64", 2, 26, true, 17},
	    {"manylinux_2_26_x86_64", 2, 26, true, 26},
	    {"manylinux_2_28_x86_64", 2, 26, false, 28},
	    {"manylinux_2_36_x86_64", 2, 26, false, 36},
	    {"manylinux_2_37_x86_64", 2, 26, false, 37},
	    {"manylinux1_x86_64", 2, 36, true, 5},
	    {"manylinux2014_x86_64", 2, 36, true, 17},
	    {"manylinux_2_28_x86_64", 2, 36, true, 28},
	    {"manylinux_2_36_x86_64", 2, 36, true, 36},
	    {"manylinux_2_37_x86_64", 2, 36, false, 37},
	    /* compressed tag sets: one usable tag is enough; the least is named */
	    {"manylinux_2_17_x86_64.manylinux2014_x86_64", 2, 26, true, 17},
	    {"manylinux_2_28_x86_64.manylinux_2_31_x86_64", 2, 26, false, 28},
	    {"manylinux_2_31_x86_64.manylinux_2_28_x86_64", 2, 26, false, 28},
	    {"manylinux_2_28_x86_64.linux_x86_64", 2, 26, true, 28},
	    {"manylinux_2_28_aarch64.manylinux2014_x86_64", 2, 26, true, 17},
	    /* another arch, musl, nonsense: never, whatever the glibc */
	    {"manylinux2014_aarch64", 2, 36, false, 0},
	    {"manylinux_2_17_aarch64", 0, 0, false, 0},
	    {"manylinux_2_17_x86", 0, 0, false, 0},
	    {"musllinux_1_1_x86_64", 2, 36, false, 0},
	    {"musllinux_1_2_x86_64", 0, 0, false, 0},
	    {"manylinux_2_x86_64", 0, 0, false, 0},
	    {"manylinux_2__17_x86_64", 0, 0, false, 0},
	    {"manylinux_x_17_x86_64", 0, 0, false, 0},
	    {"manylinux2015_x86_64", 0, 0, false, 0},
	    {"manylinux_x86_64", 0, 0, false, 0},
	    {"linux_aarch64", 0, 0, false, 0},
	    /* no glibc need, or an unknown glibc */
	    {"any", 2, 5, true, 0},
	    {"linux_x86_64", 2, 5, true, 0},
	    {"manylinux_2_99_x86_64", 0, 0, true, 99},
	    {"manylinux1_x86_64", 0, 0, true, 5},
	};
	for (size_t i = 0; i < NENTS(cases); i++) {
		ocil_glibc base = {cases[i].major, cases[i].minor}, need = {7, 7};
		bool ok = ocil_wheel_plat_usable(cases[i].plats, "x86_64", base, &need);
		bool good = ok == cases[i].ok && need.minor == cases[i].need_minor &&
			    need.major == (cases[i].need_minor ? 2u : 0u);
		if (!good)
			fprintf(stderr, "%s on glibc %u.%u: %s, needs %u.%u\n", cases[i].plats,
				base.major, base.minor, ok ? "usable" : "refused", need.major,
				need.minor);
		CHECK(good);
	}
	ocil_glibc need = {0, 0};
	CHECK(
	    !ocil_wheel_plat_usable("manylinux_3_0_x86_64", "x86_64", (ocil_glibc){2, 36}, &need));
	CHECK(need.major == 3 && need.minor == 0);
	CHECK(
	    ocil_wheel_plat_usable("manylinux2014_aarch64", "aarch64", (ocil_glibc){2, 26}, NULL));
	CHECK(!ocil_wheel_plat_usable("manylinux_2_28_aarch64", "aarch64", (ocil_glibc){2, 26},
				      NULL));
}

/* A wheel the base's glibc is too old for: the error names the file, its
 * tags and both versions; a new enough or unknown glibc passes. */
static void test_glibc_check(void)
{
	ocil_error *err = NULL;
	cleanup_free char *file =
	    mk_wheel("demo-1.0-cp38-cp38-manylinux_2_28_x86_64.whl", false, false);
	ocil_wheel *w = NULL;
	CHECK_OK(ocil_wheel_open(file, NULL, "3.8", "x86_64", &w, &err), &err);
	if (w == NULL)
		return;
	CHECK_OK(ocil_wheel_check_glibc(w, (ocil_glibc){2, 28}, &err), &err);
	CHECK_OK(ocil_wheel_check_glibc(w, (ocil_glibc){0, 0}, &err), &err);
	cleanup_free char *want = ocil_xasprintf(
	    "%s: built for cp38-cp38-manylinux_2_28_x86_64, which needs glibc 2.28; the base "
	    "image has glibc 2.26",
	    file);
	CHECK(ocil_wheel_check_glibc(w, (ocil_glibc){2, 26}, &err) < 0 && err != NULL &&
	      err->code == OCIL_E_INPUT && strcmp(err->msg, want) == 0);
	if (err != NULL && strcmp(err->msg, want) != 0)
		fprintf(stderr, "got: %s\n", err->msg);
	ocil_error_free(err);
	err = NULL;
	ocil_wheel_free(w);
	/* the same from the tags alone (a cached layer's wheels) */
	ocil_wheel_tags t = {.file = "cached/demo.whl",
			     .py = "cp38",
			     .abi = "cp38",
			     .plat = "manylinux_2_28_x86_64.manylinux_2_30_x86_64",
			     .arch = "x86_64"};
	CHECK_OK(ocil_wheel_tags_check_glibc(&t, (ocil_glibc){2, 28}, &err), &err);
	CHECK_FAIL(
	    ocil_wheel_tags_check_glibc(&t, (ocil_glibc){2, 17}, &err), &err, OCIL_E_INPUT,
	    "cached/demo.whl: built for cp38-cp38-manylinux_2_28_x86_64.manylinux_2_30_x86_64, "
	    "which needs glibc 2.28; the base image has glibc 2.17");
	/* musllinux is refused when the wheel is opened, glibc or not */
	CHECK(open_fails("demo-1.0-cp38-cp38-musllinux_1_1_x86_64.whl", false, false, NULL, "3.8",
			 "which python 3.8 on x86_64 can not use"));
}

TEST_MAIN(T(test_record_hash), T(test_install), T(test_tags), T(test_bad), T(test_glibc_tags),
	  T(test_glibc_check))
