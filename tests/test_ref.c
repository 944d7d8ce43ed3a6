#include <string.h>

#include "oci/ref.h"
#include "registry/registry.h"
#include "test.h"
#include "transport/sink_archive.h"

static void docker_refs(void)
{
	ocil_error *err = NULL;
	ocil_ref r;
	CHECK_OK(ocil_ref_parse("public.ecr.aws/lambda/python:3.8", &r, &err), &err);
	CHECK(r.transport == OCIL_REF_DOCKER);
	CHECK_STREQ(r.registry, "public.ecr.aws");
	CHECK_STREQ(r.repository, "lambda/python");
	CHECK_STREQ(r.tag, "3.8");
	ocil_ref_clear(&r);

	CHECK_OK(ocil_ref_parse("python:3.8", &r, &err), &err);
	CHECK_STREQ(r.registry, "registry-1.docker.io");
	CHECK_STREQ(r.repository, "library/python");
	ocil_ref_clear(&r);

	CHECK_OK(ocil_ref_parse("docker://127.0.0.1:5000/fn", &r, &err), &err);
	CHECK_STREQ(r.registry, "127.0.0.1:5000");
	CHECK_STREQ(r.repository, "fn");
	CHECK_STREQ(r.tag, "latest");
	ocil_ref_clear(&r);

	CHECK_OK(ocil_ref_parse("localhost/a/b@sha256:"
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
				&r, &err),
		 &err);
	CHECK_STREQ(r.registry, "localhost");
	CHECK(r.tag == NULL);
	CHECK(r.digest != NULL);
	ocil_ref_clear(&r);

	CHECK_FAIL(ocil_ref_parse("Upper/Case:1", &r, &err), &err, OCIL_E_INPUT,
		   "invalid repository name");
	CHECK_FAIL(ocil_ref_parse("python@sha256:abc", &r, &err), &err, OCIL_E_INPUT,
		   "invalid digest");
	CHECK_FAIL(ocil_ref_parse("ftp://x/y", &r, &err), &err, OCIL_E_INPUT, "unknown transport");
}

static void local_refs(void)
{
	ocil_error *err = NULL;
	ocil_ref r;
	CHECK_OK(ocil_ref_parse("oci:./base:3.8", &r, &err), &err);
	CHECK(r.transport == OCIL_REF_OCI);
	CHECK_STREQ(r.path, "./base");
	CHECK_STREQ(r.tag, "3.8");
	ocil_ref_clear(&r);
	CHECK_OK(ocil_ref_parse("oci:out", &r, &err), &err);
	CHECK(r.tag == NULL);
	ocil_ref_clear(&r);
	CHECK_OK(ocil_ref_parse("docker-archive:./fn.tar:fn:v1", &r, &err), &err);
	CHECK(r.transport == OCIL_REF_DOCKER_ARCHIVE);
	CHECK_STREQ(r.path, "./fn.tar");
	CHECK_STREQ(r.tag, "fn:v1");
	ocil_ref_clear(&r);
	CHECK_FAIL(ocil_ref_parse("oci:", &r, &err), &err, OCIL_E_INPUT, "empty directory name");
	CHECK_FAIL(ocil_ref_parse("oci:x:bad/tag", &r, &err), &err, OCIL_E_INPUT, "invalid tag");
	CHECK_FAIL(ocil_ref_parse("oci:x:.hidden", &r, &err), &err, OCIL_E_INPUT, "invalid tag");
}

/* One grammar: the reference parser, the registry client and the
 * docker-archive RepoTags parser give the same verdict on every name. These
 * cases split the three former grammars (ref.c took "a..b", registry.c did
 * not; only the archive's knew '__' and uppercase hosts). */
static void one_grammar(void)
{
	static const struct {
		const char *host, *repo, *tag;
		bool ok;
	} cases[] = {
	    {"registry.example", "lambda/python", "3.8", true},
	    {"registry.example", "a..b", "1", false},
	    {"registry.example", "a.b", "1", true},
	    {"registry.example", "a__b", "1", true},
	    {"registry.example", "a___b", "1", false},
	    {"registry.example", "a---b", "1", true},
	    {"registry.example", "a._b", "1", false},
	    {"registry.example", "-ab", "1", false},
	    {"registry.example", "ab-", "1", false},
	    {"registry.example", ".ab", "1", false},
	    {"registry.example", "Lambda/python", "1", false},
	    {"registry.example", "a//b", "1", false},
	    {"registry.example", "a/b/c/d", "1", true},
	    {"registry.example", "lambda/python", ".hidden", false},
	    {"registry.example", "lambda/python", "-x", false},
	    {"registry.example", "lambda/python", "_x.Y-1", true},
	    {"registry.example", "lambda/python", "a+b", false},
	    {"127.0.0.1:5000", "fn", "v1", true},
	    {"localhost:5000", "fn", "v1", true},
	    {"[::1]:5000", "fn", "v1", true},
	    {"Registry.Example", "fn", "v1", true},
	    {"reg_istry.example", "fn", "v1", false},
	    {"-registry.example", "fn", "v1", false},
	    {"registry.example:", "fn", "v1", false},
	    {"registry.example:5x", "fn", "v1", false},
	    {"registry..example", "fn", "v1", false},
	};
	char long_tag[130];
	memset(long_tag, 'a', 129);
	long_tag[129] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) + 1; i++) {
		bool last = i == sizeof(cases) / sizeof(cases[0]);
		const char *host = last ? "registry.example" : cases[i].host;
		const char *repo = last ? "fn" : cases[i].repo;
		const char *tag = last ? long_tag : cases[i].tag;
		bool want = last ? false : cases[i].ok;
		cleanup_free char *name = ocil_xasprintf("%s/%s:%s", host, repo, tag);
		ocil_error *err = NULL;

		ocil_ref r;
		bool ref_ok = ocil_ref_parse(name, &r, &err) == 0;
		ocil_ref_clear(&r);
		ocil_error_free(err);
		err = NULL;

		char *arepo = NULL, *atag = NULL;
		bool arch_ok = ocil_archive_parse_tag(name, &arepo, &atag, &err) == 0;
		free(arepo);
		free(atag);
		ocil_error_free(err);
		err = NULL;

		ocil_registry *reg = NULL;
		bool reg_ok = ocil_registry_open(host, repo, NULL, &reg, &err) == 0 &&
			      ocil_ref_tag_valid(tag);
		ocil_registry_free(reg);
		ocil_error_free(err);

		if (ref_ok != want || arch_ok != want || reg_ok != want) {
			fprintf(stderr, "%s: want %s; ref %d, archive %d, registry %d\n", name,
				want ? "valid" : "invalid", ref_ok, arch_ok, reg_ok);
			CHECK(!"the three agree with the grammar");
		}
	}
}

TEST_MAIN(T(docker_refs), T(local_refs), T(one_grammar))
