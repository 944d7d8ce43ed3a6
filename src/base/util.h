/* The base helpers in one include (alloc, fs, strv, map), plus what a
 * whole run shares: SOURCE_DATE_EPOCH and cooperative cancellation. */
#ifndef OCIL_UTIL_H
#define OCIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/map.h"
#include "base/strv.h"

/* SOURCE_DATE_EPOCH (0 when unset); a malformed value is OCIL_E_USAGE. */
int ocil_source_date_epoch(int64_t *out, ocil_error **err);

/* Cooperative cancellation: main.c points this at its signal flag. */
typedef struct {
	volatile int *flag;
} ocil_cancel;
int ocil_cancel_check(const ocil_cancel *c, ocil_error **err);

#endif
