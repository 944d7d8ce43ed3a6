#include "condaenv.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "json.h"

/* Clobber warnings kept, at most; the rest are counted in a last line. */
#define MAX_WARNINGS 50

void ocil_condaenv_clear(ocil_condaenv *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < env->n; i++)
		ocil_condapkg_free(env->pkgs[i]);
	free(env->pkgs);
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

static int open_all(ocil_condaenv *env, ocil_error **err)
{
	env->pkgs = ocil_xcalloc(env->lock.n_pkgs + 1, sizeof(*env->pkgs));
	for (size_t i = 0; i < env->lock.n_pkgs; i++) {
		const ocil_condalock_pkg *lp = &env->lock.pkgs[i];
		cleanup_free char *file = ocil_xasprintf("%s/%s", env->pkgs_dir, lp->fn);
		struct stat st;
		if (stat(file, &st) < 0 && (errno == ENOENT || errno == ENOTDIR))
			return ocil_error_set(err, OCIL_E_INPUT, "%s:%u: %s is not in %s",
					      env->lock_path, lp->line, lp->fn, env->pkgs_dir);
		if (ocil_condapkg_open(file, lp->md5, lp->sha256, &env->pkgs[i], err) < 0)
			return -1;
		env->n++;
		if (check_fn(env->pkgs[i], env->lock_path, lp->line, err) < 0)
			return -1;
	}
	return 0;
}

typedef struct {
	const char *target;
	size_t pkg, path;
} owner;

static int by_target(const void *a, const void *b)
{
	const owner *x = a, *y = b;
	int c = strcmp(x->target, y->target);
	if (c != 0)
		return c;
	return x->pkg < y->pkg ? -1 : x->pkg > y->pkg;
}

/* Two packages with the same path: the later in the lock wins. */
static void resolve_conflicts(ocil_condaenv *env)
{
	size_t n = 0;
	for (size_t i = 0; i < env->n; i++)
		n += env->pkgs[i]->n_paths;
	owner *v = ocil_xcalloc(n + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < env->n; i++)
		for (size_t j = 0; j < env->pkgs[i]->n_paths; j++)
			v[k++] = (owner){env->pkgs[i]->paths[j].target, i, j};
	qsort(v, n, sizeof(*v), by_target);
	size_t clobbered = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (strcmp(v[i].target, v[i + 1].target) != 0)
			continue;
		ocil_condapkg_path *pp = &env->pkgs[v[i].pkg]->paths[v[i].path];
		const ocil_condapkg_path *winner = &env->pkgs[v[i + 1].pkg]->paths[v[i + 1].path];
		if (strcmp(pp->path_type, "directory") == 0 &&
		    strcmp(winner->path_type, "directory") == 0)
			continue;
		pp->clobbered = true;
		if (v[i].pkg == v[i + 1].pkg)
			continue; /* an entry point over the package's own file */
		if (clobbered++ < MAX_WARNINGS)
			ocil_strv_push(&env->warnings,
				       ocil_xasprintf("%s is in both %s and %s; %s, later in the "
						      "lock, wins",
						      v[i].target, env->pkgs[v[i].pkg]->fn,
						      env->pkgs[v[i + 1].pkg]->fn,
						      env->pkgs[v[i + 1].pkg]->fn));
	}
	if (clobbered > MAX_WARNINGS)
		ocil_strv_push(&env->warnings,
			       ocil_xasprintf("%zu more paths are in more than one package",
					      clobbered - MAX_WARNINGS));
	free(v);
}

static int load(ocil_condaenv *env, const char *subdir, ocil_conda_info *info, ocil_error **err)
{
	if (ocil_condalock_read(env->lock_path, subdir, &env->lock, err) < 0 ||
	    open_all(env, err) < 0)
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
	resolve_conflicts(env);
	info->subdir = ocil_xstrdup(subdir);
	info->records = env->n;
	return 0;
}

int ocil_condaenv_load(const char *lock, const char *pkgs_dir, const char *subdir,
		       ocil_condaenv *env, ocil_conda_info *info, ocil_error **err)
{
	memset(env, 0, sizeof(*env));
	memset(info, 0, sizeof(*info));
	env->lock_path = ocil_xstrdup(lock);
	env->pkgs_dir = ocil_xstrdup(pkgs_dir);
	struct stat st;
	int r = 0;
	if (stat(pkgs_dir, &st) < 0)
		r = ocil_error_set_errno(err, OCIL_E_INPUT, errno, "packages directory %s",
					 pkgs_dir);
	else if (!S_ISDIR(st.st_mode))
		r = ocil_error_set(err, OCIL_E_INPUT, "packages directory %s: not a directory",
				   pkgs_dir);
	if (r < 0 || load(env, subdir, info, err) < 0) {
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
	return ocil_condapkg_record(env->pkgs[i], channel, lp->url, cache);
}

static char *dist_of(const ocil_condapkg *p)
{
	return ocil_xasprintf("%s-%s-%s", p->name, p->version, p->build);
}

/* conda-meta/history: conda (and `conda list`) take a prefix with it for
 * an environment. */
static char *history(const ocil_condaenv *env, int64_t created)
{
	time_t t = (time_t)created;
	struct tm tm;
	char when[64];
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	char *s = ocil_xasprintf("==> %s <==\n# cmd: ocilambda assemble --conda-lock %s\n", when,
				 strrchr(env->lock_path, '/') ? strrchr(env->lock_path, '/') + 1
							      : env->lock_path);
	for (size_t i = 0; i < env->n; i++) {
		const ocil_condalock_pkg *lp = &env->lock.pkgs[i];
		cleanup_free char *dist = dist_of(env->pkgs[i]);
		char *n = ocil_xasprintf("%s+%s/%s::%s\n", s, lp->channel, lp->subdir, dist);
		free(s);
		s = n;
	}
	return s;
}

static int write_meta(ocil_condaenv *env, const ocil_condaenv_opts *o, ocil_layer_writer *w,
		      ocil_error **err)
{
	cleanup_free char *meta = ocil_xasprintf("%s/conda-meta", o->dest);
	if (ocil_layer_writer_add_dir(w, meta, 0755, err) < 0)
		return -1;
	for (size_t i = 0; i < env->n; i++) {
		cleanup_json json_t *rec = record_of(env, i, o->dest);
		cleanup_free char *dist = dist_of(env->pkgs[i]);
		cleanup_free char *path = ocil_xasprintf("%s/%s.json", meta, dist);
		cleanup_free char *text = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);
		cleanup_free char *body = ocil_xasprintf("%s\n", text);
		if (ocil_layer_writer_add_file(w, path, 0644, body, strlen(body), err) < 0)
			return ocil_error_wrap(err, "conda-meta/%s.json", dist);
	}
	cleanup_free char *path = ocil_xasprintf("%s/history", meta);
	cleanup_free char *h = history(env, o->created);
	return ocil_layer_writer_add_file(w, path, 0644, h, strlen(h), err);
}

int ocil_condaenv_write_layer(ocil_condaenv *env, const ocil_condaenv_opts *o, ocil_layer_writer *w,
			      ocil_error **err)
{
	if (ocil_layer_writer_add_parents(w, o->dest, err) < 0 ||
	    ocil_layer_writer_add_dir(w, o->dest, 0755, err) < 0)
		return -1;
	ocil_condapkg_install_opts io = {
	    .dest = o->dest, .python_minor = o->minor, .cancel = o->cancel};
	for (size_t i = 0; i < env->n; i++) {
		if (ocil_cancel_check(o->cancel, err) < 0 ||
		    ocil_condapkg_install(env->pkgs[i], &io, w, err) < 0)
			return -1;
	}
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
