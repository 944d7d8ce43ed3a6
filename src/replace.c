#include "replace.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define OBUF_SIZE ((size_t)64 << 10)
#define IBUF_SIZE ((size_t)64 << 10)

struct ocil_replacer {
	ocil_replace_mode mode;
	char *from, *to;
	size_t m, tn;
	size_t *fail; /* KMP: fail[i] = longest proper border of from[0..i] */
	/* The q bytes of input currently matching from[0..q) are held back
	 * (they are exactly from[0..q), so no buffer is needed for them). */
	size_t q;
	uint64_t pad; /* binary: NULs owed at the end of the current string */
	uint64_t out_bytes, matches;
	ocil_replace_sink sink;
	void *ud;
	unsigned char *obuf;
	size_t olen;
	bool finished;
};

static int flush_out(ocil_replacer *r, ocil_error **err)
{
	if (r->olen == 0)
		return 0;
	size_t n = r->olen;
	r->olen = 0;
	return r->sink(r->ud, r->obuf, n, err);
}

static int emit(ocil_replacer *r, const void *buf, size_t len, ocil_error **err)
{
	r->out_bytes += len;
	if (r->sink == NULL)
		return 0;
	const unsigned char *p = buf;
	while (len > 0) {
		size_t n = OBUF_SIZE - r->olen;
		if (n > len)
			n = len;
		memcpy(r->obuf + r->olen, p, n);
		r->olen += n;
		p += n;
		len -= n;
		if (r->olen == OBUF_SIZE && flush_out(r, err) < 0)
			return -1;
	}
	return 0;
}

static int emit_zeros(ocil_replacer *r, uint64_t n, ocil_error **err)
{
	static const unsigned char zeros[4096];
	while (n > 0) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;
		if (emit(r, zeros, k, err) < 0)
			return -1;
		n -= k;
	}
	return 0;
}

int ocil_replacer_new(ocil_replace_mode mode, const char *from, const char *to,
		      ocil_replace_sink sink, void *ud, ocil_replacer **out, ocil_error **err)
{
	size_t m = strlen(from), tn = strlen(to);
	if (m == 0)
		return ocil_error_set(err, OCIL_E_INPUT, "replace: empty search string");
	if (m > OCIL_REPLACE_MAX || tn > OCIL_REPLACE_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "replace: prefix longer than %d bytes",
				      OCIL_REPLACE_MAX);
	if (mode == OCIL_REPLACE_BINARY && tn > m)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "new prefix %s is longer than the old prefix %s (%zu > %zu "
				      "bytes), binary files can not be relocated",
				      to, from, tn, m);
	ocil_replacer *r = ocil_xcalloc(1, sizeof(*r));
	r->mode = mode;
	r->from = ocil_xstrdup(from);
	r->to = ocil_xstrdup(to);
	r->m = m;
	r->tn = tn;
	r->sink = sink;
	r->ud = ud;
	if (sink != NULL)
		r->obuf = ocil_xmalloc(OBUF_SIZE);
	r->fail = ocil_xcalloc(m, sizeof(size_t));
	for (size_t i = 1, k = 0; i < m; i++) {
		while (k > 0 && from[i] != from[k])
			k = r->fail[k - 1];
		if (from[i] == from[k])
			k++;
		r->fail[i] = k;
	}
	*out = r;
	return 0;
}

/* Binary mode: a NUL ends the current string; owed padding follows it. */
static int end_string(ocil_replacer *r, ocil_error **err)
{
	uint64_t pad = r->pad;
	r->pad = 0;
	return emit_zeros(r, pad, err);
}

int ocil_replacer_feed(ocil_replacer *r, const void *buf, size_t len, ocil_error **err)
{
	if (r->finished)
		return ocil_error_set(err, OCIL_E_IO, "replace: fed after finish");
	const unsigned char *p = buf, *end = p + len;
	const unsigned char first = (unsigned char)r->from[0];
	bool binary = r->mode == OCIL_REPLACE_BINARY;
	while (p < end) {
		if (r->q == 0) {
			/* Fast path: copy everything up to the next possible
			 * match start (or, in binary mode with padding owed,
			 * the next NUL) in one go. */
			const unsigned char *stop = memchr(p, first, (size_t)(end - p));
			if (binary && r->pad > 0) {
				const unsigned char *nul =
				    memchr(p, 0, (size_t)((stop ? stop : end) - p));
				if (nul != NULL)
					stop = nul;
			}
			if (stop == NULL)
				stop = end;
			if (stop > p && emit(r, p, (size_t)(stop - p), err) < 0)
				return -1;
			p = stop;
			if (p == end)
				break;
			if (*p == 0 && first != 0) {
				/* binary, padding owed: string ends here */
				if (emit(r, p, 1, err) < 0 || end_string(r, err) < 0)
					return -1;
				p++;
				continue;
			}
		}
		unsigned char c = *p++;
		size_t q = r->q;
		while (q > 0 && (unsigned char)r->from[q] != c) {
			size_t nq = r->fail[q - 1];
			/* the held bytes that can no longer start a match */
			if (emit(r, r->from, q - nq, err) < 0)
				return -1;
			q = nq;
		}
		if ((unsigned char)r->from[q] == c) {
			q++;
		} else {
			if (emit(r, &c, 1, err) < 0)
				return -1;
			if (binary && c == 0 && end_string(r, err) < 0)
				return -1;
		}
		if (q == r->m) {
			if (emit(r, r->to, r->tn, err) < 0)
				return -1;
			r->matches++;
			if (binary)
				r->pad += r->m - r->tn;
			q = 0;
		}
		r->q = q;
	}
	return 0;
}

int ocil_replacer_finish(ocil_replacer *r, ocil_error **err)
{
	if (r->finished)
		return 0;
	r->finished = true;
	if (emit(r, r->from, r->q, err) < 0)
		return -1;
	r->q = 0;
	if (end_string(r, err) < 0)
		return -1;
	return r->sink != NULL ? flush_out(r, err) : 0;
}

uint64_t ocil_replacer_output_size(const ocil_replacer *r)
{
	return r->out_bytes;
}

uint64_t ocil_replacer_matches(const ocil_replacer *r)
{
	return r->matches;
}

void ocil_replacer_free(ocil_replacer *r)
{
	if (r == NULL)
		return;
	free(r->from);
	free(r->to);
	free(r->fail);
	free(r->obuf);
	free(r);
}

int ocil_replacer_run_fd(ocil_replacer *r, int fd, const char *what, const ocil_cancel *cancel,
			 ocil_error **err)
{
	cleanup_free unsigned char *buf = ocil_xmalloc(IBUF_SIZE);
	for (;;) {
		if (ocil_cancel_check(cancel, err) < 0)
			return -1;
		ssize_t n = read(fd, buf, IBUF_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", what);
		if (n == 0)
			break;
		if (ocil_replacer_feed(r, buf, (size_t)n, err) < 0)
			return -1;
	}
	return ocil_replacer_finish(r, err);
}
