#include "base/blobstore.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

struct ocil_blobstore {
	char *root;
	char *dir;  /* <root>/blobs/sha256 */
	bool swept; /* stale temporaries removed (on the first write) */
};

struct ocil_blob_writer {
	ocil_blobstore *bs;
	char *tmp;
	int fd;
	ocil_hasher *h;
	uint64_t size;
	bool done;
};

int ocil_blobstore_open(const char *dir, ocil_blobstore **out, ocil_error **err)
{
	cleanup_free char *blobs = ocil_xasprintf("%s/blobs/sha256", dir);
	if (ocil_mkdir_p(blobs, 0755, err) < 0)
		return -1;
	ocil_blobstore *bs = ocil_xcalloc(1, sizeof(*bs));
	bs->root = ocil_xstrdup(dir);
	bs->dir = steal_pointer(&blobs);
	*out = bs;
	return 0;
}

void ocil_blobstore_free(ocil_blobstore *bs)
{
	if (bs == NULL)
		return;
	free(bs->root);
	free(bs->dir);
	free(bs);
}

const char *ocil_blobstore_root(const ocil_blobstore *bs)
{
	return bs->root;
}

char *ocil_blobstore_path(const ocil_blobstore *bs, const char *digest)
{
	return ocil_xasprintf("%s/%s", bs->dir, ocil_digest_hex(digest));
}

bool ocil_blobstore_has(const ocil_blobstore *bs, const char *digest)
{
	if (!ocil_digest_valid(digest))
		return false;
	cleanup_free char *p = ocil_blobstore_path(bs, digest);
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int ocil_blobstore_open_blob(const ocil_blobstore *bs, const char *digest, int *fd,
			     ocil_error **err)
{
	if (ocil_digest_check(digest, "blob", err) < 0)
		return -1;
	cleanup_free char *p = ocil_blobstore_path(bs, digest);
	int f = open(p, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return ocil_error_set_errno(err, errno == ENOENT ? OCIL_E_INPUT : OCIL_E_IO, errno,
					    "blob %s", digest);
	*fd = f;
	return 0;
}

/* Temporary blobs are ocil_tmpfile_create's, in the blob directory: those
 * left by a process that died are removed before the first write. */
int ocil_blobstore_begin(ocil_blobstore *bs, ocil_blob_writer **out, ocil_error **err)
{
	if (!bs->swept) {
		ocil_tmpfile_sweep(bs->dir);
		bs->swept = true;
	}
	ocil_blob_writer *w = ocil_xcalloc(1, sizeof(*w));
	w->bs = bs;
	w->fd = ocil_tmpfile_create(bs->dir, &w->tmp, err);
	if (w->fd < 0) {
		free(w);
		return -1;
	}
	fchmod(w->fd, 0644);
	w->h = ocil_hasher_new();
	*out = w;
	return 0;
}

int ocil_blob_writer_write(ocil_blob_writer *w, const void *buf, size_t len, ocil_error **err)
{
	if (ocil_write_all(w->fd, buf, len, w->tmp, err) < 0)
		return -1;
	ocil_hasher_update(w->h, buf, len);
	w->size += len;
	return 0;
}

void ocil_blob_writer_digest(const ocil_blob_writer *w, char digest_out[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher_peek(w->h, digest_out);
}

uint64_t ocil_blob_writer_size(const ocil_blob_writer *w)
{
	return w->size;
}

int ocil_blob_writer_reset(ocil_blob_writer *w, ocil_error **err)
{
	if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "resetting %s", w->tmp);
	ocil_hasher_free(w->h);
	w->h = ocil_hasher_new();
	w->size = 0;
	return 0;
}

int ocil_blob_writer_commit(ocil_blob_writer *w, const char *expected_digest, int64_t expected_size,
			    char digest_out[OCIL_DIGEST_STR_SIZE], uint64_t *size_out,
			    ocil_error **err)
{
	char got[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(w->h, got);
	if (expected_size >= 0 && (uint64_t)expected_size != w->size)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "blob %s: size mismatch: expected %lld bytes, got %llu",
				      expected_digest ? expected_digest : got,
				      (long long)expected_size, (unsigned long long)w->size);
	if (expected_digest != NULL && strcmp(expected_digest, got) != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "blob %s: digest mismatch: content is %s",
				      expected_digest, got);
	if (fsync(w->fd) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "writing %s", w->tmp);
	cleanup_free char *dst = ocil_blobstore_path(w->bs, got);
	if (rename(w->tmp, dst) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "storing blob %s", got);
	w->done = true;
	if (digest_out != NULL)
		memcpy(digest_out, got, OCIL_DIGEST_STR_SIZE);
	if (size_out != NULL)
		*size_out = w->size;
	return 0;
}

void ocil_blob_writer_free(ocil_blob_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->done)
		unlink(w->tmp);
	ocil_hasher_free(w->h);
	free(w->tmp);
	free(w);
}

int ocil_blobstore_put(ocil_blobstore *bs, const void *buf, size_t len,
		       char digest_out[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(buf, len, d);
	if (digest_out != NULL)
		memcpy(digest_out, d, OCIL_DIGEST_STR_SIZE);
	if (ocil_blobstore_has(bs, d))
		return 0;
	ocil_blob_writer *w = NULL;
	if (ocil_blobstore_begin(bs, &w, err) < 0)
		return -1;
	int r = ocil_blob_writer_write(w, buf, len, err);
	if (r == 0)
		r = ocil_blob_writer_commit(w, d, (int64_t)len, NULL, NULL, err);
	ocil_blob_writer_free(w);
	return r;
}

int ocil_blobstore_put_fd(ocil_blobstore *bs, int fd, const char *digest, int64_t size,
			  ocil_error **err)
{
	if (ocil_digest_check(digest, "blob", err) < 0)
		return -1;
	ocil_blob_writer *w = NULL;
	if (ocil_blobstore_begin(bs, &w, err) < 0)
		return -1;
	static const size_t bufsize = 1 << 17;
	cleanup_free char *buf = ocil_xmalloc(bufsize);
	int r = 0;
	for (;;) {
		ssize_t n = read(fd, buf, bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ocil_error_set_errno(err, OCIL_E_IO, errno, "reading blob %s", digest);
			break;
		}
		if (n == 0)
			break;
		if (size >= 0 && w->size + (uint64_t)n > (uint64_t)size) {
			r = ocil_error_set(
			    err, OCIL_E_INPUT,
			    "blob %s: size mismatch: larger than the expected %lld bytes", digest,
			    (long long)size);
			break;
		}
		if ((r = ocil_blob_writer_write(w, buf, (size_t)n, err)) < 0)
			break;
	}
	if (r == 0)
		r = ocil_blob_writer_commit(w, digest, size, NULL, NULL, err);
	ocil_blob_writer_free(w);
	return r;
}

/* Read fd to the end, handing each chunk to fn. */
static int stream_fd(int fd, const char *what, ocil_bytes_fn fn, void *data,
		     const ocil_cancel *cancel, ocil_error **err)
{
	static const size_t bufsize = 1 << 17;
	cleanup_free char *buf = ocil_xmalloc(bufsize);
	for (;;) {
		if (ocil_cancel_check(cancel, err) < 0)
			return -1;
		ssize_t n = read(fd, buf, bufsize);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", what);
		if (n == 0)
			return 0;
		if (fn(data, buf, (size_t)n, err) < 0)
			return -1;
	}
}

int ocil_blobstore_stream(const ocil_blobstore *bs, const char *digest, ocil_bytes_fn fn,
			  void *data, const ocil_cancel *cancel, ocil_error **err)
{
	cleanup_close int fd = -1;
	if (ocil_blobstore_open_blob(bs, digest, &fd, err) < 0)
		return -1;
	return stream_fd(fd, digest, fn, data, cancel, err);
}

typedef struct {
	ocil_hasher *h;
	uint64_t n;
} hash_state;

static int hash_fn(void *data, const void *buf, size_t len, ocil_error **err)
{
	hash_state *st = data;
	ocil_hasher_update(st->h, buf, len);
	st->n += len;
	return 0;
}

int ocil_blob_file_verify(const char *path, const char *digest, int64_t size,
			  const ocil_cancel *cancel, ocil_error **err)
{
	if (ocil_digest_check(digest, "blob", err) < 0)
		return -1;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, errno == ENOENT ? OCIL_E_INPUT : OCIL_E_IO, errno,
					    "blob %s", digest);
	hash_state st = {.h = ocil_hasher_new()};
	int r = stream_fd(fd, path, hash_fn, &st, cancel, err);
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(st.h, d);
	ocil_hasher_free(st.h);
	if (r < 0)
		return -1;
	if ((size >= 0 && (uint64_t)size != st.n) || strcmp(d, digest) != 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "blob %s: digest mismatch: content is %s (%llu bytes)",
				      digest, d, (unsigned long long)st.n);
	return 0;
}

int ocil_blobstore_link(ocil_blobstore *bs, const char *path, const char *digest, int64_t size,
			const ocil_cancel *cancel, ocil_error **err)
{
	/* A read-only pass: hashing is much cheaper than writing a copy. */
	if (ocil_blob_file_verify(path, digest, size, cancel, err) < 0)
		return -1;
	return ocil_blobstore_link_unchecked(bs, path, digest, err);
}

int ocil_blobstore_link_unchecked(ocil_blobstore *bs, const char *path, const char *digest,
				  ocil_error **err)
{
	cleanup_free char *dst = ocil_blobstore_path(bs, digest);
	if (link(path, dst) == 0 || errno == EEXIST)
		return 1;
	if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP)
		return 0;
	return ocil_error_set_errno(err, OCIL_E_IO, errno, "linking %s to %s", path, dst);
}
