/* unpack: an image's layers applied to a directory on disk, the way a
 * container runtime unpacks them, without root and with every layer
 * treated as hostile.
 *
 * Semantics are rootfs.h's (OCI "Representing Changes"): layers in order,
 * ".wh.<name>" removes what lower layers put at <name>, ".wh..wh..opq"
 * hides everything lower layers put below its directory (the layer's own
 * entries stay, in whatever order the tar lists them), a non-directory
 * replaces whatever was at its path, a directory over a directory merges.
 *
 * Containment: names come from tarstream (normalized, no ".."); every path
 * is then walked one component at a time from the root with O_NOFOLLOW, so
 * no symlink is ever followed while writing: a symlink (or file) where an
 * entry needs a parent directory is replaced by a directory, as an overlay
 * upper directory would hide it. Hardlinks may only name an earlier entry
 * reached the same way. Nothing is written outside the root.
 *
 * Rootless: files belong to the caller (no chown); directories stay
 * writable by their owner while layers are applied and get their own modes
 * (and mtimes) at the end; setuid/setgid bits are dropped; device nodes,
 * fifos and sockets are skipped (counted, reported by a notice). */
#ifndef OCIL_UNPACK_H
#define OCIL_UNPACK_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"
#include "base/util.h"

typedef struct {
	const ocil_cancel *cancel;
	/* A note for the user ("skipped 2 device nodes ..."); NULL: none. */
	void (*notice)(void *data, const char *msg);
	void *data;
} ocil_unpack_opts;

/* Apply the layers (blob files, plain tar or gzip/zstd; index 0 at the
 * bottom) to the directory root_fd, normally empty. Errors name the layer
 * and the entry (a layer that cannot be read or that is malformed:
 * OCIL_E_INPUT). */
int ocil_unpack_layers(int root_fd, const char *const *layer_paths, size_t n,
		       const ocil_unpack_opts *o, ocil_error **err);

/* Make the directory path (absolute in the tree) below root_fd where
 * nothing is: missing components are created 0755 (mode for the last one);
 * an existing component, including a symlink (a runtime resolves it inside
 * the sandbox), ends the walk without change. For mount points and the
 * working directory. */
int ocil_unpack_mkdir(int root_fd, const char *path, mode_t mode, ocil_error **err);

/* Where the tree for an image (keyed by a digest, "sha256:<hex>") lives in
 * the cache: <cache_dir>/rootfs/<hex>. Caller frees. */
char *ocil_unpack_cache_path(const char *cache_dir, const char *digest);

/* Make the cached tree for digest if it is not there: under a lock on
 * <cache_dir>/rootfs/.lock, unpack the layers into a temporary directory
 * next to it (leftovers of crashed runs are removed first), make the
 * directories in dirs (ocil_unpack_mkdir, modes 0755, except /tmp 1777),
 * sync, then rename it into place, so a tree at the final path is always
 * complete. *made is false when another run had made it already. */
int ocil_unpack_cached(const char *cache_dir, const char *digest, const char *const *layer_paths,
		       size_t n, const char *const *dirs, const ocil_unpack_opts *o, bool *made,
		       ocil_error **err);

#endif
