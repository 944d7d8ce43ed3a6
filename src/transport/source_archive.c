/* Base image from a docker-archive tarball (docker save, skopeo copy
 * docker-archive:). Its layers are usually uncompressed tars; the source
 * describes them as Docker "rootfs.diff.tar" layers whose digest is the
 * diff_id, so they are verified as they are read and recompressed by the
 * consumer. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <string.h>

#include "base/json.h"
#include "transport/source.h"

#define MAX_MEMBERS 100000

typedef struct {
	char *name;
	int64_t size;
	bool gzip;
} member;

typedef struct {
	ocil_source base; /* first: ocil_source_free hands us this pointer */
	char *path;
	member *members;
	size_t n_members;
	char **layer_member; /* per manifest layer: member name */
	size_t n_layer_member;
} archive_source;

static void free_members(archive_source *as)
{
	for (size_t i = 0; i < as->n_members; i++)
		free(as->members[i].name);
	free(as->members);
	for (size_t i = 0; i < as->n_layer_member; i++)
		free(as->layer_member[i]);
	free(as->layer_member);
}

static void archive_free_source(ocil_source *s)
{
	archive_source *as = (archive_source *)s;
	free_members(as);
	free(as->path);
	free(as);
}

static void archive_closep(struct archive **a)
{
	if (*a != NULL)
		archive_read_free(*a);
}
#define cleanup_archive __attribute__((cleanup(archive_closep)))

static int open_archive(const archive_source *as, struct archive **out, ocil_error **err)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_tar(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_none(a);
	if (archive_read_open_filename(a, as->path, 1 << 16) != ARCHIVE_OK) {
		int r = ocil_error_set(err, OCIL_E_INPUT, "%s: %s", as->base.name,
				       archive_error_string(a));
		archive_read_free(a);
		return r;
	}
	*out = a;
	return 0;
}

/* Member names are compared without a leading "./". */
static const char *clean_name(const char *n)
{
	while (n[0] == '.' && n[1] == '/')
		n += 2;
	return n;
}

/* Stream the named member to fn; error if it is absent. */
static int stream_member(const archive_source *as, const char *name, ocil_bytes_fn fn, void *data,
			 const ocil_cancel *cancel, ocil_error **err)
{
	cleanup_archive struct archive *a = NULL;
	if (open_archive(as, &a, err) < 0)
		return -1;
	struct archive_entry *e;
	int r;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (strcmp(clean_name(archive_entry_pathname(e)), name) != 0)
			continue;
		char buf[1 << 16];
		for (;;) {
			if (ocil_cancel_check(cancel, err) < 0)
				return -1;
			la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
			if (n < 0)
				return ocil_error_set(err, OCIL_E_INPUT, "%s: %s: %s",
						      as->base.name, name, archive_error_string(a));
			if (n == 0)
				return 0;
			if (fn(data, buf, (size_t)n, err) < 0)
				return -1;
		}
	}
	if (r != ARCHIVE_EOF)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: %s", as->base.name,
				      archive_error_string(a));
	return ocil_error_set(err, OCIL_E_INPUT, "%s: no member \"%s\"", as->base.name, name);
}

typedef struct {
	char *buf;
	size_t len, max;
	const char *what;
} membuf;

static int to_mem(void *data, const void *buf, size_t len, ocil_error **err)
{
	membuf *m = data;
	if (m->len + len > m->max)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: larger than %zu bytes", m->what,
				      m->max);
	m->buf = ocil_xrealloc(m->buf, m->len + len + 1);
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	m->buf[m->len] = '\0';
	return 0;
}

static const member *find_member(const archive_source *as, const char *name)
{
	for (size_t i = 0; i < as->n_members; i++)
		if (strcmp(as->members[i].name, name) == 0)
			return &as->members[i];
	return NULL;
}

/* One pass: record every regular member with its size and whether it
 * starts with the gzip magic. */
static int scan(archive_source *as, ocil_error **err)
{
	cleanup_archive struct archive *a = NULL;
	if (open_archive(as, &a, err) < 0)
		return -1;
	struct archive_entry *e;
	int r;
	size_t cap = 0;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (as->n_members == MAX_MEMBERS)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: more than %d members",
					      as->base.name, MAX_MEMBERS);
		if (as->n_members == cap) {
			cap = cap ? cap * 2 : 16;
			as->members = ocil_xrealloc(as->members, cap * sizeof(member));
		}
		unsigned char magic[2] = {0, 0};
		la_ssize_t n = archive_read_data(a, magic, sizeof(magic));
		if (n < 0)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: %s", as->base.name,
					      archive_error_string(a));
		member *m = &as->members[as->n_members++];
		m->name = ocil_xstrdup(clean_name(archive_entry_pathname(e)));
		m->size = archive_entry_size(e);
		m->gzip = n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
	}
	if (r != ARCHIVE_EOF)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: %s", as->base.name,
				      archive_error_string(a));
	return 0;
}

static int read_member(archive_source *as, const char *name, size_t max, membuf *out,
		       ocil_error **err)
{
	cleanup_free char *what = ocil_xasprintf("%s: %s", as->base.name, name);
	*out = (membuf){.max = max, .what = what};
	int r = stream_member(as, name, to_mem, out, NULL, err);
	out->what = NULL;
	if (r < 0) {
		free(out->buf);
		out->buf = NULL;
	}
	return r;
}

static int hash_fn(void *data, const void *buf, size_t len, ocil_error **err)
{
	ocil_hasher_update(data, buf, len);
	return 0;
}

/* Choose the manifest.json entry: by RepoTags when a tag was given. */
static int pick_entry(archive_source *as, const json_t *doc, const char *tag, const json_t **out,
		      ocil_error **err)
{
	if (!json_is_array(doc) || json_array_size(doc) == 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: manifest.json is not a non-empty array", as->base.name);
	if (tag == NULL) {
		if (json_array_size(doc) != 1)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: the archive holds %zu images; name one with "
					      "docker-archive:FILE:REPO:TAG",
					      as->base.name, json_array_size(doc));
		*out = json_array_get(doc, 0);
		return 0;
	}
	size_t i, j;
	const json_t *m, *t;
	json_array_foreach(doc, i, m)
	{
		json_array_foreach(json_object_get(m, "RepoTags"), j, t)
		{
			if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0) {
				*out = m;
				return 0;
			}
		}
	}
	return ocil_error_set(err, OCIL_E_INPUT, "%s: no image tagged \"%s\"", as->base.name, tag);
}

/* The digest a member name promises ("<hex>.json", "blobs/sha256/<hex>"),
 * or NULL. */
static bool name_digest(const char *name, char out[OCIL_DIGEST_STR_SIZE])
{
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	snprintf(out, OCIL_DIGEST_STR_SIZE, "sha256:%.64s", base);
	return ocil_digest_valid(out) && (base[64] == '\0' || strcmp(base + 64, ".json") == 0);
}

static int build(archive_source *as, const ocil_ref *ref, const ocil_platform *platform,
		 const ocil_cancel *cancel, ocil_error **err)
{
	if (scan(as, err) < 0)
		return -1;
	membuf mj = {0};
	if (find_member(as, "manifest.json") == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: no manifest.json (not a docker-archive)", as->base.name);
	if (read_member(as, "manifest.json", OCIL_JSON_MAX, &mj, err) < 0)
		return -1;
	cleanup_free char *mjbuf = mj.buf;
	cleanup_free char *mjwhat = ocil_xasprintf("%s: manifest.json", as->base.name);
	cleanup_json json_t *doc = NULL;
	if (ocil_json_parse(mjbuf, mj.len, mjwhat, &doc, err) < 0)
		return -1;
	const json_t *entry = NULL;
	if (pick_entry(as, doc, ref->tag, &entry, err) < 0)
		return -1;
	const char *cfg_name = ocil_json_opt_string(entry, "Config");
	const json_t *layers = json_object_get(entry, "Layers");
	if (cfg_name == NULL || !json_is_array(layers))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: \"Config\" or \"Layers\" missing",
				      mjwhat);
	if (json_array_size(layers) > 1000)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: too many layers", mjwhat);
	cfg_name = clean_name(cfg_name);
	const member *cm = find_member(as, cfg_name);
	if (cm == NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: config %s is not in the archive",
				      as->base.name, cfg_name);
	membuf cfg = {0};
	if (read_member(as, cfg_name, OCIL_JSON_MAX, &cfg, err) < 0)
		return -1;

	ocil_manifest *m = &as->base.manifest;
	m->docker = true;
	m->media_type = ocil_xstrdup(OCIL_MT_DOCKER_MANIFEST);
	m->config.media_type = ocil_xstrdup(OCIL_MT_DOCKER_CONFIG);
	m->config.size = (int64_t)cfg.len;
	ocil_digest_buf(cfg.buf, cfg.len, m->config.digest);
	char promised[OCIL_DIGEST_STR_SIZE];
	if (name_digest(cfg_name, promised) && strcmp(promised, m->config.digest) != 0) {
		free(cfg.buf);
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: config %s: digest mismatch: content is %s",
				      as->base.name, cfg_name, m->config.digest);
	}
	/* set_config checks the diff_id count against n_layers: size first. */
	size_t nl = json_array_size(layers);
	m->layers = ocil_xcalloc(nl ? nl : 1, sizeof(ocil_descriptor));
	as->layer_member = ocil_xcalloc(nl ? nl : 1, sizeof(char *));
	as->n_layer_member = nl;
	m->n_layers = nl;
	if (ocil_source_set_config(&as->base, cfg.buf, cfg.len, platform, err) < 0)
		return -1;
	const json_t *diff_ids =
	    json_object_get(json_object_get(as->base.config, "rootfs"), "diff_ids");
	for (size_t i = 0; i < nl; i++) {
		const char *ln = json_string_value(json_array_get(layers, i));
		if (ln == NULL)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: Layers[%zu] is not a string",
					      mjwhat, i);
		ln = clean_name(ln);
		const member *lm = find_member(as, ln);
		if (lm == NULL)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: layer %s is not in the archive", as->base.name,
					      ln);
		ocil_descriptor *d = &m->layers[i];
		as->layer_member[i] = ocil_xstrdup(ln);
		d->size = lm->size;
		if (lm->gzip) {
			/* Rare: a compressed layer; its digest is not recorded anywhere, so
			 * hash it now. */
			d->media_type = ocil_xstrdup(OCIL_MT_DOCKER_LAYER_GZIP);
			ocil_hasher *h = ocil_hasher_new();
			int r = stream_member(as, ln, hash_fn, h, cancel, err);
			ocil_hasher_final(h, d->digest);
			ocil_hasher_free(h);
			if (r < 0)
				return -1;
		} else {
			d->media_type = ocil_xstrdup(OCIL_MT_DOCKER_LAYER);
			memcpy(d->digest, json_string_value(json_array_get(diff_ids, i)),
			       OCIL_DIGEST_STR_SIZE);
		}
	}
	cleanup_json json_t *mj_out = json_object();
	json_object_set_new(mj_out, "schemaVersion", json_integer(2));
	json_object_set_new(mj_out, "mediaType", json_string(m->media_type));
	json_object_set_new(mj_out, "config", ocil_descriptor_to_json(&m->config));
	json_t *la = json_array();
	for (size_t i = 0; i < nl; i++)
		json_array_append_new(la, ocil_descriptor_to_json(&m->layers[i]));
	json_object_set_new(mj_out, "layers", la);
	cleanup_free char *raw = ocil_json_dump(mj_out);
	ocil_digest_buf(raw, strlen(raw), as->base.manifest_digest);
	as->base.manifest_len = strlen(raw);
	as->base.manifest_raw = steal_pointer(&raw);
	return 0;
}

static int archive_read_blob(ocil_source *s, const ocil_descriptor *d, ocil_bytes_fn fn, void *data,
			     const ocil_cancel *cancel, ocil_error **err)
{
	archive_source *as = (archive_source *)s;
	const char *name = NULL;
	if (strcmp(d->digest, s->manifest.config.digest) == 0)
		return fn(data, s->config_raw, s->config_len, err);
	for (size_t i = 0; i < s->manifest.n_layers && name == NULL; i++)
		if (strcmp(s->manifest.layers[i].digest, d->digest) == 0)
			name = as->layer_member[i];
	if (name == NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "no blob %s", d->digest);
	return stream_member(as, name, fn, data, cancel, err);
}

static const ocil_source_ops archive_ops = {
    .read_blob = archive_read_blob,
    .free = archive_free_source,
};

int ocil_source_archive_open(const ocil_ref *ref, const ocil_platform *platform,
			     const ocil_cancel *cancel, ocil_source **out, ocil_error **err)
{
	if (access(ref->path, R_OK) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s: %s", ref->input,
					    ref->path);
	archive_source *as = ocil_xcalloc(1, sizeof(*as));
	as->base.ops = &archive_ops;
	as->base.name = ocil_xstrdup(ref->input);
	as->path = ocil_xstrdup(ref->path);
	if (build(as, ref, platform, cancel, err) < 0) {
		ocil_source_free(&as->base);
		return -1;
	}
	*out = &as->base;
	return 0;
}
