#include "registry/credentials.h"
#include "base/digest.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "base/json.h"
#include "base/util.h"

extern char **environ;

/* Auth files hold a handful of entries; anything this large is not one. */
#define AUTH_FILE_MAX ((size_t)4 << 20)
/* A helper prints one small JSON object; more is a broken helper. */
#define HELPER_OUT_MAX ((size_t)64 << 10)
#define HELPER_ERR_MAX ((size_t)4 << 10)
/* ecr-login may call STS on a slow network, but a helper waiting for a
 * password prompt nobody sees must not hang a build. */
#define HELPER_TIMEOUT_MS 30000

#define DOCKER_HUB_KEY "https://index.docker.io/v1/"

void ocil_creds_clear(ocil_creds *c)
{
	if (c == NULL)
		return;
	if (c->password != NULL)
		explicit_bzero(c->password, strlen(c->password));
	free(c->username);
	free(c->password);
	c->username = NULL;
	c->password = NULL;
}

static void wipe_freep(char **p)
{
	if (*p != NULL) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
}
#define cleanup_wipe __attribute__((cleanup(wipe_freep)))

/* --- auth files --- */

static bool is_docker_hub(const char *host, size_t n)
{
	static const char *const names[] = {"docker.io", "index.docker.io", "registry-1.docker.io"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && strncasecmp(host, names[i], n) == 0)
			return true;
	return false;
}

/* Does an "auths"/"credHelpers" key name this registry? Keys come as docker
 * and podman write them: "host", "https://host", "http://host/v1/". Keys with
 * a repository path (podman's per-namespace logins) are not matched: we only
 * know the registry here. */
static bool key_matches(const char *key, const char *registry)
{
	if (ocil_str_has_prefix(key, "https://"))
		key += 8;
	else if (ocil_str_has_prefix(key, "http://"))
		key += 7;
	size_t n = strcspn(key, "/");
	const char *path = key + n;
	if (strcmp(path, "") != 0 && strcmp(path, "/") != 0 && strcmp(path, "/v1/") != 0 &&
	    strcmp(path, "/v1") != 0 && strcmp(path, "/v2/") != 0 && strcmp(path, "/v2") != 0)
		return false;
	if (n == strlen(registry) && strncasecmp(key, registry, n) == 0)
		return true;
	return is_docker_hub(key, n) && is_docker_hub(registry, strlen(registry));
}

/* What a credential helper is asked for: docker passes Docker Hub's legacy
 * key and the bare host for everything else. */
static const char *helper_server(const char *registry)
{
	return is_docker_hub(registry, strlen(registry)) ? DOCKER_HUB_KEY : registry;
}

static void auth_paths(const char *authfile, ocil_strv *out)
{
	if (authfile != NULL) {
		ocil_strv_push(out, ocil_xstrdup(authfile));
		return;
	}
	const char *v = getenv("REGISTRY_AUTH_FILE");
	if (v != NULL && *v != '\0')
		ocil_strv_push(out, ocil_xstrdup(v));
	v = getenv("XDG_RUNTIME_DIR");
	if (v != NULL && *v != '\0')
		ocil_strv_push(out, ocil_xasprintf("%s/containers/auth.json", v));
	const char *home = getenv("HOME");
	v = getenv("XDG_CONFIG_HOME");
	if (v != NULL && *v != '\0')
		ocil_strv_push(out, ocil_xasprintf("%s/containers/auth.json", v));
	else if (home != NULL && *home != '\0')
		ocil_strv_push(out, ocil_xasprintf("%s/.config/containers/auth.json", home));
	v = getenv("DOCKER_CONFIG");
	if (v != NULL && *v != '\0')
		ocil_strv_push(out, ocil_xasprintf("%s/config.json", v));
	else if (home != NULL && *home != '\0')
		ocil_strv_push(out, ocil_xasprintf("%s/.docker/config.json", home));
}

char *ocil_auth_sources(const char *authfile)
{
	ocil_strv paths = {0};
	auth_paths(authfile, &paths);
	size_t total = 1;
	for (size_t i = 0; i < paths.n; i++)
		total += strlen(paths.v[i]) + 2;
	char *s = ocil_xcalloc(1, total);
	for (size_t i = 0; i < paths.n; i++) {
		if (i > 0)
			strcat(s, ", ");
		strcat(s, paths.v[i]);
	}
	ocil_strv_clear(&paths);
	return s;
}

/* --- credential helpers --- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* First line of a helper's complaint, printable and short, for messages. */
static char *first_line(const char *s)
{
	while (*s != '\0' && isspace((unsigned char)*s))
		s++;
	size_t n = strcspn(s, "\r\n");
	if (n > 200)
		n = 200;
	char *out = ocil_xstrndup(s, n);
	for (char *p = out; *p != '\0'; p++)
		if (!isprint((unsigned char)*p))
			*p = '?';
	return out;
}

typedef struct {
	char *buf;
	size_t len, max;
	bool overflow;
} capture;

static void capture_read(int *fd, capture *c)
{
	char tmp[4096];
	ssize_t n = read(*fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close_fd(fd);
		return;
	}
	if (c->len + (size_t)n > c->max) {
		c->overflow = true;
		close_fd(fd);
		return;
	}
	c->buf = ocil_xrealloc(c->buf, c->len + (size_t)n + 1);
	memcpy(c->buf + c->len, tmp, (size_t)n);
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
}

/* The helper's path, looked up in PATH here rather than by posix_spawnp so
 * that "not installed" is told apart from "failed". Empty PATH entries (the
 * current directory) are skipped: a helper is never taken from there. */
static char *find_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path != '\0') {
		size_t n = strcspn(path, ":");
		if (n > 0) {
			char *cand = ocil_xasprintf("%.*s/%s", (int)n, path, prog);
			struct stat st;
			if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* Run docker-credential-<name> get with server on stdin; collect stdout and
 * stderr (bounded) and the exit status, all within HELPER_TIMEOUT_MS. */
static int spawn_helper(const char *prog, const char *server, capture *out, capture *errout,
			int *status, ocil_error **err)
{
	cleanup_free char *exe = find_in_path(prog);
	if (exe == NULL)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: not found in PATH", prog);
	int in[2] = {-1, -1}, o[2] = {-1, -1}, e[2] = {-1, -1};
	/* A socket for stdin so that writing to a helper that already exited
	 * gives EPIPE without SIGPIPE (MSG_NOSIGNAL); the library must not
	 * depend on the caller ignoring SIGPIPE. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 || pipe2(o, O_CLOEXEC) < 0 ||
	    pipe2(e, O_CLOEXEC) < 0) {
		int saved = errno;
		for (int i = 0; i < 2; i++) {
			close_fd(&in[i]);
			close_fd(&o[i]);
			close_fd(&e[i]);
		}
		return ocil_error_set_errno(err, OCIL_E_IO, saved, "%s", prog);
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[1], 0);
	posix_spawn_file_actions_adddup2(&fa, o[1], 1);
	posix_spawn_file_actions_adddup2(&fa, e[1], 2);
	char *argv[] = {(char *)prog, (char *)"get", NULL};
	pid_t pid = -1;
	int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close_fd(&in[1]);
	close_fd(&o[1]);
	close_fd(&e[1]);
	if (rc != 0) {
		close_fd(&in[0]);
		close_fd(&o[0]);
		close_fd(&e[0]);
		return ocil_error_set_errno(err, OCIL_E_REGISTRY, rc, "credential helper %s", prog);
	}
	/* The server name is tiny: it fits the socket buffer, so this does
	 * not block. A helper that does not read it is not our problem. */
	(void)!send(in[0], server, strlen(server), MSG_NOSIGNAL);
	close_fd(&in[0]);

	long long deadline = now_ms() + HELPER_TIMEOUT_MS;
	bool timed_out = false;
	while (o[0] >= 0 || e[0] >= 0) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd p[2] = {{.fd = o[0], .events = POLLIN},
				      {.fd = e[0], .events = POLLIN}};
		int n = poll(p, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (o[0] >= 0 && p[0].revents != 0)
			capture_read(&o[0], out);
		if (e[0] >= 0 && p[1].revents != 0)
			capture_read(&e[0], errout);
		if (out->overflow)
			break;
	}
	close_fd(&o[0]);
	close_fd(&e[0]);
	/* The helper closed its output; give it what is left of the time to
	 * exit, then make sure it does. */
	bool waited = false;
	while (!timed_out && !out->overflow) {
		pid_t w = waitpid(pid, status, WNOHANG);
		/* ECHILD: the caller ignores SIGCHLD and the child is
		 * gone; nothing left to wait for or to kill. */
		if (w == pid || (w < 0 && errno != EINTR)) {
			waited = true;
			break;
		}
		if (now_ms() >= deadline) {
			timed_out = true;
			break;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (!waited) {
		kill(pid, SIGKILL);
		while (waitpid(pid, status, 0) < 0 && errno == EINTR)
			;
	}
	if (out->overflow)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: output larger than %zu bytes", prog,
				      HELPER_OUT_MAX);
	if (timed_out)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: no answer within %d s", prog,
				      HELPER_TIMEOUT_MS / 1000);
	return 0;
}

static int run_helper(const char *name, const char *registry, ocil_creds *creds, bool *found,
		      ocil_error **err)
{
	/* The name becomes a program name looked up in PATH: no paths. */
	if (*name == '\0' || strchr(name, '/') != NULL || name[0] == '.')
		return ocil_error_set(err, OCIL_E_INPUT, "invalid credential helper name \"%s\"",
				      name);
	cleanup_free char *prog = ocil_xasprintf("docker-credential-%s", name);
	capture out = {.max = HELPER_OUT_MAX}, errout = {.max = HELPER_ERR_MAX};
	int status = 0;
	int r = spawn_helper(prog, helper_server(registry), &out, &errout, &status, err);
	cleanup_wipe char *obuf = out.buf;
	cleanup_free char *ebuf = errout.buf;
	if (r < 0)
		return -1;
	if (WIFSIGNALED(status))
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: killed by signal %d", prog,
				      WTERMSIG(status));
	if (WEXITSTATUS(status) != 0) {
		/* docker-credential-helpers' ErrCredentialsNotFound text, the
		 * only way a helper says "no entry" rather than "broken". */
		if ((obuf != NULL && strstr(obuf, "credentials not found") != NULL) ||
		    (ebuf != NULL && strstr(ebuf, "credentials not found") != NULL))
			return 0;
		cleanup_free char *why = first_line(ebuf && *ebuf ? ebuf : obuf ? obuf : "");
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: exit status %d%s%s", prog,
				      WEXITSTATUS(status), *why ? ": " : "", why);
	}
	json_error_t je;
	cleanup_json json_t *j = json_loadb(obuf ? obuf : "", out.len, 0, &je);
	const char *user = ocil_json_opt_string(j, "Username");
	const char *secret = ocil_json_opt_string(j, "Secret");
	if (!json_is_object(j) || user == NULL || secret == NULL)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: output is not a JSON object with "
				      "\"Username\" and \"Secret\"",
				      prog);
	creds->username = ocil_xstrdup(user);
	creds->password = ocil_xstrdup(secret);
	*found = true;
	return 0;
}

/* --- one file --- */

static int creds_from_entry(const char *path, const char *key, const json_t *entry,
			    ocil_creds *creds, bool *found, ocil_error **err)
{
	if (!json_is_object(entry))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: auths[\"%s\"] is not an object", path,
				      key);
	const json_t *a = json_object_get(entry, "auth");
	if (a != NULL && !json_is_string(a))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: auths[\"%s\"].auth is not a string",
				      path, key);
	const char *auth = json_string_value(a);
	if (auth != NULL && *auth != '\0') {
		cleanup_free char *what = ocil_xasprintf("%s: auths[\"%s\"].auth", path, key);
		cleanup_wipe char *plain = NULL;
		size_t len = 0;
		if (ocil_base64_decode(auth, what, &plain, &len, err) < 0)
			return -1;
		char *colon = strchr(plain, ':');
		if (strlen(plain) != len || colon == NULL)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: does not decode to \"user:password\"", what);
		creds->username = ocil_xstrndup(plain, (size_t)(colon - plain));
		creds->password = ocil_xstrdup(colon + 1);
		*found = true;
		return 0;
	}
	/* Older docker versions and some tools write the two fields. */
	const char *user = ocil_json_opt_string(entry, "username");
	const char *pass = ocil_json_opt_string(entry, "password");
	if (user != NULL && *user != '\0' && pass != NULL) {
		creds->username = ocil_xstrdup(user);
		creds->password = ocil_xstrdup(pass);
		*found = true;
	}
	/* An empty entry ({}) is what docker writes when a credsStore holds
	 * the secret: no match here, the store is asked next. */
	return 0;
}

static int find_in_file(const char *path, bool explicit, const char *registry, ocil_creds *creds,
			bool *found, ocil_error **err)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	cleanup_error ocil_error *rerr = NULL;
	if (ocil_read_file(path, AUTH_FILE_MAX, &buf, &len, &rerr) < 0) {
		if (!explicit && rerr->errno_value == ENOENT)
			return 0;
		return ocil_error_set(err, OCIL_E_INPUT, "auth file %s", rerr->msg);
	}
	cleanup_json json_t *doc = NULL;
	if (ocil_json_parse_max(buf, len, AUTH_FILE_MAX, path, &doc, err) < 0)
		return -1;
	if (!json_is_object(doc))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: not a JSON object", path);

	const json_t *helpers = json_object_get(doc, "credHelpers");
	if (helpers != NULL && !json_is_object(helpers))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: credHelpers is not an object", path);
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)helpers, key, v)
	{
		if (!key_matches(key, registry))
			continue;
		if (!json_is_string(v))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: credHelpers[\"%s\"] is not a string", path, key);
		if (run_helper(json_string_value(v), registry, creds, found, err) < 0)
			return ocil_error_wrap(err, "%s", path);
		if (*found)
			return 0;
		break;
	}

	const json_t *auths = json_object_get(doc, "auths");
	if (auths != NULL && !json_is_object(auths))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: auths is not an object", path);
	/* The exact key first, so that "host" beats a stale "https://host". */
	const json_t *exact = json_object_get(auths, registry);
	if (exact != NULL) {
		if (creds_from_entry(path, registry, exact, creds, found, err) < 0)
			return -1;
		if (*found)
			return 0;
	}
	json_object_foreach((json_t *)auths, key, v)
	{
		if (v == exact || !key_matches(key, registry))
			continue;
		if (creds_from_entry(path, key, v, creds, found, err) < 0)
			return -1;
		if (*found)
			return 0;
	}

	const json_t *store = json_object_get(doc, "credsStore");
	if (store != NULL && !json_is_string(store))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: credsStore is not a string", path);
	if (store != NULL && *json_string_value(store) != '\0') {
		if (run_helper(json_string_value(store), registry, creds, found, err) < 0)
			return ocil_error_wrap(err, "%s", path);
	}
	return 0;
}

int ocil_auth_find(const char *registry, const char *authfile, ocil_creds *out, bool *found,
		   ocil_error **err)
{
	*found = false;
	out->username = NULL;
	out->password = NULL;
	ocil_strv paths = {0};
	auth_paths(authfile, &paths);
	int r = 0;
	for (size_t i = 0; i < paths.n && r == 0 && !*found; i++)
		r = find_in_file(paths.v[i], authfile != NULL, registry, out, found, err);
	ocil_strv_clear(&paths);
	if (r < 0) {
		ocil_creds_clear(out);
		*found = false;
	}
	return r;
}
