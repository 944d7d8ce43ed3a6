#include "support_tar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "test.h"

char *tpath(const char *rel)
{
	return ocil_xasprintf("%s/%s", ocil_test_tmpdir(), rel);
}

int putn(const char *rel, const void *content, size_t n, mode_t mode)
{
	cleanup_free char *p = tpath(rel);
	cleanup_free char *dir = ocil_xstrdup(p);
	*strrchr(dir, '/') = '\0';
	cleanup_error ocil_error *err = NULL;
	return ocil_mkdir_p(dir, 0755, &err) || ocil_write_file_atomic(p, content, n, &err) ||
	       chmod(p, mode);
}

int sym(const char *target, const char *rel)
{
	cleanup_free char *p = tpath(rel);
	return symlink(target, p);
}

/* Set up entry e for t; its data length (0 for all but files) in *len. */
static int set_entry(struct archive_entry *e, const tent *t, size_t *len)
{
	*len = 0;
	archive_entry_set_pathname(e, t->name);
	archive_entry_set_perm(e, t->mode ? t->mode : t->type == 'd' ? 0755 : 0644);
	switch (t->type) {
	case 'f':
		*len = t->len ? t->len : strlen(t->data);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)*len);
		return 0;
	case 'd':
		archive_entry_set_filetype(e, AE_IFDIR);
		return 0;
	case 'l':
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, t->data);
		return 0;
	case 'h':
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_hardlink(e, t->data);
		return 0;
	case 'c':
		archive_entry_set_filetype(e, AE_IFCHR);
		return 0;
	}
	fprintf(stderr, "mk_tar: %s: unknown type '%c'\n", t->name, t->type);
	return -1;
}

char *mk_tar(const char *fname, const char *filter, int format, const tent *ents, size_t n)
{
	cleanup_free char *path = tpath(fname);
	struct archive *a = archive_write_new();
	int ok = archive_write_set_format(a, format) == ARCHIVE_OK;
	if (ok && filter != NULL) {
		if (strcmp(filter, "gzip") == 0)
			ok = archive_write_add_filter_gzip(a) == ARCHIVE_OK;
		else if (strcmp(filter, "zstd") == 0)
			ok = archive_write_add_filter_zstd(a) == ARCHIVE_OK;
		else if (strcmp(filter, "bzip2") == 0)
			ok = archive_write_add_filter_bzip2(a) == ARCHIVE_OK;
		else
			ok = 0;
	}
	ok = ok && archive_write_open_filename(a, path) == ARCHIVE_OK;
	for (size_t i = 0; ok && i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		size_t len = 0;
		ok = set_entry(e, &ents[i], &len) == 0;
		ok = ok && archive_write_header(a, e) >= ARCHIVE_WARN;
		if (ok && len > 0)
			ok = archive_write_data(a, ents[i].data, len) == (la_ssize_t)len;
		archive_entry_free(e);
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		ok = 0;
	if (!ok) {
		const char *why = archive_error_string(a);
		fprintf(stderr, "mk_tar %s (filter %s): %s\n", fname, filter ? filter : "none",
			why ? why : "failed");
	}
	archive_write_free(a);
	return ok ? steal_pointer(&path) : NULL;
}

char *slurp(ocil_tarstream *ts, size_t step, size_t *len, ocil_error **err)
{
	size_t cap = 1024, n = 0;
	char *buf = ocil_xmalloc(cap);
	for (;;) {
		if (n + step + 1 > cap) {
			cap = (n + step + 1) * 2;
			buf = ocil_xrealloc(buf, cap);
		}
		ssize_t r = ocil_tarstream_read(ts, buf + n, step, err);
		if (r < 0) {
			free(buf);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Fill e from the current header and read its data; 0 or -1. */
static int read_entry(struct archive *a, struct archive_entry *ae, rentry *e)
{
	memset(e, 0, sizeof(*e));
	e->name = ocil_xstrdup(archive_entry_pathname(ae));
	e->type = archive_entry_filetype(ae);
	e->perm = archive_entry_perm(ae);
	e->uid = archive_entry_uid(ae);
	e->gid = archive_entry_gid(ae);
	e->mtime = archive_entry_mtime(ae);
	e->size = (size_t)archive_entry_size(ae);
	if (archive_entry_symlink(ae))
		e->link = ocil_xstrdup(archive_entry_symlink(ae));
	if (archive_entry_hardlink(ae))
		e->link = ocil_xstrdup("HARDLINK");
	e->data = ocil_xmalloc(e->size + 1);
	if (archive_read_data(a, e->data, e->size) != (la_ssize_t)e->size)
		return -1;
	e->data[e->size] = '\0';
	const char *un = archive_entry_uname(ae), *gn = archive_entry_gname(ae);
	if ((un != NULL && *un) || (gn != NULL && *gn)) {
		fprintf(stderr, "%s: has uname/gname\n", e->name);
		return -1;
	}
	return 0;
}

int read_layer(const char *file, rlayer *l)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	int r = archive_read_open_filename(a, file, 65536);
	struct archive_entry *ae;
	while (r == ARCHIVE_OK && (r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		if (l->n == RLAYER_MAX) {
			archive_set_error(a, E2BIG, "more than %d entries", RLAYER_MAX);
			r = ARCHIVE_FATAL;
		} else if (read_entry(a, ae, &l->e[l->n++]) < 0) {
			r = ARCHIVE_FATAL;
		}
	}
	if (r != ARCHIVE_EOF) {
		const char *why = archive_error_string(a);
		fprintf(stderr, "read %s: %s\n", file, why ? why : "failed");
	}
	archive_read_free(a);
	return r == ARCHIVE_EOF ? 0 : -1;
}

const rentry *rlayer_find(const rlayer *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->e[i].name, name) == 0)
			return &l->e[i];
	return NULL;
}

bool rlayer_names_are(const rlayer *l, const char *const *want, size_t n)
{
	bool same = l->n == n;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(l->e[i].name, want[i]) == 0;
	if (!same)
		for (size_t i = 0; i < l->n; i++)
			fprintf(stderr, "  got %s\n", l->e[i].name);
	return same;
}

void rlayer_clear(rlayer *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->e[i].name);
		free(l->e[i].data);
		free(l->e[i].link);
	}
	l->n = 0;
}

int open_layer_writer(ocil_blobstore **bs, ocil_layer_writer **w, ocil_error **err)
{
	cleanup_free char *store = tpath("store");
	return ocil_blobstore_open(store, bs, err) || ocil_layer_writer_new(*bs, NULL, w, err);
}

int finish_read_layer(ocil_blobstore *bs, ocil_layer_writer *w, rlayer *l, ocil_error **err)
{
	ocil_layer_result res;
	if (ocil_layer_writer_finish(w, &res, err) < 0)
		return -1;
	cleanup_free char *blob = ocil_blobstore_path(bs, res.digest);
	if (read_layer(blob, l) < 0)
		return ocil_error_set(err, OCIL_E_IO, "reading back %s", blob);
	if (res.entries != l->n)
		return ocil_error_set(err, OCIL_E_IO, "%s: %zu entries, the writer says %llu", blob,
				      l->n, (unsigned long long)res.entries);
	return 0;
}
