/* pylink: find the base image's python and write the layer that swaps it
 * for a symlink into the conda environment. */
#include "layers/pylink.h"

#include <string.h>
#include <sys/stat.h>

#include "oci/tarstream.h"

/* Copy buffer for the interpreter's bytes; the only data buffer here. */
#define COPY_BUF ((size_t)64 << 10)
/* By number, so 3.9 sorts before 3.10; "3.08" and "3.8" by bytes. */
static int cmp_minor(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	unsigned mx = 0, my = 0;
	ocil_lambda_python_version(x, &mx);
	ocil_lambda_python_version(y, &my);
	if (mx != my)
		return mx < my ? -1 : 1;
	return strcmp(x, y);
}

int ocil_pylink_list_pythons(ocil_rootfs *fs, ocil_strv *minors, ocil_error **err)
{
	ocil_strv names = {0};
	int r = ocil_rootfs_list(fs, OCIL_LAMBDA_PYTHON_DIR, &names, err);
	size_t start = minors->n;
	for (size_t i = 0; r > 0 && i < names.n; i++) {
		const char *minor = names.v[i] + strlen("python");
		if (!ocil_lambda_python_name(names.v[i], NULL))
			continue;
		cleanup_free char *path = ocil_xasprintf(OCIL_LAMBDA_PYTHON_DIR "/%s", names.v[i]);
		cleanup_rootfs_node ocil_rootfs_node node = {0};
		cleanup_error ocil_error *lerr = NULL;
		int found = ocil_rootfs_lookup(fs, path, true, &node, &lerr);
		if (found < 0 && lerr->code != OCIL_E_INPUT) {
			/* a symlink loop just means no python here; anything
			 * else is a real failure */
			if (err != NULL && *err == NULL)
				*err = steal_pointer(&lerr);
			r = -1;
			break;
		}
		if (found > 0 && node.type == OCIL_TAR_FILE)
			ocil_strv_push(minors, ocil_xstrdup(minor));
	}
	ocil_strv_clear(&names);
	if (r < 0)
		return -1;
	if (minors->n - start > 1)
		qsort(minors->v + start, minors->n - start, sizeof(char *), cmp_minor);
	return 0;
}

/* Why path is not a usable python, for the error message. */
static char *why_not_python(ocil_rootfs *fs, const char *path, const ocil_rootfs_node *followed)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	if (followed->path != NULL && followed->type == OCIL_TAR_DIR)
		return ocil_xasprintf("%s is a directory", ocil_tar_quote(followed->path, q));
	if (followed->path != NULL)
		return ocil_xasprintf("%s is not a regular file",
				      ocil_tar_quote(followed->path, q));
	/* not found: say whether a symlink led nowhere */
	cleanup_rootfs_node ocil_rootfs_node self = {0};
	cleanup_error ocil_error *lerr = NULL;
	const char *why = followed->missing ? followed->missing : "not found";
	if (ocil_rootfs_lookup(fs, path, false, &self, &lerr) > 0 && self.type == OCIL_TAR_SYMLINK)
		return ocil_xasprintf("it is a symbolic link to \"%s\" and %s",
				      ocil_tar_quote(self.link, q), why);
	return ocil_xstrdup(why);
}

static int copy_python(ocil_rootfs *fs, const ocil_rootfs_node *py, const char *dest,
		       ocil_layer_writer *w, ocil_error **err)
{
	cleanup_tarstream ocil_tarstream *ts = NULL;
	if (ocil_rootfs_open_file(fs, py, &ts, err) < 0)
		return -1;
	if (ocil_layer_writer_begin_file(w, dest, ocil_layer_file_mode(py->mode), py->size, err) <
	    0)
		return -1;
	cleanup_free char *buf = ocil_xmalloc(COPY_BUF);
	uint64_t total = 0;
	for (;;) {
		ssize_t n = ocil_tarstream_read(ts, buf, COPY_BUF, err);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		if (ocil_layer_writer_write(w, buf, (size_t)n, err) < 0)
			return -1;
		total += (uint64_t)n;
	}
	if (total != py->size)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: got %llu of %llu bytes",
				      ocil_tarstream_what(ts), (unsigned long long)total,
				      (unsigned long long)py->size);
	return ocil_layer_writer_end_file(w, err);
}

int ocil_pylink_check_unpatched(ocil_rootfs *fs, const char *minor, ocil_error **err)
{
	cleanup_free char *clean = ocil_xasprintf(OCIL_LAMBDA_PYTHON_DIR "/python%s-clean", minor);
	cleanup_rootfs_node ocil_rootfs_node node = {0};
	int r = ocil_rootfs_lookup(fs, clean, false, &node, err);
	if (r < 0)
		return -1;
	if (r > 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "base image already has %s: it was patched before (built by "
				      "ocilambda?); use the original Lambda base image",
				      clean);
	return 0;
}

int ocil_pylink_write_layer(ocil_rootfs *fs, const char *minor, const char *prefix_dest,
			    ocil_layer_writer *w, ocil_error **err)
{
	if (minor == NULL || !ocil_lambda_python_version(minor, NULL))
		return ocil_error_set(err, OCIL_E_INPUT, "invalid python version \"%s\" (want 3.N)",
				      minor ? minor : "");
	if (prefix_dest == NULL || prefix_dest[0] != '/')
		return ocil_error_set(err, OCIL_E_INPUT,
				      "conda environment destination \"%s\" is not absolute",
				      prefix_dest ? prefix_dest : "");
	size_t plen = strlen(prefix_dest);
	while (plen > 1 && prefix_dest[plen - 1] == '/')
		plen--;
	cleanup_free char *target =
	    ocil_xasprintf("%.*s/bin/python", plen > 1 ? (int)plen : 0, prefix_dest);
	cleanup_free char *path = ocil_xasprintf(OCIL_LAMBDA_PYTHON_DIR "/python%s", minor);
	cleanup_free char *clean = ocil_xasprintf("%s-clean", path);

	cleanup_rootfs_node ocil_rootfs_node py = {0};
	cleanup_error ocil_error *lerr = NULL;
	int r = ocil_rootfs_lookup(fs, path, true, &py, &lerr);
	if (r < 0 && lerr->code != OCIL_E_INPUT) {
		if (err != NULL && *err == NULL)
			*err = steal_pointer(&lerr);
		return -1;
	}
	if (r <= 0 || py.type != OCIL_TAR_FILE) {
		/* a loop (r < 0) says why in its message */
		cleanup_free char *why =
		    r < 0 ? ocil_xstrdup(lerr->msg) : why_not_python(fs, path, &py);
		return ocil_error_set(err, OCIL_E_INPUT, "base image has no %s (%s)", path, why);
	}

	if (ocil_layer_writer_add_parents(w, path, err) < 0 ||
	    ocil_layer_writer_add_symlink(w, path, target, err) < 0)
		return ocil_error_wrap(err, "runtime layer");
	if (copy_python(fs, &py, clean, w, err) < 0)
		return ocil_error_wrap(err, "runtime layer: copying %s to %s", py.path, clean);
	return 0;
}
