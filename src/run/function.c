/* The function as run/ runs it: its configuration (options and --env, as
 * the emulator reads them), its image (config, unpacked tree, extensions)
 * and the sandbox's command line. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "base/digest.h"
#include "base/json.h"
#include "oci/unpack.h"
#include "run/internal.h"
#include "run/runtime_api.h"
#include "run/sandbox.h"

#define FUNCTION_NAME "function"
#define ACCOUNT "012345678912"

static void say(void (*fn)(void *, const char *), void *data, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(void (*fn)(void *, const char *), void *data, const char *fmt, ...)
{
	if (fn == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	fn(data, msg);
	free(msg);
}

/* ---- the function's configuration ---- */

/* The last --env value of key, or NULL. */
static const char *env_value(const ocil_run_opts *o, const char *key)
{
	size_t n = strlen(key);
	const char *v = NULL;
	for (size_t i = 0; i < o->n_env; i++)
		if (strncmp(o->env[i], key, n) == 0 && o->env[i][n] == '=')
			v = o->env[i] + n + 1;
	return v;
}

/* *out from option (0: not given) or --env key, else dflt. */
static int setting(const ocil_run_opts *o, const char *option, long given, const char *key, long lo,
		   long hi, const char *want, long dflt, long *out, ocil_error **err)
{
	const char *v = env_value(o, key);
	long from_env = 0;
	if (v != NULL) {
		char *end = NULL;
		long n = strtol(v, &end, 10);
		if (v[0] == '\0' || *end != '\0' || n < lo || n > hi)
			return ocil_error_set(err, OCIL_E_USAGE, "--env %s=%s: want %s", key, v,
					      want);
		from_env = n;
	}
	if (given != 0 && from_env != 0 && given != from_env)
		return ocil_error_set(err, OCIL_E_USAGE, "--%s %ld and --env %s=%ld disagree",
				      option, given, key, from_env);
	*out = given ? given : from_env ? from_env : dflt;
	return 0;
}

int run_config_resolve(const ocil_run_opts *o, run_config *c, ocil_error **err)
{
	const char *name = env_value(o, "AWS_LAMBDA_FUNCTION_NAME");
	if (name == NULL)
		name = FUNCTION_NAME;
	size_t n = strlen(name);
	if (n == 0 || n > 64 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != n)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "--env AWS_LAMBDA_FUNCTION_NAME=%s: a function name is 1-64 "
				      "letters, digits, '-' and '_'",
				      name);
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (setting(o, "timeout-s", o->timeout_s, "AWS_LAMBDA_FUNCTION_TIMEOUT", 1, 86400,
		    "1-86400 seconds", OCIL_RUN_DEFAULT_TIMEOUT_S, &c->timeout_s, err) < 0 ||
	    setting(o, "memory", o->memory_mb, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 128, 10240,
		    "128-10240 MB", OCIL_RUN_DEFAULT_MEMORY_MB, &c->memory_mb, err) < 0)
		return -1;
	const char *region = getenv("AWS_REGION");
	if (region == NULL || region[0] == '\0')
		region = getenv("AWS_DEFAULT_REGION");
	if (region == NULL || region[0] == '\0')
		region = "us-east-1";
	c->region = ocil_xstrdup(region);
	c->arn = ocil_xasprintf("arn:aws:lambda:%s:" ACCOUNT ":function:%s", region, c->name);
	return 0;
}

void run_config_clear(run_config *c)
{
	free(c->arn);
	free(c->region);
}

/* ---- the event ---- */

int ocil_run_load_event(const char *arg, char **out, size_t *len, ocil_error **err)
{
	if (arg[0] == '@') {
		if (ocil_read_file(arg + 1, OCIL_RAPI_MAX_PAYLOAD, out, len, err) < 0)
			return ocil_error_wrap(err, "--event %s", arg);
	} else {
		*out = ocil_xstrdup(arg);
		*len = strlen(arg);
	}
	json_error_t je;
	json_t *j = json_loadb(*out, *len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		free(steal_pointer(out));
		return ocil_error_set(err, OCIL_E_INPUT,
				      "--event%s%s: not JSON: %s (line %d, column %d)",
				      arg[0] == '@' ? " " : "", arg[0] == '@' ? arg : "", je.text,
				      je.line, je.column);
	}
	json_decref(j);
	return 0;
}

/* ---- the image ---- */

void run_image_clear(run_image *im)
{
	ocil_ref_clear(&im->ref);
	ocil_platform_clear(&im->platform);
	ocil_source_free(im->src);
	ocil_strv_clear(&im->argv);
	ocil_strv_clear(&im->env);
	free(im->workdir);
	free(im->rootfs);
	free(im->cache_dir);
	free(im->handler);
	ocil_strv_clear(&im->extensions);
}

static const char *host_arch(void)
{
	struct utsname u;
	if (uname(&u) < 0)
		return "amd64";
	if (strcmp(u.machine, "aarch64") == 0 || strcmp(u.machine, "arm64") == 0)
		return "arm64";
	return "amd64";
}

/* Append the strings of config[key] (an array) to sv; false when it is
 * not an array of strings. */
static bool push_strings(const json_t *cfg, const char *key, ocil_strv *sv)
{
	const json_t *a = json_object_get(cfg, key);
	if (a == NULL || json_is_null(a))
		return true;
	if (!json_is_array(a))
		return false;
	size_t i;
	const json_t *s;
	json_array_foreach(a, i, s)
	{
		if (!json_is_string(s))
			return false;
		ocil_strv_push(sv, ocil_xstrdup(json_string_value(s)));
	}
	return true;
}

static int read_config(const ocil_run_opts *o, run_image *im, ocil_error **err)
{
	const json_t *cfg = json_object_get(im->src->config, "config");
	ocil_strv cmd = {0};
	bool ok = push_strings(cfg, "Entrypoint", &im->argv) && push_strings(cfg, "Cmd", &cmd) &&
		  push_strings(cfg, "Env", &im->env);
	if (!ok) {
		ocil_strv_clear(&cmd);
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: Entrypoint, Cmd and Env must be arrays of strings",
				      im->ref.input);
	}
	if (o->handler != NULL) {
		ocil_strv_clear(&cmd);
		ocil_strv_push(&cmd, ocil_xstrdup(o->handler));
	}
	if (cmd.n > 0)
		im->handler = ocil_xstrdup(cmd.v[0]);
	for (size_t i = 0; i < cmd.n; i++)
		ocil_strv_push(&im->argv, steal_pointer(&cmd.v[i]));
	ocil_strv_clear(&cmd);
	if (im->argv.n == 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: the image has no Entrypoint or Cmd: nothing to run "
				      "(give --handler for a Cmd)",
				      im->ref.input);
	const char *wd = cfg ? ocil_json_opt_string(cfg, "WorkingDir") : NULL;
	im->workdir = ocil_xstrdup(wd != NULL && wd[0] == '/' ? wd : "/");
	return 0;
}

/* The cache key of an image's tree: the config digest and the layers'
 * digests. The layers unpacked are the manifest's, verified against their
 * descriptors but never against the config's diff_ids, so the config alone
 * does not say what is in the tree: a layout naming a known config with
 * other layers would otherwise be served (or leave) another image's tree. */
static void tree_key(const ocil_manifest *m, char out[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher *h = ocil_hasher_new();
	ocil_hasher_update(h, m->config.digest, strlen(m->config.digest));
	for (size_t i = 0; i < m->n_layers; i++) {
		ocil_hasher_update(h, "\n", 1);
		ocil_hasher_update(h, m->layers[i].digest, strlen(m->layers[i].digest));
	}
	ocil_hasher_final(h, out);
	ocil_hasher_free(h);
}

/* The tree for this image (tree_key), made once; later runs find it in
 * place. */
static int prepare_rootfs(const ocil_run_opts *o, run_image *im, ocil_error **err)
{
	const ocil_run_events *ev = o->events;
	im->cache_dir = o->cache_dir ? ocil_xstrdup(o->cache_dir) : ocil_source_default_cache_dir();
	char key[OCIL_DIGEST_STR_SIZE];
	tree_key(&im->src->manifest, key);
	im->rootfs = ocil_unpack_cache_path(im->cache_dir, key);
	struct stat st;
	if (lstat(im->rootfs, &st) == 0 && S_ISDIR(st.st_mode)) {
		say(ev->progress, ev->data, "rootfs %s (cached)", im->rootfs);
		return 0;
	}
	say(ev->progress, ev->data, "unpacking %s (%zu layers)", im->ref.input,
	    im->src->manifest.n_layers);
	ocil_layer_files f = {0};
	int r = ocil_layer_files_get(&im->ref, im->src, im->cache_dir, NULL, o->cancel, &f, err);
	const char *dirs[] = {"/proc", "/dev", "/tmp", im->workdir, NULL};
	ocil_unpack_opts uo = {.cancel = o->cancel, .notice = ev->notice, .data = ev->data};
	bool made = false;
	if (r == 0)
		r = ocil_unpack_cached(im->cache_dir, key, (const char *const *)f.paths.v,
				       f.paths.n, dirs, &uo, &made, err);
	ocil_layer_files_clear(&f);
	if (r < 0)
		return ocil_error_wrap(err, "unpacking %s", im->ref.input);
	say(ev->progress, ev->data, "rootfs %s (%s)", im->rootfs, made ? "unpacked" : "cached");
	return 0;
}

int run_image_parse(const ocil_run_opts *o, run_image *im, ocil_error **err)
{
	cleanup_free char *plat =
	    o->platform ? ocil_xstrdup(o->platform) : ocil_xasprintf("linux/%s", host_arch());
	if (ocil_platform_parse(plat, &im->platform, err) < 0 ||
	    ocil_ref_parse(o->image, &im->ref, err) < 0)
		return -1;
	return 0;
}

static int list_extensions(const run_image *im, ocil_strv *out, ocil_error **err);

int run_image_open(const ocil_run_opts *o, run_image *im, ocil_error **err)
{
	ocil_source_opts so = {.platform = &im->platform,
			       .cancel = o->cancel,
			       .registry = &o->registry,
			       .cache_dir = o->cache_dir};
	if (ocil_source_open(&im->ref, &so, &im->src, err) < 0 || read_config(o, im, err) < 0 ||
	    prepare_rootfs(o, im, err) < 0 || list_extensions(im, &im->extensions, err) < 0)
		return -1;
	return 0;
}

/* ---- the sandbox ---- */

static bool env_has(const ocil_strv *env, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < env->n; i++)
		if (strncmp(env->v[i], key, n) == 0 && env->v[i][n] == '=')
			return true;
	return false;
}

/* The image's Env, what Lambda sets, then --env. */
static void function_env(const ocil_run_opts *o, const run_config *c, const run_image *im,
			 int rapi_port, ocil_strv *out)
{
	for (size_t i = 0; i < im->env.n; i++)
		ocil_strv_push(out, ocil_xstrdup(im->env.v[i]));
	if (!env_has(out, "PATH"))
		ocil_strv_push(out, ocil_xstrdup("PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin"));
	if (!env_has(out, "LAMBDA_TASK_ROOT"))
		ocil_strv_push(out, ocil_xstrdup("LAMBDA_TASK_ROOT=/var/task"));
	if (!env_has(out, "LAMBDA_RUNTIME_DIR"))
		ocil_strv_push(out, ocil_xstrdup("LAMBDA_RUNTIME_DIR=/var/runtime"));
	ocil_strv_push(out, ocil_xasprintf("AWS_LAMBDA_RUNTIME_API=127.0.0.1:%d", rapi_port));
	ocil_strv_push(out, ocil_xasprintf("AWS_LAMBDA_FUNCTION_NAME=%s", c->name));
	ocil_strv_push(out, ocil_xstrdup("AWS_LAMBDA_FUNCTION_VERSION=" OCIL_RUN_FUNCTION_VERSION));
	ocil_strv_push(out, ocil_xasprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%ld", c->memory_mb));
	ocil_strv_push(out, ocil_xasprintf("AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/%s", c->name));
	ocil_strv_push(out, ocil_xstrdup("AWS_LAMBDA_LOG_STREAM_NAME=$LATEST"));
	ocil_strv_push(out, ocil_xstrdup("AWS_LAMBDA_INITIALIZATION_TYPE=on-demand"));
	ocil_strv_push(out, ocil_xasprintf("AWS_REGION=%s", c->region));
	ocil_strv_push(out, ocil_xasprintf("AWS_DEFAULT_REGION=%s", c->region));
	ocil_strv_push(out, ocil_xstrdup("TZ=:UTC"));
	if (im->handler != NULL)
		ocil_strv_push(out, ocil_xasprintf("_HANDLER=%s", im->handler));
	/* credentials pass through, as the emulator does */
	static const char *const creds[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
					    "AWS_SESSION_TOKEN"};
	for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
		const char *v = getenv(creds[i]);
		if (v != NULL && v[0] != '\0')
			ocil_strv_push(out, ocil_xasprintf("%s=%s", creds[i], v));
	}
	/* --env last: what it sets wins (name, memory and timeout agree with
	 * the options: resolve_config saw to it) */
	for (size_t i = 0; i < o->n_env; i++)
		ocil_strv_push(out, ocil_xstrdup(o->env[i]));
}

/* The extensions of the image: executable regular files directly in
 * /opt/extensions, sorted (Lambda starts them all, in no promised order).
 * Symlinks are not followed on the host (they may point anywhere): a
 * symlinked extension is left out. */
static int list_extensions(const run_image *im, ocil_strv *out, ocil_error **err)
{
	cleanup_free char *opt = ocil_xasprintf("%s/opt", im->rootfs);
	cleanup_free char *dir = ocil_xasprintf("%s/opt/extensions", im->rootfs);
	struct stat st;
	if (lstat(opt, &st) < 0 || !S_ISDIR(st.st_mode) || lstat(dir, &st) < 0 ||
	    !S_ISDIR(st.st_mode))
		return 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", dir);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0)
			ocil_strv_push(out, ocil_xasprintf("/opt/extensions/%s", e->d_name));
	}
	closedir(d);
	ocil_strv_sort(out);
	if (out->n > 0) {
		cleanup_free char *sh = ocil_xasprintf("%s/bin/sh", im->rootfs);
		if (lstat(sh, &st) < 0)
			return ocil_error_set(
			    err, OCIL_E_INPUT,
			    "%s: the image has executables in /opt/extensions but "
			    "no /bin/sh to start them with",
			    im->ref.input);
	}
	return 0;
}

/* The extensions start first, each in the background as Lambda starts
 * them (no arguments), then the image's Entrypoint + Cmd in the
 * foreground: a shell of the image does it, given the list. */
static const char start_extensions[] =
    "n=$1; shift; while [ \"$n\" -gt 0 ]; do \"$1\" & shift; n=$((n - 1)); done; exec \"$@\"";

void run_image_argv(const ocil_run_opts *o, const run_config *c, const run_image *im, int rapi_port,
		    ocil_strv *a)
{
	cleanup_strv ocil_strv env = {0};
	function_env(o, c, im, rapi_port, &env);
	const ocil_strv *exts = &im->extensions;
	ocil_sandbox_args(a, im->rootfs, true);
	ocil_strv_push(a, ocil_xstrdup("--clearenv"));
	for (size_t i = 0; i < env.n; i++) {
		const char *eq = strchr(env.v[i], '=');
		if (eq == NULL)
			continue;
		ocil_strv_push(a, ocil_xstrdup("--setenv"));
		ocil_strv_push(a, ocil_xstrndup(env.v[i], (size_t)(eq - env.v[i])));
		ocil_strv_push(a, ocil_xstrdup(eq + 1));
	}
	ocil_strv_push(a, ocil_xstrdup("--chdir"));
	ocil_strv_push(a, ocil_xstrdup(im->workdir));
	ocil_strv_push(a, ocil_xstrdup("--"));
	if (exts->n > 0) {
		ocil_strv_push(a, ocil_xstrdup("/bin/sh"));
		ocil_strv_push(a, ocil_xstrdup("-c"));
		ocil_strv_push(a, ocil_xstrdup(start_extensions));
		ocil_strv_push(a, ocil_xstrdup("sh"));
		ocil_strv_push(a, ocil_xasprintf("%zu", exts->n));
		for (size_t i = 0; i < exts->n; i++)
			ocil_strv_push(a, ocil_xstrdup(exts->v[i]));
	}
	for (size_t i = 0; i < im->argv.n; i++)
		ocil_strv_push(a, ocil_xstrdup(im->argv.v[i]));
}
