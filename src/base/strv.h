/* Strings: prefix and suffix tests, and a growable NULL-terminated array. */
#ifndef OCIL_STRV_H
#define OCIL_STRV_H

#include <stdbool.h>
#include <stddef.h>

bool ocil_str_has_prefix(const char *s, const char *prefix);
bool ocil_str_has_suffix(const char *s, const char *suffix);
/* The closest of names (n of them) to s by edit distance, when close
 * enough to be a typo of it (1 edit for names under 6 bytes, else 2), or
 * NULL: "did you mean" for commands and options. */
const char *ocil_str_nearest(const char *s, const char *const *names, size_t n);

/* Growable string array (NULL-terminated). */
typedef struct {
	char **v;
	size_t n, cap;
} ocil_strv;
void ocil_strv_push(ocil_strv *sv, char *owned);
void ocil_strv_clear(ocil_strv *sv);
void ocil_strv_sort(ocil_strv *sv);

static inline void ocil_strv_clearp(ocil_strv *sv)
{
	ocil_strv_clear(sv);
}
#define cleanup_strv __attribute__((cleanup(ocil_strv_clearp)))

#endif
