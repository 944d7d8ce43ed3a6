#include <string.h>

#include "base/alloc.h"
#include "base/digest.h"
#include "registry/cache_repo.h"
#include "test.h"

#define KEY "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define LAYER "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define FACTS "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define DIFF "sha256:4444444444444444444444444444444444444444444444444444444444444444"
#define EMPTY "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

static void parse_ref(void)
{
	ocil_error *err = NULL;
	char *reg = NULL, *repo = NULL;
	CHECK_OK(ocil_cache_repo_parse("127.0.0.1:5000/ci/cache", &reg, &repo, &err), &err);
	CHECK_STREQ(reg, "127.0.0.1:5000");
	CHECK_STREQ(repo, "ci/cache");
	free(reg);
	free(repo);
	CHECK_OK(ocil_cache_repo_parse("docker://registry.example/fn-cache", &reg, &repo, &err),
		 &err);
	CHECK_STREQ(reg, "registry.example");
	CHECK_STREQ(repo, "fn-cache");
	free(reg);
	free(repo);
	/* a registry is needed; no tag, no digest; a repository after it */
	const char *bad[] = {"ci/cache",
			     "registry.example/fn:latest",
			     ("registry.example/fn@" KEY),
			     "registry.example",
			     "registry.example/",
			     "registry.example/UPPER",
			     "no registry here",
			     ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_FAIL(ocil_cache_repo_parse(bad[i], &reg, &repo, &err), &err, OCIL_E_USAGE,
			   "want REGISTRY/REPOSITORY, without a tag or digest");
	char tag[OCIL_DIGEST_STR_SIZE];
	ocil_cache_repo_tag(KEY, tag);
	CHECK_STREQ(tag, "sha256-1111111111111111111111111111111111111111111111111111111111111111");
}

static char *manifest(const char *artifact, const char *key, const char *layer_mt,
		      long long layer_size, const char *extra_layer)
{
	return ocil_xasprintf(
	    "{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", "
	    "\"artifactType\": \"%s\", \"config\": {\"mediaType\": "
	    "\"application/vnd.oci.empty.v1+json\", \"digest\": \"" EMPTY "\", \"size\": 2}, "
	    "\"layers\": [{\"mediaType\": \"%s\", \"digest\": \"" LAYER "\", \"size\": %lld}, "
	    "{\"mediaType\": \"" OCIL_CACHE_REPO_FACTS "\", \"digest\": \"" FACTS
	    "\", \"size\": 100}%s], \"annotations\": {\"" OCIL_CACHE_REPO_KEY_ANN "\": \"%s\"}}",
	    artifact, layer_mt, layer_size, extra_layer, key);
}

static void parse_entries(void)
{
	const char *gz = "application/vnd.oci.image.layer.v1.tar+gzip";
	ocil_cache_repo_entry e = {0};
	ocil_descriptor f = {0};
	char *m = manifest(OCIL_CACHE_REPO_ARTIFACT, KEY, gz, 1234, "");
	CHECK(ocil_cache_repo_parse_manifest(KEY, m, strlen(m), &e, &f));
	CHECK_STREQ(e.layer.digest, LAYER);
	CHECK(e.layer.size == 1234);
	CHECK_STREQ(f.digest, FACTS);
	ocil_cache_repo_entry_clear(&e);
	ocil_descriptor_clear(&f);
	free(m);
	/* not ours, another key's, not a layer, a third layer, sizes out of range */
	char *wrong[] = {
	    manifest("application/vnd.other+json", KEY, gz, 1234, ""),
	    manifest(OCIL_CACHE_REPO_ARTIFACT, DIFF, gz, 1234, ""),
	    manifest(OCIL_CACHE_REPO_ARTIFACT, KEY, "application/vnd.oci.image.config.v1+json",
		     1234, ""),
	    manifest(OCIL_CACHE_REPO_ARTIFACT, KEY, gz, 1234,
		     ", {\"mediaType\": \"x\", \"digest\": \"" LAYER "\", \"size\": 1}"),
	    manifest(OCIL_CACHE_REPO_ARTIFACT, KEY, gz, -1, ""),
	    manifest(OCIL_CACHE_REPO_ARTIFACT, KEY, gz, 99999999999999LL, ""),
	    ocil_xstrdup("{\"schemaVersion\": 2, \"layers\": []}"),
	    ocil_xstrdup("[1, 2]"),
	    ocil_xstrdup("{\"a\": 1, \"a\": 2}"),
	    ocil_xstrdup("not json"),
	};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		CHECK(!ocil_cache_repo_parse_manifest(KEY, wrong[i], strlen(wrong[i]), &e, &f));
		CHECK(e.layer.media_type == NULL && f.media_type == NULL);
		free(wrong[i]);
	}
}

static void parse_facts(void)
{
	ocil_cache_repo_entry e = {0};
	char *index = NULL, *pyc = NULL;
	size_t il = 0, pl = 0;
	const char *good = "{\"key\": \"" KEY "\", \"diff_id\": \"" DIFF "\", "
			   "\"uncompressed_size\": 10, \"facts\": {\"warnings\": []}, "
			   "\"index\": \"aGVsbG8=\", \"pyc\": null}";
	CHECK(ocil_cache_repo_parse_facts(KEY, good, strlen(good), &e, &index, &il, &pyc, &pl));
	CHECK_STREQ(e.diff_id, DIFF);
	CHECK(e.uncompressed_size == 10);
	CHECK(il == 5 && memcmp(index, "hello", 5) == 0);
	CHECK(pyc == NULL);
	CHECK(json_is_array(json_object_get(e.facts, "warnings")));
	free(index);
	ocil_cache_repo_entry_clear(&e);
	const char *bad[] = {
	    /* another key, a bad diff_id, a negative size, index not base64, no index */
	    "{\"key\": \"" DIFF "\", \"diff_id\": \"" DIFF "\", \"uncompressed_size\": 1, "
	    "\"index\": \"aGVsbG8=\"}",
	    "{\"key\": \"" KEY "\", \"diff_id\": \"sha256:../x\", \"uncompressed_size\": 1, "
	    "\"index\": \"aGVsbG8=\"}",
	    "{\"key\": \"" KEY "\", \"diff_id\": \"" DIFF "\", \"uncompressed_size\": -1, "
	    "\"index\": \"aGVsbG8=\"}",
	    "{\"key\": \"" KEY "\", \"diff_id\": \"" DIFF "\", \"uncompressed_size\": 1, "
	    "\"index\": \"***\"}",
	    "{\"key\": \"" KEY "\", \"diff_id\": \"" DIFF "\", \"uncompressed_size\": 1}",
	    "{\"key\": \"" KEY "\", \"diff_id\": \"" DIFF "\", \"uncompressed_size\": 1, "
	    "\"index\": \"aGVsbG8=\", \"facts\": [1]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!ocil_cache_repo_parse_facts(KEY, bad[i], strlen(bad[i]), &e, &index, &il,
						   &pyc, &pl));
		CHECK(index == NULL && e.facts == NULL);
	}
}

TEST_MAIN(T(parse_ref), T(parse_entries), T(parse_facts))
