/* A layer blob as an image carries it: the tar reader on its own, then the
 * merged view (whiteouts, opaque dirs, hardlinks) with the bytes as the
 * only layer and as a layer over a base, and lookups through it. */
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "fuzz.h"
#include "oci/rootfs.h"
#include "oci/tarstream.h"

static void read_all(int fd)
{
	ocil_error *err = NULL;
	ocil_tarstream *ts = NULL;
	if (ocil_tarstream_open_fd(fd, "fuzz", &ts, &err) < 0) {
		fuzz_drop(&err);
		return;
	}
	char buf[4096];
	const ocil_tar_entry *e;
	int r;
	while ((r = ocil_tarstream_next(ts, &e, &err)) == 1) {
		/* the promises made to every caller */
		if (e->path[0] != '/' || strstr(e->path, "/../") != NULL ||
		    (e->type == OCIL_TAR_HARDLINK && e->link[0] != '/'))
			abort();
		char q[OCIL_TAR_QUOTE_SIZE];
		ocil_tar_quote(e->path, q);
		uint64_t got = 0;
		ssize_t n;
		while ((n = ocil_tarstream_read(ts, buf, sizeof(buf), &err)) > 0)
			got += (uint64_t)n;
		if (n < 0)
			break;
		if (got != e->size)
			abort();
	}
	fuzz_drop(&err);
	ocil_tarstream_free(ts);
}

static void view(const char *const *paths, size_t n)
{
	ocil_error *err = NULL;
	ocil_rootfs *fs = NULL;
	if (ocil_rootfs_open(paths, n, NULL, &fs, &err) < 0) {
		fuzz_drop(&err);
		return;
	}
	static const char *const look[] = {"/",
					   "/usr/bin/python",
					   "/lib/libc.so",
					   "/usr/lib/hard",
					   "/etc/passwd",
					   "/loop/a",
					   "/a",
					   "/a/b",
					   "/var/task/app.py"};
	for (size_t i = 0; i < sizeof(look) / sizeof(look[0]); i++) {
		cleanup_rootfs_node ocil_rootfs_node node = {0};
		int r = ocil_rootfs_lookup(fs, look[i], true, &node, &err);
		if (r == 1 && node.type == OCIL_TAR_FILE) {
			ocil_tarstream *ts = NULL;
			if (ocil_rootfs_open_file(fs, &node, &ts, &err) == 0) {
				char buf[4096];
				uint64_t got = 0;
				ssize_t k;
				while ((k = ocil_tarstream_read(ts, buf, sizeof(buf), &err)) > 0)
					got += (uint64_t)k;
				if (k == 0 && got != node.size)
					abort();
				ocil_tarstream_free(ts);
			}
		}
		fuzz_drop(&err);
		cleanup_strv ocil_strv names = {0};
		if (ocil_rootfs_list(fs, look[i], &names, &err) < 0)
			fuzz_drop(&err);
	}
	ocil_rootfs_free(fs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = fuzz_memfd(data, size);
	read_all(fd);
	char p[64], base[64];
	fuzz_fd_path(fd, p);
	fuzz_fd_path(fuzz_base_layer(), base);
	const char *one[] = {p};
	view(one, 1);
	const char *two[] = {base, p};
	view(two, 2);
	close(fd);
	return 0;
}
