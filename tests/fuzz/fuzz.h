/* Shared by the libFuzzer targets in tests/fuzz/ (built with clang and
 * -fsanitize=fuzzer in build-fuzz) and by their corpus replayers (built in
 * every build from the same sources with replay.c as main, run by ctest and
 * valgrind), so every corpus file, including each crash found and fixed,
 * is a regression test of the normal build too. */
#ifndef OCIL_FUZZ_H
#define OCIL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An anonymous in-memory file holding len bytes, positioned at 0; aborts
 * when the kernel refuses (the harness cannot run without one). */
int fuzz_memfd(const void *buf, size_t len);
/* "/proc/self/fd/N": a path for APIs that open files by name. */
void fuzz_fd_path(int fd, char out[64]);

/* A small pax layer (a memfd) that looks like a base image: /usr/bin/python
 * -> python3.11, /lib -> usr/lib, a symlink loop, an escaping symlink, a
 * hardlink, a device; built once per process. Its fd stays open. */
int fuzz_base_layer(void);

/* One pax tar (uncompressed) with a single entry of the given type ('f'
 * file, 'd' dir, 'l' symlink, 'h' hardlink) named name (link: the target),
 * as a memfd. -1 when libarchive refuses to write it. */
int fuzz_one_entry_layer(const char *name, char type, const char *link);

/* Errors are the expected outcome of most inputs: drop them. */
void fuzz_drop(ocil_error **err);

#endif
