/* Thin helpers over jansson: strict loading with size caps, canonical dump. */
#ifndef OCIL_JSON_H
#define OCIL_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "base/error.h"

/* Largest manifest/config/index we accept (containerd uses 4 MiB too). */
#define OCIL_JSON_MAX ((size_t)4 << 20)

/* Parse buf (len bytes) rejecting duplicate keys and trailing data. what
 * names the document in errors. */
int ocil_json_parse(const char *buf, size_t len, const char *what, json_t **out, ocil_error **err);
/* The same with another cap (conda records can be larger than manifests). */
int ocil_json_parse_max(const char *buf, size_t len, size_t max, const char *what, json_t **out,
			ocil_error **err);
/* Read and parse a file of at most max bytes. */
int ocil_json_load_file(const char *path, size_t max, json_t **out, ocil_error **err);
/* Canonical form: compact, keys sorted. Caller frees. */
char *ocil_json_dump(const json_t *j);

/* Typed getters that set an OCIL_E_INPUT error naming what/key. */
int ocil_json_get_string(const json_t *obj, const char *key, const char *what, const char **out,
			 ocil_error **err);
const char *ocil_json_opt_string(const json_t *obj, const char *key);
/* A JSON string of s, which may not be UTF-8 (a name from the command
 * line, a path from an image): then bytes that are not ASCII become "?". */
json_t *ocil_json_string_lossy(const char *s);

static inline void ocil_json_decrefp(json_t **j)
{
	json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(ocil_json_decrefp)))

#endif
