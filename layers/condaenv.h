/* The conda layer from a lock file and a directory of package files,
 * without conda and without a prefix on disk.
 *
 * ocil_condaenv_load reads the lock (condalock.h), finds every package file
 * in pkgs_dir by its file name (or, when it is not there, at its file:// URL,
 * in the download cache, or downloads it there: fetch.h), checks it against
 * the lock's hash, reads its info/ (condapkg.h) and decides who installs
 * which path: packages are
 * installed in lock order, then the wheels, so when two install the same
 * path the later one wins (as conda's clobbering does; pip overwrites too)
 * and a warning says so.
 * ocil_condaenv_write_layer then streams the packages into the layer:
 * parents of dest, dest, each package's paths in lock order (parents as
 * needed), then conda-meta/<name>-<version>-<build>.json for each package
 * and conda-meta/history, so `conda list -p <dest>` shows them.
 *
 * Differences from what conda would install: the .pyc files conda compiles
 * for noarch: python packages come later, in a layer of their own
 * (bytecode.h), and the records do not list them; a source whose package
 * ships bytecode for it keeps its mtime from the package (pyc.h), as
 * conda's extraction keeps it; a package path under a directory another package
 * made a symlink (or a symlink over a directory written before) is an
 * error, not written through the link (layer_writer.h). */
#ifndef OCIL_CONDAENV_H
#define OCIL_CONDAENV_H

#include <stdint.h>

#include "lambda/sbom.h"
#include "layers/conda.h"
#include "layers/condalock.h"
#include "layers/condapkg.h"
#include "layers/wheel.h"
#include "oci/layer_writer.h"
#include "registry/fetch.h"

/* Where packages missing from pkgs_dir (and the lock's wheels missing from
 * wheels_dir) come from: the lock's URL, rewritten by the mirrors; a
 * file:// URL is read in place, an http(s) one from the blob cache under
 * cache_dir, downloaded into it first when it is not there (unless
 * fetch.offline). */
typedef struct {
	const char *cache_dir;
	const ocil_mirror *mirrors;
	size_t n_mirrors;
	ocil_fetch_opts fetch;
} ocil_condaenv_fetch;

typedef struct {
	char *lock_path, *pkgs_dir, *wheels_dir;
	ocil_condalock lock;
	ocil_condapkg **pkgs; /* in lock order, pkgs[i] is lock.pkgs[i] */
	size_t n;
	ocil_wheel **wheels; /* installed after the conda packages, in order */
	size_t n_wheels;
	ocil_strv warnings; /* one line each: who clobbers whom */
	size_t n_fetched;   /* packages and wheels downloaded now */
} ocil_condaenv;

/* subdir: the target's, e.g. "linux-64". pkgs_dir: NULL for none.
 * wheels_dir (NULL: none): the lock's pip entries (conda-lock.yml) are found
 * there by file name and checked against their sha256; a lock without any
 * installs every *.whl there, in name order (wheel.h). fetch (NULL: nothing
 * is fetched) says where what those directories lack comes from. Fills
 * info's python_version, python_minor, subdir, has_awslambdaric and records
 * (origin stays NULL).
 * OCIL_E_INPUT: the lock's errors; "<lock>:<line>: <fn> is not in
 * <pkgs_dir>" (without fetch), "... nor in the cache, and --offline ..."; a
 * URL that is not http(s) or file; a package's errors (hash mismatch...); a
 * package whose index.json disagrees with the lock's file name; no python
 * package. A download's errors (fetch.h) carry "<lock>:<line>: ". */
int ocil_condaenv_load(const char *lock, const char *pkgs_dir, const char *wheels_dir,
		       const ocil_condaenv_fetch *fetch, const char *subdir, ocil_condaenv *env,
		       ocil_conda_info *info, ocil_error **err);
void ocil_condaenv_clear(ocil_condaenv *env);

typedef struct {
	const char *dest;  /* e.g. /opt/conda-env */
	int64_t created;   /* the history's timestamp (SOURCE_DATE_EPOCH) */
	const char *minor; /* python minor, from the info filled by load */
	const ocil_cancel *cancel;
	/* a path a package's paths.json lists and the package lacks: an error
	 * (strict) or a warning pushed to warnings (condapkg.h) */
	bool strict;
	ocil_strv *warnings; /* NULL: dropped */
	/* NULL: everything; else one of several layers (conda_split.h): the
	 * packages (pkgs[i]) and wheels (wheels[i]) it holds, with their
	 * records, and whether conda-meta/history goes in it */
	const struct ocil_condaenv_part *part;
} ocil_condaenv_opts;

typedef struct ocil_condaenv_part {
	const bool *pkgs, *wheels;
	bool history;
} ocil_condaenv_part;

int ocil_condaenv_write_layer(ocil_condaenv *env, const ocil_condaenv_opts *o, ocil_layer_writer *w,
			      ocil_error **err);

/* conda-meta/history as the layer holds it (caller frees). */
char *ocil_condaenv_history(const ocil_condaenv *env, int64_t created);

/* The packages as the SBOM sees them (from the records the layer holds). */
int ocil_condaenv_sbom_packages(const ocil_condaenv *env, ocil_sbom_packages *out,
				ocil_error **err);

#endif
