#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "base/walk.h"
#include "layers/pyc_prefix.h"
#include "support_tar.h"
#include "test.h"

/* Magic numbers of the python releases (importlib's MAGIC_NUMBER). */
#define MAGIC_311 3495
#define MAGIC_310 3439

/* A pyc header: magic, flags, then mtime+size or the hash. */
static void header(unsigned char *h, uint16_t magic, uint32_t flags, uint32_t a, uint32_t b)
{
	h[0] = (unsigned char)magic;
	h[1] = (unsigned char)(magic >> 8);
	h[2] = '\r';
	h[3] = '\n';
	for (int i = 0; i < 4; i++) {
		h[4 + i] = (unsigned char)(flags >> (8 * i));
		h[8 + i] = (unsigned char)(a >> (8 * i));
		h[12 + i] = (unsigned char)(b >> (8 * i));
	}
}

static void hash_header(unsigned char *h, uint16_t magic, bool checked, uint64_t hash)
{
	header(h, magic, checked ? 3 : 1, (uint32_t)hash, (uint32_t)(hash >> 32));
}

static void headers(void)
{
	unsigned char b[16];
	ocil_pyc_header h;
	header(b, MAGIC_311, 0, 1600000000, 42);
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(h.kind == OCIL_PYC_TIMESTAMP && h.magic == MAGIC_311);
	CHECK(h.mtime == 1600000000 && h.size == 42);
	hash_header(b, MAGIC_311, true, 0x0102030405060708ULL);
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(h.kind == OCIL_PYC_CHECKED_HASH && h.hash == 0x0102030405060708ULL);
	hash_header(b, MAGIC_311, false, 7);
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(h.kind == OCIL_PYC_UNCHECKED_HASH && h.hash == 7);
	/* short, flags 2, a magic without "\r\n" */
	ocil_pyc_header_parse(b, 15, &h);
	CHECK(h.kind == OCIL_PYC_BAD);
	header(b, MAGIC_311, 2, 0, 0);
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(h.kind == OCIL_PYC_BAD);
	header(b, MAGIC_311, 0, 0, 0);
	b[3] = 'x';
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(h.kind == OCIL_PYC_BAD);
	CHECK_STREQ(ocil_pyc_stale_reason(&h, 11, 0, 0, NULL), "header");
}

static void names(void)
{
	size_t sl = 0, tl = 0;
	const char *tag = NULL;
	int opt = -1;
	CHECK(ocil_pyc_name_parse("mod.cpython-311.pyc", &sl, &tag, &tl, &opt));
	CHECK(sl == 3 && tl == 11 && strncmp(tag, "cpython-311", tl) == 0 && opt == 0);
	CHECK(ocil_pyc_name_parse("mod.cpython-311.opt-2.pyc", &sl, &tag, &tl, &opt));
	CHECK(sl == 3 && tl == 11 && opt == 2);
	CHECK(ocil_pyc_name_parse("a.b.pypy39.pyc", &sl, &tag, &tl, &opt));
	CHECK(sl == 3 && tl == 6 && opt == 0);
	CHECK(!ocil_pyc_name_parse("mod.pyc", &sl, &tag, &tl, &opt));
	CHECK(!ocil_pyc_name_parse(".cpython-311.pyc", &sl, &tag, &tl, &opt));
	CHECK(!ocil_pyc_name_parse("mod.cpython-311.opt-.pyc", &sl, &tag, &tl, &opt));
	CHECK(!ocil_pyc_name_parse("mod.cpython-311.opt-x.pyc", &sl, &tag, &tl, &opt));
	CHECK(!ocil_pyc_name_parse("mod.cpython-311.py", &sl, &tag, &tl, &opt));
	CHECK(ocil_pyc_name_is_for("mod.cpython-311.pyc", "mod", 3));
	CHECK(!ocil_pyc_name_is_for("mod.x.cpython-311.pyc", "mod", 3));
	CHECK(!ocil_pyc_name_is_for("modx.cpython-311.pyc", "mod", 3));
	CHECK(ocil_pyc_minor("3.11") == 11 && ocil_pyc_minor("3.8.16") == 8);
	CHECK(ocil_pyc_minor("2.7") == -1 && ocil_pyc_minor("3.x") == -1 &&
	      ocil_pyc_minor(NULL) == -1);
	char t[16];
	ocil_pyc_tag(11, t, sizeof(t));
	CHECK_STREQ(t, "cpython-311");
	CHECK(ocil_pyc_tag_minor("cpython-39", 10) == 9 && ocil_pyc_tag_minor("pypy39", 6) == -1);
	CHECK(ocil_pyc_magic_ok(11, MAGIC_311) && !ocil_pyc_magic_ok(11, MAGIC_310));
	CHECK(ocil_pyc_magic_ok(8, 3413) && ocil_pyc_magic_ok(13, 3571));
	CHECK(ocil_pyc_magic_ok(14, 3627) && !ocil_pyc_magic_ok(14, 3571));
}

/* The vectors are importlib.util.source_hash of Debian's python 3.11 (and
 * for 3.10, SipHash-2-4 of a model checked against the SipHash paper's). */
static void hashes(void)
{
	static const struct {
		int minor;
		uint16_t magic;
		const char *data;
		size_t len;
		uint64_t want;
	} v[] = {
	    {11, MAGIC_311, "", 0, 0x737fe8d5d59c8d73ULL},
	    {11, MAGIC_311, "x=1\n", 4, 0x870de8f9d5a11df7ULL},
	    {11, MAGIC_311, "12345678", 8, 0xe4b09142749d2834ULL},
	    {11, MAGIC_311, "print(\"hello world\")\n", 21, 0x591d81db459705caULL},
	    {10, MAGIC_310, "", 0, 0x27fde72525cdc08cULL},
	    {10, MAGIC_310, "x=1\n", 4, 0xf9ec5b57495a89a5ULL},
	};
	for (size_t i = 0; i < NENTS(v); i++) {
		for (size_t step = 1; step <= 9; step += 4) {
			ocil_pyc_hasher h;
			ocil_pyc_hash_begin(&h, v[i].minor, v[i].magic);
			for (size_t at = 0; at < v[i].len; at += step)
				ocil_pyc_hash_update(&h, v[i].data + at,
						     v[i].len - at < step ? v[i].len - at : step);
			uint64_t got = ocil_pyc_hash_final(&h);
			if (got != v[i].want)
				fprintf(stderr, "vector %zu step %zu: %016llx\n", i, step,
					(unsigned long long)got);
			CHECK(got == v[i].want);
		}
	}
	unsigned char b200[200];
	for (int i = 0; i < 200; i++)
		b200[i] = (unsigned char)i;
	ocil_pyc_hasher h;
	ocil_pyc_hash_begin(&h, 11, MAGIC_311);
	ocil_pyc_hash_update(&h, b200, sizeof(b200));
	CHECK(ocil_pyc_hash_final(&h) == 0x7722b3e9749d3148ULL);
	ocil_pyc_hash_begin(&h, 10, MAGIC_310);
	ocil_pyc_hash_update(&h, b200, sizeof(b200));
	CHECK(ocil_pyc_hash_final(&h) == 0x3fd034348f019810ULL);
}

static void reasons(void)
{
	unsigned char b[16];
	ocil_pyc_header h;
	/* importlib compares the low 32 bits of the mtime and of the size */
	header(b, MAGIC_311, 0, (uint32_t)5000000000LL, 10);
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(ocil_pyc_stale_reason(&h, 11, 5000000000LL, 10, NULL) == NULL);
	CHECK(ocil_pyc_stale_reason(&h, 11, 5000000000LL, 10 + ((uint64_t)1 << 32), NULL) == NULL);
	CHECK_STREQ(ocil_pyc_stale_reason(&h, 11, 5000000001LL, 10, NULL), "mtime");
	CHECK_STREQ(ocil_pyc_stale_reason(&h, 11, 5000000000LL, 11, NULL), "size");
	CHECK_STREQ(ocil_pyc_stale_reason(&h, 10, 5000000000LL, 10, NULL), "magic");
	uint64_t hv = 99;
	hash_header(b, MAGIC_311, true, 99);
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(ocil_pyc_stale_reason(&h, 11, 0, 0, &hv) == NULL);
	hv = 98;
	CHECK_STREQ(ocil_pyc_stale_reason(&h, 11, 0, 0, &hv), "hash");
	hash_header(b, MAGIC_311, false, 99);
	ocil_pyc_header_parse(b, 16, &h);
	CHECK(ocil_pyc_stale_reason(&h, 11, 0, 0, &hv) == NULL);
}

/* ---- a prefix ---- */

static int put_at(const char *rel, const char *text, time_t mtime)
{
	if (putn(rel, text, strlen(text), 0644) < 0)
		return -1;
	cleanup_free char *p = tpath(rel);
	struct timespec t[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
	return utimensat(AT_FDCWD, p, t, 0);
}

static int put_pyc(const char *rel, uint16_t magic, uint32_t flags, uint32_t a, uint32_t b)
{
	unsigned char h[20];
	header(h, magic, flags, a, b);
	memcpy(h + 16, "code", 4);
	return putn(rel, h, sizeof(h), 0644);
}

typedef struct {
	ocil_layer_writer *w;
	ocil_pyc_prefix *p;
	const char *rewrite; /* a file name whose bytes the "relocation" changes */
} walk_ctx;

static int walk_fn(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	walk_ctx *c = ud;
	cleanup_free char *path = ocil_xasprintf("/p/%s", e->rel);
	if (S_ISDIR(e->st->st_mode))
		return ocil_layer_writer_add_dir(c->w, path, 0755, err);
	bool rewritten = c->rewrite != NULL && strcmp(e->name, c->rewrite) == 0;
	uint64_t size = (uint64_t)e->st->st_size + (rewritten ? 5 : 0);
	ocil_pyc_prefix_source(c->p, e, rewritten, size, c->w);
	cleanup_free char *buf = ocil_xcalloc(1, size + 1);
	return ocil_layer_writer_add_file(c->w, path, 0644, buf, size, err);
}

static bool skip_gone(const char *rel, void *ud)
{
	return strstr(rel, "excluded") == NULL;
}

static void prefix_mtimes(void)
{
	/* a.py: valid timestamp pyc (and an opt-1 and a 3.9 one); b.py: its
	 * stale pyc records (0, size), the layer's time: moved to 1; c.py:
	 * no pyc; d.py: rewritten; e.py: checked hash; f.py: stale; g.py:
	 * its only pyc is excluded */
	CHECK(put_at("t/pkg/a.py", "A = 1\n", 1600000000) == 0);
	CHECK(put_pyc("t/pkg/__pycache__/a.cpython-311.pyc", MAGIC_311, 0, 1600000000, 6) == 0);
	CHECK(put_pyc("t/pkg/__pycache__/a.cpython-311.opt-1.pyc", MAGIC_311, 0, 1600000000, 6) ==
	      0);
	CHECK(put_pyc("t/pkg/__pycache__/a.cpython-39.pyc", 3425, 0, 1600000000, 6) == 0);
	CHECK(put_at("t/pkg/b.py", "B = 22\n", 1600000001) == 0);
	CHECK(put_pyc("t/pkg/__pycache__/b.cpython-311.pyc", MAGIC_311, 0, 0, 7) == 0);
	CHECK(put_at("t/pkg/c.py", "C = 1\n", 1600000002) == 0);
	CHECK(put_at("t/pkg/d.py", "D = 1\n", 1600000003) == 0);
	CHECK(put_pyc("t/pkg/__pycache__/d.cpython-311.pyc", MAGIC_311, 0, 1600000003, 6) == 0);
	CHECK(put_at("t/pkg/e.py", "x=1\n", 1600000004) == 0);
	unsigned char h[16];
	hash_header(h, MAGIC_311, true, 0x870de8f9d5a11df7ULL); /* source_hash(b"x=1\n") */
	CHECK(putn("t/pkg/__pycache__/e.cpython-311.pyc", h, 16, 0644) == 0);
	CHECK(put_at("t/pkg/f.py", "F = 1\n", 1600000005) == 0);
	CHECK(put_pyc("t/pkg/__pycache__/f.cpython-311.pyc", MAGIC_311, 0, 1500000000, 6) == 0);
	CHECK(put_at("t/pkg/g.py", "G = 1\n", 1600000006) == 0);

	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(open_layer_writer(&bs, &w, &err), &err);
	walk_ctx c = {.w = w, .rewrite = "d.py"};
	c.p = ocil_pyc_prefix_new("3.11", 0, skip_gone, NULL);
	cleanup_free char *root = tpath("t");
	CHECK_OK(ocil_layer_writer_add_dir(w, "/p", 0755, &err), &err);
	ocil_walk_opts wo = {.fn = walk_fn, .ud = &c};
	int r = ocil_walk(root, &wo, &err);
	const ocil_pyc_counts *k = ocil_pyc_prefix_counts(c.p);
	size_t pycs = k->pycs, valid = k->valid, stale = k->stale_host, rew = k->rewritten;
	cleanup_free char *sum = ocil_pyc_counts_summary(k);
	ocil_pyc_prefix_free(c.p);
	CHECK_OK(r, &err);
	rlayer l = {.n = 0};
	r = finish_read_layer(bs, w, &l, &err);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	static const struct {
		const char *name;
		int64_t mtime;
	} want[] = {
	    {"p/pkg/a.py", 1600000000}, {"p/pkg/b.py", 1},
	    {"p/pkg/c.py", 0},		{"p/pkg/d.py", 0},
	    {"p/pkg/e.py", 0},		{"p/pkg/f.py", 0},
	    {"p/pkg/g.py", 0},		{"p/pkg/__pycache__/a.cpython-311.pyc", 0},
	};
	bool ok = true;
	for (size_t i = 0; i < NENTS(want); i++) {
		const rentry *x = rlayer_find(&l, want[i].name);
		if (x == NULL || x->mtime != want[i].mtime) {
			fprintf(stderr, "%s: mtime %lld\n", want[i].name,
				x ? (long long)x->mtime : -1LL);
			ok = false;
		}
	}
	rlayer_clear(&l);
	CHECK(ok);
	/* a, b, d, e, f have a cpython-311 pyc without optimization */
	CHECK(pycs == 5 && valid == 2 && stale == 2 && rew == 1);
	CHECK(strstr(sum, "2 of 5 .pyc files valid in the image") != NULL);
	CHECK(strstr(sum, "2 stale on the build host already (e.g. pkg/b.py)") != NULL);
	CHECK(strstr(sum, "1 compiled from sources the relocation rewrote (e.g. pkg/d.py)") !=
	      NULL);
}

static void excluded_pycs(void)
{
	/* the pyc of g.py is left out of the layer: g.py keeps the layer's time */
	CHECK(put_at("x/g.py", "G = 1\n", 1600000006) == 0);
	CHECK(put_pyc("x/__pycache__/g.cpython-311.pyc", MAGIC_311, 0, 1600000006, 6) == 0);
	ocil_error *err = NULL;
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(open_layer_writer(&bs, &w, &err), &err);
	walk_ctx c = {.w = w};
	c.p = ocil_pyc_prefix_new("3.11", 0, skip_gone, NULL);
	cleanup_free char *root = tpath("x");
	/* "excluded" in its path: rename the directory's cache */
	cleanup_free char *from = tpath("x/__pycache__/g.cpython-311.pyc");
	cleanup_free char *to = tpath("x/__pycache__/g.excluded.pyc");
	CHECK(rename(from, to) == 0);
	CHECK_OK(ocil_layer_writer_add_dir(w, "/p", 0755, &err), &err);
	ocil_walk_opts wo = {.fn = walk_fn, .ud = &c};
	int r = ocil_walk(root, &wo, &err);
	size_t pycs = ocil_pyc_prefix_counts(c.p)->pycs;
	ocil_pyc_prefix_free(c.p);
	CHECK_OK(r, &err);
	CHECK(pycs == 0);
	rlayer l = {.n = 0};
	r = finish_read_layer(bs, w, &l, &err);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	const rentry *g = rlayer_find(&l, "p/g.py");
	bool ok = g != NULL && g->mtime == 0;
	rlayer_clear(&l);
	CHECK(ok);
}

/* ---- facts and scans ---- */

/* A layer with sources and bytecode; its blob path in *blob. */
static int scan_layer(const char *index_dir, char **blob, ocil_error **err)
{
	cleanup_free char *store = tpath("store");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	ocil_layer_opts lo = {.index_dir = index_dir};
	if (ocil_blobstore_open(store, &bs, err) < 0 || ocil_layer_writer_new(bs, &lo, &w, err) < 0)
		return -1;
	unsigned char h[16];
	int r = ocil_layer_writer_add_dir(w, "/a", 0755, err);
	r = r ? r : ocil_layer_writer_add_dir(w, "/a/__pycache__", 0755, err);
	/* valid (timestamp) */
	header(h, MAGIC_311, 0, 100, 4);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/ok.cpython-311.pyc", 0644, h, 16,
					   err);
	r = r ? r : ocil_layer_writer_set_next_mtime(w, 100);
	r = r ? r : ocil_layer_writer_add_file(w, "/a/ok.py", 0644, "x=1\n", 4, err);
	/* stale: mtime */
	header(h, MAGIC_311, 0, 100, 4);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/old.cpython-311.pyc", 0644, h, 16,
					   err);
	r = r ? r : ocil_layer_writer_add_file(w, "/a/old.py", 0644, "x=1\n", 4, err);
	/* checked hash, good and bad; unchecked */
	hash_header(h, MAGIC_311, true, 0x870de8f9d5a11df7ULL);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/hok.cpython-311.pyc", 0644, h, 16,
					   err);
	r = r ? r : ocil_layer_writer_add_file(w, "/a/hok.py", 0644, "x=1\n", 4, err);
	hash_header(h, MAGIC_311, true, 1);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/hbad.cpython-311.pyc", 0644, h, 16,
					   err);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/hbad.py", 0644, "x = 1 # a longer one\n", 21,
					   err);
	hash_header(h, MAGIC_311, false, 1);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/unc.cpython-311.pyc", 0644, h, 16,
					   err);
	r = r ? r : ocil_layer_writer_add_file(w, "/a/unc.py", 0644, "x=1\n", 4, err);
	/* not counted: another tag, -O, no source, not in a __pycache__ */
	header(h, 3425, 0, 0, 0);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/ok.cpython-39.pyc", 0644, h, 16, err);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/ok.cpython-311.opt-1.pyc", 0644, h,
					   16, err);
	r = r ? r
	      : ocil_layer_writer_add_file(w, "/a/__pycache__/nosrc.cpython-311.pyc", 0644, h, 16,
					   err);
	r = r ? r : ocil_layer_writer_add_file(w, "/a/loose.pyc", 0644, h, 16, err);
	ocil_layer_result res;
	r = r ? r : ocil_layer_writer_finish(w, &res, err);
	if (r == 0)
		*blob = ocil_blobstore_path(bs, res.digest);
	return r;
}

static void facts_and_scan(void)
{
	ocil_error *err = NULL;
	cleanup_free char *index = tpath("index");
	cleanup_free char *blob = NULL;
	CHECK_OK(scan_layer(index, &blob, &err), &err);
	/* the writer kept the facts: found without the blob */
	cleanup_free char *facts_dir = tpath("index");
	ocil_pyc_facts f = {0};
	CHECK_OK(ocil_pyc_facts_of_layer(blob, "layer", facts_dir, NULL, &f, &err), &err);
	size_t n = f.n;
	bool head_ok = n == 13 && f.v[0].pyc && f.v[0].head_len == 16 && !f.v[1].pyc &&
		       f.v[1].mtime == 100 && f.v[1].size == 4;
	ocil_pyc_facts_clear(&f);
	CHECK(head_ok);
	/* the same read from the blob */
	CHECK_OK(ocil_pyc_facts_of_layer(blob, "layer", NULL, NULL, &f, &err), &err);
	head_ok = f.n == n && f.v[0].head_len == 16 && f.v[1].mtime == 100;
	ocil_pyc_facts_clear(&f);
	CHECK(head_ok);
	/* a damaged facts file is read again from the blob (and rewritten) */
	const char *hex = strrchr(blob, '/') + 1;
	cleanup_free char *ff = ocil_xasprintf("%s/%s.bytecode", facts_dir, hex);
	int fd = open(ff, O_WRONLY);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, "X", 1, 20) == 1);
	close(fd);
	CHECK_OK(ocil_pyc_facts_of_layer(blob, "layer", facts_dir, NULL, &f, &err), &err);
	head_ok = f.n == n;
	ocil_pyc_facts_clear(&f);
	CHECK(head_ok);

	const char *paths[] = {blob};
	cleanup_rootfs ocil_rootfs *fs = NULL;
	CHECK_OK(ocil_rootfs_open(paths, 1, NULL, &fs, &err), &err);
	ocil_pyc_stats st;
	ocil_pyc_scan_opts so = {.facts_dir = facts_dir};
	CHECK_OK(ocil_pyc_scan_image(paths, 1, fs, 11, &so, &st, &err), &err);
	/* ok, old, hok, hbad, unc; stale: old (mtime) and hbad (hash), the
	 * bigger first */
	bool ok = st.pycs == 5 && st.stale == 2 && st.n_top == 2 &&
		  strcmp(st.top[0].source, "/a/hbad.py") == 0 &&
		  strcmp(st.top[0].why, "hash") == 0 &&
		  strcmp(st.top[1].source, "/a/old.py") == 0 && strcmp(st.top[1].why, "mtime") == 0;
	if (!ok)
		fprintf(stderr, "pycs %zu stale %zu top %zu\n", st.pycs, st.stale, st.n_top);
	ocil_pyc_stats_clear(&st);
	CHECK(ok);
	/* for python 3.10 all of them have the wrong magic */
	CHECK_OK(ocil_pyc_scan_image(paths, 1, fs, 10, &so, &st, &err), &err);
	ok = st.pycs == 0;
	ocil_pyc_stats_clear(&st);
	CHECK(ok);
}

static void scan_layers_over(void)
{
	/* an upper layer's fresh pyc replaces a lower stale one; a whiteout
	 * removes a source */
	ocil_error *err = NULL;
	cleanup_free char *blob = NULL;
	CHECK_OK(scan_layer(NULL, &blob, &err), &err);
	unsigned char h[16];
	header(h, MAGIC_311, 0, 0, 4);
	cleanup_free char *store = tpath("store");
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	CHECK_OK(ocil_blobstore_open(store, &bs, &err), &err);
	CHECK_OK(ocil_layer_writer_new(bs, NULL, &w, &err), &err);
	CHECK_OK(ocil_layer_writer_add_dir(w, "/a", 0755, &err), &err);
	CHECK_OK(ocil_layer_writer_add_dir(w, "/a/__pycache__", 0755, &err), &err);
	CHECK_OK(
	    ocil_layer_writer_add_file(w, "/a/__pycache__/old.cpython-311.pyc", 0644, h, 16, &err),
	    &err);
	CHECK_OK(ocil_layer_writer_add_file(w, "/a/.wh.hbad.py", 0644, "", 0, &err), &err);
	ocil_layer_result res;
	CHECK_OK(ocil_layer_writer_finish(w, &res, &err), &err);
	cleanup_free char *upper = ocil_blobstore_path(bs, res.digest);
	const char *paths[] = {blob, upper};
	cleanup_rootfs ocil_rootfs *fs = NULL;
	CHECK_OK(ocil_rootfs_open(paths, 2, NULL, &fs, &err), &err);
	ocil_pyc_stats st;
	ocil_pyc_scan_opts so = {0};
	CHECK_OK(ocil_pyc_scan_image(paths, 2, fs, 11, &so, &st, &err), &err);
	bool ok = st.pycs == 4 && st.stale == 0;
	if (!ok)
		fprintf(stderr, "pycs %zu stale %zu\n", st.pycs, st.stale);
	ocil_pyc_stats_clear(&st);
	CHECK(ok);
}

TEST_MAIN(T(headers), T(names), T(hashes), T(reasons), T(prefix_mtimes), T(excluded_pycs),
	  T(facts_and_scan), T(scan_layers_over))
