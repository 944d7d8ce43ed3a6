/* Layer entry indexes (see layer_index.h).
 *
 * Format: "OCILIDX1", then per entry: type (1 byte), mode (4), size (8),
 * path length (4) and path, link length (4, 0xffffffff for none) and link,
 * integers little-endian; then the sha256 of the writer's OCIL_VERSION and
 * a NUL followed by everything before it, as 64 hex digits: an index made
 * by another version (whose tarstream may have read the layer otherwise)
 * fails the check and is made again. Machine-local, like the rest of the
 * cache. */
#include "oci/layer_index.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'O', 'C', 'I', 'L', 'I', 'D', 'X', '1'};
/* Bigger indexes are not written: about 300,000 entries (the readers keep
 * every entry in memory anyway: rootfs, check). */
#define INDEX_MAX ((size_t)32 << 20)
#define NO_LINK 0xffffffffu

struct ocil_layer_index_writer {
	char *dir, *tmp;
	FILE *f;
	int lock; /* a dup of f's descriptor: keeps the tmpfile lock past fclose */
	ocil_hasher *sha;
	size_t bytes;
	bool failed, done;
};

static void put(ocil_layer_index_writer *w, const void *p, size_t n)
{
	if (w->failed)
		return;
	w->bytes += n;
	if (w->bytes > INDEX_MAX || fwrite(p, 1, n, w->f) != n) {
		w->failed = true;
		return;
	}
	ocil_hasher_update(w->sha, p, n);
}

int ocil_layer_index_writer_begin(const char *dir, ocil_layer_index_writer **out, ocil_error **err)
{
	/* (the temporaries of builds that were killed are swept when the
	 * cache is opened, once a build, not once a layer) */
	if (ocil_mkdir_p(dir, 0755, err) < 0)
		return ocil_error_wrap(err, "layer index");
	ocil_layer_index_writer *w = ocil_xcalloc(1, sizeof(*w));
	w->dir = ocil_xstrdup(dir);
	w->lock = -1;
	int fd = ocil_tmpfile_create(dir, &w->tmp, err);
	if (fd < 0) {
		ocil_layer_index_writer_free(w);
		return ocil_error_wrap(err, "layer index");
	}
	w->lock = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* dup() would drop O_CLOEXEC */
	if (w->lock < 0 || (w->f = fdopen(fd, "w")) == NULL) {
		int e = errno;
		close(fd);
		ocil_layer_index_writer_free(w);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "layer index in %s", dir);
	}
	w->sha = ocil_hasher_new();
	ocil_hasher_update(w->sha, OCIL_VERSION, sizeof(OCIL_VERSION));
	put(w, MAGIC, sizeof(MAGIC));
	*out = w;
	return 0;
}

static void put_u32(ocil_layer_index_writer *w, uint32_t v)
{
	v = htole32(v);
	put(w, &v, sizeof(v));
}

void ocil_layer_index_writer_add(ocil_layer_index_writer *w, const ocil_tar_entry *e)
{
	unsigned char type = (unsigned char)e->type;
	put(w, &type, 1);
	put_u32(w, (uint32_t)e->mode);
	uint64_t size = htole64(e->size);
	put(w, &size, sizeof(size));
	put_u32(w, (uint32_t)strlen(e->path));
	put(w, e->path, strlen(e->path));
	if (e->link == NULL) {
		put_u32(w, NO_LINK);
	} else {
		put_u32(w, (uint32_t)strlen(e->link));
		put(w, e->link, strlen(e->link));
	}
}

int ocil_layer_index_writer_commit(ocil_layer_index_writer *w, const char *digest, ocil_error **err)
{
	if (ocil_digest_check(digest, "layer index", err) < 0)
		return -1;
	char sum[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(w->sha, sum);
	if (!w->failed &&
	    fwrite(ocil_digest_hex(sum), 1, OCIL_DIGEST_HEX_LEN, w->f) != OCIL_DIGEST_HEX_LEN)
		w->failed = true;
	int e = fclose(w->f) != 0 ? errno : 0;
	w->f = NULL;
	if (w->failed || e != 0)
		return ocil_error_set_errno(err, OCIL_E_IO, e ? e : EFBIG, "layer index %s",
					    w->tmp);
	cleanup_free char *path = ocil_xasprintf("%s/%s", w->dir, ocil_digest_hex(digest));
	if (rename(w->tmp, path) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "layer index %s", path);
	w->done = true;
	return 0;
}

void ocil_layer_index_writer_free(ocil_layer_index_writer *w)
{
	if (w == NULL)
		return;
	if (w->f != NULL)
		fclose(w->f);
	if (w->tmp != NULL && !w->done)
		unlink(w->tmp);
	if (w->lock >= 0)
		close(w->lock);
	ocil_hasher_free(w->sha);
	free(w->tmp);
	free(w->dir);
	free(w);
}

/* ---- reading ---- */

struct ocil_layer_entries {
	/* from an index, read as a stream (checked whole before the first
	 * entry), so memory does not grow with the layer */
	FILE *f;
	char *file;	   /* its path */
	uint64_t len, pos; /* of the entries, between magic and checksum */
	char *path, *link; /* the current entry's, NUL-terminated */
	bool has_link;
	/* else from the blob */
	ocil_tarstream *ts;
	ocil_layer_index_writer *w;
	char digest[OCIL_DIGEST_STR_SIZE];
	ocil_tar_entry entry;
	char *what;
};

/* The digest a blob store path names (".../sha256/<hex>"), or false. */
static bool path_digest(const char *path, char digest[OCIL_DIGEST_STR_SIZE])
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL || slash - path < 6 || memcmp(slash - 6, "sha256", 6) != 0)
		return false;
	snprintf(digest, OCIL_DIGEST_STR_SIZE, "sha256:%s", slash + 1);
	return ocil_digest_valid(digest);
}

/* Open and check the index (one streaming pass over it: in the page
 * cache, a fraction of parsing it); false, and the file removed when
 * damaged, when there is no good one. */
static bool load_index(ocil_layer_entries *it, const char *file)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || (it->f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return false;
	}
	bool ok =
	    S_ISREG(st.st_mode) && (uint64_t)st.st_size >= sizeof(MAGIC) + OCIL_DIGEST_HEX_LEN;
	uint64_t body = ok ? (uint64_t)st.st_size - OCIL_DIGEST_HEX_LEN : 0;
	char magic[sizeof(MAGIC)];
	ok = ok && fread(magic, 1, sizeof(magic), it->f) == sizeof(magic) &&
	     memcmp(magic, MAGIC, sizeof(MAGIC)) == 0;
	ocil_hasher *h = ocil_hasher_new();
	ocil_hasher_update(h, OCIL_VERSION, sizeof(OCIL_VERSION));
	ocil_hasher_update(h, magic, sizeof(magic));
	char buf[1 << 16];
	for (uint64_t left = body - sizeof(MAGIC); ok && left > 0;) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		ok = fread(buf, 1, n, it->f) == n;
		ocil_hasher_update(h, buf, n);
		left -= n;
	}
	char sum[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(h, sum);
	ocil_hasher_free(h);
	ok = ok && fread(buf, 1, OCIL_DIGEST_HEX_LEN, it->f) == OCIL_DIGEST_HEX_LEN &&
	     memcmp(buf, ocil_digest_hex(sum), OCIL_DIGEST_HEX_LEN) == 0 &&
	     fseeko(it->f, (off_t)sizeof(MAGIC), SEEK_SET) == 0;
	if (!ok) {
		fclose(it->f);
		it->f = NULL;
		unlink(file);
		return false;
	}
	it->len = body - sizeof(MAGIC);
	it->pos = 0;
	it->path = ocil_xmalloc(OCIL_TAR_NAME_MAX + 2);
	it->link = ocil_xmalloc(OCIL_TAR_NAME_MAX + 2);
	return true;
}

int ocil_layer_entries_open(const char *path, const char *what, const char *index_dir,
			    ocil_layer_entries **out, ocil_error **err)
{
	ocil_layer_entries *it = ocil_xcalloc(1, sizeof(*it));
	it->what = ocil_xstrdup(what ? what : path);
	bool named = index_dir != NULL && path_digest(path, it->digest);
	if (named) {
		cleanup_free char *file =
		    ocil_xasprintf("%s/%s", index_dir, ocil_digest_hex(it->digest));
		if (load_index(it, file)) {
			it->file = steal_pointer(&file);
			*out = it;
			return 0;
		}
	}
	if (ocil_tarstream_open_path(path, what, &it->ts, err) < 0) {
		ocil_layer_entries_free(it);
		return -1;
	}
	ocil_error *no_index = NULL;
	if (named && ocil_layer_index_writer_begin(index_dir, &it->w, &no_index) < 0)
		ocil_error_free(no_index); /* only a cache */
	*out = it;
	return 0;
}

static bool take(ocil_layer_entries *it, void *p, size_t n)
{
	if (it->len - it->pos < n || fread(p, 1, n, it->f) != n)
		return false;
	it->pos += n;
	return true;
}

/* A length-prefixed string into buf (OCIL_TAR_NAME_MAX + 2 bytes);
 * *present false for the "none" length when may_be_none. */
static bool take_str(ocil_layer_entries *it, char *buf, bool may_be_none, bool *present)
{
	uint32_t n;
	if (!take(it, &n, sizeof(n)))
		return false;
	n = le32toh(n);
	*present = n != NO_LINK;
	if (n == NO_LINK)
		return may_be_none;
	if (n > OCIL_TAR_NAME_MAX + 1 || !take(it, buf, n))
		return false;
	buf[n] = '\0';
	return true;
}

/* A path as ocil_tarstream normalizes them: "/", or "/a/b" with no empty,
 * "." or ".." component and none longer than OCIL_TAR_COMPONENT_MAX. */
static bool normalized(const char *p)
{
	if (p[0] != '/')
		return false;
	if (p[1] == '\0')
		return true;
	for (const char *c = p + 1;;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || n > OCIL_TAR_COMPONENT_MAX || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (c[n] == '\0')
			return true;
		c += n + 1;
	}
}

/* What ocil_tarstream guarantees of an entry, which the readers rely on:
 * a checksum only shows the index was not damaged by accident, not that
 * whoever wrote it kept to this. */
static bool entry_ok(const ocil_tar_entry *x)
{
	if (!normalized(x->path) || (strcmp(x->path, "/") == 0 && x->type != OCIL_TAR_DIR))
		return false;
	switch (x->type) {
	case OCIL_TAR_HARDLINK:
		return x->link != NULL && normalized(x->link) && strcmp(x->link, "/") != 0;
	case OCIL_TAR_SYMLINK:
		return x->link != NULL && x->link[0] != '\0';
	default:
		return x->link == NULL;
	}
}

int ocil_layer_entries_next(ocil_layer_entries *it, const ocil_tar_entry **e, ocil_error **err)
{
	if (it->ts != NULL) {
		int r = ocil_tarstream_next(it->ts, e, err);
		if (r > 0 && it->w != NULL)
			ocil_layer_index_writer_add(it->w, *e);
		if (r == 0 && it->w != NULL) {
			ocil_error *no_index = NULL;
			if (ocil_layer_index_writer_commit(it->w, it->digest, &no_index) < 0)
				ocil_error_free(no_index);
			ocil_layer_index_writer_free(steal_pointer(&it->w));
		}
		return r;
	}
	if (it->pos == it->len)
		return 0;
	unsigned char type = 0;
	uint32_t mode = 0;
	uint64_t size = 0;
	bool has_path = false;
	bool got = take(it, &type, 1) && take(it, &mode, sizeof(mode)) &&
		   take(it, &size, sizeof(size)) && take_str(it, it->path, false, &has_path) &&
		   take_str(it, it->link, true, &it->has_link) && type <= OCIL_TAR_OTHER;
	ocil_tar_entry x = {.path = it->path,
			    .type = (ocil_tar_type)type,
			    .mode = (mode_t)le32toh(mode),
			    .size = le64toh(size),
			    .link = it->has_link ? it->link : NULL,
			    .index = it->entry.path == NULL ? 0 : it->entry.index + 1};
	if (!got || !entry_ok(&x)) {
		unlink(it->file); /* the next run reads the layer itself */
		return ocil_error_set(err, OCIL_E_IO,
				      "%s: damaged layer index %s (removed; run again)", it->what,
				      it->file);
	}
	it->entry = x;
	*e = &it->entry;
	return 1;
}

bool ocil_layer_entries_indexed(const ocil_layer_entries *it)
{
	return it->f != NULL;
}

void ocil_layer_entries_free(ocil_layer_entries *it)
{
	if (it == NULL)
		return;
	ocil_tarstream_free(it->ts);
	ocil_layer_index_writer_free(it->w);
	if (it->f != NULL)
		fclose(it->f);
	free(it->path);
	free(it->link);
	free(it->file);
	free(it->what);
	free(it);
}
