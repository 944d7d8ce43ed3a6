#include <dirent.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "base/util.h"
#include "lambda/sbom.h"
#include "oci/rootfs.h"
#include "support_tar.h"
#include "test.h"

/* ---- helpers ---- */

/* A package as a conda-meta record would give it; NULL fields left out. */
static ocil_sbom_package pkg(const char *name, const char *version, const char *build,
			     const char *channel, const char *subdir, const char *fn,
			     const char *license, const char *sha256)
{
	ocil_sbom_package p = {0};
	p.name = ocil_xstrdup(name);
	p.version = ocil_xstrdup(version);
	p.build = ocil_xstrdup(build);
	p.channel = channel ? ocil_xstrdup(channel) : NULL;
	p.subdir = subdir ? ocil_xstrdup(subdir) : NULL;
	p.fn = fn ? ocil_xstrdup(fn) : NULL;
	p.license = license ? ocil_xstrdup(license) : NULL;
	p.sha256 = sha256 ? ocil_xstrdup(sha256) : NULL;
	return p;
}

static void add(ocil_sbom_packages *l, ocil_sbom_package p)
{
	ocil_sbom_packages_push(l, &p);
}

#define SHA_A "2c3b63932677c8248c81495f8d3da0f0ad4236c978403ddc6fa444983c4e5800"
#define CF "https://conda.anaconda.org/conda-forge/linux-64"

static void two_packages(ocil_sbom_packages *l, bool reversed)
{
	ocil_sbom_package a = pkg("python", "3.8.16", "h_0", CF, "linux-64",
				  "python-3.8.16-h_0.tar.bz2", "Python-2.0", SHA_A);
	ocil_sbom_package b =
	    pkg("numpy", "1.24.2", "py38_0", "conda-forge", "linux-64", NULL, "BSD-3-Clause", NULL);
	ocil_sbom_packages_push(l, reversed ? &b : &a);
	ocil_sbom_packages_push(l, reversed ? &a : &b);
}

/* The document as written by ocil_sbom_write, as a string. */
static char *built_text(const ocil_sbom_opts *o, const ocil_sbom_packages *l)
{
	json_t *doc = NULL;
	ocil_error *err = NULL;
	if (ocil_sbom_build(o, l, &doc, &err) < 0) {
		fprintf(stderr, "ocil_sbom_build: %s\n", err->msg);
		ocil_error_free(err);
		return NULL;
	}
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	return s;
}

static json_t *built(const ocil_sbom_opts *o, const ocil_sbom_packages *l)
{
	json_t *doc = NULL;
	ocil_error *err = NULL;
	if (ocil_sbom_build(o, l, &doc, &err) < 0) {
		fprintf(stderr, "ocil_sbom_build: %s\n", err->msg);
		ocil_error_free(err);
	}
	return doc;
}

static const json_t *package_named(const json_t *doc, const char *name)
{
	size_t i;
	const json_t *p;
	json_array_foreach(json_object_get(doc, "packages"), i, p)
	{
		if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
			return p;
	}
	return NULL;
}

static const char *pstr(const json_t *p, const char *key)
{
	return json_string_value(json_object_get(p, key));
}

static const char *purl_of(const json_t *p)
{
	return pstr(json_array_get(json_object_get(p, "externalRefs"), 0), "referenceLocator");
}

/* ---- the document ---- */

static void test_document_fields(void)
{
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	two_packages(&l, false);
	ocil_sbom_opts o = {.name = "oci:out:latest",
			    .image_digest = "sha256:" SHA_A,
			    .prefix = "/opt/conda-env",
			    .created = 1677628800};
	cleanup_json json_t *doc = built(&o, &l);
	CHECK(doc != NULL);
	CHECK_STREQ(pstr(doc, "spdxVersion"), "SPDX-2.3");
	CHECK_STREQ(pstr(doc, "dataLicense"), "CC0-1.0");
	CHECK_STREQ(pstr(doc, "SPDXID"), "SPDXRef-DOCUMENT");
	CHECK_STREQ(pstr(doc, "name"), "oci:out:latest");
	const json_t *ci = json_object_get(doc, "creationInfo");
	CHECK_STREQ(pstr(ci, "created"), "2023-03-01T00:00:00Z");
	CHECK_STREQ(json_string_value(json_array_get(json_object_get(ci, "creators"), 0)),
		    "Tool: ocilambda-" OCIL_VERSION);
	CHECK(strstr(pstr(doc, "comment"), "sha256:" SHA_A) != NULL);
	CHECK(strstr(pstr(doc, "comment"), "/opt/conda-env") != NULL);
	const char *ns = pstr(doc, "documentNamespace");
	CHECK(ocil_str_has_prefix(ns, "https://spdx.org/spdxdocs/ocilambda/oci-out-latest-"));
	CHECK(strlen(strrchr(ns, '-') + 1) == 64);
	CHECK(strchr(ns, '#') == NULL);

	/* sorted by name: numpy first */
	const json_t *pk = json_object_get(doc, "packages");
	CHECK(json_array_size(pk) == 2);
	CHECK_STREQ(pstr(json_array_get(pk, 0), "name"), "numpy");
	const json_t *py = package_named(doc, "python");
	CHECK_STREQ(pstr(py, "SPDXID"), "SPDXRef-Package-python-3.8.16");
	CHECK_STREQ(pstr(py, "versionInfo"), "3.8.16");
	CHECK_STREQ(pstr(py, "downloadLocation"), CF "/python-3.8.16-h_0.tar.bz2");
	CHECK_STREQ(pstr(py, "licenseConcluded"), "NOASSERTION");
	CHECK_STREQ(pstr(py, "licenseDeclared"), "Python-2.0");
	CHECK_STREQ(pstr(py, "supplier"), "NOASSERTION");
	CHECK(json_is_false(json_object_get(py, "filesAnalyzed")));
	const json_t *ck = json_array_get(json_object_get(py, "checksums"), 0);
	CHECK_STREQ(pstr(ck, "algorithm"), "SHA256");
	CHECK_STREQ(pstr(ck, "checksumValue"), SHA_A);
	const json_t *ref = json_array_get(json_object_get(py, "externalRefs"), 0);
	CHECK_STREQ(pstr(ref, "referenceCategory"), "PACKAGE-MANAGER");
	CHECK_STREQ(pstr(ref, "referenceType"), "purl");
	CHECK_STREQ(purl_of(py), "pkg:conda/python@3.8.16?build=h_0&channel=conda-forge&subdir="
				 "linux-64&type=tar.bz2");
	const json_t *np = package_named(doc, "numpy");
	CHECK(json_object_get(np, "checksums") == NULL);
	CHECK_STREQ(pstr(np, "downloadLocation"), "NOASSERTION");
	CHECK_STREQ(purl_of(np),
		    "pkg:conda/numpy@1.24.2?build=py38_0&channel=conda-forge&subdir=linux-64");
	CHECK(json_object_get(doc, "hasExtractedLicensingInfos") == NULL);

	const json_t *rels = json_object_get(doc, "relationships");
	CHECK(json_array_size(rels) == 2);
	size_t i;
	const json_t *r;
	json_array_foreach(rels, i, r)
	{
		CHECK_STREQ(pstr(r, "spdxElementId"), "SPDXRef-DOCUMENT");
		CHECK_STREQ(pstr(r, "relationshipType"), "DESCRIBES");
		CHECK_STREQ(pstr(r, "relatedSpdxElement"), pstr(json_array_get(pk, i), "SPDXID"));
	}
}

static void test_deterministic(void)
{
	cleanup_sbom_packages ocil_sbom_packages a = {0}, b = {0}, c = {0};
	two_packages(&a, false);
	two_packages(&b, true);
	two_packages(&c, false);
	free(c.v[1].version);
	c.v[1].version = ocil_xstrdup("1.24.3");
	ocil_sbom_opts o = {.name = "oci:out:latest"};
	cleanup_free char *s1 = built_text(&o, &a);
	cleanup_free char *s2 = built_text(&o, &a);
	cleanup_free char *s3 = built_text(&o, &b);
	cleanup_free char *s4 = built_text(&o, &c);
	CHECK(s1 && s2 && s3 && s4);
	CHECK_STREQ(s1, s2);
	CHECK_STREQ(s1, s3); /* input order does not matter */
	CHECK(strcmp(s1, s4) != 0);
	CHECK(strstr(s1, "\"created\": \"1970-01-01T00:00:00Z\"") != NULL);

	/* another package list, another namespace */
	cleanup_json json_t *d1 = built(&o, &a);
	cleanup_json json_t *d4 = built(&o, &c);
	CHECK(strcmp(pstr(d1, "documentNamespace"), pstr(d4, "documentNamespace")) != 0);
	/* the image digest is part of it too */
	ocil_sbom_opts o2 = o;
	o2.image_digest = "sha256:" SHA_A;
	cleanup_json json_t *d5 = built(&o2, &a);
	CHECK(strcmp(pstr(d1, "documentNamespace"), pstr(d5, "documentNamespace")) != 0);

	/* an empty list is a valid document */
	ocil_sbom_packages none = {0};
	cleanup_json json_t *d6 = built(&o, &none);
	CHECK(d6 != NULL);
	CHECK(json_array_size(json_object_get(d6, "packages")) == 0);
	CHECK(json_array_size(json_object_get(d6, "relationships")) == 0);
}

static void test_bad_opts(void)
{
	ocil_sbom_packages none = {0};
	ocil_error *err = NULL;
	json_t *doc = NULL;
	ocil_sbom_opts o = {.name = NULL};
	CHECK_FAIL(ocil_sbom_build(&o, &none, &doc, &err), &err, OCIL_E_USAGE, "no document name");
	o.name = "x";
	o.created = -1;
	CHECK_FAIL(ocil_sbom_build(&o, &none, &doc, &err), &err, OCIL_E_USAGE,
		   "not between 1970 and 9999");
	o.created = 253402300800LL;
	CHECK_FAIL(ocil_sbom_build(&o, &none, &doc, &err), &err, OCIL_E_USAGE,
		   "not between 1970 and 9999");
	o.created = 253402300799LL;
	CHECK_OK(ocil_sbom_build(&o, &none, &doc, &err), &err);
	CHECK_STREQ(pstr(json_object_get(doc, "creationInfo"), "created"), "9999-12-31T23:59:59Z");
	json_decref(doc);
}

static void test_id_sanitization(void)
{
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	add(&l, pkg("foo_bar", "1.0+local!2", "0", NULL, NULL, NULL, NULL, NULL));
	add(&l, pkg("foo-bar", "1.0+local!2", "0", NULL, NULL, NULL, NULL, NULL));
	add(&l, pkg("foo-bar", "1.0-local-2", "0", NULL, NULL, NULL, NULL, NULL));
	add(&l, pkg("x/y z", "2", "0", NULL, NULL, NULL, NULL, NULL));
	ocil_sbom_opts o = {.name = "prefix"};
	cleanup_json json_t *doc = built(&o, &l);
	CHECK(doc != NULL);
	const json_t *pk = json_object_get(doc, "packages");
	CHECK(json_array_size(pk) == 4);
	/* sorted: "foo-bar" < "foo_bar" < "x/y z"; versions "1.0+..." <
	 * "1.0-..." */
	CHECK_STREQ(pstr(json_array_get(pk, 0), "SPDXID"), "SPDXRef-Package-foo-bar-1.0-local-2");
	CHECK_STREQ(pstr(json_array_get(pk, 1), "SPDXID"), "SPDXRef-Package-foo-bar-1.0-local-2-2");
	CHECK_STREQ(pstr(json_array_get(pk, 2), "SPDXID"), "SPDXRef-Package-foo-bar-1.0-local-2-3");
	CHECK_STREQ(pstr(json_array_get(pk, 2), "name"), "foo_bar");
	CHECK_STREQ(pstr(json_array_get(pk, 3), "SPDXID"), "SPDXRef-Package-x-y-z-2");
	/* every id is SPDXRef-[A-Za-z0-9.-]+ and unique */
	size_t i;
	const json_t *p;
	json_array_foreach(pk, i, p)
	{
		const char *id = pstr(p, "SPDXID") + strlen("SPDXRef-");
		CHECK(strspn(id,
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") ==
		      strlen(id));
	}
	/* the purl keeps the real name and version, encoded */
	CHECK_STREQ(purl_of(json_array_get(pk, 0)), "pkg:conda/foo-bar@1.0%2Blocal%212?build=0");
	CHECK_STREQ(purl_of(json_array_get(pk, 3)), "pkg:conda/x%2Fy%20z@2?build=0");
	/* the document name in the namespace, sanitized */
	ocil_sbom_opts o2 = {.name = "oci:/tmp/a b/out:v1"};
	cleanup_json json_t *d2 = built(&o2, &l);
	CHECK(ocil_str_has_prefix(pstr(d2, "documentNamespace"),
				  "https://spdx.org/spdxdocs/ocilambda/oci-tmp-a-b-out-v1-"));
}

static void test_escaping(void)
{
	const char *nasty = "weird \"quoted\" \\ back\nslash\ttab \x01 \xc3\x9cnic\xc3\xb6"
			    "de";
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	add(&l, pkg("a", "1", "0", NULL, NULL, NULL, nasty, NULL));
	add(&l, pkg("b", "1", "0", NULL, NULL, NULL, nasty, NULL)); /* same text, same ref */
	add(&l, pkg("c", "1", "0", NULL, NULL, NULL, "weird-quoted-back-slash", NULL));
	ocil_sbom_opts o = {.name = "na\"me\n\xff"}; /* not UTF-8 */
	cleanup_free char *text = built_text(&o, &l);
	CHECK(text != NULL);
	/* it parses back, and the text is there unchanged */
	json_error_t je;
	cleanup_json json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	CHECK(doc != NULL);
	CHECK_STREQ(pstr(doc, "name"), "na\"me\n?");
	const json_t *a = package_named(doc, "a"), *b = package_named(doc, "b"),
		     *c = package_named(doc, "c");
	CHECK_STREQ(pstr(a, "licenseDeclared"), "LicenseRef-weird-quoted-back-slash-tab-nic-de");
	CHECK_STREQ(pstr(b, "licenseDeclared"), pstr(a, "licenseDeclared"));
	/* a valid expression stays as is */
	CHECK_STREQ(pstr(c, "licenseDeclared"), "weird-quoted-back-slash");
	const json_t *ex = json_object_get(doc, "hasExtractedLicensingInfos");
	CHECK(json_array_size(ex) == 1);
	CHECK_STREQ(pstr(json_array_get(ex, 0), "licenseId"),
		    "LicenseRef-weird-quoted-back-slash-tab-nic-de");
	CHECK_STREQ(pstr(json_array_get(ex, 0), "extractedText"), nasty);
	/* raw control characters never reach the file */
	CHECK(strchr(text, '\x01') == NULL);
	CHECK(strchr(text, '\t') == NULL);
}

static void test_license_expressions(void)
{
	static const char *const valid[] = {
	    "MIT",
	    "BSD-3-Clause",
	    "GPL-2.0+",
	    "GPL-2.0-or-later WITH Classpath-exception-2.0",
	    "BSD-3-Clause OR (Apache-2.0 AND MIT)",
	    "((MIT))",
	    "LicenseRef-custom",
	    "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
	    "LGPL-2.1-only AND (MIT OR Zlib) AND PSF-2.0",
	};
	static const struct {
		const char *text, *id;
	} invalid[] = {
	    {"BSD 3-Clause", "LicenseRef-BSD-3-Clause"},
	    {"MIT or Apache-2.0", "LicenseRef-MIT-or-Apache-2.0"},
	    {"(MIT", "LicenseRef-MIT"},
	    {"MIT AND", "LicenseRef-MIT-AND"},
	    {"AND", "LicenseRef-AND"},
	    {"(MIT) WITH x", "LicenseRef-MIT-WITH-x"},
	    {"GPL-2.0 WITH", "LicenseRef-GPL-2.0-WITH"},
	    {"LicenseRef-x+", "LicenseRef-LicenseRef-x"},
	    {"???", "LicenseRef-unknown"},
	    {"MIT, BSD", "LicenseRef-MIT-BSD"},
	};
	size_t nv = sizeof(valid) / sizeof(valid[0]), ni = sizeof(invalid) / sizeof(invalid[0]);
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	char name[16];
	for (size_t i = 0; i < nv; i++) {
		snprintf(name, sizeof(name), "v%02zu", i);
		add(&l, pkg(name, "1", "0", NULL, NULL, NULL, valid[i], NULL));
	}
	for (size_t i = 0; i < ni; i++) {
		snprintf(name, sizeof(name), "x%02zu", i);
		add(&l, pkg(name, "1", "0", NULL, NULL, NULL, invalid[i].text, NULL));
	}
	add(&l, pkg("z-none", "1", "0", NULL, NULL, NULL, NULL, NULL));
	/* deeper than the parser goes */
	char deep[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "(");
	strcat(deep, "MIT");
	for (int i = 0; i < 40; i++)
		strcat(deep, ")");
	add(&l, pkg("z-deep", "1", "0", NULL, NULL, NULL, deep, NULL));
	ocil_sbom_opts o = {.name = "x"};
	cleanup_json json_t *doc = built(&o, &l);
	CHECK(doc != NULL);
	for (size_t i = 0; i < nv; i++) {
		snprintf(name, sizeof(name), "v%02zu", i);
		CHECK_STREQ(pstr(package_named(doc, name), "licenseDeclared"), valid[i]);
	}
	for (size_t i = 0; i < ni; i++) {
		snprintf(name, sizeof(name), "x%02zu", i);
		CHECK_STREQ(pstr(package_named(doc, name), "licenseDeclared"), invalid[i].id);
	}
	CHECK_STREQ(pstr(package_named(doc, "z-none"), "licenseDeclared"), "NOASSERTION");
	CHECK_STREQ(pstr(package_named(doc, "z-deep"), "licenseDeclared"), "LicenseRef-MIT-2");
	/* "(MIT" and the deep one both sanitize to MIT: two refs, two ids */
	const json_t *ex = json_object_get(doc, "hasExtractedLicensingInfos");
	CHECK(json_array_size(ex) == ni + 1);
	CHECK_STREQ(pstr(json_array_get(ex, ni), "licenseId"), "LicenseRef-MIT-2");
}

static void test_channels(void)
{
	static const struct {
		const char *channel, *subdir, *fn, *url, *name, *download;
	} cases[] = {
	    {CF, "linux-64", "p-1-0.conda", NULL, "conda-forge", CF "/p-1-0.conda"},
	    {CF "/", "linux-64", NULL, NULL, "conda-forge", "NOASSERTION"},
	    {"https://conda.anaconda.org/conda-forge", "noarch", "p-1-0.tar.bz2", NULL,
	     "conda-forge", "https://conda.anaconda.org/conda-forge/noarch/p-1-0.tar.bz2"},
	    {"https://repo.anaconda.com/pkgs/main/linux-64", "linux-64", "p-1-0.conda", NULL,
	     "main", "https://repo.anaconda.com/pkgs/main/linux-64/p-1-0.conda"},
	    {"https://conda.anaconda.org/bioconda/label/dev", "linux-64", NULL, NULL,
	     "bioconda/label/dev", "NOASSERTION"},
	    {"https://mirror.example/conda/linux-64", "linux-64", "p-1-0.conda",
	     "https://mirror.example/conda/linux-64/p-1-0.conda", "https://mirror.example/conda",
	     "https://mirror.example/conda/linux-64/p-1-0.conda"},
	    {"conda-forge", "linux-64", "p-1-0.conda", NULL, "conda-forge", "NOASSERTION"},
	    {NULL, NULL, NULL, NULL, NULL, "NOASSERTION"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cleanup_sbom_packages ocil_sbom_packages l = {0};
		ocil_sbom_package p =
		    pkg("p", "1", "0", cases[i].channel, cases[i].subdir, cases[i].fn, NULL, NULL);
		p.url = cases[i].url ? ocil_xstrdup(cases[i].url) : NULL;
		cleanup_free char *name = ocil_sbom_channel_name(&p);
		if (cases[i].name == NULL)
			CHECK(name == NULL);
		else
			CHECK_STREQ(name, cases[i].name);
		ocil_sbom_packages_push(&l, &p);
		ocil_sbom_opts o = {.name = "x"};
		cleanup_json json_t *doc = built(&o, &l);
		CHECK(doc != NULL);
		CHECK_STREQ(pstr(package_named(doc, "p"), "downloadLocation"), cases[i].download);
	}
	ocil_sbom_package p =
	    pkg("p", "1", "0", "https://mirror.example/c", NULL, "p.conda", NULL, NULL);
	cleanup_free char *purl = ocil_sbom_purl(&p);
	CHECK_STREQ(purl, "pkg:conda/p@1?build=0&channel=https%3A%2F%2Fmirror.example%2Fc&"
			  "type=conda");
	ocil_sbom_package_clear(&p);
}

/* ---- records ---- */

static int record_from(const char *text, ocil_sbom_package *p, ocil_error **err)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (j == NULL) {
		fprintf(stderr, "bad test JSON: %s\n", je.text);
		return -2;
	}
	int r = ocil_sbom_package_from_record(j, "rec.json", p, err);
	json_decref(j);
	return r;
}

static void test_from_record(void)
{
	ocil_sbom_package p;
	ocil_error *err = NULL;
	CHECK_OK(record_from("{\"name\":\"zlib\",\"version\":\"1.2.13\",\"build\":\"h_0\","
			     "\"channel\":null,\"subdir\":\"\",\"license\":\"Zlib\",\"sha256\":"
			     "\"2C3B63932677C8248C81495F8D3DA0F0AD4236C978403DDC6FA444983C4E5800\","
			     "\"fn\":\"zlib-1.2.13-h_0.conda\",\"files\":[],\"depends\":[]}",
			     &p, &err),
		 &err);
	CHECK_STREQ(p.name, "zlib");
	CHECK_STREQ(p.version, "1.2.13");
	CHECK_STREQ(p.build, "h_0");
	CHECK(p.channel == NULL);
	CHECK(p.subdir == NULL); /* "" is not recorded */
	CHECK_STREQ(p.license, "Zlib");
	CHECK_STREQ(p.sha256, SHA_A); /* lowercased */
	CHECK_STREQ(p.fn, "zlib-1.2.13-h_0.conda");
	ocil_sbom_package_clear(&p);

	CHECK_FAIL(record_from("[]", &p, &err), &err, OCIL_E_INPUT,
		   "rec.json: malformed conda record: not a JSON object");
	CHECK_FAIL(record_from("{\"version\":\"1\",\"build\":\"0\"}", &p, &err), &err, OCIL_E_INPUT,
		   "rec.json: malformed conda record: no \"name\"");
	CHECK_FAIL(record_from("{\"name\":\"a\",\"version\":\"\",\"build\":\"0\"}", &p, &err), &err,
		   OCIL_E_INPUT, "no \"version\"");
	CHECK_FAIL(record_from("{\"name\":\"a\",\"version\":\"1\",\"build\":5}", &p, &err), &err,
		   OCIL_E_INPUT, "\"build\" is not a string");
	CHECK_FAIL(record_from("{\"name\":\"a\",\"version\":\"1\",\"build\":\"0\",\"license\":"
			       "[\"MIT\"]}",
			       &p, &err),
		   &err, OCIL_E_INPUT, "\"license\" is not a string");
	CHECK_FAIL(record_from("{\"name\":\"a\",\"version\":\"1\",\"build\":\"0\",\"sha256\":"
			       "\"abc\"}",
			       &p, &err),
		   &err, OCIL_E_INPUT, "\"sha256\" is not 64 hex digits");
}

/* to_json and back gives the same list, hence the same document */
static void test_packages_json(void)
{
	ocil_error *err = NULL;
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	ocil_sbom_package a = pkg("zlib", "1.2.13", "h_0", "https://conda.anaconda.org/conda-forge",
				  "linux-64", "zlib-1.2.13-h_0.conda", "Zlib", SHA_A);
	ocil_sbom_package b = pkg("tzdata", "2024a", "0", NULL, NULL, NULL, NULL, NULL);
	ocil_sbom_packages_push(&l, &a);
	ocil_sbom_packages_push(&l, &b);
	cleanup_json json_t *j = ocil_sbom_packages_to_json(&l);
	CHECK(json_array_size(j) == 2);
	CHECK(json_object_get(json_array_get(j, 1), "channel") == NULL);
	cleanup_sbom_packages ocil_sbom_packages back = {0};
	CHECK_OK(ocil_sbom_packages_from_json(j, &back, &err), &err);
	CHECK(back.n == 2);
	ocil_sbom_opts o = {.name = "x", .created = 0};
	cleanup_json json_t *d1 = NULL;
	cleanup_json json_t *d2 = NULL;
	CHECK_OK(ocil_sbom_build(&o, &l, &d1, &err), &err);
	CHECK_OK(ocil_sbom_build(&o, &back, &d2, &err), &err);
	CHECK(json_equal(d1, d2));

	cleanup_sbom_packages ocil_sbom_packages bad = {0};
	cleanup_json json_t *notarray = json_object();
	CHECK_FAIL(ocil_sbom_packages_from_json(notarray, &bad, &err), &err, OCIL_E_INPUT,
		   "not a JSON array");
	json_object_del(json_array_get(j, 1), "name");
	CHECK_FAIL(ocil_sbom_packages_from_json(j, &bad, &err), &err, OCIL_E_INPUT,
		   "element 1: malformed conda record: no \"name\"");
}

static int put(const char *rel, const char *content)
{
	return putn(rel, content, strlen(content), 0644);
}

#define REC(name, version)                                                                         \
	"{\"name\":\"" name "\",\"version\":\"" version "\",\"build\":\"0\",\"license\":\"MIT\"}"

static void test_read_prefix(void)
{
	CHECK(put("env/conda-meta/zlib-1-0.json", REC("zlib", "1")) == 0);
	CHECK(put("env/conda-meta/abc-2-0.json", REC("abc", "2")) == 0);
	CHECK(put("env/conda-meta/.hidden.json", "not json") == 0);
	CHECK(put("env/conda-meta/history", "==> 2023 <==\n") == 0);
	CHECK(put("env/conda-meta/notes.txt", "x") == 0);
	cleanup_free char *env = tpath("env");
	ocil_error *err = NULL;
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	/* what was there stays first */
	add(&l, pkg("earlier", "0", "0", NULL, NULL, NULL, NULL, NULL));
	CHECK_OK(ocil_sbom_read_prefix(env, &l, &err), &err);
	CHECK(l.n == 3);
	CHECK_STREQ(l.v[0].name, "earlier");
	CHECK_STREQ(l.v[1].name, "abc");
	CHECK_STREQ(l.v[2].name, "zlib");

	cleanup_free char *none = tpath("none");
	CHECK_FAIL(ocil_sbom_read_prefix(none, &l, &err), &err, OCIL_E_INPUT,
		   "is not a conda prefix: no conda-meta directory");
	CHECK(put("bad/conda-meta/a.json", "{\"name\":\"a\"") == 0);
	cleanup_free char *bad = tpath("bad");
	CHECK_FAIL(ocil_sbom_read_prefix(bad, &l, &err), &err, OCIL_E_INPUT,
		   "bad/conda-meta/a.json: malformed JSON");
	CHECK(put("bad2/conda-meta/a.json", "{\"name\":\"a\",\"version\":\"1\"}") == 0);
	cleanup_free char *bad2 = tpath("bad2");
	CHECK_FAIL(ocil_sbom_read_prefix(bad2, &l, &err), &err, OCIL_E_INPUT,
		   "bad2/conda-meta/a.json: malformed conda record: no \"build\"");
	/* a record may not lead out of the prefix */
	CHECK(put("outside.json", REC("o", "1")) == 0);
	cleanup_free char *outside = tpath("outside.json");
	CHECK(put("bad3/conda-meta/.keep", "") == 0);
	CHECK(sym(outside, "bad3/conda-meta/o.json") == 0);
	cleanup_free char *bad3 = tpath("bad3");
	CHECK_FAIL(ocil_sbom_read_prefix(bad3, &l, &err), &err, OCIL_E_INPUT,
		   "bad3/conda-meta/o.json");
	CHECK(l.n == 3);
}

static void test_read_rootfs(void)
{
	const tent ents[] = {
	    {"opt/", 'd', NULL, 0, 0},
	    {"opt/env/", 'd', NULL, 0, 0},
	    {"opt/env/conda-meta/", 'd', NULL, 0, 0},
	    {"opt/env/conda-meta/zlib-1-0.json", 'f', REC("zlib", "1"), 0, 0},
	    {"opt/env/conda-meta/abc-2-0.json", 'f', REC("abc", "2"), 0, 0},
	    {"opt/env/conda-meta/.partial.json", 'f', "{", 0, 0},
	    {"opt/env/conda-meta/history", 'f', "x", 0, 0},
	    {"opt/env/conda-meta/link.json", 'l', "abc-2-0.json", 0, 0},
	    {"opt/bad/conda-meta/", 'd', NULL, 0, 0},
	    {"opt/bad/conda-meta/dir.json/", 'd', NULL, 0, 0},
	};
	cleanup_free char *layer =
	    mk_tar("l.tar.gz", "gzip", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ents, NENTS(ents));
	CHECK(layer != NULL);
	const char *paths[] = {layer};
	ocil_error *err = NULL;
	cleanup_rootfs ocil_rootfs *fs = NULL;
	CHECK_OK(ocil_rootfs_open(paths, 1, NULL, &fs, &err), &err);
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	CHECK_OK(ocil_sbom_read_rootfs(fs, "/opt/env", &l, &err), &err);
	/* the symlinked record counts as its target's package again */
	CHECK(l.n == 3);
	CHECK_STREQ(l.v[0].name, "abc");
	CHECK_STREQ(l.v[1].name, "abc");
	CHECK_STREQ(l.v[2].name, "zlib");
	CHECK_STREQ(l.v[2].license, "MIT");
	CHECK_FAIL(ocil_sbom_read_rootfs(fs, "/opt/none", &l, &err), &err, OCIL_E_INPUT,
		   "/opt/none is not a conda prefix");
	CHECK_FAIL(ocil_sbom_read_rootfs(fs, "/opt/bad", &l, &err), &err, OCIL_E_INPUT,
		   "/opt/bad/conda-meta/dir.json: not a regular file");
}

/* ---- writing ---- */

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	if (d != NULL)
		closedir(d);
	return n;
}

static void test_write_atomic(void)
{
	cleanup_sbom_packages ocil_sbom_packages l = {0};
	two_packages(&l, false);
	ocil_sbom_opts o = {.name = "oci:out:latest", .created = 0};
	ocil_error *err = NULL;
	CHECK(put("out/old.spdx.json", "old content") == 0);
	cleanup_free char *dir = tpath("out");
	cleanup_free char *path = tpath("out/old.spdx.json");
	CHECK_OK(ocil_sbom_write(path, &o, &l, &err), &err);
	CHECK(count_entries(dir) == 1); /* replaced, no temporary left */
	cleanup_free char *text = NULL;
	size_t len = 0;
	CHECK_OK(ocil_read_file(path, 1 << 20, &text, &len, &err), &err);
	cleanup_free char *want = built_text(&o, &l);
	CHECK(want != NULL);
	CHECK(len == strlen(want) + 1 && text[len - 1] == '\n');
	CHECK(strncmp(text, want, len - 1) == 0);
	CHECK(ocil_str_has_prefix(text, "{\n  \"spdxVersion\": \"SPDX-2.3\",\n"));
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);

	/* a failed write leaves what was there and no temporary file */
	cleanup_free char *taken = tpath("out/taken");
	CHECK(put("out/taken/keep", "x") == 0);
	CHECK_FAIL(ocil_sbom_write(taken, &o, &l, &err), &err, OCIL_E_IO, "out/taken");
	CHECK(count_entries(dir) == 2);
	CHECK(count_entries(taken) == 1);
	cleanup_free char *nodir = tpath("missing/x.json");
	CHECK_FAIL(ocil_sbom_write(nodir, &o, &l, &err), &err, OCIL_E_IO, "missing/x.json");
	/* a bad document writes nothing */
	ocil_sbom_opts bad = {.name = "x", .created = -5};
	cleanup_free char *p2 = tpath("out/new.json");
	CHECK_FAIL(ocil_sbom_write(p2, &bad, &l, &err), &err, OCIL_E_USAGE, "creation time");
	CHECK(access(p2, F_OK) != 0);
	CHECK(count_entries(dir) == 2);
}

TEST_MAIN(T(test_document_fields), T(test_deterministic), T(test_bad_opts), T(test_id_sanitization),
	  T(test_escaping), T(test_license_expressions), T(test_channels), T(test_from_record),
	  T(test_packages_json), T(test_read_prefix), T(test_read_rootfs), T(test_write_atomic))
