/* The conda prefix layer.
 *
 * ocil_conda_inspect reads the <prefix>/conda-meta/<name>.json records (installed
 * package records) and tells what is in the prefix; ocil_conda_write_layer
 * packs the prefix at dest, relocating it from the prefix it was built at.
 *
 * Origin (the prefix the environment was built at), unless overridden:
 *   1. the first `#!<origin>/bin/python...` line of a file recorded with
 *      path_type "unix_python_entry_point" or with a text
 *      prefix_placeholder (records in file-name order, paths in record
 *      order; the interpreter path up to "/bin/");
 *   2. otherwise the realpath of the prefix directory itself, i.e. the env
 *      is used where it lies and nothing needs relocating.
 *
 * Relocation (when origin != dest), per regular file:
 *   - recorded with a text placeholder: every origin -> dest;
 *   - recorded with a binary placeholder: conda's NUL-padded replacement
 *     (an error naming the file if dest is longer than origin);
 *   - any other file whose first line is a `#!` containing origin (pip or
 *     entry-point scripts): text replacement of the whole file.
 * Symlinks with an absolute target under origin point under dest instead.
 * Left out: the top-level pkgs/, conda-bld/ and envs/ directories only
 * (__pycache__ stays: conda ships .pyc files and Lambda can't write them). */
#ifndef OCIL_CONDA_H
#define OCIL_CONDA_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "layer_writer.h"
#include "util.h"

/* Caps on what we read from a prefix. */
#define OCIL_CONDA_MAX_RECORD ((size_t)64 << 20) /* one conda-meta record */
#define OCIL_CONDA_MAX_RECORDS 100000
#define OCIL_CONDA_MAX_FILES 4000000 /* files recorded over all packages */

typedef struct {
	char *python_version; /* e.g. "3.11.2" from the record whose "name" is "python" */
	char *python_minor;   /* "3.11" */
	char *origin;	      /* prefix it was built at */
	char *subdir;	      /* e.g. "linux-64" (python's record) or NULL */
	bool has_awslambdaric;
	size_t records;
	/* rel path -> placeholder mode, for recorded files that have one;
	 * used by ocil_conda_write_layer, owned by this struct */
	ocil_strmap placeholders;
} ocil_conda_info;

/* Errors (OCIL_E_INPUT, naming the path): prefix missing, unreadable or not
 * a directory; "... is not a conda prefix: no conda-meta directory"; a
 * malformed record (names the file); no python record. */
int ocil_conda_inspect(const char *prefix, const char *origin_override, ocil_conda_info *info,
		       ocil_error **err);
void ocil_conda_info_clear(ocil_conda_info *info);

typedef struct {
	const char *prefix;
	const char *dest; /* e.g. /opt/conda-env */
	const ocil_conda_info *info;
	const ocil_cancel *cancel;
} ocil_conda_opts;

/* Entries: parents of dest, dest, then the prefix depth-first, siblings in
 * bytewise order. Sockets, fifos and devices are an OCIL_E_INPUT error
 * naming the file; hardlinked files become regular files. */
int ocil_conda_write_layer(const ocil_conda_opts *o, ocil_layer_writer *w, ocil_error **err);

#endif
