/* Registry credentials.
 *
 * Credentials come from the files docker and podman write (docker login,
 * podman login) and from docker credential helpers, found the way users
 * expect from those tools. Nothing here talks to a registry. */
#ifndef OCIL_CREDENTIALS_H
#define OCIL_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

typedef struct {
	char *username;
	char *password;
} ocil_creds;

/* Free both strings; the password is wiped first. */
void ocil_creds_clear(ocil_creds *c);

/* Find credentials for registry (host[:port]).
 *
 * authfile (--authfile), when given, is the only file read (and must exist).
 * Otherwise the first file with a match wins, in this order (missing files
 * are skipped): $REGISTRY_AUTH_FILE, ${XDG_RUNTIME_DIR}/containers/auth.json,
 * ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json, and
 * $DOCKER_CONFIG/config.json or ~/.docker/config.json.
 *
 * In each file: "credHelpers"[host] first (an explicit per-registry choice),
 * then "auths" (keys "host", "https://host", "http://host", "host/v1/"; for
 * registry-1.docker.io / docker.io also Docker Hub's
 * "https://index.docker.io/v1/"; "auth" is base64 "user:pass", or separate
 * "username"/"password"), then "credsStore". A helper is run as
 * `docker-credential-<name> get` from PATH, without a shell, with the server
 * on stdin; it must print {"Username","Secret"}. Its "credentials not found"
 * answer means no match here; any other failure is an error naming it.
 *
 * Returns 0 with *found=false when nothing matches. A malformed file is an
 * OCIL_E_INPUT error naming the file; a failing helper an OCIL_E_REGISTRY
 * error naming the helper. */
int ocil_auth_find(const char *registry, const char *authfile, ocil_creds *out, bool *found,
		   ocil_error **err);

/* The files ocil_auth_find would read, as "a, b, c", for messages such as
 * "no credentials in …". Caller frees. */
char *ocil_auth_sources(const char *authfile);

#endif
