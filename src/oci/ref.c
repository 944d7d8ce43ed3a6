#include "oci/ref.h"

#include <ctype.h>
#include <string.h>

#include "base/digest.h"
#include "base/util.h"

/* Docker distribution's reference grammar, the one registries enforce
 * (distribution/reference/regexp.go), defined here once for every module:
 *   domain         := host [':' port]
 *   host           := domain-component ['.' domain-component]* | '[' IPv6 ']'
 *   domain-component := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
 *   path           := path-component ['/' path-component]*
 *   path-component := [a-z0-9]+ (('.' | '_' | '__' | '-'+) [a-z0-9]+)*
 *   tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 * and a name (domain '/' path, or path) of at most 255 bytes. */

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

bool ocil_ref_tag_valid(const char *tag)
{
	size_t n = strlen(tag);
	if (n == 0 || n > OCIL_REF_TAG_MAX || !word_char(tag[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!word_char(tag[i]) && tag[i] != '.' && tag[i] != '-')
			return false;
	return true;
}

int ocil_ref_check_tag(const char *tag, const char *what, ocil_error **err)
{
	if (!ocil_ref_tag_valid(tag))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid tag \"%s\" (%s)", what, tag,
				      OCIL_REF_TAG_RULE);
	return 0;
}

bool ocil_ref_domain_valid(const char *d, size_t n)
{
	size_t i = 0;
	if (n > 0 && d[0] == '[') {
		const char *close = memchr(d, ']', n);
		if (close == NULL || close == d + 1)
			return false;
		for (const char *c = d + 1; c < close; c++)
			if (!isxdigit((unsigned char)*c) && *c != ':')
				return false;
		i = (size_t)(close - d) + 1;
	} else {
		for (;;) {
			size_t start = i;
			while (i < n && (isalnum((unsigned char)d[i]) || d[i] == '-'))
				i++;
			if (i == start || d[start] == '-' || d[i - 1] == '-')
				return false;
			if (i < n && d[i] == '.') {
				i++;
				continue;
			}
			break;
		}
	}
	if (i == n)
		return true;
	if (d[i] != ':' || i + 1 == n)
		return false;
	for (i++; i < n; i++)
		if (!isdigit((unsigned char)d[i]))
			return false;
	return true;
}

static bool path_component_valid(const char *p, size_t n)
{
	size_t i = 0;
	for (;;) {
		size_t start = i;
		while (i < n && (islower((unsigned char)p[i]) || isdigit((unsigned char)p[i])))
			i++;
		if (i == start)
			return false;
		if (i == n)
			return true;
		if (p[i] == '.')
			i++;
		else if (p[i] == '_')
			i += i + 1 < n && p[i + 1] == '_' ? 2 : 1;
		else if (p[i] == '-')
			while (i < n && p[i] == '-')
				i++;
		else
			return false;
	}
}

bool ocil_ref_path_valid(const char *p, size_t n)
{
	if (n == 0 || n > OCIL_REF_NAME_MAX)
		return false;
	const char *end = p + n;
	for (;;) {
		const char *e = memchr(p, '/', (size_t)(end - p));
		if (!path_component_valid(p, e ? (size_t)(e - p) : (size_t)(end - p)))
			return false;
		if (e == NULL)
			return true;
		p = e + 1;
	}
}

size_t ocil_ref_domain_len(const char *name)
{
	const char *slash = strchr(name, '/');
	if (slash == NULL)
		return 0;
	size_t n = (size_t)(slash - name);
	bool upper = false;
	for (size_t i = 0; i < n; i++)
		upper = upper || isupper((unsigned char)name[i]);
	if (memchr(name, '.', n) || memchr(name, ':', n) || upper ||
	    (n == 9 && strncmp(name, "localhost", 9) == 0))
		return n;
	return 0;
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
	char *name = work;
	const char *host = NULL;
	size_t hl = ocil_ref_domain_len(work);
	if (hl > 0) {
		if (!ocil_ref_domain_valid(work, hl))
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: invalid registry host \"%.*s\" (%s)", input,
					      (int)hl, work, OCIL_REF_DOMAIN_RULE);
		work[hl] = '\0';
		host = work;
		name = work + hl + 1;
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
	if (strlen(name) + (host ? strlen(host) + 1 : 0) > OCIL_REF_NAME_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: name longer than %d bytes", input,
				      OCIL_REF_NAME_MAX);
	if (!ocil_ref_path_valid(r->repository, strlen(r->repository)))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: invalid repository name \"%s\" (%s)",
				      input, r->repository, OCIL_REF_PATH_RULE);
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
