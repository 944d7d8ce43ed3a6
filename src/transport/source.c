#include "transport/source.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "compress/gzip.h"
#include "oci/layer_cache.h"

int ocil_source_open(const ocil_ref *ref, const ocil_source_opts *o, ocil_source **out,
		     ocil_error **err)
{
	switch (ref->transport) {
	case OCIL_REF_OCI:
		return ocil_source_layout_open(ref, o->platform, out, err);
	case OCIL_REF_DOCKER_ARCHIVE:
		return ocil_source_archive_open(ref, o->platform, o->cancel, out, err);
	case OCIL_REF_DOCKER:
		return ocil_source_registry_open(ref, o, out, err);
	}
	return ocil_error_set(err, OCIL_E_USAGE, "%s: unknown transport", ref->input);
}

char *ocil_source_default_cache_dir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	if (xdg != NULL && xdg[0] == '/')
		return ocil_xasprintf("%s/ocilambda", xdg);
	const char *home = getenv("HOME");
	return ocil_xasprintf("%s/.cache/ocilambda", home && home[0] ? home : "/tmp");
}

void ocil_source_free(ocil_source *s)
{
	if (s == NULL)
		return;
	ocil_manifest_clear(&s->manifest);
	free(s->manifest_raw);
	json_decref(s->config);
	free(s->config_raw);
	free(s->name);
	s->ops->free(s);
}

int ocil_source_read_blob(ocil_source *s, const ocil_descriptor *d, ocil_bytes_fn fn, void *data,
			  const ocil_cancel *cancel, ocil_error **err)
{
	return s->ops->read_blob(s, d, fn, data, cancel, err);
}

int ocil_verify_bytes(const char *buf, size_t len, const ocil_descriptor *d, const char *what,
		      ocil_error **err)
{
	if ((int64_t)len != d->size)
		return ocil_error_set(
		    err, OCIL_E_INPUT,
		    "%s %s: size mismatch: descriptor says %lld bytes, content has %zu", what,
		    d->digest, (long long)d->size, len);
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(buf, len, got);
	if (strcmp(got, d->digest) != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s %s: digest mismatch: content is %s",
				      what, d->digest, got);
	return 0;
}

static int to_blob(void *data, const void *buf, size_t len, ocil_error **err)
{
	return ocil_blob_writer_write(data, buf, len, err);
}

int ocil_source_copy_blob(ocil_source *s, const ocil_descriptor *d, ocil_blobstore *bs,
			  const ocil_cancel *cancel, ocil_error **err)
{
	if (ocil_blobstore_has(bs, d->digest))
		return 0;
	if (s->ops->blob_path != NULL) {
		cleanup_free char *path = NULL;
		int linked = s->ops->blob_path(s, d, &path, cancel, err);
		if (linked == 0 && s->verified != NULL &&
		    ocil_layer_cache_verified(s->verified, path, d->digest, d->size)) {
			linked = ocil_blobstore_link_unchecked(bs, path, d->digest, err);
		} else if (linked == 0) {
			linked = ocil_blobstore_link(bs, path, d->digest, d->size, cancel, err);
			if (linked > 0 && s->verified != NULL)
				ocil_layer_cache_note_verified(s->verified, path, d->digest);
		}
		if (linked < 0)
			return ocil_error_wrap(err, "%s", s->name);
		if (linked > 0)
			return 0;
	}
	ocil_blob_writer *w = NULL;
	if (ocil_blobstore_begin(bs, &w, err) < 0)
		return -1;
	int r = ocil_source_read_blob(s, d, to_blob, w, cancel, err);
	if (r == 0)
		r = ocil_blob_writer_commit(w, d->digest, d->size, NULL, NULL, err);
	ocil_blob_writer_free(w);
	if (r < 0)
		return ocil_error_wrap(err, "%s", s->name);
	return 0;
}

int ocil_source_set_config(ocil_source *s, char *raw, size_t len, const ocil_platform *platform,
			   ocil_error **err)
{
	cleanup_free char *owned = raw;
	cleanup_free char *what =
	    ocil_xasprintf("%s: config %s", s->name, s->manifest.config.digest);
	cleanup_json json_t *cfg = NULL;
	if (ocil_json_parse(raw, len, what, &cfg, err) < 0)
		return -1;
	if (!json_is_object(cfg))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a JSON object", what);
	const char *os = ocil_json_opt_string(cfg, "os");
	const char *arch = ocil_json_opt_string(cfg, "architecture");
	if (os == NULL || arch == NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: \"os\" or \"architecture\" missing",
				      what);
	if (platform != NULL &&
	    (strcmp(os, platform->os) != 0 || strcmp(arch, platform->arch) != 0)) {
		cleanup_free char *want = ocil_platform_format(platform);
		return ocil_error_set(err, OCIL_E_INPUT, "%s: image is %s/%s, not %s", s->name, os,
				      arch, want);
	}
	const json_t *diff_ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
	if (!json_is_array(diff_ids))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: rootfs.diff_ids missing", what);
	if (json_array_size(diff_ids) != s->manifest.n_layers)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: %zu diff_ids for %zu layers in the manifest", what,
				      json_array_size(diff_ids), s->manifest.n_layers);
	size_t i;
	json_t *v;
	json_array_foreach(diff_ids, i, v)
	{
		cleanup_free char *dw = ocil_xasprintf("%s: rootfs.diff_ids[%zu]", what, i);
		if (ocil_digest_check(json_string_value(v), dw, err) < 0)
			return -1;
	}
	s->config = steal_pointer(&cfg);
	s->config_raw = steal_pointer(&owned);
	s->config_len = len;
	return 0;
}

static int gzip_fn(void *data, const void *buf, size_t len, ocil_error **err)
{
	return ocil_gzip_blob_write(data, buf, len, err);
}

/* Recompress an uncompressed layer; its content must hash to d's digest
 * (for an uncompressed layer that is also its diff_id). */
static int import_tar_layer(ocil_source *s, const ocil_descriptor *d, ocil_blobstore *bs,
			    bool docker, const ocil_cancel *cancel, ocil_descriptor *out,
			    ocil_error **err)
{
	ocil_gzip_blob *g = NULL;
	if (ocil_gzip_blob_begin(bs, 0, &g, err) < 0)
		return -1;
	ocil_gzip_result res;
	int r = ocil_source_read_blob(s, d, gzip_fn, g, cancel, err);
	if (r == 0)
		r = ocil_gzip_blob_finish(g, &res, err);
	ocil_gzip_blob_free(g);
	if (r < 0)
		return ocil_error_wrap(err, "%s: layer %s", s->name, d->digest);
	if (strcmp(res.diff_id, d->digest) != 0 || (int64_t)res.raw_size != d->size)
		return ocil_error_set(
		    err, OCIL_E_INPUT, "%s: layer %s: digest mismatch: content is %s (%llu bytes)",
		    s->name, d->digest, res.diff_id, (unsigned long long)res.raw_size);
	out->media_type = ocil_xstrdup(ocil_layer_media_type(docker, OCIL_LAYER_GZIP));
	memcpy(out->digest, res.digest, OCIL_DIGEST_STR_SIZE);
	out->size = (int64_t)res.size;
	return 0;
}

int ocil_source_import_layers(ocil_source *s, ocil_blobstore *bs, bool docker,
			      const ocil_cancel *cancel, ocil_descriptor **out, ocil_error **err)
{
	const ocil_manifest *m = &s->manifest;
	size_t n = 0;
	ocil_descriptor *ds = ocil_xcalloc(m->n_layers ? m->n_layers : 1, sizeof(*ds));
	int r = 0;
	for (; r == 0 && n < m->n_layers; n++) {
		const ocil_descriptor *d = &m->layers[n];
		ocil_layer_compression c = ocil_layer_media_compression(d->media_type);
		if (c == OCIL_LAYER_TAR) {
			r = import_tar_layer(s, d, bs, docker, cancel, &ds[n], err);
			continue;
		}
		const char *mt = ocil_layer_media_type(docker, c);
		if (mt == NULL)
			r = ocil_error_set(err, OCIL_E_INPUT,
					   "%s: layer %s: %s has no %s equivalent", s->name,
					   d->digest, d->media_type, docker ? "Docker" : "OCI");
		else
			r = ocil_source_copy_blob(s, d, bs, cancel, err);
		if (r == 0) {
			ocil_descriptor_copy(&ds[n], d);
			free(ds[n].media_type);
			ds[n].media_type = ocil_xstrdup(mt);
		}
	}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			ocil_descriptor_clear(&ds[i]);
		free(ds);
		return -1;
	}
	*out = ds;
	return 0;
}

void ocil_layer_files_clear(ocil_layer_files *f)
{
	ocil_blobstore_free(f->bs);
	ocil_tmpdir_remove(&f->tmp);
	ocil_strv_clear(&f->paths);
}

/* Hash a blob that was on disk before we came: the layout is the user's
 * and anything could have changed it. */
static int verify_blob(const char *path, const ocil_descriptor *d, const ocil_cancel *cancel,
		       ocil_error **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", path);
	static const size_t bufsize = 1 << 17;
	cleanup_free char *buf = ocil_xmalloc(bufsize);
	ocil_hasher *h = ocil_hasher_new();
	uint64_t size = 0;
	int r = 0;
	for (;;) {
		if ((r = ocil_cancel_check(cancel, err)) < 0)
			break;
		ssize_t n = read(fd, buf, bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", path);
			break;
		}
		if (n == 0)
			break;
		ocil_hasher_update(h, buf, (size_t)n);
		size += (uint64_t)n;
	}
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(h, got);
	ocil_hasher_free(h);
	if (r < 0)
		return -1;
	if (size != (uint64_t)d->size)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "size mismatch: manifest says %lld bytes, blob has %llu",
				      (long long)d->size, (unsigned long long)size);
	if (strcmp(got, d->digest) != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "digest mismatch: content is %s", got);
	return 0;
}

static int open_store(const ocil_ref *ref, const char *cache_dir, const char *tmp_dir,
		      ocil_layer_files *f, ocil_error **err)
{
	switch (ref->transport) {
	case OCIL_REF_OCI:
		return ocil_blobstore_open(ref->path, &f->bs, err);
	case OCIL_REF_DOCKER: {
		cleanup_free char *dflt = cache_dir ? NULL : ocil_source_default_cache_dir();
		if (ocil_blobstore_open(cache_dir ? cache_dir : dflt, &f->bs, err) < 0)
			return ocil_error_wrap(err, "blob cache");
		return 0;
	}
	case OCIL_REF_DOCKER_ARCHIVE:
		break;
	}
	if (ocil_tmpdir_create(tmp_dir, "layers", &f->tmp, err) < 0)
		return -1;
	return ocil_blobstore_open(f->tmp.path, &f->bs, err);
}

int ocil_layer_files_get(const ocil_ref *ref, ocil_source *src, const char *cache_dir,
			 const char *tmp_dir, const ocil_cancel *cancel, ocil_layer_files *f,
			 ocil_error **err)
{
	if (open_store(ref, cache_dir, tmp_dir, f, err) < 0)
		return -1;
	const ocil_manifest *m = &src->manifest;
	for (size_t i = 0; i < m->n_layers; i++) {
		const ocil_descriptor *d = &m->layers[i];
		char *path = ocil_blobstore_path(f->bs, d->digest);
		ocil_strv_push(&f->paths, path);
		int r;
		if (ocil_blobstore_has(f->bs, d->digest))
			r = verify_blob(path, d, cancel, err);
		else if (ref->transport == OCIL_REF_OCI)
			/* Never write into the user's layout. */
			r = ocil_error_set(err, OCIL_E_INPUT, "blob missing from the layout");
		else
			r = ocil_source_copy_blob(src, d, f->bs, cancel, err);
		if (r < 0)
			return ocil_error_wrap(err, "%s: layer %zu (%s)", src->name, i, d->digest);
	}
	return 0;
}
