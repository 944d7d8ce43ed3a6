/* Conda lock files: which package files make up an environment.
 *
 * Two formats, told apart by content:
 *   - explicit (`conda list --explicit --md5`): comment lines, an
 *     "@EXPLICIT" line, then one package URL a line ending in "#<md5>" or
 *     "#sha256:<hex>" (conda's newer form);
 *   - conda-lock's `conda-lock.yml` (version 1): the "package" list; the
 *     entries whose "platform" is the target subdir are used, "manager:
 *     conda" ones as packages (url, hash.md5 / hash.sha256), "manager: pip"
 *     ones as wheels.
 * Every package must carry a hash: the files are checked against it before
 * use. A package's subdir is the URL's second-to-last component; it must be
 * the target subdir or "noarch". */
#ifndef OCIL_CONDALOCK_H
#define OCIL_CONDALOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

/* Caps on what we read from a lock. */
#define OCIL_CONDALOCK_MAX_SIZE ((size_t)16 << 20)
#define OCIL_CONDALOCK_MAX_PACKAGES 20000

typedef struct {
	char *url;	  /* as written, without the hash: what is fetched */
	char *public_url; /* url without credentials or tokens (ocil_url_public):
			   * what the image records */
	char *fn;	  /* the URL's last component: "python-3.11.2-h_0.conda" */
	char *channel;	  /* the public URL before "/<subdir>/<fn>" */
	char *subdir;	  /* "linux-64", "noarch" */
	char *md5;	  /* 32 lowercase hex digits, or NULL */
	char *sha256;	  /* 64 lowercase hex digits, or NULL; at least one is set */
	unsigned line;	  /* where the entry is in the lock (for errors) */
} ocil_condalock_pkg;

typedef struct {
	ocil_condalock_pkg *pkgs; /* conda packages, in lock order */
	size_t n_pkgs;
	ocil_condalock_pkg *wheels; /* pip entries of conda-lock.yml (subdir NULL) */
	size_t n_wheels;
	bool yaml; /* it was a conda-lock.yml */
} ocil_condalock;

/* Read the lock at path for the target subdir (e.g. "linux-64").
 * OCIL_E_INPUT naming path (and the line) for: unreadable, over the cap,
 * neither format, a URL that is not <channel>/<subdir>/<name>.conda or
 * .tar.bz2, a missing or malformed hash, no packages; and one error naming
 * every package of another platform ("... lists packages for another
 * platform than linux-64: win-64/vc-14.3-h_0.tar.bz2, ..."). */
int ocil_condalock_read(const char *path, const char *subdir, ocil_condalock *out,
			ocil_error **err);
void ocil_condalock_clear(ocil_condalock *l);

#endif
