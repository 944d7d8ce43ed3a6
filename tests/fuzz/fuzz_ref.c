/* Image references, tags, platforms and digests as a user or a config
 * file writes them. */
#include <string.h>

#include "base/digest.h"
#include "base/util.h"
#include "fuzz.h"
#include "oci/image.h"
#include "oci/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cleanup_free char *s = ocil_xstrndup((const char *)data, size);
	ocil_error *err = NULL;
	ocil_ref r;
	if (ocil_ref_parse(s, &r, &err) == 0) {
		/* what a successful parse promises */
		if (r.transport == OCIL_REF_DOCKER &&
		    (r.registry == NULL || r.repository == NULL ||
		     (r.tag == NULL && r.digest == NULL) ||
		     (r.digest != NULL && !ocil_digest_valid(r.digest))))
			abort();
		if (r.transport != OCIL_REF_DOCKER && (r.path == NULL || r.path[0] == '\0'))
			abort();
		ocil_ref_clear(&r);
	}
	fuzz_drop(&err);
	if (ocil_ref_check_tag(s, "tag", &err) < 0)
		fuzz_drop(&err);
	ocil_platform p;
	if (ocil_platform_parse(s, &p, &err) == 0) {
		free(ocil_platform_format(&p));
		ocil_platform_clear(&p);
	}
	fuzz_drop(&err);
	if (ocil_digest_valid(s) && strlen(ocil_digest_hex(s)) != OCIL_DIGEST_HEX_LEN)
		abort();
	return 0;
}
