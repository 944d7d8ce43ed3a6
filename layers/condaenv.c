#include "layers/condaenv.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <ctype.h>

#include "base/json.h"
#include "registry/http.h"

/* Clobber warnings kept, at most; the rest are counted in a last line. */
#define MAX_WARNINGS 50

void ocil_condaenv_clear(ocil_condaenv *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < env->n; i++)
		ocil_condapkg_free(env->pkgs[i]);
	free(env->pkgs);
	for (size_t i = 0; i < env->n_wheels; i++)
		ocil_wheel_free(env->wheels[i]);
	free(env->wheels);
	free(env->wheels_dir);
	ocil_condalock_clear(&env->lock);
	ocil_strv_clear(&env->warnings);
	free(env->lock_path);
	free(env->pkgs_dir);
	memset(env, 0, sizeof(*env));
}

/* "name-version-build.ext": the lock's file name says what the package
 * is; its index.json must agree. */
static int check_fn(const ocil_condapkg *p, const char *lock, unsigned line, ocil_error **err)
{
	cleanup_free char *dist = ocil_xasprintf("%s-%s-%s.", p->name, p->version, p->build);
	if (ocil_str_has_prefix(p->fn, dist))
		return 0;
	return ocil_error_set(err, OCIL_E_INPUT,
			      "%s:%u: %s holds %s-%s-%s according to its info/index.json", lock,
			      line, p->fn, p->name, p->version, p->build);
}

/* dir/fn when it is there (or is there but cannot be looked at: opening
 * it says why), else NULL. */
static char *in_dir(const char *dir, const char *fn)
{
	if (dir == NULL)
		return NULL;
	char *file = ocil_xasprintf("%s/%s", dir, fn);
	struct stat st;
	if (stat(file, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
		return file;
	free(file);
	return NULL;
}

/* Where each entry of the lock is read from: files[0..n_pkgs) for the
 * packages, then files[n_pkgs..) for the lock's wheels. */
typedef struct {
	const ocil_condalock_pkg **lp;
	char **files;
	char **urls;  /* the (mirrored) URL of those not in their directory */
	bool *cached; /* found in the download cache, not downloaded now */
	size_t n;
	const ocil_condaenv_fetch *fe;
} located;

static void located_clear(located *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->files[i]);
		free(l->urls[i]);
	}
	free(l->files);
	free(l->urls);
	free(l->cached);
	free(l->lp);
	memset(l, 0, sizeof(*l));
}

/* The entries missing from the directories, downloaded (or found in the
 * cache) all at once. items[k] is for entry at[k]. */
static int fetch_missing(ocil_condaenv *env, const ocil_condaenv_fetch *fe, located *loc,
			 ocil_fetch_item *items, const size_t *at, size_t n, ocil_error **err)
{
	cleanup_blobstore ocil_blobstore *bs = NULL;
	ocil_error *no_cache = NULL;
	if (ocil_blobstore_open(fe->cache_dir, &bs, &no_cache) < 0 && !fe->fetch.offline) {
		ocil_error_set(err, no_cache->code, "download cache: %s", no_cache->msg);
		ocil_error_free(no_cache);
		return -1;
	}
	ocil_error_free(no_cache);
	for (size_t k = 0; fe->fetch.offline && k < n; k++) {
		char d[OCIL_DIGEST_STR_SIZE];
		const ocil_condalock_pkg *lp = loc->lp[at[k]];
		if (bs != NULL && ocil_fetch_find(bs, lp->sha256, lp->md5, d))
			continue;
		const char *dir = at[k] >= env->lock.n_pkgs ? env->wheels_dir : env->pkgs_dir;
		cleanup_free char *url = ocil_url_redact(items[k].url);
		cleanup_free char *where =
		    dir ? ocil_xasprintf("%s nor in ", dir) : ocil_xstrdup("");
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s:%u: %s is not in %sthe cache, and --offline forbids "
				      "downloading it from %s",
				      env->lock_path, lp->line, lp->fn, where, url);
	}
	size_t failed = n;
	if (ocil_fetch_run(bs, items, n, &fe->fetch, &failed, err) < 0) {
		if (failed < n)
			ocil_error_wrap(err, "%s:%u", env->lock_path, loc->lp[at[failed]]->line);
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		loc->files[at[k]] = ocil_blobstore_path(bs, items[k].digest);
		loc->cached[at[k]] = !items[k].fetched;
		env->n_fetched += items[k].fetched;
	}
	return 0;
}

static ocil_fetch_item item_of(const located *loc, size_t i)
{
	const ocil_condalock_pkg *lp = loc->lp[i];
	return (ocil_fetch_item){
	    .url = loc->urls[i], .name = lp->fn, .sha256 = lp->sha256, .md5 = lp->md5, .size = -1};
}

/* Entry i came from the download cache and could not be opened: when its
 * bytes are not the lock's, the cached copy is damaged; it is dropped and
 * downloaded again. 1: done (files[i] is the new copy); 0: the bytes are
 * right, the error is the package's own; -1: err set. */
static int heal(ocil_condaenv *env, located *loc, size_t i, ocil_error **err)
{
	const ocil_condalock_pkg *lp = loc->lp[i];
	const ocil_condaenv_fetch *fe = loc->fe;
	char md5[33], sha256[65];
	uint64_t size = 0;
	cleanup_error ocil_error *damage = NULL;
	if (ocil_hash_file(loc->files[i], md5, sha256, &size, &damage) == 0 &&
	    ocil_pkgfile_check_hashes(loc->files[i], lp->md5, lp->sha256, md5, sha256, &damage) ==
		0)
		return 0;
	cleanup_free char *url = ocil_url_redact(loc->urls[i]);
	if (fe->fetch.offline)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s:%u: %s: the cached copy is damaged (%s), and --offline "
				      "forbids downloading it again from %s",
				      env->lock_path, lp->line, lp->fn, damage->msg, url);
	if (unlink(loc->files[i]) < 0 && errno != ENOENT)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "removing %s", loc->files[i]);
	cleanup_blobstore ocil_blobstore *bs = NULL;
	ocil_fetch_item it = item_of(loc, i);
	if (ocil_blobstore_open(fe->cache_dir, &bs, err) < 0 ||
	    ocil_fetch_run(bs, &it, 1, &fe->fetch, NULL, err) < 0)
		return ocil_error_wrap(err, "%s:%u", env->lock_path, lp->line);
	free(loc->files[i]);
	loc->files[i] = ocil_blobstore_path(bs, it.digest);
	loc->cached[i] = false;
	env->n_fetched++;
	return 1;
}

/* Open entry i with open (a package or a wheel), healing a damaged cached
 * copy once; errors about a file of the cache name the lock's entry. */
static int open_entry(ocil_condaenv *env, located *loc, size_t i,
		      int (*open)(void *ud, const char *file, ocil_error **err), void *ud,
		      ocil_error **err)
{
	const ocil_condalock_pkg *lp = loc->lp[i];
	ocil_error *first = NULL;
	int r = open(ud, loc->files[i], &first);
	if (r < 0 && loc->cached[i] && first->code == OCIL_E_INPUT) {
		ocil_error *healing = NULL;
		int h = heal(env, loc, i, &healing);
		if (h != 0) {
			ocil_error_free(first);
			first = healing;
		}
		if (h == 1)
			r = open(ud, loc->files[i], &first);
	}
	if (r == 0)
		return 0;
	if (err != NULL && *err == NULL)
		*err = first;
	else
		ocil_error_free(first);
	if (ocil_str_has_suffix(loc->files[i], lp->fn))
		return -1;
	return ocil_error_wrap(err, "%s:%u: %s", env->lock_path, lp->line, lp->fn);
}

/* Find every package of the lock (and every wheel it lists): in its
 * directory, else where the lock's (mirrored) URL says. */
static int locate(ocil_condaenv *env, const ocil_condaenv_fetch *fe, located *loc, ocil_error **err)
{
	const ocil_condalock *l = &env->lock;
	loc->n = l->n_pkgs + l->n_wheels;
	loc->lp = ocil_xcalloc(loc->n + 1, sizeof(*loc->lp));
	loc->files = ocil_xcalloc(loc->n + 1, sizeof(*loc->files));
	loc->urls = ocil_xcalloc(loc->n + 1, sizeof(*loc->urls));
	loc->cached = ocil_xcalloc(loc->n + 1, sizeof(*loc->cached));
	loc->fe = fe;
	cleanup_free ocil_fetch_item *items = ocil_xcalloc(loc->n + 1, sizeof(*items));
	cleanup_free size_t *at = ocil_xcalloc(loc->n + 1, sizeof(*at));
	size_t n = 0;
	for (size_t i = 0; i < loc->n; i++) {
		bool wheel = i >= l->n_pkgs;
		const ocil_condalock_pkg *lp = wheel ? &l->wheels[i - l->n_pkgs] : &l->pkgs[i];
		const char *dir = wheel ? env->wheels_dir : env->pkgs_dir;
		loc->lp[i] = lp;
		loc->files[i] = in_dir(dir, lp->fn);
		if (loc->files[i] != NULL)
			continue;
		if (fe == NULL && wheel && dir == NULL)
			return ocil_error_set(
			    err, OCIL_E_INPUT,
			    "%s lists %zu pip package%s (%s%s); give --wheels-dir", env->lock_path,
			    l->n_wheels, l->n_wheels == 1 ? "" : "s", l->wheels[0].fn,
			    l->n_wheels > 1 ? ", ..." : "");
		if (fe == NULL)
			return ocil_error_set(err, OCIL_E_INPUT, "%s:%u: %s is not in %s",
					      env->lock_path, lp->line, lp->fn, dir);
		char *url = ocil_mirror_apply(fe->mirrors, fe->n_mirrors, lp->url);
		loc->urls[i] = url;
		cleanup_free char *shown = ocil_url_redact(url);
		bool web =
		    strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0;
		if (strncasecmp(url, "file:", 5) == 0) {
			loc->files[i] = ocil_file_url_path(url);
			if (loc->files[i] == NULL)
				return ocil_error_set(err, OCIL_E_INPUT,
						      "%s:%u: %s: %s is not a file URL of this "
						      "machine (file:///PATH)",
						      env->lock_path, lp->line, lp->fn, shown);
			continue;
		}
		if (!web)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s:%u: %s: %s is not an http(s) or file URL",
					      env->lock_path, lp->line, lp->fn, shown);
		items[n] = item_of(loc, i);
		at[n++] = i;
	}
	return n > 0 ? fetch_missing(env, fe, loc, items, at, n, err) : 0;
}

typedef struct {
	ocil_condaenv *env;
	size_t i;
	const char *subdir, *minor; /* wheels */
} open_ctx;

static int open_pkg(void *ud, const char *file, ocil_error **err)
{
	open_ctx *c = ud;
	const ocil_condalock_pkg *lp = &c->env->lock.pkgs[c->i];
	return ocil_condapkg_open_as(file, lp->fn, lp->md5, lp->sha256, &c->env->pkgs[c->i], err);
}

static int open_all(ocil_condaenv *env, located *loc, ocil_error **err)
{
	env->pkgs = ocil_xcalloc(env->lock.n_pkgs + 1, sizeof(*env->pkgs));
	for (size_t i = 0; i < env->lock.n_pkgs; i++) {
		open_ctx c = {.env = env, .i = i};
		if (open_entry(env, loc, i, open_pkg, &c, err) < 0)
			return -1;
		env->n++;
		if (check_fn(env->pkgs[i], env->lock_path, env->lock.pkgs[i].line, err) < 0)
			return -1;
	}
	return 0;
}

/* A path someone installs: conda packages in lock order, then wheels. */
typedef struct {
	const char *target, *fn;
	size_t order, seq;
	bool dir;
	bool *clobbered;
} owner;

static int by_target(const void *a, const void *b)
{
	const owner *x = a, *y = b;
	int c = strcmp(x->target, y->target);
	if (c != 0)
		return c;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static owner *collect_owners(ocil_condaenv *env, size_t *n)
{
	size_t cap = 0, k = 0;
	for (size_t i = 0; i < env->n; i++)
		cap += env->pkgs[i]->n_paths;
	for (size_t i = 0; i < env->n_wheels; i++)
		cap += env->wheels[i]->n_files;
	owner *v = ocil_xcalloc(cap + 1, sizeof(*v));
	for (size_t i = 0; i < env->n; i++)
		for (size_t j = 0; j < env->pkgs[i]->n_paths; j++) {
			ocil_condapkg_path *pp = &env->pkgs[i]->paths[j];
			v[k++] = (owner){pp->target,
					 env->pkgs[i]->fn,
					 i,
					 j,
					 strcmp(pp->path_type, "directory") == 0,
					 &pp->clobbered};
		}
	for (size_t i = 0; i < env->n_wheels; i++)
		for (size_t j = 0; j < env->wheels[i]->n_files; j++) {
			ocil_wheel_file *f = &env->wheels[i]->files[j];
			v[k++] = (owner){f->target, env->wheels[i]->fn, env->n + i, j,
					 false,	    &f->clobbered};
		}
	*n = k;
	return v;
}

/* Two packages with the same path: the later one wins (conda packages in
 * lock order, then wheels). */
static void resolve_conflicts(ocil_condaenv *env)
{
	size_t n = 0, clobbered = 0;
	owner *v = collect_owners(env, &n);
	qsort(v, n, sizeof(*v), by_target);
	for (size_t i = 0; i + 1 < n; i++) {
		if (strcmp(v[i].target, v[i + 1].target) != 0 || (v[i].dir && v[i + 1].dir))
			continue;
		*v[i].clobbered = true;
		if (v[i].order == v[i + 1].order)
			continue; /* an entry point over the package's own file */
		if (clobbered++ < MAX_WARNINGS)
			ocil_strv_push(&env->warnings,
				       ocil_xasprintf("%s is in both %s and %s; %s, later in the "
						      "lock, wins",
						      v[i].target, v[i].fn, v[i + 1].fn,
						      v[i + 1].fn));
	}
	if (clobbered > MAX_WARNINGS)
		ocil_strv_push(&env->warnings,
			       ocil_xasprintf("%zu more paths are in more than one package",
					      clobbered - MAX_WARNINGS));
	free(v);
}

/* "awslambdaric", "AWS-Lambda_ric" -> pip's normalized form */
static bool same_project(const char *a, const char *b)
{
	for (;; a++, b++) {
		char x = *a == '-' || *a == '.' ? '_' : (char)tolower((unsigned char)*a);
		char y = *b == '-' || *b == '.' ? '_' : (char)tolower((unsigned char)*b);
		if (x != y)
			return false;
		if (x == '\0')
			return true;
	}
}

static const char *arch_of(const char *subdir)
{
	if (strcmp(subdir, "linux-64") == 0)
		return "x86_64";
	const char *dash = strchr(subdir, '-');
	return dash ? dash + 1 : subdir;
}

static int list_wheels(const char *dir, ocil_strv *out, ocil_error **err)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "wheels directory %s", dir);
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		if (ocil_str_has_suffix(de->d_name, ".whl") && de->d_name[0] != '.')
			ocil_strv_push(out, ocil_xstrdup(de->d_name));
	closedir(d);
	ocil_strv_sort(out);
	return 0;
}

static int open_wheel(void *ud, const char *file, ocil_error **err)
{
	open_ctx *c = ud;
	const ocil_condalock_pkg *lp = &c->env->lock.wheels[c->i];
	return ocil_wheel_open_as(file, lp->fn, lp->sha256, c->minor, arch_of(c->subdir),
				  &c->env->wheels[c->i], err);
}

/* The lock's pip entries (located); without any, every wheel of
 * wheels_dir. */
static int open_wheels(ocil_condaenv *env, located *loc, const char *subdir, const char *minor,
		       ocil_error **err)
{
	const ocil_condalock *l = &env->lock;
	if (l->n_wheels == 0 && env->wheels_dir == NULL)
		return 0;
	cleanup_strv ocil_strv names = {0};
	if (l->n_wheels == 0 && list_wheels(env->wheels_dir, &names, err) < 0)
		return -1;
	size_t n = l->n_wheels > 0 ? l->n_wheels : names.n;
	env->wheels = ocil_xcalloc(n + 1, sizeof(*env->wheels));
	for (size_t i = 0; i < n; i++) {
		open_ctx c = {.env = env, .i = i, .subdir = subdir, .minor = minor};
		int r = 0;
		if (l->n_wheels > 0) {
			r = open_entry(env, loc, l->n_pkgs + i, open_wheel, &c, err);
		} else {
			cleanup_free char *file =
			    ocil_xasprintf("%s/%s", env->wheels_dir, names.v[i]);
			r = ocil_wheel_open(file, NULL, minor, arch_of(subdir), &env->wheels[i],
					    err);
		}
		if (r < 0)
			return -1;
		env->n_wheels++;
	}
	return 0;
}

static int load(ocil_condaenv *env, const ocil_condaenv_fetch *fe, const char *subdir,
		ocil_conda_info *info, ocil_error **err)
{
	__attribute__((cleanup(located_clear))) located loc = {0};
	if (ocil_condalock_read(env->lock_path, subdir, &env->lock, err) < 0 ||
	    locate(env, fe, &loc, err) < 0 || open_all(env, &loc, err) < 0)
		return -1;
	for (size_t i = 0; i < env->n; i++) {
		const ocil_condapkg *p = env->pkgs[i];
		if (strcmp(p->name, "python") == 0 && info->python_version == NULL) {
			info->python_version = ocil_xstrdup(p->version);
			const char *dot = strchr(p->version, '.');
			size_t n =
			    dot ? 1 + (size_t)(dot - p->version) + strspn(dot + 1, "0123456789")
				: strlen(p->version);
			info->python_minor = ocil_xstrndup(p->version, n);
		}
		if (strcmp(p->name, "awslambdaric") == 0)
			info->has_awslambdaric = true;
	}
	if (info->python_version == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: no python package (the environment needs python)",
				      env->lock_path);
	for (size_t i = 0; i < env->n; i++)
		if (ocil_condapkg_map(env->pkgs[i], info->python_minor, err) < 0)
			return -1;
	if (open_wheels(env, &loc, subdir, info->python_minor, err) < 0)
		return -1;
	for (size_t i = 0; i < env->n_wheels; i++)
		if (same_project(env->wheels[i]->name, "awslambdaric"))
			info->has_awslambdaric = true;
	resolve_conflicts(env);
	info->subdir = ocil_xstrdup(subdir);
	info->records = env->n;
	return 0;
}

static int check_dir(const char *what, const char *dir, ocil_error **err)
{
	struct stat st;
	if (dir == NULL)
		return 0;
	if (stat(dir, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s %s", what, dir);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "%s %s: not a directory", what, dir);
	return 0;
}

int ocil_condaenv_load(const char *lock, const char *pkgs_dir, const char *wheels_dir,
		       const ocil_condaenv_fetch *fetch, const char *subdir, ocil_condaenv *env,
		       ocil_conda_info *info, ocil_error **err)
{
	memset(env, 0, sizeof(*env));
	memset(info, 0, sizeof(*info));
	env->lock_path = ocil_xstrdup(lock);
	env->pkgs_dir = pkgs_dir ? ocil_xstrdup(pkgs_dir) : NULL;
	env->wheels_dir = wheels_dir ? ocil_xstrdup(wheels_dir) : NULL;
	if (check_dir("packages directory", pkgs_dir, err) < 0 ||
	    check_dir("wheels directory", wheels_dir, err) < 0 ||
	    load(env, fetch, subdir, info, err) < 0) {
		ocil_condaenv_clear(env);
		ocil_conda_info_clear(info);
		return -1;
	}
	return 0;
}

/* ---- the layer ---- */

static json_t *record_of(const ocil_condaenv *env, size_t i, const char *dest)
{
	const ocil_condalock_pkg *lp = &env->lock.pkgs[i];
	cleanup_free char *channel = ocil_xasprintf("%s/%s", lp->channel, lp->subdir);
	cleanup_free char *cache = ocil_xasprintf("%s/pkgs", dest);
	return ocil_condapkg_record(env->pkgs[i], channel, lp->public_url, cache);
}

static char *dist_of(const ocil_condapkg *p)
{
	return ocil_xasprintf("%s-%s-%s", p->name, p->version, p->build);
}

/* conda-meta/history: conda (and `conda list`) take a prefix with it for
 * an environment. One action block, as conda writes it: channels by the
 * name conda gives them ("conda-forge/linux-64::python-3.11.2-h_0"). */
char *ocil_condaenv_history(const ocil_condaenv *env, int64_t created)
{
	time_t t = (time_t)created;
	struct tm tm;
	char when[64];
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	const char *slash = strrchr(env->lock_path, '/');
	char *s = ocil_xasprintf("==> %s <==\n# cmd: ocilambda assemble --conda-lock %s\n"
				 "# ocilambda version: %s\n",
				 when, slash ? slash + 1 : env->lock_path, OCIL_VERSION);
	for (size_t i = 0; i < env->n; i++) {
		const ocil_condalock_pkg *lp = &env->lock.pkgs[i];
		cleanup_free char *dist = dist_of(env->pkgs[i]);
		ocil_sbom_package sp = {.channel = lp->channel, .subdir = lp->subdir};
		cleanup_free char *channel = ocil_sbom_channel_name(&sp);
		char *n = ocil_xasprintf("%s+%s/%s::%s\n", s, channel, lp->subdir, dist);
		free(s);
		s = n;
	}
	return s;
}

static int write_meta(ocil_condaenv *env, const ocil_condaenv_opts *o, ocil_layer_writer *w,
		      ocil_error **err)
{
	const ocil_condaenv_part *part = o->part;
	bool any = part == NULL || part->history;
	for (size_t i = 0; !any && i < env->n; i++)
		any = part->pkgs[i];
	if (!any)
		return 0;
	cleanup_free char *meta = ocil_xasprintf("%s/conda-meta", o->dest);
	if (ocil_layer_writer_add_dir(w, meta, 0755, err) < 0)
		return -1;
	for (size_t i = 0; i < env->n; i++) {
		if (part != NULL && !part->pkgs[i])
			continue;
		cleanup_json json_t *rec = record_of(env, i, o->dest);
		cleanup_free char *dist = dist_of(env->pkgs[i]);
		cleanup_free char *path = ocil_xasprintf("%s/%s.json", meta, dist);
		cleanup_free char *text = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
		cleanup_free char *body = ocil_xasprintf("%s\n", text);
		if (ocil_layer_writer_add_file(w, path, 0644, body, strlen(body), err) < 0)
			return ocil_error_wrap(err, "conda-meta/%s.json", dist);
	}
	if (part != NULL && !part->history)
		return 0;
	cleanup_free char *path = ocil_xasprintf("%s/history", meta);
	cleanup_free char *h = ocil_condaenv_history(env, o->created);
	return ocil_layer_writer_add_file(w, path, 0644, h, strlen(h), err);
}

int ocil_condaenv_write_layer(ocil_condaenv *env, const ocil_condaenv_opts *o, ocil_layer_writer *w,
			      ocil_error **err)
{
	if (ocil_layer_writer_add_parents(w, o->dest, err) < 0 ||
	    ocil_layer_writer_add_dir(w, o->dest, 0755, err) < 0)
		return -1;
	ocil_condapkg_install_opts io = {.dest = o->dest,
					 .python_minor = o->minor,
					 .cancel = o->cancel,
					 .strict = o->strict,
					 .warnings = o->warnings};
	for (size_t i = 0; i < env->n; i++) {
		if (o->part != NULL && !o->part->pkgs[i])
			continue;
		if (ocil_cancel_check(o->cancel, err) < 0 ||
		    ocil_condapkg_install(env->pkgs[i], &io, w, err) < 0)
			return -1;
	}
	ocil_wheel_install_opts wo = {.dest = o->dest, .minor = o->minor, .cancel = o->cancel};
	for (size_t i = 0; i < env->n_wheels; i++)
		if ((o->part == NULL || o->part->wheels[i]) &&
		    ocil_wheel_install(env->wheels[i], &wo, w, err) < 0)
			return -1;
	return write_meta(env, o, w, err);
}

int ocil_condaenv_sbom_packages(const ocil_condaenv *env, ocil_sbom_packages *out, ocil_error **err)
{
	for (size_t i = 0; i < env->n; i++) {
		cleanup_json json_t *rec = record_of(env, i, "/");
		ocil_sbom_package p = {0};
		if (ocil_sbom_package_from_record(rec, env->pkgs[i]->fn, &p, err) < 0)
			return -1;
		ocil_sbom_packages_push(out, &p);
	}
	ocil_sbom_packages_sort(out);
	return 0;
}
