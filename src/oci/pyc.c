/* Python bytecode: headers, validity, layer facts and image scans (see
 * pyc.h). */
#include "oci/pyc.h"

#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "oci/tarstream.h"

/* Largest facts file read back (about 100 bytes a file). */
#define FACTS_MAX ((size_t)256 << 20)
#define READ_BLOCK ((size_t)64 << 10)

/* <dir>/<hex> + this: beside the layer's entry index */
#define FACTS_SUFFIX ".bytecode"
static const char FACTS_MAGIC[8] = {'O', 'C', 'I', 'L', 'P', 'Y', 'C', '1'};

/* ---- the format ---- */

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

void ocil_pyc_header_parse(const unsigned char *buf, size_t len, ocil_pyc_header *h)
{
	memset(h, 0, sizeof(*h));
	h->kind = OCIL_PYC_BAD;
	if (len < OCIL_PYC_HEADER_SIZE || buf[2] != '\r' || buf[3] != '\n')
		return;
	h->magic = (uint16_t)(buf[0] | buf[1] << 8);
	uint32_t flags = le32(buf + 4);
	if (flags == 0) {
		h->kind = OCIL_PYC_TIMESTAMP;
		h->mtime = le32(buf + 8);
		h->size = le32(buf + 12);
	} else if (flags == 1 || flags == 3) {
		h->kind = flags == 3 ? OCIL_PYC_CHECKED_HASH : OCIL_PYC_UNCHECKED_HASH;
		h->hash = le64(buf + 8);
	}
}

bool ocil_pyc_name_parse(const char *name, size_t *stem_len, const char **tag, size_t *tag_len,
			 int *opt)
{
	size_t n = strlen(name);
	if (n < 5 || strcmp(name + n - 4, ".pyc") != 0)
		return false;
	n -= 4;
	*opt = 0;
	/* ".opt-N" */
	const char *dot = memrchr(name, '.', n);
	if (dot != NULL && (size_t)(name + n - dot) >= 5 && strncmp(dot, ".opt-", 5) == 0) {
		const char *d = dot + 5;
		size_t dl = (size_t)(name + n - d);
		if (dl == 0 || dl > 2 || strspn(d, "0123456789") < dl)
			return false;
		*opt = atoi(d);
		n = (size_t)(dot - name);
		dot = memrchr(name, '.', n);
	}
	if (dot == NULL || dot == name || (size_t)(name + n - dot) < 2)
		return false;
	*stem_len = (size_t)(dot - name);
	*tag = dot + 1;
	*tag_len = (size_t)(name + n - dot - 1);
	return true;
}

bool ocil_pyc_name_is_for(const char *name, const char *stem, size_t stem_len)
{
	size_t sl = 0, tl = 0;
	const char *tag;
	int opt;
	return strncmp(name, stem, stem_len) == 0 && name[stem_len] == '.' &&
	       ocil_pyc_name_parse(name, &sl, &tag, &tl, &opt) && sl == stem_len;
}

int ocil_pyc_minor(const char *version)
{
	if (version == NULL || strncmp(version, "3.", 2) != 0 ||
	    !isdigit((unsigned char)version[2]))
		return -1;
	const char *p = version + 2;
	size_t n = strspn(p, "0123456789");
	if (n > 3 || (p[n] != '\0' && p[n] != '.'))
		return -1;
	return atoi(p);
}

void ocil_pyc_tag(int minor, char *buf, size_t size)
{
	snprintf(buf, size, "cpython-3%d", minor);
}

int ocil_pyc_tag_minor(const char *tag, size_t len)
{
	static const char pre[] = "cpython-3";
	size_t pl = sizeof(pre) - 1;
	if (len <= pl || len > pl + 3 || strncmp(tag, pre, pl) != 0)
		return -1;
	int m = 0;
	for (size_t i = pl; i < len; i++) {
		if (!isdigit((unsigned char)tag[i]))
			return -1;
		m = m * 10 + (tag[i] - '0');
	}
	return m;
}

bool ocil_pyc_magic_ok(int minor, uint16_t magic)
{
	/* the finals' numbers (Lib/importlib/_bootstrap_external.py) */
	static const uint16_t finals[] = {
	    [5] = 3351,	 [6] = 3379,  [7] = 3394,  [8] = 3413, [9] = 3425,
	    [10] = 3439, [11] = 3495, [12] = 3531, [13] = 3571};
	if (minor == 5)
		return magic == 3350 || magic == 3351; /* 3.5.2 moved it */
	if (minor > 5 && minor < (int)(sizeof(finals) / sizeof(finals[0])))
		return magic == finals[minor];
	if (minor >= 14)
		return magic >= 2900 + 50 * minor && magic < 2950 + 50 * minor;
	return true;
}

/* ---- SipHash ---- */

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static void sipround(ocil_pyc_hasher *h)
{
	h->v0 += h->v1;
	h->v1 = rotl(h->v1, 13);
	h->v1 ^= h->v0;
	h->v0 = rotl(h->v0, 32);
	h->v2 += h->v3;
	h->v3 = rotl(h->v3, 16);
	h->v3 ^= h->v2;
	h->v0 += h->v3;
	h->v3 = rotl(h->v3, 21);
	h->v3 ^= h->v0;
	h->v2 += h->v1;
	h->v1 = rotl(h->v1, 17);
	h->v1 ^= h->v2;
	h->v2 = rotl(h->v2, 32);
}

static void sipblock(ocil_pyc_hasher *h, uint64_t m)
{
	h->v3 ^= m;
	for (int i = 0; i < h->c_rounds; i++)
		sipround(h);
	h->v0 ^= m;
}

void ocil_pyc_hash_begin(ocil_pyc_hasher *h, int minor, uint16_t magic)
{
	/* the key: the whole magic (number, then "\r\n") read little-endian */
	uint64_t k0 = (uint64_t)magic | (uint64_t)'\r' << 16 | (uint64_t)'\n' << 24, k1 = 0;
	memset(h, 0, sizeof(*h));
	h->v0 = k0 ^ 0x736f6d6570736575ULL;
	h->v1 = k1 ^ 0x646f72616e646f6dULL;
	h->v2 = k0 ^ 0x6c7967656e657261ULL;
	h->v3 = k1 ^ 0x7465646279746573ULL;
	h->c_rounds = minor >= 11 ? 1 : 2;
}

void ocil_pyc_hash_update(ocil_pyc_hasher *h, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	h->total += len;
	while (len > 0) {
		size_t take = 8 - h->nbuf < len ? 8 - h->nbuf : len;
		memcpy(h->buf + h->nbuf, p, take);
		h->nbuf += take;
		p += take;
		len -= take;
		if (h->nbuf == 8) {
			sipblock(h, le64(h->buf));
			h->nbuf = 0;
		}
	}
}

uint64_t ocil_pyc_hash_final(ocil_pyc_hasher *h)
{
	uint64_t b = (h->total & 0xff) << 56;
	for (size_t i = 0; i < h->nbuf; i++)
		b |= (uint64_t)h->buf[i] << (8 * i);
	sipblock(h, b);
	h->v2 ^= 0xff;
	for (int i = 0; i < h->c_rounds + 2; i++)
		sipround(h);
	return h->v0 ^ h->v1 ^ h->v2 ^ h->v3;
}

const char *ocil_pyc_stale_reason(const ocil_pyc_header *h, int minor, int64_t mtime, uint64_t size,
				  const uint64_t *source_hash)
{
	if (h->kind == OCIL_PYC_BAD)
		return "header";
	if (!ocil_pyc_magic_ok(minor, h->magic))
		return "magic";
	switch (h->kind) {
	case OCIL_PYC_TIMESTAMP:
		/* importlib: int(st_mtime) & 0xFFFFFFFF, st_size & 0xFFFFFFFF */
		if (h->mtime != (uint32_t)mtime)
			return "mtime";
		if (h->size != (uint32_t)size)
			return "size";
		return NULL;
	case OCIL_PYC_CHECKED_HASH:
		return source_hash != NULL && *source_hash != h->hash ? "hash" : NULL;
	default:
		return NULL;
	}
}

/* ---- layer facts ---- */

void ocil_pyc_facts_clear(ocil_pyc_facts *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].path);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* "/a/__pycache__/x.pyc": in a __pycache__ directory */
static bool pyc_path(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL || !ocil_str_has_suffix(slash, ".pyc"))
		return false;
	static const char cache[] = "/__pycache__";
	size_t cl = sizeof(cache) - 1;
	return (size_t)(slash - path) >= cl && strncmp(slash - cl, cache, cl) == 0;
}

bool ocil_pyc_facts_wants(const char *path)
{
	return ocil_str_has_suffix(path, ".py") || pyc_path(path);
}

void ocil_pyc_facts_add(ocil_pyc_facts *f, const char *path, uint64_t index, int64_t mtime,
			uint64_t size)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 256;
		f->v = ocil_xrealloc(f->v, f->cap * sizeof(*f->v));
	}
	f->v[f->n++] = (ocil_pyc_fact){.path = ocil_xstrdup(path),
				       .index = index,
				       .mtime = mtime,
				       .size = size,
				       .pyc = pyc_path(path)};
}

void ocil_pyc_facts_feed(ocil_pyc_facts *f, const void *buf, size_t len)
{
	if (f->n == 0)
		return;
	ocil_pyc_fact *x = &f->v[f->n - 1];
	if (!x->pyc || x->head_len >= OCIL_PYC_HEADER_SIZE)
		return;
	size_t take = OCIL_PYC_HEADER_SIZE - x->head_len;
	if (take > len)
		take = len;
	memcpy(x->head + x->head_len, buf, take);
	x->head_len += (unsigned)take;
}

typedef struct {
	unsigned char *v;
	size_t n, cap;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2;
		b->v = ocil_xrealloc(b->v, b->cap);
	}
	memcpy(b->v + b->n, p, n);
	b->n += n;
}

static void put_u64(bytes *b, uint64_t v)
{
	v = htole64(v);
	put(b, &v, 8);
}

static void put_u32(bytes *b, uint32_t v)
{
	v = htole32(v);
	put(b, &v, 4);
}

/* sha256 of the version and the content, as hex */
static void facts_sum(const unsigned char *p, size_t n, char hex[OCIL_DIGEST_HEX_LEN + 1])
{
	ocil_hasher *h = ocil_hasher_new();
	ocil_hasher_update(h, OCIL_VERSION, sizeof(OCIL_VERSION));
	ocil_hasher_update(h, p, n);
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(h, d);
	ocil_hasher_free(h);
	memcpy(hex, ocil_digest_hex(d), OCIL_DIGEST_HEX_LEN + 1);
}

void ocil_pyc_facts_save(const ocil_pyc_facts *f, const char *dir, const char *digest)
{
	if (dir == NULL || !ocil_digest_valid(digest))
		return;
	bytes b = {0};
	put(&b, FACTS_MAGIC, sizeof(FACTS_MAGIC));
	put_u64(&b, f->n);
	for (size_t i = 0; i < f->n; i++) {
		const ocil_pyc_fact *x = &f->v[i];
		unsigned char flags = x->pyc;
		put(&b, &flags, 1);
		put_u64(&b, x->index);
		put_u64(&b, (uint64_t)x->mtime);
		put_u64(&b, x->size);
		unsigned char hl = (unsigned char)x->head_len;
		put(&b, &hl, 1);
		put(&b, x->head, x->head_len);
		put_u32(&b, (uint32_t)strlen(x->path));
		put(&b, x->path, strlen(x->path));
	}
	char hex[OCIL_DIGEST_HEX_LEN + 1];
	facts_sum(b.v, b.n, hex);
	put(&b, hex, OCIL_DIGEST_HEX_LEN);
	/* a cache, checked when read: no fsync (as the entry indexes) */
	ocil_error *e = NULL;
	cleanup_free char *path =
	    ocil_xasprintf("%s/%s" FACTS_SUFFIX, dir, ocil_digest_hex(digest));
	cleanup_free char *tmp = NULL;
	int fd = ocil_mkdir_p(dir, 0755, &e) < 0 ? -1 : ocil_tmpfile_create(dir, &tmp, &e);
	if (fd >= 0) {
		if (ocil_write_all(fd, b.v, b.n, tmp, &e) < 0 || rename(tmp, path) < 0)
			unlink(tmp);
		close(fd);
	}
	ocil_error_free(e);
	free(b.v);
}

typedef struct {
	const unsigned char *p;
	size_t n, at;
} reader;

static bool take(reader *r, void *out, size_t n)
{
	if (r->n - r->at < n)
		return false;
	memcpy(out, r->p + r->at, n);
	r->at += n;
	return true;
}

static bool take_u64(reader *r, uint64_t *v)
{
	if (!take(r, v, 8))
		return false;
	*v = le64toh(*v);
	return true;
}

static bool parse_facts(const unsigned char *p, size_t n, ocil_pyc_facts *out)
{
	if (n < sizeof(FACTS_MAGIC) + OCIL_DIGEST_HEX_LEN ||
	    memcmp(p, FACTS_MAGIC, sizeof(FACTS_MAGIC)) != 0)
		return false;
	char hex[OCIL_DIGEST_HEX_LEN + 1];
	size_t body = n - OCIL_DIGEST_HEX_LEN;
	facts_sum(p, body, hex);
	if (memcmp(hex, p + body, OCIL_DIGEST_HEX_LEN) != 0)
		return false;
	reader r = {.p = p, .n = body, .at = sizeof(FACTS_MAGIC)};
	uint64_t count = 0;
	if (!take_u64(&r, &count) || count > body / 30)
		return false;
	for (uint64_t i = 0; i < count; i++) {
		unsigned char flags, hl;
		uint64_t index, mtime, size;
		uint32_t plen;
		unsigned char head[OCIL_PYC_HEADER_SIZE];
		if (!take(&r, &flags, 1) || !take_u64(&r, &index) || !take_u64(&r, &mtime) ||
		    !take_u64(&r, &size) || !take(&r, &hl, 1) || hl > OCIL_PYC_HEADER_SIZE ||
		    !take(&r, head, hl) || !take(&r, &plen, 4))
			return false;
		plen = le32toh(plen);
		if (plen == 0 || plen > OCIL_TAR_NAME_MAX || r.n - r.at < plen)
			return false;
		cleanup_free char *path = ocil_xstrndup((const char *)r.p + r.at, plen);
		r.at += plen;
		if (path[0] != '/' || strlen(path) != plen)
			return false;
		ocil_pyc_facts_add(out, path, index, (int64_t)mtime, size);
		ocil_pyc_fact *x = &out->v[out->n - 1];
		x->pyc = flags & 1;
		memcpy(x->head, head, hl);
		x->head_len = hl;
	}
	return r.at == r.n;
}

/* ".../sha256/<hex>" -> "sha256:<hex>" */
static bool blob_digest(const char *path, char digest[OCIL_DIGEST_STR_SIZE])
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL || slash - path < 7 || strncmp(slash - 7, "/sha256", 7) != 0)
		return false;
	snprintf(digest, OCIL_DIGEST_STR_SIZE, "sha256:%s", slash + 1);
	return ocil_digest_valid(digest);
}

static int read_layer_facts(const char *path, const char *what, const ocil_cancel *cancel,
			    ocil_pyc_facts *out, ocil_error **err)
{
	cleanup_tarstream ocil_tarstream *ts = NULL;
	if (ocil_tarstream_open_path(path, what, &ts, err) < 0)
		return -1;
	for (;;) {
		if (ocil_cancel_check(cancel, err) < 0)
			return -1;
		const ocil_tar_entry *e;
		int r = ocil_tarstream_next(ts, &e, err);
		if (r <= 0)
			return r;
		if (e->type != OCIL_TAR_FILE || !ocil_pyc_facts_wants(e->path))
			continue;
		ocil_pyc_facts_add(out, e->path, e->index, e->mtime, e->size);
		if (!out->v[out->n - 1].pyc)
			continue;
		unsigned char head[OCIL_PYC_HEADER_SIZE];
		size_t got = 0;
		while (got < sizeof(head)) {
			ssize_t n = ocil_tarstream_read(ts, head + got, sizeof(head) - got, err);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			got += (size_t)n;
		}
		ocil_pyc_facts_feed(out, head, got);
	}
}

int ocil_pyc_facts_of_layer(const char *path, const char *what, const char *dir,
			    const ocil_cancel *cancel, ocil_pyc_facts *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	char digest[OCIL_DIGEST_STR_SIZE];
	bool keep = dir != NULL && blob_digest(path, digest);
	if (keep) {
		cleanup_free char *file =
		    ocil_xasprintf("%s/%s" FACTS_SUFFIX, dir, ocil_digest_hex(digest));
		cleanup_free char *buf = NULL;
		size_t len = 0;
		ocil_error *e = NULL;
		if (ocil_read_file(file, FACTS_MAX, &buf, &len, &e) == 0 &&
		    parse_facts((const unsigned char *)buf, len, out))
			return 0;
		ocil_error_free(e);
		ocil_pyc_facts_clear(out);
		unlink(file); /* damaged or from another version: made again */
	}
	if (read_layer_facts(path, what, cancel, out, err) < 0) {
		ocil_pyc_facts_clear(out);
		return -1;
	}
	if (keep)
		ocil_pyc_facts_save(out, dir, digest);
	return 0;
}

/* ---- an image ---- */

void ocil_pyc_stats_clear(ocil_pyc_stats *s)
{
	for (size_t i = 0; i < s->n_top; i++)
		free(s->top[i].source);
	memset(s, 0, sizeof(*s));
}

typedef struct {
	const char *path;
	size_t layer;
	const ocil_pyc_fact *fact;
} ref;

static int by_path_layer(const void *a, const void *b)
{
	const ref *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (c != 0)
		return c;
	return x->layer > y->layer ? -1 : x->layer < y->layer; /* highest first */
}

static const ref *find_ref(const ref *v, size_t n, const char *path)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid].path, path);
		if (c == 0)
			return &v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The fact of what fs shows at path (following symlinks for a source):
 * the highest layer's, when that entry is the one visible. */
static int visible(ocil_rootfs *fs, const ref *v, size_t n, const char *path, bool follow,
		   const ref **out, ocil_error **err)
{
	*out = NULL;
	cleanup_rootfs_node ocil_rootfs_node node = {0};
	ocil_error *e = NULL;
	int r = ocil_rootfs_lookup(fs, path, follow, &node, &e);
	if (r < 0 && e->code == OCIL_E_INPUT) { /* a symlink loop: not there */
		ocil_error_free(e);
		return 0;
	}
	if (r < 0) {
		*err = e;
		return -1;
	}
	if (r == 0 || node.type != OCIL_TAR_FILE || strcmp(node.layer_path, node.path) != 0)
		return 0;
	const ref *x = find_ref(v, n, node.path);
	if (x != NULL && x->layer == node.layer && x->fact->index == node.entry_index)
		*out = x;
	return 0;
}

static void offer(ocil_pyc_stats *s, const char *source, uint64_t size, const char *why)
{
	size_t at = s->n_top;
	while (at > 0 && s->top[at - 1].size < size)
		at--;
	if (at >= OCIL_PYC_TOP)
		return;
	if (s->n_top == OCIL_PYC_TOP)
		free(s->top[--s->n_top].source);
	memmove(&s->top[at + 1], &s->top[at], (s->n_top - at) * sizeof(s->top[0]));
	s->top[at] = (ocil_pyc_offender){.source = ocil_xstrdup(source), .size = size, .why = why};
	s->n_top++;
}

/* A checked-hash pyc whose source must be read. */
typedef struct {
	const ref *source;
	ocil_pyc_header h;
} pending;

static int hash_pending(const char *const *paths, size_t n_layers, const pending *p, size_t np,
			int minor, const ocil_pyc_scan_opts *o, ocil_pyc_stats *out,
			ocil_error **err)
{
	for (size_t l = 0; l < n_layers; l++) {
		bool needed = false;
		for (size_t i = 0; i < np && !needed; i++)
			needed = p[i].source->layer == l;
		if (!needed)
			continue;
		cleanup_free char *what = ocil_xasprintf("layer %zu", l);
		cleanup_tarstream ocil_tarstream *ts = NULL;
		if (ocil_tarstream_open_path(paths[l], what, &ts, err) < 0)
			return -1;
		cleanup_free unsigned char *buf = ocil_xmalloc(READ_BLOCK);
		for (;;) {
			if (ocil_cancel_check(o->cancel, err) < 0)
				return -1;
			const ocil_tar_entry *e;
			int r = ocil_tarstream_next(ts, &e, err);
			if (r < 0)
				return -1;
			if (r == 0)
				break;
			const pending *x = NULL;
			for (size_t i = 0; i < np && x == NULL; i++)
				if (p[i].source->layer == l && p[i].source->fact->index == e->index)
					x = &p[i];
			if (x == NULL)
				continue;
			ocil_pyc_hasher h;
			ocil_pyc_hash_begin(&h, minor, x->h.magic);
			for (;;) {
				ssize_t got = ocil_tarstream_read(ts, buf, READ_BLOCK, err);
				if (got < 0)
					return -1;
				if (got == 0)
					break;
				ocil_pyc_hash_update(&h, buf, (size_t)got);
			}
			if (ocil_pyc_hash_final(&h) != x->h.hash) {
				out->stale++;
				offer(out, x->source->path, x->source->fact->size, "hash");
			}
		}
	}
	return 0;
}

static int scan(const char *const *paths, size_t n, ocil_pyc_facts *lf, ocil_rootfs *fs, int minor,
		const ocil_pyc_scan_opts *o, ocil_pyc_stats *out, ocil_error **err)
{
	size_t total = 0;
	for (size_t l = 0; l < n; l++)
		total += lf[l].n;
	cleanup_free ref *v = ocil_xcalloc(total + 1, sizeof(*v));
	size_t k = 0;
	for (size_t l = 0; l < n; l++)
		for (size_t i = 0; i < lf[l].n; i++)
			v[k++] = (ref){lf[l].v[i].path, l, &lf[l].v[i]};
	qsort(v, k, sizeof(*v), by_path_layer);
	size_t m = 0; /* keep the highest layer's of each path */
	for (size_t i = 0; i < k; i++)
		if (m == 0 || strcmp(v[m - 1].path, v[i].path) != 0)
			v[m++] = v[i];
	char tag[16];
	ocil_pyc_tag(minor, tag, sizeof(tag));
	cleanup_free pending *pend = NULL;
	size_t np = 0;
	for (size_t i = 0; i < m; i++) {
		const ocil_pyc_fact *f = v[i].fact;
		if (!f->pyc)
			continue;
		const char *name = strrchr(f->path, '/') + 1;
		size_t stem_len = 0, tl = 0;
		const char *t;
		int opt;
		if (!ocil_pyc_name_parse(name, &stem_len, &t, &tl, &opt) || opt != 0 ||
		    tl != strlen(tag) || strncmp(t, tag, tl) != 0)
			continue;
		/* "/a/__pycache__/x.tag.pyc" -> "/a/x.py" */
		size_t dir_len = (size_t)(name - f->path) - strlen("__pycache__/");
		cleanup_free char *source =
		    ocil_xasprintf("%.*s%.*s.py", (int)dir_len, f->path, (int)stem_len, name);
		const ref *pyc = NULL, *src = NULL;
		if (visible(fs, v, m, f->path, false, &pyc, err) < 0 ||
		    (pyc != NULL && visible(fs, v, m, source, true, &src, err) < 0))
			return -1;
		if (pyc == NULL || src == NULL)
			continue;
		out->pycs++;
		ocil_pyc_header h;
		ocil_pyc_header_parse(f->head, f->head_len, &h);
		const char *why =
		    ocil_pyc_stale_reason(&h, minor, src->fact->mtime, src->fact->size, NULL);
		if (why == NULL && h.kind == OCIL_PYC_CHECKED_HASH) {
			pend = ocil_xrealloc(pend, (np + 1) * sizeof(*pend));
			pend[np++] = (pending){.source = src, .h = h};
			continue;
		}
		if (why != NULL) {
			out->stale++;
			offer(out, src->path, src->fact->size, why);
		}
	}
	return np > 0 ? hash_pending(paths, n, pend, np, minor, o, out, err) : 0;
}

int ocil_pyc_scan_image(const char *const *layer_paths, size_t n, ocil_rootfs *fs, int minor,
			const ocil_pyc_scan_opts *o, ocil_pyc_stats *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	out->minor = minor;
	ocil_pyc_facts *lf = ocil_xcalloc(n + 1, sizeof(*lf));
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		cleanup_free char *what = ocil_xasprintf("layer %zu", i);
		r = ocil_pyc_facts_of_layer(layer_paths[i], what, o->facts_dir, o->cancel, &lf[i],
					    err);
	}
	if (r == 0)
		r = scan(layer_paths, n, lf, fs, minor, o, out, err);
	for (size_t i = 0; i < n; i++)
		ocil_pyc_facts_clear(&lf[i]);
	free(lf);
	if (r < 0)
		ocil_pyc_stats_clear(out);
	return r;
}
