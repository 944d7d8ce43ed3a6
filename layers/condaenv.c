#include "condaenv.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ctype.h>

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

/* Whether the file the lock names at lp is missing from dir (then the
 * error says so, with the lock's line); other failures are for opening it
 * to report. */
static bool not_there(const ocil_condaenv *env, const char *file, const ocil_condalock_pkg *lp,
		      const char *fn, const char *dir, ocil_error **err)
{
	struct stat st;
	if (stat(file, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
		return false;
	ocil_error_set(err, OCIL_E_INPUT, "%s:%u: %s is not in %s", env->lock_path, lp->line, fn,
		       dir);
	return true;
}

static int open_all(ocil_condaenv *env, ocil_error **err)
{
	env->pkgs = ocil_xcalloc(env->lock.n_pkgs + 1, sizeof(*env->pkgs));
	for (size_t i = 0; i < env->lock.n_pkgs; i++) {
		const ocil_condalock_pkg *lp = &env->lock.pkgs[i];
		cleanup_free char *file = ocil_xasprintf("%s/%s", env->pkgs_dir, lp->fn);
		if (not_there(env, file, lp, lp->fn, env->pkgs_dir, err))
			return -1;
		if (ocil_condapkg_open(file, lp->md5, lp->sha256, &env->pkgs[i], err) < 0)
			return -1;
		env->n++;
		if (check_fn(env->pkgs[i], env->lock_path, lp->line, err) < 0)
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

/* The lock's pip entries from wheels_dir; without any, every wheel there. */
static int open_wheels(ocil_condaenv *env, const char *subdir, const char *minor, ocil_error **err)
{
	const ocil_condalock *l = &env->lock;
	if (l->n_wheels > 0 && env->wheels_dir == NULL)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s lists %zu pip package%s (%s%s); give --wheels-dir",
				      env->lock_path, l->n_wheels, l->n_wheels == 1 ? "" : "s",
				      l->wheels[0].fn, l->n_wheels > 1 ? ", ..." : "");
	if (env->wheels_dir == NULL)
		return 0;
	cleanup_strv ocil_strv names = {0};
	if (l->n_wheels == 0 && list_wheels(env->wheels_dir, &names, err) < 0)
		return -1;
	size_t n = l->n_wheels > 0 ? l->n_wheels : names.n;
	env->wheels = ocil_xcalloc(n + 1, sizeof(*env->wheels));
	for (size_t i = 0; i < n; i++) {
		const ocil_condalock_pkg *lp = l->n_wheels > 0 ? &l->wheels[i] : NULL;
		const char *fn = lp ? lp->fn : names.v[i];
		cleanup_free char *file = ocil_xasprintf("%s/%s", env->wheels_dir, fn);
		if (lp != NULL && not_there(env, file, lp, fn, env->wheels_dir, err))
			return -1;
		if (ocil_wheel_open(file, lp ? lp->sha256 : NULL, minor, arch_of(subdir),
				    &env->wheels[i], err) < 0)
			return -1;
		env->n_wheels++;
	}
	return 0;
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
	if (open_wheels(env, subdir, info->python_minor, err) < 0)
		return -1;
	for (size_t i = 0; i < env->n_wheels; i++)
		if (same_project(env->wheels[i]->name, "awslambdaric"))
			info->has_awslambdaric = true;
	resolve_conflicts(env);
	info->subdir = ocil_xstrdup(subdir);
	info->records = env->n;
	return 0;
}

int ocil_condaenv_load(const char *lock, const char *pkgs_dir, const char *wheels_dir,
		       const char *subdir, ocil_condaenv *env, ocil_conda_info *info,
		       ocil_error **err)
{
	memset(env, 0, sizeof(*env));
	memset(info, 0, sizeof(*info));
	env->lock_path = ocil_xstrdup(lock);
	env->pkgs_dir = ocil_xstrdup(pkgs_dir);
	env->wheels_dir = wheels_dir ? ocil_xstrdup(wheels_dir) : NULL;
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
 * an environment. One action block, as conda writes it: channels by the
 * name conda gives them ("conda-forge/linux-64::python-3.11.2-h_0"). */
static char *history(const ocil_condaenv *env, int64_t created)
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
	ocil_condapkg_install_opts io = {.dest = o->dest,
					 .python_minor = o->minor,
					 .cancel = o->cancel,
					 .strict = o->strict,
					 .warnings = o->warnings};
	for (size_t i = 0; i < env->n; i++) {
		if (ocil_cancel_check(o->cancel, err) < 0 ||
		    ocil_condapkg_install(env->pkgs[i], &io, w, err) < 0)
			return -1;
	}
	ocil_wheel_install_opts wo = {.dest = o->dest, .minor = o->minor, .cancel = o->cancel};
	for (size_t i = 0; i < env->n_wheels; i++)
		if (ocil_wheel_install(env->wheels[i], &wo, w, err) < 0)
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
