#include "layers/conda.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "base/replace.h"
#include "base/walk.h"
#include "layers/pyc_prefix.h"

/* How much of a file's start we read to look at its #! line. */
#define SHEBANG_MAX 4096
/* A real direct_url.json is a few hundred bytes; larger ones are not one. */
#define DIRECT_URL_MAX ((size_t)64 << 10)
#define SUBDIR_MAX 64
/* Distinct subdirs counted for the fallback; real prefixes have one or two. */
#define MAX_SUBDIRS 32
#define COPY_BUF_SIZE ((size_t)64 << 10)

/* PH_BINARY + i: binary, a placeholder of info->binary_rooms[i] bytes */
enum { PH_NONE = 0, PH_TEXT = 1, PH_BINARY = 2 };

void ocil_conda_info_clear(ocil_conda_info *info)
{
	if (info == NULL)
		return;
	free(info->python_version);
	free(info->python_minor);
	free(info->origin);
	free(info->subdir);
	ocil_strmap_clear(&info->files);
	free(info->binary_rooms);
	ocil_strv_clear(&info->excludes);
	ocil_strv_clear(&info->record_files);
	ocil_strv_clear(&info->record_names);
	for (size_t i = 0; i < info->owners.cap; i++)
		free(info->owners.slots[i]);
	ocil_hashtab_release(&info->owners);
	memset(info, 0, sizeof(*info));
}

/* ---- owners: recorded path -> record ---- */

typedef struct {
	uint64_t hash;
	uint32_t rec;
	char rel[];
} owner_ent;

static bool owner_eq(const void *item, const void *key)
{
	return strcmp(((const owner_ent *)item)->rel, key) == 0;
}

static uint64_t owner_hash(const void *item)
{
	return ((const owner_ent *)item)->hash;
}

static void owner_put(ocil_conda_info *info, const char *rel, uint32_t rec)
{
	uint64_t h = ocil_fnv1a(OCIL_FNV1A_INIT, rel, strlen(rel));
	owner_ent *e = ocil_hashtab_find(&info->owners, h, owner_eq, rel);
	if (e == NULL) {
		size_t n = strlen(rel);
		e = ocil_xmalloc(sizeof(*e) + n + 1);
		e->hash = h;
		memcpy(e->rel, rel, n + 1);
		ocil_hashtab_add(&info->owners, e, 1024, owner_hash);
	}
	e->rec = rec;
}

long ocil_conda_owner(const ocil_conda_info *info, const char *rel)
{
	const owner_ent *e = ocil_hashtab_find(
	    &info->owners, ocil_fnv1a(OCIL_FNV1A_INIT, rel, strlen(rel)), owner_eq, rel);
	return e ? (long)e->rec : -1;
}

void ocil_conda_report_clear(ocil_conda_report *r)
{
	if (r == NULL)
		return;
	ocil_strv_clear(&r->warnings);
	ocil_pyc_counts_clear(&r->bytecode);
	memset(r, 0, sizeof(*r));
}

json_t *ocil_conda_info_to_json(const ocil_conda_info *info)
{
	return json_pack("{s:s, s:s, s:s*, s:s*, s:b, s:I}", "python_version", info->python_version,
			 "python_minor", info->python_minor, "origin", info->origin, "subdir",
			 info->subdir, "has_awslambdaric", info->has_awslambdaric, "records",
			 (json_int_t)info->records);
}

bool ocil_conda_info_from_json(const json_t *j, ocil_conda_info *info)
{
	memset(info, 0, sizeof(*info));
	const char *version = NULL, *minor = NULL, *origin = NULL, *subdir = NULL;
	int aws = 0;
	json_int_t records = 0;
	if (j == NULL ||
	    json_unpack((json_t *)j, "{s:s, s:s, s?s, s?s, s:b, s:I}", "python_version", &version,
			"python_minor", &minor, "origin", &origin, "subdir", &subdir,
			"has_awslambdaric", &aws, "records", &records) != 0 ||
	    records < 0)
		return false;
	info->python_version = ocil_xstrdup(version);
	info->python_minor = ocil_xstrdup(minor);
	info->origin = origin ? ocil_xstrdup(origin) : NULL;
	info->subdir = subdir ? ocil_xstrdup(subdir) : NULL;
	info->has_awslambdaric = aws != 0;
	info->records = (size_t)records;
	return true;
}

/* A recorded path must stay inside the prefix. */
static bool valid_rel(const char *p)
{
	if (p[0] == '\0' || p[0] == '/' || strlen(p) > PATH_MAX)
		return false;
	for (const char *c = p;;) {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if (n == 0 || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (end == NULL)
			return true;
		c = end + 1;
	}
}

/* "#!/some/prefix/bin/python3.11 ..." -> "/some/prefix"; NULL otherwise
 * (e.g. "#!/usr/bin/env python", which conda writes for long prefixes). */
static char *origin_from_shebang(const char *buf, size_t len)
{
	if (len < 3 || buf[0] != '#' || buf[1] != '!')
		return NULL;
	size_t i = 2;
	while (i < len && buf[i] == ' ')
		i++;
	size_t start = i;
	while (i < len && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r' &&
	       buf[i] != '\0')
		i++;
	cleanup_free char *interp = ocil_xstrndup(buf + start, i - start);
	char *bin = NULL;
	for (char *s = interp; (s = strstr(s, "/bin/python")) != NULL; s++)
		bin = s;
	if (bin == NULL || interp[0] != '/' || bin == interp)
		return NULL;
	for (const char *v = bin + strlen("/bin/python"); *v; v++)
		if ((*v < '0' || *v > '9') && *v != '.')
			return NULL;
	*bin = '\0';
	if (strlen(interp) > OCIL_REPLACE_MAX)
		return NULL;
	return ocil_xstrdup(interp);
}

/* Read up to SHEBANG_MAX bytes from the start of fd without moving it. */
static ssize_t read_head(int fd, char *buf)
{
	ssize_t n;
	do
		n = pread(fd, buf, SHEBANG_MAX, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

static char *origin_from_file(int pfd, const char *rel)
{
	cleanup_close int fd = openat(pfd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return NULL;
	char buf[SHEBANG_MAX];
	ssize_t n = read_head(fd, buf);
	return n > 0 ? origin_from_shebang(buf, (size_t)n) : NULL;
}

static char *strip_slashes(char *s)
{
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

/* ---- exclude globs ---- */

static int copy_excludes(const ocil_conda_inspect_opts *io, ocil_strv *out, ocil_error **err)
{
	for (size_t i = 0; io != NULL && i < io->n_excludes; i++) {
		const char *p = io->excludes[i] ? io->excludes[i] : "";
		while (p[0] == '.' && p[1] == '/')
			p += 2;
		char *s = strip_slashes(ocil_xstrdup(p));
		if (s[0] == '\0' || s[0] == '/' || strlen(s) > PATH_MAX) {
			free(s);
			return ocil_error_set(err, OCIL_E_USAGE,
					      "exclude pattern \"%.200s\": not a path relative to "
					      "the prefix",
					      io->excludes[i] ? io->excludes[i] : "");
		}
		ocil_strv_push(out, s);
	}
	return 0;
}

static bool excluded(const ocil_strv *ex, const char *rel)
{
	for (size_t i = 0; i < ex->n; i++)
		if (fnmatch(ex->v[i], rel, 0) == 0)
			return true;
	return false;
}

/* rel or one of the directories above it is excluded */
static bool excluded_path(const ocil_strv *ex, const char *rel)
{
	if (ex->n == 0)
		return false;
	cleanup_free char *p = ocil_xstrdup(rel);
	for (char *s = p; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		bool x = excluded(ex, p);
		*s = '/';
		if (x)
			return true;
	}
	return excluded(ex, p);
}

/* ---- records ---- */

typedef struct {
	const char *prefix;
	int pfd;
	ocil_conda_info *info;
	bool want_origin;
	/* subdirs of the records other than python's, for the fallback */
	struct {
		char *name;
		size_t count;
	} subdirs[MAX_SUBDIRS];
	size_t n_subdirs;
} inspect_ctx;

static int bad_record(const char *file, ocil_error **err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad_record(const char *file, ocil_error **err, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return ocil_error_set(err, OCIL_E_INPUT, "%s: malformed conda record: %s", file, what);
}

/* obj[key] as a string: absent or null -> NULL, another type -> an error;
 * where ("" or "paths_data.paths[3] (bin/x): ") says which object. */
static int opt_str(const char *file, const char *where, const json_t *obj, const char *key,
		   const char **out, ocil_error **err)
{
	const json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return bad_record(file, err, "%s\"%s\" is not a string", where, key);
	*out = json_string_value(v);
	return 0;
}

static int need_str(const char *file, const json_t *obj, const char *key, const char **out,
		    ocil_error **err)
{
	if (opt_str(file, "", obj, key, out, err) < 0)
		return -1;
	if (*out == NULL || (*out)[0] == '\0')
		return bad_record(file, err, "no \"%s\"", key);
	return 0;
}

static int check_sha256(const char *file, const char *where, const json_t *obj, ocil_error **err)
{
	const json_t *v = json_object_get(obj, "sha256");
	if (v == NULL || json_is_null(v))
		return 0;
	const char *s = json_string_value(v);
	if (s == NULL || strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64)
		return bad_record(file, err, "%s\"sha256\" is not 64 hex digits", where);
	return 0;
}

static int check_size(const char *file, const char *where, const json_t *obj, ocil_error **err)
{
	const json_t *v = json_object_get(obj, "size_in_bytes");
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return bad_record(file, err, "%s\"size_in_bytes\" is not a non-negative integer",
				  where);
	return 0;
}

/* The first time a path comes up it must be in the prefix (lstat), unless
 * excluded. */
static int check_present(inspect_ctx *c, const char *file, const char *rel, ocil_error **err)
{
	struct stat st;
	if (fstatat(c->pfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	int e = errno;
	if (excluded_path(&c->info->excludes, rel))
		return 0;
	if (e == ENOENT || e == ENOTDIR)
		return ocil_error_set(err, OCIL_E_INPUT, "%s lists %s, which is not in the prefix",
				      file, rel);
	return ocil_error_set_errno(err, OCIL_E_INPUT, e, "%s lists %s", file, rel);
}

/* Add rel to the managed files. described: it comes from paths_data, whose
 * placeholder mode replaces what an earlier record said (conda lets a
 * package overwrite another's file); a bare "files" entry adds the path
 * only. */
static int record_path(inspect_ctx *c, const char *file, const char *rel, bool described,
		       unsigned char mode, ocil_error **err)
{
	if (!ocil_strmap_get(&c->info->files, rel, NULL)) {
		if (ocil_strmap_size(&c->info->files) >= OCIL_CONDA_MAX_FILES)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "conda prefix %s: more than %d recorded files",
					      c->prefix, OCIL_CONDA_MAX_FILES);
		if (check_present(c, file, rel, err) < 0)
			return -1;
	} else if (!described) {
		owner_put(c->info, rel, (uint32_t)c->info->record_files.n);
		return 0;
	}
	ocil_strmap_put(&c->info->files, rel, mode);
	owner_put(c->info, rel, (uint32_t)c->info->record_files.n);
	return 0;
}

/* The mode of a file with a binary placeholder of len bytes: its length
 * is the room a relocation has (replace.h, padded mode). */
static int binary_mode(ocil_conda_info *info, const char *file, const char *rel, size_t len,
		       unsigned char *mode, ocil_error **err)
{
	if (len > OCIL_REPLACE_MAX)
		return bad_record(file, err, "%s: prefix_placeholder longer than %d bytes", rel,
				  OCIL_REPLACE_MAX);
	size_t i = 0;
	while (i < info->n_binary_rooms && info->binary_rooms[i] != len)
		i++;
	if (i == info->n_binary_rooms) {
		if (i >= OCIL_CONDA_MAX_ROOMS)
			return bad_record(file, err,
					  "binary placeholders of more than %d different lengths",
					  OCIL_CONDA_MAX_ROOMS);
		info->binary_rooms =
		    ocil_xrealloc(info->binary_rooms, (i + 1) * sizeof(*info->binary_rooms));
		info->binary_rooms[info->n_binary_rooms++] = len;
	}
	*mode = (unsigned char)(PH_BINARY + i);
	return 0;
}

/* A noarch: python record's "lib/pythonX.Y/site-packages", from the first
 * of its "files" under such a directory; NULL for other records. mamba
 * 1.5 writes such a record's paths_data with the package's paths
 * (site-packages/..., python-scripts/...) and "files" with the prefix's
 * (seen in a real Miniforge3 updated by `mamba update --all`:
 * conda-meta/archspec-0.2.2-pyhd8ed1ab_0.json). */
static char *noarch_site(const json_t *j)
{
	const json_t *na = json_object_get(j, "noarch");
	const char *type =
	    json_is_object(na) ? ocil_json_opt_string(na, "type") : json_string_value(na);
	const char *pt = ocil_json_opt_string(j, "package_type");
	if ((type == NULL || strcmp(type, "python") != 0) &&
	    (pt == NULL || strcmp(pt, "noarch_python") != 0))
		return NULL;
	size_t i;
	const json_t *f;
	json_array_foreach(json_object_get(j, "files"), i, f)
	{
		const char *s = json_string_value(f);
		if (s == NULL || !ocil_str_has_prefix(s, "lib/python"))
			continue;
		const char *v = s + strlen("lib/python");
		size_t n = strspn(v, "0123456789.");
		if (n > 0 && ocil_str_has_prefix(v + n, "/site-packages/"))
			return ocil_xstrndup(s, (size_t)(v + n - s) + strlen("/site-packages"));
	}
	return NULL;
}

/* site: the record's noarch site-packages (noarch_site), or NULL. */
static int read_paths(inspect_ctx *c, const char *file, const json_t *paths, const char *site,
		      ocil_error **err)
{
	size_t i;
	const json_t *p;
	json_array_foreach(paths, i, p)
	{
		if (!json_is_object(p))
			return bad_record(file, err, "paths_data.paths[%zu] is not an object", i);
		const json_t *pv = json_object_get(p, "_path");
		if (pv == NULL)
			return bad_record(file, err, "paths_data.paths[%zu] has no \"_path\"", i);
		if (!json_is_string(pv))
			return bad_record(file, err,
					  "paths_data.paths[%zu]: \"_path\" is not a string", i);
		const char *rel = json_string_value(pv);
		if (!valid_rel(rel))
			return bad_record(file, err, "path \"%.200s\" is not inside the prefix",
					  rel);
		/* a noarch: python package's path, as mamba records it */
		cleanup_free char *mapped = NULL;
		if (site != NULL && ocil_str_has_prefix(rel, "site-packages/"))
			mapped = ocil_xasprintf("%s%s", site, rel + strlen("site-packages"));
		else if (site != NULL && ocil_str_has_prefix(rel, "python-scripts/"))
			mapped = ocil_xasprintf("bin%s", rel + strlen("python-scripts"));
		if (mapped != NULL)
			rel = mapped;
		char where[256];
		snprintf(where, sizeof(where), "paths_data.paths[%zu] (%.200s): ", i, rel);
		const char *type, *ph, *fm;
		if (opt_str(file, where, p, "path_type", &type, err) < 0 ||
		    opt_str(file, where, p, "prefix_placeholder", &ph, err) < 0 ||
		    opt_str(file, where, p, "file_mode", &fm, err) < 0 ||
		    check_sha256(file, where, p, err) < 0 || check_size(file, where, p, err) < 0)
			return -1;
		unsigned char mode = PH_NONE;
		if (ph != NULL && ph[0] != '\0') {
			/* conda's default file_mode is text */
			if (fm == NULL || strcmp(fm, "text") == 0)
				mode = PH_TEXT;
			else if (strcmp(fm, "binary") == 0) {
				if (binary_mode(c->info, file, rel, strlen(ph), &mode, err) < 0)
					return -1;
			} else
				return bad_record(file, err, "%s: unknown file_mode \"%.40s\"", rel,
						  fm);
		}
		if (record_path(c, file, rel, true, mode, err) < 0)
			return -1;
		bool entry_point = type != NULL && strcmp(type, "unix_python_entry_point") == 0;
		if (c->want_origin && (entry_point || mode == PH_TEXT)) {
			char *o = origin_from_file(c->pfd, rel);
			if (o != NULL) {
				c->info->origin = o;
				c->want_origin = false;
			}
		}
	}
	return 0;
}

/* Old records (and current ones, beside paths_data) list bare paths. */
static int read_files(inspect_ctx *c, const char *file, const json_t *files, ocil_error **err)
{
	if (files == NULL || json_is_null(files))
		return 0;
	if (!json_is_array(files))
		return bad_record(file, err, "\"files\" is not an array");
	size_t i;
	const json_t *f;
	json_array_foreach(files, i, f)
	{
		const char *rel = json_string_value(f);
		if (rel == NULL)
			return bad_record(file, err, "files[%zu] is not a string", i);
		if (!valid_rel(rel))
			return bad_record(file, err, "path \"%.200s\" is not inside the prefix",
					  rel);
		if (record_path(c, file, rel, false, PH_NONE, err) < 0)
			return -1;
	}
	return 0;
}

/* "subdir", or older records' "platform" (+ "arch"); *out NULL when the
 * record says neither. */
static int record_subdir(const char *file, const json_t *j, char **out, ocil_error **err)
{
	const char *subdir, *platform, *arch;
	*out = NULL;
	if (opt_str(file, "", j, "subdir", &subdir, err) < 0 ||
	    opt_str(file, "", j, "platform", &platform, err) < 0 ||
	    opt_str(file, "", j, "arch", &arch, err) < 0)
		return -1;
	static const char subdir_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-_";
	if (subdir != NULL) {
		size_t n = strlen(subdir);
		if (n == 0 || n > SUBDIR_MAX || strspn(subdir, subdir_chars) != n)
			return bad_record(file, err, "subdir \"%.80s\" is not a conda subdir",
					  subdir);
		*out = ocil_xstrdup(subdir);
		return 0;
	}
	if (platform == NULL || (strchr(platform, '-') == NULL && arch == NULL))
		return 0;
	char *made;
	if (strchr(platform, '-') != NULL)
		made = ocil_xstrdup(platform);
	else
		made = ocil_xasprintf("%s-%s", platform,
				      strcmp(arch, "x86_64") == 0 ? "64"
				      : strcmp(arch, "x86") == 0  ? "32"
								  : arch);
	size_t n = strlen(made);
	if (n > SUBDIR_MAX || strspn(made, subdir_chars) != n)
		free(made); /* not ours to judge: the record has no subdir */
	else
		*out = made;
	return 0;
}

static void count_subdir(inspect_ctx *c, const char *subdir)
{
	if (subdir == NULL || strcmp(subdir, "noarch") == 0)
		return;
	for (size_t i = 0; i < c->n_subdirs; i++)
		if (strcmp(c->subdirs[i].name, subdir) == 0) {
			c->subdirs[i].count++;
			return;
		}
	if (c->n_subdirs < MAX_SUBDIRS) {
		c->subdirs[c->n_subdirs].name = ocil_xstrdup(subdir);
		c->subdirs[c->n_subdirs++].count = 1;
	}
}

static char *common_subdir(const inspect_ctx *c)
{
	const char *best = NULL;
	size_t n = 0;
	for (size_t i = 0; i < c->n_subdirs; i++)
		if (c->subdirs[i].count > n ||
		    (c->subdirs[i].count == n && strcmp(c->subdirs[i].name, best) < 0)) {
			best = c->subdirs[i].name;
			n = c->subdirs[i].count;
		}
	return best ? ocil_xstrdup(best) : NULL;
}

static int python_minor(const char *version, char **out)
{
	/* "3.11.2" -> "3.11"; both parts must be numbers */
	const char *p = version;
	size_t digits = strspn(p, "0123456789");
	if (digits == 0 || p[digits] != '.')
		return -1;
	p += digits + 1;
	digits = strspn(p, "0123456789");
	if (digits == 0)
		return -1;
	*out = ocil_xstrndup(version, (size_t)(p + digits - version));
	return 0;
}

static int read_record(inspect_ctx *c, int mfd, const char *name, ocil_error **err)
{
	cleanup_free char *file = ocil_xasprintf("%s/conda-meta/%s", c->prefix, name);
	cleanup_close int fd = openat(mfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", file);
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_read_fd(fd, file, OCIL_CONDA_MAX_RECORD, &buf, &len, err) < 0)
		return -1;
	cleanup_json json_t *j = NULL;
	if (ocil_json_parse_max(buf, len, OCIL_CONDA_MAX_RECORD, file, &j, err) < 0)
		return -1;
	if (!json_is_object(j))
		return bad_record(file, err, "not a JSON object");
	const char *pkg, *version, *build, *channel;
	cleanup_free char *subdir = NULL;
	if (need_str(file, j, "name", &pkg, err) < 0 ||
	    need_str(file, j, "version", &version, err) < 0 ||
	    need_str(file, j, "build", &build, err) < 0 ||
	    opt_str(file, "", j, "channel", &channel, err) < 0 ||
	    check_sha256(file, "", j, err) < 0 || record_subdir(file, j, &subdir, err) < 0)
		return -1;
	if (strcmp(pkg, "python") == 0 && c->info->python_version == NULL) {
		if (strlen(version) > 64)
			return bad_record(file, err, "python record without a usable \"version\"");
		if (python_minor(version, &c->info->python_minor) < 0)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: python version \"%s\" is not X.Y[.Z]", file,
					      version);
		c->info->python_version = ocil_xstrdup(version);
		if (subdir != NULL && strcmp(subdir, "noarch") != 0)
			c->info->subdir = steal_pointer(&subdir);
	} else {
		count_subdir(c, subdir);
	}
	if (strcmp(pkg, "awslambdaric") == 0)
		c->info->has_awslambdaric = true;
	const json_t *pd = json_object_get(j, "paths_data");
	if (pd != NULL && !json_is_null(pd)) {
		const json_t *paths = json_object_get(pd, "paths");
		if (!json_is_object(pd) || !json_is_array(paths))
			return bad_record(file, err, "\"paths_data.paths\" is not an array");
		cleanup_free char *site = noarch_site(j);
		if (read_paths(c, file, paths, site, err) < 0)
			return -1;
	}
	if (read_files(c, file, json_object_get(j, "files"), err) < 0)
		return -1;
	/* the owners above took its index: record_files.n */
	ocil_strv_push(&c->info->record_files, ocil_xstrdup(name));
	ocil_strv_push(&c->info->record_names, ocil_xstrdup(pkg));
	return 0;
}

/* ---- what is installed beside conda ---- */

/* The sorted "python*" directories in lib/. */
static int python_dirs(int pfd, ocil_strv *names)
{
	int fd = openat(pfd, "lib", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return 0; /* no lib/: nothing installed there */
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL && names->n < OCIL_WALK_MAX_WIDTH) {
		struct stat st;
		if (ocil_str_has_prefix(de->d_name, "python") &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			ocil_strv_push(names, ocil_xstrdup(de->d_name));
	}
	closedir(d);
	ocil_strv_sort(names);
	return 0;
}

typedef struct {
	const ocil_strv *excludes;
	const char *base; /* "lib/pythonX.Y/site-packages" */
} editable_ctx;

static bool editable_skip(const ocil_walk_entry *e, void *ud)
{
	editable_ctx *c = ud;
	if (c->excludes->n == 0)
		return false;
	cleanup_free char *rel = ocil_xasprintf("%s/%s", c->base, e->rel);
	return excluded(c->excludes, rel);
}

/* PEP 610: pip install -e writes {"url": ..., "dir_info": {"editable": true}}. */
static int check_direct_url(const ocil_walk_entry *e, ocil_error **err)
{
	/* only <name>.dist-info/direct_url.json */
	cleanup_free char *dir = ocil_xstrndup(e->rel, strlen(e->rel) - strlen(e->name));
	if (!ocil_str_has_suffix(dir, ".dist-info/") || e->st->st_size > (off_t)DIRECT_URL_MAX)
		return 0;
	cleanup_close int fd = -1;
	if (ocil_walk_open(e, &fd, err) < 0)
		return -1;
	cleanup_free char *buf = NULL;
	size_t len = 0;
	if (ocil_read_fd(fd, e->path, DIRECT_URL_MAX, &buf, &len, err) < 0)
		return -1;
	/* not JSON: then it can not say "editable" either */
	cleanup_json json_t *j = json_loadb(buf, len, 0, NULL);
	if (!json_is_true(json_object_get(json_object_get(j, "dir_info"), "editable")))
		return 0;
	const char *url = ocil_json_opt_string(j, "url");
	return ocil_error_set(err, OCIL_E_INPUT,
			      "%s: editable install of %.200s (pip install -e): its code stays "
			      "outside the prefix; install the package without -e",
			      e->path, url ? url : "a source tree");
}

static int editable_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	if (!S_ISREG(e->st->st_mode))
		return 0;
	if (ocil_str_has_suffix(e->name, ".egg-link") ||
	    ocil_str_has_prefix(e->name, "__editable__"))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: editable install (pip install -e or setup.py develop): "
				      "its code stays outside the prefix; install the package "
				      "without -e",
				      e->path);
	if (strcmp(e->name, "direct_url.json") == 0)
		return check_direct_url(e, err);
	return 0;
}

static int check_editables(inspect_ctx *c, ocil_error **err)
{
	cleanup_strv ocil_strv pys = {0};
	python_dirs(c->pfd, &pys);
	for (size_t i = 0; i < pys.n; i++) {
		cleanup_free char *base = ocil_xasprintf("lib/%s/site-packages", pys.v[i]);
		struct stat st;
		if (fstatat(c->pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
		    excluded_path(&c->info->excludes, base))
			continue;
		cleanup_free char *root = ocil_xasprintf("%s/%s", c->prefix, base);
		editable_ctx ec = {.excludes = &c->info->excludes, .base = base};
		ocil_walk_opts wo = {.fn = editable_entry, .skip = editable_skip, .ud = &ec};
		if (ocil_walk(root, &wo, err) < 0)
			return -1;
	}
	return 0;
}

/* pip-installed awslambdaric has no conda record. */
static bool site_has_awslambdaric(int pfd, const char *minor, const ocil_strv *excludes)
{
	cleanup_free char *sp = ocil_xasprintf("lib/python%s/site-packages", minor);
	int fd = openat(pfd, sp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return false;
	}
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		struct stat st;
		found = (strcmp(n, "awslambdaric") == 0 ||
			 fnmatch("awslambdaric*.dist-info", n, 0) == 0 ||
			 fnmatch("awslambdaric*.egg-info", n, 0) == 0) &&
			fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		if (found && excludes->n > 0) {
			cleanup_free char *rel = ocil_xasprintf("%s/%s", sp, n);
			found = !excluded_path(excludes, rel);
		}
	}
	closedir(d);
	return found;
}

static int list_records(const char *prefix, int mfd, ocil_strv *names, ocil_error **err)
{
	int fd = dup(mfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s/conda-meta", prefix);
	}
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d)) != NULL) {
		if (!ocil_str_has_suffix(de->d_name, ".json") || de->d_name[0] == '.')
			continue;
		if (names->n >= OCIL_CONDA_MAX_RECORDS) {
			r = ocil_error_set(err, OCIL_E_INPUT, "%s/conda-meta: more than %d records",
					   prefix, OCIL_CONDA_MAX_RECORDS);
			break;
		}
		ocil_strv_push(names, ocil_xstrdup(de->d_name));
	}
	closedir(d);
	ocil_strv_sort(names);
	return r;
}

static int read_records(inspect_ctx *c, int mfd, ocil_error **err)
{
	cleanup_strv ocil_strv names = {0};
	int r = list_records(c->prefix, mfd, &names, err);
	for (size_t i = 0; r == 0 && i < names.n; i++)
		r = read_record(c, mfd, names.v[i], err);
	c->info->records = names.n;
	if (r == 0 && c->info->subdir == NULL)
		c->info->subdir = common_subdir(c);
	for (size_t i = 0; i < c->n_subdirs; i++)
		free(c->subdirs[i].name);
	return r;
}

static int inspect(const char *prefix, const ocil_conda_inspect_opts *io, ocil_conda_info *info,
		   ocil_error **err)
{
	struct stat st;
	if (stat(prefix, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s", prefix);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "conda prefix %s: not a directory",
				      prefix);
	cleanup_close int pfd = open(prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s", prefix);
	cleanup_close int mfd = openat(pfd, "conda-meta", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s is not a conda prefix: no conda-meta directory", prefix);
	if (mfd < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s/conda-meta", prefix);

	const char *origin_override = io ? io->source_prefix : NULL;
	if (origin_override != NULL) {
		if (origin_override[0] != '/' || strlen(origin_override) > OCIL_REPLACE_MAX)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "prefix origin %.200s: not an absolute path",
					      origin_override);
		info->origin = strip_slashes(ocil_xstrdup(origin_override));
	}
	if (copy_excludes(io, &info->excludes, err) < 0)
		return -1;
	inspect_ctx c = {
	    .prefix = prefix, .pfd = pfd, .info = info, .want_origin = info->origin == NULL};
	if (read_records(&c, mfd, err) < 0)
		return -1;
	if (info->python_version == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "conda prefix %s: no python package in conda-meta (install "
				      "python into the environment)",
				      prefix);
	if (check_editables(&c, err) < 0)
		return -1;
	if (info->origin == NULL) {
		char *real = realpath(prefix, NULL);
		if (real == NULL)
			return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s",
						    prefix);
		info->origin = real;
	}
	if (!info->has_awslambdaric)
		info->has_awslambdaric =
		    site_has_awslambdaric(pfd, info->python_minor, &info->excludes);
	return 0;
}

int ocil_conda_inspect(const char *prefix, const ocil_conda_inspect_opts *io, ocil_conda_info *info,
		       ocil_error **err)
{
	memset(info, 0, sizeof(*info));
	if (inspect(prefix, io, info, err) < 0) {
		ocil_conda_info_clear(info);
		return -1;
	}
	return 0;
}

/* ---- platform ---- */

static const struct {
	const char *subdir, *arch;
} linux_arches[] = {
    {"linux-64", "amd64"},    {"linux-aarch64", "arm64"}, {"linux-32", "386"},
    {"linux-armv6l", "arm"},  {"linux-armv7l", "arm"},	  {"linux-ppc64le", "ppc64le"},
    {"linux-s390x", "s390x"},
};

/* The OCI name of an arch given the kernel's way (x86_64, aarch64). */
static const char *oci_arch(const char *arch)
{
	if (arch != NULL && strcmp(arch, "x86_64") == 0)
		return "amd64";
	if (arch != NULL && strcmp(arch, "aarch64") == 0)
		return "arm64";
	return arch;
}

const char *ocil_conda_subdir_for(const char *os, const char *arch)
{
	if (os == NULL || arch == NULL || strcmp(os, "linux") != 0)
		return NULL;
	arch = oci_arch(arch);
	for (size_t i = 0; i < sizeof(linux_arches) / sizeof(linux_arches[0]); i++)
		if (strcmp(arch, linux_arches[i].arch) == 0)
			return linux_arches[i].subdir;
	return NULL;
}

int ocil_conda_check_platform(const ocil_conda_info *info, const char *os, const char *arch,
			      ocil_error **err)
{
	const char *sd = info->subdir;
	if (sd == NULL)
		return 0;
	arch = oci_arch(arch);
	if (ocil_str_has_prefix(sd, "osx-") || ocil_str_has_prefix(sd, "win-"))
		return ocil_error_set(
		    err, OCIL_E_INPUT,
		    "conda prefix is built for %s; Lambda runs linux (build the "
		    "environment on %s)",
		    sd, arch != NULL && strcmp(arch, "arm64") == 0 ? "linux-aarch64" : "linux-64");
	if (os == NULL || arch == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(linux_arches) / sizeof(linux_arches[0]); i++) {
		if (strcmp(sd, linux_arches[i].subdir) != 0)
			continue;
		if (strcmp(os, "linux") == 0 && strcmp(arch, linux_arches[i].arch) == 0)
			return 0;
		return ocil_error_set(err, OCIL_E_INPUT,
				      "conda prefix is built for %s but the base image is %s/%s",
				      sd, os, arch);
	}
	return 0; /* noarch or a subdir we do not know: nothing to say */
}

/* ---- the layer ---- */

typedef struct {
	const ocil_conda_opts *o;
	ocil_layer_writer *w;
	ocil_conda_report *report;
	const char *origin;
	size_t origin_len, dest_len;
	bool relocate;
	char *first_pyc;      /* for the .pyc summary */
	ocil_pyc_prefix *pyc; /* python sources keep their bytecode valid */
} layer_ctx;

bool ocil_conda_left_out(const ocil_conda_info *info, const ocil_walk_entry *e)
{
	/* package cache, build dirs, nested envs and conda's own config and
	 * lock files are not part of this env */
	static const char *const top[] = {"pkgs", "conda-bld", "envs", ".condarc", ".conda_lock"};
	for (size_t i = 0; e->depth == 1 && i < sizeof(top) / sizeof(top[0]); i++)
		if (strcmp(e->name, top[i]) == 0)
			return true;
	/* files conda renamed to delete later; lock and temp files beside
	 * the records */
	if (ocil_str_has_suffix(e->name, ".conda_trash") ||
	    (e->depth == 2 && e->name[0] == '.' && ocil_str_has_prefix(e->rel, "conda-meta/")))
		return true;
	return excluded(&info->excludes, e->rel);
}

static bool conda_skip(const ocil_walk_entry *e, void *ud)
{
	layer_ctx *c = ud;
	if (ocil_conda_left_out(c->o->info, e))
		return true;
	return c->o->keep != NULL && !c->o->keep(e, c->o->keep_ud);
}

static int writer_sink(void *ud, const void *buf, size_t len, ocil_error **err)
{
	return ocil_layer_writer_write(ud, buf, len, err);
}

static bool shebang_mentions_origin(layer_ctx *c, int fd)
{
	char buf[SHEBANG_MAX];
	ssize_t n = read_head(fd, buf);
	if (n < 2 || buf[0] != '#' || buf[1] != '!')
		return false;
	const char *nl = memchr(buf, '\n', (size_t)n);
	size_t line = nl ? (size_t)(nl - buf) : (size_t)n;
	return memmem(buf, line, c->origin, c->origin_len) != NULL;
}

static int rewind_fd(int fd, const char *what, ocil_error **err)
{
	if (lseek(fd, 0, SEEK_SET) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "seeking in %s", what);
	return 0;
}

/* Stream fd through a replacer into a file entry of the given size;
 * room: a binary placeholder's length, 0 for text. */
static int write_replaced(layer_ctx *c, const ocil_walk_entry *e, const char *path, mode_t mode,
			  int fd, size_t room, uint64_t size, ocil_error **err)
{
	ocil_replacer *r = NULL;
	int made = room > 0 ? ocil_replacer_new_padded(c->origin, c->o->dest, room, writer_sink,
						       c->w, &r, err)
			    : ocil_replacer_new(OCIL_REPLACE_TEXT, c->origin, c->o->dest,
						writer_sink, c->w, &r, err);
	if (made < 0)
		return ocil_error_wrap(err, "%s", e->path);
	int rc = ocil_layer_writer_begin_file(c->w, path, mode, size, err);
	if (rc == 0)
		rc = ocil_replacer_run_fd(r, fd, e->path, c->o->cancel, err);
	ocil_replacer_free(r);
	if (rc == 0)
		rc = ocil_layer_writer_end_file(c->w, err);
	if (rc < 0)
		return ocil_error_wrap(err, "relocating %s", e->path);
	return 0;
}

/* An unmanaged file still holds origin: a warning, or an error in strict
 * mode. .pyc files (pip compiles what it installs; only tracebacks show
 * the path) get one summary line instead. */
static int report_unmanaged(layer_ctx *c, const ocil_walk_entry *e, ocil_error **err)
{
	ocil_conda_report *rep = c->report;
	if (ocil_str_has_suffix(e->name, ".pyc")) {
		if (rep->unmanaged_pyc++ == 0)
			c->first_pyc = ocil_xstrdup(e->rel);
		return 0;
	}
	rep->unmanaged_with_prefix++;
	if (c->o->strict)
		return ocil_error_set(
		    err, OCIL_E_INPUT,
		    "%s: not managed by conda and still contains %s (strict mode)", e->path,
		    c->origin);
	ocil_strv_push(&rep->warnings,
		       ocil_xasprintf("%s: not managed by conda and still contains %s; left as is",
				      e->rel, c->origin));
	return 0;
}

/* Copy an unmanaged file as is, looking for origin on the way; a
 * count-only replacer keeps its state between reads, so a match across
 * two reads is seen too. */
static int add_scanned(layer_ctx *c, const ocil_walk_entry *e, const char *path, mode_t mode,
		       int fd, uint64_t size, ocil_error **err)
{
	ocil_replacer *r = NULL;
	if (ocil_replacer_new(OCIL_REPLACE_TEXT, c->origin, c->origin, NULL, NULL, &r, err) < 0)
		return ocil_error_wrap(err, "%s", e->path);
	int rc = ocil_layer_writer_begin_file(c->w, path, mode, size, err);
	cleanup_free unsigned char *buf = rc == 0 ? ocil_xmalloc(COPY_BUF_SIZE) : NULL;
	uint64_t left = size;
	bool found = false;
	while (rc == 0) {
		if ((rc = ocil_cancel_check(c->o->cancel, err)) < 0)
			break;
		/* read one byte past the end to notice a file that grew */
		size_t want = left < COPY_BUF_SIZE ? (size_t)left + 1 : COPY_BUF_SIZE;
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", e->path);
			break;
		}
		if ((uint64_t)n > left || (n == 0 && left > 0)) {
			rc = ocil_error_set(err, OCIL_E_IO, "%s: changed while it was being read",
					    e->path);
			break;
		}
		if (n == 0)
			break;
		if (!found) {
			rc = ocil_replacer_feed(r, buf, (size_t)n, err);
			found = rc == 0 && ocil_replacer_matches(r) > 0;
			if (found)
				rc = report_unmanaged(c, e, err);
			if (rc < 0)
				break;
		}
		rc = ocil_layer_writer_write(c->w, buf, (size_t)n, err);
		left -= (uint64_t)n;
	}
	ocil_replacer_free(r);
	if (rc == 0)
		rc = ocil_layer_writer_end_file(c->w, err);
	return rc;
}

/* A python source gets the mtime its valid bytecode records (pyc.h);
 * rewritten: its bytes in the layer differ from the file's. */
static void source_mtime(layer_ctx *c, const ocil_walk_entry *e, bool rewritten, uint64_t size)
{
	ocil_pyc_prefix_source(c->pyc, e, rewritten, size, c->w);
}

static int add_regular(layer_ctx *c, const ocil_walk_entry *e, const char *path, ocil_error **err)
{
	cleanup_close int fd = -1;
	if (ocil_walk_open(e, &fd, err) < 0)
		return -1;
	mode_t mode = ocil_layer_file_mode(e->st->st_mode);
	uint64_t size = (uint64_t)e->st->st_size;
	unsigned char how = PH_NONE;
	bool managed = ocil_strmap_get(&c->o->info->files, e->rel, &how);
	if (!c->relocate) {
		source_mtime(c, e, false, size);
		return ocil_layer_writer_add_fd(c->w, path, mode, fd, size, e->path, c->o->cancel,
						err);
	}
	/* entry points conda wrote anywhere; pip's console scripts in bin/ */
	if (how == PH_NONE && (managed || ocil_str_has_prefix(e->rel, "bin/")) &&
	    shebang_mentions_origin(c, fd))
		how = PH_TEXT;
	if (how >= PH_BINARY) {
		source_mtime(c, e, true, size);
		return write_replaced(c, e, path, mode, fd,
				      c->o->info->binary_rooms[how - PH_BINARY], size, err);
	}
	if (how == PH_TEXT) {
		/* counting pass: the tar header needs the new size first */
		ocil_replacer *r = NULL;
		if (ocil_replacer_new(OCIL_REPLACE_TEXT, c->origin, c->o->dest, NULL, NULL, &r,
				      err) < 0)
			return ocil_error_wrap(err, "%s", e->path);
		int rc = ocil_replacer_run_fd(r, fd, e->path, c->o->cancel, err);
		uint64_t out = ocil_replacer_output_size(r), matches = ocil_replacer_matches(r);
		ocil_replacer_free(r);
		if (rc < 0 || rewind_fd(fd, e->path, err) < 0)
			return -1;
		if (matches > 0) {
			source_mtime(c, e, true, out);
			return write_replaced(c, e, path, mode, fd, 0, out, err);
		}
	}
	source_mtime(c, e, false, size);
	/* conda's own metadata is kept as is and not reported */
	if (managed || ocil_str_has_prefix(e->rel, "conda-meta/"))
		return ocil_layer_writer_add_fd(c->w, path, mode, fd, size, e->path, c->o->cancel,
						err);
	return add_scanned(c, e, path, mode, fd, size, err);
}

static bool under(const char *path, const char *dir, size_t len)
{
	return strncmp(path, dir, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

/* Whether a symlink at rel pointing to target stays inside the prefix; a
 * relative target is resolved by its names only (as the image would, for
 * links inside the prefix). */
static bool link_inside(const layer_ctx *c, const char *rel, const char *target)
{
	if (target[0] == '/')
		return under(target, c->origin, c->origin_len) ||
		       under(target, c->o->dest, c->dest_len);
	size_t depth = 0; /* of the link's directory below the prefix */
	for (const char *s = rel; (s = strchr(s, '/')) != NULL; s++)
		depth++;
	for (const char *s = target; *s != '\0';) {
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (depth == 0)
				return false;
			depth--;
		} else if (n > 0 && !(n == 1 && s[0] == '.')) {
			depth++;
		}
		s += n;
		if (*s == '/')
			s++;
	}
	return true;
}

static int add_symlink(layer_ctx *c, const ocil_walk_entry *e, const char *path, ocil_error **err)
{
	cleanup_free char *target = NULL;
	if (ocil_walk_readlink(e, &target, err) < 0)
		return -1;
	if (!link_inside(c, e->rel, target)) {
		c->report->links_outside++;
		ocil_strv_push(
		    &c->report->warnings,
		    ocil_xasprintf("%s -> %s points outside the prefix", e->rel, target));
	}
	if (c->relocate && under(target, c->origin, c->origin_len)) {
		cleanup_free char *moved =
		    ocil_xasprintf("%s%s", c->o->dest, target + c->origin_len);
		return ocil_layer_writer_add_symlink(c->w, path, moved, err);
	}
	return ocil_layer_writer_add_symlink(c->w, path, target, err);
}

static int conda_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	layer_ctx *c = ud;
	cleanup_free char *path = ocil_xasprintf("%s/%s", c->o->dest, e->rel);
	mode_t m = e->st->st_mode;
	if (S_ISDIR(m))
		return ocil_layer_writer_add_dir(c->w, path, ocil_layer_file_mode(m), err);
	if (S_ISREG(m))
		return add_regular(c, e, path, err);
	if (S_ISLNK(m))
		return add_symlink(c, e, path, err);
	return ocil_error_set(err, OCIL_E_INPUT, "%s: a %s can not go into an image layer", e->path,
			      ocil_walk_kind(m));
}

static bool in_layer(const char *rel, void *ud)
{
	const layer_ctx *c = ud;
	return !excluded_path(&c->o->info->excludes, rel);
}

static int write_layer(layer_ctx *c, ocil_error **err)
{
	const ocil_conda_opts *o = c->o;
	struct stat st;
	if (stat(o->prefix, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s", o->prefix);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "conda prefix %s: not a directory",
				      o->prefix);
	if (strlen(o->dest) > OCIL_REPLACE_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "destination %.200s...: too long",
				      o->dest);
	if (ocil_layer_writer_add_parents(c->w, o->dest, err) < 0 ||
	    ocil_layer_writer_add_dir(c->w, o->dest, 0755, err) < 0)
		return -1;
	ocil_walk_opts wo = {.fn = conda_entry, .skip = conda_skip, .ud = c, .cancel = o->cancel};
	c->pyc =
	    ocil_pyc_prefix_new(o->info->python_minor, ocil_layer_writer_mtime(c->w), in_layer, c);
	int r = ocil_walk(o->prefix, &wo, err);
	ocil_pyc_counts *bc = &c->report->bytecode;
	*bc = *ocil_pyc_prefix_counts(c->pyc);
	bc->first_stale = bc->first_stale ? ocil_xstrdup(bc->first_stale) : NULL;
	bc->first_rewritten = bc->first_rewritten ? ocil_xstrdup(bc->first_rewritten) : NULL;
	ocil_pyc_prefix_free(c->pyc);
	if (r < 0)
		return -1;
	if (c->report->unmanaged_pyc > 0)
		ocil_strv_push(&c->report->warnings,
			       ocil_xasprintf("%zu .pyc files not managed by conda (e.g. %s) still "
					      "contain %s, which only tracebacks show; left as is",
					      c->report->unmanaged_pyc, c->first_pyc, c->origin));
	return 0;
}

int ocil_conda_write_layer(const ocil_conda_opts *o, ocil_layer_writer *w,
			   ocil_conda_report *report, ocil_error **err)
{
	if (o->info == NULL || o->info->origin == NULL)
		return ocil_error_set(err, OCIL_E_IO, "conda layer: prefix was not inspected");
	ocil_conda_report discard = {0};
	if (report == NULL)
		report = &discard;
	layer_ctx c = {
	    .o = o,
	    .w = w,
	    .report = report,
	    .origin = o->info->origin,
	    .origin_len = strlen(o->info->origin),
	    .dest_len = strlen(o->dest),
	    .relocate = strcmp(o->info->origin, o->dest) != 0,
	};
	int r = write_layer(&c, err);
	free(c.first_pyc);
	ocil_conda_report_clear(&discard);
	return r;
}
