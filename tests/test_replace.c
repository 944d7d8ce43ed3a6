#include <fcntl.h>
#include <string.h>

#include "base/replace.h"
#include "base/util.h"
#include "test.h"

typedef struct {
	char *p;
	size_t n, cap;
} buf;

static void buf_add(buf *b, const void *d, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = ocil_xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static int sink(void *ud, const void *d, size_t n, ocil_error **err)
{
	buf_add(ud, d, n);
	return 0;
}

/* The simple in-memory reference: Python's bytes.replace on each segment. */
static size_t ref_replace_seg(buf *out, const char *d, size_t n, const char *from, const char *to)
{
	size_t m = strlen(from), tn = strlen(to), count = 0, i = 0;
	while (i < n) {
		if (i + m <= n && memcmp(d + i, from, m) == 0) {
			buf_add(out, to, tn);
			i += m;
			count++;
		} else {
			buf_add(out, d + i, 1);
			i++;
		}
	}
	return count;
}

static size_t ref_text(buf *out, const char *d, size_t n, const char *from, const char *to)
{
	return ref_replace_seg(out, d, n, from, to);
}

/* conda: per NUL-terminated string, replace and pad with NULs at its end
 * (an unterminated last string ends at the end of data). */
static size_t ref_binary(buf *out, const char *d, size_t n, const char *from, const char *to)
{
	size_t total = 0, start = 0, pad_each = strlen(from) - strlen(to);
	static const char zero[1];
	while (start <= n) {
		const char *nul = memchr(d + start, 0, n - start);
		size_t end = nul ? (size_t)(nul - d) : n;
		size_t c = ref_replace_seg(out, d + start, end - start, from, to);
		total += c;
		if (nul)
			buf_add(out, zero, 1);
		for (size_t k = 0; k < c * pad_each; k++)
			buf_add(out, zero, 1);
		if (!nul)
			break;
		start = end + 1;
	}
	return total;
}

static uint32_t rng = 2463534242u;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Run the streaming replacer over d in random chunks (or 1-byte chunks). */
static int run(ocil_replace_mode mode, const char *from, const char *to, const char *d, size_t n,
	       int chunking, bool with_sink, buf *out, uint64_t *size, uint64_t *matches)
{
	ocil_error *err = NULL;
	ocil_replacer *r = NULL;
	if (ocil_replacer_new(mode, from, to, with_sink ? sink : NULL, out, &r, &err) < 0) {
		fprintf(stderr, "%s\n", err->msg);
		ocil_error_free(err);
		return -1;
	}
	size_t off = 0;
	while (off < n) {
		size_t k = chunking == 1 ? 1 : chunking == 0 ? n - off : 1 + rnd() % 17;
		if (k > n - off)
			k = n - off;
		if (rnd() % 8 == 0) /* empty feeds are fine too */
			ocil_replacer_feed(r, d + off, 0, &err);
		if (ocil_replacer_feed(r, d + off, k, &err) < 0)
			break;
		off += k;
	}
	int rc = err == NULL ? ocil_replacer_finish(r, &err) : -1;
	*size = ocil_replacer_output_size(r);
	*matches = ocil_replacer_matches(r);
	ocil_replacer_free(r);
	ocil_error_free(err);
	return rc;
}

static int compare_one(ocil_replace_mode mode, const char *from, const char *to, const char *d,
		       size_t n, int chunking)
{
	buf want = {0}, got = {0};
	size_t wm = mode == OCIL_REPLACE_TEXT ? ref_text(&want, d, n, from, to)
					      : ref_binary(&want, d, n, from, to);
	uint64_t size = 0, matches = 0, csize = 0, cmatches = 0;
	int bad = run(mode, from, to, d, n, chunking, true, &got, &size, &matches) < 0 ||
		  run(mode, from, to, d, n, chunking, false, NULL, &csize, &cmatches) < 0 ||
		  got.n != want.n || (want.n && memcmp(got.p, want.p, want.n) != 0) ||
		  size != want.n || csize != want.n || matches != wm || cmatches != wm;
	if (bad) {
		fprintf(stderr, "mismatch: mode %d from \"%s\" to \"%s\" n %zu chunking %d: ", mode,
			from, to, n, chunking);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, d[i] ? "%c" : "\\0", d[i]);
		fprintf(stderr, " (got %zu bytes, want %zu)\n", got.n, want.n);
	}
	if (mode == OCIL_REPLACE_BINARY && !bad && got.n != n)
		bad = 1;
	free(want.p);
	free(got.p);
	return bad;
}

static void text_examples(void)
{
	CHECK(compare_one(OCIL_REPLACE_TEXT, "/old", "/brand/new", "#!/old/bin/python\n/old", 22,
			  1) == 0);
	buf out = {0};
	uint64_t size, matches;
	const char *d = "aaaa";
	CHECK(run(OCIL_REPLACE_TEXT, "aa", "b", d, 4, 1, true, &out, &size, &matches) == 0);
	CHECK(out.n == 2 && memcmp(out.p, "bb", 2) == 0 && matches == 2);
	free(out.p);
	out = (buf){0};
	/* KMP fallback: "aab" in "aaab" */
	CHECK(run(OCIL_REPLACE_TEXT, "aab", "X", "aaab", 4, 1, true, &out, &size, &matches) == 0);
	CHECK(out.n == 2 && memcmp(out.p, "aX", 2) == 0);
	free(out.p);
	out = (buf){0};
	/* partial match held at the end is flushed */
	CHECK(run(OCIL_REPLACE_TEXT, "abc", "X", "zab", 3, 1, true, &out, &size, &matches) == 0);
	CHECK(out.n == 3 && memcmp(out.p, "zab", 3) == 0 && matches == 0);
	free(out.p);
}

static void binary_examples(void)
{
	/* conda: "/old/prefix/lib\0" -> "/new/lib\0" + 3 NULs */
	const char d[] = "x/old/lib:/old/bin\0tail/old\0";
	buf out = {0};
	uint64_t size, matches;
	CHECK(run(OCIL_REPLACE_BINARY, "/old", "/n", d, sizeof(d) - 1, 1, true, &out, &size,
		  &matches) == 0);
	const char want[] = "x/n/lib:/n/bin\0\0\0\0\0tail/n\0\0\0";
	CHECK(out.n == sizeof(d) - 1 && memcmp(out.p, want, out.n) == 0 && matches == 3);
	free(out.p);
	CHECK(compare_one(OCIL_REPLACE_BINARY, "/old", "/n", d, sizeof(d) - 1, 1) == 0);

	ocil_error *err = NULL;
	ocil_replacer *r = NULL;
	CHECK_FAIL(ocil_replacer_new(OCIL_REPLACE_BINARY, "/a", "/longer", NULL, NULL, &r, &err),
		   &err, OCIL_E_INPUT, "longer than the old prefix");
	CHECK_FAIL(ocil_replacer_new(OCIL_REPLACE_TEXT, "", "/x", NULL, NULL, &r, &err), &err,
		   OCIL_E_INPUT, "empty");
	/* equal-length binary is fine */
	CHECK(compare_one(OCIL_REPLACE_BINARY, "/ab", "/cd", "/ab/ab\0", 7, 1) == 0);
}

/* Random data over a small alphabet so matches, near-matches and NULs are
 * frequent; every chunking; against the reference. */
static void randomized(void)
{
	static const char *froms[] = {"a", "aa", "aab", "abab", "/a/b", "aaa", "ab/a", "bab"};
	static const char *tos[] = {"", "x", "/a", "aa", "ZZZZZZ", "ab", "b"};
	static const char alpha[] = {'a', 'a', 'b', '/', '\0', 'x'};
	char d[300];
	int failures = 0;
	for (int iter = 0; iter < 6000 && failures < 5; iter++) {
		size_t n = rnd() % (iter < 3000 ? 24 : 300);
		for (size_t i = 0; i < n; i++)
			d[i] = alpha[rnd() % sizeof(alpha)];
		const char *from = froms[rnd() % 8], *to = tos[rnd() % 7];
		int chunking = (int)(rnd() % 3);
		failures += compare_one(OCIL_REPLACE_TEXT, from, to, d, n, chunking);
		if (strlen(to) <= strlen(from))
			failures += compare_one(OCIL_REPLACE_BINARY, from, to, d, n, chunking);
	}
	CHECK(failures == 0);
}

/* Output crosses the 64 KiB buffer; input goes through run_fd. */
static void large_fd(void)
{
	const size_t n = 300000;
	char *d = ocil_xmalloc(n);
	for (size_t i = 0; i < n; i++)
		d[i] = "/opt/old\0lib/"[i % 13];
	char *path = ocil_xasprintf("%s/data", ocil_test_tmpdir());
	ocil_error *err = NULL;
	int r = ocil_write_file_atomic(path, d, n, &err);
	buf want = {0}, got = {0};
	ref_binary(&want, d, n, "/opt/old", "/o");
	ocil_replacer *rp = NULL;
	if (r == 0)
		r = ocil_replacer_new(OCIL_REPLACE_BINARY, "/opt/old", "/o", sink, &got, &rp, &err);
	int fd = open(path, O_RDONLY);
	if (r == 0)
		r = ocil_replacer_run_fd(rp, fd, path, NULL, &err);
	close(fd);
	ocil_replacer_free(rp);
	free(path);
	int same = got.n == n && want.n == n && memcmp(got.p, want.p, n) == 0;
	free(d);
	free(want.p);
	free(got.p);
	CHECK_OK(r, &err);
	CHECK(same);
}

/* conda's install: each NUL-terminated string holding ph k times gets pre
 * for each and k * (len(ph) - len(pre)) NULs after its terminator (a last
 * string without a NUL is left alone, as conda's regex does). */
static void conda_install(buf *out, const char *d, size_t n, const char *ph, const char *pre)
{
	size_t start = 0, pad_each = strlen(ph) - strlen(pre);
	static const char zero[1];
	while (start < n) {
		const char *nul = memchr(d + start, 0, n - start);
		if (nul == NULL) {
			buf_add(out, d + start, n - start);
			break;
		}
		size_t end = (size_t)(nul - d);
		size_t c = ref_replace_seg(out, d + start, end - start, ph, pre);
		buf_add(out, zero, 1);
		for (size_t k = 0; k < c * pad_each; k++)
			buf_add(out, zero, 1);
		start = end + 1;
	}
}

/* The padded replacer over d (random chunks): 0, or -1 with the message
 * in msg (when not NULL). */
static int run_padded(const char *from, const char *to, size_t room, const char *d, size_t n,
		      buf *out, char *msg, size_t msg_len)
{
	ocil_error *err = NULL;
	ocil_replacer *r = NULL;
	int rc = ocil_replacer_new_padded(from, to, room, sink, out, &r, &err);
	for (size_t off = 0; rc == 0 && off < n;) {
		size_t k = 1 + rnd() % 23;
		if (k > n - off)
			k = n - off;
		rc = ocil_replacer_feed(r, d + off, k, &err);
		off += k;
	}
	if (rc == 0)
		rc = ocil_replacer_finish(r, &err);
	if (rc < 0 && msg != NULL)
		snprintf(msg, msg_len, "%s", err ? err->msg : "?");
	ocil_replacer_free(r);
	ocil_error_free(err);
	return rc;
}

#define PH "/opt/conda-bld/x_1/_h_env_placehold_placeh" /* 42 bytes */
#define SHORT "/tmp/e"
#define LONG "/home/runner/miniconda3/envs/x"
#define DEST "/opt/conda-env"

/* Installed by conda at a short path, then relocated to a longer one: the
 * same bytes as installed there directly, and as installed at a long path
 * and relocated down (the check). Strings holding the prefix once,
 * twice, beside other text; the last string with and without a NUL. */
static void padded_grow(void)
{
	static const struct {
		const char *s;
		size_t n;
	} pieces[] = {{PH, sizeof(PH) - 1},
		      {PH "/lib", sizeof(PH) + 3},
		      {"a", 1},
		      {"bb", 2},
		      {"/x", 2},
		      {"", 1},
		      {"\0", 2}};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))
	int failures = 0;
	for (int iter = 0; iter < 3000 && failures < 5; iter++) {
		buf pkg = {0}, at_short = {0}, at_long = {0}, at_dest = {0};
		buf from_short = {0}, from_long = {0};
		size_t parts = rnd() % 12;
		for (size_t i = 0; i < parts; i++) {
			size_t k = rnd() % NPIECES;
			buf_add(&pkg, pieces[k].s, pieces[k].n);
		}
		if (rnd() % 2)
			buf_add(&pkg, "", 1);
		conda_install(&at_short, pkg.p, pkg.n, PH, SHORT);
		conda_install(&at_long, pkg.p, pkg.n, PH, LONG);
		conda_install(&at_dest, pkg.p, pkg.n, PH, DEST);
		char msg[512] = "";
		/* a last string holding the prefix without its NUL: conda left it
		 * alone, so it holds the placeholder, not the prefix */
		int a = run_padded(SHORT, DEST, strlen(PH), at_short.p, at_short.n, &from_short,
				   msg, sizeof(msg));
		int b =
		    run_padded(LONG, DEST, strlen(PH), at_long.p, at_long.n, &from_long, NULL, 0);
		bool ok = a == 0 && b == 0 && from_short.n == at_dest.n &&
			  from_long.n == at_dest.n &&
			  (at_dest.n == 0 || (memcmp(from_short.p, at_dest.p, at_dest.n) == 0 &&
					      memcmp(from_long.p, at_dest.p, at_dest.n) == 0));
		if (!ok) {
			failures++;
			fprintf(stderr, "padded_grow: %d/%d %s (%zu bytes)\n", a, b, msg, pkg.n);
		}
		free(pkg.p);
		free(at_short.p);
		free(at_long.p);
		free(at_dest.p);
		free(from_short.p);
		free(from_long.p);
	}
	CHECK(failures == 0);
}

static void padded_errors(void)
{
	char msg[512] = "";
	buf out = {0};
	/* conda installed /tmp/e for a 42-byte placeholder: 36 NULs follow */
	buf good = {0};
	const char pkg[] = "x" PH "/lib:" PH "/bin\0tail";
	conda_install(&good, pkg, sizeof(pkg) - 1, PH, SHORT);
	CHECK(run_padded(SHORT, DEST, strlen(PH), good.p, good.n, &out, NULL, 0) == 0);
	CHECK(out.n == good.n &&
	      memcmp(out.p, "x" DEST "/lib:" DEST "/bin\0", strlen(DEST) * 2 + 11) == 0);
	free(out.p);
	/* the padding cut short: 50 of the 72 NULs */
	const char *nul = memchr(good.p, 0, good.n);
	size_t at = (size_t)(nul - good.p);
	buf cut = {0};
	buf_add(&cut, good.p, at + 1 + 50);
	buf_add(&cut, "tail", 4);
	out = (buf){0};
	CHECK(run_padded(SHORT, DEST, strlen(PH), cut.p, cut.n, &out, msg, sizeof(msg)) < 0);
	char want[256];
	snprintf(want, sizeof(want),
		 "no room to relocate to " DEST ": the string ending at byte %zu holds " SHORT
		 " 2 times and is followed by 50 NULs, where conda leaves 72 (a 42-byte "
		 "placeholder)",
		 at);
	CHECK_STREQ(msg, want);
	free(out.p);
	/* the end of the data inside the padding */
	out = (buf){0};
	CHECK(run_padded(SHORT, DEST, strlen(PH), cut.p, at + 10, &out, msg, sizeof(msg)) < 0);
	CHECK(strstr(msg, "followed by 9 NULs, where conda leaves 72") != NULL);
	free(out.p);
	/* not padded at all (a string that only looks like the prefix) */
	out = (buf){0};
	CHECK(run_padded(SHORT, DEST, strlen(PH), "a" SHORT "x\0b", 10, &out, msg, sizeof(msg)) <
	      0);
	CHECK(strstr(msg, "ending at byte 8 holds " SHORT " 1 time and is followed by 0 NULs") !=
	      NULL);
	free(out.p);
	/* the last string holds the prefix and has no NUL */
	out = (buf){0};
	CHECK(run_padded(SHORT, DEST, strlen(PH), "a\0" SHORT, 8, &out, msg, sizeof(msg)) < 0);
	CHECK(strstr(msg, "the last string holds " SHORT " but ends without a NUL at byte 8") !=
	      NULL);
	free(out.p);
	free(cut.p);
	free(good.p);
	/* a destination longer than the placeholder */
	ocil_error *err = NULL;
	ocil_replacer *r = NULL;
	CHECK_FAIL(ocil_replacer_new_padded(SHORT, DEST, 13, NULL, NULL, &r, &err), &err,
		   OCIL_E_INPUT,
		   "new prefix " DEST " is longer than the placeholder conda recorded (14 > 13 "
		   "bytes)");
	/* no longer than the prefix: conda's padding rule, nothing checked */
	out = (buf){0};
	CHECK(run_padded("/abc", "/x", 4, "/abc/l\0q", 8, &out, NULL, 0) == 0);
	CHECK(out.n == 8 && memcmp(out.p, "/x/l\0\0\0q", 8) == 0);
	free(out.p);
}

static void cancelled(void)
{
	volatile int flag = 1;
	ocil_cancel c = {.flag = &flag};
	ocil_error *err = NULL;
	ocil_replacer *r = NULL;
	CHECK_OK(ocil_replacer_new(OCIL_REPLACE_TEXT, "a", "b", NULL, NULL, &r, &err), &err);
	int fd = open("/dev/zero", O_RDONLY);
	int rc = ocil_replacer_run_fd(r, fd, "/dev/zero", &c, &err);
	close(fd);
	ocil_replacer_free(r);
	CHECK_FAIL(rc, &err, OCIL_E_CANCELLED, "interrupted");
}

TEST_MAIN(T(text_examples), T(binary_examples), T(randomized), T(large_fd), T(padded_grow),
	  T(padded_errors), T(cancelled))
