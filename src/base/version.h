/* The versions of the libraries ocilambda runs with, for `ocilambda
 * version` and bug reports: asked of the library at run time where it
 * can say, else the headers it was built against. */
#ifndef OCIL_VERSION_H
#define OCIL_VERSION_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	const char *name;
	const char *version;  /* what runs (runtime) or was built in */
	const char *compiled; /* the headers' version */
	bool runtime;	      /* version came from the library itself */
} ocil_lib_version;

/* Fill out with up to n entries (static strings); returns how many there
 * are (which may exceed n). */
size_t ocil_lib_versions(ocil_lib_version *out, size_t n);

#endif
