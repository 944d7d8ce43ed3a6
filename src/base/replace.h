/* Streaming prefix replacement with bounded memory (conda relocation).
 *
 * Text mode: every occurrence of `from` becomes `to`, scanning left to
 * right without overlaps (like Python's bytes.replace); the output length
 * changes by (len(to) - len(from)) per match.
 *
 * Binary mode (conda's rule for binary prefix placeholders): the data is a
 * sequence of NUL-terminated strings; within each string every occurrence
 * of `from` becomes `to` and the string is padded with NULs at its end so
 * the total length is unchanged. `to` must not be longer than `from`.
 * One deliberate difference from conda: a last string with no NUL before
 * end of data is treated as ending there (conda leaves it untouched, which
 * would need to buffer it whole); padding then goes at the very end.
 *
 * Matches may span any chunk boundaries. Memory: two strings, a KMP table
 * of len(from) and a 64 KiB output buffer, whatever the input size.
 *
 * Padded binary mode (ocil_replacer_new_padded) relocates a file conda
 * installed: conda replaced a placeholder of `room` bytes by the prefix
 * `from` and left, after the terminating NUL of each string that held it k
 * times, k * (room - len(from)) NULs. `to` may then be longer than `from`,
 * up to room: each string grows by k * (len(to) - len(from)) bytes, taken
 * from the NULs after its terminator, so the size and every offset past
 * the padding stay the same. Those NULs are checked to be all there
 * (k * (room - len(from)) of them); a string whose padding is short, or a
 * last string with no NUL at all, is an OCIL_E_INPUT error naming the
 * byte offset and the counts. With len(to) <= len(from) it is the binary
 * mode above.
 *
 * To learn the output size before writing (a tar header needs it), run a
 * replacer with a NULL sink over the data first: it only counts. */
#ifndef OCIL_REPLACE_H
#define OCIL_REPLACE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"

/* Longest from/to accepted (paths). */
#define OCIL_REPLACE_MAX 4096

typedef enum {
	OCIL_REPLACE_TEXT,
	OCIL_REPLACE_BINARY,
} ocil_replace_mode;

/* Receives output; return -1 with *err set to stop. */
typedef int (*ocil_replace_sink)(void *ud, const void *buf, size_t len, ocil_error **err);

typedef struct ocil_replacer ocil_replacer;

/* from must be non-empty; both at most OCIL_REPLACE_MAX bytes. Binary mode
 * with len(to) > len(from) is an OCIL_E_INPUT error. sink NULL: count only. */
int ocil_replacer_new(ocil_replace_mode mode, const char *from, const char *to,
		      ocil_replace_sink sink, void *ud, ocil_replacer **out, ocil_error **err);
/* Padded binary mode (above); room is the length of the placeholder conda
 * recorded (its prefix_placeholder). A `to` longer than room is an
 * OCIL_E_INPUT error giving both lengths. */
int ocil_replacer_new_padded(const char *from, const char *to, size_t room, ocil_replace_sink sink,
			     void *ud, ocil_replacer **out, ocil_error **err);
int ocil_replacer_feed(ocil_replacer *r, const void *buf, size_t len, ocil_error **err);
/* End of data: flushes held bytes and padding to the sink. */
int ocil_replacer_finish(ocil_replacer *r, ocil_error **err);
/* After finish: bytes produced, occurrences replaced. */
uint64_t ocil_replacer_output_size(const ocil_replacer *r);
uint64_t ocil_replacer_matches(const ocil_replacer *r);
void ocil_replacer_free(ocil_replacer *r);

/* Feed everything read from fd (until EOF) and finish. what names the file
 * in errors. cancel may be NULL. */
int ocil_replacer_run_fd(ocil_replacer *r, int fd, const char *what, const ocil_cancel *cancel,
			 ocil_error **err);

#endif
