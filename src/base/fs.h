/* File helpers: whole reads and writes, atomic replacement, temporaries
 * that survive kill -9 tidily (flock) and their sweeps, rm -rf, mkdir -p. */
#ifndef OCIL_FS_H
#define OCIL_FS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

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

#endif
