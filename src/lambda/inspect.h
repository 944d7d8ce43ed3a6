/* inspect: what an image is, as one JSON document (the library builds it;
 * `ocilambda inspect` prints it as text or as is with --json).
 *
 * The document (schemaVersion 1; every key below is always present, with
 * null where the image has nothing to say; new keys may be added, existing
 * ones keep their meaning):
 *
 *   schemaVersion  1
 *   ref            the reference as given
 *   manifest       {digest, mediaType, size}: the single-platform manifest
 *                  the reference resolved to
 *   config         {digest, mediaType, size}
 *   platform       {os, architecture, variant}: from the config
 *   created        the config's "created" string, or null
 *   layers         [{digest, mediaType, size, diffId, createdBy, comment}]
 *                  bottom first; size is the blob size from the manifest
 *                  (compressed, except where the source stores plain
 *                  tar, as docker-archive does); createdBy/comment come
 *                  from the config's history entry of that layer (entries
 *                  with empty_layer set are skipped when matching), or null
 *   layersSize     the sum of the layers' sizes
 *   env            [string]: config.Env ([] when unset)
 *   entrypoint     [string] or null: config.Entrypoint
 *   cmd            [string] or null: config.Cmd
 *   workingDir     string or null: config.WorkingDir ("" counts as null)
 *   user           string or null: config.User
 *   pythons        [{path, minor, link, target, missing}]: every
 *                  /var/lang/bin/python3.N of the merged rootfs, by N;
 *                  link is the symlink target as stored (null when it is
 *                  not a symlink), target the file it resolves to inside
 *                  the image (null when it does not resolve; missing then
 *                  says why, else it is null)
 *   conda          {prefix, packages: [{name, version, build, channel,
 *                  subdir, license, sha256, url}]} or null when the image
 *                  has no conda prefix; channel as ocil_sbom_channel_name
 *                  gives it, optional fields null when not recorded;
 *                  packages sorted by name, version, build.
 *   bytecode       {python, pycs, stale, biggestStale: [{source, size, why}]}
 *                  or null without a /var/lang/bin/python3.N: the bytecode
 *                  the newest python3.N reads (pyc.h), how many of those
 *                  pycs are stale (compiled again at every cold start), and
 *                  the biggest stale sources (why: "mtime", "size", "hash",
 *                  "magic" or "header": what python finds wrong).
 *
 * The conda prefix is the directory two levels above the file the highest
 * /var/lang/bin/python3.N resolves to (an ocilambda image points it at
 * <prefix>/bin/python) when it has a conda-meta directory; else the first
 * /opt/<name> (bytewise) that has one. */
#ifndef OCIL_INSPECT_H
#define OCIL_INSPECT_H

#include <jansson.h>

#include "base/error.h"
#include "base/util.h"
#include "lambda/sbom.h"
#include "oci/ref.h"
#include "transport/source.h"

#define OCIL_INSPECT_SCHEMA_VERSION 1

typedef struct {
	const ocil_cancel *cancel;
	/* docker:// refs: the blob cache their layers are fetched into and
	 * read from; NULL: ocil_source_default_cache_dir() */
	const char *cache_dir;
	/* docker-archive: refs: where their layers are copied while they are
	 * read (a fresh directory under it, removed before returning); NULL:
	 * $TMPDIR, else /tmp */
	const char *tmp_dir;
} ocil_inspect_opts;

typedef struct {
	json_t *doc;		     /* the document described above */
	char *conda_prefix;	     /* the prefix in the image, or NULL */
	ocil_sbom_packages packages; /* its packages, sorted (for an SBOM) */
} ocil_inspect_result;

/* Describe the image src opened from ref. Every layer is read once to
 * find the pythons and the conda records: from the layout's own blob for
 * oci:, from the blob cache for docker:// (fetched there first when
 * missing), from a temporary copy for docker-archive:. A blob already on
 * disk is checked against its digest and size before it is read; a
 * mismatch or a missing blob is OCIL_E_INPUT naming the layer. Malformed
 * conda records are errors too (see ocil_sbom_read_rootfs). out is
 * zeroed first and left cleared on failure. */
int ocil_inspect_image(const ocil_ref *ref, ocil_source *src, const ocil_inspect_opts *o,
		       ocil_inspect_result *out, ocil_error **err);
void ocil_inspect_result_clear(ocil_inspect_result *r);

/* The whole of `ocilambda inspect`: the reference parsed, the image opened
 * (platform: which of an index; NULL: linux/amd64), described, and when
 * sbom is set its conda packages written there as SPDX (named image, tied
 * to the manifest digest, created at SOURCE_DATE_EPOCH). */
typedef struct {
	const char *image, *platform, *sbom;
	const ocil_registry_opts *registry;
	const char *cache_dir;
	const ocil_cancel *cancel;
} ocil_inspect_ref_opts;
int ocil_inspect_ref(const ocil_inspect_ref_opts *o, ocil_inspect_result *out, ocil_error **err);

#endif
