/* Paths: the input is an entry name for the tar reader's normalizer (a
 * one-entry layer over a base that has symlinks, loops and an escaping
 * link) and a path to resolve in that merged view. Input: "<type><name>"
 * with type f/d/l/h, and for links "<name>\0<target>". */
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "fuzz.h"
#include "oci/rootfs.h"

static void resolve(ocil_rootfs *fs, const char *path)
{
	ocil_error *err = NULL;
	for (int follow = 0; follow < 2; follow++) {
		cleanup_rootfs_node ocil_rootfs_node node = {0};
		int r = ocil_rootfs_lookup(fs, path, follow, &node, &err);
		if (r == 1 &&
		    (node.path == NULL || node.path[0] != '/' || strstr(node.path, "/../") != NULL))
			abort();
		if (r == 0 && node.missing == NULL)
			abort();
		fuzz_drop(&err);
	}
	cleanup_strv ocil_strv names = {0};
	if (ocil_rootfs_list(fs, path, &names, &err) < 0)
		fuzz_drop(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 8192)
		return 0;
	char type = strchr("fdlh", data[0]) ? (char)data[0] : 'f';
	cleanup_free char *s = ocil_xstrndup((const char *)data + 1, size - 1);
	size_t nlen = strlen(s);
	const char *link = nlen + 2 < size ? (const char *)data + 1 + nlen + 1 : "x";
	cleanup_free char *target = ocil_xstrndup(link, size - (size_t)(link - (const char *)data));
	if (type == 'l' || type == 'h')
		link = target;
	ocil_error *err = NULL;
	char base[64];
	fuzz_fd_path(fuzz_base_layer(), base);
	int fd = fuzz_one_entry_layer(s, type, link);
	ocil_rootfs *fs = NULL;
	if (fd >= 0) {
		char p[64];
		fuzz_fd_path(fd, p);
		const char *paths[] = {base, p};
		if (ocil_rootfs_open(paths, 2, NULL, &fs, &err) < 0)
			fuzz_drop(&err);
	}
	if (fs == NULL) {
		const char *paths[] = {base};
		if (ocil_rootfs_open(paths, 1, NULL, &fs, &err) < 0)
			abort(); /* the base itself is fine */
	}
	resolve(fs, s);
	resolve(fs, target);
	ocil_rootfs_free(fs);
	if (fd >= 0)
		close(fd);
	return 0;
}
