#include "base/map.h"

#include <string.h>

#include "base/alloc.h"

uint64_t ocil_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* The slot holding the item equal to key, or the empty slot where it
 * belongs; at most half full, so an empty slot is always reached. */
static size_t hashtab_slot(const ocil_hashtab *t, uint64_t hash, ocil_hashtab_eq eq,
			   const void *key)
{
	size_t mask = t->cap - 1, i = (size_t)hash & mask;
	while (t->slots[i] != NULL && !eq(t->slots[i], key))
		i = (i + 1) & mask;
	return i;
}

void *ocil_hashtab_find(const ocil_hashtab *t, uint64_t hash, ocil_hashtab_eq eq, const void *key)
{
	return t->cap == 0 ? NULL : t->slots[hashtab_slot(t, hash, eq, key)];
}

static bool never_equal(const void *item, const void *key)
{
	return false;
}

void ocil_hashtab_add(ocil_hashtab *t, void *item, size_t min_cap,
		      uint64_t (*hash_of)(const void *item))
{
	if ((t->n + 1) * 2 > t->cap) {
		ocil_hashtab old = *t;
		t->cap = old.cap ? old.cap * 2 : min_cap;
		t->slots = ocil_xcalloc(t->cap, sizeof(void *));
		for (size_t i = 0; i < old.cap; i++)
			if (old.slots[i] != NULL)
				t->slots[hashtab_slot(t, hash_of(old.slots[i]), never_equal,
						      NULL)] = old.slots[i];
		free(old.slots);
	}
	t->slots[hashtab_slot(t, hash_of(item), never_equal, NULL)] = item;
	t->n++;
}

void ocil_hashtab_release(ocil_hashtab *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

typedef struct {
	unsigned char val;
	char key[];
} strent;

static uint64_t strent_hash(const void *item)
{
	const char *k = ((const strent *)item)->key;
	return ocil_fnv1a(OCIL_FNV1A_INIT, k, strlen(k));
}

static bool strent_eq(const void *item, const void *key)
{
	return strcmp(((const strent *)item)->key, key) == 0;
}

static strent *strmap_find(const ocil_strmap *m, const char *key)
{
	return ocil_hashtab_find(&m->t, ocil_fnv1a(OCIL_FNV1A_INIT, key, strlen(key)), strent_eq,
				 key);
}

void ocil_strmap_put(ocil_strmap *m, const char *key, unsigned char val)
{
	strent *e = strmap_find(m, key);
	if (e == NULL) {
		size_t n = strlen(key);
		e = ocil_xmalloc(sizeof(*e) + n + 1);
		memcpy(e->key, key, n + 1);
		ocil_hashtab_add(&m->t, e, 64, strent_hash);
	}
	e->val = val;
}

bool ocil_strmap_get(const ocil_strmap *m, const char *key, unsigned char *val)
{
	const strent *e = strmap_find(m, key);
	if (e != NULL && val != NULL)
		*val = e->val;
	return e != NULL;
}

bool ocil_strmap_next(const ocil_strmap *m, size_t *pos, const char **key, unsigned char **val)
{
	for (; *pos < m->t.cap; (*pos)++) {
		strent *e = m->t.slots[*pos];
		if (e != NULL) {
			(*pos)++;
			*key = e->key;
			*val = &e->val;
			return true;
		}
	}
	return false;
}

void ocil_strmap_clear(ocil_strmap *m)
{
	for (size_t i = 0; i < m->t.cap; i++)
		free(m->t.slots[i]);
	ocil_hashtab_release(&m->t);
}
