#include "layers/condapkg.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/json.h"
#include "base/replace.h"
#include "oci/pyc.h"

#define READ_BLOCK ((size_t)64 << 10)
/* conda's text placeholder when info/has_prefix names only the path */
#define LEGACY_PLACEHOLDER "/opt/anaconda1anaconda2anaconda3"

/* conda.gateways.disk.create.python_entry_point_template */
static const char entry_point_template[] =
    "# -*- coding: utf-8 -*-\n"
    "import re\n"
    "import sys\n"
    "\n"
    "from %s import %s\n"
    "\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', "
    "sys.argv[0])\n"
    "    sys.exit(%s())\n";

static void path_clear(ocil_condapkg_path *pp)
{
	free(pp->path);
	free(pp->target);
	free(pp->path_type);
	free(pp->placeholder);
	free(pp->sha256);
	free(pp->sha256_in_prefix);
}

void ocil_condapkg_free(ocil_condapkg *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_paths; i++)
		path_clear(&p->paths[i]);
	free(p->paths);
	free(p->sorted);
	ocil_strv_clear(&p->entry_points);
	json_decref(p->index);
	ocil_pkgfile_close(&p->src);
	free(p->file);
	free(p->fn);
	free(p);
}

static void freep_pkg(ocil_condapkg **p)
{
	ocil_condapkg_free(*p);
}

/* ---- hashes ---- */

int ocil_pkgfile_open(ocil_pkgfile *f, const char *name, ocil_error **err)
{
	f->name = name;
	f->fd = open(name, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", name);
	if (fstat(f->fd, &f->st) < 0) {
		int e = errno;
		ocil_pkgfile_close(f);
		return ocil_error_set_errno(err, OCIL_E_INPUT, e, "%s", name);
	}
	if (!S_ISREG(f->st.st_mode)) {
		ocil_pkgfile_close(f);
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a regular file", name);
	}
	return 0;
}

void ocil_pkgfile_close(ocil_pkgfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int ocil_pkgfile_check(const ocil_pkgfile *f, ocil_error **err)
{
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", f->name);
	if (st.st_dev != f->st.st_dev || st.st_ino != f->st.st_ino || st.st_size != f->st.st_size ||
	    st.st_mtim.tv_sec != f->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != f->st.st_mtim.tv_nsec ||
	    st.st_ctim.tv_sec != f->st.st_ctim.tv_sec ||
	    st.st_ctim.tv_nsec != f->st.st_ctim.tv_nsec)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s was changed or replaced while it was being read",
				      f->name);
	return 0;
}

int ocil_pkgfile_reopen(ocil_pkgfile *f, ocil_error **err)
{
	if (f->fd >= 0)
		return 0;
	f->fd = open(f->name, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", f->name);
	if (ocil_pkgfile_check(f, err) < 0) {
		ocil_pkgfile_close(f);
		return -1;
	}
	return 0;
}

int ocil_pkgfile_hash(const ocil_pkgfile *f, char md5[33], char sha256[65], uint64_t *size,
		      ocil_error **err)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new(), *s = EVP_MD_CTX_new();
	if (m == NULL || s == NULL || EVP_DigestInit_ex(m, EVP_md5(), NULL) != 1 ||
	    EVP_DigestInit_ex(s, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(m);
		EVP_MD_CTX_free(s);
		return ocil_error_set(err, OCIL_E_IO, "%s: cannot set up md5/sha256", f->name);
	}
	cleanup_free unsigned char *buf = ocil_xmalloc(READ_BLOCK);
	int r = 0;
	*size = 0;
	for (;;) {
		ssize_t n = pread(f->fd, buf, READ_BLOCK, (off_t)*size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ocil_error_set_errno(err, OCIL_E_INPUT, errno, "reading %s", f->name);
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(m, buf, (size_t)n);
		EVP_DigestUpdate(s, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dn = 0;
	EVP_DigestFinal_ex(m, d, &dn);
	ocil_hex_encode(d, dn, md5);
	EVP_DigestFinal_ex(s, d, &dn);
	ocil_hex_encode(d, dn, sha256);
	EVP_MD_CTX_free(m);
	EVP_MD_CTX_free(s);
	if (r == 0)
		r = ocil_pkgfile_check(f, err);
	return r;
}

int ocil_hash_file(const char *file, char md5[33], char sha256[65], uint64_t *size,
		   ocil_error **err)
{
	ocil_pkgfile f;
	if (ocil_pkgfile_open(&f, file, err) < 0)
		return -1;
	int r = ocil_pkgfile_hash(&f, md5, sha256, size, err);
	ocil_pkgfile_close(&f);
	return r;
}

int ocil_pkgfile_check_hashes(const char *file, const char *want_md5, const char *want_sha256,
			      const char *md5, const char *sha256, ocil_error **err)
{
	if (want_sha256 != NULL && strcasecmp(want_sha256, sha256) != 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: sha256 mismatch (the lock says %s, the file has %s)",
				      file, want_sha256, sha256);
	if (want_md5 != NULL && strcasecmp(want_md5, md5) != 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: md5 mismatch (the lock says %s, the file has %s)", file,
				      want_md5, md5);
	return 0;
}

static int verify(ocil_condapkg *p, const char *md5, const char *sha256, ocil_error **err)
{
	if (md5 == NULL && sha256 == NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: no md5 or sha256 to check it against",
				      p->file);
	if (ocil_pkgfile_open(&p->src, p->file, err) < 0 ||
	    ocil_pkgfile_hash(&p->src, p->md5, p->sha256, &p->size, err) < 0)
		return -1;
	return ocil_pkgfile_check_hashes(p->file, md5, sha256, p->md5, p->sha256, err);
}

/* ---- archives ---- */

typedef ocil_archive_entry_fn entry_fn;

static int archive_fail(struct archive *a, const char *file, const char *what, ocil_error **err)
{
	const char *s = archive_error_string(a);
	return ocil_error_set(err, OCIL_E_INPUT, "%s: %s: %s", file, what,
			      s ? s : "unknown archive error");
}

static int each_entry(struct archive *a, const char *file, entry_fn fn, void *ud, ocil_error **err)
{
	for (;;) {
		struct archive_entry *ae = NULL;
		int r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_WARN)
			return archive_fail(a, file, "reading", err);
		const char *name = archive_entry_pathname(ae);
		if (name == NULL)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: an entry without a name",
					      file);
		while (name[0] == '.' && name[1] == '/')
			name += 2;
		if (strlen(name) > PATH_MAX)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: an entry name is too long",
					      file);
		if (fn(ud, a, ae, name, err) < 0)
			return -1;
	}
}

static struct archive *new_tar_reader(void)
{
	struct archive *a = archive_read_new();
	if (a == NULL)
		return NULL;
	if (archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_support_filter_bzip2(a) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(a) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

typedef struct {
	struct archive *outer;
	unsigned char buf[READ_BLOCK];
} nested;

static la_ssize_t nested_read(struct archive *a, void *ud, const void **buf)
{
	nested *n = ud;
	la_ssize_t r = archive_read_data(n->outer, n->buf, sizeof(n->buf));
	if (r < 0) {
		const char *s = archive_error_string(n->outer);
		archive_set_error(a, EIO, "%s", s ? s : "zip read error");
		return -1;
	}
	*buf = n->buf;
	return r;
}

/* The tar inside a .conda member, read as it is unzipped. */
static int walk_member(struct archive *outer, const char *file, const char *member, entry_fn fn,
		       void *ud, ocil_error **err)
{
	struct archive *a = new_tar_reader();
	if (a == NULL)
		return ocil_error_set(err, OCIL_E_IO, "%s: cannot set up libarchive", file);
	nested *n = ocil_xmalloc(sizeof(*n));
	n->outer = outer;
	cleanup_free char *what = ocil_xasprintf("%s!%s", file, member);
	int r = 0;
	if (archive_read_open(a, n, NULL, nested_read, NULL) != ARCHIVE_OK)
		r = archive_fail(a, what, "opening", err);
	if (r == 0)
		r = each_entry(a, what, fn, ud, err);
	archive_read_free(a);
	free(n);
	return r;
}

/* Walk the archive a (formats set up) read from f's fd, from its start. */
static int walk_fd(struct archive *a, const ocil_pkgfile *f, entry_fn fn, void *ud,
		   ocil_error **err)
{
	int r = 0;
	if (lseek(f->fd, 0, SEEK_SET) < 0)
		r = ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", f->name);
	else if (archive_read_open_fd(a, f->fd, READ_BLOCK) != ARCHIVE_OK)
		r = archive_fail(a, f->name, "opening", err);
	else
		r = each_entry(a, f->name, fn, ud, err);
	archive_read_free(a); /* leaves the fd open */
	if (r == 0)
		r = ocil_pkgfile_check(f, err);
	return r;
}

int ocil_archive_walk_zip(const ocil_pkgfile *f, ocil_archive_entry_fn fn, void *ud,
			  ocil_error **err)
{
	struct archive *a = archive_read_new();
	if (a == NULL || archive_read_support_format_zip(a) != ARCHIVE_OK) {
		archive_read_free(a);
		return ocil_error_set(err, OCIL_E_IO, "%s: cannot set up libarchive", f->name);
	}
	return walk_fd(a, f, fn, ud, err);
}

typedef struct {
	const ocil_condapkg *p;
	const char *prefix; /* "info-" or "pkg-" */
	entry_fn fn;
	void *ud;
	bool found;
} conda_walk;

/* A member of a .conda: the inner tar we want is walked as it is unzipped. */
static int conda_member(void *ud, struct archive *a, struct archive_entry *ae, const char *name,
			ocil_error **err)
{
	conda_walk *c = ud;
	if (!ocil_str_has_suffix(name, ".tar.zst") || !ocil_str_has_prefix(name, c->prefix))
		return 0;
	c->found = true;
	return walk_member(a, c->p->file, name, c->fn, c->ud, err);
}

static bool is_conda(const ocil_condapkg *p)
{
	return ocil_str_has_suffix(p->fn, ".conda");
}

/* Walk info/ (info true) or the payload of the package. */
static int walk_package(const ocil_condapkg *p, bool info, entry_fn fn, void *ud, ocil_error **err)
{
	if (is_conda(p)) {
		conda_walk c = {.p = p, .prefix = info ? "info-" : "pkg-", .fn = fn, .ud = ud};
		if (ocil_archive_walk_zip(&p->src, conda_member, &c, err) < 0)
			return -1;
		if (!c.found)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: not a .conda package (no %s*.tar.zst)", p->file,
					      c.prefix);
		return 0;
	}
	struct archive *a = new_tar_reader();
	if (a == NULL)
		return ocil_error_set(err, OCIL_E_IO, "%s: cannot set up libarchive", p->file);
	return walk_fd(a, &p->src, fn, ud, err);
}

typedef struct {
	entry_fn fn;
	void *ud;
} outside_info;

static int outside_info_entry(void *ud, struct archive *a, struct archive_entry *ae,
			      const char *name, ocil_error **err)
{
	outside_info *c = ud;
	if (strcmp(name, "info") == 0 || ocil_str_has_prefix(name, "info/"))
		return 0;
	return c->fn(c->ud, a, ae, name, err);
}

/* What conda extracts to install from: a .tar.bz2's tar (its info/ is
 * never listed), a .conda's pkg- tarball then its info- tarball's entries
 * outside info/ (see condapkg.h). */
static int walk_payload(const ocil_condapkg *p, entry_fn fn, void *ud, ocil_error **err)
{
	if (walk_package(p, false, fn, ud, err) < 0)
		return -1;
	if (!is_conda(p))
		return 0;
	outside_info c = {.fn = fn, .ud = ud};
	return walk_package(p, true, outside_info_entry, &c, err);
}

int ocil_archive_read_all(struct archive *a, const char *what, size_t max, char **out, size_t *len,
			  ocil_error **err)
{
	size_t cap = READ_BLOCK, n = 0;
	char *buf = ocil_xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap >= max) {
				free(buf);
				return ocil_error_set(err, OCIL_E_INPUT, "%s: larger than %zu MiB",
						      what, max >> 20);
			}
			cap = cap * 2 > max ? max : cap * 2;
			buf = ocil_xrealloc(buf, cap + 1);
		}
		la_ssize_t r = archive_read_data(a, buf + n, cap - n);
		if (r < 0) {
			free(buf);
			return archive_fail(a, what, "reading", err);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* ---- info/ ---- */

typedef struct {
	ocil_condapkg *p;
	char *index, *paths, *files, *has_prefix, *link;
	size_t index_len, paths_len, link_len;
} info_ctx;

static int info_entry(void *ud, struct archive *a, struct archive_entry *ae, const char *name,
		      ocil_error **err)
{
	info_ctx *c = ud;
	static const char *const names[] = {"info/index.json", "info/paths.json", "info/files",
					    "info/has_prefix", "info/link.json"};
	char **slots[] = {&c->index, &c->paths, &c->files, &c->has_prefix, &c->link};
	size_t dummy = 0;
	size_t *lens[] = {&c->index_len, &c->paths_len, &dummy, &dummy, &c->link_len};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) != 0 || archive_entry_filetype(ae) != AE_IFREG)
			continue;
		cleanup_free char *what = ocil_xasprintf("%s: %s", c->p->file, name);
		free(*slots[i]);
		*slots[i] = NULL;
		return ocil_archive_read_all(a, what, OCIL_CONDAPKG_MAX_INFO, slots[i], lens[i],
					     err);
	}
	return 0;
}

bool ocil_condapkg_valid_rel(const char *s)
{
	if (s[0] == '\0' || s[0] == '/' || strlen(s) > PATH_MAX)
		return false;
	for (const char *c = s;;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 2 && c[0] == '.' && c[1] == '.') || (n == 1 && c[0] == '.'))
			return false;
		if (c[n] == '\0')
			return true;
		c += n + 1;
	}
}

static ocil_condapkg_path *add_path(ocil_condapkg *p, const char *path, ocil_error **err)
{
	if (!ocil_condapkg_valid_rel(path)) {
		ocil_error_set(err, OCIL_E_INPUT, "%s: path \"%.300s\" escapes the prefix", p->file,
			       path);
		return NULL;
	}
	if (p->n_paths >= OCIL_CONDAPKG_MAX_PATHS) {
		ocil_error_set(err, OCIL_E_INPUT, "%s: more than %d paths", p->file,
			       OCIL_CONDAPKG_MAX_PATHS);
		return NULL;
	}
	p->paths = ocil_xrealloc(p->paths, (p->n_paths + 1) * sizeof(*p->paths));
	ocil_condapkg_path *pp = &p->paths[p->n_paths++];
	memset(pp, 0, sizeof(*pp));
	pp->path = ocil_xstrdup(path);
	pp->path_type = ocil_xstrdup("hardlink");
	pp->size = -1;
	return pp;
}

static int paths_from_json(ocil_condapkg *p, const char *buf, size_t len, ocil_error **err)
{
	cleanup_free char *what = ocil_xasprintf("%s: info/paths.json", p->file);
	cleanup_json json_t *j = NULL;
	if (ocil_json_parse_max(buf, len, OCIL_CONDAPKG_MAX_INFO, what, &j, err) < 0)
		return -1;
	const json_t *paths = json_object_get(j, "paths");
	if (!json_is_array(paths))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: no \"paths\" list", what);
	size_t i;
	const json_t *e;
	json_array_foreach(paths, i, e)
	{
		const char *path = ocil_json_opt_string(e, "_path");
		if (path == NULL)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: paths[%zu] has no \"_path\"",
					      what, i);
		ocil_condapkg_path *pp = add_path(p, path, err);
		if (pp == NULL)
			return -1;
		const char *type = ocil_json_opt_string(e, "path_type");
		const char *ph = ocil_json_opt_string(e, "prefix_placeholder");
		const char *mode = ocil_json_opt_string(e, "file_mode");
		const char *sha = ocil_json_opt_string(e, "sha256");
		const json_t *size = json_object_get(e, "size_in_bytes");
		if (type != NULL) {
			free(pp->path_type);
			pp->path_type = ocil_xstrdup(type);
		}
		if (ph != NULL && ph[0] != '\0') {
			if (strlen(ph) > OCIL_REPLACE_MAX)
				return ocil_error_set(err, OCIL_E_INPUT,
						      "%s: %s: prefix_placeholder too long", what,
						      path);
			pp->placeholder = ocil_xstrdup(ph);
			pp->binary = mode != NULL && strcmp(mode, "binary") == 0;
			if (mode != NULL && !pp->binary && strcmp(mode, "text") != 0)
				return ocil_error_set(err, OCIL_E_INPUT,
						      "%s: %s: unknown file_mode \"%.50s\"", what,
						      path, mode);
		}
		if (sha != NULL && strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64)
			pp->sha256 = ocil_xstrdup(sha);
		if (json_is_integer(size) && json_integer_value(size) >= 0)
			pp->size = json_integer_value(size);
	}
	return 0;
}

/* Older packages: info/files, with info/has_prefix lines
 * "<placeholder> <text|binary> <path>" or just "<path>". */
static int paths_from_files(ocil_condapkg *p, char *files, char *has_prefix, ocil_error **err)
{
	for (char *s = files, *next; s != NULL && *s; s = next) {
		next = strchr(s, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (s[0] != '\0' && add_path(p, s, err) == NULL)
			return -1;
	}
	for (char *s = has_prefix, *next; s != NULL && *s; s = next) {
		next = strchr(s, '\n');
		if (next != NULL)
			*next++ = '\0';
		char *f[3] = {NULL};
		int n = 0;
		for (char *t = strtok(s, " \t"); t != NULL && n < 3; t = strtok(NULL, " \t"))
			f[n++] = t;
		if (n == 0)
			continue;
		const char *ph = n == 3 ? f[0] : LEGACY_PLACEHOLDER;
		const char *path = n == 3 ? f[2] : f[0];
		for (size_t i = 0; i < p->n_paths; i++)
			if (strcmp(p->paths[i].path, path) == 0) {
				free(p->paths[i].placeholder);
				p->paths[i].placeholder = ocil_xstrdup(ph);
				p->paths[i].binary = n == 3 && strcmp(f[1], "binary") == 0;
			}
	}
	return 0;
}

static int read_index(ocil_condapkg *p, const char *buf, size_t len, ocil_error **err)
{
	cleanup_free char *what = ocil_xasprintf("%s: info/index.json", p->file);
	if (buf == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: not a conda package (no "
				      "info/index.json)",
				      p->file);
	if (ocil_json_parse_max(buf, len, OCIL_CONDAPKG_MAX_INFO, what, &p->index, err) < 0)
		return -1;
	if (!json_is_object(p->index))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not an object", what);
	if (ocil_json_get_string(p->index, "name", what, &p->name, err) < 0 ||
	    ocil_json_get_string(p->index, "version", what, &p->version, err) < 0 ||
	    ocil_json_get_string(p->index, "build", what, &p->build, err) < 0)
		return -1;
	p->subdir = ocil_json_opt_string(p->index, "subdir");
	const char *noarch = ocil_json_opt_string(p->index, "noarch");
	p->noarch_python = noarch != NULL && strcmp(noarch, "python") == 0;
	return 0;
}

/* info/link.json: {"noarch": {"type": "python", "entry_points": [...]}} */
static int read_link(ocil_condapkg *p, const char *buf, size_t len, ocil_error **err)
{
	if (buf == NULL)
		return 0;
	cleanup_free char *what = ocil_xasprintf("%s: info/link.json", p->file);
	cleanup_json json_t *j = NULL;
	if (ocil_json_parse_max(buf, len, OCIL_CONDAPKG_MAX_INFO, what, &j, err) < 0)
		return -1;
	const json_t *na = json_object_get(j, "noarch");
	const char *type = ocil_json_opt_string(na, "type");
	if (type != NULL && strcmp(type, "python") == 0)
		p->noarch_python = true;
	const json_t *eps = json_object_get(na, "entry_points");
	size_t i;
	const json_t *e;
	json_array_foreach(eps, i, e)
	{
		const char *s = json_string_value(e);
		const char *eq = s ? strchr(s, '=') : NULL;
		const char *colon = eq ? strchr(eq, ':') : NULL;
		if (colon == NULL)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: entry point %zu is not \"name = module:func\"",
					      what, i);
		ocil_strv_push(&p->entry_points, ocil_xstrdup(s));
	}
	return 0;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* "name = module:func" -> name, module, func (in place). */
static bool split_entry_point(char *s, char **name, char **module, char **func)
{
	char *eq = strchr(s, '=');
	char *colon = eq ? strchr(eq, ':') : NULL;
	if (colon == NULL)
		return false;
	*eq = '\0';
	*colon = '\0';
	*name = trim(s);
	*module = trim(eq + 1);
	*func = trim(colon + 1);
	return (*name)[0] != '\0' && (*module)[0] != '\0' && (*func)[0] != '\0' &&
	       strchr(*name, '/') == NULL;
}

/* Targets: noarch: python paths moved, entry points added. */
static int map_targets(ocil_condapkg *p, const char *minor, ocil_error **err)
{
	if (p->noarch_python && minor == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s is noarch: python but the lock has no python package",
				      p->file);
	for (size_t i = 0; i < p->n_paths; i++) {
		ocil_condapkg_path *pp = &p->paths[i];
		const char *s = pp->path;
		if (p->noarch_python && ocil_str_has_prefix(s, "site-packages/"))
			pp->target = ocil_xasprintf("lib/python%s/%s", minor, s);
		else if (p->noarch_python && ocil_str_has_prefix(s, "python-scripts/"))
			pp->target = ocil_xasprintf("bin/%s", s + strlen("python-scripts/"));
		else
			pp->target = ocil_xstrdup(s);
	}
	for (size_t i = 0; i < p->entry_points.n; i++) {
		cleanup_free char *ep = ocil_xstrdup(p->entry_points.v[i]);
		char *name, *module, *func;
		if (!split_entry_point(ep, &name, &module, &func))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: entry point \"%.200s\" is not \"name = "
					      "module:func\"",
					      p->file, p->entry_points.v[i]);
		cleanup_free char *target = ocil_xasprintf("bin/%s", name);
		ocil_condapkg_path *pp = add_path(p, target, err);
		if (pp == NULL)
			return -1;
		pp->target = ocil_xstrdup(target);
		free(pp->path_type);
		pp->path_type = ocil_xstrdup("unix_python_entry_point");
	}
	return 0;
}

static int by_path(const void *a, const void *b, void *ud)
{
	const ocil_condapkg *p = ud;
	return strcmp(p->paths[*(const size_t *)a].path, p->paths[*(const size_t *)b].path);
}

static int open_pkg(ocil_condapkg *p, const char *md5, const char *sha256, ocil_error **err)
{
	if (!ocil_str_has_suffix(p->fn, ".conda") && !ocil_str_has_suffix(p->fn, ".tar.bz2"))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: not a conda package (want .conda or .tar.bz2)", p->file);
	if (verify(p, md5, sha256, err) < 0)
		return -1;
	info_ctx c = {.p = p};
	int r = walk_package(p, true, info_entry, &c, err);
	if (r == 0)
		r = read_index(p, c.index, c.index_len, err);
	if (r == 0 && c.paths != NULL)
		r = paths_from_json(p, c.paths, c.paths_len, err);
	else if (r == 0)
		r = paths_from_files(p, c.files, c.has_prefix, err);
	if (r == 0)
		r = read_link(p, c.link, c.link_len, err);
	free(c.index);
	free(c.paths);
	free(c.files);
	free(c.has_prefix);
	free(c.link);
	return r;
}

int ocil_condapkg_map(ocil_condapkg *p, const char *minor, ocil_error **err)
{
	if (p->sorted != NULL)
		return 0;
	if (map_targets(p, minor, err) < 0)
		return -1;
	/* lookups by package path, for the payload walk (entry points are
	 * not in the payload) */
	p->sorted = ocil_xcalloc(p->n_paths + 1, sizeof(size_t));
	for (size_t i = 0; i < p->n_paths; i++)
		if (strcmp(p->paths[i].path_type, "unix_python_entry_point") != 0)
			p->sorted[p->n_sorted++] = i;
	qsort_r(p->sorted, p->n_sorted, sizeof(size_t), by_path, p);
	return 0;
}

int ocil_condapkg_open(const char *file, const char *md5, const char *sha256, ocil_condapkg **out,
		       ocil_error **err)
{
	const char *slash = strrchr(file, '/');
	return ocil_condapkg_open_as(file, slash ? slash + 1 : file, md5, sha256, out, err);
}

int ocil_condapkg_open_as(const char *file, const char *fn, const char *md5, const char *sha256,
			  ocil_condapkg **out, ocil_error **err)
{
	__attribute__((cleanup(freep_pkg))) ocil_condapkg *p = ocil_xcalloc(1, sizeof(*p));
	p->src.fd = -1;
	p->file = ocil_xstrdup(file);
	p->fn = ocil_xstrdup(fn);
	if (open_pkg(p, md5, sha256, err) < 0)
		return -1;
	ocil_pkgfile_close(&p->src); /* reopened (and checked) to install */
	*out = p;
	p = NULL;
	return 0;
}

static ocil_condapkg_path *find_path(ocil_condapkg *p, const char *path)
{
	size_t lo = 0, hi = p->n_sorted;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->paths[p->sorted[mid]].path, path);
		if (c == 0)
			return &p->paths[p->sorted[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Whether the package ships bytecode for the python source at path
 * (dir/__pycache__/stem.<tag>[.opt-N].pyc in its paths). */
static bool ships_bytecode(const ocil_condapkg *p, const char *path)
{
	size_t n = strlen(path);
	if (n < 4 || strcmp(path + n - 3, ".py") != 0)
		return false;
	const char *slash = strrchr(path, '/');
	const char *stem = slash ? slash + 1 : path;
	size_t dl = (size_t)(stem - path), sl = (size_t)(path + n - 3 - stem);
	cleanup_free char *want =
	    ocil_xasprintf("%.*s__pycache__/%.*s.", (int)dl, path, (int)sl, stem);
	size_t lo = 0, hi = p->n_sorted, wl = strlen(want);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(p->paths[p->sorted[mid]].path, want) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < p->n_sorted; lo++) {
		const char *q = p->paths[p->sorted[lo]].path;
		if (strncmp(q, want, wl) != 0)
			return false;
		if (strchr(q + wl - sl - 1, '/') == NULL &&
		    ocil_pyc_name_is_for(q + wl - sl - 1, stem, sl))
			return true;
	}
	return false;
}

/* ---- install ---- */

typedef struct {
	ocil_condapkg *p;
	const ocil_condapkg_install_opts *o;
	ocil_layer_writer *w;
	ocil_hasher *h; /* of the file being written, when it is relocated */
	/* hardlinks met in the payload: their paths and what they link to */
	ocil_condapkg_path **links;
	ocil_strv link_sources;
} install_ctx;

static int out_sink(void *ud, const void *buf, size_t len, ocil_error **err)
{
	install_ctx *c = ud;
	if (c->h != NULL)
		ocil_hasher_update(c->h, buf, len);
	return ocil_layer_writer_write(c->w, buf, len, err);
}

static void finish_hash(install_ctx *c, ocil_condapkg_path *pp)
{
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(c->h, d);
	ocil_hasher_free(c->h);
	c->h = NULL;
	free(pp->sha256_in_prefix);
	pp->sha256_in_prefix = ocil_xstrdup(ocil_digest_hex(d));
}

/* After a file's data (rc: how it went): flush and free the replacer (may
 * be NULL), note the hash of what was written, close the entry. */
static int end_file(install_ctx *c, ocil_replacer *r, ocil_condapkg_path *pp, int rc,
		    const char *what, ocil_error **err)
{
	if (rc == 0 && r != NULL)
		rc = ocil_replacer_finish(r, err);
	ocil_replacer_free(r);
	if (rc == 0 && c->h != NULL)
		finish_hash(c, pp);
	ocil_hasher_free(c->h);
	c->h = NULL;
	if (rc == 0)
		rc = ocil_layer_writer_end_file(c->w, err);
	return rc < 0 ? ocil_error_wrap(err, "%s", what) : 0;
}

/* The replacer for pp's placeholder: text, or binary with the
 * placeholder's length as the room (a longer dest names both lengths). */
static int new_replacer(const ocil_condapkg_path *pp, const char *dest, ocil_replace_sink sink,
			void *ud, ocil_replacer **r, ocil_error **err)
{
	if (pp->binary)
		return ocil_replacer_new_padded(pp->placeholder, dest, strlen(pp->placeholder),
						sink, ud, r, err);
	return ocil_replacer_new(OCIL_REPLACE_TEXT, pp->placeholder, dest, sink, ud, r, err);
}

/* A whole file from memory, its placeholder (if any) replaced. */
static int write_buf(install_ctx *c, ocil_condapkg_path *pp, const char *path, mode_t mode,
		     const char *buf, size_t len, const char *what, ocil_error **err)
{
	if (pp->placeholder == NULL)
		return ocil_layer_writer_add_file(c->w, path, mode, buf, len, err);
	ocil_replacer *r = NULL;
	/* counting pass: the tar header needs the new size first */
	if (new_replacer(pp, c->o->dest, NULL, NULL, &r, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	int rc = ocil_replacer_feed(r, buf, len, err);
	if (rc == 0)
		rc = ocil_replacer_finish(r, err);
	uint64_t size = ocil_replacer_output_size(r);
	ocil_replacer_free(r);
	r = NULL;
	if (rc == 0)
		rc = new_replacer(pp, c->o->dest, out_sink, c, &r, err);
	if (rc == 0)
		rc = ocil_layer_writer_begin_file(c->w, path, mode, size, err);
	c->h = rc == 0 ? ocil_hasher_new() : NULL;
	if (rc == 0)
		rc = ocil_replacer_feed(r, buf, len, err);
	return end_file(c, r, pp, rc, what, err);
}

/* Text placeholder: the size changes, so the file is held in memory
 * (capped). */
static int add_text(install_ctx *c, struct archive *a, ocil_condapkg_path *pp, const char *path,
		    mode_t mode, const char *what, ocil_error **err)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_archive_read_all(a, what, OCIL_CONDAPKG_MAX_TEXT, &buf, &len, err) < 0)
		return -1;
	return write_buf(c, pp, path, mode, buf, len, what, err);
}

/* A binary placeholder keeps the size: streamed through the replacer; any
 * other file is copied as it is read. */
static int add_stream(install_ctx *c, struct archive *a, struct archive_entry *ae,
		      ocil_condapkg_path *pp, const char *path, mode_t mode, const char *what,
		      ocil_error **err)
{
	if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: no size in the archive", what);
	uint64_t size = (uint64_t)archive_entry_size(ae);
	ocil_replacer *r = NULL;
	if (pp->placeholder != NULL && new_replacer(pp, c->o->dest, out_sink, c, &r, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	int rc = ocil_layer_writer_begin_file(c->w, path, mode, size, err);
	c->h = rc == 0 && r != NULL ? ocil_hasher_new() : NULL;
	cleanup_free unsigned char *buf = ocil_xmalloc(READ_BLOCK);
	while (rc == 0) {
		if ((rc = ocil_cancel_check(c->o->cancel, err)) < 0)
			break;
		la_ssize_t n = archive_read_data(a, buf, READ_BLOCK);
		if (n < 0)
			rc = archive_fail(a, what, "reading", err);
		if (n <= 0)
			break;
		rc = r != NULL ? ocil_replacer_feed(r, buf, (size_t)n, err)
			       : ocil_layer_writer_write(c->w, buf, (size_t)n, err);
	}
	return end_file(c, r, pp, rc, what, err);
}

static int install_entry(void *ud, struct archive *a, struct archive_entry *ae, const char *name,
			 ocil_error **err)
{
	install_ctx *c = ud;
	ocil_condapkg_path *pp = find_path(c->p, name);
	if (pp == NULL || pp->done)
		return 0; /* not listed (e.g. info/ of a .tar.bz2): conda leaves it out */
	pp->done = true;
	if (pp->clobbered)
		return 0;
	cleanup_free char *path = ocil_xasprintf("%s/%s", c->o->dest, pp->target);
	cleanup_free char *what = ocil_xasprintf("%s: %s", c->p->fn, name);
	if (ocil_layer_writer_add_parents(c->w, path, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	mode_t mode = ocil_layer_file_mode(archive_entry_mode(ae));
	if (archive_entry_hardlink(ae) != NULL) {
		/* its data comes with the entry it links to: a second pass */
		const char *src = archive_entry_hardlink(ae);
		while (src[0] == '.' && src[1] == '/')
			src += 2;
		c->links = ocil_xrealloc(c->links, (c->link_sources.n + 1) * sizeof(*c->links));
		c->links[c->link_sources.n] = pp;
		ocil_strv_push(&c->link_sources, ocil_xstrdup(src));
		return 0;
	}
	switch (archive_entry_filetype(ae)) {
	case AE_IFDIR:
		return ocil_layer_writer_add_dir(c->w, path, mode, err);
	case AE_IFLNK:
		if (ocil_layer_writer_add_symlink(c->w, path, archive_entry_symlink(ae), err) < 0)
			return ocil_error_wrap(err, "%s", what);
		return 0;
	case AE_IFREG:
		/* a source keeps the mtime its shipped bytecode was compiled
		 * against, as conda's extraction keeps it (pyc.h) */
		if (pp->placeholder == NULL && ships_bytecode(c->p, name))
			ocil_layer_writer_set_next_mtime(c->w, (int64_t)archive_entry_mtime(ae));
		if (pp->placeholder != NULL && !pp->binary)
			return add_text(c, a, pp, path, mode, what, err);
		return add_stream(c, a, ae, pp, path, mode, what, err);
	default:
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a file, directory or symlink",
				      what);
	}
}

static int write_entry_point(install_ctx *c, ocil_condapkg_path *pp, const char *spec,
			     ocil_error **err)
{
	cleanup_free char *s = ocil_xstrdup(spec);
	char *name, *module, *func;
	split_entry_point(s, &name, &module, &func); /* checked when opened */
	cleanup_free char *import = ocil_xstrndup(func, strcspn(func, "."));
	cleanup_free char *body = ocil_xasprintf(entry_point_template, module, import, func);
	cleanup_free char *script =
	    ocil_xasprintf("#!%s/bin/python%s\n%s", c->o->dest, c->o->python_minor, body);
	cleanup_free char *path = ocil_xasprintf("%s/%s", c->o->dest, pp->target);
	pp->done = true;
	if (ocil_layer_writer_add_parents(c->w, path, err) < 0 ||
	    ocil_layer_writer_add_file(c->w, path, 0755, script, strlen(script), err) < 0)
		return ocil_error_wrap(err, "%s: entry point %s", c->p->fn, name);
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(script, strlen(script), d);
	pp->sha256 = ocil_xstrdup(ocil_digest_hex(d));
	pp->size = (int64_t)strlen(script);
	return 0;
}

/* Second pass: the hardlinks get the data of the entries they link to
 * (held in memory, capped like a text file). */
static int link_entry(void *ud, struct archive *a, struct archive_entry *ae, const char *name,
		      ocil_error **err)
{
	install_ctx *c = ud;
	if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae) != NULL)
		return 0;
	cleanup_free char *buf = NULL;
	size_t len = 0;
	mode_t mode = ocil_layer_file_mode(archive_entry_mode(ae));
	for (size_t i = 0; i < c->link_sources.n; i++) {
		if (strcmp(c->link_sources.v[i], name) != 0)
			continue;
		ocil_condapkg_path *pp = c->links[i];
		cleanup_free char *what = ocil_xasprintf("%s: %s", c->p->fn, pp->path);
		if (buf == NULL &&
		    ocil_archive_read_all(a, what, OCIL_CONDAPKG_MAX_TEXT, &buf, &len, err) < 0)
			return -1;
		cleanup_free char *path = ocil_xasprintf("%s/%s", c->o->dest, pp->target);
		if (write_buf(c, pp, path, mode, buf, len, what, err) < 0)
			return -1;
		free(c->link_sources.v[i]);
		c->link_sources.v[i] = ocil_xstrdup(""); /* done */
	}
	return 0;
}

static int install(install_ctx *c, ocil_error **err)
{
	if (walk_payload(c->p, install_entry, c, err) < 0)
		return -1;
	if (c->link_sources.n > 0 && walk_payload(c->p, link_entry, c, err) < 0)
		return -1;
	for (size_t i = 0; i < c->link_sources.n; i++)
		if (c->link_sources.v[i][0] != '\0')
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: %s is a hardlink to %s, which is not in the "
					      "package",
					      c->p->file, c->links[i]->path, c->link_sources.v[i]);
	return 0;
}

/* A listed path the package lacks: left out with a warning (conda's
 * default safety_checks: warn), or an error when strict. */
static int missing_path(ocil_condapkg *p, ocil_condapkg_path *pp,
			const ocil_condapkg_install_opts *o, size_t *n, ocil_error **err)
{
	if (o->strict)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: info/paths.json lists %s, which is not in the package",
				      p->file, pp->path);
	pp->missing = true;
	if (o->warnings != NULL && (*n)++ < OCIL_CONDAPKG_MAX_MISSING)
		ocil_strv_push(o->warnings,
			       ocil_xasprintf("%s: info/paths.json lists %s, which is not in the "
					      "package; left out",
					      p->fn, pp->path));
	return 0;
}

int ocil_condapkg_install(ocil_condapkg *p, const ocil_condapkg_install_opts *o,
			  ocil_layer_writer *w, ocil_error **err)
{
	install_ctx c = {.p = p, .o = o, .w = w};
	int r = ocil_pkgfile_reopen(&p->src, err);
	if (r == 0)
		r = install(&c, err);
	ocil_pkgfile_close(&p->src);
	free(c.links);
	ocil_strv_clear(&c.link_sources);
	if (r < 0)
		return -1;
	size_t ep = 0, missing = 0;
	for (size_t i = 0; i < p->n_paths; i++) {
		ocil_condapkg_path *pp = &p->paths[i];
		bool is_ep = strcmp(pp->path_type, "unix_python_entry_point") == 0;
		const char *spec = is_ep ? p->entry_points.v[ep++] : NULL;
		if (pp->done || pp->clobbered)
			continue;
		if (is_ep) {
			if (o->python_minor == NULL)
				return ocil_error_set(err, OCIL_E_INPUT,
						      "%s: entry points need a python package",
						      p->file);
			if (write_entry_point(&c, pp, spec, err) < 0)
				return -1;
			continue;
		}
		if (strcmp(pp->path_type, "directory") == 0) {
			cleanup_free char *path = ocil_xasprintf("%s/%s", o->dest, pp->target);
			if (ocil_layer_writer_add_parents(w, path, err) < 0 ||
			    ocil_layer_writer_add_dir(w, path, 0755, err) < 0)
				return -1;
			pp->done = true;
			continue;
		}
		if (missing_path(p, pp, o, &missing, err) < 0)
			return -1;
	}
	if (missing > OCIL_CONDAPKG_MAX_MISSING && o->warnings != NULL)
		ocil_strv_push(o->warnings,
			       ocil_xasprintf("%s: %zu more paths info/paths.json lists are not in "
					      "the package; left out",
					      p->fn, missing - OCIL_CONDAPKG_MAX_MISSING));
	return 0;
}

/* ---- record ---- */

json_t *ocil_condapkg_record(const ocil_condapkg *p, const char *channel, const char *url,
			     const char *pkgs_dir)
{
	json_t *rec = json_deep_copy(p->index);
	json_t *files = json_array(), *paths = json_array();
	for (size_t i = 0; i < p->n_paths; i++) {
		const ocil_condapkg_path *pp = &p->paths[i];
		if (pp->missing)
			continue;
		json_array_append_new(files, json_string(pp->target));
		json_t *e =
		    json_pack("{s:s, s:s}", "_path", pp->target, "path_type", pp->path_type);
		if (pp->sha256 != NULL)
			json_object_set_new(e, "sha256", json_string(pp->sha256));
		if (pp->size >= 0)
			json_object_set_new(e, "size_in_bytes", json_integer(pp->size));
		if (pp->placeholder != NULL) {
			json_object_set_new(e, "prefix_placeholder", json_string(pp->placeholder));
			json_object_set_new(e, "file_mode",
					    json_string(pp->binary ? "binary" : "text"));
		}
		if (pp->sha256_in_prefix != NULL)
			json_object_set_new(e, "sha256_in_prefix",
					    json_string(pp->sha256_in_prefix));
		json_array_append_new(paths, e);
	}
	cleanup_free char *dist = ocil_xasprintf("%s-%s-%s", p->name, p->version, p->build);
	cleanup_free char *extracted = ocil_xasprintf("%s/%s", pkgs_dir, dist);
	cleanup_free char *tarball = ocil_xasprintf("%s/%s", pkgs_dir, p->fn);
	cleanup_free char *spec = ocil_xasprintf("%s==%s=%s", p->name, p->version, p->build);
	json_object_set_new(rec, "channel", json_string(channel));
	json_object_set_new(rec, "url", json_string(url));
	json_object_set_new(rec, "fn", json_string(p->fn));
	json_object_set_new(rec, "md5", json_string(p->md5));
	json_object_set_new(rec, "sha256", json_string(p->sha256));
	json_object_set_new(rec, "size", json_integer((json_int_t)p->size));
	json_object_set_new(rec, "files", files);
	json_object_set_new(rec, "paths_data",
			    json_pack("{s:o, s:i}", "paths", paths, "paths_version", 1));
	json_object_set_new(rec, "link", json_pack("{s:s, s:i}", "source", extracted, "type", 1));
	json_object_set_new(rec, "extracted_package_dir", json_string(extracted));
	json_object_set_new(rec, "package_tarball_full_path", json_string(tarball));
	json_object_set_new(rec, "requested_spec", json_string(spec));
	if (p->noarch_python)
		json_object_set_new(rec, "package_type", json_string("noarch_python"));
	return rec;
}
