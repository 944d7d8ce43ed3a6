#include "base/replace.h"

#include <errno.h>
#include <inttypes.h>
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
	/* padded mode, growing (to longer than from): */
	bool grow;
	size_t room;		     /* the placeholder's length */
	uint64_t owe_drop, owe_keep; /* for the current string's matches */
	uint64_t string_k;	     /* matches in the current string */
	/* after a terminator: NULs still to take out (drop) and to pass on
	 * (keep), and what the message needs if they are not there */
	uint64_t drop, keep, pad_k, pad_want, pad_seen, pad_nul_at;
	uint64_t in_bytes; /* input consumed before the current feed */
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

/* Both constructors' common part, once from and to are checked. */
static ocil_replacer *new_replacer(ocil_replace_mode mode, const char *from, const char *to,
				   ocil_replace_sink sink, void *ud)
{
	size_t m = strlen(from);
	ocil_replacer *r = ocil_xcalloc(1, sizeof(*r));
	r->mode = mode;
	r->from = ocil_xstrdup(from);
	r->to = ocil_xstrdup(to);
	r->m = m;
	r->tn = strlen(to);
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
	return r;
}

static int check_strings(const char *from, const char *to, ocil_error **err)
{
	if (from[0] == '\0')
		return ocil_error_set(err, OCIL_E_INPUT, "replace: empty search string");
	if (strlen(from) > OCIL_REPLACE_MAX || strlen(to) > OCIL_REPLACE_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "replace: prefix longer than %d bytes",
				      OCIL_REPLACE_MAX);
	return 0;
}

int ocil_replacer_new(ocil_replace_mode mode, const char *from, const char *to,
		      ocil_replace_sink sink, void *ud, ocil_replacer **out, ocil_error **err)
{
	if (check_strings(from, to, err) < 0)
		return -1;
	size_t m = strlen(from), tn = strlen(to);
	if (mode == OCIL_REPLACE_BINARY && tn > m)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "new prefix %s is longer than the old prefix %s (%zu > %zu "
				      "bytes), binary files can not be relocated",
				      to, from, tn, m);
	*out = new_replacer(mode, from, to, sink, ud);
	return 0;
}

int ocil_replacer_new_padded(const char *from, const char *to, size_t room, ocil_replace_sink sink,
			     void *ud, ocil_replacer **out, ocil_error **err)
{
	if (check_strings(from, to, err) < 0)
		return -1;
	size_t tn = strlen(to);
	if (tn > room)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "new prefix %s is longer than the placeholder conda recorded "
				      "(%zu > %zu bytes), binary files can not be relocated there",
				      to, tn, room);
	ocil_replacer *r = new_replacer(OCIL_REPLACE_BINARY, from, to, sink, ud);
	r->grow = tn > r->m;
	r->room = room;
	*out = r;
	return 0;
}

/* Binary mode: a NUL (at input offset nul_at) ends the current string;
 * owed padding follows it, or (growing) the NULs after it are taken. */
static int end_string(ocil_replacer *r, uint64_t nul_at, ocil_error **err)
{
	uint64_t pad = r->pad;
	r->pad = 0;
	if (r->grow && r->string_k > 0) {
		r->drop = r->owe_drop;
		r->keep = r->owe_keep;
		r->pad_k = r->string_k;
		r->pad_want = r->drop + r->keep;
		r->pad_seen = 0;
		r->pad_nul_at = nul_at;
	}
	r->owe_drop = r->owe_keep = r->string_k = 0;
	return emit_zeros(r, pad, err);
}

static int short_padding(const ocil_replacer *r, ocil_error **err)
{
	return ocil_error_set(err, OCIL_E_INPUT,
			      "no room to relocate to %s: the string ending at byte %" PRIu64
			      " holds %s %" PRIu64 " time%s and is followed by %" PRIu64
			      " NULs, where conda leaves %" PRIu64 " (a %zu-byte placeholder)",
			      r->to, r->pad_nul_at, r->from, r->pad_k, r->pad_k == 1 ? "" : "s",
			      r->pad_seen, r->pad_want, r->room);
}

/* Growing: the NULs conda left after a string, some taken out (drop),
 * the rest passed on (keep); anything else there is an error. */
static int take_padding(ocil_replacer *r, const unsigned char **pp, const unsigned char *end,
			ocil_error **err)
{
	const unsigned char *p = *pp;
	uint64_t want = r->drop + r->keep;
	size_t n = (uint64_t)(end - p) < want ? (size_t)(end - p) : (size_t)want;
	size_t z = 0;
	while (z < n && p[z] == 0)
		z++;
	uint64_t d = z < r->drop ? z : r->drop;
	r->drop -= d;
	r->keep -= z - d;
	r->pad_seen += z;
	*pp = p + z;
	if (z - d > 0 && emit_zeros(r, z - d, err) < 0)
		return -1;
	return z < n ? short_padding(r, err) : 0;
}

int ocil_replacer_feed(ocil_replacer *r, const void *buf, size_t len, ocil_error **err)
{
	if (r->finished)
		return ocil_error_set(err, OCIL_E_IO, "replace: fed after finish");
	const unsigned char *start = buf, *p = start, *end = p + len;
	const unsigned char first = (unsigned char)r->from[0];
	bool binary = r->mode == OCIL_REPLACE_BINARY;
	while (p < end) {
		if (r->drop > 0 || r->keep > 0) {
			if (take_padding(r, &p, end, err) < 0)
				return -1;
			continue;
		}
		bool owed = r->pad > 0 || r->string_k > 0;
		if (r->q == 0) {
			/* Fast path: copy everything up to the next possible
			 * match start (or, in binary mode with something owed
			 * at the string's end, the next NUL) in one go. */
			const unsigned char *stop = memchr(p, first, (size_t)(end - p));
			if (binary && owed) {
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
				/* binary, something owed: the string ends here */
				if (emit(r, p, 1, err) < 0 ||
				    end_string(r, r->in_bytes + (uint64_t)(p - start), err) < 0)
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
			if (binary && c == 0 &&
			    end_string(r, r->in_bytes + (uint64_t)(p - 1 - start), err) < 0)
				return -1;
		}
		if (q == r->m) {
			if (emit(r, r->to, r->tn, err) < 0)
				return -1;
			r->matches++;
			if (binary && r->grow) {
				r->string_k++;
				r->owe_drop += r->tn - r->m;
				r->owe_keep += r->room - r->tn;
			} else if (binary) {
				r->pad += r->m - r->tn;
			}
			q = 0;
		}
		r->q = q;
	}
	r->in_bytes += len;
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
	if (r->string_k > 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "no room to relocate to %s: the last string holds %s but "
				      "ends without a NUL at byte %" PRIu64,
				      r->to, r->from, r->in_bytes);
	if (r->drop > 0 || r->keep > 0)
		return short_padding(r, err);
	if (end_string(r, r->in_bytes, err) < 0)
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
