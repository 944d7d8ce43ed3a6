/* unpack: layers onto a directory, one path component at a time, never
 * following a symlink. */
#include "oci/unpack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "oci/tarstream.h"

/* What the walk does with a component that is missing or not a directory. */
typedef enum {
	WALK_FIND,	     /* nothing: the path is not there */
	WALK_CREATE,	     /* make directories, replacing non-directories */
	WALK_CREATE_MISSING, /* make missing directories; stop at anything else */
} walk_mode;

/* Final mode and mtime of a directory, applied when all layers are in. */
typedef struct {
	char *path;
	size_t seq;
	mode_t mode;
	struct timespec mtime;
} dir_meta;

typedef struct {
	int root;
	const ocil_unpack_opts *o;
	const char *what; /* the layer, for errors */
	dir_meta *dirs;
	size_t n_dirs, cap_dirs;
	/* paths the current layer has put (and their ancestors): an opaque
	 * marker or a whiteout never removes those */
	ocil_strmap mine;
	uint64_t special;
	char first_special[OCIL_TAR_QUOTE_SIZE];
} unpacker;

/* Modes while extracting: the owner can always add and remove entries. */
#define DIR_WORK_MODE(m) (((m)&0777) | S_IRWXU)
/* Kept bits: permissions and the sticky bit; never setuid/setgid. */
#define KEEP_DIR(m) ((m)&01777)
#define KEEP_FILE(m) ((m)&0777)

static int io_fail(const unpacker *u, ocil_error **err, int e, const char *path, const char *doing)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	return ocil_error_set_errno(err, OCIL_E_IO, e, "%s: entry \"%s\": %s", u->what,
				    ocil_tar_quote(path, q), doing);
}

/* Open the directory that holds path's last component, walking from the
 * root. Returns 1 with *fd (the caller closes it) and *leaf pointing into
 * path, 0 when the walk stops (WALK_FIND: a component is missing or not a
 * directory; WALK_CREATE_MISSING: it is not a directory), -1 on error.
 * path is normalized ("/a/b"), not "/". */
static int walk_parent(int root, const char *path, walk_mode mode, int *fd, const char **leaf,
		       ocil_error **err)
{
	int cur = fcntl(root, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "dup");
	const char *p = path + 1;
	char comp[OCIL_TAR_COMPONENT_MAX + 1];
	for (;;) {
		const char *slash = strchr(p, '/');
		if (slash == NULL)
			break;
		size_t n = (size_t)(slash - p);
		if (n == 0 || n > OCIL_TAR_COMPONENT_MAX) {
			close(cur);
			return ocil_error_set(err, OCIL_E_INPUT, "bad path component in %s", path);
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && mode != WALK_FIND) {
			int e = errno;
			bool missing = e == ENOENT;
			bool other = e == ENOTDIR || e == ELOOP;
			if (!missing && !other) {
				close(cur);
				return ocil_error_set_errno(err, OCIL_E_IO, e, "opening %.*s",
							    (int)(slash - path), path);
			}
			if (other && mode == WALK_CREATE_MISSING) {
				close(cur);
				return 0;
			}
			if (other && unlinkat(cur, comp, 0) < 0 && errno != ENOENT) {
				e = errno;
				close(cur);
				return ocil_error_set_errno(err, OCIL_E_IO, e, "replacing %.*s",
							    (int)(slash - path), path);
			}
			if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
				e = errno;
				close(cur);
				return ocil_error_set_errno(err, OCIL_E_IO, e, "creating %.*s",
							    (int)(slash - path), path);
			}
			next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (next < 0) {
			int e = errno;
			close(cur);
			if (mode == WALK_FIND && (e == ENOENT || e == ENOTDIR || e == ELOOP))
				return 0;
			return ocil_error_set_errno(err, OCIL_E_IO, e, "opening %.*s",
						    (int)(slash - path), path);
		}
		close(cur);
		cur = next;
		p = slash + 1;
	}
	*fd = cur;
	*leaf = p;
	return 1;
}

static void mark_mine(unpacker *u, const char *path)
{
	/* the path and every ancestor up to the root */
	cleanup_free char *p = ocil_xstrdup(path);
	for (;;) {
		if (ocil_strmap_get(&u->mine, p, NULL))
			return; /* its ancestors are in too */
		ocil_strmap_put(&u->mine, p, 1);
		char *slash = strrchr(p, '/');
		if (slash == NULL || slash == p)
			return;
		*slash = '\0';
	}
}

static void remember_dir(unpacker *u, const char *path, const ocil_tar_entry *e)
{
	if (u->n_dirs == u->cap_dirs) {
		u->cap_dirs = u->cap_dirs ? u->cap_dirs * 2 : 64;
		u->dirs = ocil_xrealloc(u->dirs, u->cap_dirs * sizeof(*u->dirs));
	}
	dir_meta *d = &u->dirs[u->n_dirs];
	d->path = ocil_xstrdup(path);
	d->seq = u->n_dirs++;
	d->mode = KEEP_DIR(e->mode);
	d->mtime.tv_sec = (time_t)e->mtime;
	d->mtime.tv_nsec = e->mtime_nsec;
}

/* Remove what lower layers put below the directory dfd (at dpath), keeping
 * the current layer's entries; a directory of this layer is cleared the
 * same way, as its lower contents are below the opaque directory too. */
static int clear_lower(unpacker *u, int dfd, const char *dpath, ocil_error **err)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", dpath);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", dpath);
	}
	ocil_strv names = {0};
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			ocil_strv_push(&names, ocil_xstrdup(de->d_name));
	closedir(d);
	int r = 0;
	for (size_t i = 0; r == 0 && i < names.n; i++) {
		cleanup_free char *child =
		    ocil_xasprintf("%s/%s", strcmp(dpath, "/") == 0 ? "" : dpath, names.v[i]);
		if (!ocil_strmap_get(&u->mine, child, NULL)) {
			r = ocil_remove_at(dfd, names.v[i], err);
			continue;
		}
		int cfd = openat(dfd, names.v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0)
			continue; /* this layer's file or symlink */
		r = clear_lower(u, cfd, child, err);
		close(cfd);
	}
	ocil_strv_clear(&names);
	return r;
}

static int whiteout(unpacker *u, const ocil_tar_entry *e, const char *name, ocil_error **err)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	const char *target = name + strlen(".wh.");
	bool opaque = strcmp(name, ".wh..wh..opq") == 0;
	if (!opaque && ocil_str_has_prefix(name, ".wh..wh."))
		return 0; /* AUFS metadata */
	if (!opaque && (target[0] == '\0' || strcmp(target, ".") == 0 || strcmp(target, "..") == 0))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: entry \"%s\": bad whiteout", u->what,
				      ocil_tar_quote(e->path, q));
	/* the directory the marker is in */
	size_t dlen = (size_t)(name - e->path) - 1;
	cleanup_free char *dpath = dlen == 0 ? ocil_xstrdup("/") : ocil_xstrndup(e->path, dlen);
	cleanup_close int dfd = -1;
	if (dlen == 0) {
		dfd = fcntl(u->root, F_DUPFD_CLOEXEC, 0);
		if (dfd < 0)
			return io_fail(u, err, errno, e->path, "dup");
	} else {
		/* the directory itself, as the last component of dpath/x */
		cleanup_free char *probe = ocil_xasprintf("%s/x", dpath);
		const char *leaf;
		int r =
		    walk_parent(u->root, probe, opaque ? WALK_CREATE : WALK_FIND, &dfd, &leaf, err);
		if (r <= 0)
			return r;
	}
	if (opaque) {
		mark_mine(u, dpath);
		return clear_lower(u, dfd, dpath, err);
	}
	cleanup_free char *victim =
	    ocil_xasprintf("%s/%s", strcmp(dpath, "/") == 0 ? "" : dpath, target);
	if (ocil_strmap_get(&u->mine, victim, NULL))
		return 0; /* lower layers only */
	return ocil_remove_at(dfd, target, err);
}

/* Remove whatever is at leaf, unless keep_dir and it is a directory
 * (returns 1 then). */
static int clear_leaf(unpacker *u, int pfd, const char *leaf, bool keep_dir, const char *path,
		      ocil_error **err)
{
	struct stat st;
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return io_fail(u, err, errno, path, "stat");
	}
	if (keep_dir && S_ISDIR(st.st_mode))
		return 1;
	if (ocil_remove_at(pfd, leaf, err) < 0)
		return ocil_error_wrap(err, "%s", u->what);
	return 0;
}

static int write_file(unpacker *u, ocil_tarstream *ts, int pfd, const char *leaf,
		      const ocil_tar_entry *e, ocil_error **err)
{
	cleanup_close int fd =
	    openat(pfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_fail(u, err, errno, e->path, "creating");
	char buf[1 << 16];
	uint64_t left = e->size;
	while (left > 0) {
		ssize_t n = ocil_tarstream_read(ts, buf, sizeof(buf), err);
		if (n < 0)
			return -1;
		if (n == 0)
			return ocil_error_set(err, OCIL_E_INPUT, "%s: entry: truncated data",
					      u->what);
		if (ocil_write_all(fd, buf, (size_t)n, e->path, err) < 0)
			return ocil_error_wrap(err, "%s", u->what);
		left -= (uint64_t)n;
	}
	struct timespec t[2] = {{.tv_sec = (time_t)e->mtime, .tv_nsec = e->mtime_nsec},
				{.tv_sec = (time_t)e->mtime, .tv_nsec = e->mtime_nsec}};
	if (fchmod(fd, KEEP_FILE(e->mode)) < 0 || futimens(fd, t) < 0)
		return io_fail(u, err, errno, e->path, "setting mode and mtime");
	return 0;
}

static int hardlink(unpacker *u, int pfd, const char *leaf, const ocil_tar_entry *e,
		    ocil_error **err)
{
	char q[OCIL_TAR_QUOTE_SIZE];
	cleanup_close int tfd = -1;
	const char *tleaf;
	int r = walk_parent(u->root, e->link, WALK_FIND, &tfd, &tleaf, err);
	if (r < 0)
		return -1;
	struct stat st;
	if (r == 0 || fstatat(tfd, tleaf, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: entry \"%s\": hardlink to %s, which is not an earlier "
				      "file",
				      u->what, ocil_tar_quote(e->path, q), e->link);
	if (linkat(tfd, tleaf, pfd, leaf, 0) < 0)
		return io_fail(u, err, errno, e->path, "linking");
	return 0;
}

static int apply_entry(unpacker *u, ocil_tarstream *ts, const ocil_tar_entry *e, ocil_error **err)
{
	if (strcmp(e->path, "/") == 0)
		return 0; /* the root keeps 0755 */
	const char *name = strrchr(e->path, '/') + 1;
	if (ocil_str_has_prefix(name, ".wh."))
		return whiteout(u, e, name, err);
	if (e->type == OCIL_TAR_OTHER) {
		if (u->special++ == 0)
			ocil_tar_quote(e->path, u->first_special);
		return 0;
	}
	mark_mine(u, e->path);
	/* a hardlink names an earlier entry: find it before anything moves */
	cleanup_close int pfd = -1;
	const char *leaf;
	if (walk_parent(u->root, e->path, WALK_CREATE, &pfd, &leaf, err) < 0)
		return ocil_error_wrap(err, "%s", u->what);
	int kept = clear_leaf(u, pfd, leaf, e->type == OCIL_TAR_DIR, e->path, err);
	if (kept < 0)
		return -1;
	switch (e->type) {
	case OCIL_TAR_DIR:
		if (kept == 0 && mkdirat(pfd, leaf, 0700) < 0)
			return io_fail(u, err, errno, e->path, "creating");
		if (fchmodat(pfd, leaf, DIR_WORK_MODE(e->mode), 0) < 0)
			return io_fail(u, err, errno, e->path, "chmod");
		remember_dir(u, e->path, e);
		return 0;
	case OCIL_TAR_FILE:
		return write_file(u, ts, pfd, leaf, e, err);
	case OCIL_TAR_SYMLINK: {
		if (symlinkat(e->link, pfd, leaf) < 0)
			return io_fail(u, err, errno, e->path, "creating symlink");
		struct timespec t[2] = {{.tv_sec = (time_t)e->mtime, .tv_nsec = e->mtime_nsec},
					{.tv_sec = (time_t)e->mtime, .tv_nsec = e->mtime_nsec}};
		(void)utimensat(pfd, leaf, t, AT_SYMLINK_NOFOLLOW);
		return 0;
	}
	case OCIL_TAR_HARDLINK:
		return hardlink(u, pfd, leaf, e, err);
	case OCIL_TAR_OTHER:
		break;
	}
	return 0;
}

static int apply_layer(unpacker *u, const char *path, ocil_error **err)
{
	cleanup_tarstream ocil_tarstream *ts = NULL;
	if (ocil_tarstream_open_path(path, u->what, &ts, err) < 0)
		return -1;
	for (;;) {
		if (ocil_cancel_check(u->o->cancel, err) < 0)
			return -1;
		const ocil_tar_entry *e = NULL;
		int r = ocil_tarstream_next(ts, &e, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		if (apply_entry(u, ts, e, err) < 0)
			return -1;
	}
}

static int cmp_meta_path(const void *a, const void *b)
{
	const dir_meta *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (c != 0)
		return c;
	return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0; /* newest first */
}

static size_t depth(const char *p)
{
	size_t n = 0;
	for (; *p; p++)
		n += *p == '/';
	return n;
}

static int cmp_meta_depth(const void *a, const void *b)
{
	size_t x = depth(((const dir_meta *)a)->path), y = depth(((const dir_meta *)b)->path);
	return x < y ? 1 : x > y ? -1 : 0; /* deepest first */
}

/* The directories' own modes and mtimes, deepest first (a parent's mtime
 * would move with each child made, and 0555 parents stay traversable). */
static int finish_dirs(unpacker *u, ocil_error **err)
{
	if (u->n_dirs == 0)
		return 0;
	qsort(u->dirs, u->n_dirs, sizeof(*u->dirs), cmp_meta_path);
	size_t k = 0;
	for (size_t i = 0; i < u->n_dirs; i++) {
		if (k > 0 && strcmp(u->dirs[k - 1].path, u->dirs[i].path) == 0) {
			free(u->dirs[i].path);
			continue;
		}
		u->dirs[k++] = u->dirs[i];
	}
	u->n_dirs = k;
	qsort(u->dirs, u->n_dirs, sizeof(*u->dirs), cmp_meta_depth);
	for (size_t i = 0; i < u->n_dirs; i++) {
		const dir_meta *d = &u->dirs[i];
		cleanup_close int pfd = -1;
		const char *leaf;
		int r = walk_parent(u->root, d->path, WALK_FIND, &pfd, &leaf, err);
		if (r < 0)
			return -1;
		if (r == 0)
			continue; /* removed or replaced by a later layer */
		cleanup_close int fd =
		    openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct timespec t[2] = {d->mtime, d->mtime};
		if (fchmod(fd, d->mode) < 0 || futimens(fd, t) < 0)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "setting mode of %s",
						    d->path);
	}
	return 0;
}

static void unpacker_clear(unpacker *u)
{
	for (size_t i = 0; i < u->n_dirs; i++)
		free(u->dirs[i].path);
	free(u->dirs);
	ocil_strmap_clear(&u->mine);
}

int ocil_unpack_layers(int root_fd, const char *const *layer_paths, size_t n,
		       const ocil_unpack_opts *o, ocil_error **err)
{
	unpacker u = {.root = root_fd, .o = o};
	int r = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		cleanup_free char *what = ocil_xasprintf("layer %zu", i);
		u.what = what;
		u.special = 0;
		r = apply_layer(&u, layer_paths[i], err);
		ocil_strmap_clear(&u.mine);
		if (r == 0 && u.special > 0 && o->notice != NULL) {
			cleanup_free char *msg = ocil_xasprintf(
			    "layer %zu: skipped %llu device node%s, fifo%s or "
			    "socket%s (\"%s\"%s): a rootless unpack cannot make "
			    "them; the sandbox has its own /dev",
			    i, (unsigned long long)u.special, u.special == 1 ? "" : "s",
			    u.special == 1 ? "" : "s", u.special == 1 ? "" : "s", u.first_special,
			    u.special > 1 ? ", ..." : "");
			o->notice(o->data, msg);
		}
	}
	if (r == 0)
		r = finish_dirs(&u, err);
	if (r == 0 && fchmod(root_fd, 0755) < 0)
		r = ocil_error_set_errno(err, OCIL_E_IO, errno, "chmod of the root");
	unpacker_clear(&u);
	return r;
}

int ocil_unpack_mkdir(int root_fd, const char *path, mode_t mode, ocil_error **err)
{
	if (path[0] != '/' || strcmp(path, "/") == 0 || strstr(path, "/../") != NULL ||
	    ocil_str_has_suffix(path, "/.."))
		return 0;
	/* "/a//b/" -> "/a/b" (a WorkingDir is the image author's text) */
	cleanup_free char *p = ocil_xstrdup(path);
	size_t n = 0;
	for (const char *c = path; *c; c++)
		if (!(c[0] == '/' && c[1] == '/'))
			p[n++] = *c;
	p[n] = '\0';
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	cleanup_close int pfd = -1;
	const char *leaf;
	int r = walk_parent(root_fd, p, WALK_CREATE_MISSING, &pfd, &leaf, err);
	if (r <= 0)
		return r;
	if (leaf[0] == '\0' || strcmp(leaf, ".") == 0)
		return 0;
	if (mkdirat(pfd, leaf, 0700) < 0) {
		if (errno == EEXIST)
			return 0;
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "creating %s", p);
	}
	if (fchmodat(pfd, leaf, mode, 0) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "chmod of %s", p);
	return 0;
}

char *ocil_unpack_cache_path(const char *cache_dir, const char *digest)
{
	const char *hex = strchr(digest, ':');
	return ocil_xasprintf("%s/rootfs/%s", cache_dir, hex ? hex + 1 : digest);
}

#define TMP_PREFIX ".tmp-"

/* Under the lock, any temporary tree is a crashed run's. */
static int remove_stale(const char *dir, ocil_error **err)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", dir);
	ocil_strv names = {0};
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (ocil_str_has_prefix(de->d_name, TMP_PREFIX))
			ocil_strv_push(&names, ocil_xstrdup(de->d_name));
	int r = 0;
	for (size_t i = 0; r == 0 && i < names.n; i++)
		r = ocil_remove_at(dirfd(d), names.v[i], err);
	closedir(d);
	ocil_strv_clear(&names);
	return r;
}

static int fill(const char *tmp, const char *const *layer_paths, size_t n, const char *const *dirs,
		const ocil_unpack_opts *o, ocil_error **err)
{
	cleanup_close int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", tmp);
	if (ocil_unpack_layers(fd, layer_paths, n, o, err) < 0)
		return -1;
	for (size_t i = 0; dirs != NULL && dirs[i] != NULL; i++)
		if (ocil_unpack_mkdir(fd, dirs[i], strcmp(dirs[i], "/tmp") == 0 ? 01777 : 0755,
				      err) < 0)
			return -1;
	if (syncfs(fd) < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "syncing %s", tmp);
	return 0;
}

int ocil_unpack_cached(const char *cache_dir, const char *digest, const char *const *layer_paths,
		       size_t n, const char *const *dirs, const ocil_unpack_opts *o, bool *made,
		       ocil_error **err)
{
	*made = false;
	if (ocil_digest_check(digest, "image digest", err) < 0)
		return -1;
	cleanup_free char *dir = ocil_xasprintf("%s/rootfs", cache_dir);
	if (ocil_mkdir_p(dir, 0755, err) < 0)
		return -1;
	cleanup_free char *lock = ocil_xasprintf("%s/.lock", dir);
	cleanup_close int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", lock);
	while (flock(lfd, LOCK_EX) < 0) {
		if (errno != EINTR)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "locking %s", lock);
		if (ocil_cancel_check(o->cancel, err) < 0)
			return -1;
	}
	cleanup_free char *final = ocil_unpack_cache_path(cache_dir, digest);
	struct stat st;
	if (lstat(final, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (remove_stale(dir, err) < 0)
		return -1;
	cleanup_free char *tmp =
	    ocil_xasprintf("%s/" TMP_PREFIX "%s.XXXXXX", dir, ocil_digest_hex(digest));
	if (mkdtemp(tmp) == NULL)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "creating %s", tmp);
	if (fill(tmp, layer_paths, n, dirs, o, err) < 0 || rename(tmp, final) < 0) {
		if (err != NULL && *err == NULL)
			ocil_error_set_errno(err, OCIL_E_IO, errno, "renaming %s", tmp);
		ocil_error *e2 = NULL;
		ocil_remove_tree(tmp, &e2);
		ocil_error_free(e2);
		return -1;
	}
	*made = true;
	return 0;
}
