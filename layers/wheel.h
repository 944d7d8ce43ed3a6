/* Python wheels (PEP 427) installed straight into a layer, as pip would
 * install them into a prefix's site-packages, without pip.
 *
 * File name: {name}-{version}[-{build}]-{python}-{abi}-{platform}.whl; the
 * tags (each may be a "."-joined set) must suit the prefix's python X.Y on
 * the target arch: python py3, py3N (N <= Y), cp3Y, or cp3N (N <= Y) with
 * abi3; abi none, abi3 or cp3Y[m]; platform any, linux_<arch> or a
 * manylinux tag of <arch> (manylinux1 = glibc 2.5, manylinux2010 = 2.12,
 * manylinux2014 = 2.17, manylinux_X_Y = X.Y) whose glibc the base image has
 * (ocil_wheel_check_glibc, once the base is read); never musllinux.
 *
 * Layout: <name>.data/purelib/... and platlib/... and every other file go
 * to lib/pythonX.Y/site-packages/...; <name>.data/scripts/... to bin/
 * ("#!python" first lines become #!<dest>/bin/pythonX.Y); headers/... to
 * include/pythonX.Y/<name>/...; data/... to the prefix itself. Every file
 * is checked against the wheel's RECORD (sha256) as it is copied.
 * [console_scripts] and [gui_scripts] of entry_points.txt become scripts in
 * bin/ (pip's template), INSTALLER says "ocilambda", and RECORD is written
 * anew with what was installed (paths relative to site-packages, as pip
 * does). No .pyc files are compiled. */
#ifndef OCIL_WHEEL_H
#define OCIL_WHEEL_H

#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "lambda/lambda.h"
#include "layers/condapkg.h"
#include "oci/layer_writer.h"
#include "oci/rootfs.h"

#define OCIL_WHEEL_MAX_META ((size_t)16 << 20) /* RECORD, entry_points.txt, a script */
#define OCIL_WHEEL_MAX_FILES 1000000

typedef struct {
	char *src;    /* in the wheel; NULL for a console script */
	char *target; /* in the prefix */
	char *hash;   /* RECORD's "sha256=..." for src */
	char *script; /* console script "name = module:func", or NULL */
	bool clobbered;
} ocil_wheel_file;

typedef struct {
	char *file, *fn;
	char *name, *version;  /* from the file name */
	char *py, *abi, *plat; /* its tags (each a "."-joined set) */
	char *arch;	       /* the target's, as opened */
	char *dist_info;       /* "<name>-<version>.dist-info" as in the wheel */
	ocil_pkgfile src;      /* every read checks it is the file opened */
	ocil_wheel_file *files;
	size_t n_files;
} ocil_wheel;

/* Open file, check its sha256 when given (hex), its tags against python
 * minor ("3.11") and arch ("x86_64", "aarch64"), and read its RECORD and
 * entry points. OCIL_E_INPUT naming the file: not a wheel, hash mismatch,
 * "built for cp39-cp39-manylinux2014_x86_64, which python 3.11 on x86_64
 * can not use", no dist-info/RECORD, a file missing from RECORD, a path
 * escaping the prefix. */
int ocil_wheel_open(const char *file, const char *sha256, const char *minor, const char *arch,
		    ocil_wheel **out, ocil_error **err);
/* The same for a file whose name is not the wheel's (a blob of the
 * download cache): fn is its file name, which carries the tags. */
int ocil_wheel_open_as(const char *file, const char *fn, const char *sha256, const char *minor,
		       const char *arch, ocil_wheel **out, ocil_error **err);
void ocil_wheel_free(ocil_wheel *w);

typedef struct {
	const char *dest;
	const char *minor;
	const ocil_cancel *cancel;
} ocil_wheel_install_opts;

/* Write the wheel's files (except clobbered ones), its scripts, INSTALLER
 * and RECORD under dest, parents first as needed. A file whose content does
 * not match RECORD is an OCIL_E_INPUT error naming it. */
int ocil_wheel_install(ocil_wheel *w, const ocil_wheel_install_opts *o, ocil_layer_writer *lw,
		       ocil_error **err);

/* Whether one of the platform tags of plats ("."-joined) suits arch on a
 * base with glibc: any, linux_<arch>, or a manylinux tag of arch needing at
 * most glibc (any manylinux tag of arch when glibc is unknown). *need (when
 * not NULL) gets the least glibc the manylinux tags of arch ask for, {0, 0}
 * without any. */
bool ocil_wheel_plat_usable(const char *plats, const char *arch, ocil_glibc glibc,
			    ocil_glibc *need);

/* Refuse a wheel whose platform tags all need a newer glibc than the
 * base's: OCIL_E_INPUT "<file>: built for cp38-cp38-manylinux_2_28_x86_64,
 * which needs glibc 2.28; the base image has glibc 2.26". Unknown glibc
 * passes. */
int ocil_wheel_check_glibc(const ocil_wheel *w, ocil_glibc base, ocil_error **err);
/* The same from what the check reads of a wheel, for a wheel not opened
 * (assemble's layer cache keeps these of each wheel, not the wheels). */
typedef struct {
	const char *file, *py, *abi, *plat, *arch;
} ocil_wheel_tags;
int ocil_wheel_tags_check_glibc(const ocil_wheel_tags *t, ocil_glibc base, ocil_error **err);

/* RECORD's form of a sha256 digest: "sha256=" + urlsafe base64 without
 * padding. Caller frees. */
char *ocil_wheel_record_hash(const unsigned char d[32]);

#endif
