/* One conda package file (.conda or .tar.bz2), read with libarchive and
 * installed straight into a layer: no extraction to disk.
 *
 * .tar.bz2: a bzip2 tar holding info/ and the payload. .conda: a zip
 * holding metadata.json, info-<dist>.tar.zst (info/) and
 * pkg-<dist>.tar.zst (the payload).
 *
 * What is installed is what info/paths.json lists (as conda does; older
 * packages without it: info/files with info/has_prefix), each path with
 * its prefix_placeholder replaced by the destination prefix: file_mode
 * "text" everywhere in the file, "binary" conda's way (inside each
 * NUL-terminated string, NUL-padded to the same length; a destination
 * longer than the placeholder is an error naming the file and both
 * lengths). The paths come from the payload: a .tar.bz2's tar, or a
 * .conda's pkg- tarball and whatever its info- tarball holds outside info/
 * (conda extracts both into one directory, and real packages rely on it:
 * ncurses-6.2-he6710b0_1.conda of Anaconda's main keeps its link
 * lib/terminfo -> ../share/terminfo in the info tarball). A `noarch: python` package's
 * site-packages/... go to lib/pythonX.Y/site-packages/... and its
 * python-scripts/... to bin/...; the entry points of its info/link.json
 * become scripts in bin/ (conda's template, #!<dest>/bin/pythonX.Y). */
#ifndef OCIL_CONDAPKG_H
#define OCIL_CONDAPKG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "oci/layer_writer.h"

/* Caps on what we read from a package. */
#define OCIL_CONDAPKG_MAX_INFO ((size_t)64 << 20)  /* one info/ file */
#define OCIL_CONDAPKG_MAX_TEXT ((size_t)256 << 20) /* a text file with a placeholder */
#define OCIL_CONDAPKG_MAX_PATHS 1000000
#define OCIL_CONDAPKG_MAX_MISSING 10 /* warnings about missing paths, a package */

typedef struct {
	char *path;		/* in the package */
	char *target;		/* in the prefix (noarch: python mapped) */
	char *path_type;	/* "hardlink", "softlink", "directory" */
	char *placeholder;	/* NULL: none */
	bool binary;		/* file_mode "binary" */
	char *sha256;		/* as paths.json says (hex), or NULL */
	int64_t size;		/* size_in_bytes, -1 when not said */
	bool clobbered;		/* a later package installs the same target: not written */
	bool done;		/* written (or clobbered and seen) */
	bool missing;		/* listed, not in the package: not written, not recorded */
	char *sha256_in_prefix; /* of a file whose placeholder was replaced */
} ocil_condapkg_path;

/* A package file hashed and read through an fd checked to be the same,
 * unchanged file (inode, size, mtime, ctime) after each walk and at each
 * reopen, so the bytes used are the bytes that were verified, not those of
 * a file replaced or rewritten under the same name in between. */
typedef struct {
	const char *name; /* for errors; borrowed */
	int fd;		  /* -1: not open */
	struct stat st;	  /* when opened */
} ocil_pkgfile;

int ocil_pkgfile_open(ocil_pkgfile *f, const char *name, ocil_error **err);
/* Closing keeps st: _reopen opens the name again and checks it is the same
 * unchanged file (so an environment of many packages holds one fd at a
 * time, not one each); a no-op when open. */
void ocil_pkgfile_close(ocil_pkgfile *f);
int ocil_pkgfile_reopen(ocil_pkgfile *f, ocil_error **err);
/* md5 and sha256 (lowercase hex) and size of the file's bytes. */
int ocil_pkgfile_hash(const ocil_pkgfile *f, char md5[33], char sha256[65], uint64_t *size,
		      ocil_error **err);
/* The hashes a file has against those a lock wants (NULL: not given):
 * OCIL_E_INPUT "<file>: sha256 mismatch (the lock says X, the file has Y)",
 * sha256 first, then md5. */
int ocil_pkgfile_check_hashes(const char *file, const char *want_md5, const char *want_sha256,
			      const char *md5, const char *sha256, ocil_error **err);
/* OCIL_E_INPUT "<name> was changed or replaced while it was being read"
 * if it was (a rename over it changes its ctime too). */
int ocil_pkgfile_check(const ocil_pkgfile *f, ocil_error **err);

typedef struct {
	char *file; /* as opened */
	char *fn;   /* its base name */
	ocil_pkgfile src;
	json_t *index;
	const char *name, *version, *build, *subdir; /* from index.json */
	bool noarch_python;
	ocil_strv entry_points; /* "name = module:func" */
	ocil_condapkg_path *paths;
	size_t n_paths;
	size_t *sorted; /* indexes of the payload's paths by path, for lookups */
	size_t n_sorted;
	char md5[33], sha256[65];
	uint64_t size;
} ocil_condapkg;

struct archive;
struct archive_entry;
/* Called for each entry of a walked archive; name without a leading "./". */
typedef int (*ocil_archive_entry_fn)(void *ud, struct archive *a, struct archive_entry *ae,
				     const char *name, ocil_error **err);
/* Each entry of the zip file (a .conda, a wheel), errors naming it; then
 * ocil_pkgfile_check. */
int ocil_archive_walk_zip(const ocil_pkgfile *f, ocil_archive_entry_fn fn, void *ud,
			  ocil_error **err);
/* A relative path with no empty, "." or ".." component: it stays inside
 * the prefix. */
bool ocil_condapkg_valid_rel(const char *s);

/* The data of the archive's current entry, NUL-terminated, at most max
 * bytes (more is an OCIL_E_INPUT error naming what). */
int ocil_archive_read_all(struct archive *a, const char *what, size_t max, char **out, size_t *len,
			  ocil_error **err);

/* md5 and sha256 (lowercase hex) and size of a file. */
int ocil_hash_file(const char *file, char md5[33], char sha256[65], uint64_t *size,
		   ocil_error **err);

/* Open file, check it against the md5 and/or sha256 given (hex; NULL: not
 * checked, but at least one must be given) and read its info/. Errors,
 * OCIL_E_INPUT naming the file: unreadable, "md5 mismatch (lock says ...,
 * file has ...)", not a .conda/.tar.bz2, no info/index.json, malformed
 * index.json/paths.json/link.json (what, where), a path escaping the
 * prefix, caps exceeded. */
int ocil_condapkg_open(const char *file, const char *md5, const char *sha256, ocil_condapkg **out,
		       ocil_error **err);
/* The same for a file whose name is not the package's (a blob of the
 * download cache): fn is its file name ("numpy-1.26.4-py311_0.conda"). */
int ocil_condapkg_open_as(const char *file, const char *fn, const char *md5, const char *sha256,
			  ocil_condapkg **out, ocil_error **err);
/* Decide the targets, once, before install: python_minor ("3.11") maps
 * noarch: python paths and entry points (NULL for such a package is an
 * error). */
int ocil_condapkg_map(ocil_condapkg *p, const char *python_minor, ocil_error **err);
void ocil_condapkg_free(ocil_condapkg *p);

typedef struct {
	const char *dest;	  /* e.g. /opt/conda-env */
	const char *python_minor; /* for entry points; may be NULL without any */
	const ocil_cancel *cancel;
	/* a path paths.json lists that the package lacks is an error, not a
	 * warning */
	bool strict;
	ocil_strv *warnings; /* where they go; NULL: dropped */
} ocil_condapkg_install_opts;

/* Write the package's paths (except clobbered ones) under dest, parents
 * first as needed, in the package's order, then its entry points. Payload
 * entries paths.json does not list are left out. A path it lists that the
 * payload lacks (not a directory or an entry point) is left out too, and
 * out of the record, with a warning "<fn>: info/paths.json lists <path>,
 * which is not in the package; left out" (conda's safety_checks: warn; at
 * most OCIL_CONDAPKG_MAX_MISSING a package, then a count); strict: an
 * OCIL_E_INPUT error "<file>: info/paths.json lists <path>, which is not
 * in the package". */
int ocil_condapkg_install(ocil_condapkg *p, const ocil_condapkg_install_opts *o,
			  ocil_layer_writer *w, ocil_error **err);

/* The conda-meta record (PrefixRecord) conda writes for the installed
 * package: index.json's fields, plus channel, url, fn, md5, sha256, size,
 * files, paths_data, link, requested_spec, package_tarball_full_path,
 * extracted_package_dir (the last two under pkgs_dir, where conda would have
 * them). channel ("https://conda.anaconda.org/conda-forge/linux-64") and
 * url as the lock says. */
json_t *ocil_condapkg_record(const ocil_condapkg *p, const char *channel, const char *url,
			     const char *pkgs_dir);

#endif
