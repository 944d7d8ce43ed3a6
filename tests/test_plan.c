#include <string.h>

#include "base/json.h"
#include "oci/plan.h"
#include "test.h"

static void config_edits(void)
{
	ocil_error *err = NULL;
	ocil_blobstore *bs = NULL;
	CHECK_OK(ocil_blobstore_open(ocil_test_tmpdir(), &bs, &err), &err);
	const char *base = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":["
			   "\"LANG=en_US.UTF-8\",\"PATH=/bin\"],\"WorkingDir\":\"/var/task\","
			   "\"Entrypoint\":[\"/lambda-entrypoint.sh\"],\"Labels\":{\"a\":\"b\"}},"
			   "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
			   "1111111111111111111111111111111111111111111111111111111111111111\"]},"
			   "\"history\":[{\"created_by\":\"base\"}]}";
	json_t *bc = NULL;
	CHECK_OK(ocil_json_parse(base, strlen(base), "base", &bc, &err), &err);
	ocil_plan_layer l = {.size = 10, .created_by = "new"};
	memset(l.digest, 0, sizeof(l.digest));
	strcpy(l.digest, "sha256:2222222222222222222222222222222222222222222222222222222222222222");
	strcpy(l.diff_id,
	       "sha256:3333333333333333333333333333333333333333333333333333333333333333");
	char *env[] = {"PYTHONPATH=/p", "LANG=C"};
	ocil_plan p = {.base_config = bc,
		       .layers = &l,
		       .n_layers = 1,
		       .env = env,
		       .n_env = 2,
		       .handler = "m.f",
		       .created = 86400};
	ocil_descriptor md;
	json_t *cfg = NULL;
	CHECK_OK(ocil_plan_write(&p, bs, &md, &cfg, &err), &err);
	char *dump = ocil_json_dump(json_object_get(cfg, "config"));
	CHECK_STREQ(dump, "{\"Cmd\":[\"m.f\"],\"Entrypoint\":[\"/lambda-entrypoint.sh\"],\"Env\":["
			  "\"LANG=C\",\"PATH=/bin\",\"PYTHONPATH=/p\"],\"Labels\":{\"a\":\"b\"},"
			  "\"WorkingDir\":\"/var/task\"}");
	free(dump);
	CHECK_STREQ(json_string_value(json_object_get(cfg, "created")), "1970-01-02T00:00:00Z");
	CHECK(json_array_size(json_object_get(json_object_get(cfg, "rootfs"), "diff_ids")) == 2);
	CHECK(json_array_size(json_object_get(cfg, "history")) == 2);
	CHECK(ocil_blobstore_has(bs, md.digest));
	CHECK_STREQ(md.media_type, OCIL_MT_OCI_MANIFEST);
	/* Same plan, same manifest bytes. */
	ocil_descriptor md2;
	CHECK_OK(ocil_plan_write(&p, bs, &md2, NULL, &err), &err);
	CHECK_STREQ(md.digest, md2.digest);
	ocil_descriptor_clear(&md);
	ocil_descriptor_clear(&md2);
	json_decref(cfg);
	json_decref(bc);
	ocil_blobstore_free(bs);
}

TEST_MAIN(T(config_edits))
