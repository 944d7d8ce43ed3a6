/* The project's one hash table, and a string map over it. */
#ifndef OCIL_MAP_H
#define OCIL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* FNV-1a over n bytes, continuing from h (OCIL_FNV1A_INIT to start). */
#define OCIL_FNV1A_INIT 1469598103934665603ULL
uint64_t ocil_fnv1a(uint64_t h, const void *p, size_t n);

/* The project's one hash table: open addressing with linear probing over a
 * power-of-two number of slots, at most half full, holding non-NULL item
 * pointers. Items keep their keys as suits them (ocil_strmap copies
 * strings; rootfs finds a node by its parent and name, with no key string
 * of its own): the caller gives each lookup's hash and the comparison. A
 * zeroed ocil_hashtab is empty; it owns its slots, not the items. */
typedef struct {
	void **slots;
	size_t cap, n;
} ocil_hashtab;
typedef bool (*ocil_hashtab_eq)(const void *item, const void *key);
/* The item equal to key, or NULL. */
void *ocil_hashtab_find(const ocil_hashtab *t, uint64_t hash, ocil_hashtab_eq eq, const void *key);
/* Add item, which no item in t equals; hash_of gives any item's hash (for
 * placing them again when the table grows from min_cap slots on). */
void ocil_hashtab_add(ocil_hashtab *t, void *item, size_t min_cap,
		      uint64_t (*hash_of)(const void *item));
void ocil_hashtab_release(ocil_hashtab *t);

/* String -> small value map, or a set when the value is not needed
 * (directories a layer already has, files that carry a conda placeholder),
 * over ocil_hashtab; keys are copied. A zeroed ocil_strmap is empty. */
typedef struct {
	ocil_hashtab t;
} ocil_strmap;
/* Add key with val, or give a key already there the new val. */
void ocil_strmap_put(ocil_strmap *m, const char *key, unsigned char val);
/* Whether key is there; if so and val is not NULL, *val is its value
 * (else *val is left alone, so it can hold a default). */
bool ocil_strmap_get(const ocil_strmap *m, const char *key, unsigned char *val);
/* Each key once, in no particular order: start with *pos = 0; false at the
 * end. *val points at the value, which may be changed in place. */
bool ocil_strmap_next(const ocil_strmap *m, size_t *pos, const char **key, unsigned char **val);
static inline size_t ocil_strmap_size(const ocil_strmap *m)
{
	return m->t.n;
}
void ocil_strmap_clear(ocil_strmap *m);

#endif
