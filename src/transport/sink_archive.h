/* docker-archive output (docker-archive:FILE[:REPO:TAG]): the tarball that
 * `docker save` writes and `docker load`, `podman load` and skopeo read.
 *
 * Members, in this order (the names skopeo's writer uses):
 *   <config hex>.json   the config bytes as stored
 *   <diff_id hex>.tar   one per distinct layer, the UNCOMPRESSED tar
 *                       (docker load wants the diff, and compressing it
 *                       again would buy nothing on a local disk)
 *   manifest.json       [{"Config":…,"Layers":[…],"RepoTags":[…]}]
 *   repositories        {"<repo>":{"<tag>":"<last layer's diff_id hex>"}}
 * RepoTags is [] when no tag is given (as skopeo writes it; docker and
 * skopeo read [] and null alike). repositories is only read by pre-1.10
 * Docker, which manifest.json supersedes; it is written for completeness,
 * and its value names no legacy "<id>/json" directory (skopeo writes those;
 * docker and podman ignore them when manifest.json is there).
 *
 * The tar is plain ustar written here, not through libarchive: every byte
 * of it is then fixed by this file (owner 0:0, mode 0644, the given mtime,
 * no user/group names, no pax records), whatever libarchive's version or
 * the locale. A layer larger than ustar's 8 GiB size field gets the size in
 * base-256 (GNU), which Go's archive/tar and libarchive read.
 *
 * Every blob is verified while it is copied: the config and plain layers
 * against their digests, gzip layers against their digest and, after
 * decompression, their diff_id. The config's rootfs.diff_ids must equal
 * diff_ids. A layer over 10 GiB uncompressed (Lambda's image limit,
 * OCIL_TAR_MAX_BYTES) is refused, which also bounds a gzip bomb. The file is written to
 * "<path>.tmp-XXXXXX", fsynced and renamed into place; on any failure, cancellation included, the
 * temporary file is removed and whatever was at path is left alone. */
#ifndef OCIL_SINK_ARCHIVE_H
#define OCIL_SINK_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "base/blobstore.h"
#include "base/util.h"
#include "oci/image.h"

typedef struct {
	const ocil_blobstore *blobs; /* holds the config and the layer blobs */
	const ocil_descriptor *config;
	/* gzip or plain tar layers; zstd is refused (OCIL_E_INPUT): the
	 * archive holds uncompressed layers and only gzip is undone here */
	const ocil_descriptor *layers;
	const char *const *diff_ids; /* per layer, "sha256:…", as in the config */
	size_t n_layers;
	/* "fn:v1", "registry.example:5000/team/fn:v1"; no tag means
	 * ":latest"; duplicates are written once. May be empty. */
	const char *const *repo_tags;
	size_t n_repo_tags;
	int64_t mtime; /* of every member; 0 .. 8^11-1 (ustar's field) */
	const ocil_cancel *cancel;
} ocil_archive_spec;

int ocil_sink_archive_write(const char *path, const ocil_archive_spec *s, ocil_error **err);

/* Check a RepoTags entry against Docker's reference grammar
 * ([host[:port]/]path[:tag], lowercase path, no digest) and split it into
 * repository and tag (":latest" when none). repo and tag may be NULL;
 * otherwise the caller frees them. OCIL_E_USAGE when malformed, so a
 * command can check its --output before building anything. */
int ocil_archive_parse_tag(const char *s, char **repo, char **tag, ocil_error **err);

/* The ustar header of one member (a regular file, 0:0, mode 0644, no
 * user/group names); name shorter than 100 bytes, mtime 0 .. 8^11-1.
 * Exposed so tests can check the >8 GiB size encoding without writing
 * 8 GiB. */
void ocil_archive_ustar_header(char h[512], const char *name, uint64_t size, int64_t mtime);

#endif
