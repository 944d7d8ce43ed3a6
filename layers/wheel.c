#include "layers/wheel.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "base/digest.h"
#include "layers/condapkg.h"
#include "oci/tarstream.h"

#define READ_BLOCK ((size_t)64 << 10)

/* pip._vendor.distlib.scripts.SCRIPT_TEMPLATE */
static const char script_template[] = "# -*- coding: utf-8 -*-\n"
				      "import re\n"
				      "import sys\n"
				      "from %s import %s\n"
				      "if __name__ == '__main__':\n"
				      "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', "
				      "sys.argv[0])\n"
				      "    sys.exit(%s())\n";

void ocil_wheel_free(ocil_wheel *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->n_files; i++) {
		free(w->files[i].src);
		free(w->files[i].target);
		free(w->files[i].hash);
		free(w->files[i].script);
	}
	free(w->files);
	ocil_pkgfile_close(&w->src);
	free(w->file);
	free(w->fn);
	free(w->name);
	free(w->version);
	free(w->py);
	free(w->abi);
	free(w->plat);
	free(w->arch);
	free(w->dist_info);
	free(w);
}

static void freep_wheel(ocil_wheel **w)
{
	ocil_wheel_free(*w);
}

/* ---- tags ---- */

/* "cp311" / "py3" / "py311" -> kind ('c' or 'p'), minor (-1: any 3.x). */
static bool parse_py(const char *t, char *kind, int *minor)
{
	if (strncmp(t, "py3", 3) == 0 || strncmp(t, "cp3", 3) == 0) {
		*kind = t[0] == 'c' ? 'c' : 'p';
		if (t[3] == '\0') {
			*minor = -1;
			return *kind == 'p';
		}
		char *end = NULL;
		long m = strtol(t + 3, &end, 10);
		*minor = (int)m;
		return *end == '\0' && m >= 0 && m < 100;
	}
	return false;
}

static bool in_set(const char *set, bool (*ok)(const char *t, const void *ud), const void *ud)
{
	cleanup_free char *s = ocil_xstrdup(set);
	char *save = NULL;
	for (char *t = strtok_r(s, ".", &save); t != NULL; t = strtok_r(NULL, ".", &save))
		if (ok(t, ud))
			return true;
	return false;
}

typedef struct {
	int minor;
	bool abi3;
} tag_ctx;

static bool py_ok(const char *t, const void *ud)
{
	const tag_ctx *c = ud;
	char kind;
	int m;
	if (!parse_py(t, &kind, &m))
		return false;
	if (kind == 'p')
		return m <= c->minor;
	return m == c->minor || (c->abi3 && m <= c->minor);
}

static bool abi_ok(const char *t, const void *ud)
{
	const tag_ctx *c = ud;
	if (strcmp(t, "none") == 0 || strcmp(t, "abi3") == 0)
		return true;
	char want[16], wantm[16];
	snprintf(want, sizeof(want), "cp3%d", c->minor);
	snprintf(wantm, sizeof(wantm), "cp3%dm", c->minor);
	return strcmp(t, want) == 0 || strcmp(t, wantm) == 0;
}

/* Whether the tag ends in "_<arch>" right after prefix_len bytes. */
static bool arch_after(const char *t, size_t prefix_len, const char *arch)
{
	return t[prefix_len] == '_' && strcmp(t + prefix_len + 1, arch) == 0;
}

/* A decimal of at most 4 digits at *s; advances *s. */
static bool take_num(const char **s, unsigned *v)
{
	size_t k = 0;
	*v = 0;
	for (; isdigit((unsigned char)(*s)[k]) && k < 4; k++)
		*v = *v * 10 + (unsigned)((*s)[k] - '0');
	*s += k;
	return k > 0 && !isdigit((unsigned char)**s);
}

/* One platform tag on arch: 1 with *need {0, 0} for any and linux_<arch>,
 * 1 with the glibc it needs for a manylinux tag of arch (PEP 513, 571,
 * 599, 600), 0 for anything else (another arch, musllinux, macosx...). */
static int plat_need(const char *t, const char *arch, ocil_glibc *need)
{
	static const struct {
		const char *name;
		ocil_glibc glibc;
	} legacy[] = {
	    {"manylinux1", {2, 5}}, {"manylinux2010", {2, 12}}, {"manylinux2014", {2, 17}}};
	*need = (ocil_glibc){0, 0};
	if (strcmp(t, "any") == 0)
		return 1;
	if (ocil_str_has_prefix(t, "linux"))
		return arch_after(t, strlen("linux"), arch);
	for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
		if (ocil_str_has_prefix(t, legacy[i].name) &&
		    arch_after(t, strlen(legacy[i].name), arch)) {
			*need = legacy[i].glibc;
			return 1;
		}
	if (!ocil_str_has_prefix(t, "manylinux_"))
		return 0;
	const char *p = t + strlen("manylinux_");
	ocil_glibc v;
	if (!take_num(&p, &v.major) || *p++ != '_' || !take_num(&p, &v.minor) ||
	    !arch_after(p, 0, arch))
		return 0;
	*need = v;
	return 1;
}

static int glibc_cmp(ocil_glibc a, ocil_glibc b)
{
	if (a.major != b.major)
		return a.major < b.major ? -1 : 1;
	return a.minor < b.minor ? -1 : a.minor > b.minor;
}

bool ocil_wheel_plat_usable(const char *plats, const char *arch, ocil_glibc glibc, ocil_glibc *need)
{
	cleanup_free char *s = ocil_xstrdup(plats);
	char *save = NULL;
	bool ok = false;
	ocil_glibc least = {0, 0};
	for (char *t = strtok_r(s, ".", &save); t != NULL; t = strtok_r(NULL, ".", &save)) {
		ocil_glibc n;
		if (!plat_need(t, arch, &n))
			continue;
		if (n.major != 0 && (least.major == 0 || glibc_cmp(n, least) < 0))
			least = n;
		if (n.major == 0 || glibc.major == 0 || glibc_cmp(n, glibc) <= 0)
			ok = true;
	}
	if (need != NULL)
		*need = least;
	return ok;
}

int ocil_wheel_tags_check_glibc(const ocil_wheel_tags *t, ocil_glibc base, ocil_error **err)
{
	ocil_glibc need;
	if (ocil_wheel_plat_usable(t->plat, t->arch, base, &need))
		return 0;
	return ocil_error_set(err, OCIL_E_INPUT,
			      "%s: built for %s-%s-%s, which needs glibc %u.%u; the base image "
			      "has glibc %u.%u",
			      t->file, t->py, t->abi, t->plat, need.major, need.minor, base.major,
			      base.minor);
}

int ocil_wheel_check_glibc(const ocil_wheel *w, ocil_glibc base, ocil_error **err)
{
	ocil_wheel_tags t = {
	    .file = w->file, .py = w->py, .abi = w->abi, .plat = w->plat, .arch = w->arch};
	return ocil_wheel_tags_check_glibc(&t, base, err);
}

static bool is_tag(const char *t, const void *tag)
{
	return strcmp(t, tag) == 0;
}

/* name-version[-build]-py-abi-plat.whl */
static int parse_name(ocil_wheel *w, const char *minor, const char *arch, ocil_error **err)
{
	cleanup_free char *base = ocil_xstrndup(w->fn, strlen(w->fn) - strlen(".whl"));
	char *part[6];
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(base, "-", &save); t != NULL && n < 6;
	     t = strtok_r(NULL, "-", &save))
		part[n++] = t;
	if (n < 5 || strtok_r(NULL, "-", &save) != NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: not a wheel name (name-version-python-abi-platform.whl)",
				      w->file);
	w->name = ocil_xstrdup(part[0]);
	w->version = ocil_xstrdup(part[1]);
	const char *py = part[n - 3], *abi = part[n - 2], *plat = part[n - 1];
	w->py = ocil_xstrdup(py);
	w->abi = ocil_xstrdup(abi);
	w->plat = ocil_xstrdup(plat);
	w->arch = ocil_xstrdup(arch);
	const char *dot = strchr(minor, '.');
	tag_ctx c = {.minor = dot ? atoi(dot + 1) : 0, .abi3 = in_set(abi, is_tag, "abi3")};
	/* the base's glibc is not known yet: ocil_wheel_check_glibc */
	if (!in_set(py, py_ok, &c) || !in_set(abi, abi_ok, &c) ||
	    !ocil_wheel_plat_usable(plat, arch, (ocil_glibc){0, 0}, NULL))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: built for %s-%s-%s, which python %s on %s can not use",
				      w->file, py, abi, plat, minor, arch);
	return 0;
}

/* ---- contents ---- */

static ocil_wheel_file *add_file(ocil_wheel *w, ocil_error **err)
{
	if (w->n_files >= OCIL_WHEEL_MAX_FILES) {
		ocil_error_set(err, OCIL_E_INPUT, "%s: more than %d files", w->file,
			       OCIL_WHEEL_MAX_FILES);
		return NULL;
	}
	w->files = ocil_xrealloc(w->files, (w->n_files + 1) * sizeof(*w->files));
	ocil_wheel_file *f = &w->files[w->n_files++];
	memset(f, 0, sizeof(*f));
	return f;
}

/* Where a wheel member goes in the prefix. */
static char *target_of(const ocil_wheel *w, const char *src, const char *minor)
{
	const char *data = strstr(src, ".data/");
	if (data != NULL && strchr(src, '/') == data + 5) {
		const char *rest = data + strlen(".data/");
		const char *sub = strchr(rest, '/');
		if (sub != NULL) {
			size_t k = (size_t)(sub - rest);
			if ((k == 7 && strncmp(rest, "purelib", 7) == 0) ||
			    (k == 7 && strncmp(rest, "platlib", 7) == 0))
				return ocil_xasprintf("lib/python%s/site-packages/%s", minor,
						      sub + 1);
			if (k == 7 && strncmp(rest, "scripts", 7) == 0)
				return ocil_xasprintf("bin/%s", sub + 1);
			if (k == 7 && strncmp(rest, "headers", 7) == 0)
				return ocil_xasprintf("include/python%s/%s/%s", minor, w->name,
						      sub + 1);
			if (k == 4 && strncmp(rest, "data", 4) == 0)
				return ocil_xstrdup(sub + 1);
		}
	}
	return ocil_xasprintf("lib/python%s/site-packages/%s", minor, src);
}

/* One CSV field of a RECORD line (pip quotes fields with commas). */
static char *csv_field(char **s)
{
	char *p = *s, *out = p, *start = p;
	if (*p == '"') {
		p++;
		for (;;) {
			if (*p == '\0')
				break;
			if (*p == '"' && p[1] == '"') {
				*out++ = '"';
				p += 2;
				continue;
			}
			if (*p == '"') {
				p++;
				break;
			}
			*out++ = *p++;
		}
		while (*p != '\0' && *p != ',')
			p++;
	} else {
		while (*p != '\0' && *p != ',')
			*out++ = *p++;
	}
	char *next = *p == ',' ? p + 1 : p;
	*out = '\0';
	*s = next;
	return start;
}

typedef struct {
	ocil_wheel *w;
	const char *minor;
	char *record, *entry_points;
	ocil_strv members;
} open_ctx;

static int read_member(open_ctx *c, struct archive *a, const char *name, char **slot,
		       ocil_error **err)
{
	cleanup_free char *what = ocil_xasprintf("%s: %s", c->w->file, name);
	size_t len = 0;
	free(*slot);
	*slot = NULL;
	return ocil_archive_read_all(a, what, OCIL_WHEEL_MAX_META, slot, &len, err);
}

/* "x.dist-info/<file>" at the top: the file's name, else NULL. */
static const char *dist_info_member(const char *name, size_t *dir_len)
{
	const char *slash = strchr(name, '/');
	if (slash == NULL || strchr(slash + 1, '/') != NULL)
		return NULL;
	size_t n = (size_t)(slash - name);
	if (n <= 10 || strncmp(slash - 10, ".dist-info", 10) != 0)
		return NULL;
	*dir_len = n;
	return slash + 1;
}

static int list_member(open_ctx *c, struct archive *a, const char *name, ocil_error **err)
{
	size_t dl = 0;
	const char *di = dist_info_member(name, &dl);
	if (di != NULL && strcmp(di, "RECORD") == 0) {
		if (c->w->dist_info != NULL)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: more than one .dist-info",
					      c->w->file);
		c->w->dist_info = ocil_xstrndup(name, dl);
		return read_member(c, a, name, &c->record, err);
	}
	if (di != NULL && strcmp(di, "entry_points.txt") == 0 &&
	    read_member(c, a, name, &c->entry_points, err) < 0)
		return -1;
	if (di != NULL && (strcmp(di, "RECORD.jws") == 0 || strcmp(di, "RECORD.p7s") == 0 ||
			   strcmp(di, "INSTALLER") == 0))
		return 0; /* signatures of the old RECORD; ours says who installed */
	ocil_strv_push(&c->members, ocil_xstrdup(name));
	return 0;
}

static int list_entry(void *ud, struct archive *a, struct archive_entry *ae, const char *name,
		      ocil_error **err)
{
	open_ctx *c = ud;
	if (!ocil_condapkg_valid_rel(name))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: member \"%.300s\" escapes the prefix",
				      c->w->file, name);
	if (archive_entry_filetype(ae) != AE_IFREG)
		return 0;
	return list_member(c, a, name, err);
}

/* The hash of path in sorted "path\nhash" rows, or NULL. */
static const char *record_lookup(const ocil_strv *rows, const char *path)
{
	size_t lo = 0, hi = rows->n, n = strlen(path);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *row = rows->v[mid];
		int c = strncmp(row, path, n);
		if (c == 0 && row[n] == '\n')
			return row + n + 1;
		/* a row that merely starts with path sorts by its next byte */
		if (c < 0 || (c == 0 && (unsigned char)row[n] < '\n'))
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* RECORD: path,sha256=<b64>,size lines -> each member's hash. */
static int match_record(open_ctx *c, ocil_error **err)
{
	ocil_wheel *w = c->w;
	if (c->record == NULL)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: no <name>.dist-info/RECORD", w->file);
	/* "path\nhash" sorted, for lookups */
	cleanup_strv ocil_strv rows = {0};
	for (char *s = c->record, *next; s != NULL && *s; s = next) {
		next = strchr(s, '\n');
		if (next != NULL)
			*next++ = '\0';
		size_t n = strlen(s);
		if (n > 0 && s[n - 1] == '\r')
			s[n - 1] = '\0';
		char *p = s;
		char *path = csv_field(&p), *hash = csv_field(&p);
		if (path[0] == '\0')
			continue;
		ocil_strv_push(&rows, ocil_xasprintf("%s\n%s", path, hash));
	}
	ocil_strv_sort(&rows);
	int r = 0;
	for (size_t i = 0; r == 0 && i < c->members.n; i++) {
		const char *m = c->members.v[i];
		const char *hash = record_lookup(&rows, m);
		if (hash == NULL || !ocil_str_has_prefix(hash, "sha256=")) {
			r = ocil_error_set(err, OCIL_E_INPUT, "%s: %s has no sha256 in %s/RECORD",
					   w->file, m, w->dist_info);
			break;
		}
		ocil_wheel_file *f = add_file(w, err);
		if (f == NULL)
			r = -1;
		else {
			f->src = ocil_xstrdup(m);
			f->target = target_of(w, m, c->minor);
			f->hash = ocil_xstrdup(hash);
		}
	}
	return r;
}

/* [console_scripts] and [gui_scripts] of entry_points.txt. */
static int read_scripts(open_ctx *c, ocil_error **err)
{
	bool in = false;
	for (char *s = c->entry_points, *next; s != NULL && *s; s = next) {
		next = strchr(s, '\n');
		if (next != NULL)
			*next++ = '\0';
		while (isspace((unsigned char)*s))
			s++;
		size_t n = strlen(s);
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			s[--n] = '\0';
		if (s[0] == '[') {
			in = strcmp(s, "[console_scripts]") == 0 || strcmp(s, "[gui_scripts]") == 0;
			continue;
		}
		if (!in || s[0] == '\0' || s[0] == '#' || s[0] == ';')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL || strchr(eq, ':') == NULL)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: entry point \"%.200s\" is not \"name = "
					      "module:func\"",
					      c->w->file, s);
		cleanup_free char *name = ocil_xstrndup(s, (size_t)(eq - s));
		n = strlen(name);
		while (n > 0 && isspace((unsigned char)name[n - 1]))
			name[--n] = '\0';
		if (name[0] == '\0' || strchr(name, '/') != NULL)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: bad script name \"%.200s\"",
					      c->w->file, name);
		ocil_wheel_file *f = add_file(c->w, err);
		if (f == NULL)
			return -1;
		f->target = ocil_xasprintf("bin/%s", name);
		f->script = ocil_xstrdup(s);
	}
	return 0;
}

static int open_wheel(ocil_wheel *w, const char *sha256, const char *minor, const char *arch,
		      ocil_error **err)
{
	if (!ocil_str_has_suffix(w->fn, ".whl"))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a wheel (.whl)", w->file);
	if (parse_name(w, minor, arch, err) < 0)
		return -1;
	if (ocil_pkgfile_open(&w->src, w->file, err) < 0)
		return -1;
	if (sha256 != NULL) {
		char md5[33], sha[65];
		uint64_t size = 0;
		if (ocil_pkgfile_hash(&w->src, md5, sha, &size, err) < 0 ||
		    ocil_pkgfile_check_hashes(w->file, NULL, sha256, md5, sha, err) < 0)
			return -1;
	}
	open_ctx c = {.w = w, .minor = minor};
	int r = ocil_archive_walk_zip(&w->src, list_entry, &c, err);
	if (r == 0)
		r = match_record(&c, err);
	if (r == 0)
		r = read_scripts(&c, err);
	free(c.record);
	free(c.entry_points);
	ocil_strv_clear(&c.members);
	return r;
}

int ocil_wheel_open(const char *file, const char *sha256, const char *minor, const char *arch,
		    ocil_wheel **out, ocil_error **err)
{
	const char *slash = strrchr(file, '/');
	return ocil_wheel_open_as(file, slash ? slash + 1 : file, sha256, minor, arch, out, err);
}

int ocil_wheel_open_as(const char *file, const char *fn, const char *sha256, const char *minor,
		       const char *arch, ocil_wheel **out, ocil_error **err)
{
	__attribute__((cleanup(freep_wheel))) ocil_wheel *w = ocil_xcalloc(1, sizeof(*w));
	w->src.fd = -1;
	w->file = ocil_xstrdup(file);
	w->fn = ocil_xstrdup(fn);
	if (open_wheel(w, sha256, minor, arch, err) < 0)
		return -1;
	ocil_pkgfile_close(&w->src); /* reopened (and checked) to install */
	*out = w;
	w = NULL;
	return 0;
}

/* ---- install ---- */

char *ocil_wheel_record_hash(const unsigned char d[32])
{
	unsigned char b64[64];
	int n = EVP_EncodeBlock(b64, d, 32);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	return ocil_xasprintf("sha256=%.*s", n, (const char *)b64);
}

typedef struct {
	ocil_wheel *w;
	const ocil_wheel_install_opts *o;
	ocil_layer_writer *lw;
	ocil_strv rows; /* of the new RECORD */
	char *site;	/* lib/pythonX.Y/site-packages */
	size_t cursor;	/* for find_src */
} inst_ctx;

static void add_row(inst_ctx *c, const char *target, const char *hash, uint64_t size)
{
	size_t sl = strlen(c->site);
	cleanup_free char *rel = strncmp(target, c->site, sl) == 0 && target[sl] == '/'
				     ? ocil_xstrdup(target + sl + 1)
				     : ocil_xasprintf("../../../%s", target);
	bool quote = strpbrk(rel, ",\"") != NULL;
	if (quote) {
		/* CSV: double the quotes */
		size_t q = 0;
		for (const char *p = rel; *p; p++)
			q += *p == '"';
		char *s = ocil_xmalloc(strlen(rel) + q + 3), *o = s;
		*o++ = '"';
		for (const char *p = rel; *p; p++) {
			if (*p == '"')
				*o++ = '"';
			*o++ = *p;
		}
		*o++ = '"';
		*o = '\0';
		free(rel);
		rel = s;
	}
	ocil_strv_push(&c->rows,
		       hash ? ocil_xasprintf("%s,%s,%llu", rel, hash, (unsigned long long)size)
			    : ocil_xasprintf("%s,,", rel));
}

static int put_file(inst_ctx *c, const char *target, mode_t mode, const char *buf, size_t len,
		    ocil_error **err)
{
	cleanup_free char *path = ocil_xasprintf("%s/%s", c->o->dest, target);
	if (ocil_layer_writer_add_parents(c->lw, path, err) < 0 ||
	    ocil_layer_writer_add_file(c->lw, path, mode, buf, len, err) < 0)
		return ocil_error_wrap(err, "%s: %s", c->w->fn, target);
	unsigned char d[32];
	EVP_Digest(buf, len, d, NULL, EVP_sha256(), NULL);
	cleanup_free char *h = ocil_wheel_record_hash(d);
	add_row(c, target, h, len);
	return 0;
}

/* Files were listed in the zip's order, which the install walk sees again:
 * the one after the last found is tried first. */
static ocil_wheel_file *find_src(ocil_wheel *w, const char *src, size_t *cursor)
{
	for (size_t k = 0; k < w->n_files; k++) {
		size_t i = (*cursor + k) % w->n_files;
		if (w->files[i].src != NULL && strcmp(w->files[i].src, src) == 0) {
			*cursor = i + 1;
			return &w->files[i];
		}
	}
	return NULL;
}

/* A .data/scripts file: "#!python..." gets the prefix's python. */
static int add_script_file(inst_ctx *c, struct archive *a, ocil_wheel_file *f, mode_t mode,
			   const char *what, ocil_error **err)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_archive_read_all(a, what, OCIL_WHEEL_MAX_META, &buf, &len, err) < 0)
		return -1;
	unsigned char d[32];
	EVP_Digest(buf, len, d, NULL, EVP_sha256(), NULL);
	cleanup_free char *h = ocil_wheel_record_hash(d);
	if (strcmp(h, f->hash) != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: does not match RECORD", what);
	if (len >= 8 && strncmp(buf, "#!python", 8) == 0) {
		const char *nl = memchr(buf, '\n', len);
		size_t rest = nl ? len - (size_t)(nl - buf) : 0;
		cleanup_free char *out = ocil_xasprintf("#!%s/bin/python%s%.*s", c->o->dest,
							c->o->minor, (int)rest, nl ? nl : "");
		return put_file(c, f->target, 0755, out, strlen(out), err);
	}
	return put_file(c, f->target, mode | 0111, buf, len, err);
}

static int add_member(inst_ctx *c, struct archive *a, struct archive_entry *ae, ocil_wheel_file *f,
		      ocil_error **err)
{
	cleanup_free char *what = ocil_xasprintf("%s: %s", c->w->fn, f->src);
	mode_t mode =
	    ocil_layer_file_mode(archive_entry_mode(ae) ? archive_entry_mode(ae) : 0100644);
	if (ocil_str_has_prefix(f->target, "bin/") && strstr(f->src, ".data/scripts/") != NULL)
		return add_script_file(c, a, f, mode, what, err);
	if (!archive_entry_size_is_set(ae))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: no size in the zip", what);
	uint64_t size = (uint64_t)archive_entry_size(ae);
	cleanup_free char *path = ocil_xasprintf("%s/%s", c->o->dest, f->target);
	if (ocil_layer_writer_add_parents(c->lw, path, err) < 0 ||
	    ocil_layer_writer_begin_file(c->lw, path, mode, size, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	cleanup_free unsigned char *buf = ocil_xmalloc(READ_BLOCK);
	int r = 0;
	while (r == 0) {
		if ((r = ocil_cancel_check(c->o->cancel, err)) < 0)
			break;
		la_ssize_t n = archive_read_data(a, buf, READ_BLOCK);
		if (n < 0)
			r = ocil_error_set(err, OCIL_E_INPUT, "%s: %s", what,
					   archive_error_string(a));
		if (n <= 0)
			break;
		EVP_DigestUpdate(m, buf, (size_t)n);
		r = ocil_layer_writer_write(c->lw, buf, (size_t)n, err);
	}
	unsigned char d[EVP_MAX_MD_SIZE];
	EVP_DigestFinal_ex(m, d, NULL);
	EVP_MD_CTX_free(m);
	if (r < 0 || ocil_layer_writer_end_file(c->lw, err) < 0)
		return ocil_error_wrap(err, "%s", what);
	cleanup_free char *h = ocil_wheel_record_hash(d);
	if (strcmp(h, f->hash) != 0)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: does not match RECORD", what);
	add_row(c, f->target, h, size);
	return 0;
}

static int install_entry(void *ud, struct archive *a, struct archive_entry *ae, const char *name,
			 ocil_error **err)
{
	inst_ctx *c = ud;
	ocil_wheel_file *f =
	    archive_entry_filetype(ae) == AE_IFREG ? find_src(c->w, name, &c->cursor) : NULL;
	if (f == NULL || f->clobbered)
		return 0;
	return add_member(c, a, ae, f, err);
}

static int add_console_script(inst_ctx *c, const ocil_wheel_file *f, ocil_error **err)
{
	cleanup_free char *s = ocil_xstrdup(f->script);
	char *eq = strchr(s, '=');
	char *spec = eq + 1;
	while (isspace((unsigned char)*spec))
		spec++;
	/* "module:func [extras]" */
	spec[strcspn(spec, " \t[")] = '\0';
	char *colon = strchr(spec, ':');
	*colon = '\0';
	const char *module = spec, *func = colon + 1;
	cleanup_free char *import = ocil_xstrndup(func, strcspn(func, "."));
	cleanup_free char *body = ocil_xasprintf(script_template, module, import, func);
	cleanup_free char *script =
	    ocil_xasprintf("#!%s/bin/python%s\n%s", c->o->dest, c->o->minor, body);
	return put_file(c, f->target, 0755, script, strlen(script), err);
}

int ocil_wheel_install(ocil_wheel *w, const ocil_wheel_install_opts *o, ocil_layer_writer *lw,
		       ocil_error **err)
{
	inst_ctx c = {.w = w, .o = o, .lw = lw};
	c.site = ocil_xasprintf("lib/python%s/site-packages", o->minor);
	int r = ocil_pkgfile_reopen(&w->src, err);
	if (r == 0)
		r = ocil_archive_walk_zip(&w->src, install_entry, &c, err);
	ocil_pkgfile_close(&w->src);
	for (size_t i = 0; r == 0 && i < w->n_files; i++)
		if (w->files[i].script != NULL && !w->files[i].clobbered)
			r = add_console_script(&c, &w->files[i], err);
	cleanup_free char *di = ocil_xasprintf("%s/%s", c.site, w->dist_info);
	cleanup_free char *installer = ocil_xasprintf("%s/INSTALLER", di);
	if (r == 0)
		r = put_file(&c, installer, 0644, "ocilambda\n", 10, err);
	cleanup_free char *record = ocil_xasprintf("%s/RECORD", di);
	if (r == 0) {
		add_row(&c, record, NULL, 0);
		ocil_strv_sort(&c.rows);
		size_t len = 0;
		for (size_t i = 0; i < c.rows.n; i++)
			len += strlen(c.rows.v[i]) + 1;
		cleanup_free char *text = ocil_xmalloc(len + 1);
		char *p = text;
		for (size_t i = 0; i < c.rows.n; i++)
			p += sprintf(p, "%s\n", c.rows.v[i]);
		cleanup_free char *path = ocil_xasprintf("%s/%s", o->dest, record);
		r = ocil_layer_writer_add_file(lw, path, 0644, text, len, err);
	}
	ocil_strv_clear(&c.rows);
	free(c.site);
	return r;
}
