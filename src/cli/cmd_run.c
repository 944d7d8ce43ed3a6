/* ocilambda run: invoke an image's function locally, without Docker or
 * root: the rootfs unpacked once into the cache, the Entrypoint+Cmd under
 * bubblewrap as Lambda's sandbox user, the Runtime API served by us. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/json.h"
#include "cli/cmd.h"
#include "oci/unpack.h"
#include "registry/registry.h"
#include "run/run_memory.h"
#include "run/run_report.h"
#include "run/runtime_api.h"
#include "run/sandbox.h"
#include "transport/source.h"

enum {
	OPT_EVENT = 256,
	OPT_PORT,
	OPT_HANDLER,
	OPT_ENV,
	OPT_TIMEOUT_S,
	OPT_PLATFORM,
	OPT_MEMORY,
};

#define DEFAULT_TIMEOUT_S 300
#define DEFAULT_MEMORY_MB 3008
#define FUNCTION_NAME "function"
#define FUNCTION_VERSION "$LATEST"
#define ACCOUNT "012345678912"
/* what an extension that got SHUTDOWN has to finish (Lambda: 2 s) */
#define SHUTDOWN_GRACE_S 2.0

static const ocil_option options[] = {
    {"event", OPT_EVENT, "JSON|@FILE",
     "invoke once with this event, print the response on stdout, exit"},
    {"port", OPT_PORT, "N",
     "serve POST /2015-03-31/functions/function/invocations on 127.0.0.1:N until Ctrl-C"},
    {"handler", OPT_HANDLER, "MODULE.FUNCTION",
     "replace the image's Cmd (as the function's ImageConfig Command does)"},
    {"env", OPT_ENV, "KEY=VALUE", "set a variable for the function (repeatable)"},
    {"timeout-s", OPT_TIMEOUT_S, "SECONDS",
     "the function's timeout per invocation, init included (default 300, as the emulator's; "
     "or --env AWS_LAMBDA_FUNCTION_TIMEOUT=SECONDS)"},
    {"memory", OPT_MEMORY, "MB",
     "the function's memory, 128-10240 (default 3008, as the emulator's; or --env "
     "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=MB): enforced where a memory cgroup can be made"},
    {"platform", OPT_PLATFORM, "OS/ARCH",
     "which image of an index (default: linux and this machine's architecture)"},
    {"quiet", OCIL_OPT_QUIET, NULL,
     "nothing of ocilambda's own on stderr but errors (the function's output stays)"},
    {"progress", OCIL_OPT_PROGRESS, NULL,
     "say what is unpacked or reused, and download progress, even when stderr is not a "
     "terminal"},
    OCIL_REGISTRY_OPTIONS,
    {0},
};

typedef struct {
	const char *event;
	int port;
	const char *handler;
	ocil_strv env;
	long timeout_s, memory_mb; /* 0: not given */
	const char *platform;
	bool quiet, progress;
	ocil_registry_opts registry;
	ocil_cmd_registry reg;
} opts;

static int on_opt(void *data, int key, const char *arg, ocil_error **err)
{
	opts *o = data;
	int handled = ocil_cmd_shared_opt(&o->reg, &o->quiet, &o->progress, key, arg, err);
	if (handled != 0)
		return handled < 0 ? -1 : 0;
	long v;
	switch (key) {
	case OPT_EVENT:
		o->event = arg;
		break;
	case OPT_PORT:
		if (ocil_cmd_long_opt("port", arg, 1, 65535, "1-65535", &v, err) < 0)
			return -1;
		o->port = (int)v;
		break;
	case OPT_HANDLER:
		if (arg[0] == '\0')
			return ocil_error_set(err, OCIL_E_USAGE, "--handler: empty");
		o->handler = arg;
		break;
	case OPT_ENV:
		return ocil_cmd_env_opt(&o->env, arg, err);
	case OPT_TIMEOUT_S:
		return ocil_cmd_long_opt("timeout-s", arg, 1, 86400, "1-86400 seconds",
					 &o->timeout_s, err);
	case OPT_MEMORY:
		return ocil_cmd_long_opt("memory", arg, 128, 10240, "128-10240 MB", &o->memory_mb,
					 err);
	case OPT_PLATFORM:
		o->platform = arg;
		break;
	}
	return 0;
}

/* ---- the function's configuration ---- */

/* What Lambda's configuration says: from the options, or from --env as the
 * emulator reads it; both given and different is an error. */
typedef struct {
	char name[65];
	long timeout_s, memory_mb;
	char *arn, *region;
} fn_config;

static void fn_config_clear(fn_config *c)
{
	free(c->arn);
	free(c->region);
}

/* The last --env value of key, or NULL. */
static const char *env_value(const ocil_strv *env, const char *key)
{
	size_t n = strlen(key);
	const char *v = NULL;
	for (size_t i = 0; i < env->n; i++)
		if (strncmp(env->v[i], key, n) == 0 && env->v[i][n] == '=')
			v = env->v[i] + n + 1;
	return v;
}

/* *out from option (0: not given) or --env key, else dflt. */
static int setting(const opts *o, const char *option, long given, const char *key, long lo, long hi,
		   const char *want, long dflt, long *out, ocil_error **err)
{
	const char *v = env_value(&o->env, key);
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

static int resolve_config(const opts *o, fn_config *c, ocil_error **err)
{
	const char *name = env_value(&o->env, "AWS_LAMBDA_FUNCTION_NAME");
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
		    "1-86400 seconds", DEFAULT_TIMEOUT_S, &c->timeout_s, err) < 0 ||
	    setting(o, "memory", o->memory_mb, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 128, 10240,
		    "128-10240 MB", DEFAULT_MEMORY_MB, &c->memory_mb, err) < 0)
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

/* ---- the event ---- */

static int load_event(const char *arg, char **out, size_t *len, ocil_error **err)
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

/* ---- what to run ---- */

typedef struct {
	ocil_ref ref;
	ocil_platform platform;
	ocil_source *src;
	ocil_strv argv; /* Entrypoint + Cmd */
	ocil_strv env;	/* KEY=VALUE, later ones win */
	char *workdir;
	char *rootfs;
	char *cache_dir;
	char *handler; /* Cmd[0], for _HANDLER */
} image;

static void image_clear(image *im)
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

static int read_config(const opts *o, image *im, ocil_error **err)
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
static int prepare_rootfs(const opts *o, image *im, const ocil_cancel *cancel, ocil_error **err)
{
	im->cache_dir =
	    o->reg.cache_dir ? ocil_xstrdup(o->reg.cache_dir) : ocil_source_default_cache_dir();
	char key[OCIL_DIGEST_STR_SIZE];
	tree_key(&im->src->manifest, key);
	im->rootfs = ocil_unpack_cache_path(im->cache_dir, key);
	bool say = ocil_cmd_progress_on(o->quiet, o->progress);
	struct stat st;
	if (lstat(im->rootfs, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (say)
			fprintf(stderr, "ocilambda: rootfs %s (cached)\n", im->rootfs);
		return 0;
	}
	if (say)
		fprintf(stderr, "ocilambda: unpacking %s (%zu layers)\n", im->ref.input,
			im->src->manifest.n_layers);
	ocil_layer_files f = {0};
	int r = ocil_layer_files_get(&im->ref, im->src, im->cache_dir, NULL, cancel, &f, err);
	const char *dirs[] = {"/proc", "/dev", "/tmp", im->workdir, NULL};
	ocil_unpack_opts uo = {.cancel = cancel, .notice = o->quiet ? NULL : ocil_cmd_print_notice};
	bool made = false;
	if (r == 0)
		r = ocil_unpack_cached(im->cache_dir, key, (const char *const *)f.paths.v,
				       f.paths.n, dirs, &uo, &made, err);
	ocil_layer_files_clear(&f);
	if (r < 0)
		return ocil_error_wrap(err, "unpacking %s", im->ref.input);
	if (say)
		fprintf(stderr, "ocilambda: rootfs %s (%s)\n", im->rootfs,
			made ? "unpacked" : "cached");
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
static void function_env(const opts *o, const fn_config *c, const image *im, int rapi_port,
			 ocil_strv *out)
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
	ocil_strv_push(out, ocil_xstrdup("AWS_LAMBDA_FUNCTION_VERSION=" FUNCTION_VERSION));
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
	for (size_t i = 0; i < o->env.n; i++)
		ocil_strv_push(out, ocil_xstrdup(o->env.v[i]));
}

/* The extensions of the image: executable regular files directly in
 * /opt/extensions, sorted (Lambda starts them all, in no promised order).
 * Symlinks are not followed on the host (they may point anywhere): a
 * symlinked extension is left out. */
static int list_extensions(const image *im, ocil_strv *out, ocil_error **err)
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

static void build_argv(const image *im, const ocil_strv *env, const ocil_strv *exts, ocil_strv *a)
{
	ocil_sandbox_args(a, im->rootfs, true);
	ocil_strv_push(a, ocil_xstrdup("--clearenv"));
	for (size_t i = 0; i < env->n; i++) {
		const char *eq = strchr(env->v[i], '=');
		if (eq == NULL)
			continue;
		ocil_strv_push(a, ocil_xstrdup("--setenv"));
		ocil_strv_push(a, ocil_xstrndup(env->v[i], (size_t)(eq - env->v[i])));
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

/* Start argv (argv[0] looked up in PATH) in a process group of its own,
 * stdin from /dev/null, stdout to our stderr (the function's log), stderr
 * to ours or to errfd; in the cgroup whose cgroup.procs is cgfd (-1:
 * none). */
static int spawn(const ocil_strv *argv, int errfd, int cgfd, pid_t *out, ocil_error **err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "fork");
	}
	if (pid == 0) {
		setpgid(0, 0);
		/* into the memory cgroup (if that fails, unlimited) */
		if (cgfd >= 0) {
			ssize_t w = write(cgfd, "0", 1);
			(void)w;
		}
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, 0);
		dup2(errfd >= 0 ? errfd : 2, 2);
		dup2(2, 1);
		/* bwrap passes on every open descriptor: whatever we inherited
		 * without close-on-exec (a shell's 3<secret) would reach the
		 * function, a door to files outside its read-only tree */
		if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			for (int fd = 3; fd < 65536; fd++)
				(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		execvp(argv->v[0], argv->v);
		int e = errno;
		ssize_t w = write(p[1], &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	close(p[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(p[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		if (e == ENOENT)
			return ocil_error_set(
			    err, OCIL_E_IO,
			    "bubblewrap (bwrap) is not installed: install bubblewrap "
			    "(e.g. apt-get install bubblewrap)");
		return ocil_error_set_errno(err, OCIL_E_IO, e, "running bwrap");
	}
	*out = pid;
	return 0;
}

/* Can bwrap make the sandbox here? Its own message says why not. */
static int check_bwrap(ocil_error **err)
{
	cleanup_strv ocil_strv a = {0};
	ocil_sandbox_args(&a, "/", true);
	ocil_strv_push(&a, ocil_xstrdup("--"));
	ocil_strv_push(&a, ocil_xstrdup("true"));
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "pipe");
	pid_t pid;
	int r = spawn(&a, p[1], -1, &pid, err);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return -1;
	}
	char *msg = NULL;
	size_t len = 0;
	ocil_error *rerr = NULL;
	if (ocil_read_fd(p[0], "bwrap", 4096, &msg, &len, &rerr) < 0)
		ocil_error_free(rerr);
	close(p[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	cleanup_free char *text = msg;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return ocil_sandbox_failed(text, err);
}

typedef struct {
	pid_t pid; /* 0: not running */
	int status;
} child;

/* Kill the sandbox and reap it and whatever it left to us (we are a
 * subreaper: the sandbox's pid 1 comes back to us when bwrap dies, and it
 * goes only once everything in its pid namespace is gone). */
static void stop_child(child *c)
{
	if (c->pid > 0)
		kill(-c->pid, SIGKILL);
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			break;
		if (p == c->pid)
			c->status = st;
	}
	c->pid = 0;
}

/* Reap without waiting; true when the sandbox has exited. */
static bool child_exited(child *c)
{
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p <= 0)
			return c->pid == 0;
		if (p == c->pid) {
			c->status = st;
			c->pid = 0;
			/* the rest of the sandbox goes with it */
			stop_child(c);
			return true;
		}
	}
}

/* "errorType: errorMessage" of a Lambda error JSON, or what there is. */
static char *error_summary(const char *body, size_t len, const char *error_type)
{
	json_t *j = json_loadb(body ? body : "", len, JSON_DECODE_ANY, NULL);
	const char *type = json_is_object(j) ? ocil_json_opt_string(j, "errorType") : NULL;
	const char *msg = json_is_object(j) ? ocil_json_opt_string(j, "errorMessage") : NULL;
	if (type == NULL)
		type = error_type ? error_type : "Unhandled";
	char *s = msg ? ocil_xasprintf("%s: %.300s", type, msg) : ocil_xstrdup(type);
	json_decref(j);
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return s;
}

typedef struct {
	const opts *o;
	const fn_config *cfg;
	const image *im;
	ocil_rapi *rapi;
	child c;
	ocil_strv argv;
	size_t n_ext;
	const ocil_cancel *cancel;
	ocil_run_memory *mem;
	bool memory_said;
	/* the sandbox */
	double t_start, init_ms; /* init_ms < 0: not measured yet */
	bool first;		 /* its first invocation is still to come */
	/* the invocation the runtime holds */
	char current[40];
	double t_invoke, first_init_ms;
} session;

/* A line of ocilambda's own on stderr, unless --quiet. */
static void note(const session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const session *s, const char *fmt, ...)
{
	if (s->o->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("ocilambda: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* A START / END / REPORT line, unless --quiet. */
static void say_line(const session *s, char *line)
{
	if (!s->o->quiet)
		fprintf(stderr, "%s\n", line);
	free(line);
}

static int start_sandbox(session *s, ocil_error **err)
{
	char *why = NULL;
	if (ocil_run_memory_open(s->cfg->memory_mb, &s->mem, &why, err) < 0)
		return -1;
	if (why != NULL && !s->memory_said)
		note(s,
		     "memory: %ld MB is not enforced (%s); Max Memory Used is the peak RSS "
		     "(VmHWM) of the sandbox's largest process",
		     s->cfg->memory_mb, why);
	free(why);
	s->memory_said = true;
	ocil_rapi_sandbox(s->rapi, s->n_ext);
	s->t_start = ocil_cmd_now();
	s->init_ms = -1;
	s->first = true;
	return spawn(&s->argv, -1, ocil_run_memory_procs_fd(s->mem), &s->c.pid, err);
}

/* Extensions that asked for SHUTDOWN get it and a little time, then the
 * sandbox goes, with all its processes. */
static void stop_sandbox(session *s, const char *reason)
{
	if (s->c.pid > 0 && ocil_rapi_shutdown(s->rapi, reason, 2000) > 0) {
		double until = ocil_cmd_now() + SHUTDOWN_GRACE_S;
		while (ocil_rapi_extensions_busy(s->rapi) > 0 && ocil_cmd_now() < until &&
		       !child_exited(&s->c)) {
			ocil_rapi_event ev;
			ocil_error *e = NULL;
			if (ocil_rapi_wait(s->rapi, 50, &ev, &e) < 0) {
				ocil_error_free(e);
				break;
			}
			ocil_rapi_event_clear(&ev);
		}
	}
	stop_child(&s->c);
	ocil_rapi_sandbox(s->rapi, 0);
	ocil_run_memory_free(s->mem);
	s->mem = NULL;
}

/* The runtime takes an invocation: START (called by the server). */
static void on_started(void *cls, const char *id)
{
	session *s = cls;
	snprintf(s->current, sizeof(s->current), "%s", id);
	s->t_invoke = ocil_cmd_now();
	s->first_init_ms = -1;
	if (s->first) {
		s->first = false;
		s->first_init_ms = s->init_ms >= 0 ? s->init_ms : (s->t_invoke - s->t_start) * 1000;
	}
	say_line(s, ocil_run_start_line(id, FUNCTION_VERSION));
}

/* The invocation is over: END and REPORT (status and error_type for the
 * failures the runtime did not report itself). */
static void on_ended(session *s, const char *status, const char *error_type)
{
	if (s->current[0] == '\0')
		return;
	double ms = (ocil_cmd_now() - s->t_invoke) * 1000;
	if (status != NULL && strcmp(status, "timeout") == 0)
		ms = (double)s->cfg->timeout_s * 1000;
	ocil_run_report rep = {.init_ms = s->first_init_ms,
			       .duration_ms = ms,
			       .memory_mb = s->cfg->memory_mb,
			       .max_used_mb = ocil_run_memory_peak_mb(s->mem, s->c.pid),
			       .status = status,
			       .error_type = error_type};
	say_line(s, ocil_run_end_line(s->current));
	say_line(s, ocil_run_report_line(s->current, &rep));
	s->current[0] = '\0';
}

/* Serve a tenth of a second: 1 with an event, 0 without, -1 on error or
 * Ctrl-C. Keeps the sandbox's init time (its runtime's first /next). */
static int next_event(session *s, ocil_rapi_event *ev, ocil_error **err)
{
	if (ocil_cancel_check(s->cancel, err) < 0)
		return -1;
	int r = ocil_rapi_wait(s->rapi, 100, ev, err);
	if (r > 0 && ev->kind == OCIL_RAPI_NEXT && s->init_ms < 0)
		s->init_ms = (ocil_cmd_now() - s->t_start) * 1000;
	return r;
}

static void print_body(const char *body, size_t len)
{
	fwrite(body, 1, len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static int invoke_once(session *s, const char *event, size_t len, ocil_error **err)
{
	ocil_rapi_submit(s->rapi, event, len);
	if (start_sandbox(s, err) < 0)
		return -1;
	double deadline = ocil_cmd_now() + (double)s->cfg->timeout_s;
	for (;;) {
		ocil_rapi_event ev;
		int r = next_event(s, &ev, err);
		if (r < 0)
			return -1;
		if (r > 0 && ev.kind == OCIL_RAPI_STARTED) {
			deadline = ocil_cmd_now() + (double)s->cfg->timeout_s;
		}
		if (r > 0 && ev.kind == OCIL_RAPI_RESPONSE) {
			on_ended(s, NULL, NULL);
			fwrite(ev.body, 1, ev.len, stdout);
			fputc('\n', stdout);
			ocil_rapi_event_clear(&ev);
			stop_sandbox(s, "spindown");
			if (fflush(stdout) != 0)
				return ocil_error_set_errno(err, OCIL_E_IO, errno,
							    "writing to stdout");
			return 0;
		}
		if (r > 0 && (ev.kind == OCIL_RAPI_ERROR || ev.kind == OCIL_RAPI_INIT_ERROR)) {
			on_ended(s, NULL, NULL);
			print_body(ev.body, ev.len);
			cleanup_free char *sum = error_summary(ev.body, ev.len, ev.error_type);
			bool init = ev.kind == OCIL_RAPI_INIT_ERROR;
			ocil_rapi_event_clear(&ev);
			stop_sandbox(s, "spindown");
			return ocil_error_set(err, OCIL_E_FUNCTION, "the function %s: %s",
					      init ? "failed to initialize" : "failed", sum);
		}
		if (r > 0)
			ocil_rapi_event_clear(&ev);
		if (child_exited(&s->c)) {
			bool oom = ocil_run_memory_oom(s->mem);
			/* bwrap says 137 for the kernel's kill: Lambda says what it was */
			int st = oom ? SIGKILL : s->c.status;
			cleanup_free char *body = ocil_run_exit_body(s->current, st, oom);
			cleanup_free char *text = ocil_run_exit_text(st);
			on_ended(s, "error", oom ? "Runtime.OutOfMemory" : "Runtime.ExitError");
			print_body(body, strlen(body));
			stop_sandbox(s, "failure");
			return ocil_error_set(
			    err, OCIL_E_FUNCTION, "the function exited (%s) without answering%s",
			    text,
			    WIFEXITED(st) && WEXITSTATUS(st) == 142
				? " (the entrypoint wants exactly one argument, the handler: "
				  "give --handler)"
			    : oom ? " (out of memory: --memory)"
				  : "; its log is above");
		}
		if (ocil_cmd_now() > deadline) {
			cleanup_free char *body =
			    ocil_run_timeout_body(s->current, s->cfg->timeout_s);
			on_ended(s, "timeout", NULL);
			print_body(body, strlen(body));
			stop_sandbox(s, "timeout");
			return ocil_error_set(err, OCIL_E_FUNCTION,
					      "the function timed out after %ld s (--timeout-s): "
					      "stopped",
					      s->cfg->timeout_s);
		}
	}
}

static int serve(session *s, ocil_error **err)
{
	char v6[64] = "";
	if (ocil_rapi_invoke_v6(s->rapi))
		snprintf(v6, sizeof(v6), " and [::1]:%d", s->o->port);
	note(s,
	     "serving http://127.0.0.1:%d/2015-03-31/functions/%s/invocations%s (Ctrl-C "
	     "stops)",
	     s->o->port, s->cfg->name, v6);
	if (start_sandbox(s, err) < 0)
		return -1;
	double deadline = 0;
	for (;;) {
		ocil_rapi_event ev;
		int r = next_event(s, &ev, err);
		if (r < 0)
			return -1;
		if (r > 0) {
			switch (ev.kind) {
			case OCIL_RAPI_STARTED:
				deadline = ocil_cmd_now() + (double)s->cfg->timeout_s;
				break;
			case OCIL_RAPI_INIT_ERROR:
			case OCIL_RAPI_ERROR: {
				cleanup_free char *sum =
				    error_summary(ev.body, ev.len, ev.error_type);
				note(s, "the function %s: %s",
				     ev.kind == OCIL_RAPI_INIT_ERROR ? "failed to initialize"
								     : "failed",
				     sum);
				if (ev.kind == OCIL_RAPI_ERROR)
					on_ended(s, NULL, NULL);
				deadline = 0;
				break;
			}
			case OCIL_RAPI_RESPONSE:
				on_ended(s, NULL, NULL);
				deadline = 0;
				break;
			case OCIL_RAPI_EXTENSION:
				note(s, "extension %s registered", ev.body);
				break;
			case OCIL_RAPI_QUEUED: /* the clock starts below */
			case OCIL_RAPI_NEXT:
			case OCIL_RAPI_NONE:
				break;
			}
			ocil_rapi_event_clear(&ev);
		}
		if (ocil_rapi_busy(s->rapi) && deadline == 0)
			deadline = ocil_cmd_now() + (double)s->cfg->timeout_s;
		if (s->c.pid > 0 && ocil_rapi_busy(s->rapi) && ocil_cmd_now() > deadline) {
			cleanup_free char *body =
			    ocil_run_timeout_body(s->current, s->cfg->timeout_s);
			note(s, "the function timed out after %ld s: stopped", s->cfg->timeout_s);
			ocil_rapi_fail(s->rapi, body);
			on_ended(s, "timeout", NULL);
			stop_sandbox(s, "timeout");
			deadline = 0;
		} else if (s->c.pid > 0 && child_exited(&s->c)) {
			bool oom = ocil_run_memory_oom(s->mem);
			int st = oom ? SIGKILL : s->c.status;
			cleanup_free char *text = ocil_run_exit_text(st);
			note(s, "the function exited (%s)%s", text, oom ? " out of memory" : "");
			if (ocil_rapi_busy(s->rapi)) {
				cleanup_free char *body = ocil_run_exit_body(s->current, st, oom);
				ocil_rapi_fail(s->rapi, body);
			}
			on_ended(s, "error", oom ? "Runtime.OutOfMemory" : "Runtime.ExitError");
			stop_sandbox(s, "failure");
			deadline = 0;
		}
		/* a fresh sandbox for the next invocation, as Lambda makes one */
		if (s->c.pid == 0 && ocil_rapi_busy(s->rapi)) {
			if (start_sandbox(s, err) < 0)
				return -1;
			deadline = ocil_cmd_now() + (double)s->cfg->timeout_s;
		}
	}
}

static int do_run(const opts *o, const fn_config *cfg, const char *input, image *im,
		  const ocil_cancel *cancel, ocil_error **err)
{
	cleanup_free char *event = NULL;
	size_t event_len = 0;
	if (o->event != NULL && load_event(o->event, &event, &event_len, err) < 0)
		return -1;
	cleanup_free char *plat =
	    o->platform ? ocil_xstrdup(o->platform) : ocil_xasprintf("linux/%s", host_arch());
	if (ocil_platform_parse(plat, &im->platform, err) < 0 ||
	    ocil_ref_parse(input, &im->ref, err) < 0)
		return -1;
	/* the cheap checks first: the port, bubblewrap */
	ocil_rapi_opts rao = {.invoke_port = o->port,
			      .function_arn = cfg->arn,
			      .function_name = cfg->name,
			      .function_version = FUNCTION_VERSION,
			      .timeout_ms = cfg->timeout_s * 1000,
			      .on_started = on_started};
	session s = {.o = o, .cfg = cfg, .im = im, .cancel = cancel};
	rao.cls = &s;
	if (ocil_rapi_open(&rao, &s.rapi, err) < 0)
		return -1;
	int r = check_bwrap(err);
	ocil_registry_opts ro = o->registry;
	ocil_cmd_progress prog = {0};
	ocil_cmd_registry_callbacks(&ro,
				    ocil_cmd_progress_on(o->quiet, o->progress) ? &prog : NULL);
	ocil_source_opts so = {.platform = &im->platform,
			       .cancel = cancel,
			       .registry = &ro,
			       .cache_dir = o->reg.cache_dir};
	cleanup_strv ocil_strv exts = {0};
	if (r == 0 &&
	    (ocil_source_open(&im->ref, &so, &im->src, err) < 0 || read_config(o, im, err) < 0 ||
	     prepare_rootfs(o, im, cancel, err) < 0 || list_extensions(im, &exts, err) < 0))
		r = -1;
	if (r < 0) {
		ocil_rapi_free(s.rapi);
		return -1;
	}
	ocil_rapi_set_handler(s.rapi, im->handler);
	s.n_ext = exts.n;
	cleanup_strv ocil_strv env = {0};
	function_env(o, cfg, im, ocil_rapi_port(s.rapi), &env);
	build_argv(im, &env, &exts, &s.argv);
	r = o->event ? invoke_once(&s, event, event_len, err) : serve(&s, err);
	stop_sandbox(&s, "spindown");
	ocil_rapi_free(s.rapi);
	ocil_strv_clear(&s.argv);
	return r;
}

static int run(const ocil_command *cmd, const ocil_cmd_ctx *ctx, int argc, char **argv,
	       ocil_error **err)
{
	opts o = {.registry = OCIL_REGISTRY_OPTS_DEFAULT, .timeout_s = DEFAULT_TIMEOUT_S};
	o.reg.registry = &o.registry;
	int first = 0;
	int r = ocil_cmd_parse(cmd, argc, argv, on_opt, &o, &first, err);
	if (r == 0 && first >= argc)
		r = ocil_error_set(err, OCIL_E_USAGE, "missing the image reference to run");
	if (r == 0 && first + 1 < argc)
		r = ocil_error_set(err, OCIL_E_USAGE, "unexpected argument '%s'", argv[first + 1]);
	if (r == 0 && (o.event == NULL) == (o.port == 0))
		r = ocil_error_set(err, OCIL_E_USAGE,
				   o.event
				       ? "--event and --port exclude each other"
				       : "give --event JSON (one invocation) or --port N (serve)");
	if (r != 0) {
		ocil_strv_clear(&o.env);
		return r < 0 ? -1 : 0;
	}
	/* the sandbox's pid 1 is reparented to us when bwrap goes, so that
	 * we can wait for it (and so for all of the sandbox) */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	fn_config cfg = {0};
	image im = {0};
	ocil_cancel cancel = {.flag = ctx->cancel_flag};
	r = resolve_config(&o, &cfg, err);
	if (r == 0)
		r = do_run(&o, &cfg, argv[first], &im, &cancel, err);
	image_clear(&im);
	fn_config_clear(&cfg);
	ocil_strv_clear(&o.env);
	return r;
}

/* clang-format off */
#define DETAILS \
	"Runs the image's Entrypoint + Cmd the way Lambda does, without Docker or\n" \
	"root: its layers are unpacked once per image (config and layer digests) into\n" \
	"CACHE/rootfs/<hex> (CACHE: --cache-dir, else $XDG_CACHE_HOME/ocilambda or\n" \
	"~/.cache/ocilambda; whiteouts applied, no chown, setuid bits and device\n" \
	"nodes dropped), then started under bubblewrap: the tree read-only at /,\n" \
	"fresh /proc, /dev and /tmp, uid 993 / gid 990 (Lambda's sbx_user1051) in a\n" \
	"user namespace, the image's Env and WorkingDir, plus AWS_LAMBDA_RUNTIME_API\n" \
	"(ocilambda serves the Runtime API on 127.0.0.1), AWS_LAMBDA_FUNCTION_NAME=\n" \
	"function, _VERSION=$LATEST, _MEMORY_SIZE (--memory), LAMBDA_TASK_ROOT, _HANDLER,\n" \
	"AWS_REGION (yours, else us-east-1), TZ=:UTC, your AWS credentials if set,\n" \
	"then --env. The function's output goes to stderr. The host's network is\n" \
	"shared (for the Runtime API): the function reaches what listens on loopback.\n" \
	"\n" \
	"--event: one invocation; the response body is printed on stdout, exit 0.\n" \
	"Any function failure prints Lambda's error JSON on stdout and exits 6: its\n" \
	"own error or init error, Sandbox.Timedout past the timeout (it is killed),\n" \
	"Runtime.ExitError (Runtime.OutOfMemory) for a runtime that exits,\n" \
	"Function.ResponseSizeTooLarge for a response over 6,291,556 bytes.\n" \
	"--port: the Runtime Interface Emulator's invoke URL on 127.0.0.1 and ::1, so\n" \
	"that\n" \
	"  curl -XPOST http://localhost:N/2015-03-31/functions/function/invocations -d '{}'\n" \
	"works as with 'docker run -p N:8080'. One invocation at a time, the\n" \
	"function's process kept between them. Answers as Lambda's Invoke: 200 with\n" \
	"the response; 200, X-Amz-Function-Error: Unhandled and the error JSON for\n" \
	"every failure above (a new process for the next invocation after a\n" \
	"timeout or an exit); 413 RequestTooLargeException for an event over the\n" \
	"limit. X-Amz-Client-Context (base64 JSON, else 400), X-Amzn-Trace-Id and\n" \
	"X-Amz-Tenant-Id reach the runtime. Ctrl-C (SIGINT, SIGTERM) stops it and\n" \
	"exits 130.\n" \
	"\n" \
	"Each invocation is reported on stderr as the emulator does (START, END,\n" \
	"REPORT with Init Duration, Duration, Billed Duration, Memory Size, Max\n" \
	"Memory Used); --quiet hides them. --memory is enforced by a memory cgroup\n" \
	"where one can be made (else it is said, and Max Memory Used is the largest\n" \
	"process's peak RSS). Executables in /opt/extensions start before the\n" \
	"runtime and get the Extensions API (INVOKE, SHUTDOWN).\n" \
	"\n" \
	"Needs bubblewrap (bwrap) and unprivileged user namespaces; exit 5 when\n" \
	"either is missing.\n" \
	"\nExamples:\n" \
	"  ocilambda run oci:./out:latest --event '{}'\n" \
	"  ocilambda run oci:./out:latest --event @event.json --handler app.other\n" \
	"  ocilambda run oci:./out:latest --port 9000\n"
/* clang-format on */

const ocil_command ocil_cmd_run = {
    .name = "run",
    .usage = "[options] IMAGE (--event JSON|@FILE | --port N)",
    .summary = "invoke an image's function locally under bubblewrap (no Docker, no root)",
    .details = DETAILS,
    .options = options,
    .exits = OCIL_X_IMAGE | OCIL_X_FUNCTION,
    .run = run,
};
