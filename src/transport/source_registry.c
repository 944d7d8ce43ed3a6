/* Base image from a registry (docker://host/repo:tag@digest). Every
 * manifest, config and layer goes through the blob cache: fetched once,
 * verified before it is stored, then read from the cache. A digest ref
 * whose manifests are cached needs no network at all. */
#include <errno.h>
#include <string.h>

#include "base/json.h"
#include "registry/registry.h"
#include "transport/source.h"

typedef struct {
	ocil_source base; /* first: ocil_source_free hands us this pointer */
	const ocil_ref *ref;
	ocil_registry_opts ropts;
	ocil_registry *reg; /* opened on first need */
	ocil_blobstore *cache;
	char *repo_name; /* host/repo, for messages */
} registry_source;

static int reg(registry_source *rs, ocil_registry **out, ocil_error **err)
{
	if (rs->reg == NULL && ocil_registry_open(rs->ref->registry, rs->ref->repository,
						  &rs->ropts, &rs->reg, err) < 0)
		return -1;
	*out = rs->reg;
	return 0;
}

/* Read a cached small blob, checking its digest again: the cache is shared
 * and lives longer than any one build. */
static int cached_small(registry_source *rs, const char *digest, char **buf, size_t *len,
			ocil_error **err)
{
	cleanup_close int fd = -1;
	if (ocil_blobstore_open_blob(rs->cache, digest, &fd, err) < 0)
		return -1;
	cleanup_free char *b = NULL;
	if (ocil_read_fd(fd, digest, OCIL_JSON_MAX, &b, len, err) < 0)
		return -1;
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(b, *len, got);
	if (strcmp(got, digest) != 0)
		return ocil_error_set(err, OCIL_E_IO,
				      "blob cache %s: %s is corrupt (content is %s); remove it",
				      ocil_blobstore_root(rs->cache), digest, got);
	*buf = steal_pointer(&b);
	return 0;
}

/* A manifest or index by digest or tag: from the cache when the reference is
 * a digest we have, else from the registry (then cached). */
static int get_manifest(registry_source *rs, const char *reference, const char *hint, char **buf,
			size_t *len, char **media_type, char digest[OCIL_DIGEST_STR_SIZE],
			ocil_error **err)
{
	if (ocil_digest_valid(reference) && ocil_blobstore_has(rs->cache, reference)) {
		if (cached_small(rs, reference, buf, len, err) < 0)
			return -1;
		memcpy(digest, reference, OCIL_DIGEST_STR_SIZE);
		*media_type = NULL;
		cleanup_json json_t *doc = NULL;
		if (ocil_json_parse(*buf, *len, reference, &doc, err) == 0) {
			const char *mt = ocil_manifest_detect_type(doc, hint);
			*media_type = mt ? ocil_xstrdup(mt) : NULL;
		} else {
			ocil_error_free(*err);
			*err = NULL;
		}
		return 0;
	}
	ocil_registry *r = NULL;
	if (reg(rs, &r, err) < 0 ||
	    ocil_registry_get_manifest(r, reference, buf, len, media_type, digest, err) < 0)
		return -1;
	char stored[OCIL_DIGEST_STR_SIZE];
	return ocil_blobstore_put(rs->cache, *buf, *len, stored, err);
}

static int ensure_blob(registry_source *rs, const ocil_descriptor *d, ocil_error **err)
{
	if (ocil_blobstore_has(rs->cache, d->digest))
		return 0;
	ocil_registry *r = NULL;
	if (reg(rs, &r, err) < 0 || ocil_registry_fetch_blob(r, d, rs->cache, err) < 0)
		return -1;
	return 0;
}

static int registry_read_blob(ocil_source *s, const ocil_descriptor *d, ocil_bytes_fn fn,
			      void *data, const ocil_cancel *cancel, ocil_error **err)
{
	registry_source *rs = (registry_source *)s;
	if (ensure_blob(rs, d, err) < 0)
		return -1;
	return ocil_blobstore_stream(rs->cache, d->digest, fn, data, cancel, err);
}

static int registry_blob_path(ocil_source *s, const ocil_descriptor *d, char **path,
			      const ocil_cancel *cancel, ocil_error **err)
{
	registry_source *rs = (registry_source *)s;
	if (ensure_blob(rs, d, err) < 0)
		return -1;
	*path = ocil_blobstore_path(rs->cache, d->digest);
	return 0;
}

static void registry_free(ocil_source *s)
{
	registry_source *rs = (registry_source *)s;
	ocil_registry_free(rs->reg);
	ocil_blobstore_free(rs->cache);
	free(rs->repo_name);
	free(rs);
}

static const ocil_source_ops registry_ops = {
    .read_blob = registry_read_blob,
    .blob_path = registry_blob_path,
    .free = registry_free,
};

static int resolve(registry_source *rs, const ocil_source_opts *o, ocil_error **err)
{
	ocil_source *s = &rs->base;
	const ocil_ref *ref = rs->ref;
	const char *reference = ref->digest ? ref->digest : ref->tag;
	cleanup_free char *buf = NULL, *mt = NULL;
	size_t len = 0;
	char digest[OCIL_DIGEST_STR_SIZE];
	if (get_manifest(rs, reference, NULL, &buf, &len, &mt, digest, err) < 0)
		return -1;
	if (ocil_media_type_is_index(mt)) {
		ocil_descriptor chosen = {0};
		cleanup_free char *what = ocil_xasprintf("%s: index %s", s->name, digest);
		int r = ocil_index_select(buf, len, what, o->platform, &chosen, err);
		free(steal_pointer(&buf));
		free(steal_pointer(&mt));
		if (r == 0)
			r = get_manifest(rs, chosen.digest, chosen.media_type, &buf, &len, &mt,
					 digest, err);
		if (r == 0 && strcmp(digest, chosen.digest) != 0)
			r = ocil_error_set(err, OCIL_E_REGISTRY, "%s: manifest %s: digest mismatch",
					   s->name, chosen.digest);
		if (r == 0 && (int64_t)len != chosen.size)
			r = ocil_error_set(
			    err, OCIL_E_REGISTRY,
			    "%s: manifest %s: size mismatch: index says %lld, got %zu", s->name,
			    chosen.digest, (long long)chosen.size, len);
		char *hint = r == 0 && mt == NULL ? ocil_xstrdup(chosen.media_type) : NULL;
		ocil_descriptor_clear(&chosen);
		if (r < 0) {
			free(hint);
			return -1;
		}
		if (hint != NULL)
			mt = hint;
	}
	cleanup_free char *mwhat = ocil_xasprintf("%s: manifest %s", s->name, digest);
	if (ocil_manifest_parse(buf, len, mwhat, mt, &s->manifest, err) < 0)
		return -1;
	memcpy(s->manifest_digest, digest, OCIL_DIGEST_STR_SIZE);
	s->manifest_len = len;
	s->manifest_raw = steal_pointer(&buf);
	const ocil_descriptor *cd = &s->manifest.config;
	if (cd->size > (int64_t)OCIL_JSON_MAX)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: config %s: %lld bytes is over the limit", s->name,
				      cd->digest, (long long)cd->size);
	char *cfg = NULL;
	size_t cfg_len = 0;
	if (ensure_blob(rs, cd, err) < 0 || cached_small(rs, cd->digest, &cfg, &cfg_len, err) < 0)
		return -1;
	return ocil_source_set_config(s, cfg, cfg_len, o->platform, err);
}

int ocil_source_registry_open(const ocil_ref *ref, const ocil_source_opts *o, ocil_source **out,
			      ocil_error **err)
{
	registry_source *rs = ocil_xcalloc(1, sizeof(*rs));
	rs->base.ops = &registry_ops;
	rs->base.name = ocil_xstrdup(ref->input);
	rs->ref = ref;
	if (o->registry != NULL)
		rs->ropts = *o->registry;
	else
		rs->ropts =
		    (ocil_registry_opts){.tls_verify = true, .retries = 3, .timeout_s = 600};
	rs->ropts.cancel = o->cancel;
	cleanup_free char *dflt = o->cache_dir ? NULL : ocil_source_default_cache_dir();
	const char *cache_dir = o->cache_dir ? o->cache_dir : dflt;
	int r = ocil_blobstore_open(cache_dir, &rs->cache, err);
	if (r < 0)
		ocil_error_wrap(err, "blob cache");
	if (r == 0)
		r = resolve(rs, o, err);
	if (r < 0) {
		ocil_source_free(&rs->base);
		return -1;
	}
	*out = &rs->base;
	return 0;
}
