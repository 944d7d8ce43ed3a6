/* Per-package conda layers (issue 17): which package owns each file of a
 * prefix, which layer each package goes to, and what each layer's cache
 * keys cover.
 *
 * A package is a conda-meta record (a prefix) or a package or wheel of a
 * lock (condaenv.h). The layer budget (ocil_split_budget) is the most
 * conda layers the image may have. With one, everything is in one layer as
 * before. With more (ocil_split_assign):
 *   - G = min(OCIL_SPLIT_GROUPS, max(1, (budget - 1) / 4)) groups for small
 *     packages, one layer for what no package owns, and S = budget - 1 - G
 *     layers for big packages;
 *   - a package of OCIL_SPLIT_BIG bytes or more is big; the S biggest (ties:
 *     by name, then id) have a layer of their own; every other package goes
 *     to group (first 8 bytes of sha256(name), big-endian) mod G: its name,
 *     not its version, so a bump keeps its group and changes only that
 *     layer;
 *   - layers in that order: the big packages by name (then id), the groups
 *     by number, what no package owns; empty ones are left out.
 *
 * A prefix (ocil_conda_split_prefix): a file's owner is the last record
 * that lists it (ocil_conda_owner); conda-meta/<record>.json is its
 * record's; a __pycache__/<stem>.*.pyc no record lists goes with
 * <stem>.py beside it when a record owns that; anything else (pip's files,
 * conda-meta/history, empty directories) is unowned. A package's size is
 * the bytes of its regular files. Every layer holds the directories above
 * its entries, so each carries its parents, and the layers merge into the
 * tree one layer would hold. */
#ifndef OCIL_CONDA_SPLIT_H
#define OCIL_CONDA_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "base/walk.h"
#include "layers/conda.h"

#define OCIL_LAYERS_MAX 100	  /* in an image, the base's included */
#define OCIL_SPLIT_OTHER_LAYERS 3 /* bytecode, code, runtime */
#define OCIL_SPLIT_MAX_LAYERS 97  /* --layers N: N at most this */
#define OCIL_SPLIT_BIG ((uint64_t)1 << 20)
#define OCIL_SPLIT_GROUPS 8

/* The conda layers a build has at most: asked (--layers N; 0 for auto,
 * which asks for OCIL_SPLIT_MAX_LAYERS), lowered so that with base_layers
 * and OCIL_SPLIT_OTHER_LAYERS the image keeps within OCIL_LAYERS_MAX;
 * at least 1. */
size_t ocil_split_budget(size_t asked, size_t base_layers);

typedef struct {
	const char *name;  /* the package's name: picks its group */
	const char *label; /* e.g. "numpy-1.24.2-py311h_0": a layer of its own says it */
	uint64_t size;	   /* bytes of its files */
} ocil_split_pkg;

typedef struct {
	size_t n;	/* layers, at most the budget */
	size_t *of;	/* of[i]: the layer of package i */
	size_t unowned; /* the layer of what no package owns; n when there is none */
	char **what;	/* per layer: the label, "group 3 of 8: a, b" or "files no package owns" */
} ocil_split_plan;

/* Assign n packages to layers within budget; with have_unowned, what no
 * package owns gets the last layer. budget 1: everything in layer 0. */
void ocil_split_assign(const ocil_split_pkg *pkgs, size_t n, size_t budget, bool have_unowned,
		       ocil_split_plan *out);
void ocil_split_plan_clear(ocil_split_plan *p);

/* ---- a prefix ---- */

typedef struct ocil_conda_split ocil_conda_split;

/* Walk the inspected prefix (leaving out what the layer does, see
 * ocil_conda_left_out) and plan its layers within budget. Errors: the
 * walk's (OCIL_E_INPUT, OCIL_E_IO, OCIL_E_CANCELLED). */
int ocil_conda_split_prefix(const char *prefix, const ocil_conda_info *info, size_t budget,
			    const ocil_cancel *cancel, ocil_conda_split **out, ocil_error **err);
void ocil_conda_split_free(ocil_conda_split *s);
const ocil_split_plan *ocil_conda_split_plan(const ocil_conda_split *s);

/* The filter of layer k for ocil_conda_opts.keep (keep_ud: a
 * ocil_conda_split_layer): its entries and the directories above them. */
typedef struct {
	const ocil_conda_split *s;
	size_t k;
} ocil_conda_split_layer;
bool ocil_conda_split_keep(const ocil_walk_entry *e, void *ud);

/* Fold what layer k is made of into a cache key, from the walk: each
 * entry's path, stat (type, mode, size, mtime and ctime in nanoseconds,
 * inode, device), symlink target and how the layer treats it (placeholder
 * and its room, managed by conda or not); a directory by its path only (its
 * times move with every file added beside it, and do not shape the layer);
 * for each .py, the stat of its bytecode in other layers (it decides the
 * source's mtime). The key of one machine. */
void ocil_conda_split_fold_local(const ocil_conda_split *s, size_t k, ocil_hasher *h);

/* The same for a key that holds across machines: contents instead of
 * where and when: each entry's path, type, exec bit, size and sha256 (or
 * symlink target) and treatment; for each .py with bytecode, whether each
 * of its pycs is valid against the source on this host (all the host's
 * clock decides of the layer) and the sha256 of those in other layers.
 * Reads every file of the layer. Errors: OCIL_E_IO naming the file,
 * OCIL_E_CANCELLED. */
int ocil_conda_split_fold_content(const ocil_conda_split *s, size_t k, ocil_hasher *h,
				  const ocil_cancel *cancel, ocil_error **err);

#endif
