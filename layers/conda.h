/* The conda prefix layer.
 *
 * ocil_conda_inspect reads the <prefix>/conda-meta/<name>.json records (installed
 * package records), checks them against the prefix and tells what is in it;
 * ocil_conda_write_layer packs the prefix at dest, relocating it from the
 * prefix it was built at, and reports what it could not relocate.
 *
 * Origin (the prefix the environment was built at), unless overridden:
 *   1. the first `#!<origin>/bin/python...` line of a file recorded with
 *      path_type "unix_python_entry_point" or with a text
 *      prefix_placeholder (records in file-name order, paths in record
 *      order; the interpreter path up to "/bin/");
 *   2. otherwise the realpath of the prefix directory itself, i.e. the env
 *      is used where it lies and nothing needs relocating.
 *
 * A file is "managed" when a record lists it (its "files" or a
 * paths_data.paths[]._path; a noarch: python record's site-packages/... and
 * python-scripts/... paths, as mamba 1.5 writes them, mean those under
 * the lib/pythonX.Y/site-packages and bin/ its "files" have). Relocation
 * (when origin != dest), per regular
 * file:
 *   - recorded with a text placeholder: every origin -> dest;
 *   - recorded with a binary placeholder: conda's NUL-padded replacement
 *     into a dest no longer than origin; into a longer one, up to the
 *     placeholder's length, each string grows into the NULs conda left
 *     after it when it installed origin in place of the placeholder, which
 *     are checked to be there (replace.h, padded mode). A dest longer than
 *     the placeholder, or padding that is not there, is an error naming
 *     the file and the lengths;
 *   - a managed file anywhere (e.g. an unix_python_entry_point script), or
 *     an unmanaged one under bin/ (pip's console scripts), whose first line
 *     is a `#!` containing origin: text replacement of the whole file;
 *   - any other unmanaged file is copied as is; if it still contains origin
 *     the report says so (an error in strict mode). conda-meta/ is kept as
 *     is and not reported.
 * Symlinks with an absolute target under origin point under dest instead;
 * ones that point outside the prefix are reported.
 * Left out: the top-level pkgs/, conda-bld/, envs/, .condarc and
 * .conda_lock, conda's *.conda_trash leftovers anywhere, hidden files in
 * conda-meta/ (lock and temp files; conda-meta/history stays), and whatever
 * the exclude globs match (__pycache__ stays: conda ships .pyc files and
 * Lambda can't write them). A .py file's entry gets the mtime its valid
 * bytecode records (ocil_pyc_prefix_source), so that python takes that
 * bytecode in the image; the report counts what stays stale. */
#ifndef OCIL_CONDA_H
#define OCIL_CONDA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/error.h"
#include "base/util.h"
#include "lambda/sbom.h"
#include "layers/pyc_prefix.h"
#include "oci/layer_writer.h"

#define OCIL_CONDA_MAX_FILES 4000000 /* files recorded over all packages */
/* distinct binary placeholder lengths (conda-build 3 has one, 255) */
#define OCIL_CONDA_MAX_ROOMS 250

typedef struct {
	/* where the env was built, when it was moved since (otherwise it is
	 * found as described above); NULL: detect */
	const char *source_prefix;
	/* fnmatch(3) patterns (flags 0, so a star also matches "/") matched
	 * against each path relative to the prefix, e.g. "share/doc", "*.a",
	 * "lib/python3.11/test"; a matching directory is left out with
	 * everything under it. A trailing "/" and a leading "./" are ignored. */
	const char *const *excludes;
	size_t n_excludes;
} ocil_conda_inspect_opts;

typedef struct {
	char *python_version; /* e.g. "3.11.2" from the record whose "name" is "python" */
	char *python_minor;   /* "3.11" */
	char *origin;	      /* prefix it was built at */
	/* e.g. "linux-64": the python record's subdir, else the most common
	 * one other than "noarch" among the records (ties: the first in
	 * bytewise order); NULL when no record says */
	char *subdir;
	/* a conda record, or in site-packages an awslambdaric/ package or
	 * pip's awslambdaric*.dist-info (or .egg-info), not excluded */
	bool has_awslambdaric;
	size_t records;
	/* every recorded path (the managed files) -> its placeholder mode:
	 * 0 none, 1 text, 2 + i binary with a placeholder of binary_rooms[i]
	 * bytes; used by ocil_conda_write_layer, owned by this struct */
	ocil_strmap files;
	size_t *binary_rooms; /* the distinct lengths, at most OCIL_CONDA_MAX_ROOMS */
	size_t n_binary_rooms;
	ocil_strv excludes; /* normalized copies of the inspect opts' globs */
	/* the records in the order they were read (their file names under
	 * conda-meta/, bytewise) and the "name" each gives; owners: every
	 * recorded path -> the index of the last record that lists it (see
	 * ocil_conda_owner). Filled by ocil_conda_inspect only (not kept with
	 * a cached layer), for the per-package layers (conda_split.h). */
	ocil_strv record_files, record_names;
	ocil_hashtab owners;
} ocil_conda_info;

/* Errors, all OCIL_E_INPUT naming the path, before any layer is written:
 *   - prefix missing, unreadable or not a directory; "... is not a conda
 *     prefix: no conda-meta directory"; no python record;
 *   - "<file>: malformed conda record: <what>": not JSON, no (or not a
 *     string) name/version/build, a wrong type for channel, subdir,
 *     platform, arch, files, paths_data(.paths), a path's _path,
 *     path_type, prefix_placeholder or file_mode, sha256 not 64 hex
 *     digits, size_in_bytes not a non-negative integer, a path escaping
 *     the prefix, binary placeholders of more than OCIL_CONDA_MAX_ROOMS
 *     lengths or longer than OCIL_REPLACE_MAX;
 *   - "<prefix>/conda-meta/<rec>.json lists <path>, which is not in the
 *     prefix" (excluded paths are exempt);
 *   - "<path>: editable install ...": a *.egg-link or __editable__* file, or
 *     a *.dist-info/direct_url.json saying "editable": true, under any
 *     lib/pythonX.Y/site-packages (excluded paths are exempt).
 * A bad exclude pattern (empty, absolute) is OCIL_E_USAGE. io may be NULL.
 * On failure info is left cleared. */
int ocil_conda_inspect(const char *prefix, const ocil_conda_inspect_opts *io, ocil_conda_info *info,
		       ocil_error **err);
void ocil_conda_info_clear(ocil_conda_info *info);
/* What inspecting found, as JSON, for the layer cache: everything but the
 * managed file map and the excludes (only packing needs them). origin and
 * subdir may be NULL (a lock's info has no origin): they are left out. */
json_t *ocil_conda_info_to_json(const ocil_conda_info *info);
/* Back from ocil_conda_info_to_json; false (info cleared) when j is not
 * such a document. */
bool ocil_conda_info_from_json(const json_t *j, ocil_conda_info *info);

/* The index (into record_files) of the record that owns rel, a path
 * relative to the prefix: the last one listing it; -1 for none. */
long ocil_conda_owner(const ocil_conda_info *info, const char *rel);

/* Whether the layer leaves this entry of a walk of the prefix out (the
 * top-level pkgs/, conda-bld/, envs/, .condarc, .conda_lock, *.conda_trash,
 * hidden files in conda-meta/, what the excludes match): as
 * ocil_conda_write_layer does. */
bool ocil_conda_left_out(const ocil_conda_info *info, const ocil_walk_entry *e);

/* Whether the prefix can run on the base image's platform (OCI names: os
 * "linux", arch "amd64"/"arm64"). linux-64 <-> linux/amd64, linux-aarch64
 * <-> linux/arm64 (and linux-32, -armv6l, -armv7l, -ppc64le, -s390x to 386,
 * arm, arm, ppc64le, s390x). OCIL_E_INPUT: "conda prefix is built for osx-64;
 * Lambda runs linux (build the environment on linux-64)" for osx-* and win-*;
 * "conda prefix is built for linux-aarch64 but the base image is
 * linux/amd64" on a mismatch. A prefix with no subdir, "noarch" or an
 * unknown one passes; so does any linux prefix when os or arch is NULL. */
int ocil_conda_check_platform(const ocil_conda_info *info, const char *os, const char *arch,
			      ocil_error **err);

/* The conda subdir of an OCI platform (the first one listed above for
 * arm), e.g. "linux-64" for linux/amd64; NULL when there is none. */
const char *ocil_conda_subdir_for(const char *os, const char *arch);

typedef struct {
	const char *prefix;
	const char *dest; /* e.g. /opt/conda-env */
	const ocil_conda_info *info;
	const ocil_cancel *cancel;
	/* an unmanaged file (not .pyc) that still contains origin is an
	 * OCIL_E_INPUT error instead of a warning */
	bool strict;
	/* NULL, or which entries of the prefix go into this layer (one of
	 * several, conda_split.h): an entry it says no to is left out, a
	 * directory with everything below it */
	bool (*keep)(const ocil_walk_entry *e, void *ud);
	void *keep_ud;
} ocil_conda_opts;

/* What the layer left as it found it, for the user to read. */
typedef struct {
	/* one line each, no trailing newline, in walk order:
	 *   "<rel>: not managed by conda and still contains <origin>; left as is"
	 *   "<rel> -> <target> points outside the prefix"
	 * and, last, one summary line for the .pyc files */
	ocil_strv warnings;
	size_t unmanaged_with_prefix; /* unmanaged files (not .pyc) still containing origin */
	/* unmanaged .pyc files still containing origin (pip compiles at
	 * install time; only tracebacks show the path): summarized, never an
	 * error */
	size_t unmanaged_pyc;
	size_t links_outside; /* symlinks pointing outside the prefix */
	/* the bytecode python reads, and whether it stays valid (pyc_prefix.h) */
	ocil_pyc_counts bytecode;
} ocil_conda_report;
void ocil_conda_report_clear(ocil_conda_report *r);

/* Entries: parents of dest, dest, then the prefix depth-first, siblings in
 * bytewise order. Sockets, fifos and devices are an OCIL_E_INPUT error
 * naming the file; hardlinked files become regular files. report must be
 * zeroed (or cleared) by the caller, who clears it after use; it is filled
 * as far as the walk got, even on failure (NULL: nothing is kept).
 * Unmanaged files are checked for origin while they are copied (no second
 * read). */
int ocil_conda_write_layer(const ocil_conda_opts *o, ocil_layer_writer *w,
			   ocil_conda_report *report, ocil_error **err);

#endif
