#include <string.h>

#include "base/json.h"
#include "base/util.h"
#include "oci/image.h"
#include "test.h"
#include "transport/source.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static const char *index_doc =
    "{\"schemaVersion\":2,\"mediaType\":\"" OCIL_MT_OCI_INDEX "\",\"manifests\":["
    "{\"mediaType\":\"" OCIL_MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":10,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
    "{\"mediaType\":\"" OCIL_MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":11,"
    "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},"
    "{\"mediaType\":\"" OCIL_MT_OCI_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":12,"
    "\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"},"
    "\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\"}}]}";

static void select_platform(void)
{
	ocil_error *err = NULL;
	ocil_platform p;
	ocil_descriptor d;
	CHECK_OK(ocil_platform_parse("linux/arm64", &p, &err), &err);
	CHECK_OK(ocil_index_select(index_doc, strlen(index_doc), "idx", &p, &d, &err), &err);
	CHECK_STREQ(d.digest, D2);
	CHECK(d.size == 11);
	ocil_descriptor_clear(&d);
	ocil_platform_clear(&p);
	CHECK_OK(ocil_platform_parse("linux/s390x", &p, &err), &err);
	CHECK_FAIL(ocil_index_select(index_doc, strlen(index_doc), "idx", &p, &d, &err), &err,
		   OCIL_E_INPUT,
		   "no image for platform linux/s390x (available: linux/amd64, linux/arm64/v8)");
	ocil_platform_clear(&p);
	CHECK_FAIL(ocil_platform_parse("amd64", &p, &err), &err, OCIL_E_USAGE, "invalid platform");
}

/* What an index or a registry announces must be what the bytes say. */
static void media_type_mismatch(void)
{
	ocil_error *err = NULL;
	ocil_manifest m;
	const char *oci = "{\"schemaVersion\":2,\"mediaType\":\"" OCIL_MT_OCI_MANIFEST
			  "\",\"config\":{\"mediaType\":\"" OCIL_MT_OCI_CONFIG "\",\"digest\":\"" D1
			  "\",\"size\":5},\"layers\":[]}";
	CHECK_FAIL(ocil_manifest_parse(oci, strlen(oci), "m", OCIL_MT_DOCKER_MANIFEST, &m, &err),
		   &err, OCIL_E_INPUT,
		   "m: mediaType is " OCIL_MT_OCI_MANIFEST
		   ", but it was announced as " OCIL_MT_DOCKER_MANIFEST);
	CHECK_FAIL(ocil_manifest_parse(oci, strlen(oci), "m", OCIL_MT_OCI_INDEX, &m, &err), &err,
		   OCIL_E_INPUT, "announced as " OCIL_MT_OCI_INDEX);
	/* generic Content-Types are no announcement */
	CHECK_OK(ocil_manifest_parse(oci, strlen(oci), "m", "application/json", &m, &err), &err);
	ocil_manifest_clear(&m);

	ocil_platform p = {.os = "linux", .arch = "amd64"};
	ocil_descriptor d;
	const char *nested =
	    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" OCIL_MT_OCI_INDEX
	    "\",\"digest\":\"" D1
	    "\",\"size\":3,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	CHECK_FAIL(ocil_index_select(nested, strlen(nested), "idx", &p, &d, &err), &err,
		   OCIL_E_INPUT,
		   "idx: manifests[0]: media type " OCIL_MT_OCI_INDEX " is not an image manifest");
	const char *notindex =
	    "{\"schemaVersion\":2,\"mediaType\":\"" OCIL_MT_OCI_MANIFEST "\",\"manifests\":[]}";
	CHECK_FAIL(ocil_index_select(notindex, strlen(notindex), "idx", &p, &d, &err), &err,
		   OCIL_E_INPUT, "is not an index");
	const char *traversal =
	    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" OCIL_MT_OCI_MANIFEST
	    "\",\"digest\":\"sha256:../../../etc/passwd\",\"size\":3,"
	    "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
	CHECK_FAIL(ocil_index_select(traversal, strlen(traversal), "idx", &p, &d, &err), &err,
		   OCIL_E_INPUT, "invalid digest \"sha256:../../../etc/passwd\"");
}

/* A config must describe the manifest's layers with valid diff_ids. */
static void config_checks(void)
{
	ocil_error *err = NULL;
	ocil_descriptor layer = {.media_type = OCIL_MT_OCI_LAYER_GZIP, .digest = D2, .size = 1};
	ocil_source s = {.name = "img", .manifest = {.layers = &layer, .n_layers = 1}};
	ocil_platform p = {.os = "linux", .arch = "amd64"};
	static const char *const bad[][2] = {
	    {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"diff_ids\":[]}}",
	     "0 diff_ids for 1 layers in the manifest"},
	    {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"diff_ids\":[\"sha256:../"
	     "x\"]}}",
	     "rootfs.diff_ids[0]: invalid digest"},
	    {"{\"os\":\"linux\",\"architecture\":\"amd64\"}", "rootfs.diff_ids missing"},
	    {"{\"os\":\"linux\",\"architecture\":\"arm64\",\"rootfs\":{\"diff_ids\":[]}}",
	     "image is linux/arm64, not linux/amd64"},
	    {"{\"os\":\"linux\",\"os\":\"linux\"}", "duplicate object key"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_FAIL(ocil_source_set_config(&s, ocil_xstrdup(bad[i][0]), strlen(bad[i][0]),
						  &p, &err),
			   &err, OCIL_E_INPUT, bad[i][1]);
	const char *good =
	    "{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"diff_ids\":[\"" D1 "\"]}}";
	CHECK_OK(ocil_source_set_config(&s, ocil_xstrdup(good), strlen(good), &p, &err), &err);
	json_decref(s.config);
	free(s.config_raw);
}

/* Caps and shapes of JSON from outside (jansson's strict mode plus ours). */
static void hostile_json(void)
{
	ocil_error *err = NULL;
	ocil_manifest m;
	const char *cases[][2] = {
	    {"{\"schemaVersion\":2,\"schemaVersion\":2}", "duplicate object key"},
	    {"{\"schemaVersion\":99999999999999999999999}", "too big"},
	    {"{\"schemaVersion\":2,\"config\":{\"size\":1e99999}}", "overflow"},
	    {"{\"a\":\"\xff\"}", "unable to decode byte 0xff"},
	    {"{\"a\":\"\\u0000\"}", "\\u0000 is not allowed"},
	    {"{\"schemaVersion\":2} {}", "end of file expected"},
	    {"{\"schemaVersion\":\"2\"}", "schemaVersion must be 2"},
	    {"[]", "not a JSON object"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_FAIL(
		    ocil_manifest_parse(cases[i][0], strlen(cases[i][0]), "m", NULL, &m, &err),
		    &err, OCIL_E_INPUT, cases[i][1]);
	size_t n = 3000;
	char *deep = malloc(2 * n + 1);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	int r = ocil_manifest_parse(deep, 2 * n, "m", NULL, &m, &err);
	free(deep);
	CHECK(r < 0 && err != NULL && strstr(err->msg, "maximum parsing depth reached") != NULL);
	ocil_error_free(err);
	err = NULL;
	size_t big = OCIL_JSON_MAX + 1;
	char *huge = malloc(big);
	memset(huge, ' ', big);
	r = ocil_manifest_parse(huge, big, "m", NULL, &m, &err);
	free(huge);
	CHECK(r < 0 && err != NULL && strstr(err->msg, "m: larger than 4194304 bytes") != NULL);
	ocil_error_free(err);
}

static void parse_manifest(void)
{
	ocil_error *err = NULL;
	ocil_manifest m;
	const char *ok =
	    "{\"schemaVersion\":2,\"mediaType\":\"" OCIL_MT_DOCKER_MANIFEST
	    "\",\"config\":{\"mediaType\":\"" OCIL_MT_DOCKER_CONFIG "\",\"digest\":\"" D1
	    "\",\"size\":5},\"layers\":[{\"mediaType\":\"" OCIL_MT_DOCKER_LAYER_GZIP
	    "\",\"digest\":\"" D2 "\",\"size\":7}]}";
	CHECK_OK(ocil_manifest_parse(ok, strlen(ok), "m", NULL, &m, &err), &err);
	CHECK(m.docker);
	CHECK(m.n_layers == 1);
	CHECK_STREQ(m.layers[0].digest, D2);
	ocil_manifest_clear(&m);

	const char *trunc = "{\"schemaVersion\":2,\"config\":";
	CHECK_FAIL(ocil_manifest_parse(trunc, strlen(trunc), "m", NULL, &m, &err), &err,
		   OCIL_E_INPUT, "m: malformed JSON");
	const char *dup = "{\"schemaVersion\":2,\"schemaVersion\":2}";
	CHECK_FAIL(ocil_manifest_parse(dup, strlen(dup), "m", NULL, &m, &err), &err, OCIL_E_INPUT,
		   "malformed JSON");
	const char *badsize =
	    "{\"schemaVersion\":2,\"mediaType\":\"" OCIL_MT_OCI_MANIFEST
	    "\",\"config\":{\"mediaType\":\"x\",\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}";
	CHECK_FAIL(ocil_manifest_parse(badsize, strlen(badsize), "m", NULL, &m, &err), &err,
		   OCIL_E_INPUT, "non-negative");
	const char *badlayer =
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D1
	    "\",\"size\":1},\"layers\":[{\"mediaType\":\"text/plain\",\"digest\":\"" D2
	    "\",\"size\":1}]}";
	CHECK_FAIL(ocil_manifest_parse(badlayer, strlen(badlayer), "m", NULL, &m, &err), &err,
		   OCIL_E_INPUT, "unsupported layer media type text/plain");
	const char *v1 = "{\"schemaVersion\":1}";
	CHECK_FAIL(ocil_manifest_parse(v1, strlen(v1), "m", NULL, &m, &err), &err, OCIL_E_INPUT,
		   "schemaVersion must be 2");
}

TEST_MAIN(T(select_platform), T(media_type_mismatch), T(hostile_json), T(config_checks),
	  T(parse_manifest))
