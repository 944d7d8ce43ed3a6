#include "ref.h"

#include <ctype.h>
#include <string.h>

#include "digest.h"
#include "util.h"

static bool tag_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

int ocil_ref_check_tag(const char *tag, const char *what, ocil_error **err)
{
	size_t n = strlen(tag);
	bool ok = n > 0 && n <= 128 && tag_char(tag[0]) && tag[0] != '.' && tag[0] != '-';
	for (size_t i = 0; ok && i < n; i++)
		ok = tag_char(tag[i]);
	if (!ok)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: invalid tag \"%s\" (letters, digits, '_', '.', '-'; "
				      "at most 128; not starting with '.' or '-')",
				      what, tag);
	return 0;
}

static bool repo_component_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[n - 1]);
}

/* host[:port]/path[:tag][@digest]; Docker Hub defaults for short names. */
static int parse_docker(const char *input, const char *s, ocil_ref *r, ocil_error **err)
{
	cleanup_free char *work = ocil_xstrdup(s);
	char *at = strchr(work, '@');
	if (at != NULL) {
		*at = '\0';
		if (ocil_digest_check(at + 1, input, err) < 0)
			return -1;
		r->digest = ocil_xstrdup(at + 1);
	}
	char *slash = strchr(work, '/');
	char *name = work;
	const char *host = NULL;
	if (slash != NULL) {
		size_t hl = (size_t)(slash - work);
		/* The first component is a host when it looks like one. */
		if (memchr(work, '.', hl) || memchr(work, ':', hl) ||
		    (hl == 9 && strncmp(work, "localhost", 9) == 0)) {
			*slash = '\0';
			host = work;
			name = slash + 1;
		}
	}
	char *colon = strrchr(name, ':');
	if (colon != NULL) {
		*colon = '\0';
		if (ocil_ref_check_tag(colon + 1, input, err) < 0)
			return -1;
		r->tag = ocil_xstrdup(colon + 1);
	}
	if (host == NULL || strcmp(host, "docker.io") == 0 ||
	    strcmp(host, "index.docker.io") == 0) {
		r->registry = ocil_xstrdup("registry-1.docker.io");
		r->repository =
		    strchr(name, '/') ? ocil_xstrdup(name) : ocil_xasprintf("library/%s", name);
	} else {
		r->registry = ocil_xstrdup(host);
		r->repository = ocil_xstrdup(name);
	}
	if (strlen(r->repository) > 255)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: repository name too long", input);
	for (const char *p = r->repository;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!repo_component_ok(p, n))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: invalid repository name \"%s\" (lowercase "
					      "letters, digits, '.', '_', '-', separated by '/')",
					      input, r->repository);
		if (e == NULL)
			break;
		p = e + 1;
	}
	if (r->tag == NULL && r->digest == NULL)
		r->tag = ocil_xstrdup("latest");
	return 0;
}

int ocil_ref_parse(const char *s, ocil_ref *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	out->input = ocil_xstrdup(s);
	int r = 0;
	if (ocil_str_has_prefix(s, "oci:")) {
		out->transport = OCIL_REF_OCI;
		const char *rest = s + 4;
		/* Like skopeo: the path ends at the first ':'. */
		const char *colon = strchr(rest, ':');
		out->path =
		    colon ? ocil_xstrndup(rest, (size_t)(colon - rest)) : ocil_xstrdup(rest);
		if (colon != NULL) {
			out->tag = ocil_xstrdup(colon + 1);
			r = ocil_ref_check_tag(out->tag, s, err);
		}
		if (r == 0 && out->path[0] == '\0')
			r = ocil_error_set(err, OCIL_E_INPUT, "%s: empty directory name", s);
	} else if (ocil_str_has_prefix(s, "docker-archive:")) {
		out->transport = OCIL_REF_DOCKER_ARCHIVE;
		const char *rest = s + 15;
		const char *colon = strchr(rest, ':');
		out->path =
		    colon ? ocil_xstrndup(rest, (size_t)(colon - rest)) : ocil_xstrdup(rest);
		if (colon != NULL)
			out->tag = ocil_xstrdup(colon + 1);
		if (out->path[0] == '\0')
			r = ocil_error_set(err, OCIL_E_INPUT, "%s: empty file name", s);
	} else {
		out->transport = OCIL_REF_DOCKER;
		const char *rest = ocil_str_has_prefix(s, "docker://") ? s + 9 : s;
		if (strstr(s, "://") != NULL && rest == s)
			r = ocil_error_set(err, OCIL_E_INPUT,
					   "%s: unknown transport (use docker://, oci: or "
					   "docker-archive:)",
					   s);
		else if (rest[0] == '\0')
			r = ocil_error_set(err, OCIL_E_INPUT, "empty image reference");
		else
			r = parse_docker(s, rest, out, err);
	}
	if (r < 0)
		ocil_ref_clear(out);
	return r;
}

void ocil_ref_clear(ocil_ref *r)
{
	free(r->input);
	free(r->path);
	free(r->tag);
	free(r->registry);
	free(r->repository);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}
