/* Deterministic directory walker for the layer producers.
 *
 * Depth-first, pre-order (a directory is reported before its children),
 * siblings in bytewise (strcmp) order, lstat semantics: symlinks are
 * reported, never followed (the root itself may be a symlink to a
 * directory). Directories are opened relative to their parent's fd, so the
 * walk does not depend on path lengths and holds one fd per level.
 * Memory is the names of the directories on the current path (depth x
 * width), never file contents.
 *
 * Caps: depth OCIL_WALK_MAX_DEPTH, OCIL_WALK_MAX_WIDTH names per directory;
 * deeper or wider trees fail with OCIL_E_INPUT. */
#ifndef OCIL_WALK_H
#define OCIL_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/util.h"

#define OCIL_WALK_MAX_DEPTH 256
#define OCIL_WALK_MAX_WIDTH ((size_t)1 << 20)

typedef struct {
	const char *rel;       /* "a/b/c", relative to the root; never empty */
	const char *path;      /* root + "/" + rel, for messages */
	const char *name;      /* last component of rel */
	int dirfd;	       /* the containing directory: openat(dirfd, name, ...) */
	const struct stat *st; /* lstat of the entry */
	size_t depth;	       /* 1 for children of the root */
} ocil_walk_entry;

/* Called for every entry not skipped. Returning -1 (with *err set) stops the
 * walk; the walker does not add context, so name e->path in the error. */
typedef int (*ocil_walk_fn)(const ocil_walk_entry *e, void *ud, ocil_error **err);
/* Return true to leave an entry out; for a directory that leaves out its
 * whole subtree. */
typedef bool (*ocil_walk_skip_fn)(const ocil_walk_entry *e, void *ud);

typedef struct {
	ocil_walk_fn fn;
	ocil_walk_skip_fn skip; /* NULL: visit everything */
	void *ud;
	const ocil_cancel *cancel; /* checked before every entry; NULL: never */
} ocil_walk_opts;

/* Walk the tree below root (root itself is not reported). Errors: root
 * missing or not a directory -> OCIL_E_INPUT naming root; read errors ->
 * OCIL_E_IO naming the path; OCIL_E_CANCELLED. */
int ocil_walk(const char *root, const ocil_walk_opts *o, ocil_error **err);

/* Open a regular-file entry for reading (O_NOFOLLOW, checks it is still
 * the same file that was stat'ed). */
int ocil_walk_open(const ocil_walk_entry *e, int *fd, ocil_error **err);
/* Read a symlink entry's target (at most PATH_MAX bytes); caller frees. */
int ocil_walk_readlink(const ocil_walk_entry *e, char **target, ocil_error **err);
/* Fold the metadata of root and of every entry below it (walk order) into
 * h: relative path, type and mode, size, mtime and ctime in nanoseconds,
 * inode and device, and a symlink's target; never file contents. A file
 * rewritten in place with its size and mtime restored still changes
 * (ctime), and so does a copy of the tree (inodes). Errors: as ocil_walk. */
struct ocil_hasher;
int ocil_walk_fingerprint(const char *root, struct ocil_hasher *h, const ocil_cancel *cancel,
			  ocil_error **err);
/* The metadata part of that for one stat (type and mode, size, mtime and
 * ctime in nanoseconds, inode, device), fixed-width. */
void ocil_walk_fold_stat(struct ocil_hasher *h, const struct stat *st);
/* What an entry that is not a directory, regular file or symlink is
 * ("socket", "fifo", "device", "special file"), for the producers' "a %s
 * can not go into an image layer". */
const char *ocil_walk_kind(mode_t m);

#endif
