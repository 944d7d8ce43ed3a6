/* A conda prefix's python sources as they go into a layer: each .py gets
 * the mtime its valid __pycache__ files record, so that the bytecode the
 * prefix ships stays valid in the image (the format and its rules are
 * oci/pyc.h's). */
#ifndef OCIL_PYC_PREFIX_H
#define OCIL_PYC_PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/walk.h"
#include "oci/layer_writer.h"
#include "oci/pyc.h"

/* ---- a prefix packed into a layer ---- */

/* What became of the bytecode python reads (above), per source. */
typedef struct {
	size_t pycs;	   /* with their source in the layer */
	size_t valid;	   /* valid in the image, as python checks them */
	size_t stale_host; /* stale on the build host already: they stay stale */
	/* compiled from a source the relocation rewrote (prefix replaced):
	 * stale in the image */
	size_t rewritten;
	char *first_stale, *first_rewritten; /* a source of each, relative */
} ocil_pyc_counts;
void ocil_pyc_counts_clear(ocil_pyc_counts *c);
/* "8321 .pyc files valid in the image; 1 stale on the build host (e.g.
 * lib/x.py) and 2 of relocated sources (e.g. ...): python compiles those
 * modules at every cold start", or NULL when there are no pycs. */
char *ocil_pyc_counts_summary(const ocil_pyc_counts *c);

typedef struct ocil_pyc_prefix ocil_pyc_prefix;
/* minor: the prefix's python ("3.11"); epoch: the layer's mtime.
 * in_layer (may be NULL): whether a path relative to the prefix goes into
 * the layer (its excludes). */
ocil_pyc_prefix *ocil_pyc_prefix_new(const char *minor, int64_t epoch,
				     bool (*in_layer)(const char *rel, void *ud), void *ud);
void ocil_pyc_prefix_free(ocil_pyc_prefix *p);
/* Counts so far (owned by p). */
const ocil_pyc_counts *ocil_pyc_prefix_counts(const ocil_pyc_prefix *p);

/* For a regular file of the walk about to go into the layer with
 * image_size bytes (rewritten: its bytes differ from the file's): when it
 * is a .py, the mtime its entry gets, set on w for the next entry (see
 * ocil_layer_writer_set_next_mtime), and its bytecode counted. The mtime
 * is the one its pycs record when one of them is valid on the build host
 * (then they all record the same: the source's, to the second, low 32
 * bits), else the layer's; moved on by whole seconds while a stale pyc of
 * the same size records that time, so that no stale pyc becomes valid.
 * Nothing but the pycs' bytes and their validity on the host decides it.
 * The __pycache__ beside it is read once per directory (headers only); a
 * checked-hash pyc makes the source be read for its hash. Unreadable
 * bytecode counts as absent (the walk reports what it cannot read). */
void ocil_pyc_prefix_source(ocil_pyc_prefix *p, const ocil_walk_entry *e, bool rewritten,
			    uint64_t image_size, ocil_layer_writer *w);

#endif
