/* Parallel deterministic gzip (see gzip.h for the format).
 *
 * Pipeline. The caller's thread only copies its input into fixed-size blocks
 * ("slots"). Worker threads take three kinds of job, in this order of
 * preference: hash the next raw block into the diff_id (in order, one thread
 * at a time), emit the next compressed block into the blob writer, which
 * hashes it into the digest (in order, one thread at a time), and compress
 * any queued block (in parallel). So both sha256 passes overlap compression
 * and the caller's own work (producing the tar). A slot is reused once it is
 * hashed and emitted; there are threads + 2 of them (2 * threads + 2 was no
 * faster), so memory is bounded whatever the input size: about 2.2 MiB a
 * slot with 1 MiB blocks, plus each worker's compressor (4 MiB at level 9).
 *
 * Joining. Blocks are compressed independently; each but the last ends byte
 * aligned with no final block, the pigz way: isa-l is asked for a sync flush
 * (an empty stored block, 00 00 ff ff) and gets the previous 32 KiB as its
 * dictionary; libdeflate can neither flush nor take a dictionary, so its
 * stream is walked (deflate_walk below: block headers and Huffman symbols
 * are decoded, nothing is copied) to find the final block's header, whose
 * BFINAL bit is cleared, and the same empty stored block is appended. The
 * CRC-32 of the whole input is combined from the blocks' (crc32_combine).
 *
 * Levels. One thread, 1 MiB blocks, the 600 MB tar of bench/gzip.sh
 * (Debian's python3 with pandas, scipy, sklearn..., 2-core AMD EPYC); the
 * engine alone, and zlib on the same blocks for reference:
 *
 *   level  engine          MB/s  size MB      zlib level: MB/s  size MB
 *   1      isa-l 1          540    204.7               1:  113    202.1
 *   2      isa-l 2          500    201.6
 *   3      libdeflate 1     231    192.5               3:   82    191.9
 *   4      libdeflate 2     164    186.1               4:   76    184.8
 *   5      libdeflate 3     141    183.4               5:   57    180.1
 *   6      libdeflate 4     134    181.4               6:   35    177.9
 *   7      libdeflate 5     105    177.3
 *   8      libdeflate 7      60    174.7
 *   9      libdeflate 10     12    169.1               9:    8    176.0
 *
 * The levels spread over the whole speed/size curve, 1 fastest and 9
 * smallest, as gzip's do. The default, 6, is libdeflate 4: issue 7's
 * "small" point asks for no bigger than umoci's layer (186.2 MB here) in
 * 0.8x its time, and libdeflate 4 is the smallest output that fits (tar |
 * compressor 3.4-3.7 s against umoci insert's 4.2-5.2 s; libdeflate 5, the
 * size of gzip -6, takes 4.3-4.5 s); it is 2 % bigger than gzip -6 for a
 * quarter of its CPU. isa-l stops at 2: its level 3 (199.6 MB, 270 MB/s) is
 * beaten by libdeflate 1, and picks another match finder on AVX2 machines
 * (other bytes on other CPUs); for levels 1 and 2 its dispatch uses one
 * algorithm from SSE4.2 up, so one result on x86-64 (other architectures
 * may differ: the golden test pins level 1 on x86-64 only). libdeflate's
 * output depends on its version only. The walk that finds libdeflate's
 * final block costs 7-10 % of the compression time; zlib's
 * inflate(Z_BLOCK), as in zlib's examples/gzjoin.c, cost 20-35 %. */
#include "compress/gzip.h"

#include <endian.h>
#include <errno.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/util.h"

#define DICT_SIZE ((size_t)32768)
#define MIN_BLOCK_SIZE DICT_SIZE
#define MAX_BLOCK_SIZE ((size_t)16 << 20)
#define MAX_THREADS 64
/* an empty stored block: its 3 header bits may need one more byte */
#define SYNC_MARKER_MAX 5

typedef enum { ENG_ISAL, ENG_LIBDEFLATE } engine;

static const struct {
	engine eng;
	int level;
} level_map[10] = {
    [1] = {ENG_ISAL, 1},       [2] = {ENG_ISAL, 2},	  [3] = {ENG_LIBDEFLATE, 1},
    [4] = {ENG_LIBDEFLATE, 2}, [5] = {ENG_LIBDEFLATE, 3}, [6] = {ENG_LIBDEFLATE, 4},
    [7] = {ENG_LIBDEFLATE, 5}, [8] = {ENG_LIBDEFLATE, 7}, [9] = {ENG_LIBDEFLATE, 10},
};

/* ---- deflate block walker ------------------------------------------------
 *
 * Decodes just enough of a complete raw deflate stream (our own libdeflate
 * output, but checked as if it were not) to know where each block starts:
 * Huffman symbols are decoded and skipped, matches are never copied. */

typedef struct {
	const unsigned char *data;
	size_t len, next; /* next byte to load; may pass len by a few bytes */
	uint64_t buf;	  /* bits above cnt may hold the next bytes' bits */
	unsigned cnt;
	bool overrun;
} bitin;

static inline void bi_refill(bitin *b)
{
	if (b->next + 8 <= b->len) {
		uint64_t v;
		memcpy(&v, b->data + b->next, 8);
		b->buf |= le64toh(v) << b->cnt;
		b->next += (63 - b->cnt) >> 3;
		b->cnt |= 56;
		return;
	}
	/* the last bytes; past the end read zeros, and give up once well past
	 * (a corrupt stream must not loop forever on zero bits) */
	while (b->cnt <= 56) {
		if (b->next < b->len)
			b->buf |= (uint64_t)b->data[b->next] << b->cnt;
		else if (b->next > b->len + 8)
			b->overrun = true;
		b->next++;
		b->cnt += 8;
	}
}

static inline void bi_drop(bitin *b, unsigned n)
{
	b->buf >>= n;
	b->cnt -= n;
}

static inline unsigned bi_bits(bitin *b, unsigned n)
{
	if (b->cnt < n)
		bi_refill(b);
	unsigned v = (unsigned)(b->buf & ((1u << n) - 1));
	bi_drop(b, n);
	return v;
}

static inline uint64_t bi_pos(const bitin *b)
{
	return (uint64_t)b->next * 8 - b->cnt;
}

#define LIT_FAST 11
#define DIST_FAST 9
#define CL_FAST 7

static const unsigned char len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
					    2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const unsigned char dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
					     6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

typedef struct {
	uint16_t count[16];
	uint16_t sym[288];
	/* (symbol << 5) | bits to skip, for every code of <= bits bits; 0 for
	 * longer codes (decoded the slow way). The bits to skip include the
	 * symbol's extra bits: their values do not matter here. */
	uint16_t fast[1 << LIT_FAST];
	unsigned bits;
	const unsigned char *extra; /* of symbols extra_base.. */
	unsigned extra_base, extra_n;
} huff;

static inline unsigned huff_extra(const huff *h, unsigned sym)
{
	unsigned i = sym - h->extra_base;
	return sym >= h->extra_base && i < h->extra_n ? h->extra[i] : 0;
}

static int huff_build(huff *h, const unsigned char *lens, unsigned n, unsigned bits)
{
	uint16_t offs[16];
	memset(h->count, 0, sizeof(h->count));
	for (unsigned i = 0; i < n; i++)
		h->count[lens[i]]++;
	h->count[0] = 0;
	int left = 1;
	for (unsigned len = 1; len < 16; len++) {
		left = (left << 1) - h->count[len];
		if (left < 0)
			return -1; /* over-subscribed */
	}
	offs[1] = 0;
	for (unsigned len = 1; len < 15; len++)
		offs[len + 1] = offs[len] + h->count[len];
	for (unsigned i = 0; i < n; i++)
		if (lens[i] != 0)
			h->sym[offs[lens[i]]++] = (uint16_t)i;

	h->bits = bits;
	memset(h->fast, 0, sizeof(uint16_t) << bits);
	unsigned code = 0, idx = 0;
	for (unsigned len = 1; len <= bits; len++, code <<= 1) {
		for (unsigned k = 0; k < h->count[len]; k++, idx++, code++) {
			unsigned rev = 0;
			for (unsigned i = 0; i < len; i++)
				rev |= ((code >> i) & 1) << (len - 1 - i);
			unsigned sym = h->sym[idx];
			uint16_t e = (uint16_t)(sym << 5 | (len + huff_extra(h, sym)));
			for (unsigned j = rev; j < (1u << bits); j += 1u << len)
				h->fast[j] = e;
		}
	}
	return 0;
}

static void huff_set_extra(huff *h, const unsigned char *extra, unsigned base, unsigned n)
{
	h->extra = extra;
	h->extra_base = base;
	h->extra_n = n;
}

/* above every symbol, so one compare tells literals from the rest */
#define BAD_SYMBOL 0x1000

/* Canonical decoding one bit at a time (as zlib's puff.c): only for codes
 * longer than the fast table, which are rare by construction. Takes the
 * bits by value so the caller's bit reader can stay in registers. */
static int huff_slow(const huff *h, uint64_t bits, unsigned *skip)
{
	int code = 0, first = 0, index = 0;
	for (unsigned len = 1; len < 16; len++) {
		code |= (int)((bits >> (len - 1)) & 1);
		int count = h->count[len];
		if (code - first < count) {
			unsigned sym = h->sym[index + (code - first)];
			*skip = len + huff_extra(h, sym);
			return (int)sym;
		}
		index += count;
		first = (first + count) << 1;
		code <<= 1;
	}
	*skip = 0;
	return BAD_SYMBOL;
}

/* Decode a symbol and skip its extra bits. Needs at least 15 bits plus the
 * symbol's extra bits in the buffer. */
static inline int huff_decode(const huff *h, bitin *b)
{
	uint16_t e = h->fast[b->buf & ((1u << h->bits) - 1)];
	if (__builtin_expect(e != 0, 1)) {
		bi_drop(b, e & 31);
		return e >> 5;
	}
	unsigned skip;
	int sym = huff_slow(h, b->buf, &skip);
	bi_drop(b, skip);
	return sym;
}

typedef struct {
	huff lit, dist, cl;
} walk_tables;

static huff fixed_lit, fixed_dist;
static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;

static void fixed_init(void)
{
	unsigned char lens[288];
	memset(lens, 8, 144);
	memset(lens + 144, 9, 112);
	memset(lens + 256, 7, 24);
	memset(lens + 280, 8, 8);
	huff_set_extra(&fixed_lit, len_extra, 257, 29);
	huff_build(&fixed_lit, lens, 288, LIT_FAST);
	memset(lens, 5, 30);
	huff_set_extra(&fixed_dist, dist_extra, 0, 30);
	huff_build(&fixed_dist, lens, 30, DIST_FAST);
}

/* Skip the symbols of one Huffman-coded block, up to its end-of-block. */
static int walk_codes(bitin *bp, const huff *lit, const huff *dist)
{
	bitin local = *bp, *b = &local; /* in registers, not through bp */
	int r = 0;
	for (;;) {
		bi_refill(b);
		if (b->overrun) {
			r = -1;
			break;
		}
		/* >= 56 bits: room for three literals of at most 15 bits */
		int sym = huff_decode(lit, b);
		if (sym < 256) {
			sym = huff_decode(lit, b);
			if (sym < 256) {
				sym = huff_decode(lit, b);
				if (sym < 256)
					continue;
			}
		}
		if (sym == 256)
			break;
		if (sym >= 257 + 29) {
			r = -1; /* also BAD_SYMBOL */
			break;
		}
		/* the length's extra bits are skipped; then the distance and
		 * its extra bits: 15 + 13 */
		if (b->cnt < 28)
			bi_refill(b);
		if (huff_decode(dist, b) >= 30) {
			r = -1;
			break;
		}
	}
	*bp = local;
	return r;
}

static int walk_dynamic_header(bitin *b, walk_tables *t)
{
	static const unsigned char order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
						11, 4,	12, 3, 13, 2, 14, 1, 15};
	unsigned hlit = bi_bits(b, 5) + 257, hdist = bi_bits(b, 5) + 1, hclen = bi_bits(b, 4) + 4;
	if (hlit > 286 || hdist > 30)
		return -1;
	unsigned char lens[286 + 30];
	memset(lens, 0, sizeof(lens));
	for (unsigned i = 0; i < hclen; i++)
		lens[order[i]] = (unsigned char)bi_bits(b, 3);
	huff_set_extra(&t->cl, NULL, 0, 0);
	if (huff_build(&t->cl, lens, 19, CL_FAST) < 0)
		return -1;
	memset(lens, 0, 19);
	for (unsigned i = 0; i < hlit + hdist;) {
		bi_refill(b);
		if (b->overrun)
			return -1;
		int sym = huff_decode(&t->cl, b);
		if (sym >= 19)
			return -1;
		if (sym < 16) {
			lens[i++] = (unsigned char)sym;
			continue;
		}
		unsigned char val = 0;
		unsigned rep;
		if (sym == 16) {
			if (i == 0)
				return -1;
			val = lens[i - 1];
			rep = 3 + bi_bits(b, 2);
		} else if (sym == 17) {
			rep = 3 + bi_bits(b, 3);
		} else {
			rep = 11 + bi_bits(b, 7);
		}
		if (i + rep > hlit + hdist)
			return -1;
		memset(lens + i, val, rep);
		i += rep;
	}
	if (lens[256] == 0)
		return -1;
	huff_set_extra(&t->lit, len_extra, 257, 29);
	huff_set_extra(&t->dist, dist_extra, 0, 30);
	if (huff_build(&t->lit, lens, hlit, LIT_FAST) < 0 ||
	    huff_build(&t->dist, lens + hlit, hdist, DIST_FAST) < 0)
		return -1;
	return 0;
}

/* Walk a complete raw deflate stream of len bytes: *final_hdr is the bit
 * offset of the final block's header (its BFINAL bit), *end the bit offset
 * just past that block. */
static int deflate_walk(const unsigned char *data, size_t len, walk_tables *t, uint64_t *final_hdr,
			uint64_t *end)
{
	pthread_once(&fixed_once, fixed_init);
	bitin b = {.data = data, .len = len};
	for (;;) {
		uint64_t hdr = bi_pos(&b);
		unsigned bfinal = bi_bits(&b, 1);
		unsigned type = bi_bits(&b, 2);
		if (type == 0) {
			bi_drop(&b, b.cnt & 7); /* to the byte boundary */
			unsigned n = bi_bits(&b, 16), nn = bi_bits(&b, 16);
			if (n != (~nn & 0xffff))
				return -1;
			size_t at = (size_t)(bi_pos(&b) / 8);
			if (n > len || at > len - n)
				return -1;
			b.next = at + n;
			b.buf = 0;
			b.cnt = 0;
		} else if (type == 1) {
			if (walk_codes(&b, &fixed_lit, &fixed_dist) < 0)
				return -1;
		} else if (type == 2) {
			if (walk_dynamic_header(&b, t) < 0 || walk_codes(&b, &t->lit, &t->dist) < 0)
				return -1;
		} else {
			return -1;
		}
		if (b.overrun || bi_pos(&b) > (uint64_t)len * 8)
			return -1;
		if (bfinal) {
			*final_hdr = hdr;
			*end = bi_pos(&b);
			return 0;
		}
	}
}

/* Turn a complete deflate stream into a piece to join: final-block bit
 * cleared, then an empty stored block to reach a byte boundary. The buffer
 * has SYNC_MARKER_MAX bytes to spare. */
static int unfinalize(unsigned char *out, size_t *n, walk_tables *t)
{
	uint64_t hdr, end;
	if (deflate_walk(out, *n, t, &hdr, &end) < 0 || (end + 7) / 8 != *n)
		return -1;
	out[hdr / 8] &= (unsigned char)~(1u << (hdr % 8));
	size_t bytes = *n;
	unsigned used = (unsigned)(end % 8); /* bits used in the last byte */
	if (used != 0)
		out[bytes - 1] &= (unsigned char)((1u << used) - 1);
	/* the stored block's 3 header bits (all zero) fit in the last byte's
	 * unused bits when there are 3 of them; else they take a new byte */
	if (used == 0 || used > 5)
		out[bytes++] = 0;
	memcpy(out + bytes, "\x00\x00\xff\xff", 4);
	*n = bytes + 4;
	return 0;
}

/* ---- the parallel compressor --------------------------------------------- */

typedef enum {
	SLOT_FREE,
	SLOT_FILLING, /* the caller's */
	SLOT_QUEUED,
	SLOT_COMPRESSING,
	SLOT_COMPRESSED,
} slot_state;

typedef struct {
	slot_state state;
	uint64_t seq;
	bool last;
	bool hashed;  /* raw bytes are in the diff_id hasher */
	bool emitted; /* compressed bytes are in the blob */
	unsigned char *in;
	size_t len;
	unsigned char *dict; /* the DICT_SIZE bytes before this block (isa-l) */
	size_t dict_len;
	unsigned char *out;
	size_t out_len;
	uint32_t crc;
} slot;

typedef struct {
	ocil_gzip_blob *g;
	pthread_t tid;
	bool started;
	struct libdeflate_compressor *ld;
	struct isal_zstream *isal;
	unsigned char *isal_buf;
	walk_tables *tables;
} worker;

typedef enum { PHASE_OPEN, PHASE_DONE, PHASE_BROKEN } phase;

struct ocil_gzip_blob {
	/* fixed at begin */
	engine eng;
	int eng_level;
	size_t block_size, out_cap;
	unsigned nworkers, nslots;
	worker *workers;
	slot *slots;
	/* used by whichever thread holds the emit (w) or hash (raw) turn, and
	 * by the caller before the workers start and after they are idle */
	ocil_blob_writer *w;
	ocil_hasher *raw;

	/* the caller's */
	slot *cur;
	uint64_t raw_size;
	phase phase;

	/* under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t next_seq, hash_seq, emit_seq;
	bool hash_busy, emit_busy;
	bool stop;
	bool failed;
	ocil_error *err; /* the first worker error */
	uint32_t crc;	 /* of the blocks emitted so far */
};

static int compress_isal(ocil_gzip_blob *g, worker *wk, slot *s, ocil_error **err)
{
	static const uint32_t bufsize[4] = {0, ISAL_DEF_LVL1_LARGE, ISAL_DEF_LVL2_LARGE,
					    ISAL_DEF_LVL3_LARGE};
	if (wk->isal == NULL) {
		wk->isal = ocil_xmalloc(sizeof(*wk->isal));
		wk->isal_buf = ocil_xmalloc(bufsize[g->eng_level]);
	}
	struct isal_zstream *z = wk->isal;
	isal_deflate_init(z);
	z->level = (uint32_t)g->eng_level;
	z->level_buf = wk->isal_buf;
	z->level_buf_size = bufsize[g->eng_level];
	z->gzip_flag = IGZIP_DEFLATE;
	if (s->dict_len > 0 && isal_deflate_set_dict(z, s->dict, (uint32_t)s->dict_len) != COMP_OK)
		return ocil_error_set(err, OCIL_E_IO, "gzip: isa-l: cannot set the dictionary");
	z->next_in = s->in;
	z->avail_in = (uint32_t)s->len;
	z->next_out = s->out;
	z->avail_out = (uint32_t)g->out_cap;
	z->end_of_stream = s->last;
	z->flush = s->last ? NO_FLUSH : SYNC_FLUSH;
	int r = isal_deflate(z);
	/* a sync flush is complete when the state is back to a new block */
	int want = s->last ? ZSTATE_END : ZSTATE_NEW_HDR;
	if (r != COMP_OK || z->avail_in != 0 || (int)z->internal_state.state != want)
		return ocil_error_set(err, OCIL_E_IO,
				      "gzip: isa-l: compressing block %llu failed (%d, state %d)",
				      (unsigned long long)s->seq, r, (int)z->internal_state.state);
	s->out_len = z->total_out;
	return 0;
}

static int compress_libdeflate(ocil_gzip_blob *g, worker *wk, slot *s, ocil_error **err)
{
	if (wk->ld == NULL) {
		wk->ld = libdeflate_alloc_compressor(g->eng_level);
		if (wk->ld == NULL)
			return ocil_error_set(err, OCIL_E_IO,
					      "gzip: libdeflate: cannot allocate a compressor");
		wk->tables = ocil_xmalloc(sizeof(*wk->tables));
	}
	size_t n = libdeflate_deflate_compress(wk->ld, s->in, s->len, s->out,
					       g->out_cap - SYNC_MARKER_MAX);
	if (n == 0)
		return ocil_error_set(err, OCIL_E_IO,
				      "gzip: libdeflate: block %llu does not fit its bound",
				      (unsigned long long)s->seq);
	if (!s->last && unfinalize(s->out, &n, wk->tables) < 0)
		return ocil_error_set(err, OCIL_E_IO,
				      "gzip: libdeflate: block %llu: cannot find its final block",
				      (unsigned long long)s->seq);
	s->out_len = n;
	return 0;
}

static int compress_block(ocil_gzip_blob *g, worker *wk, slot *s, ocil_error **err)
{
	s->crc = (uint32_t)libdeflate_crc32(0, s->in, s->len);
	if (g->eng == ENG_ISAL)
		return compress_isal(g, wk, s, err);
	return compress_libdeflate(g, wk, s, err);
}

/* under mu */
static slot *slot_by_seq(ocil_gzip_blob *g, uint64_t seq)
{
	for (unsigned i = 0; i < g->nslots; i++)
		if (g->slots[i].state >= SLOT_QUEUED && g->slots[i].seq == seq)
			return &g->slots[i];
	return NULL;
}

static slot *first_queued(ocil_gzip_blob *g)
{
	slot *best = NULL;
	for (unsigned i = 0; i < g->nslots; i++) {
		slot *s = &g->slots[i];
		if (s->state == SLOT_QUEUED && (best == NULL || s->seq < best->seq))
			best = s;
	}
	return best;
}

static void release_if_done(ocil_gzip_blob *g, slot *s)
{
	if (s->hashed && s->emitted)
		s->state = SLOT_FREE;
	pthread_cond_broadcast(&g->cv);
}

static void fail_locked(ocil_gzip_blob *g, ocil_error *e)
{
	if (g->err == NULL)
		g->err = e;
	else
		ocil_error_free(e);
	if (g->err == NULL)
		ocil_error_set(&g->err, OCIL_E_IO, "gzip: worker failed");
	/* also read without the lock, by check_workers */
	__atomic_store_n(&g->failed, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&g->cv);
}

static void *worker_main(void *arg)
{
	worker *wk = arg;
	ocil_gzip_blob *g = wk->g;
	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		slot *s;
		if (g->failed) {
			/* nothing more is useful; wait to be joined */
		} else if (!g->hash_busy && (s = slot_by_seq(g, g->hash_seq)) != NULL) {
			g->hash_busy = true;
			pthread_mutex_unlock(&g->mu);
			ocil_hasher_update(g->raw, s->in, s->len);
			pthread_mutex_lock(&g->mu);
			g->hash_busy = false;
			g->hash_seq++;
			s->hashed = true;
			release_if_done(g, s);
			continue;
		} else if (!g->emit_busy && (s = slot_by_seq(g, g->emit_seq)) != NULL &&
			   s->state == SLOT_COMPRESSED) {
			g->emit_busy = true;
			pthread_mutex_unlock(&g->mu);
			ocil_error *e = NULL;
			int r = ocil_blob_writer_write(g->w, s->out, s->out_len, &e);
			pthread_mutex_lock(&g->mu);
			g->emit_busy = false;
			if (r < 0) {
				ocil_error_wrap(&e, "gzip: block %llu", (unsigned long long)s->seq);
				fail_locked(g, e);
				continue;
			}
			g->crc = (uint32_t)crc32_combine(g->crc, s->crc, (z_off_t)s->len);
			g->emit_seq++;
			s->emitted = true;
			release_if_done(g, s);
			continue;
		} else if ((s = first_queued(g)) != NULL) {
			s->state = SLOT_COMPRESSING;
			pthread_mutex_unlock(&g->mu);
			ocil_error *e = NULL;
			int r = compress_block(g, wk, s, &e);
			pthread_mutex_lock(&g->mu);
			if (r < 0) {
				fail_locked(g, e);
				continue;
			}
			s->state = SLOT_COMPRESSED;
			pthread_cond_broadcast(&g->cv);
			continue;
		}
		pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

static void stop_workers(ocil_gzip_blob *g)
{
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	for (unsigned i = 0; i < g->nworkers; i++) {
		worker *wk = &g->workers[i];
		if (wk->started)
			pthread_join(wk->tid, NULL);
		wk->started = false;
	}
}

/* Hand the first worker error to the caller; the blob is unusable after. */
static int take_error_locked(ocil_gzip_blob *g, ocil_error **err)
{
	ocil_error *e = steal_pointer(&g->err);
	pthread_mutex_unlock(&g->mu);
	g->phase = PHASE_BROKEN;
	if (e == NULL)
		return ocil_error_set(err, OCIL_E_IO, "gzip: unusable after an earlier error");
	if (err != NULL && *err == NULL)
		*err = e;
	else
		ocil_error_free(e);
	return -1;
}

static int check_open(ocil_gzip_blob *g, ocil_error **err)
{
	switch (g->phase) {
	case PHASE_DONE:
		return ocil_error_set(err, OCIL_E_IO, "gzip: already finished");
	case PHASE_BROKEN:
		return ocil_error_set(err, OCIL_E_IO, "gzip: unusable after an earlier error");
	default:
		return 0;
	}
}

/* A free slot for the next block (waiting for one if need be). */
static int acquire(ocil_gzip_blob *g, ocil_error **err)
{
	pthread_mutex_lock(&g->mu);
	slot *s = NULL;
	for (;;) {
		if (g->failed)
			return take_error_locked(g, err);
		for (unsigned i = 0; i < g->nslots && s == NULL; i++)
			if (g->slots[i].state == SLOT_FREE)
				s = &g->slots[i];
		if (s != NULL)
			break;
		pthread_cond_wait(&g->cv, &g->mu);
	}
	s->state = SLOT_FILLING;
	s->seq = g->next_seq++;
	pthread_mutex_unlock(&g->mu);
	/* buffers on first use: a small layer touches one slot only */
	if (s->in == NULL) {
		s->in = ocil_xmalloc(g->block_size);
		s->out = ocil_xmalloc(g->out_cap);
		if (g->eng == ENG_ISAL)
			s->dict = ocil_xmalloc(DICT_SIZE);
	}
	s->len = 0;
	s->dict_len = 0;
	s->last = false;
	s->hashed = false;
	s->emitted = false;
	g->cur = s;
	return 0;
}

static void submit(ocil_gzip_blob *g, slot *s, bool last)
{
	pthread_mutex_lock(&g->mu);
	s->last = last;
	s->state = SLOT_QUEUED;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

int ocil_gzip_threads(unsigned *out, ocil_error **err)
{
	const char *e = getenv("OCIL_GZIP_THREADS");
	if (e == NULL || e[0] == '\0') {
		cpu_set_t set;
		long n = sched_getaffinity(0, sizeof(set), &set) == 0
			     ? CPU_COUNT(&set)
			     : sysconf(_SC_NPROCESSORS_ONLN);
		*out = n < 1 ? 1 : n > OCIL_GZIP_MAX_THREADS ? OCIL_GZIP_MAX_THREADS : (unsigned)n;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long v = strtoul(e, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > MAX_THREADS)
		return ocil_error_set(err, OCIL_E_USAGE,
				      "OCIL_GZIP_THREADS=%s: not a thread count in 1..%d", e,
				      MAX_THREADS);
	*out = (unsigned)v;
	return 0;
}

int ocil_gzip_blob_begin_opts(ocil_blobstore *bs, const ocil_gzip_opts *opts, ocil_gzip_blob **out,
			      ocil_error **err)
{
	int level = opts->level == 0 ? 6 : opts->level;
	if (level < 1 || level > 9)
		return ocil_error_set(err, OCIL_E_USAGE, "gzip: level %d is not in 1..9", level);
	size_t block_size = opts->block_size == 0 ? OCIL_GZIP_BLOCK_SIZE : opts->block_size;
	if (block_size < MIN_BLOCK_SIZE || block_size > MAX_BLOCK_SIZE)
		return ocil_error_set(err, OCIL_E_USAGE, "gzip: block size %zu is not in %zu..%zu",
				      block_size, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
	unsigned threads = opts->threads;
	if (threads == 0 && ocil_gzip_threads(&threads, err) < 0)
		return -1;
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;

	ocil_gzip_blob *g = ocil_xcalloc(1, sizeof(*g));
	g->eng = level_map[level].eng;
	g->eng_level = level_map[level].level;
	g->block_size = block_size;
	/* isa-l has no bound function; its worst case (stored blocks) is well
	 * under libdeflate's any-compressor bound plus 1/16 */
	g->out_cap = libdeflate_deflate_compress_bound(NULL, block_size) + block_size / 16 + 4096 +
		     SYNC_MARKER_MAX;
	g->nworkers = threads;
	g->nslots = threads + 2;
	g->workers = ocil_xcalloc(g->nworkers, sizeof(*g->workers));
	g->slots = ocil_xcalloc(g->nslots, sizeof(*g->slots));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->raw = ocil_hasher_new();
	g->phase = PHASE_OPEN;

	if (ocil_blobstore_begin(bs, &g->w, err) < 0) {
		ocil_gzip_blob_free(g);
		return -1;
	}
	/* RFC 1952 header: deflate, no flags, mtime 0, XFL as zlib sets it
	 * (2: slowest, 4: fastest), OS 3 (Unix) */
	unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
	hdr[8] = level == 9 ? 2 : level == 1 ? 4 : 0;
	if (ocil_blob_writer_write(g->w, hdr, sizeof(hdr), err) < 0) {
		ocil_gzip_blob_free(g);
		return -1;
	}

	/* workers take no signals: they stay with the caller's thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = 0;
	for (unsigned i = 0; i < g->nworkers && rc == 0; i++) {
		worker *wk = &g->workers[i];
		wk->g = g;
		rc = pthread_create(&wk->tid, NULL, worker_main, wk);
		wk->started = rc == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		ocil_gzip_blob_free(g);
		return ocil_error_set_errno(err, OCIL_E_IO, rc, "gzip: starting a worker thread");
	}
	*out = g;
	return 0;
}

int ocil_gzip_blob_begin(ocil_blobstore *bs, int level, ocil_gzip_blob **out, ocil_error **err)
{
	ocil_gzip_opts opts = {.level = level};
	return ocil_gzip_blob_begin_opts(bs, &opts, out, err);
}

static int check_workers(ocil_gzip_blob *g, ocil_error **err)
{
	if (!__atomic_load_n(&g->failed, __ATOMIC_RELAXED))
		return 0;
	pthread_mutex_lock(&g->mu);
	return take_error_locked(g, err);
}

int ocil_gzip_blob_write(ocil_gzip_blob *g, const void *buf, size_t len, ocil_error **err)
{
	if (check_open(g, err) < 0 || check_workers(g, err) < 0)
		return -1;
	const unsigned char *p = buf;
	while (len > 0) {
		if (g->cur == NULL) {
			if (acquire(g, err) < 0)
				return -1;
		} else if (g->cur->len == g->block_size) {
			/* a full block goes only once more input shows it is
			 * not the last */
			const unsigned char *tail = g->cur->in + g->block_size - DICT_SIZE;
			submit(g, g->cur, false);
			if (acquire(g, err) < 0)
				return -1;
			/* that block's slot may be free by now, even be the new
			 * g->cur, but only this thread ever writes a slot's
			 * input: the tail is still the previous block's */
			if (g->cur->dict != NULL) {
				g->cur->dict_len = DICT_SIZE;
				memcpy(g->cur->dict, tail, DICT_SIZE);
			}
		}
		slot *s = g->cur;
		size_t n = g->block_size - s->len;
		if (n > len)
			n = len;
		memcpy(s->in + s->len, p, n);
		s->len += n;
		p += n;
		len -= n;
		g->raw_size += n;
	}
	return 0;
}

int ocil_gzip_blob_finish(ocil_gzip_blob *g, ocil_gzip_result *res, ocil_error **err)
{
	if (check_open(g, err) < 0 || check_workers(g, err) < 0)
		return -1;
	/* an empty input still needs a final (empty) block */
	if (g->cur == NULL && acquire(g, err) < 0)
		return -1;
	submit(g, steal_pointer(&g->cur), true);
	pthread_mutex_lock(&g->mu);
	while (!g->failed && (g->hash_seq < g->next_seq || g->emit_seq < g->next_seq))
		pthread_cond_wait(&g->cv, &g->mu);
	if (g->failed)
		return take_error_locked(g, err);
	uint32_t crc = g->crc;
	pthread_mutex_unlock(&g->mu);
	stop_workers(g);

	unsigned char trailer[8];
	uint32_t isize = (uint32_t)g->raw_size; /* RFC 1952: size mod 2^32 */
	for (int i = 0; i < 4; i++) {
		trailer[i] = (unsigned char)(crc >> (8 * i));
		trailer[4 + i] = (unsigned char)(isize >> (8 * i));
	}
	if (ocil_blob_writer_write(g->w, trailer, sizeof(trailer), err) < 0 ||
	    ocil_gzip_result_commit(g->w, g->raw, g->raw_size, res, err) < 0) {
		g->phase = PHASE_BROKEN;
		return -1;
	}
	g->phase = PHASE_DONE;
	return 0;
}

int ocil_gzip_result_commit(ocil_blob_writer *w, ocil_hasher *raw, uint64_t raw_size,
			    ocil_gzip_result *res, ocil_error **err)
{
	ocil_gzip_result r;
	memset(&r, 0, sizeof(r));
	if (ocil_blob_writer_commit(w, NULL, -1, r.digest, &r.size, err) < 0)
		return -1;
	ocil_hasher_final(raw, r.diff_id);
	r.raw_size = raw_size;
	*res = r;
	return 0;
}

void ocil_gzip_blob_free(ocil_gzip_blob *g)
{
	if (g == NULL)
		return;
	stop_workers(g);
	for (unsigned i = 0; i < g->nworkers; i++) {
		worker *wk = &g->workers[i];
		libdeflate_free_compressor(wk->ld);
		free(wk->isal);
		free(wk->isal_buf);
		free(wk->tables);
	}
	for (unsigned i = 0; i < g->nslots; i++) {
		free(g->slots[i].in);
		free(g->slots[i].out);
		free(g->slots[i].dict);
	}
	free(g->workers);
	free(g->slots);
	ocil_error_free(g->err);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	ocil_blob_writer_free(g->w); /* removes the temp file unless committed */
	ocil_hasher_free(g->raw);
	free(g);
}
