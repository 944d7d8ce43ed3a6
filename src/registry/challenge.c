/* WWW-Authenticate challenges (RFC 7235), as registries send them. */
#include "registry/challenge.h"

#include <ctype.h>
#include <string.h>

#include "base/util.h"

/* WWW-Authenticate values are short; a cap keeps a hostile one cheap. */
#define CHALLENGE_MAX ((size_t)8 << 10)

static bool is_tchar(char c)
{
	return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* token68 (RFC 7235): a credential blob instead of params, e.g.
 * "Negotiate abc==". Recognised only so that it is skipped. */
static bool is_token68(const char *p)
{
	const char *s = p;
	while (isalnum((unsigned char)*p) || (*p != '\0' && strchr("-._~+/", *p) != NULL))
		p++;
	if (p == s)
		return false;
	while (*p == '=')
		p++;
	return *skip_ows(p) == '\0';
}

void ocil_challenge_clear(ocil_challenge *c)
{
	if (c == NULL)
		return;
	free(c->scheme);
	free(c->realm);
	free(c->service);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}

static int bad_challenge(ocil_challenge *c, ocil_error **err, const char *why)
{
	ocil_challenge_clear(c);
	return ocil_error_set(err, OCIL_E_REGISTRY, "malformed WWW-Authenticate header: %s", why);
}

int ocil_challenge_parse(const char *value, ocil_challenge *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	if (strlen(value) > CHALLENGE_MAX)
		return bad_challenge(out, err, "longer than 8 KiB");
	const char *p = skip_ows(value);
	const char *s = p;
	while (is_tchar(*p))
		p++;
	if (p == s)
		return bad_challenge(out, err, "no auth scheme");
	out->scheme = ocil_xstrndup(s, (size_t)(p - s));
	for (char *c = out->scheme; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	if (*skip_ows(p) == '\0')
		return 0;
	if (*p != ' ' && *p != '\t')
		return bad_challenge(out, err, "expected a space after the scheme");
	p = skip_ows(p);
	/* Registries answer Basic and Bearer with params; there a lone word
	 * is a broken param list, not a token68. */
	if (strcmp(out->scheme, "basic") != 0 && strcmp(out->scheme, "bearer") != 0 &&
	    is_token68(p))
		return 0;

	bool any = false;
	for (;;) {
		p = skip_ows(p);
		if (*p == '\0')
			break;
		if (*p == ',') {
			p++;
			continue;
		}
		s = p;
		while (is_tchar(*p))
			p++;
		if (p == s)
			return bad_challenge(out, err, "expected a parameter name");
		size_t nlen = (size_t)(p - s);
		const char *name = s;
		p = skip_ows(p);
		if (*p != '=') {
			/* "Basic realm=x, Bearer realm=y": a second challenge
			 * starts here; we use the first. */
			if (any)
				break;
			return bad_challenge(out, err, "expected '=' after a parameter name");
		}
		p = skip_ows(p + 1);
		char *val;
		if (*p == '"') {
			p++;
			size_t cap = strlen(p) + 1, n = 0;
			val = ocil_xmalloc(cap);
			for (;;) {
				if (*p == '\0') {
					free(val);
					return bad_challenge(out, err,
							     "unterminated quoted string");
				}
				if (*p == '"') {
					p++;
					break;
				}
				if (*p == '\\') {
					p++;
					if (*p == '\0') {
						free(val);
						return bad_challenge(out, err,
								     "unterminated quoted string");
					}
				}
				val[n++] = *p++;
			}
			val[n] = '\0';
		} else {
			s = p;
			while (is_tchar(*p))
				p++;
			if (p == s)
				return bad_challenge(out, err, "parameter without a value");
			val = ocil_xstrndup(s, (size_t)(p - s));
		}
		char **slot = NULL;
		if (nlen == 5 && strncasecmp(name, "realm", 5) == 0)
			slot = &out->realm;
		else if (nlen == 7 && strncasecmp(name, "service", 7) == 0)
			slot = &out->service;
		else if (nlen == 5 && strncasecmp(name, "scope", 5) == 0)
			slot = &out->scope;
		if (slot != NULL && *slot != NULL) {
			free(val);
			return bad_challenge(out, err, "a parameter appears twice");
		}
		if (slot != NULL)
			*slot = val;
		else
			free(val);
		any = true;
		p = skip_ows(p);
		if (*p != ',' && *p != '\0')
			return bad_challenge(out, err, "expected ',' between parameters");
	}
	return 0;
}
