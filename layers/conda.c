#include "conda.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "replace.h"
#include "walk.h"

/* How much of a file's start we read to look at its #! line. */
#define SHEBANG_MAX 4096

enum { PH_NONE = 0, PH_TEXT = 1, PH_BINARY = 2 };

void ocil_conda_info_clear(ocil_conda_info *info)
{
	if (info == NULL)
		return;
	free(info->python_version);
	free(info->python_minor);
	free(info->origin);
	free(info->subdir);
	ocil_strmap_clear(&info->placeholders);
	memset(info, 0, sizeof(*info));
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

typedef struct {
	const char *prefix;
	int pfd;
	ocil_conda_info *info;
	bool want_origin;
	size_t files;
} inspect_ctx;

static int bad_record(const char *file, ocil_error **err, const char *what)
{
	return ocil_error_set(err, OCIL_E_INPUT, "%s: malformed conda record: %s", file, what);
}

static int read_paths(inspect_ctx *c, const char *file, const json_t *paths, ocil_error **err)
{
	size_t i;
	const json_t *p;
	json_array_foreach(paths, i, p)
	{
		const char *rel = ocil_json_opt_string(p, "_path");
		if (rel == NULL)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: malformed conda record: paths_data.paths[%zu] "
					      "has no \"_path\"",
					      file, i);
		if (!valid_rel(rel))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: malformed conda record: path \"%.200s\" is not "
					      "inside the prefix",
					      file, rel);
		if (++c->files > OCIL_CONDA_MAX_FILES)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "conda prefix %s: more than %d recorded files",
					      c->prefix, OCIL_CONDA_MAX_FILES);
		const char *type = ocil_json_opt_string(p, "path_type");
		const char *ph = ocil_json_opt_string(p, "prefix_placeholder");
		const char *fm = ocil_json_opt_string(p, "file_mode");
		int mode = PH_NONE;
		if (ph != NULL && ph[0] != '\0') {
			/* conda's default file_mode is text */
			if (fm == NULL || strcmp(fm, "text") == 0)
				mode = PH_TEXT;
			else if (strcmp(fm, "binary") == 0)
				mode = PH_BINARY;
			else
				return ocil_error_set(err, OCIL_E_INPUT,
						      "%s: malformed conda record: %s: unknown "
						      "file_mode \"%.40s\"",
						      file, rel, fm);
			/* a later record wins: conda lets a package overwrite
			 * another's file */
			ocil_strmap_put(&c->info->placeholders, rel, (unsigned char)mode);
		}
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
	const char *pkg = ocil_json_opt_string(j, "name");
	if (pkg == NULL)
		return bad_record(file, err, "no \"name\"");
	const char *version = ocil_json_opt_string(j, "version");
	const char *subdir = ocil_json_opt_string(j, "subdir");
	if (strcmp(pkg, "python") == 0 && c->info->python_version == NULL) {
		if (version == NULL || strlen(version) > 64)
			return bad_record(file, err, "python record without a usable \"version\"");
		if (python_minor(version, &c->info->python_minor) < 0)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: python version \"%s\" is not X.Y[.Z]", file,
					      version);
		c->info->python_version = ocil_xstrdup(version);
		if (subdir != NULL && strlen(subdir) <= 64)
			c->info->subdir = ocil_xstrdup(subdir);
	}
	if (strcmp(pkg, "awslambdaric") == 0)
		c->info->has_awslambdaric = true;
	const json_t *pd = json_object_get(j, "paths_data");
	if (pd == NULL || json_is_null(pd))
		return 0; /* old records only have "files": nothing to relocate */
	const json_t *paths = json_object_get(pd, "paths");
	if (!json_is_object(pd) || !json_is_array(paths))
		return bad_record(file, err, "\"paths_data.paths\" is not an array");
	return read_paths(c, file, paths, err);
}

/* pip-installed awslambdaric has no conda record. */
static bool site_has_awslambdaric(int pfd, const char *minor)
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
		struct stat st;
		found = ocil_str_has_prefix(de->d_name, "awslambdaric") &&
			fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			S_ISDIR(st.st_mode);
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

static char *strip_slashes(char *s)
{
	size_t n = strlen(s);
	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
	return s;
}

static int inspect(const char *prefix, const char *origin_override, ocil_conda_info *info,
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

	if (origin_override != NULL) {
		if (origin_override[0] != '/' || strlen(origin_override) > OCIL_REPLACE_MAX)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "prefix origin %.200s: not an absolute path",
					      origin_override);
		info->origin = strip_slashes(ocil_xstrdup(origin_override));
	}
	ocil_strv names = {0};
	int r = list_records(prefix, mfd, &names, err);
	inspect_ctx c = {
	    .prefix = prefix, .pfd = pfd, .info = info, .want_origin = info->origin == NULL};
	for (size_t i = 0; r == 0 && i < names.n; i++)
		r = read_record(&c, mfd, names.v[i], err);
	info->records = names.n;
	ocil_strv_clear(&names);
	if (r < 0)
		return -1;
	if (info->python_version == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "conda prefix %s: no python package in conda-meta (install "
				      "python into the environment)",
				      prefix);
	if (info->origin == NULL) {
		char *real = realpath(prefix, NULL);
		if (real == NULL)
			return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s",
						    prefix);
		info->origin = real;
	}
	if (!info->has_awslambdaric)
		info->has_awslambdaric = site_has_awslambdaric(pfd, info->python_minor);
	return 0;
}

int ocil_conda_inspect(const char *prefix, const char *origin_override, ocil_conda_info *info,
		       ocil_error **err)
{
	memset(info, 0, sizeof(*info));
	if (inspect(prefix, origin_override, info, err) < 0) {
		ocil_conda_info_clear(info);
		return -1;
	}
	return 0;
}

/* ---- the layer ---- */

typedef struct {
	const ocil_conda_opts *o;
	ocil_layer_writer *w;
	const char *origin;
	size_t origin_len;
	bool relocate;
} layer_ctx;

static bool conda_skip(const ocil_walk_entry *e, void *ud)
{
	/* package cache, build dirs and nested envs are not part of this env */
	return e->depth == 1 && (strcmp(e->name, "pkgs") == 0 ||
				 strcmp(e->name, "conda-bld") == 0 || strcmp(e->name, "envs") == 0);
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

/* Stream fd through a replacer into a file entry of the given size. */
static int write_replaced(layer_ctx *c, const ocil_walk_entry *e, const char *path, mode_t mode,
			  int fd, ocil_replace_mode how, uint64_t size, ocil_error **err)
{
	ocil_replacer *r = NULL;
	if (ocil_replacer_new(how, c->origin, c->o->dest, writer_sink, c->w, &r, err) < 0)
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

static int add_regular(layer_ctx *c, const ocil_walk_entry *e, const char *path, ocil_error **err)
{
	cleanup_close int fd = -1;
	if (ocil_walk_open(e, &fd, err) < 0)
		return -1;
	mode_t mode = ocil_layer_file_mode(e->st->st_mode);
	uint64_t size = (uint64_t)e->st->st_size;
	unsigned char how = PH_NONE;
	if (c->relocate) {
		ocil_strmap_get(&c->o->info->placeholders, e->rel, &how);
		if (how == PH_NONE && shebang_mentions_origin(c, fd))
			how = PH_TEXT;
	}
	if (how == PH_BINARY)
		return write_replaced(c, e, path, mode, fd, OCIL_REPLACE_BINARY, size, err);
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
		if (matches > 0)
			return write_replaced(c, e, path, mode, fd, OCIL_REPLACE_TEXT, out, err);
	}
	return ocil_layer_writer_add_fd(c->w, path, mode, fd, size, e->path, c->o->cancel, err);
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
	if (S_ISLNK(m)) {
		cleanup_free char *target = NULL;
		if (ocil_walk_readlink(e, &target, err) < 0)
			return -1;
		const char *rest = target + c->origin_len;
		if (c->relocate && strncmp(target, c->origin, c->origin_len) == 0 &&
		    (*rest == '\0' || *rest == '/')) {
			cleanup_free char *moved = ocil_xasprintf("%s%s", c->o->dest, rest);
			return ocil_layer_writer_add_symlink(c->w, path, moved, err);
		}
		return ocil_layer_writer_add_symlink(c->w, path, target, err);
	}
	return ocil_error_set(err, OCIL_E_INPUT, "%s: a %s can not go into an image layer", e->path,
			      ocil_walk_kind(m));
}

int ocil_conda_write_layer(const ocil_conda_opts *o, ocil_layer_writer *w, ocil_error **err)
{
	if (o->info == NULL || o->info->origin == NULL)
		return ocil_error_set(err, OCIL_E_IO, "conda layer: prefix was not inspected");
	struct stat st;
	if (stat(o->prefix, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s", o->prefix);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "conda prefix %s: not a directory",
				      o->prefix);
	if (strlen(o->dest) > OCIL_REPLACE_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "destination %.200s...: too long",
				      o->dest);
	if (ocil_layer_writer_add_parents(w, o->dest, err) < 0 ||
	    ocil_layer_writer_add_dir(w, o->dest, 0755, err) < 0)
		return -1;
	layer_ctx c = {
	    .o = o,
	    .w = w,
	    .origin = o->info->origin,
	    .origin_len = strlen(o->info->origin),
	    .relocate = strcmp(o->info->origin, o->dest) != 0,
	};
	ocil_walk_opts wo = {.fn = conda_entry, .skip = conda_skip, .ud = &c, .cancel = o->cancel};
	return ocil_walk(o->prefix, &wo, err);
}
