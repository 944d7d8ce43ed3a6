/* Small shared helpers: cleanup attributes (as in crun/systemd), checked
 * allocation, file helpers. Nothing here keeps state. */
#ifndef OCIL_UTIL_H
#define OCIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"

static inline void ocil_freep(void *p)
{
	free(*(void **)p);
}
static inline void ocil_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void ocil_fclosep(FILE **f)
{
	if (*f != NULL)
		fclose(*f);
}
static inline void ocil_errorp(ocil_error **e)
{
	ocil_error_free(*e);
}

#define cleanup_free __attribute__((cleanup(ocil_freep)))
#define cleanup_close __attribute__((cleanup(ocil_closep)))
#define cleanup_fclose __attribute__((cleanup(ocil_fclosep)))
#define cleanup_error __attribute__((cleanup(ocil_errorp)))

/* Take ownership out of a cleanup variable. */
#define steal_pointer(pp)                                                                          \
	({                                                                                         \
		__typeof__(*(pp)) _p = *(pp);                                                      \
		*(pp) = NULL;                                                                      \
		_p;                                                                                \
	})
#define steal_fd(fdp)                                                                              \
	({                                                                                         \
		int _fd = *(fdp);                                                                  \
		*(fdp) = -1;                                                                       \
		_fd;                                                                               \
	})

/* Allocation failure is not recoverable in a CLI; abort loudly. */
void *ocil_xmalloc(size_t n);
void *ocil_xcalloc(size_t n, size_t m);
void *ocil_xrealloc(void *p, size_t n);
char *ocil_xstrdup(const char *s);
char *ocil_xstrndup(const char *s, size_t n);
char *ocil_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Read a whole file, refusing more than max bytes. Result NUL-terminated. */
int ocil_read_file(const char *path, size_t max, char **out, size_t *len, ocil_error **err);
int ocil_read_fd(int fd, const char *what, size_t max, char **out, size_t *len, ocil_error **err);
/* write(2) until done; EINTR-safe. */
int ocil_write_all(int fd, const void *buf, size_t len, const char *what, ocil_error **err);
/* Write a file atomically: tmp in the same directory, fsync, rename. */
int ocil_write_file_atomic(const char *path, const void *buf, size_t len, ocil_error **err);
/* Temporary files that survive kill -9 tidily: ".tmp-XXXXXX" in dir, created
 * with an exclusive flock that lasts as long as the returned descriptor (or
 * a dup of it) is open. Returns the descriptor and the path (*path, caller
 * frees), or -1 with an OCIL_E_IO error. ocil_tmpfile_sweep removes those in
 * dir, and ocil_write_file_atomic's "<name>.tmp-XXXXXX" (flocked the same
 * way), whose lock can be taken, i.e. whose writer died; names of any other
 * shape are left alone. Best effort: errors are ignored. */
int ocil_tmpfile_create(const char *dir, char **path, ocil_error **err);
void ocil_tmpfile_sweep(const char *dir);
/* The same beside a file about to be replaced: "<path>.tmp-XXXXXX", and a
 * sweep of only that file's dead temporaries (its directory may be the
 * user's, where other names are none of ours). */
int ocil_tmpfile_create_for(const char *path, char **tmp, ocil_error **err);
void ocil_tmpfile_sweep_for(const char *path);
/* Staging directories ".<name>.ocilambda-XXXXXX" in parent (an output being
 * built beside where it will go): created with an exclusive flock held by
 * the returned descriptor (close it when done; -1 and an OCIL_E_IO error on
 * failure), after ocil_staging_sweep, which removes those of that name
 * whose lock can be taken, i.e. whose build died. */
int ocil_staging_create(const char *parent, const char *name, char **path, ocil_error **err);
void ocil_staging_sweep(const char *parent, const char *name);
/* A scratch directory "ocilambda-<name>.XXXXXX" in parent (NULL: $TMPDIR,
 * else /tmp), locked the same way; those of that name left by killed runs
 * of the same user are swept first. ocil_tmpdir_remove removes it and
 * closes the lock; it does nothing when path is NULL (a zeroed struct, or
 * a failed create). */
typedef struct {
	char *path;
	int fd; /* the lock; meaningful only while path is set */
} ocil_tmpdir;
int ocil_tmpdir_create(const char *parent, const char *name, ocil_tmpdir *t, ocil_error **err);
void ocil_tmpdir_remove(ocil_tmpdir *t);
/* rm -rf; ignores ENOENT. Never follows symlinks; directories the caller
 * owns but may not write are made writable first. */
int ocil_remove_tree(const char *path, ocil_error **err);
/* The same for name in the directory parent. */
int ocil_remove_at(int parent, const char *name, ocil_error **err);
/* mkdir -p with mode. */
int ocil_mkdir_p(const char *path, int mode, ocil_error **err);
bool ocil_str_has_prefix(const char *s, const char *prefix);
bool ocil_str_has_suffix(const char *s, const char *suffix);

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

/* SOURCE_DATE_EPOCH (0 when unset); a malformed value is OCIL_E_USAGE. */
int ocil_source_date_epoch(int64_t *out, ocil_error **err);

/* Cooperative cancellation: main.c points this at its signal flag. */
typedef struct {
	volatile int *flag;
} ocil_cancel;
int ocil_cancel_check(const ocil_cancel *c, ocil_error **err);

#endif
