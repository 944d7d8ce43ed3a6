#include "transport/sink_archive.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/digest.h"
#include "base/json.h"
#include "oci/layer_read.h"
#include "oci/ref.h"
#include "oci/tarstream.h"

#define BLOCK 512
#define OUT_BUF ((size_t)128 << 10)
/* ustar's numeric fields: 11 octal digits and a NUL */
#define USTAR_MAX 077777777777LL

/* ---- RepoTags entries ---- */

static int tag_error(const char *s, const char *why, ocil_error **err)
{
	return ocil_error_set(err, OCIL_E_USAGE, "docker-archive tag \"%s\": %s", s, why);
}

int ocil_archive_parse_tag(const char *s, char **repo, char **tag, ocil_error **err)
{
	if (s == NULL || s[0] == '\0')
		return tag_error("", "empty", err);
	if (strchr(s, '@') != NULL)
		return tag_error(s, "a digest can not be a tag; give REPO[:TAG]", err);
	/* Docker's split and grammar (ref.h): [domain '/'] path [':' tag] */
	const char *path = s;
	size_t hl = ocil_ref_domain_len(s);
	if (hl > 0) {
		if (!ocil_ref_domain_valid(s, hl))
			return tag_error(s, "invalid registry host", err);
		path = s + hl + 1;
	}
	/* path components have no ':', so the last one starts the tag */
	const char *colon = strrchr(path, ':');
	size_t name_len = colon ? (size_t)(colon - s) : strlen(s);
	const char *t = colon ? colon + 1 : "latest";
	if (!ocil_ref_tag_valid(t))
		return tag_error(s, "invalid tag (" OCIL_REF_TAG_RULE ")", err);
	if (name_len > OCIL_REF_NAME_MAX)
		return tag_error(s, "repository name longer than 255 bytes", err);
	if (!ocil_ref_path_valid(path, (size_t)(s + name_len - path)))
		return tag_error(s, "invalid repository name (" OCIL_REF_PATH_RULE ")", err);
	if (name_len == OCIL_DIGEST_HEX_LEN) {
		bool hex = true;
		for (size_t i = 0; i < name_len; i++)
			hex = hex && isxdigit((unsigned char)s[i]);
		/* Docker refuses these: they read as image IDs */
		if (hex)
			return tag_error(s, "a 64-digit hex name looks like an image ID", err);
	}
	if (repo != NULL)
		*repo = ocil_xstrndup(s, name_len);
	if (tag != NULL)
		*tag = ocil_xstrdup(t);
	return 0;
}

/* ---- the tar output ---- */

typedef struct {
	int fd;
	char *tmp; /* the temporary file; unlinked on cleanup unless renamed */
	unsigned char *buf;
	size_t used;
	uint64_t member_left; /* bytes the open member still expects */
	int64_t mtime;
	const ocil_cancel *cancel;
} out_file;

static void out_cleanup(out_file *o)
{
	if (o->fd >= 0)
		close(o->fd);
	if (o->tmp != NULL)
		unlink(o->tmp);
	free(o->tmp);
	free(o->buf);
}
#define cleanup_out __attribute__((cleanup(out_cleanup)))

static int out_flush(out_file *o, ocil_error **err)
{
	if (o->used > 0 && ocil_write_all(o->fd, o->buf, o->used, o->tmp, err) < 0)
		return -1;
	o->used = 0;
	return 0;
}

static int out_put(out_file *o, const void *data, size_t len, ocil_error **err)
{
	const unsigned char *p = data;
	while (len > 0) {
		size_t n = OUT_BUF - o->used < len ? OUT_BUF - o->used : len;
		memcpy(o->buf + o->used, p, n);
		o->used += n;
		p += n;
		len -= n;
		if (o->used == OUT_BUF && out_flush(o, err) < 0)
			return -1;
	}
	return 0;
}

/* width-1 zero-padded octal digits and a NUL; callers keep v in range */
static void octal(char *field, size_t width, uint64_t v)
{
	field[width - 1] = '\0';
	for (size_t i = width - 1; i-- > 0; v >>= 3)
		field[i] = (char)('0' + (v & 7));
}

void ocil_archive_ustar_header(char h[512], const char *name, uint64_t size, int64_t mtime)
{
	memset(h, 0, BLOCK);
	memcpy(h, name, strlen(name));
	octal(h + 100, 8, 0644); /* mode */
	octal(h + 108, 8, 0);	 /* uid */
	octal(h + 116, 8, 0);	 /* gid */
	if (size <= (uint64_t)USTAR_MAX) {
		octal(h + 124, 12, size);
	} else {
		/* base-256: high bit set, big-endian value in the rest */
		h[124] = (char)0x80;
		for (int i = 11; i >= 1; i--, size >>= 8)
			h[124 + i] = (char)(size & 0xff);
	}
	octal(h + 136, 12, (uint64_t)mtime);
	h[156] = '0'; /* regular file */
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	octal(h + 329, 8, 0); /* devmajor */
	octal(h + 337, 8, 0); /* devminor */
	/* checksum: over the header with its own field as spaces */
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < BLOCK; i++)
		sum += (unsigned char)h[i];
	octal(h + 148, 7, sum);
}

/* Our names (at most 69 bytes) fit ustar's 100-byte name field, so there
 * is never a prefix nor a pax record. */
static int member_begin(out_file *o, const char *name, uint64_t size, ocil_error **err)
{
	if (ocil_cancel_check(o->cancel, err) < 0)
		return -1;
	if (strlen(name) >= 100)
		return ocil_error_set(err, OCIL_E_IO, "%s: name too long for ustar", name);
	char h[BLOCK];
	ocil_archive_ustar_header(h, name, size, o->mtime);
	o->member_left = size;
	return out_put(o, h, sizeof(h), err);
}

static int member_data(out_file *o, const void *data, size_t len, ocil_error **err)
{
	if (len > o->member_left)
		return ocil_error_set(err, OCIL_E_IO, "more data than the member's declared size");
	o->member_left -= len;
	return out_put(o, data, len, err);
}

static int member_end(out_file *o, uint64_t size, ocil_error **err)
{
	static const char zeros[BLOCK];
	if (o->member_left != 0)
		return ocil_error_set(err, OCIL_E_IO, "%llu bytes short of the declared size",
				      (unsigned long long)o->member_left);
	size_t pad = (size_t)((BLOCK - size % BLOCK) % BLOCK);
	return out_put(o, zeros, pad, err);
}

static int member_bytes(out_file *o, const char *name, const void *data, size_t len,
			ocil_error **err)
{
	if (member_begin(o, name, len, err) < 0 || member_data(o, data, len, err) < 0 ||
	    member_end(o, len, err) < 0)
		return ocil_error_wrap(err, "%s", name);
	return 0;
}

/* ---- reading blobs ---- */

typedef struct {
	ocil_hasher *h;
	uint64_t n;
	out_file *o; /* NULL: only count and hash */
	const char *what;
	int64_t size; /* > 0: the bytes there must be at most (a plain layer's) */
} raw_sink;

static int raw_take(void *ctx, const void *buf, size_t len, ocil_error **err)
{
	raw_sink *r = ctx;
	if (r->size > 0 && r->n + len > (uint64_t)r->size)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: larger than its %lld bytes", r->what,
				      (long long)r->size);
	r->n += len;
	if (r->n > OCIL_TAR_MAX_BYTES)
		return ocil_error_set(
		    err, OCIL_E_INPUT,
		    "%s: more than %llu bytes uncompressed (Lambda's image limit)", r->what,
		    (unsigned long long)OCIL_TAR_MAX_BYTES);
	ocil_hasher_update(r->h, buf, len);
	if (r->o != NULL && member_data(r->o, buf, len, err) < 0)
		return ocil_error_wrap(err, "%s", r->what);
	return 0;
}

static void hasher_freep(ocil_hasher **h)
{
	ocil_hasher_free(*h);
}
#define cleanup_hasher __attribute__((cleanup(hasher_freep)))

static int check_digest(ocil_hasher *h, const char *want, const char *what, const char *which,
			ocil_error **err)
{
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(h, got);
	if (strcmp(got, want) != 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: %s mismatch: expected %s, content is %s", what, which,
				      want, got);
	return 0;
}

/* A plain layer is its own diff: copy it while hashing. */
static int copy_tar_layer(out_file *o, int fd, const ocil_descriptor *d, const char *name,
			  const char *what, ocil_error **err)
{
	if (member_begin(o, name, (uint64_t)d->size, err) < 0)
		return -1;
	cleanup_hasher ocil_hasher *h = ocil_hasher_new();
	raw_sink rs = {.h = h, .o = o, .what = what, .size = d->size};
	if (ocil_layer_read_fd(fd, OCIL_LAYER_TAR, what, NULL, NULL, raw_take, &rs, o->cancel,
			       err) < 0)
		return -1;
	if (rs.n != (uint64_t)d->size)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: %llu bytes, descriptor says %lld",
				      what, (unsigned long long)rs.n, (long long)d->size);
	if (check_digest(h, d->digest, what, "digest", err) < 0)
		return -1;
	return member_end(o, rs.n, err);
}

/* The tar header needs the size before the data: a first pass inflates
 * only to count and hash (checking the blob's digest and the diff_id), a
 * second streams the same bytes into the archive. That costs a second
 * inflate but no temporary copy of the layer. */
static int copy_gzip_layer(out_file *o, int fd, const ocil_descriptor *d, const char *diff_id,
			   const char *name, const char *what, ocil_error **err)
{
	cleanup_hasher ocil_hasher *zh = ocil_hasher_new();
	cleanup_hasher ocil_hasher *h1 = ocil_hasher_new();
	uint64_t zsize = 0;
	raw_sink count = {.h = h1, .what = what};
	if (ocil_layer_read_fd(fd, OCIL_LAYER_GZIP, what, zh, &zsize, raw_take, &count, o->cancel,
			       err) < 0)
		return -1;
	if (zsize != (uint64_t)d->size)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: %llu bytes, descriptor says %lld",
				      what, (unsigned long long)zsize, (long long)d->size);
	if (check_digest(zh, d->digest, what, "digest", err) < 0 ||
	    check_digest(h1, diff_id, what, "diff_id", err) < 0)
		return -1;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "rewinding %s", what);
	if (member_begin(o, name, count.n, err) < 0)
		return -1;
	/* hash again: what reaches the archive is what must match */
	cleanup_hasher ocil_hasher *h2 = ocil_hasher_new();
	raw_sink emit = {.h = h2, .o = o, .what = what};
	if (ocil_layer_read_fd(fd, OCIL_LAYER_GZIP, what, NULL, NULL, raw_take, &emit, o->cancel,
			       err) < 0)
		return -1;
	if (emit.n != count.n)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: changed while it was being copied",
				      what);
	if (check_digest(h2, diff_id, what, "diff_id", err) < 0)
		return -1;
	return member_end(o, emit.n, err);
}

static int write_layer(out_file *o, const ocil_blobstore *bs, size_t i, const ocil_descriptor *d,
		       const char *diff_id, ocil_error **err)
{
	cleanup_free char *name = ocil_xasprintf("%s.tar", ocil_digest_hex(diff_id));
	cleanup_free char *what = ocil_xasprintf("layer %zu (%s)", i, d->digest);
	cleanup_close int fd = -1;
	if (ocil_blobstore_open_blob(bs, d->digest, &fd, err) < 0)
		return ocil_error_wrap(err, "layer %zu", i);
	if (ocil_layer_media_compression(d->media_type) == OCIL_LAYER_GZIP)
		return copy_gzip_layer(o, fd, d, diff_id, name, what, err);
	return copy_tar_layer(o, fd, d, name, what, err);
}

/* ---- the image's metadata ---- */

static int check_layers(const ocil_archive_spec *s, ocil_error **err)
{
	for (size_t i = 0; i < s->n_layers; i++) {
		const ocil_descriptor *d = &s->layers[i];
		cleanup_free char *what = ocil_xasprintf("layer %zu (%s)", i, d->digest);
		if (ocil_digest_check(d->digest, what, err) < 0 ||
		    ocil_digest_check(s->diff_ids[i], what, err) < 0)
			return -1;
		if (d->size < 0 || (uint64_t)d->size > OCIL_TAR_MAX_BYTES)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: size %lld out of range", what,
					      (long long)d->size);
		switch (ocil_layer_media_compression(d->media_type)) {
		case OCIL_LAYER_GZIP:
			break;
		case OCIL_LAYER_TAR:
			/* a plain layer's digest is its diff_id */
			if (strcmp(d->digest, s->diff_ids[i]) != 0)
				return ocil_error_set(err, OCIL_E_INPUT,
						      "%s: an uncompressed layer's digest is its "
						      "diff_id, but the diff_id given is %s",
						      what, s->diff_ids[i]);
			break;
		default:
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: media type %s: docker-archive needs gzip or tar "
					      "layers",
					      what, d->media_type ? d->media_type : "(none)");
		}
	}
	return 0;
}

/* Read and verify the config; its diff_ids must be the ones given, or
 * docker load would refuse the image. */
static int load_config(const ocil_archive_spec *s, char **out, size_t *out_len, ocil_error **err)
{
	const ocil_descriptor *d = s->config;
	cleanup_free char *what = ocil_xasprintf("config %s", d->digest);
	if (ocil_digest_check(d->digest, "config", err) < 0)
		return -1;
	cleanup_close int fd = -1;
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_blobstore_open_blob(s->blobs, d->digest, &fd, err) < 0 ||
	    ocil_read_fd(fd, what, OCIL_JSON_MAX, &buf, &len, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(buf, len, got);
	if ((int64_t)len != d->size || strcmp(got, d->digest) != 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: content is %s (%zu bytes), descriptor says %lld bytes",
				      what, got, len, (long long)d->size);
	cleanup_json json_t *cfg = NULL;
	if (ocil_json_parse(buf, len, what, &cfg, err) < 0)
		return -1;
	const json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
	if (!json_is_array(ids) || json_array_size(ids) != s->n_layers)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: rootfs.diff_ids does not list the %zu layers", what,
				      s->n_layers);
	for (size_t i = 0; i < s->n_layers; i++) {
		const char *v = json_string_value(json_array_get(ids, i));
		if (v == NULL || strcmp(v, s->diff_ids[i]) != 0)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: rootfs.diff_ids[%zu] is %s, layer %zu's is %s",
					      what, i, v ? v : "(not a string)", i, s->diff_ids[i]);
	}
	*out = steal_pointer(&buf);
	*out_len = len;
	return 0;
}

/* manifest.json and repositories, built before the file is created so a
 * bad tag costs nothing. Tags are checked, completed with ":latest" and
 * written once each, in the order given. */
static int build_metadata(const ocil_archive_spec *s, const char *config_name, char **manifest,
			  char **repositories, ocil_error **err)
{
	cleanup_json json_t *tags = json_array();
	cleanup_json json_t *repos = json_object();
	for (size_t i = 0; i < s->n_repo_tags; i++) {
		cleanup_free char *repo = NULL, *tag = NULL;
		if (ocil_archive_parse_tag(s->repo_tags[i], &repo, &tag, err) < 0)
			return -1;
		cleanup_free char *full = ocil_xasprintf("%s:%s", repo, tag);
		bool seen = false;
		for (size_t j = 0; j < json_array_size(tags) && !seen; j++)
			seen = strcmp(json_string_value(json_array_get(tags, j)), full) == 0;
		if (seen)
			continue;
		json_array_append_new(tags, json_string(full));
		/* Like skopeo: no layers, no legacy entry to point at. */
		if (s->n_layers == 0)
			continue;
		json_t *r = json_object_get(repos, repo);
		if (r == NULL) {
			r = json_object();
			json_object_set_new(repos, repo, r);
		}
		json_object_set_new(r, tag,
				    json_string(ocil_digest_hex(s->diff_ids[s->n_layers - 1])));
	}
	json_t *layers = json_array();
	for (size_t i = 0; i < s->n_layers; i++) {
		cleanup_free char *n = ocil_xasprintf("%s.tar", ocil_digest_hex(s->diff_ids[i]));
		json_array_append_new(layers, json_string(n));
	}
	json_t *item = json_object();
	json_object_set_new(item, "Config", json_string(config_name));
	json_object_set(item, "RepoTags", tags);
	json_object_set_new(item, "Layers", layers);
	cleanup_json json_t *doc = json_array();
	json_array_append_new(doc, item);
	*manifest = ocil_json_dump(doc);
	*repositories = ocil_json_dump(repos);
	return 0;
}

static int open_tmp(out_file *o, const char *path, ocil_error **err)
{
	/* flocked, so that the next build can tell one left by a killed
	 * build from one being written by a live one */
	ocil_tmpfile_sweep_for(path);
	o->fd = ocil_tmpfile_create_for(path, &o->tmp, err);
	if (o->fd < 0)
		return -1;
	if (fchmod(o->fd, 0644) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", o->tmp);
	o->buf = ocil_xmalloc(OUT_BUF);
	return 0;
}

/* Durable rename: the data first, then the name, then the directory entry
 * (best effort: some file systems refuse fsync on a directory, and the
 * archive is already complete and in place by then). */
static int publish(out_file *o, const char *path, ocil_error **err)
{
	if (out_flush(o, err) < 0)
		return -1;
	if (fsync(o->fd) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "fsync %s", o->tmp);
	if (rename(o->tmp, path) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "renaming %s to %s", o->tmp,
					    path);
	free(steal_pointer(&o->tmp));
	cleanup_free char *copy = ocil_xstrdup(path);
	cleanup_close int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
	return 0;
}

static int write_archive(const char *path, const ocil_archive_spec *s, ocil_error **err)
{
	if (s->mtime < 0 || s->mtime > USTAR_MAX)
		return ocil_error_set(err, OCIL_E_USAGE, "mtime %lld is out of range",
				      (long long)s->mtime);
	if (ocil_cancel_check(s->cancel, err) < 0 || check_layers(s, err) < 0)
		return -1;
	cleanup_free char *config = NULL;
	size_t config_len = 0;
	if (load_config(s, &config, &config_len, err) < 0)
		return -1;
	cleanup_free char *config_name =
	    ocil_xasprintf("%s.json", ocil_digest_hex(s->config->digest));
	cleanup_free char *manifest = NULL, *repositories = NULL;
	if (build_metadata(s, config_name, &manifest, &repositories, err) < 0)
		return -1;

	cleanup_out out_file o = {.fd = -1, .mtime = s->mtime, .cancel = s->cancel};
	if (open_tmp(&o, path, err) < 0 ||
	    member_bytes(&o, config_name, config, config_len, err) < 0)
		return -1;
	for (size_t i = 0; i < s->n_layers; i++) {
		/* Equal diffs (empty layers, say) are stored once; Layers
		 * names the member as often as the image has it. */
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(s->diff_ids[j], s->diff_ids[i]) == 0;
		if (!dup && write_layer(&o, s->blobs, i, &s->layers[i], s->diff_ids[i], err) < 0)
			return -1;
	}
	static const char end[2 * BLOCK];
	if (member_bytes(&o, "manifest.json", manifest, strlen(manifest), err) < 0 ||
	    member_bytes(&o, "repositories", repositories, strlen(repositories), err) < 0 ||
	    out_put(&o, end, sizeof(end), err) < 0)
		return -1;
	return publish(&o, path, err);
}

int ocil_sink_archive_write(const char *path, const ocil_archive_spec *s, ocil_error **err)
{
	if (write_archive(path, s, err) < 0)
		return ocil_error_wrap(err, "docker-archive %s", path);
	return 0;
}
