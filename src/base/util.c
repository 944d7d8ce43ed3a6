/* What a whole run shares: the cancellation flag and SOURCE_DATE_EPOCH. */
#include "base/util.h"

#include <errno.h>
#include <stdlib.h>

int ocil_cancel_check(const ocil_cancel *c, ocil_error **err)
{
	if (c != NULL && c->flag != NULL && *c->flag)
		return ocil_error_set(err, OCIL_E_CANCELLED, "interrupted");
	return 0;
}

int ocil_source_date_epoch(int64_t *out, ocil_error **err)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	*out = 0;
	if (s == NULL || s[0] == '\0')
		return 0;
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	/* Up to 9999-12-31T23:59:59Z, what RFC 3339 timestamps can say. */
	if (errno != 0 || *end != '\0' || v < 0 || v > 253402300799LL)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "SOURCE_DATE_EPOCH=\"%s\": want seconds since 1970", s);
	*out = v;
	return 0;
}
