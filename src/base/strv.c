#include "base/strv.h"

#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

bool ocil_str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool ocil_str_has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

void ocil_strv_push(ocil_strv *sv, char *owned)
{
	if (sv->n + 1 >= sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = ocil_xrealloc(sv->v, sv->cap * sizeof(char *));
	}
	sv->v[sv->n++] = owned;
	sv->v[sv->n] = NULL;
}

void ocil_strv_clear(ocil_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void ocil_strv_sort(ocil_strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof(char *), cmp_str);
}

/* Levenshtein distance, for "did you mean"; names are short. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t row[64];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *ocil_str_nearest(const char *s, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t bd = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t d = distance(s, names[i]);
		if (d < bd) {
			bd = d;
			best = names[i];
		}
	}
	size_t len = strlen(s);
	return bd <= (len < 6 ? 1 : 2) ? best : NULL;
}
