/* Manifests, indexes and configs as a registry or a layout hands them over:
 * the same bytes go through every parser that reads such a document. */
#include <string.h>

#include "base/json.h"
#include "base/util.h"
#include "fuzz.h"
#include "oci/image.h"
#include "transport/source.h"

static void config(const ocil_manifest *m, const uint8_t *data, size_t size)
{
	/* a source whose manifest is m; set_config takes over the copy */
	ocil_source s = {.name = "fuzz", .manifest = *m};
	ocil_platform p = {.os = "linux", .arch = "amd64"};
	ocil_error *err = NULL;
	char *raw = ocil_xmalloc(size + 1);
	memcpy(raw, data, size);
	if (ocil_source_set_config(&s, raw, size, &p, &err) == 0) {
		json_decref(s.config);
		free(s.config_raw);
	}
	fuzz_drop(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	ocil_error *err = NULL;
	static const char *const hints[] = {NULL, OCIL_MT_OCI_MANIFEST, OCIL_MT_DOCKER_MANIFEST,
					    OCIL_MT_OCI_INDEX};
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		ocil_manifest m;
		if (ocil_manifest_parse(buf, size, "fuzz", hints[i], &m, &err) == 0) {
			for (size_t l = 0; l < m.n_layers; l++)
				if (!ocil_digest_valid(m.layers[l].digest) || m.layers[l].size < 0)
					abort();
			if (i == 0) {
				ocil_manifest one = m;
				one.n_layers = m.n_layers > 0 ? 1 : 0;
				config(&one, data, size);
			}
			ocil_manifest_clear(&m);
		}
		fuzz_drop(&err);
	}
	ocil_manifest empty = {0};
	config(&empty, data, size);

	static const ocil_platform plats[] = {{"linux", "amd64", NULL}, {"linux", "arm64", "v8"}};
	for (size_t i = 0; i < 2; i++) {
		ocil_descriptor d;
		if (ocil_index_select(buf, size, "fuzz", &plats[i], &d, &err) == 0) {
			if (!ocil_digest_valid(d.digest) || d.size < 0)
				abort();
			ocil_descriptor_clear(&d);
		}
		fuzz_drop(&err);
	}
	json_t *j = NULL;
	if (ocil_json_parse(buf, size, "fuzz", &j, &err) == 0) {
		free(ocil_json_dump(j));
		ocil_descriptor d;
		if (ocil_descriptor_parse(j, "fuzz", &d, &err) == 0)
			ocil_descriptor_clear(&d);
		json_decref(j);
	}
	fuzz_drop(&err);
	return 0;
}
