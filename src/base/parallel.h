/* Items of work run by a few threads at once (the blobs of an image pulled
 * or pushed concurrently), failing as a whole at the first failure. */
#ifndef OCIL_PARALLEL_H
#define OCIL_PARALLEL_H

#include <stddef.h>

#include "base/error.h"
#include "base/util.h"

/* One item. worker (0..workers-1) says which thread runs it, for state of
 * its own (a registry handle); stop is the cancellation to honour: set when
 * the caller's is, and once another item failed. */
typedef int (*ocil_parallel_fn)(void *data, size_t worker, size_t item, const ocil_cancel *stop,
				ocil_error **err);

/* fn on items 0..n-1, taken in order by min(workers, n) threads (the
 * calling thread only waits, watching cancel). After a failure no item
 * starts, and the ones under way are stopped. The error returned is the
 * one of the lowest item that failed by itself (not because it was
 * stopped), or the cancellation; *failed (if not NULL) is that item, n
 * when all went well. */
int ocil_parallel_run(size_t n, size_t workers, ocil_parallel_fn fn, void *data,
		      const ocil_cancel *cancel, size_t *failed, ocil_error **err);

#endif
