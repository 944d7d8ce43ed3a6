/* tarstream: libarchive reader restricted to tar + gzip/zstd, with entry
 * names normalized and checked before anyone sees them. */
#include "oci/tarstream.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"

/* How much libarchive asks read(2) for at a time. */
#define READ_BLOCK ((size_t)64 << 10)
/* Normalized names may gain a leading "/" over the raw one. */
#define PATH_BUF (OCIL_TAR_NAME_MAX + 2)
#define STR_(x) #x
#define STR(x) STR_(x)

struct ocil_tarstream {
	struct archive *a;
	int own_fd; /* -1 when the caller owns the descriptor */
	char *what;
	/* libarchive converts pax (UTF-8) names to the current locale's
	 * charset; pinning one locale makes the bytes we see independent of
	 * the environment and keeps valid UTF-8 names warning-free */
	locale_t locale;
	bool failed, eof, has_data;
	uint64_t count;
	char path[PATH_BUF];
	char link[PATH_BUF];
	ocil_tar_entry entry;
};

const char *ocil_tar_quote(const char *s, char buf[OCIL_TAR_QUOTE_SIZE])
{
	size_t o = 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (o + 8 >= OCIL_TAR_QUOTE_SIZE - 4 || o >= 200) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '\\' || c == '"') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			/* also escapes UTF-8; names in errors stay plain ASCII */
			o += (size_t)snprintf(buf + o, OCIL_TAR_QUOTE_SIZE - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o] = '\0';
	return buf;
}

const char *ocil_tarstream_what(const ocil_tarstream *ts)
{
	return ts->what;
}

/* Failure with an error of our own (not libarchive's). */
static int fail(ocil_tarstream *ts, ocil_error **err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(ocil_tarstream *ts, ocil_error **err, const char *name, const char *fmt, ...)
{
	ts->failed = true;
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (name != NULL) {
		char q[OCIL_TAR_QUOTE_SIZE];
		ocil_error_set(err, OCIL_E_INPUT, "%s: entry \"%s\": %s", ts->what,
			       ocil_tar_quote(name, q), msg ? msg : "invalid entry");
	} else {
		ocil_error_set(err, OCIL_E_INPUT, "%s: %s", ts->what, msg ? msg : "invalid layer");
	}
	free(msg);
	return -1;
}

/* Translate libarchive's error. Read failures of the file itself are I/O;
 * everything else libarchive reports is about the bytes, i.e. bad input. */
static int archive_fail(ocil_tarstream *ts, ocil_error **err, const char *name)
{
	ts->failed = true;
	const char *m = archive_error_string(ts->a);
	int e = archive_errno(ts->a);
	ocil_code code =
	    (e == EIO || e == EBADF || e == EISDIR || e == ENOMEM) ? OCIL_E_IO : OCIL_E_INPUT;
	if (name != NULL) {
		char q[OCIL_TAR_QUOTE_SIZE];
		return ocil_error_set(err, code, "%s: entry \"%s\": tar: %s", ts->what,
				      ocil_tar_quote(name, q), m ? m : "read failed");
	}
	return ocil_error_set(err, code, "%s: tar: %s", ts->what, m ? m : "read failed");
}

/* libarchive warns when a name is not valid in the locale's charset but
 * still hands over the raw bytes, which is exactly what a runtime would
 * create on disk. Other warnings (malformed pax records, ...) mean the
 * header was not read as written; those are errors. */
static bool charset_warning(struct archive *a)
{
	const char *m = archive_error_string(a);
	return m != NULL &&
	       (strstr(m, "can't be converted") != NULL || strstr(m, "Can't translate") != NULL);
}

/* "./a//b/./c/" -> "/a/b/c"; "./" or "" after stripping -> "/". Returns
 * NULL or why the name is refused. */
static const char *normalize(const char *raw, char out[PATH_BUF])
{
	size_t rawlen = strlen(raw);
	if (rawlen == 0)
		return "empty name";
	if (rawlen > OCIL_TAR_NAME_MAX)
		return "name longer than " STR(OCIL_TAR_NAME_MAX) " bytes";
	size_t o = 0;
	const char *p = raw;
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		if (n == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		/* Refused rather than resolved: a layer has no business
		 * naming a path that way, and resolving it lexically could
		 * differ from what a runtime does through symlinks. */
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return "\"..\" component (path traversal)";
		if (n > OCIL_TAR_COMPONENT_MAX)
			return "path component longer than " STR(OCIL_TAR_COMPONENT_MAX) " bytes";
		out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		p = end;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return NULL;
}

/* See OCIL_TAR_MAX_RATIO. */
static int check_ratio(ocil_tarstream *ts, ocil_error **err)
{
	la_int64_t out = archive_filter_bytes(ts->a, 0);
	la_int64_t in = archive_filter_bytes(ts->a, -1);
	if (out <= 0 || (uint64_t)out <= OCIL_TAR_BOMB_FLOOR || in <= 0)
		return 0;
	if ((uint64_t)out / (uint64_t)in <= OCIL_TAR_MAX_RATIO)
		return 0;
	return fail(ts, err, NULL,
		    "inflates more than %d-fold (%lld compressed bytes gave %lld): refused as a "
		    "decompression bomb",
		    OCIL_TAR_MAX_RATIO, (long long)in, (long long)out);
}

static int open_common(int fd, bool own, const char *what, ocil_tarstream **out, ocil_error **err)
{
	ocil_tarstream *ts = ocil_xcalloc(1, sizeof(*ts));
	ts->own_fd = own ? fd : -1;
	ts->what = ocil_xstrdup(what != NULL ? what : "layer");
	ts->locale = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
	if (ts->locale == (locale_t)0)
		ts->locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (ts->locale == (locale_t)0) {
		int e = errno;
		ocil_tarstream_free(ts);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "%s: C locale", what);
	}
	ts->a = archive_read_new();
	if (ts->a == NULL) {
		ocil_tarstream_free(ts);
		return ocil_error_set(err, OCIL_E_IO, "%s: libarchive: out of memory", what);
	}
	/* The tar reader covers ustar, pax and GNU tar. Only built-in
	 * decompressors: when libarchive lacks a library it would fall back
	 * to running an external program, which a layer must not trigger. */
	if (archive_read_support_format_tar(ts->a) != ARCHIVE_OK ||
	    archive_read_support_filter_none(ts->a) != ARCHIVE_OK ||
	    archive_zlib_version() == NULL ||
	    archive_read_support_filter_gzip(ts->a) != ARCHIVE_OK ||
	    (archive_libzstd_version() != NULL &&
	     archive_read_support_filter_zstd(ts->a) != ARCHIVE_OK)) {
		ocil_error_set(err, OCIL_E_IO, "%s: libarchive lacks tar or built-in gzip support",
			       what);
		ocil_tarstream_free(ts);
		return -1;
	}
	locale_t old = uselocale(ts->locale);
	int r = archive_read_open_fd(ts->a, fd, READ_BLOCK);
	uselocale(old);
	if (r != ARCHIVE_OK) {
		archive_fail(ts, err, NULL);
		ocil_tarstream_free(ts);
		return -1;
	}
	*out = ts;
	return 0;
}

int ocil_tarstream_open_fd(int fd, const char *what, ocil_tarstream **out, ocil_error **err)
{
	return open_common(fd, false, what, out, err);
}

int ocil_tarstream_open_path(const char *path, const char *what, ocil_tarstream **out,
			     ocil_error **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, errno == ENOENT ? OCIL_E_INPUT : OCIL_E_IO, errno,
					    "%s: opening %s", what != NULL ? what : "layer", path);
	/* open_common closes fd through ocil_tarstream_free on failure */
	return open_common(fd, true, what, out, err);
}

int ocil_tarstream_next(ocil_tarstream *ts, const ocil_tar_entry **e, ocil_error **err)
{
	if (ts->failed)
		return ocil_error_set(err, OCIL_E_IO, "%s: unusable after an earlier error",
				      ts->what);
	if (ts->eof)
		return 0;
	/* Skip unread data ourselves, so a bomb is stopped while it inflates
	 * rather than after libarchive has skipped the whole entry. */
	while (ts->has_data) {
		const void *block;
		size_t n;
		la_int64_t off;
		int r = archive_read_data_block(ts->a, &block, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return archive_fail(ts, err, ts->path);
		if (check_ratio(ts, err) < 0)
			return -1;
	}
	ts->has_data = false;
	struct archive_entry *ae = NULL;
	locale_t old = uselocale(ts->locale);
	int r = archive_read_next_header(ts->a, &ae);
	uselocale(old);
	if (r == ARCHIVE_EOF) {
		ts->eof = true;
		return 0;
	}
	/* RETRY means a damaged header libarchive could skip over; we do not
	 * guess what the layer meant. */
	if (r < ARCHIVE_WARN || r == ARCHIVE_RETRY ||
	    (r == ARCHIVE_WARN && !charset_warning(ts->a)))
		/* only a warning comes with a header that belongs to this entry */
		return archive_fail(
		    ts, err, r == ARCHIVE_WARN && ae != NULL ? archive_entry_pathname(ae) : NULL);

	if (check_ratio(ts, err) < 0)
		return -1;
	uint64_t index = ts->count++;
	if (ts->count > OCIL_TAR_MAX_ENTRIES)
		return fail(ts, err, NULL, "more than %llu entries",
			    (unsigned long long)OCIL_TAR_MAX_ENTRIES);
	const char *raw = archive_entry_pathname(ae);
	if (raw == NULL)
		return fail(ts, err, NULL, "entry %llu has no name", (unsigned long long)index);
	const char *why = normalize(raw, ts->path);
	if (why != NULL)
		return fail(ts, err, raw, "%s", why);

	memset(&ts->entry, 0, sizeof(ts->entry));
	ts->entry.path = ts->path;
	ts->entry.index = index;
	ts->entry.mode = archive_entry_mode(ae);
	if (archive_entry_mtime_is_set(ae)) {
		ts->entry.mtime = (int64_t)archive_entry_mtime(ae);
		ts->entry.mtime_nsec = archive_entry_mtime_nsec(ae);
	}
	const char *hardlink = archive_entry_hardlink(ae);
	if (hardlink != NULL) {
		ts->entry.type = OCIL_TAR_HARDLINK;
		why = normalize(hardlink, ts->link);
		if (why != NULL)
			return fail(ts, err, raw, "hardlink target: %s", why);
		if (strcmp(ts->link, "/") == 0)
			return fail(ts, err, raw, "hardlink to the root directory");
		ts->entry.link = ts->link;
		ts->entry.mode = AE_IFREG | (ts->entry.mode & 07777);
	} else {
		switch (archive_entry_filetype(ae)) {
		case AE_IFREG:
			ts->entry.type = OCIL_TAR_FILE;
			break;
		case AE_IFDIR:
			ts->entry.type = OCIL_TAR_DIR;
			break;
		case AE_IFLNK:
			ts->entry.type = OCIL_TAR_SYMLINK;
			break;
		default:
			ts->entry.type = OCIL_TAR_OTHER;
			break;
		}
	}
	if (ts->entry.type != OCIL_TAR_DIR && strcmp(ts->path, "/") == 0)
		return fail(ts, err, raw, "the image root must be a directory");
	if (ts->entry.type == OCIL_TAR_SYMLINK) {
		const char *target = archive_entry_symlink(ae);
		/* a runtime cannot create an empty symlink either */
		if (target == NULL || target[0] == '\0')
			return fail(ts, err, raw, "empty symlink target");
		size_t n = strlen(target);
		if (n > OCIL_TAR_NAME_MAX)
			return fail(ts, err, raw, "symlink target longer than %d bytes",
				    OCIL_TAR_NAME_MAX);
		memcpy(ts->link, target, n + 1);
		ts->entry.link = ts->link;
	}
	if (ts->entry.type == OCIL_TAR_FILE) {
		la_int64_t size = archive_entry_size(ae);
		if (size < 0)
			return fail(ts, err, raw, "negative size");
		/* Check the declared size before any data is inflated: the
		 * whole layer, headers included, stays under the cap. */
		la_int64_t pos = archive_filter_bytes(ts->a, 0);
		if ((uint64_t)size > OCIL_TAR_MAX_BYTES ||
		    (pos > 0 && (uint64_t)pos + (uint64_t)size > OCIL_TAR_MAX_BYTES))
			return fail(ts, err, raw, "layer larger than %llu bytes uncompressed",
				    (unsigned long long)OCIL_TAR_MAX_BYTES);
		ts->entry.size = (uint64_t)size;
		ts->has_data = size > 0;
	}
	*e = &ts->entry;
	return 1;
}

ssize_t ocil_tarstream_read(ocil_tarstream *ts, void *buf, size_t len, ocil_error **err)
{
	if (ts->failed)
		return ocil_error_set(err, OCIL_E_IO, "%s: unusable after an earlier error",
				      ts->what);
	if (!ts->has_data || len == 0)
		return 0;
	la_ssize_t n = archive_read_data(ts->a, buf, len);
	if (n < 0)
		return archive_fail(ts, err, ts->path);
	if (n == 0)
		ts->has_data = false;
	else if (check_ratio(ts, err) < 0)
		return -1;
	return (ssize_t)n;
}

void ocil_tarstream_free(ocil_tarstream *ts)
{
	if (ts == NULL)
		return;
	if (ts->a != NULL)
		archive_read_free(ts->a);
	if (ts->own_fd >= 0)
		close(ts->own_fd);
	if (ts->locale != (locale_t)0)
		freelocale(ts->locale);
	free(ts->what);
	free(ts);
}
