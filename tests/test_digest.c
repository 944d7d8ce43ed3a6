#include "base/digest.h"
#include "test.h"

static void valid_and_invalid(void)
{
	CHECK(ocil_digest_valid(
	    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	CHECK(!ocil_digest_valid(
	    "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
	CHECK(!ocil_digest_valid("sha256:e3b0"));
	CHECK(!ocil_digest_valid(
	    "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	CHECK(!ocil_digest_valid(NULL));
	ocil_error *err = NULL;
	CHECK_FAIL(ocil_digest_check("sha256:zz", "manifest", &err), &err, OCIL_E_INPUT,
		   "manifest: invalid digest");
}

static void empty_and_streaming(void)
{
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf("", 0, d);
	CHECK_STREQ(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	ocil_hasher *h = ocil_hasher_new();
	ocil_hasher_update(h, "ab", 2);
	ocil_hasher_update(h, "c", 1);
	ocil_hasher_final(h, d);
	ocil_hasher_free(h);
	CHECK_STREQ(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_MAIN(T(valid_and_invalid), T(empty_and_streaming))
