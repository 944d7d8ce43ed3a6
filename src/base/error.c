#include "base/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 1, 0))) static char *vformat(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

static int set_msg(ocil_error **err, ocil_code code, int errnum, char *msg)
{
	if (err == NULL || *err != NULL) {
		free(msg);
		return -1;
	}
	ocil_error *e = calloc(1, sizeof(*e));
	if (e == NULL) {
		free(msg);
		return -1;
	}
	e->code = code;
	e->errno_value = errnum;
	e->msg = msg != NULL ? msg : strdup("out of memory");
	*err = e;
	return -1;
}

int ocil_error_set(ocil_error **err, ocil_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = vformat(fmt, ap);
	va_end(ap);
	return set_msg(err, code, 0, msg);
}

int ocil_error_set_errno(ocil_error **err, ocil_code code, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *head = vformat(fmt, ap);
	va_end(ap);
	char *msg = NULL;
	if (head != NULL && asprintf(&msg, "%s: %s", head, strerror(errnum)) < 0)
		msg = NULL;
	free(head);
	return set_msg(err, code, errnum, msg);
}

int ocil_error_wrap(ocil_error **err, const char *fmt, ...)
{
	if (err == NULL || *err == NULL)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	char *ctx = vformat(fmt, ap);
	va_end(ap);
	char *msg = NULL;
	if (ctx != NULL && asprintf(&msg, "%s: %s", ctx, (*err)->msg) >= 0) {
		free((*err)->msg);
		(*err)->msg = msg;
	}
	free(ctx);
	return -1;
}

void ocil_error_append_hint(ocil_error **err, const char *hint)
{
	char *msg = NULL;
	if (err == NULL || *err == NULL || asprintf(&msg, "%s (%s)", (*err)->msg, hint) < 0)
		return;
	free((*err)->msg);
	(*err)->msg = msg;
}

void ocil_error_free(ocil_error *err)
{
	if (err == NULL)
		return;
	free(err->msg);
	free(err);
}
