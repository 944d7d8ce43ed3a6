/* The layer cache (see layer_cache.h). */
#include "oci/layer_cache.h"

#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l.h>
#include <libdeflate.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "base/json.h"

/* Records are small; anything bigger is not ours. */
#define RECORD_MAX ((size_t)16 << 20)

struct ocil_layer_cache {
	char *root; /* <cache> */
	char *dir;  /* <cache>/layers */
	ocil_blobstore *blobs;
};

void ocil_layer_cache_entry_clear(ocil_layer_cache_entry *e)
{
	json_decref(e->facts);
	memset(e, 0, sizeof(*e));
}

int ocil_layer_cache_open(const char *cache_dir, ocil_layer_cache **out, ocil_error **err)
{
	cleanup_free char *dir = ocil_xasprintf("%s/layers", cache_dir);
	ocil_blobstore *bs = NULL;
	if (ocil_mkdir_p(dir, 0755, err) < 0 || ocil_blobstore_open(cache_dir, &bs, err) < 0)
		return ocil_error_wrap(err, "layer cache %s", cache_dir);
	/* records, memos and layer indexes of builds killed mid-write */
	cleanup_free char *verified = ocil_xasprintf("%s/verified", cache_dir);
	cleanup_free char *index = ocil_xasprintf("%s/index", cache_dir);
	ocil_tmpfile_sweep(dir);
	ocil_tmpfile_sweep(verified);
	ocil_tmpfile_sweep(index);
	ocil_layer_cache *lc = ocil_xcalloc(1, sizeof(*lc));
	lc->dir = steal_pointer(&dir);
	lc->root = ocil_xstrdup(cache_dir);
	lc->blobs = bs;
	*out = lc;
	return 0;
}

void ocil_layer_cache_free(ocil_layer_cache *lc)
{
	if (lc == NULL)
		return;
	ocil_blobstore_free(lc->blobs);
	free(lc->root);
	free(lc->dir);
	free(lc);
}

void ocil_layer_cache_key_str(ocil_hasher *h, const char *s)
{
	uint64_t n = s ? strlen(s) : UINT64_MAX;
	ocil_hasher_update(h, &n, sizeof(n));
	if (s != NULL)
		ocil_hasher_update(h, s, strlen(s));
}

void ocil_layer_cache_key_int(ocil_hasher *h, int64_t v)
{
	ocil_hasher_update(h, &v, sizeof(v));
}

ocil_hasher *ocil_layer_cache_key_begin(const char *kind)
{
	ocil_hasher *h = ocil_hasher_new();
	ocil_layer_cache_key_str(h, kind);
	/* what else decides the bytes: the tar writer and the compressors */
	ocil_layer_cache_key_str(h, OCIL_VERSION);
	ocil_layer_cache_key_str(h, archive_version_string());
	ocil_layer_cache_key_str(h, LIBDEFLATE_VERSION_STRING);
	ocil_layer_cache_key_int(h, ISAL_VERSION); /* gzip levels 1 and 2 */
	ocil_layer_cache_key_str(h, ZSTD_versionString());
	return h;
}

void ocil_layer_cache_key_finish(ocil_hasher *h, char key[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher_final(h, key);
	ocil_hasher_free(h);
}

static char *record_path(const ocil_layer_cache *lc, const char *key)
{
	return ocil_xasprintf("%s/%s.json", lc->dir, ocil_digest_hex(key));
}

/* The blob file's identity, as recorded. */
static json_t *identity(const struct stat *st)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "dev", (json_int_t)st->st_dev, "ino",
			 (json_int_t)st->st_ino, "size", (json_int_t)st->st_size, "mtime_s",
			 (json_int_t)st->st_mtim.tv_sec, "mtime_ns",
			 (json_int_t)st->st_mtim.tv_nsec);
}

static int write_record(ocil_layer_cache *lc, const char *key, const ocil_layer_cache_entry *e,
			const struct stat *st, ocil_error **err)
{
	cleanup_json json_t *j = json_pack(
	    "{s:s, s:s, s:I, s:I, s:O, s:o}", "digest", e->digest, "diff_id", e->diff_id, "size",
	    (json_int_t)e->size, "uncompressed_size", (json_int_t)e->uncompressed_size, "facts",
	    e->facts ? e->facts : json_null(), "blob", identity(st));
	cleanup_free char *raw = ocil_json_dump(j);
	cleanup_free char *path = record_path(lc, key);
	if (ocil_write_file_atomic(path, raw, strlen(raw), err) < 0)
		return ocil_error_wrap(err, "layer cache");
	return 0;
}

static void forget(ocil_layer_cache *lc, const char *key)
{
	cleanup_free char *path = record_path(lc, key);
	unlink(path);
}

int ocil_layer_cache_get(ocil_layer_cache *lc, const char *key, ocil_layer_cache_entry *e,
			 const ocil_cancel *cancel, ocil_error **err)
{
	memset(e, 0, sizeof(*e));
	cleanup_free char *path = record_path(lc, key);
	cleanup_json json_t *j = NULL;
	ocil_error *ignored = NULL;
	if (ocil_json_load_file(path, RECORD_MAX, &j, &ignored) < 0) {
		ocil_error_free(ignored);
		return 0;
	}
	const char *digest = json_string_value(json_object_get(j, "digest"));
	const char *diff_id = json_string_value(json_object_get(j, "diff_id"));
	json_t *size = json_object_get(j, "size"), *blob = json_object_get(j, "blob");
	json_t *raw = json_object_get(j, "uncompressed_size");
	if (digest == NULL || !ocil_digest_valid(digest) || diff_id == NULL ||
	    !ocil_digest_valid(diff_id) || !json_is_integer(size) || json_integer_value(size) < 0 ||
	    !json_is_integer(raw) || json_integer_value(raw) < 0 || !json_is_object(blob)) {
		unlink(path);
		return 0;
	}
	cleanup_free char *bpath = ocil_blobstore_path(lc->blobs, digest);
	struct stat st;
	if (stat(bpath, &st) < 0 || st.st_size != json_integer_value(size)) {
		unlink(bpath);
		unlink(path);
		return 0;
	}
	cleanup_json json_t *now = identity(&st);
	bool moved = !json_equal(now, blob);
	if (moved) {
		/* changed since it was hashed, or copied back: hash it again */
		if (ocil_blob_file_verify(bpath, digest, (int64_t)st.st_size, cancel, &ignored) <
		    0) {
			bool cancelled = ignored->code == OCIL_E_CANCELLED;
			if (cancelled) {
				*err = ignored;
				return -1;
			}
			ocil_error_free(ignored);
			unlink(bpath);
			unlink(path);
			return 0;
		}
	}
	snprintf(e->digest, sizeof(e->digest), "%s", digest);
	snprintf(e->diff_id, sizeof(e->diff_id), "%s", diff_id);
	e->size = (int64_t)json_integer_value(size);
	e->uncompressed_size = (int64_t)json_integer_value(raw);
	json_t *facts = json_object_get(j, "facts");
	e->facts = json_is_null(facts) ? NULL : json_incref(facts);
	if (moved && write_record(lc, key, e, &st, &ignored) < 0)
		ocil_error_free(ignored); /* still a hit; it is hashed again next time */
	return 1;
}

/* Hardlink src's blob into dst, else copy it (verified on the way). A blob
 * dst already has under that name stays only if it hashes right. */
static int share_blob(ocil_blobstore *src, ocil_blobstore *dst, const char *digest, int64_t size,
		      ocil_error **err)
{
	cleanup_free char *from = ocil_blobstore_path(src, digest);
	cleanup_free char *to = ocil_blobstore_path(dst, digest);
	int r = link(from, to);
	if (r < 0 && errno == EEXIST) {
		ocil_error *bad = NULL;
		if (ocil_blob_file_verify(to, digest, size, NULL, &bad) == 0)
			return 0;
		ocil_error_free(bad);
		if (unlink(to) < 0)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "removing %s", to);
		r = link(from, to);
	}
	if (r == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "linking %s to %s", from, to);
	cleanup_close int fd = open(from, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", from);
	return ocil_blobstore_put_fd(dst, fd, digest, size, err);
}

int ocil_layer_cache_put(ocil_layer_cache *lc, const char *key, const ocil_layer_cache_entry *e,
			 ocil_blobstore *from, ocil_error **err)
{
	if (share_blob(from, lc->blobs, e->digest, e->size, err) < 0)
		return ocil_error_wrap(err, "layer cache");
	cleanup_free char *bpath = ocil_blobstore_path(lc->blobs, e->digest);
	struct stat st;
	if (stat(bpath, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "layer cache: %s", bpath);
	if (st.st_size != e->size) {
		/* a wrong file under a digest name: not ours to trust */
		forget(lc, key);
		return ocil_error_set(err, OCIL_E_IO, "layer cache: %s has %lld bytes, not %lld",
				      bpath, (long long)st.st_size, (long long)e->size);
	}
	return write_record(lc, key, e, &st, err);
}

int ocil_layer_cache_export(ocil_layer_cache *lc, const ocil_layer_cache_entry *e,
			    ocil_blobstore *to, ocil_error **err)
{
	if (share_blob(lc->blobs, to, e->digest, e->size, err) < 0)
		return ocil_error_wrap(err, "layer cache");
	return 0;
}

/* <cache>/verified/<sha256 of path NUL digest>, holding the identity. */
static char *memo_path(const ocil_layer_cache *lc, const char *path, const char *digest)
{
	cleanup_free char *id = ocil_xasprintf("%s%c%s", path, '\0', digest);
	char name[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(id, strlen(path) + 1 + strlen(digest), name);
	return ocil_xasprintf("%s/verified/%s", lc->root, ocil_digest_hex(name));
}

bool ocil_layer_cache_verified(ocil_layer_cache *lc, const char *path, const char *digest,
			       int64_t size)
{
	struct stat st;
	if (stat(path, &st) < 0 || st.st_size != size)
		return false;
	cleanup_free char *memo = memo_path(lc, path, digest);
	cleanup_json json_t *j = NULL;
	ocil_error *ignored = NULL;
	if (ocil_json_load_file(memo, RECORD_MAX, &j, &ignored) < 0) {
		ocil_error_free(ignored);
		return false;
	}
	cleanup_json json_t *now = identity(&st);
	return json_equal(j, now);
}

void ocil_layer_cache_note_verified(ocil_layer_cache *lc, const char *path, const char *digest)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return;
	cleanup_free char *memo = memo_path(lc, path, digest);
	cleanup_free char *dir = ocil_xasprintf("%s/verified", lc->root);
	cleanup_json json_t *j = identity(&st);
	cleanup_free char *raw = ocil_json_dump(j);
	ocil_error *ignored = NULL;
	if (ocil_mkdir_p(dir, 0755, &ignored) < 0 ||
	    ocil_write_file_atomic(memo, raw, strlen(raw), &ignored) < 0)
		ocil_error_free(ignored); /* only a cache */
}

/* ---- records without a blob ---- */

static char *list_path(const ocil_layer_cache *lc, const char *key)
{
	return ocil_xasprintf("%s/%s.list.json", lc->dir, ocil_digest_hex(key));
}

int ocil_layer_cache_get_json(ocil_layer_cache *lc, const char *key, json_t **out)
{
	*out = NULL;
	cleanup_free char *path = list_path(lc, key);
	ocil_error *ignored = NULL;
	if (ocil_json_load_file(path, RECORD_MAX, out, &ignored) < 0) {
		ocil_error_free(ignored);
		return 0;
	}
	return 1;
}

int ocil_layer_cache_put_json(ocil_layer_cache *lc, const char *key, const json_t *j,
			      ocil_error **err)
{
	cleanup_free char *raw = ocil_json_dump(j);
	cleanup_free char *path = list_path(lc, key);
	if (ocil_write_file_atomic(path, raw, strlen(raw), err) < 0)
		return ocil_error_wrap(err, "layer cache");
	return 0;
}

void ocil_layer_cache_forget_json(ocil_layer_cache *lc, const char *key)
{
	cleanup_free char *path = list_path(lc, key);
	unlink(path);
}

ocil_blobstore *ocil_layer_cache_blobs(ocil_layer_cache *lc)
{
	return lc->blobs;
}
