#include "ref.h"
#include "test.h"

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

TEST_MAIN(T(docker_refs), T(local_refs))
