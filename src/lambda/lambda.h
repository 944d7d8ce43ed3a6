/* lambda: what AWS Lambda's container runtime expects of an image, in one
 * place: where the python bases keep their interpreter, what a function
 * reads, the limits Lambda enforces, the interpreter's name, and a base
 * image's glibc. check, inspect, the layer producers and run take these
 * facts from here rather than spelling them again. */
#ifndef OCIL_LAMBDA_H
#define OCIL_LAMBDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "oci/rootfs.h"

/* The python bases' interpreter: /var/lang/bin/python3.N, which
 * /var/runtime/bootstrap runs. */
#define OCIL_LAMBDA_PYTHON_DIR "/var/lang/bin"
/* LAMBDA_TASK_ROOT when the image's Env does not set it. */
#define OCIL_LAMBDA_TASK_ROOT "/var/task"
/* Directories every function reads (NULL-terminated): /opt (extensions and
 * our conda prefix and code), /var/lang, /var/runtime. */
extern const char *const ocil_lambda_read_dirs[];

/* Lambda's limits for container images. */
#define OCIL_LAMBDA_MAX_UNCOMPRESSED ((uint64_t)10 << 30)
#define OCIL_LAMBDA_MAX_MANIFEST ((size_t)4 << 20)

/* "3.N" (N of 1 to 4 digits): true, and *minor = N when minor is not NULL. */
bool ocil_lambda_python_version(const char *v, unsigned *minor);
/* "python3.N", the same rule. */
bool ocil_lambda_python_name(const char *name, unsigned *minor);

/* A glibc version, e.g. {2, 26}; {0, 0}: unknown. */
typedef struct {
	unsigned major, minor;
} ocil_glibc;

/* The version in an older glibc's file name "libc-2.26.so". */
bool ocil_lambda_glibc_from_name(const char *name, ocil_glibc *out);
/* The version in the banner libc.so.6 holds, "GNU C Library (...) stable
 * release version 2.36." (buf need not be NUL-terminated; a version that
 * runs to the end of buf is not taken, it may go on). */
bool ocil_lambda_glibc_from_banner(const char *buf, size_t len, ocil_glibc *out);

/* Largest libc.so.6 whose bytes are searched for the banner. */
#define OCIL_LAMBDA_MAX_LIBC ((uint64_t)64 << 20)

/* The glibc of a merged base image: libc.so.6 in /lib64, /usr/lib64,
 * /lib/<arch>-linux-gnu, /usr/lib/<arch>-linux-gnu, /lib, /usr/lib (the
 * first found, symlinks followed inside the image, whiteouts honoured);
 * its version from the name it resolves to (libc-2.26.so), else from its
 * banner. *where (caller frees; NULL when unknown) names the file it came
 * from. No libc found, or none with a version: *out is {0, 0}, not an
 * error. */
int ocil_lambda_base_glibc(ocil_rootfs *fs, const char *arch, ocil_glibc *out, char **where,
			   ocil_error **err);

#endif
