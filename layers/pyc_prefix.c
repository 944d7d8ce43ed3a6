/* A prefix's python sources packed so that its bytecode stays valid in
 * the image (see pyc_prefix.h). */
#include "layers/pyc_prefix.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* A directory's __pycache__ holds a few hundred files at most in real
 * trees; past this many the rest are not looked at. */
#define MAX_PYCACHE 100000
/* Largest source read for a checked-hash pyc's comparison. */
#define SOURCE_MAX ((size_t)64 << 20)
#define READ_BLOCK ((size_t)64 << 10)

/* ---- counts ---- */

void ocil_pyc_counts_clear(ocil_pyc_counts *c)
{
	free(c->first_stale);
	free(c->first_rewritten);
	memset(c, 0, sizeof(*c));
}

char *ocil_pyc_counts_summary(const ocil_pyc_counts *c)
{
	if (c->pycs == 0)
		return NULL;
	if (c->stale_host == 0 && c->rewritten == 0)
		return ocil_xasprintf("bytecode: %zu .pyc files, all valid in the image", c->pycs);
	cleanup_free char *stale =
	    c->stale_host == 0 ? ocil_xstrdup("")
			       : ocil_xasprintf("%zu stale on the build host already (e.g. %s)",
						c->stale_host, c->first_stale);
	cleanup_free char *rew =
	    c->rewritten == 0
		? ocil_xstrdup("")
		: ocil_xasprintf("%zu compiled from sources the relocation rewrote (e.g. %s)",
				 c->rewritten, c->first_rewritten);
	return ocil_xasprintf("bytecode: %zu of %zu .pyc files valid in the image; %s%s%s: "
			      "python compiles those modules again at every cold start",
			      c->valid, c->pycs, stale, stale[0] && rew[0] ? ", " : "", rew);
}

/* ---- the prefix ---- */

typedef struct {
	char *name;
	size_t stem_len;
	int minor; /* of its tag, -1 when not cpython 3 */
	int opt;
	ocil_pyc_header h;
} pyc_file;

typedef struct {
	char *dir; /* relative path of the directory whose __pycache__ this is; NULL: none read */
	pyc_file *v;
	size_t n;
} pyc_dir;

struct ocil_pyc_prefix {
	int minor;
	int64_t epoch;
	bool (*in_layer)(const char *rel, void *ud);
	void *ud;
	pyc_dir dirs[OCIL_WALK_MAX_DEPTH + 1]; /* by depth of the directory */
	ocil_pyc_counts counts;
};

static void pyc_dir_clear(pyc_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d->dir);
	memset(d, 0, sizeof(*d));
}

ocil_pyc_prefix *ocil_pyc_prefix_new(const char *minor, int64_t epoch,
				     bool (*in_layer)(const char *rel, void *ud), void *ud)
{
	ocil_pyc_prefix *p = ocil_xcalloc(1, sizeof(*p));
	p->minor = ocil_pyc_minor(minor);
	p->epoch = epoch;
	p->in_layer = in_layer;
	p->ud = ud;
	return p;
}

void ocil_pyc_prefix_free(ocil_pyc_prefix *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i <= OCIL_WALK_MAX_DEPTH; i++)
		pyc_dir_clear(&p->dirs[i]);
	ocil_pyc_counts_clear(&p->counts);
	free(p);
}

const ocil_pyc_counts *ocil_pyc_prefix_counts(const ocil_pyc_prefix *p)
{
	return &p->counts;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const pyc_file *)a)->name, ((const pyc_file *)b)->name);
}

/* Read up to 16 bytes of name in dfd: the header. False when it is not a
 * regular file we can read. */
static bool read_head(int dfd, const char *name, unsigned char *buf, size_t *len)
{
	cleanup_close int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	ssize_t n;
	do
		n = pread(fd, buf, OCIL_PYC_HEADER_SIZE, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return false;
	*len = (size_t)n;
	return true;
}

/* The __pycache__ of the directory holding e, read once. */
static pyc_dir *dir_of(ocil_pyc_prefix *p, const ocil_walk_entry *e)
{
	size_t depth = e->depth - 1;
	size_t dlen = strlen(e->rel) - strlen(e->name);
	dlen = dlen > 0 ? dlen - 1 : 0; /* without the slash */
	pyc_dir *d = &p->dirs[depth];
	if (d->dir != NULL && strlen(d->dir) == dlen && strncmp(d->dir, e->rel, dlen) == 0)
		return d;
	pyc_dir_clear(d);
	d->dir = ocil_xstrndup(e->rel, dlen);
	int cfd = openat(e->dirfd, "__pycache__", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0)
		return d;
	DIR *dh = fdopendir(cfd);
	if (dh == NULL) {
		close(cfd);
		return d;
	}
	size_t cap = 0;
	for (struct dirent *de; (de = readdir(dh)) != NULL && d->n < MAX_PYCACHE;) {
		pyc_file f = {0};
		const char *tag;
		size_t tl;
		if (!ocil_pyc_name_parse(de->d_name, &f.stem_len, &tag, &tl, &f.opt))
			continue;
		if (p->in_layer != NULL) {
			cleanup_free char *rel = ocil_xasprintf("%s%s__pycache__/%s", d->dir,
								d->dir[0] ? "/" : "", de->d_name);
			if (!p->in_layer(rel, p->ud))
				continue;
		}
		unsigned char head[OCIL_PYC_HEADER_SIZE];
		size_t hl = 0;
		if (!read_head(dirfd(dh), de->d_name, head, &hl))
			continue;
		ocil_pyc_header_parse(head, hl, &f.h);
		f.minor = ocil_pyc_tag_minor(tag, tl);
		f.name = ocil_xstrdup(de->d_name);
		if (d->n == cap) {
			cap = cap ? cap * 2 : 16;
			d->v = ocil_xrealloc(d->v, cap * sizeof(*d->v));
		}
		d->v[d->n++] = f;
	}
	closedir(dh);
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), by_name);
	return d;
}

/* The hash a checked-hash pyc of python 3.minor (magic) wants of the
 * source's bytes; false when the source cannot be read. */
static bool host_source_hash(const ocil_walk_entry *e, int minor, uint16_t magic, uint64_t *out)
{
	cleanup_close int fd = openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || e->st->st_size < 0 || (uint64_t)e->st->st_size > SOURCE_MAX)
		return false;
	ocil_pyc_hasher h;
	ocil_pyc_hash_begin(&h, minor, magic);
	cleanup_free unsigned char *buf = ocil_xmalloc(READ_BLOCK);
	for (;;) {
		ssize_t n = read(fd, buf, READ_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;
		if (n == 0)
			break;
		ocil_pyc_hash_update(&h, buf, (size_t)n);
	}
	*out = ocil_pyc_hash_final(&h);
	return true;
}

static void note(char **first, const char *rel)
{
	if (*first == NULL)
		*first = ocil_xstrdup(rel);
}

/* Count the bytecode python reads of one source. */
static void count_pyc(ocil_pyc_prefix *p, const ocil_walk_entry *e, const pyc_file *f,
		      bool rewritten)
{
	ocil_pyc_counts *c = &p->counts;
	int64_t mtime = (int64_t)e->st->st_mtim.tv_sec;
	uint64_t size = (uint64_t)e->st->st_size;
	uint64_t hash = 0;
	const char *why = ocil_pyc_stale_reason(&f->h, f->minor, mtime, size, NULL);
	if (why == NULL && f->h.kind == OCIL_PYC_CHECKED_HASH) {
		if (!host_source_hash(e, f->minor, f->h.magic, &hash))
			why = "unreadable";
		else
			why = ocil_pyc_stale_reason(&f->h, f->minor, mtime, size, &hash);
	}
	c->pycs++;
	if (why != NULL) {
		c->stale_host++;
		note(&c->first_stale, e->rel);
	} else if (rewritten && f->h.kind != OCIL_PYC_UNCHECKED_HASH) {
		/* (python never looks at an unchecked pyc's source) */
		c->rewritten++;
		note(&c->first_rewritten, e->rel);
	} else {
		c->valid++;
	}
}

void ocil_pyc_prefix_source(ocil_pyc_prefix *p, const ocil_walk_entry *e, bool rewritten,
			    uint64_t image_size, ocil_layer_writer *w)
{
	size_t nl = strlen(e->name);
	if (nl <= 3 || strcmp(e->name + nl - 3, ".py") != 0 || e->depth == 0 ||
	    e->depth > OCIL_WALK_MAX_DEPTH)
		return;
	pyc_dir *d = dir_of(p, e);
	size_t stem_len = nl - 3;
	int64_t host_mtime = (int64_t)e->st->st_mtim.tv_sec;
	uint64_t host_size = (uint64_t)e->st->st_size;
	/* the pycs of this stem: names "stem.*", sorted */
	size_t lo = 0, hi = d->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strncmp(d->v[mid].name, e->name, stem_len + 1) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t first = lo, last = lo;
	while (last < d->n && strncmp(d->v[last].name, e->name, stem_len) == 0 &&
	       d->v[last].name[stem_len] == '.')
		last++;
	bool have = false, any = false;
	uint32_t recorded = 0;
	for (size_t i = first; i < last; i++) {
		const pyc_file *f = &d->v[i];
		if (f->stem_len != stem_len)
			continue;
		any = true;
		if (f->h.kind == OCIL_PYC_TIMESTAMP && !rewritten && !have &&
		    ocil_pyc_stale_reason(&f->h, f->minor, host_mtime, host_size, NULL) == NULL) {
			have = true;
			recorded = f->h.mtime;
		}
		if (f->opt == 0 && f->minor == p->minor && p->minor >= 0)
			count_pyc(p, e, f, rewritten);
	}
	if (!any)
		return;
	int64_t t = have ? (int64_t)recorded : p->epoch;
	for (bool clash = !have; clash;) {
		clash = false;
		for (size_t i = first; i < last; i++) {
			const pyc_file *f = &d->v[i];
			if (f->stem_len == stem_len && f->h.kind == OCIL_PYC_TIMESTAMP &&
			    ocil_pyc_stale_reason(&f->h, f->minor, t, image_size, NULL) == NULL)
				clash = true;
		}
		if (clash)
			t++;
	}
	if (t != p->epoch)
		ocil_layer_writer_set_next_mtime(w, t);
}
