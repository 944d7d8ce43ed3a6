/* WWW-Authenticate challenges: what a registry's 401 asks for. */
#ifndef OCIL_CHALLENGE_H
#define OCIL_CHALLENGE_H

#include "base/error.h"

typedef struct {
	char *scheme; /* lowercase: "bearer", "basic", ... */
	char *realm;
	char *service;
	char *scope;
} ocil_challenge;

/* Parse one WWW-Authenticate value: scheme, then comma-separated params whose
 * values are tokens or quoted strings with backslash escapes. Unknown params
 * are ignored; a second challenge in the same value is ignored (the first
 * one is returned). Malformed input is an OCIL_E_REGISTRY error. */
int ocil_challenge_parse(const char *value, ocil_challenge *out, ocil_error **err);
void ocil_challenge_clear(ocil_challenge *c);

#endif
