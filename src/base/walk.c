#include "base/walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "base/digest.h"

typedef struct {
	const ocil_walk_opts *o;
	/* growable "root/rel" buffer; rel points inside it */
	char *path;
	size_t len, cap, root_len;
} walker;

static void closedirp(DIR **d)
{
	if (*d != NULL)
		closedir(*d);
}

/* Append "/name" to the path buffer; returns the old length to restore. */
static size_t push(walker *wk, const char *name)
{
	size_t old = wk->len, n = strlen(name);
	if (wk->len + 1 + n + 1 > wk->cap) {
		wk->cap = (wk->len + 1 + n + 1) * 2;
		wk->path = ocil_xrealloc(wk->path, wk->cap);
	}
	wk->path[wk->len++] = '/';
	memcpy(wk->path + wk->len, name, n + 1);
	wk->len += n;
	return old;
}

static void pop(walker *wk, size_t old)
{
	wk->len = old;
	wk->path[old] = '\0';
}

/* Read the sorted names of a directory (consumes fd). */
static int read_names(walker *wk, int fd, ocil_strv *names, ocil_error **err)
{
	__attribute__((cleanup(closedirp))) DIR *d = fdopendir(fd);
	if (d == NULL) {
		int e = errno;
		close(fd);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "reading %s", wk->path);
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0)
				return ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s",
							    wk->path);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (names->n >= OCIL_WALK_MAX_WIDTH)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: more than %zu entries",
					      wk->path, OCIL_WALK_MAX_WIDTH);
		ocil_strv_push(names, ocil_xstrdup(de->d_name));
	}
	ocil_strv_sort(names);
	return 0;
}

static int walk_dir(walker *wk, int dfd, size_t depth, ocil_error **err)
{
	if (depth > OCIL_WALK_MAX_DEPTH)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: deeper than %d levels", wk->path,
				      OCIL_WALK_MAX_DEPTH);
	/* A second fd for readdir: dfd stays usable for the *at calls. */
	int rfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", wk->path);
	ocil_strv names = {0};
	int r = read_names(wk, rfd, &names, err);
	for (size_t i = 0; r == 0 && i < names.n; i++) {
		if ((r = ocil_cancel_check(wk->o->cancel, err)) < 0)
			break;
		const char *name = names.v[i];
		size_t old = push(wk, name);
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", wk->path);
			pop(wk, old);
			break;
		}
		ocil_walk_entry e = {
		    .rel = wk->path + wk->root_len + 1,
		    .path = wk->path,
		    .name = name,
		    .dirfd = dfd,
		    .st = &st,
		    .depth = depth,
		};
		if (wk->o->skip != NULL && wk->o->skip(&e, wk->o->ud)) {
			pop(wk, old);
			continue;
		}
		r = wk->o->fn(&e, wk->o->ud, err);
		if (r == 0 && S_ISDIR(st.st_mode)) {
			cleanup_close int cfd =
			    openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			struct stat cst;
			if (cfd < 0)
				r = ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s",
							 wk->path);
			else if (fstat(cfd, &cst) < 0 || cst.st_ino != st.st_ino ||
				 cst.st_dev != st.st_dev)
				r = ocil_error_set(err, OCIL_E_IO, "%s: changed during the walk",
						   wk->path);
			else
				r = walk_dir(wk, cfd, depth + 1, err);
		}
		pop(wk, old);
	}
	ocil_strv_clear(&names);
	return r;
}

int ocil_walk(const char *root, const ocil_walk_opts *o, ocil_error **err)
{
	/* the root may be a symlink to a directory: that is the user's path */
	cleanup_close int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, errno == EACCES ? OCIL_E_IO : OCIL_E_INPUT, errno,
					    "%s", root);
	walker wk = {.o = o};
	wk.root_len = strlen(root);
	while (wk.root_len > 1 && root[wk.root_len - 1] == '/')
		wk.root_len--;
	wk.cap = wk.root_len + 256;
	wk.path = ocil_xmalloc(wk.cap);
	memcpy(wk.path, root, wk.root_len);
	wk.path[wk.root_len] = '\0';
	wk.len = wk.root_len;
	/* root "/" would make rel start after "//"; keep rel right */
	if (wk.root_len == 1 && root[0] == '/')
		wk.len = wk.root_len = 0;
	int r = walk_dir(&wk, fd, 1, err);
	free(wk.path);
	return r;
}

int ocil_walk_open(const ocil_walk_entry *e, int *fd, ocil_error **err)
{
	/* O_NONBLOCK: a fifo swapped in after the stat must not hang us */
	int f =
	    openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (f < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", e->path);
	struct stat st;
	if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != e->st->st_ino ||
	    st.st_dev != e->st->st_dev) {
		close(f);
		return ocil_error_set(err, OCIL_E_IO, "%s: changed during the walk", e->path);
	}
	*fd = f;
	return 0;
}

int ocil_walk_readlink(const ocil_walk_entry *e, char **target, ocil_error **err)
{
	cleanup_free char *buf = ocil_xmalloc(PATH_MAX + 1);
	ssize_t n = readlinkat(e->dirfd, e->name, buf, PATH_MAX + 1);
	if (n < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "reading link %s", e->path);
	if (n > PATH_MAX)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: symlink target too long", e->path);
	buf[n] = '\0';
	*target = steal_pointer(&buf);
	return 0;
}

const char *ocil_walk_kind(mode_t m)
{
	if (S_ISSOCK(m))
		return "socket";
	if (S_ISFIFO(m))
		return "fifo";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "device";
	return "special file";
}

/* One fixed-width record a stat, then the path (and a symlink's target),
 * NUL-terminated so no two entries can run together. */
void ocil_walk_fold_stat(ocil_hasher *h, const struct stat *st)
{
	uint64_t v[] = {
	    (uint64_t)st->st_mode,	  (uint64_t)st->st_size,
	    (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec,
	    (uint64_t)st->st_ctim.tv_sec, (uint64_t)st->st_ctim.tv_nsec,
	    (uint64_t)st->st_ino,	  (uint64_t)st->st_dev,
	};
	ocil_hasher_update(h, v, sizeof(v));
}

static int fingerprint_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	ocil_hasher *h = ud;
	ocil_walk_fold_stat(h, e->st);
	ocil_hasher_update(h, e->rel, strlen(e->rel) + 1);
	if (S_ISLNK(e->st->st_mode)) {
		cleanup_free char *target = NULL;
		if (ocil_walk_readlink(e, &target, err) < 0)
			return -1;
		ocil_hasher_update(h, target, strlen(target) + 1);
	}
	return 0;
}

/* Directories this deep are fingerprinted on their own, on worker threads
 * (in a conda prefix, lib/python3.X/site-packages/<package>), and folded
 * in by digest in walk order: the result does not depend on the thread
 * count. Walking is mostly the kernel's stat, which scales with cores. */
#define SPLIT_DEPTH 4
#define MAX_THREADS 4

typedef struct {
	ocil_hasher *h;
	ocil_strv units; /* paths of the split-off directories, in walk order */
} fp_ctx;

static bool fp_split(const ocil_walk_entry *e, void *ud)
{
	fp_ctx *c = ud;
	if (e->depth != SPLIT_DEPTH || !S_ISDIR(e->st->st_mode))
		return false;
	(void)fingerprint_entry(e, c->h, NULL); /* a directory: cannot fail */
	ocil_strv_push(&c->units, ocil_xstrdup(e->path));
	return true;
}

static int fp_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	return fingerprint_entry(e, ((fp_ctx *)ud)->h, err);
}

static int fingerprint_serial(const char *root, ocil_hasher *h, const ocil_cancel *cancel,
			      ocil_error **err)
{
	struct stat st;
	if (lstat(root, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", root);
	ocil_walk_fold_stat(h, &st);
	ocil_walk_opts o = {.fn = fingerprint_entry, .ud = h, .cancel = cancel};
	return ocil_walk(root, &o, err);
}

typedef struct {
	const ocil_strv *units;
	char (*digests)[OCIL_DIGEST_STR_SIZE];
	ocil_error **errs;
	size_t next;
	const ocil_cancel *cancel;
} fp_pool;

static void *fp_worker(void *arg)
{
	fp_pool *p = arg;
	for (;;) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		if (i >= p->units->n)
			return NULL;
		ocil_hasher *h = ocil_hasher_new();
		if (fingerprint_serial(p->units->v[i], h, p->cancel, &p->errs[i]) < 0)
			__atomic_store_n(&p->next, p->units->n, __ATOMIC_RELAXED);
		ocil_hasher_final(h, p->digests[i]);
		ocil_hasher_free(h);
	}
}

static unsigned fp_threads(size_t units)
{
	cpu_set_t set;
	long n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	return units < (size_t)n ? (unsigned)units : n < 1 ? 1 : (unsigned)n;
}

int ocil_walk_fingerprint(const char *root, ocil_hasher *h, const ocil_cancel *cancel,
			  ocil_error **err)
{
	struct stat st;
	if (stat(root, &st) < 0)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s", root);
	ocil_walk_fold_stat(h, &st);
	cleanup_strv ocil_strv units = {0};
	fp_ctx c = {.h = h};
	ocil_walk_opts o = {.fn = fp_entry, .skip = fp_split, .ud = &c, .cancel = cancel};
	int r = ocil_walk(root, &o, err);
	units = c.units;
	if (r < 0 || units.n == 0)
		return r;
	fp_pool p = {.units = &units, .cancel = cancel};
	p.digests = ocil_xcalloc(units.n, sizeof(*p.digests));
	p.errs = ocil_xcalloc(units.n, sizeof(*p.errs));
	unsigned n = fp_threads(units.n);
	pthread_t *tids = ocil_xcalloc(n, sizeof(*tids));
	unsigned started = 0;
	/* workers take no signals: they stay with the caller's thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; started + 1 < n; started++)
		if (pthread_create(&tids[started], NULL, fp_worker, &p) != 0)
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	fp_worker(&p);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	for (size_t i = 0; i < units.n; i++) {
		if (r == 0 && p.errs[i] != NULL) {
			*err = steal_pointer(&p.errs[i]);
			r = -1;
		}
		ocil_error_free(p.errs[i]);
		ocil_hasher_update(h, p.digests[i], strlen(p.digests[i]) + 1);
	}
	free(p.digests);
	free(p.errs);
	return r;
}
