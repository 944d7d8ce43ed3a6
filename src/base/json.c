#include "base/json.h"

#include <string.h>

#include "base/util.h"

int ocil_json_parse(const char *buf, size_t len, const char *what, json_t **out, ocil_error **err)
{
	return ocil_json_parse_max(buf, len, OCIL_JSON_MAX, what, out, err);
}

int ocil_json_parse_max(const char *buf, size_t len, size_t max, const char *what, json_t **out,
			ocil_error **err)
{
	if (len > max)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: larger than %zu bytes", what, max);
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: malformed JSON at line %d: %s", what,
				      je.line, je.text);
	*out = j;
	return 0;
}

int ocil_json_load_file(const char *path, size_t max, json_t **out, ocil_error **err)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_read_file(path, max, &buf, &len, err) < 0)
		return -1;
	return ocil_json_parse(buf, len, path, out, err);
}

char *ocil_json_dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (s == NULL) {
		fputs("ocilambda: out of memory\n", stderr);
		abort();
	}
	return s;
}

int ocil_json_get_string(const json_t *obj, const char *key, const char *what, const char **out,
			 ocil_error **err)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	if (!json_is_string(v))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: \"%s\" missing or not a string", what,
				      key);
	*out = json_string_value(v);
	return 0;
}

const char *ocil_json_opt_string(const json_t *obj, const char *key)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *ocil_json_string_lossy(const char *s)
{
	json_t *j = json_string(s);
	if (j != NULL)
		return j;
	cleanup_free char *c = ocil_xstrdup(s);
	for (char *p = c; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_string(c);
}
