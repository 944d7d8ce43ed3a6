/* ocil_error: errors as values with a context chain.
 *
 * The library never prints or exits; it returns -1 and fills an ocil_error.
 * Callers add context with ocil_error_wrap ("reading base layer sha256:..: ").
 * Only main.c prints the message and maps the code to an exit status. */
#ifndef OCIL_ERROR_H
#define OCIL_ERROR_H

#include <stdarg.h>

typedef enum {
	OCIL_E_OK = 0,
	OCIL_E_USAGE = 1,	/* bad command line */
	OCIL_E_INPUT = 2,	/* bad file, ref, image, prefix */
	OCIL_E_REGISTRY = 3,	/* registry, network, auth */
	OCIL_E_CHECK = 4,	/* lint failed */
	OCIL_E_IO = 5,		/* I/O or internal */
	OCIL_E_FUNCTION = 6,	/* run: the function failed (error, exit, timeout) */
	OCIL_E_CANCELLED = 130, /* interrupted by a signal */
} ocil_code;

typedef struct ocil_error {
	ocil_code code;
	int errno_value; /* 0 when not from a system call */
	char *msg;	 /* full message, context first */
} ocil_error;

/* Set *err (if err != NULL and *err == NULL) and return -1. */
int ocil_error_set(ocil_error **err, ocil_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, with ": strerror(errnum)" appended. */
int ocil_error_set_errno(ocil_error **err, ocil_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefix "<context>: " to an existing error; returns -1. */
int ocil_error_wrap(ocil_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append " (<hint>)" to an existing error. */
void ocil_error_append_hint(ocil_error **err, const char *hint);
void ocil_error_free(ocil_error *err);

#endif
