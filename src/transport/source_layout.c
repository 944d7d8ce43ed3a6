/* Base image from an OCI image layout directory (oci:DIR[:TAG]). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "transport/source.h"

#define ANN_REF_NAME "org.opencontainers.image.ref.name"

typedef struct {
	ocil_source base; /* first: ocil_source_free hands us this pointer */
	ocil_blobstore *bs;
} layout_source;

static int layout_read_blob(ocil_source *s, const ocil_descriptor *d, ocil_bytes_fn fn, void *data,
			    const ocil_cancel *cancel, ocil_error **err)
{
	/* ocil_source_read_blob's callers name the image */
	layout_source *ls = (layout_source *)s;
	return ocil_blobstore_stream(ls->bs, d->digest, fn, data, cancel, err);
}

static int layout_blob_path(ocil_source *s, const ocil_descriptor *d, char **path,
			    const ocil_cancel *cancel, ocil_error **err)
{
	layout_source *ls = (layout_source *)s;
	if (ocil_digest_check(d->digest, "blob", err) < 0)
		return -1;
	*path = ocil_blobstore_path(ls->bs, d->digest);
	return 0;
}

static void layout_free(ocil_source *s)
{
	layout_source *ls = (layout_source *)s;
	ocil_blobstore_free(ls->bs);
	free(ls);
}

static const ocil_source_ops layout_ops = {
    .read_blob = layout_read_blob,
    .blob_path = layout_blob_path,
    .free = layout_free,
};

/* Read a small blob (manifest, index, config) and verify it. */
static int read_small(layout_source *ls, const ocil_descriptor *d, const char *what, char **out,
		      size_t *len, ocil_error **err)
{
	if (d->size > (int64_t)OCIL_JSON_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "%s %s: %lld bytes is over the %zu limit",
				      what, d->digest, (long long)d->size, OCIL_JSON_MAX);
	cleanup_close int fd = -1;
	if (ocil_blobstore_open_blob(ls->bs, d->digest, &fd, err) < 0)
		return ocil_error_wrap(err, "%s", ls->base.name);
	cleanup_free char *buf = NULL;
	if (ocil_read_fd(fd, d->digest, OCIL_JSON_MAX, &buf, len, err) < 0 ||
	    ocil_verify_bytes(buf, *len, d, what, err) < 0)
		return ocil_error_wrap(err, "%s", ls->base.name);
	*out = steal_pointer(&buf);
	return 0;
}

static int find_in_index(const char *name, const json_t *index, const char *tag,
			 ocil_descriptor *out, ocil_error **err)
{
	const json_t *ms = json_object_get(index, "manifests");
	if (!json_is_array(ms))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: index.json has no \"manifests\" array", name);
	size_t i;
	const json_t *m;
	if (tag == NULL) {
		if (json_array_size(ms) != 1)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: the layout holds %zu images; name one with "
					      "oci:DIR:TAG",
					      name, json_array_size(ms));
		{
			cleanup_free char *w = ocil_xasprintf("%s: index.json manifests[0]", name);
			return ocil_descriptor_parse(json_array_get(ms, 0), w, out, err);
		}
	}
	cleanup_free char *avail = ocil_xstrdup("");
	json_array_foreach(ms, i, m)
	{
		const char *ref =
		    ocil_json_opt_string(json_object_get(m, "annotations"), ANN_REF_NAME);
		if (ref == NULL)
			continue;
		if (strcmp(ref, tag) == 0) {
			cleanup_free char *w =
			    ocil_xasprintf("%s: index.json manifests[%zu]", name, i);
			return ocil_descriptor_parse(m, w, out, err);
		}
		char *n = ocil_xasprintf("%s%s%s", avail, avail[0] ? ", " : "", ref);
		free(avail);
		avail = n;
	}
	return ocil_error_set(err, OCIL_E_INPUT, "%s: no image tagged \"%s\" (tags: %s)", name, tag,
			      avail[0] ? avail : "none");
}

int ocil_source_layout_open(const ocil_ref *ref, const ocil_platform *platform, ocil_source **out,
			    ocil_error **err)
{
	const char *name = ref->input;
	struct stat st;
	if (stat(ref->path, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s: %s", name, ref->path);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: %s is not a directory", name,
				      ref->path);
	cleanup_free char *layout_file = ocil_xasprintf("%s/oci-layout", ref->path);
	cleanup_json json_t *layout = NULL;
	if (ocil_json_load_file(layout_file, 4096, &layout, err) < 0)
		return ocil_error_wrap(err, "%s: not an OCI image layout", name);
	const char *ver = ocil_json_opt_string(layout, "imageLayoutVersion");
	if (ver == NULL || strcmp(ver, "1.0.0") != 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: unsupported imageLayoutVersion in oci-layout", name);
	cleanup_free char *index_file = ocil_xasprintf("%s/index.json", ref->path);
	cleanup_json json_t *index = NULL;
	if (ocil_json_load_file(index_file, OCIL_JSON_MAX, &index, err) < 0)
		return ocil_error_wrap(err, "%s", name);

	layout_source *ls = ocil_xcalloc(1, sizeof(*ls));
	ls->base.ops = &layout_ops;
	ls->base.name = ocil_xstrdup(name);
	ocil_source *s = &ls->base;
	ocil_descriptor d = {0};
	cleanup_free char *buf = NULL;
	size_t len = 0;
	int r = ocil_blobstore_open(ref->path, &ls->bs, err);
	if (r == 0)
		r = find_in_index(name, index, ref->tag, &d, err);
	if (r == 0)
		r = read_small(ls, &d, "manifest", &buf, &len, err);
	if (r == 0 && ocil_media_type_is_index(d.media_type)) {
		ocil_descriptor chosen = {0};
		r = ocil_index_select(buf, len, name, platform, &chosen, err);
		free(steal_pointer(&buf));
		ocil_descriptor_clear(&d);
		d = chosen;
		if (r == 0)
			r = read_small(ls, &d, "manifest", &buf, &len, err);
	}
	cleanup_free char *mwhat = ocil_xasprintf("%s: manifest %s", name, d.digest);
	if (r == 0)
		r = ocil_manifest_parse(buf, len, mwhat, d.media_type, &s->manifest, err);
	if (r == 0) {
		memcpy(s->manifest_digest, d.digest, OCIL_DIGEST_STR_SIZE);
		s->manifest_raw = steal_pointer(&buf);
		s->manifest_len = len;
		char *cfg = NULL;
		size_t cfg_len = 0;
		r = read_small(ls, &s->manifest.config, "config", &cfg, &cfg_len, err);
		if (r == 0)
			r = ocil_source_set_config(s, cfg, cfg_len, platform, err);
	}
	ocil_descriptor_clear(&d);
	if (r < 0) {
		ocil_source_free(s);
		return -1;
	}
	*out = s;
	return 0;
}
