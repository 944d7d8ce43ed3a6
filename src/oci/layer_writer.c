/* Deterministic layer writer: libarchive (pax_restricted) -> our callback ->
 * ocil_gzip_blob (sha256 of the tar = diff_id, gzip, sha256 of the blob).
 *
 * Member names: "opt/x" for the image path "/opt/x"; directories always end
 * in "/" ("opt/x/"), because libarchive's pax writer appends it to every
 * directory entry anyway and Docker's own tars do the same. */
#include "oci/layer_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <string.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "base/util.h"
#include "compress/gzip.h"
#include "compress/zstd_blob.h"
#include "oci/layer_index.h"
#include "oci/pyc.h"

/* Longest image path we accept; the kernel's PATH_MAX is what a runtime can
 * create anyway. */
#define PATH_CAP 4095
/* libarchive's usual tar block; the last block is not padded (see _new). */
#define TAR_BLOCK 10240
/* read size for _add_fd */
#define COPY_BUF_SIZE ((size_t)128 << 10)

typedef enum { ST_IDLE, ST_IN_FILE, ST_FAILED, ST_FINISHED } writer_state;

struct ocil_layer_writer {
	struct archive *a;
	ocil_gzip_blob *gz; /* one of these two */
	ocil_zstd_blob *zs;
	/* the entries as ocil_tarstream will read them back; NULL: none */
	ocil_layer_index_writer *index;
	uint64_t entries;
	int64_t mtime;
	/* the next entry's own mtime (ocil_layer_writer_set_next_mtime) */
	int64_t next_mtime;
	bool next_mtime_set;
	/* python sources and bytecode written, kept with the entry index for
	 * the stale-bytecode scans (pyc.h); NULL: none kept */
	ocil_pyc_facts *facts;
	char *facts_dir;
	bool in_fact; /* the current file is the last fact */
	writer_state state;
	/* set by the output callback; libarchive only sees "-1" */
	ocil_error *io_err;
	/* while freeing an unfinished writer libarchive flushes its trailer;
	 * nothing should reach the (doomed) blob then */
	bool discarding;
	/* current regular file */
	char *file_path;
	uint64_t file_size, file_written;
	/* directories already written, so add_parents never duplicates one and
	 * children can check their parent exists; a set (values unused) */
	ocil_strmap dirs;
	/* symlinks written: nothing may be added under one, nor one over a
	 * directory (an extractor follows it for the entries below) */
	ocil_strmap links;
	/* libarchive converts names from the current locale's charset; pin
	 * "C" so non-ASCII names are encoded the same on every machine */
	locale_t c_locale;
};

static la_ssize_t write_cb(struct archive *a, void *cd, const void *buf, size_t len)
{
	ocil_layer_writer *w = cd;
	if (w->discarding)
		return (la_ssize_t)len;
	if (w->io_err != NULL)
		return -1;
	int r = w->zs != NULL ? ocil_zstd_blob_write(w->zs, buf, len, &w->io_err)
			      : ocil_gzip_blob_write(w->gz, buf, len, &w->io_err);
	if (r < 0) {
		archive_set_error(a, EIO, "%s", w->io_err ? w->io_err->msg : "write failed");
		return -1;
	}
	return (la_ssize_t)len;
}

static int fail(ocil_layer_writer *w)
{
	w->state = ST_FAILED;
	return -1;
}

/* Turn a libarchive failure into an ocil_error, preferring the error our
 * own callback recorded (the real cause). */
static int archive_fail(ocil_layer_writer *w, const char *path, ocil_error **err)
{
	if (w->io_err != NULL) {
		if (err != NULL && *err == NULL)
			*err = steal_pointer(&w->io_err);
		else
			ocil_error_free(steal_pointer(&w->io_err));
		ocil_error_wrap(err, "layer writer: %s", path);
	} else {
		const char *m = archive_error_string(w->a);
		ocil_error_set(err, OCIL_E_IO, "layer writer: %s: %s", path,
			       m ? m : "libarchive failed");
	}
	return fail(w);
}

static int check_state(ocil_layer_writer *w, writer_state want, ocil_error **err)
{
	if (w->state == want)
		return 0;
	switch (w->state) {
	case ST_FAILED:
		return ocil_error_set(err, OCIL_E_IO,
				      "layer writer: unusable after an earlier error");
	case ST_FINISHED:
		return ocil_error_set(err, OCIL_E_IO, "layer writer: already finished");
	case ST_IN_FILE:
		ocil_error_set(err, OCIL_E_IO,
			       "layer writer: %s: file not ended before the next call",
			       w->file_path);
		return fail(w);
	default:
		return ocil_error_set(err, OCIL_E_IO, "layer writer: no file is open");
	}
}

/* Canonical absolute image path: "/a/b", no empty, "." or ".." components,
 * not "/" itself. */
static int check_path(const char *path, ocil_error **err)
{
	if (path == NULL || path[0] == '\0')
		return ocil_error_set(err, OCIL_E_INPUT, "layer writer: empty path");
	if (path[0] != '/')
		return ocil_error_set(err, OCIL_E_INPUT, "layer writer: %s: path is not absolute",
				      path);
	size_t len = strlen(path);
	if (len > PATH_CAP)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "layer writer: %.64s...: path longer than %d bytes", path,
				      PATH_CAP);
	if (len == 1)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "layer writer: the root directory is not an entry");
	const char *c = path + 1;
	for (;;) {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if (n == 0)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "layer writer: %s: empty path component", path);
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "layer writer: %s: \".\" or \"..\" in path", path);
		if (end == NULL)
			return 0;
		c = end + 1;
	}
}

/* Lambda rejects layers with missing parent directories; catch it here
 * rather than at deploy time. */
static int check_parent(ocil_layer_writer *w, const char *path, ocil_error **err)
{
	const char *slash = strrchr(path, '/');
	if (slash == path)
		return 0;
	cleanup_free char *parent = ocil_xstrndup(path, (size_t)(slash - path));
	if (ocil_strmap_get(&w->dirs, parent, NULL))
		return 0;
	return ocil_error_set(err, OCIL_E_IO,
			      "layer writer: %s: parent directory %s was not added first", path,
			      parent);
}

static struct archive_entry *new_entry(ocil_layer_writer *w, const char *path, mode_t type,
				       mode_t perm)
{
	struct archive_entry *e = archive_entry_new();
	if (e == NULL)
		abort(); /* out of memory, as in ocil_xmalloc */
	archive_entry_copy_pathname(e, path + 1);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm & 07777);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, (time_t)(w->next_mtime_set ? w->next_mtime : w->mtime), 0);
	w->next_mtime_set = false;
	return e;
}

/* The entry as ocil_tarstream reads it back: the image path, type bits and
 * permissions, data size for files, a symlink's target. */
static void index_entry(ocil_layer_writer *w, struct archive_entry *e, const char *path)
{
	if (w->index == NULL)
		return;
	mode_t type = archive_entry_filetype(e);
	ocil_tar_entry x = {
	    .path = path,
	    .type = type == AE_IFDIR   ? OCIL_TAR_DIR
		    : type == AE_IFLNK ? OCIL_TAR_SYMLINK
				       : OCIL_TAR_FILE,
	    .mode = archive_entry_mode(e),
	    .size = type == AE_IFREG ? (uint64_t)archive_entry_size(e) : 0,
	    .link = type == AE_IFLNK ? archive_entry_symlink(e) : NULL,
	    .index = w->entries,
	};
	ocil_layer_index_writer_add(w->index, &x);
}

static int write_header(ocil_layer_writer *w, struct archive_entry *e, const char *path,
			ocil_error **err)
{
	locale_t old = uselocale(w->c_locale);
	int r = archive_write_header(w->a, e);
	uselocale(old);
	/* WARN means a name had to be stored as raw bytes (hdrcharset=BINARY);
	 * that is fine for a Linux image. */
	if (r >= ARCHIVE_WARN)
		index_entry(w, e, path);
	archive_entry_free(e);
	if (r < ARCHIVE_WARN)
		return archive_fail(w, path, err);
	w->entries++;
	return 0;
}

int ocil_layer_writer_new(ocil_blobstore *bs, const ocil_layer_opts *opts, ocil_layer_writer **out,
			  ocil_error **err)
{
	int level = opts && opts->compression_level ? opts->compression_level : 6;
	int64_t mtime = opts ? opts->mtime : 0;
	if (level < 1 || level > 9)
		return ocil_error_set(err, OCIL_E_USAGE, "compression level %d is not in 1..9",
				      level);
	/* ustar's mtime field holds 0..8^11-1; beyond that libarchive adds a
	 * pax mtime record, which we do not want to depend on */
	if (mtime < 0 || mtime > 077777777777LL)
		return ocil_error_set(err, OCIL_E_USAGE, "mtime %lld is out of range",
				      (long long)mtime);

	ocil_layer_writer *w = ocil_xcalloc(1, sizeof(*w));
	w->mtime = mtime;
	w->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (w->c_locale == (locale_t)0) {
		ocil_layer_writer_free(w);
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "layer writer: C locale");
	}
	ocil_zstd_opts zo = {.level = level};
	if (opts && opts->zstd ? ocil_zstd_blob_begin(bs, &zo, &w->zs, err) < 0
			       : ocil_gzip_blob_begin(bs, level, &w->gz, err) < 0) {
		ocil_layer_writer_free(w);
		return ocil_error_wrap(err, "layer writer");
	}
	ocil_error *no_index = NULL;
	if (opts && opts->index_dir &&
	    ocil_layer_index_writer_begin(opts->index_dir, &w->index, &no_index) < 0)
		ocil_error_free(no_index); /* only a cache */
	if (opts && opts->index_dir) {
		w->facts = ocil_xcalloc(1, sizeof(*w->facts));
		w->facts_dir = ocil_xstrdup(opts->index_dir);
	}
	w->a = archive_write_new();
	if (w->a == NULL)
		abort();
	if (archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(w->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(w->a, TAR_BLOCK) != ARCHIVE_OK ||
	    /* end after the two zero blocks instead of padding to 10 KiB */
	    archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
	    archive_write_open2(w->a, w, NULL, write_cb, NULL, NULL) != ARCHIVE_OK) {
		ocil_error_set(err, OCIL_E_IO, "layer writer: %s", archive_error_string(w->a));
		ocil_layer_writer_free(w);
		return -1;
	}
	*out = w;
	return 0;
}

int ocil_layer_writer_add_dir(ocil_layer_writer *w, const char *path, mode_t mode, ocil_error **err)
{
	if (check_state(w, ST_IDLE, err) < 0 || check_path(path, err) < 0)
		return -1;
	/* A directory is written once; later calls (e.g. the producer adding
	 * a dir that add_parents already emitted) are no-ops. */
	if (ocil_strmap_get(&w->dirs, path, NULL))
		return 0;
	if (ocil_strmap_get(&w->links, path, NULL))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "layer writer: %s: a directory where a symlink was added",
				      path);
	if (check_parent(w, path, err) < 0)
		return -1;
	if (write_header(w, new_entry(w, path, AE_IFDIR, mode), path, err) < 0)
		return -1;
	ocil_strmap_put(&w->dirs, path, 0);
	return 0;
}

int ocil_layer_writer_add_symlink(ocil_layer_writer *w, const char *path, const char *target,
				  ocil_error **err)
{
	if (check_state(w, ST_IDLE, err) < 0 || check_path(path, err) < 0 ||
	    check_parent(w, path, err) < 0)
		return -1;
	if (target == NULL || target[0] == '\0')
		return ocil_error_set(err, OCIL_E_INPUT, "layer writer: %s: empty symlink target",
				      path);
	if (strlen(target) > PATH_CAP)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "layer writer: %s: symlink target longer than %d bytes", path,
				      PATH_CAP);
	/* an extractor would replace the directory by the symlink and then
	 * write the entries added under the directory through it, wherever
	 * it points */
	if (ocil_strmap_get(&w->dirs, path, NULL))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "layer writer: %s: a symlink where a directory was added",
				      path);
	struct archive_entry *e = new_entry(w, path, AE_IFLNK, 0777);
	archive_entry_copy_symlink(e, target);
	if (write_header(w, e, path, err) < 0)
		return -1;
	ocil_strmap_put(&w->links, path, 0);
	return 0;
}

int ocil_layer_writer_begin_file(ocil_layer_writer *w, const char *path, mode_t mode, uint64_t size,
				 ocil_error **err)
{
	if (check_state(w, ST_IDLE, err) < 0 || check_path(path, err) < 0 ||
	    check_parent(w, path, err) < 0)
		return -1;
	if (size > (uint64_t)INT64_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "layer writer: %s: size too large", path);
	if (ocil_strmap_get(&w->dirs, path, NULL))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "layer writer: %s: a file where a directory was added", path);
	struct archive_entry *e = new_entry(w, path, AE_IFREG, mode);
	archive_entry_set_size(e, (la_int64_t)size);
	uint64_t index = w->entries;
	int64_t mtime = (int64_t)archive_entry_mtime(e);
	if (write_header(w, e, path, err) < 0)
		return -1;
	w->in_fact = w->facts != NULL && ocil_pyc_facts_wants(path);
	if (w->in_fact)
		ocil_pyc_facts_add(w->facts, path, index, mtime, size);
	free(w->file_path);
	w->file_path = ocil_xstrdup(path);
	w->file_size = size;
	w->file_written = 0;
	w->state = ST_IN_FILE;
	return 0;
}

int ocil_layer_writer_write(ocil_layer_writer *w, const void *buf, size_t len, ocil_error **err)
{
	if (check_state(w, ST_IN_FILE, err) < 0)
		return -1;
	if (len > w->file_size - w->file_written) {
		ocil_error_set(err, OCIL_E_IO,
			       "layer writer: %s: more data than the declared %llu bytes",
			       w->file_path, (unsigned long long)w->file_size);
		return fail(w);
	}
	const char *p = buf;
	if (w->in_fact)
		ocil_pyc_facts_feed(w->facts, buf, len);
	while (len > 0) {
		la_ssize_t n = archive_write_data(w->a, p, len);
		if (n <= 0)
			return archive_fail(w, w->file_path, err);
		p += n;
		len -= (size_t)n;
		w->file_written += (uint64_t)n;
	}
	return 0;
}

int ocil_layer_writer_end_file(ocil_layer_writer *w, ocil_error **err)
{
	if (check_state(w, ST_IN_FILE, err) < 0)
		return -1;
	if (w->file_written != w->file_size) {
		ocil_error_set(err, OCIL_E_IO,
			       "layer writer: %s: declared %llu bytes but %llu were written",
			       w->file_path, (unsigned long long)w->file_size,
			       (unsigned long long)w->file_written);
		return fail(w);
	}
	if (archive_write_finish_entry(w->a) < ARCHIVE_WARN)
		return archive_fail(w, w->file_path, err);
	w->state = ST_IDLE;
	return 0;
}

int ocil_layer_writer_add_file(ocil_layer_writer *w, const char *path, mode_t mode, const void *buf,
			       size_t len, ocil_error **err)
{
	if (ocil_layer_writer_begin_file(w, path, mode, len, err) < 0 ||
	    ocil_layer_writer_write(w, buf, len, err) < 0)
		return -1;
	return ocil_layer_writer_end_file(w, err);
}

int ocil_layer_writer_add_fd(ocil_layer_writer *w, const char *path, mode_t mode, int fd,
			     uint64_t size, const char *what, const ocil_cancel *cancel,
			     ocil_error **err)
{
	if (ocil_layer_writer_begin_file(w, path, mode, size, err) < 0)
		return -1;
	cleanup_free char *buf = ocil_xmalloc(COPY_BUF_SIZE);
	uint64_t left = size;
	for (;;) {
		if (ocil_cancel_check(cancel, err) < 0)
			return fail(w);
		/* read one byte past the end to notice a file that grew */
		size_t want = left < COPY_BUF_SIZE ? (size_t)left + 1 : COPY_BUF_SIZE;
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", what);
			return fail(w);
		}
		if ((uint64_t)n > left || (n == 0 && left > 0)) {
			ocil_error_set(err, OCIL_E_IO, "%s: changed while it was being read", what);
			return fail(w);
		}
		if (n == 0)
			break;
		if (ocil_layer_writer_write(w, buf, (size_t)n, err) < 0)
			return -1;
		left -= (uint64_t)n;
	}
	return ocil_layer_writer_end_file(w, err);
}

int ocil_layer_writer_add_parents(ocil_layer_writer *w, const char *path, ocil_error **err)
{
	if (check_state(w, ST_IDLE, err) < 0 || check_path(path, err) < 0)
		return -1;
	cleanup_free char *p = ocil_xstrdup(path);
	for (char *s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		int r = ocil_layer_writer_add_dir(w, p, 0755, err);
		*s = '/';
		if (r < 0)
			return -1;
	}
	return 0;
}

int ocil_layer_writer_finish(ocil_layer_writer *w, ocil_layer_result *res, ocil_error **err)
{
	if (check_state(w, ST_IDLE, err) < 0)
		return -1;
	if (archive_write_close(w->a) != ARCHIVE_OK)
		return archive_fail(w, "closing the tar stream", err);
	ocil_gzip_result g;
	if ((w->zs != NULL ? ocil_zstd_blob_finish(w->zs, &g, err)
			   : ocil_gzip_blob_finish(w->gz, &g, err)) < 0) {
		ocil_error_wrap(err, "layer writer");
		return fail(w);
	}
	ocil_layer_result r;
	memset(&r, 0, sizeof(r));
	memcpy(r.digest, g.digest, sizeof(r.digest));
	memcpy(r.diff_id, g.diff_id, sizeof(r.diff_id));
	r.size = g.size;
	r.uncompressed_size = g.raw_size;
	r.entries = w->entries;
	w->state = ST_FINISHED;
	ocil_error *no_index = NULL;
	if (w->index != NULL && ocil_layer_index_writer_commit(w->index, r.digest, &no_index) < 0)
		ocil_error_free(no_index); /* only a cache */
	if (w->facts != NULL)
		ocil_pyc_facts_save(w->facts, w->facts_dir, r.digest);
	if (res != NULL)
		*res = r;
	return 0;
}

void ocil_layer_writer_free(ocil_layer_writer *w)
{
	if (w == NULL)
		return;
	if (w->a != NULL) {
		/* archive_write_free closes (and flushes) an open archive */
		w->discarding = true;
		archive_write_free(w->a);
	}
	ocil_gzip_blob_free(w->gz); /* removes the temp file unless committed */
	ocil_zstd_blob_free(w->zs);
	ocil_layer_index_writer_free(w->index);
	ocil_error_free(w->io_err);
	ocil_strmap_clear(&w->dirs);
	ocil_strmap_clear(&w->links);
	if (w->c_locale != (locale_t)0)
		freelocale(w->c_locale);
	free(w->file_path);
	if (w->facts != NULL)
		ocil_pyc_facts_clear(w->facts);
	free(w->facts);
	free(w->facts_dir);
	free(w);
}

int ocil_layer_writer_set_next_mtime(ocil_layer_writer *w, int64_t mtime)
{
	if (mtime < 0 || mtime > 077777777777LL)
		return -1;
	w->next_mtime = mtime;
	w->next_mtime_set = true;
	return 0;
}

mode_t ocil_layer_file_mode(mode_t st_mode)
{
	if (S_ISDIR(st_mode))
		return 0755;
	if (S_ISLNK(st_mode))
		return 0777;
	return (st_mode & 0111) ? 0755 : 0644;
}

int64_t ocil_layer_writer_mtime(const ocil_layer_writer *w)
{
	return w->mtime;
}
