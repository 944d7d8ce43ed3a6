#include "layers/conda_split.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/map.h"
#include "oci/layer_cache.h"
#include "oci/pyc.h"

#define HASH_BLOCK ((size_t)1 << 20)

size_t ocil_split_budget(size_t asked, size_t base_layers)
{
	size_t want = asked == 0 ? OCIL_SPLIT_MAX_LAYERS : asked;
	size_t room = base_layers + OCIL_SPLIT_OTHER_LAYERS < OCIL_LAYERS_MAX
			  ? OCIL_LAYERS_MAX - base_layers - OCIL_SPLIT_OTHER_LAYERS
			  : 1;
	if (want > room)
		want = room;
	return want < 1 ? 1 : want;
}

void ocil_split_plan_clear(ocil_split_plan *p)
{
	for (size_t i = 0; p->what != NULL && i < p->n; i++)
		free(p->what[i]);
	free(p->what);
	free(p->of);
	memset(p, 0, sizeof(*p));
}

static uint64_t name_hash(const char *name)
{
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(name, strlen(name), d);
	uint64_t v = 0;
	for (size_t i = 0; i < 16; i++) {
		char c = d[7 + i];
		v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return v;
}

typedef struct {
	const ocil_split_pkg *pkgs;
	size_t *order;
} sort_ctx;

static int cmp_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

/* biggest first, then by name, then label */
static int by_size(const ocil_split_pkg *a, const ocil_split_pkg *b)
{
	if (a->size != b->size)
		return a->size > b->size ? -1 : 1;
	int c = cmp_str(a->name, b->name);
	return c != 0 ? c : cmp_str(a->label, b->label);
}

static int by_name(const ocil_split_pkg *a, const ocil_split_pkg *b)
{
	int c = cmp_str(a->name, b->name);
	return c != 0 ? c : cmp_str(a->label, b->label);
}

/* insertion-sorted indexes (a few hundred packages) */
static void sort_idx(size_t *v, size_t n, const ocil_split_pkg *pkgs,
		     int (*cmp)(const ocil_split_pkg *, const ocil_split_pkg *))
{
	for (size_t i = 1; i < n; i++) {
		size_t x = v[i], j = i;
		while (j > 0 && cmp(&pkgs[x], &pkgs[v[j - 1]]) < 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

static void append(char **s, bool first, const char *name)
{
	char *n = ocil_xasprintf("%s%s %s", *s, first ? "" : ",", name);
	free(*s);
	*s = n;
}

void ocil_split_assign(const ocil_split_pkg *pkgs, size_t n, size_t budget, bool have_unowned,
		       ocil_split_plan *out)
{
	memset(out, 0, sizeof(*out));
	out->of = ocil_xcalloc(n + 1, sizeof(*out->of));
	if (budget <= 1) {
		out->n = 1;
		out->what = ocil_xcalloc(1, sizeof(char *));
		out->what[0] = ocil_xstrdup("everything");
		out->unowned = have_unowned ? 0 : 1;
		return;
	}
	size_t groups = (budget - 1) / 4;
	if (groups < 1)
		groups = 1;
	if (groups > OCIL_SPLIT_GROUPS)
		groups = OCIL_SPLIT_GROUPS;
	size_t solo_slots = budget - 1 - groups;
	/* raw slots: 0..n-1 a package of its own, n..n+groups-1 the groups,
	 * n+groups what no package owns */
	size_t raw_n = n + groups + 1;
	size_t *raw_of = ocil_xcalloc(n + 1, sizeof(*raw_of));
	size_t *idx = ocil_xcalloc(n + 1, sizeof(*idx));
	bool *solo = ocil_xcalloc(n + 1, sizeof(*solo));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	sort_idx(idx, n, pkgs, by_size);
	for (size_t i = 0; i < n && i < solo_slots && pkgs[idx[i]].size >= OCIL_SPLIT_BIG; i++)
		solo[idx[i]] = true;
	for (size_t i = 0; i < n; i++)
		raw_of[i] =
		    solo[i] ? i
			    : n + (size_t)(name_hash(pkgs[i].name ? pkgs[i].name : "") % groups);
	/* the order: solo by name, groups by number, then the unowned */
	sort_idx(idx, n, pkgs, by_name);
	size_t *final = ocil_xcalloc(raw_n, sizeof(*final));
	bool *used = ocil_xcalloc(raw_n, sizeof(*used));
	for (size_t i = 0; i < n; i++)
		used[raw_of[i]] = true;
	used[n + groups] = have_unowned;
	out->what = ocil_xcalloc(raw_n, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (solo[idx[i]]) {
			final[idx[i]] = k;
			out->what[k++] = ocil_xstrdup(pkgs[idx[i]].label ? pkgs[idx[i]].label
									 : pkgs[idx[i]].name);
		}
	for (size_t g = 0; g < groups; g++) {
		if (!used[n + g])
			continue;
		final[n + g] = k;
		char *what = ocil_xasprintf("group %zu of %zu:", g + 1, groups);
		bool first = true;
		for (size_t i = 0; i < n; i++)
			if (raw_of[idx[i]] == n + g) {
				append(&what, first, pkgs[idx[i]].name);
				first = false;
			}
		out->what[k++] = what;
	}
	out->unowned = k;
	if (have_unowned)
		out->what[k++] = ocil_xstrdup("files no package owns");
	out->n = k;
	for (size_t i = 0; i < n; i++)
		out->of[i] = final[raw_of[i]];
	free(raw_of);
	free(idx);
	free(solo);
	free(final);
	free(used);
}

/* ---- a prefix ---- */

#define MASK_WORDS ((OCIL_SPLIT_MAX_LAYERS + 63) / 64)

typedef struct {
	char *rel;
	mode_t mode;
	uint64_t size;
	struct timespec mtim, ctim;
	ino_t ino;
	dev_t dev;
	char *link;		   /* a symlink's target */
	long owner;		   /* record, -1: none */
	size_t layer;		   /* not a directory */
	uint64_t dirs[MASK_WORDS]; /* a directory: the layers with entries below it */
	unsigned char ph;	   /* placeholder mode (conda.c): 0 none, 1 text, 2 + i binary */
	bool managed;
	size_t *pycs; /* a .py: its bytecode entries */
	size_t n_pycs;
	bool is_pyc; /* in a __pycache__, named for a source */
	long source; /* a pyc: its .py entry, -1 when none */
} sentry;

typedef struct {
	uint64_t hash;
	size_t i;
	char rel[];
} rel_ent;

struct ocil_conda_split {
	char *prefix;
	const ocil_conda_info *info;
	sentry *v;
	size_t n, cap;
	ocil_hashtab by_rel;
	ocil_split_plan plan;
};

static bool rel_eq(const void *item, const void *key)
{
	return strcmp(((const rel_ent *)item)->rel, key) == 0;
}

static uint64_t rel_hash(const void *item)
{
	return ((const rel_ent *)item)->hash;
}

static long find(const ocil_conda_split *s, const char *rel, size_t len)
{
	char buf[PATH_MAX + 1];
	if (len > PATH_MAX)
		return -1;
	memcpy(buf, rel, len);
	buf[len] = '\0';
	const rel_ent *e =
	    ocil_hashtab_find(&s->by_rel, ocil_fnv1a(OCIL_FNV1A_INIT, buf, len), rel_eq, buf);
	return e ? (long)e->i : -1;
}

void ocil_conda_split_free(ocil_conda_split *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].rel);
		free(s->v[i].link);
		free(s->v[i].pycs);
	}
	free(s->v);
	for (size_t i = 0; i < s->by_rel.cap; i++)
		free(s->by_rel.slots[i]);
	ocil_hashtab_release(&s->by_rel);
	ocil_split_plan_clear(&s->plan);
	free(s->prefix);
	free(s);
}

const ocil_split_plan *ocil_conda_split_plan(const ocil_conda_split *s)
{
	return &s->plan;
}

static bool scan_skip(const ocil_walk_entry *e, void *ud)
{
	const ocil_conda_split *s = ud;
	return ocil_conda_left_out(s->info, e);
}

static int scan_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	ocil_conda_split *s = ud;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = ocil_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	sentry *x = &s->v[s->n];
	memset(x, 0, sizeof(*x));
	x->rel = ocil_xstrdup(e->rel);
	x->mode = e->st->st_mode;
	x->size = (uint64_t)e->st->st_size;
	x->mtim = e->st->st_mtim;
	x->ctim = e->st->st_ctim;
	x->ino = e->st->st_ino;
	x->dev = e->st->st_dev;
	x->source = -1;
	if (S_ISLNK(x->mode) && ocil_walk_readlink(e, &x->link, err) < 0) {
		free(x->rel);
		return -1;
	}
	x->owner = S_ISDIR(x->mode) ? -1 : ocil_conda_owner(s->info, e->rel);
	x->managed = ocil_strmap_get(&s->info->files, e->rel, &x->ph);
	if (!x->managed)
		x->ph = 0;
	size_t n = strlen(e->rel);
	rel_ent *r = ocil_xmalloc(sizeof(*r) + n + 1);
	r->hash = ocil_fnv1a(OCIL_FNV1A_INIT, e->rel, n);
	r->i = s->n;
	memcpy(r->rel, e->rel, n + 1);
	ocil_hashtab_add(&s->by_rel, r, 4096, rel_hash);
	s->n++;
	return 0;
}

/* conda-meta/<record file>: owned by that record */
static void own_records(ocil_conda_split *s)
{
	const ocil_strv *files = &s->info->record_files;
	for (size_t r = 0; r < files->n; r++) {
		cleanup_free char *rel = ocil_xasprintf("conda-meta/%s", files->v[r]);
		long i = find(s, rel, strlen(rel));
		if (i >= 0 && !S_ISDIR(s->v[i].mode))
			s->v[i].owner = (long)r;
	}
}

/* Link each __pycache__/<stem>.<tag>[.opt-N].pyc to <stem>.py beside the
 * __pycache__; an unowned pyc goes with its owned source. */
static void link_pycs(ocil_conda_split *s)
{
	static const char cache[] = "__pycache__/";
	for (size_t i = 0; i < s->n; i++) {
		sentry *x = &s->v[i];
		const char *slash = strrchr(x->rel, '/');
		const char *name = slash ? slash + 1 : x->rel;
		size_t dlen = (size_t)(name - x->rel);
		size_t cl = sizeof(cache) - 1;
		size_t stem_len;
		const char *tag;
		size_t tag_len;
		int opt;
		if (!S_ISREG(x->mode) || dlen < cl || strncmp(name - cl, cache, cl) != 0 ||
		    !ocil_pyc_name_parse(name, &stem_len, &tag, &tag_len, &opt))
			continue;
		size_t plen = dlen - cl; /* the directory of the source, with its slash */
		cleanup_free char *src =
		    ocil_xasprintf("%.*s%.*s.py", (int)plen, x->rel, (int)stem_len, name);
		long j = find(s, src, strlen(src));
		if (j < 0 || !S_ISREG(s->v[j].mode))
			continue;
		x->is_pyc = true;
		x->source = j;
		sentry *py = &s->v[j];
		py->pycs = ocil_xrealloc(py->pycs, (py->n_pycs + 1) * sizeof(*py->pycs));
		py->pycs[py->n_pycs++] = i;
		if (x->owner < 0)
			x->owner = py->owner;
	}
}

static void set_bit(uint64_t *m, size_t k)
{
	m[k / 64] |= (uint64_t)1 << (k % 64);
}

static bool has_bit(const uint64_t *m, size_t k)
{
	return (m[k / 64] >> (k % 64) & 1) != 0;
}

static bool no_bits(const uint64_t *m)
{
	for (size_t w = 0; w < MASK_WORDS; w++)
		if (m[w] != 0)
			return false;
	return true;
}

/* Mark layer k on every directory above rel. */
static void mark_parents(ocil_conda_split *s, const char *rel, size_t k)
{
	for (const char *p = strrchr(rel, '/'); p != NULL;) {
		size_t len = (size_t)(p - rel);
		long d = find(s, rel, len);
		if (d >= 0 && S_ISDIR(s->v[d].mode)) {
			if (has_bit(s->v[d].dirs, k))
				return; /* and so are the ones above it */
			set_bit(s->v[d].dirs, k);
		}
		p = len > 0 ? (const char *)memrchr(rel, '/', len) : NULL;
	}
}

static void assign(ocil_conda_split *s, size_t budget)
{
	size_t nrec = s->info->record_files.n;
	cleanup_free ocil_split_pkg *pkgs = ocil_xcalloc(nrec + 1, sizeof(*pkgs));
	cleanup_strv ocil_strv labels = {0};
	for (size_t r = 0; r < nrec; r++) {
		const char *f = s->info->record_files.v[r];
		size_t fl = strlen(f);
		ocil_strv_push(&labels,
			       ocil_xstrndup(f, ocil_str_has_suffix(f, ".json") ? fl - 5 : fl));
		pkgs[r].name = r < s->info->record_names.n ? s->info->record_names.v[r] : f;
		pkgs[r].label = labels.v[r];
	}
	bool unowned = false;
	for (size_t i = 0; i < s->n; i++) {
		const sentry *x = &s->v[i];
		if (S_ISDIR(x->mode))
			continue;
		if (x->owner < 0)
			unowned = true;
		else if (S_ISREG(x->mode))
			pkgs[x->owner].size += x->size;
	}
	/* an empty directory goes with the unowned files */
	for (size_t i = 0; !unowned && i < s->n; i++)
		if (S_ISDIR(s->v[i].mode) &&
		    (i + 1 == s->n || !ocil_str_has_prefix(s->v[i + 1].rel, s->v[i].rel) ||
		     s->v[i + 1].rel[strlen(s->v[i].rel)] != '/'))
			unowned = true;
	ocil_split_assign(pkgs, nrec, budget, unowned, &s->plan);
	for (size_t i = 0; i < s->n; i++) {
		sentry *x = &s->v[i];
		if (S_ISDIR(x->mode))
			continue;
		x->layer = x->owner >= 0 ? s->plan.of[x->owner] : s->plan.unowned;
		mark_parents(s, x->rel, x->layer);
	}
	for (size_t i = 0; i < s->n; i++) {
		sentry *x = &s->v[i];
		if (S_ISDIR(x->mode) && no_bits(x->dirs)) {
			set_bit(x->dirs, s->plan.unowned);
			mark_parents(s, x->rel, s->plan.unowned);
		}
	}
}

int ocil_conda_split_prefix(const char *prefix, const ocil_conda_info *info, size_t budget,
			    const ocil_cancel *cancel, ocil_conda_split **out, ocil_error **err)
{
	ocil_conda_split *s = ocil_xcalloc(1, sizeof(*s));
	s->prefix = ocil_xstrdup(prefix);
	s->info = info;
	if (budget > OCIL_SPLIT_MAX_LAYERS)
		budget = OCIL_SPLIT_MAX_LAYERS;
	ocil_walk_opts wo = {.fn = scan_entry, .skip = scan_skip, .ud = s, .cancel = cancel};
	if (ocil_walk(prefix, &wo, err) < 0) {
		ocil_conda_split_free(s);
		return -1;
	}
	own_records(s);
	link_pycs(s);
	assign(s, budget);
	*out = s;
	return 0;
}

bool ocil_conda_split_keep(const ocil_walk_entry *e, void *ud)
{
	const ocil_conda_split_layer *l = ud;
	long i = find(l->s, e->rel, strlen(e->rel));
	if (i < 0)
		return false; /* appeared since the scan: the next build sees it */
	const sentry *x = &l->s->v[i];
	if (S_ISDIR(x->mode))
		return S_ISDIR(e->st->st_mode) && has_bit(x->dirs, l->k);
	return !S_ISDIR(e->st->st_mode) && x->layer == l->k;
}

static bool in_layer(const sentry *x, size_t k)
{
	return S_ISDIR(x->mode) ? has_bit(x->dirs, k) : x->layer == k;
}

/* How the layer treats an entry, whatever the machine. */
static void fold_treatment(const ocil_conda_split *s, const sentry *x, ocil_hasher *h)
{
	size_t room = x->ph >= 2 && (size_t)(x->ph - 2) < s->info->n_binary_rooms
			  ? s->info->binary_rooms[x->ph - 2]
			  : 0;
	ocil_layer_cache_key_int(h, x->managed);
	ocil_layer_cache_key_int(h, x->ph == 0 ? 0 : x->ph == 1 ? 1 : 2);
	ocil_layer_cache_key_int(h, (int64_t)room);
}

static void fold_stat(ocil_hasher *h, const sentry *x)
{
	int64_t v[] = {(int64_t)x->mode,	 (int64_t)x->size,	  (int64_t)x->mtim.tv_sec,
		       (int64_t)x->mtim.tv_nsec, (int64_t)x->ctim.tv_sec, (int64_t)x->ctim.tv_nsec,
		       (int64_t)x->ino,		 (int64_t)x->dev};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		ocil_layer_cache_key_int(h, v[i]);
}

void ocil_conda_split_fold_local(const ocil_conda_split *s, size_t k, ocil_hasher *h)
{
	for (size_t i = 0; i < s->n; i++) {
		const sentry *x = &s->v[i];
		if (!in_layer(x, k))
			continue;
		ocil_layer_cache_key_str(h, x->rel);
		if (S_ISDIR(x->mode)) {
			ocil_layer_cache_key_str(h, "dir");
			continue;
		}
		fold_stat(h, x);
		ocil_layer_cache_key_str(h, x->link);
		fold_treatment(s, x, h);
		for (size_t p = 0; p < x->n_pycs; p++) {
			const sentry *y = &s->v[x->pycs[p]];
			if (y->layer == k)
				continue; /* folded as an entry of this layer */
			ocil_layer_cache_key_str(h, y->rel);
			fold_stat(h, y);
		}
	}
}

/* The sha256 of a file of the prefix (the one the scan saw). */
static int hash_file(const ocil_conda_split *s, int pfd, const sentry *x, unsigned char *buf,
		     char out[OCIL_DIGEST_STR_SIZE], const ocil_cancel *cancel, ocil_error **err)
{
	cleanup_close int fd = openat(pfd, x->rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s/%s", s->prefix, x->rel);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != x->ino ||
	    st.st_dev != x->dev)
		return ocil_error_set(err, OCIL_E_IO, "%s/%s: changed during the build", s->prefix,
				      x->rel);
	ocil_hasher *hh = ocil_hasher_new();
	int r = 0;
	for (;;) {
		if ((r = ocil_cancel_check(cancel, err)) < 0)
			break;
		ssize_t n = read(fd, buf, HASH_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s/%s", s->prefix,
						 x->rel);
			break;
		}
		if (n == 0)
			break;
		ocil_hasher_update(hh, buf, (size_t)n);
	}
	ocil_hasher_final(hh, out);
	ocil_hasher_free(hh);
	return r;
}

/* Whether the pyc y is valid for its source x on this host (a timestamp
 * pyc whose recorded mtime and size are the source's): then the source's
 * mtime in the layer is the pyc's (pyc.h). */
static bool pyc_valid_here(const ocil_conda_split *s, int pfd, const sentry *x, const sentry *y)
{
	cleanup_close int fd = openat(pfd, y->rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	unsigned char head[OCIL_PYC_HEADER_SIZE];
	ssize_t n = fd < 0 ? -1 : pread(fd, head, sizeof(head), 0);
	if (n < 0)
		return false;
	ocil_pyc_header ph;
	ocil_pyc_header_parse(head, (size_t)n, &ph);
	const char *slash = strrchr(y->rel, '/');
	size_t stem_len, tag_len;
	const char *tag;
	int opt;
	if (ph.kind != OCIL_PYC_TIMESTAMP ||
	    !ocil_pyc_name_parse(slash ? slash + 1 : y->rel, &stem_len, &tag, &tag_len, &opt))
		return false;
	return ocil_pyc_stale_reason(&ph, ocil_pyc_tag_minor(tag, tag_len), (int64_t)x->mtim.tv_sec,
				     x->size, NULL) == NULL;
}

int ocil_conda_split_fold_content(const ocil_conda_split *s, size_t k, ocil_hasher *h,
				  const ocil_cancel *cancel, ocil_error **err)
{
	cleanup_close int pfd = open(s->prefix, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "conda prefix %s", s->prefix);
	cleanup_free unsigned char *buf = ocil_xmalloc(HASH_BLOCK);
	char d[OCIL_DIGEST_STR_SIZE];
	for (size_t i = 0; i < s->n; i++) {
		const sentry *x = &s->v[i];
		if (!in_layer(x, k))
			continue;
		ocil_layer_cache_key_str(h, x->rel);
		if (S_ISDIR(x->mode)) {
			ocil_layer_cache_key_str(h, "dir");
			continue;
		}
		if (S_ISLNK(x->mode)) {
			ocil_layer_cache_key_str(h, "link");
			ocil_layer_cache_key_str(h, x->link);
			continue;
		}
		ocil_layer_cache_key_str(h, S_ISREG(x->mode) ? "file" : "other");
		ocil_layer_cache_key_int(h, (x->mode & 0111) != 0);
		ocil_layer_cache_key_int(h, (int64_t)x->size);
		if (S_ISREG(x->mode)) {
			if (hash_file(s, pfd, x, buf, d, cancel, err) < 0)
				return -1;
			ocil_layer_cache_key_str(h, d);
		}
		fold_treatment(s, x, h);
		for (size_t p = 0; p < x->n_pycs; p++) {
			const sentry *y = &s->v[x->pycs[p]];
			ocil_layer_cache_key_str(h, y->rel);
			ocil_layer_cache_key_int(h, pyc_valid_here(s, pfd, x, y));
			if (y->layer == k)
				continue;
			if (hash_file(s, pfd, y, buf, d, cancel, err) < 0)
				return -1;
			ocil_layer_cache_key_str(h, d);
		}
	}
	return 0;
}
