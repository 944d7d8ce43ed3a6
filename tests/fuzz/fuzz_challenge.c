/* WWW-Authenticate values from a registry, and the base64 of auth files. */
#include <string.h>

#include "base/digest.h"
#include "base/util.h"
#include "fuzz.h"
#include "registry/challenge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cleanup_free char *s = ocil_xstrndup((const char *)data, size);
	ocil_error *err = NULL;
	ocil_challenge c;
	if (ocil_challenge_parse(s, &c, &err) == 0) {
		if (c.scheme == NULL || c.scheme[0] == '\0')
			abort();
		ocil_challenge_clear(&c);
	}
	fuzz_drop(&err);
	char *out = NULL;
	size_t len = 0;
	if (ocil_base64_decode(s, "fuzz", &out, &len, &err) == 0) {
		/* what we encode decodes to the same bytes */
		cleanup_free char *again = ocil_base64_encode(out, len);
		char *back = NULL;
		size_t blen = 0;
		if (ocil_base64_decode(again, "fuzz", &back, &blen, &err) < 0 || blen != len ||
		    memcmp(back, out, len) != 0)
			abort();
		free(back);
		free(out);
	}
	fuzz_drop(&err);
	return 0;
}
