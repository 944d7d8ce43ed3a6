#include "transport/sink_layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "base/json.h"
#include "base/util.h"

#define ANN_REF_NAME "org.opencontainers.image.ref.name"
#define LAYOUT_JSON "{\"imageLayoutVersion\":\"1.0.0\"}"

struct ocil_layout_sink {
	char *dir;
	char *staging;
	int staging_fd; /* its lock: see ocil_staging_create */
	bool existing;	/* dir is a layout already */
	bool committed;
	ocil_blobstore *bs;
};

static int dir_is_empty(const char *path, bool *empty, ocil_error **err)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", path);
	struct dirent *de;
	*empty = true;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			*empty = false;
	closedir(d);
	return 0;
}

int ocil_layout_sink_open(const char *dir, ocil_layout_sink **out, ocil_error **err)
{
	bool existing = false;
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "output %s exists and is not a directory", dir);
		cleanup_free char *marker = ocil_xasprintf("%s/oci-layout", dir);
		bool empty = false;
		if (access(marker, F_OK) == 0)
			existing = true;
		else if (dir_is_empty(dir, &empty, err) < 0)
			return -1;
		else if (!empty)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "output %s exists and is not an OCI image layout "
					      "(no oci-layout file); refusing to overwrite it",
					      dir);
	} else if (errno != ENOENT) {
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "output %s", dir);
	}
	cleanup_free char *copy1 = ocil_xstrdup(dir), *copy2 = ocil_xstrdup(dir);
	const char *parent = dirname(copy1), *name = basename(copy2);
	struct stat pst;
	if (stat(parent, &pst) < 0 || !S_ISDIR(pst.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "output %s: parent directory %s does not exist", dir, parent);
	ocil_layout_sink *s = ocil_xcalloc(1, sizeof(*s));
	s->dir = ocil_xstrdup(dir);
	s->existing = existing;
	s->staging_fd = ocil_staging_create(parent, name, &s->staging, err);
	if (s->staging_fd < 0) {
		ocil_layout_sink_free(s);
		return -1;
	}
	chmod(s->staging, 0755);
	cleanup_free char *layout = ocil_xasprintf("%s/oci-layout", s->staging);
	if (ocil_blobstore_open(s->staging, &s->bs, err) < 0 ||
	    ocil_write_file_atomic(layout, LAYOUT_JSON, strlen(LAYOUT_JSON), err) < 0) {
		ocil_layout_sink_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

ocil_blobstore *ocil_layout_sink_blobs(ocil_layout_sink *s)
{
	return s->bs;
}

/* index.json: the previous entries (when dir is a layout) minus any with
 * this tag, plus the new one. */
static int build_index(ocil_layout_sink *s, const char *tag, const ocil_descriptor *manifest,
		       char **out, ocil_error **err)
{
	cleanup_json json_t *index = NULL;
	if (s->existing) {
		cleanup_free char *path = ocil_xasprintf("%s/index.json", s->dir);
		if (ocil_json_load_file(path, OCIL_JSON_MAX, &index, err) < 0)
			return ocil_error_wrap(err, "output %s", s->dir);
		if (!json_is_array(json_object_get(index, "manifests")))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "output %s: index.json has no \"manifests\" array",
					      s->dir);
	} else {
		index = json_pack("{s:i, s:[]}", "schemaVersion", 2, "manifests");
	}
	json_object_set_new(index, "mediaType", json_string(OCIL_MT_OCI_INDEX));
	json_t *ms = json_object_get(index, "manifests");
	for (size_t i = json_array_size(ms); i-- > 0;) {
		const char *ref = ocil_json_opt_string(
		    json_object_get(json_array_get(ms, i), "annotations"), ANN_REF_NAME);
		if (ref != NULL && strcmp(ref, tag) == 0)
			json_array_remove(ms, i);
	}
	json_t *d = ocil_descriptor_to_json(manifest);
	json_object_set_new(d, "annotations", json_pack("{s:s}", ANN_REF_NAME, tag));
	json_array_append_new(ms, d);
	*out = ocil_json_dump(index);
	return 0;
}

/* Move staged blobs that dir lacks into dir. Blobs are content-addressed, so
 * a blob already there is the same and stays. */
static int merge_blobs(ocil_layout_sink *s, ocil_error **err)
{
	cleanup_free char *from = ocil_xasprintf("%s/blobs/sha256", s->staging);
	cleanup_free char *to = ocil_xasprintf("%s/blobs/sha256", s->dir);
	if (ocil_mkdir_p(to, 0755, err) < 0)
		return -1;
	DIR *d = opendir(from);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", from);
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		cleanup_free char *src = ocil_xasprintf("%s/%s", from, de->d_name);
		cleanup_free char *dst = ocil_xasprintf("%s/%s", to, de->d_name);
		if (access(dst, F_OK) == 0)
			continue;
		if (rename(src, dst) < 0)
			r = ocil_error_set_errno(err, OCIL_E_IO, errno, "moving %s into %s", src,
						 to);
	}
	closedir(d);
	return r;
}

/* Commits into one parent directory take turns: another build may have
 * created the layout, or rewritten its index.json, since this one was
 * opened. A flock on the parent itself leaves no lock file behind and is
 * released when the process dies. */
static int lock_parent(const ocil_layout_sink *s, int *fd, ocil_error **err)
{
	cleanup_free char *copy = ocil_xstrdup(s->dir);
	const char *parent = dirname(copy);
	*fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "output %s: opening %s", s->dir,
					    parent);
	while (flock(*fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "output %s: locking %s",
						    s->dir, parent);
	return 0;
}

int ocil_layout_sink_commit(ocil_layout_sink *s, const char *tag, const ocil_descriptor *manifest,
			    ocil_error **err)
{
	cleanup_close int lock = -1;
	if (lock_parent(s, &lock, err) < 0)
		return -1;
	cleanup_free char *marker = ocil_xasprintf("%s/oci-layout", s->dir);
	if (!s->existing && access(marker, F_OK) == 0)
		s->existing = true; /* a concurrent build created it */
	/* index.json temporaries there: with the parent locked no other build
	 * writes one, and ocil_write_file_atomic flocks its own */
	if (s->existing)
		ocil_tmpfile_sweep(s->dir);
	cleanup_free char *index = NULL;
	if (build_index(s, tag, manifest, &index, err) < 0)
		return -1;
	if (!s->existing) {
		cleanup_free char *path = ocil_xasprintf("%s/index.json", s->staging);
		if (ocil_write_file_atomic(path, index, strlen(index), err) < 0)
			return -1;
		/* rename(2) replaces an empty directory, and nothing else. */
		if (rename(s->staging, s->dir) < 0)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "renaming %s to %s",
						    s->staging, s->dir);
		s->committed = true;
		return 0;
	}
	if (merge_blobs(s, err) < 0)
		return -1;
	cleanup_free char *path = ocil_xasprintf("%s/index.json", s->dir);
	if (ocil_write_file_atomic(path, index, strlen(index), err) < 0)
		return -1;
	s->committed = true;
	return ocil_remove_tree(s->staging, err);
}

void ocil_layout_sink_free(ocil_layout_sink *s)
{
	if (s == NULL)
		return;
	if (!s->committed && s->staging != NULL) {
		ocil_error *e = NULL;
		ocil_remove_tree(s->staging, &e);
		ocil_error_free(e);
	}
	if (s->staging_fd >= 0)
		close(s->staging_fd);
	ocil_blobstore_free(s->bs);
	free(s->dir);
	free(s->staging);
	free(s);
}
