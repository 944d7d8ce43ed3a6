#include "registry/credentials.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/json.h"
#include "base/spawn.h"
#include "base/util.h"

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

/* The helper's path, looked up in PATH here rather than by execvp so
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
static int spawn_helper(const char *prog, const char *server, ocil_spawn_capture *out,
			ocil_spawn_capture *errout, int *status, ocil_error **err)
{
	cleanup_free char *exe = find_in_path(prog);
	if (exe == NULL)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: not found in PATH", prog);
	const char *argv[] = {prog, "get", NULL};
	ocil_spawn_opts so = OCIL_SPAWN_OPTS_INIT;
	so.argv = argv;
	so.path = exe;
	so.input = server;
	so.input_len = strlen(server);
	so.out = out;
	so.err = errout;
	so.timeout_ms = HELPER_TIMEOUT_MS;
	ocil_spawn_result res;
	if (ocil_spawn_run(&so, &res, err) < 0) {
		if (res.exec_errno == 0)
			return -1;
		ocil_error_free(*err);
		*err = NULL;
		return ocil_error_set_errno(err, OCIL_E_REGISTRY, res.exec_errno,
					    "credential helper %s", prog);
	}
	*status = res.status;
	if (out->overflow)
		return ocil_error_set(err, OCIL_E_REGISTRY,
				      "credential helper %s: output larger than %zu bytes", prog,
				      HELPER_OUT_MAX);
	if (res.timed_out)
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
	ocil_spawn_capture out = {.max = HELPER_OUT_MAX, .fail_over = true};
	ocil_spawn_capture errout = {.max = HELPER_ERR_MAX};
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
