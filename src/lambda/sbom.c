#include "lambda/sbom.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/digest.h"
#include "base/json.h"
#include "base/util.h"

#define SPDX_NOASSERTION "NOASSERTION"
/* Longest license text we try to read as an SPDX expression, and the
 * deepest nesting of parentheses in one. */
#define LICENSE_EXPR_MAX 1024
#define LICENSE_DEPTH_MAX 32
/* Longest sanitized part of a LicenseRef id or of the namespace. */
#define ID_PART_MAX 64

/* ---- packages ---- */

static int bad_record(const char *what, ocil_error **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad_record(const char *what, ocil_error **err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return ocil_error_set(err, OCIL_E_INPUT, "%s: malformed conda record: %s", what, msg);
}

/* rec[key]: a string (copied; "" counts as absent), absent or null (NULL),
 * else an error. */
static int opt_copy(const json_t *rec, const char *key, const char *what, bool required, char **out,
		    ocil_error **err)
{
	const json_t *v = json_object_get(rec, key);
	*out = NULL;
	if (v != NULL && !json_is_null(v) && !json_is_string(v))
		return bad_record(what, err, "\"%s\" is not a string", key);
	const char *s = json_string_value(v);
	if (s != NULL && s[0] != '\0')
		*out = ocil_xstrdup(s);
	else if (required)
		return bad_record(what, err, "no \"%s\"", key);
	return 0;
}

int ocil_sbom_package_from_record(const json_t *record, const char *what, ocil_sbom_package *p,
				  ocil_error **err)
{
	memset(p, 0, sizeof(*p));
	if (!json_is_object(record))
		return bad_record(what, err, "not a JSON object");
	int r = opt_copy(record, "name", what, true, &p->name, err);
	if (r == 0)
		r = opt_copy(record, "version", what, true, &p->version, err);
	if (r == 0)
		r = opt_copy(record, "build", what, true, &p->build, err);
	if (r == 0)
		r = opt_copy(record, "channel", what, false, &p->channel, err);
	if (r == 0)
		r = opt_copy(record, "subdir", what, false, &p->subdir, err);
	if (r == 0)
		r = opt_copy(record, "fn", what, false, &p->fn, err);
	if (r == 0)
		r = opt_copy(record, "url", what, false, &p->url, err);
	if (r == 0)
		r = opt_copy(record, "license", what, false, &p->license, err);
	if (r == 0)
		r = opt_copy(record, "sha256", what, false, &p->sha256, err);
	if (r == 0 && p->sha256 != NULL) {
		if (strlen(p->sha256) != 64 || strspn(p->sha256, "0123456789abcdefABCDEF") != 64)
			r = bad_record(what, err, "\"sha256\" is not 64 hex digits");
		for (char *c = p->sha256; r == 0 && *c; c++)
			if (*c >= 'A' && *c <= 'F')
				*c = (char)(*c - 'A' + 'a');
	}
	if (r < 0)
		ocil_sbom_package_clear(p);
	return r;
}

void ocil_sbom_package_clear(ocil_sbom_package *p)
{
	free(p->name);
	free(p->version);
	free(p->build);
	free(p->channel);
	free(p->subdir);
	free(p->fn);
	free(p->url);
	free(p->license);
	free(p->sha256);
	memset(p, 0, sizeof(*p));
}

void ocil_sbom_packages_push(ocil_sbom_packages *l, ocil_sbom_package *p)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = ocil_xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = *p;
	memset(p, 0, sizeof(*p));
}

json_t *ocil_sbom_packages_to_json(const ocil_sbom_packages *l)
{
	json_t *a = json_array();
	for (size_t i = 0; i < l->n; i++) {
		const ocil_sbom_package *p = &l->v[i];
		const struct {
			const char *key, *value;
		} f[] = {{"name", p->name},	  {"version", p->version}, {"build", p->build},
			 {"channel", p->channel}, {"subdir", p->subdir},   {"fn", p->fn},
			 {"url", p->url},	  {"license", p->license}, {"sha256", p->sha256}};
		json_t *rec = json_object();
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			if (f[k].value != NULL)
				json_object_set_new(rec, f[k].key, json_string(f[k].value));
		json_array_append_new(a, rec);
	}
	return a;
}

int ocil_sbom_packages_from_json(const json_t *j, ocil_sbom_packages *out, ocil_error **err)
{
	if (!json_is_array(j))
		return ocil_error_set(err, OCIL_E_INPUT, "packages: not a JSON array");
	size_t i;
	const json_t *rec;
	json_array_foreach(j, i, rec)
	{
		cleanup_free char *what = ocil_xasprintf("element %zu", i);
		ocil_sbom_package p = {0};
		if (ocil_sbom_package_from_record(rec, what, &p, err) < 0)
			return -1;
		ocil_sbom_packages_push(out, &p);
	}
	return 0;
}

static int cmp_package(const ocil_sbom_package *a, const ocil_sbom_package *b)
{
	int c = strcmp(a->name, b->name);
	if (c == 0)
		c = strcmp(a->version, b->version);
	if (c == 0)
		c = strcmp(a->build, b->build);
	return c;
}

static int cmp_package_qsort(const void *a, const void *b)
{
	return cmp_package(a, b);
}

static int cmp_package_ptr(const void *a, const void *b)
{
	return cmp_package(*(const ocil_sbom_package *const *)a,
			   *(const ocil_sbom_package *const *)b);
}

void ocil_sbom_packages_sort(ocil_sbom_packages *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_package_qsort);
}

void ocil_sbom_packages_clear(ocil_sbom_packages *l)
{
	for (size_t i = 0; i < l->n; i++)
		ocil_sbom_package_clear(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static bool is_record_name(const char *name)
{
	return name[0] != '.' && ocil_str_has_suffix(name, ".json");
}

static int add_record(ocil_sbom_packages *out, const char *buf, size_t len, const char *what,
		      ocil_error **err)
{
	cleanup_json json_t *j = NULL;
	if (ocil_json_parse_max(buf, len, OCIL_CONDA_MAX_RECORD, what, &j, err) < 0)
		return -1;
	ocil_sbom_package p;
	if (ocil_sbom_package_from_record(j, what, &p, err) < 0)
		return -1;
	ocil_sbom_packages_push(out, &p);
	return 0;
}

static void closedirp(DIR **d)
{
	if (*d != NULL)
		closedir(*d);
}

static int list_meta_dir(const char *meta, DIR *d, ocil_strv *names, ocil_error **err)
{
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!is_record_name(de->d_name))
			continue;
		if (names->n >= OCIL_CONDA_MAX_RECORDS)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: more than %d records", meta,
					      OCIL_CONDA_MAX_RECORDS);
		ocil_strv_push(names, ocil_xstrdup(de->d_name));
		errno = 0;
	}
	if (errno != 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", meta);
	ocil_strv_sort(names);
	return 0;
}

static int read_dir_record(int mfd, const char *meta, const char *name, ocil_sbom_packages *out,
			   ocil_error **err)
{
	cleanup_free char *file = ocil_xasprintf("%s/%s", meta, name);
	/* No symlinks out of the prefix, no blocking on a fifo. */
	cleanup_close int fd = openat(mfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", file);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", file);
	if (!S_ISREG(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a regular file", file);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_read_fd(fd, file, OCIL_CONDA_MAX_RECORD, &buf, &len, err) < 0)
		return -1;
	return add_record(out, buf, len, file, err);
}

int ocil_sbom_read_prefix(const char *prefix, ocil_sbom_packages *out, ocil_error **err)
{
	cleanup_free char *meta = ocil_xasprintf("%s/conda-meta", prefix);
	__attribute__((cleanup(closedirp))) DIR *d = opendir(meta);
	if (d == NULL && (errno == ENOENT || errno == ENOTDIR))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s is not a conda prefix: no conda-meta directory", prefix);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", meta);
	cleanup_strv ocil_strv names = {0};
	if (list_meta_dir(meta, d, &names, err) < 0)
		return -1;
	size_t start = out->n;
	for (size_t i = 0; i < names.n; i++)
		if (read_dir_record(dirfd(d), meta, names.v[i], out, err) < 0)
			return -1;
	/* Sort what was added (the caller's earlier entries stay put). */
	ocil_sbom_packages tail = {.v = out->v + start, .n = out->n - start};
	ocil_sbom_packages_sort(&tail);
	return 0;
}

static int read_rootfs_record(ocil_rootfs *fs, const char *path, ocil_sbom_packages *out,
			      ocil_error **err)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	ocil_tar_quote(path, q);
	cleanup_rootfs_node ocil_rootfs_node node = {0};
	int found = ocil_rootfs_lookup(fs, path, true, &node, err);
	if (found < 0)
		return ocil_error_wrap(err, "%s", q);
	if (found == 0 || node.type != OCIL_TAR_FILE)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a regular file", q);
	if (node.size > OCIL_CONDA_MAX_RECORD)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: larger than %zu bytes", q,
				      OCIL_CONDA_MAX_RECORD);
	cleanup_tarstream ocil_tarstream *ts = NULL;
	if (ocil_rootfs_open_file(fs, &node, &ts, err) < 0)
		return ocil_error_wrap(err, "%s", q);
	size_t size = (size_t)node.size, len = 0;
	cleanup_free char *buf = ocil_xmalloc(size + 1);
	while (len < size) {
		ssize_t n = ocil_tarstream_read(ts, buf + len, size - len, err);
		if (n < 0)
			return ocil_error_wrap(err, "%s", q);
		if (n == 0)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: truncated in its layer", q);
		len += (size_t)n;
	}
	buf[len] = '\0';
	return add_record(out, buf, len, q, err);
}

int ocil_sbom_read_rootfs(ocil_rootfs *fs, const char *prefix, ocil_sbom_packages *out,
			  ocil_error **err)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	cleanup_free char *meta = ocil_xasprintf("%s/conda-meta", prefix);
	cleanup_strv ocil_strv names = {0};
	int r = ocil_rootfs_list(fs, meta, &names, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s is not a conda prefix: no conda-meta directory",
				      ocil_tar_quote(prefix, q));
	size_t start = out->n, count = 0;
	for (size_t i = 0; i < names.n; i++) {
		if (!is_record_name(names.v[i]))
			continue;
		if (++count > OCIL_CONDA_MAX_RECORDS)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: more than %d records",
					      ocil_tar_quote(meta, q), OCIL_CONDA_MAX_RECORDS);
		cleanup_free char *path = ocil_xasprintf("%s/%s", meta, names.v[i]);
		if (read_rootfs_record(fs, path, out, err) < 0)
			return -1;
	}
	ocil_sbom_packages tail = {.v = out->v + start, .n = out->n - start};
	ocil_sbom_packages_sort(&tail);
	return 0;
}

/* ---- names ---- */

static bool is_url(const char *s)
{
	return strstr(s, "://") != NULL;
}

/* s without trailing slashes and, when subdir is set, without a final
 * "/<subdir>". Caller frees. */
static char *channel_base(const char *channel, const char *subdir)
{
	char *c = ocil_xstrdup(channel);
	size_t n = strlen(c);
	while (n > 0 && c[n - 1] == '/')
		c[--n] = '\0';
	size_t sl = subdir ? strlen(subdir) : 0;
	if (sl > 0 && n > sl && c[n - sl - 1] == '/' && strcmp(c + n - sl, subdir) == 0) {
		n -= sl + 1;
		c[n] = '\0';
		while (n > 0 && c[n - 1] == '/')
			c[--n] = '\0';
	}
	return c;
}

char *ocil_sbom_channel_name(const ocil_sbom_package *p)
{
	if (p->channel == NULL)
		return NULL;
	cleanup_free char *base = channel_base(p->channel, p->subdir);
	/* The hosts whose channels conda itself calls by name. */
	static const char *const hosts[] = {
	    "https://conda.anaconda.org/",
	    "http://conda.anaconda.org/",
	    "https://repo.anaconda.com/pkgs/",
	    "http://repo.anaconda.com/pkgs/",
	};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		const char *rest = base + strlen(hosts[i]);
		if (ocil_str_has_prefix(base, hosts[i]) && rest[0] != '\0')
			return ocil_xstrdup(rest);
	}
	return steal_pointer(&base);
}

/* Append s to buf percent-encoded: everything but RFC 3986 unreserved. */
static void pct_append(char **buf, size_t *len, size_t *cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*len + 4 > *cap) {
			*cap = *cap * 2 + 64;
			*buf = ocil_xrealloc(*buf, *cap);
		}
		if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' || *c == '_' || *c == '~') {
			(*buf)[(*len)++] = (char)*c;
		} else {
			(*buf)[(*len)++] = '%';
			(*buf)[(*len)++] = hex[*c >> 4];
			(*buf)[(*len)++] = hex[*c & 15];
		}
	}
	(*buf)[*len] = '\0';
}

char *ocil_sbom_purl(const ocil_sbom_package *p)
{
	size_t len = 0, cap = 128;
	char *buf = ocil_xmalloc(cap);
	buf[0] = '\0';
	cleanup_free char *channel = ocil_sbom_channel_name(p);
	const char *type = NULL;
	if (p->fn != NULL && ocil_str_has_suffix(p->fn, ".tar.bz2"))
		type = "tar.bz2";
	else if (p->fn != NULL && ocil_str_has_suffix(p->fn, ".conda"))
		type = "conda";
	/* Separators and keys as they are, values percent-encoded. */
	struct {
		const char *sep, *key, *value;
	} parts[] = {
	    {"pkg:conda/", NULL, p->name}, {"@", NULL, p->version},    {"?", "build", p->build},
	    {"&", "channel", channel},	   {"&", "subdir", p->subdir}, {"&", "type", type},
	};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (parts[i].value == NULL)
			continue;
		cleanup_free char *head =
		    ocil_xasprintf("%s%s%s", parts[i].sep, parts[i].key ? parts[i].key : "",
				   parts[i].key ? "=" : "");
		size_t hl = strlen(head);
		if (len + hl + 1 > cap) {
			cap = cap * 2 + hl;
			buf = ocil_xrealloc(buf, cap);
		}
		memcpy(buf + len, head, hl + 1);
		len += hl;
		pct_append(&buf, &len, &cap, parts[i].value);
	}
	return buf;
}

static char *download_location(const ocil_sbom_package *p)
{
	if (p->url != NULL)
		return ocil_xstrdup(p->url);
	if (p->channel == NULL || !is_url(p->channel) || p->fn == NULL || p->subdir == NULL)
		return ocil_xstrdup(SPDX_NOASSERTION);
	cleanup_free char *base = channel_base(p->channel, p->subdir);
	return ocil_xasprintf("%s/%s/%s", base, p->subdir, p->fn);
}

static bool id_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-';
}

/* s with every character outside [A-Za-z0-9.-] as "-"; with squeeze,
 * runs of "-" become one and none is left at either end, and the result
 * is cut at max bytes (0: no cap). Caller frees. */
static char *sanitize(const char *s, bool squeeze, size_t max)
{
	size_t n = strlen(s);
	char *out = ocil_xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n && (max == 0 || o < max); i++) {
		char c = id_char(s[i]) ? s[i] : '-';
		if (squeeze && c == '-' && (o == 0 || out[o - 1] == '-'))
			continue;
		out[o++] = c;
	}
	while (squeeze && o > 0 && out[o - 1] == '-')
		o--;
	out[o] = '\0';
	return out;
}

/* base, or base-2, base-3... whichever is not in used yet (then it is). */
static char *unique_id(ocil_strmap *used, const char *base)
{
	char *id = ocil_xstrdup(base);
	for (unsigned n = 2; ocil_strmap_get(used, id, NULL); n++) {
		free(id);
		id = ocil_xasprintf("%s-%u", base, n);
	}
	ocil_strmap_put(used, id, 1);
	return id;
}

/* ---- SPDX license expressions (SPDX 2.3 Annex D), syntax only ---- */

typedef struct {
	const char *s;
	size_t pos;
	char tok[LICENSE_EXPR_MAX + 1];
} lexer;

/* The next token: "(", ")" or a word; "" at the end. */
static const char *lex_next(lexer *l)
{
	while (l->s[l->pos] == ' ' || l->s[l->pos] == '\t')
		l->pos++;
	size_t n = 0;
	char c = l->s[l->pos];
	if (c == '(' || c == ')') {
		l->tok[n++] = c;
		l->pos++;
	} else {
		while ((c = l->s[l->pos]) != '\0' && c != ' ' && c != '\t' && c != '(' && c != ')')
			l->tok[n++] = c, l->pos++;
	}
	l->tok[n] = '\0';
	return l->tok;
}

static bool idstring(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!id_char(s[i]))
			return false;
	return true;
}

/* license-id ["+"], LicenseRef-x, DocumentRef-x:LicenseRef-y */
static bool license_word(const char *w)
{
	size_t n = strlen(w);
	const char *colon = strchr(w, ':');
	if (ocil_str_has_prefix(w, "DocumentRef-") && colon != NULL) {
		size_t dn = (size_t)(colon - w) - strlen("DocumentRef-");
		return idstring(w + strlen("DocumentRef-"), dn) &&
		       ocil_str_has_prefix(colon + 1, "LicenseRef-") &&
		       idstring(colon + 1 + strlen("LicenseRef-"),
				strlen(colon + 1) - strlen("LicenseRef-"));
	}
	if (n > 1 && w[n - 1] == '+' && !ocil_str_has_prefix(w, "LicenseRef-"))
		n--;
	return idstring(w, n) && strcmp(w, "AND") != 0 && strcmp(w, "OR") != 0 &&
	       strcmp(w, "WITH") != 0;
}

static bool parse_expr(lexer *l, int depth);

/* term := "(" expr ")" | license-word ["WITH" exception-id]; leaves the
 * token after it in l->tok. */
static bool parse_term(lexer *l, int depth)
{
	if (strcmp(l->tok, "(") == 0) {
		if (depth >= LICENSE_DEPTH_MAX)
			return false;
		lex_next(l);
		if (!parse_expr(l, depth + 1) || strcmp(l->tok, ")") != 0)
			return false;
		lex_next(l);
		return true;
	}
	if (!license_word(l->tok))
		return false;
	if (strcmp(lex_next(l), "WITH") == 0) {
		const char *exc = lex_next(l);
		if (!idstring(exc, strlen(exc)))
			return false;
		lex_next(l);
	}
	return true;
}

/* expr := term (("AND" | "OR") term)* */
static bool parse_expr(lexer *l, int depth)
{
	if (!parse_term(l, depth))
		return false;
	while (strcmp(l->tok, "AND") == 0 || strcmp(l->tok, "OR") == 0) {
		lex_next(l);
		if (!parse_term(l, depth))
			return false;
	}
	return true;
}

static bool license_expression(const char *s)
{
	if (strlen(s) > LICENSE_EXPR_MAX)
		return false;
	lexer l = {.s = s};
	lex_next(&l);
	return parse_expr(&l, 0) && l.tok[0] == '\0';
}

/* ---- the document ---- */

typedef struct {
	ocil_strmap ids;     /* SPDX ids given out */
	json_t *license_ids; /* license text -> LicenseRef id */
	json_t *extracted;   /* hasExtractedLicensingInfos */
} builder;

static char *license_declared(builder *b, const char *license)
{
	if (license == NULL)
		return ocil_xstrdup(SPDX_NOASSERTION);
	if (license_expression(license))
		return ocil_xstrdup(license);
	const char *known = json_string_value(json_object_get(b->license_ids, license));
	if (known != NULL)
		return ocil_xstrdup(known);
	cleanup_free char *part = sanitize(license, true, ID_PART_MAX);
	cleanup_free char *base =
	    ocil_xasprintf("LicenseRef-%s", part[0] != '\0' ? part : "unknown");
	char *id = unique_id(&b->ids, base);
	json_object_set_new_nocheck(b->license_ids, license, json_string(id));
	json_t *info = json_object();
	json_object_set_new(info, "licenseId", json_string(id));
	json_object_set_new(info, "extractedText", ocil_json_string_lossy(license));
	json_object_set_new(info, "name", ocil_json_string_lossy(license));
	json_object_set_new(info, "comment",
			    json_string("license as recorded in conda-meta; not an SPDX "
					"license expression"));
	json_array_append_new(b->extracted, info);
	return id;
}

static json_t *package_json(builder *b, const ocil_sbom_package *p, const char *id)
{
	json_t *j = json_object();
	json_object_set_new(j, "SPDXID", json_string(id));
	json_object_set_new(j, "name", ocil_json_string_lossy(p->name));
	json_object_set_new(j, "versionInfo", ocil_json_string_lossy(p->version));
	json_object_set_new(j, "supplier", json_string(SPDX_NOASSERTION));
	cleanup_free char *dl = download_location(p);
	json_object_set_new(j, "downloadLocation", ocil_json_string_lossy(dl));
	json_object_set_new(j, "filesAnalyzed", json_false());
	json_object_set_new(j, "licenseConcluded", json_string(SPDX_NOASSERTION));
	cleanup_free char *lic = license_declared(b, p->license);
	json_object_set_new(j, "licenseDeclared", ocil_json_string_lossy(lic));
	json_object_set_new(j, "copyrightText", json_string(SPDX_NOASSERTION));
	if (p->sha256 != NULL) {
		json_t *c = json_object();
		json_object_set_new(c, "algorithm", json_string("SHA256"));
		json_object_set_new(c, "checksumValue", ocil_json_string_lossy(p->sha256));
		json_object_set_new(j, "checksums", json_pack("[o]", c));
	}
	cleanup_free char *purl = ocil_sbom_purl(p);
	json_object_set_new(j, "externalRefs",
			    json_pack("[{s:s, s:s, s:s}]", "referenceCategory", "PACKAGE-MANAGER",
				      "referenceType", "purl", "referenceLocator", purl));
	return j;
}

static char *comment_of(const ocil_sbom_opts *o)
{
	cleanup_free char *where =
	    o->prefix ? ocil_xasprintf(" installed at %s", o->prefix) : ocil_xstrdup("");
	cleanup_free char *digest =
	    o->image_digest ? ocil_xasprintf(" (manifest %s)", o->image_digest) : ocil_xstrdup("");
	return ocil_xasprintf("conda packages%s in %s%s, from their conda-meta records", where,
			      o->name, digest);
}

int ocil_sbom_build(const ocil_sbom_opts *o, const ocil_sbom_packages *pkgs, json_t **out,
		    ocil_error **err)
{
	if (o->name == NULL || o->name[0] == '\0')
		return ocil_error_set(err, OCIL_E_USAGE, "SBOM: no document name");
	if (o->created < 0 || o->created > 253402300799LL)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "SBOM: creation time %lld is not between 1970 and 9999",
				      (long long)o->created);
	time_t t = (time_t)o->created;
	struct tm tm;
	char created[32];
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return ocil_error_set(err, OCIL_E_USAGE, "SBOM: bad creation time %lld",
				      (long long)o->created);

	cleanup_json json_t *doc = json_object();
	json_object_set_new(doc, "spdxVersion", json_string("SPDX-2.3"));
	json_object_set_new(doc, "dataLicense", json_string("CC0-1.0"));
	json_object_set_new(doc, "SPDXID", json_string("SPDXRef-DOCUMENT"));
	json_object_set_new(doc, "name", ocil_json_string_lossy(o->name));
	/* Filled below from the hash of everything else; set now for the key
	 * order. */
	json_object_set_new(doc, "documentNamespace", json_string(""));
	cleanup_free char *comment = comment_of(o);
	json_object_set_new(doc, "comment", ocil_json_string_lossy(comment));
	json_object_set_new(doc, "creationInfo",
			    json_pack("{s:s, s:[s]}", "created", created, "creators",
				      "Tool: ocilambda-" OCIL_VERSION));

	builder b = {.license_ids = json_object(), .extracted = json_array()};
	cleanup_free const ocil_sbom_package **sorted =
	    ocil_xcalloc(pkgs->n ? pkgs->n : 1, sizeof(*sorted));
	for (size_t i = 0; i < pkgs->n; i++)
		sorted[i] = &pkgs->v[i];
	if (pkgs->n > 1)
		qsort(sorted, pkgs->n, sizeof(*sorted), cmp_package_ptr);
	ocil_strmap_put(&b.ids, "SPDXRef-DOCUMENT", 1);
	json_t *packages = json_array();
	json_t *rels = json_array();
	for (size_t i = 0; i < pkgs->n; i++) {
		const ocil_sbom_package *p = sorted[i];
		cleanup_free char *raw = ocil_xasprintf("%s-%s", p->name, p->version);
		cleanup_free char *clean = sanitize(raw, false, 0);
		cleanup_free char *base = ocil_xasprintf("SPDXRef-Package-%s", clean);
		cleanup_free char *id = unique_id(&b.ids, base);
		json_array_append_new(packages, package_json(&b, p, id));
		json_array_append_new(rels, json_pack("{s:s, s:s, s:s}", "spdxElementId",
						      "SPDXRef-DOCUMENT", "relationshipType",
						      "DESCRIBES", "relatedSpdxElement", id));
	}
	json_object_set_new(doc, "packages", packages);
	if (json_array_size(b.extracted) > 0)
		json_object_set(doc, "hasExtractedLicensingInfos", b.extracted);
	json_object_set_new(doc, "relationships", rels);
	json_decref(b.extracted);
	json_decref(b.license_ids);
	ocil_strmap_clear(&b.ids);

	cleanup_free char *canon = ocil_json_dump(doc);
	char digest[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(canon, strlen(canon), digest);
	cleanup_free char *part = sanitize(o->name, true, ID_PART_MAX);
	cleanup_free char *ns = ocil_xasprintf("https://spdx.org/spdxdocs/ocilambda/%s%s%s", part,
					       part[0] != '\0' ? "-" : "", ocil_digest_hex(digest));
	json_object_set_new(doc, "documentNamespace", json_string(ns));
	*out = steal_pointer(&doc);
	return 0;
}

int ocil_sbom_write(const char *path, const ocil_sbom_opts *o, const ocil_sbom_packages *pkgs,
		    ocil_error **err)
{
	cleanup_json json_t *doc = NULL;
	if (ocil_sbom_build(o, pkgs, &doc, err) < 0)
		return -1;
	cleanup_free char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (text == NULL)
		return ocil_error_set(err, OCIL_E_IO, "SBOM %s: cannot encode", path);
	size_t len = strlen(text);
	text = ocil_xrealloc(text, len + 2);
	text[len++] = '\n';
	text[len] = '\0';
	return ocil_write_file_atomic(path, text, len, err);
}
