/* Cleanup attributes (as in crun/systemd) and checked allocation. */
#ifndef OCIL_ALLOC_H
#define OCIL_ALLOC_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/error.h"

static inline void ocil_freep(void *p)
{
	free(*(void **)p);
}
static inline void ocil_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void ocil_fclosep(FILE **f)
{
	if (*f != NULL)
		fclose(*f);
}
static inline void ocil_errorp(ocil_error **e)
{
	ocil_error_free(*e);
}

#define cleanup_free __attribute__((cleanup(ocil_freep)))
#define cleanup_close __attribute__((cleanup(ocil_closep)))
#define cleanup_fclose __attribute__((cleanup(ocil_fclosep)))
#define cleanup_error __attribute__((cleanup(ocil_errorp)))

/* Take ownership out of a cleanup variable. */
#define steal_pointer(pp)                                                                          \
	({                                                                                         \
		__typeof__(*(pp)) _p = *(pp);                                                      \
		*(pp) = NULL;                                                                      \
		_p;                                                                                \
	})
#define steal_fd(fdp)                                                                              \
	({                                                                                         \
		int _fd = *(fdp);                                                                  \
		*(fdp) = -1;                                                                       \
		_fd;                                                                               \
	})

/* Allocation failure is not recoverable in a CLI; abort loudly. */
void *ocil_xmalloc(size_t n);
void *ocil_xcalloc(size_t n, size_t m);
void *ocil_xrealloc(void *p, size_t n);
char *ocil_xstrdup(const char *s);
char *ocil_xstrndup(const char *s, size_t n);
char *ocil_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
