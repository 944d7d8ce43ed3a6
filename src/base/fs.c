/* Files: whole reads and writes, atomic replacement, flock-guarded
 * temporaries and staging directories and their sweeps, rm -rf, mkdir -p. */
#include "base/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "base/alloc.h"

int ocil_read_fd(int fd, const char *what, size_t max, char **out, size_t *len, ocil_error **err)
{
	size_t cap = 4096, n = 0;
	cleanup_free char *buf = ocil_xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap > max)
				break;
			cap *= 2;
			buf = ocil_xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", what);
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "%s: larger than the limit of %zu bytes", what, max);
	}
	if (n > max)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: larger than the limit of %zu bytes",
				      what, max);
	buf[n] = '\0';
	*out = steal_pointer(&buf);
	if (len != NULL)
		*len = n;
	return 0;
}

int ocil_read_file(const char *path, size_t max, char **out, size_t *len, ocil_error **err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ocil_error_set_errno(err, errno == ENOENT ? OCIL_E_INPUT : OCIL_E_IO, errno,
					    "%s", path);
	return ocil_read_fd(fd, path, max, out, len, err);
}

int ocil_write_all(int fd, const void *buf, size_t len, const char *what, ocil_error **err)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "writing %s", what);
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

#define TMPFILE_PREFIX ".tmp-"

/* After creating a temporary, lock it: 0 when it is ours (locked, or the
 * file system has no flock, where no sweep can lock it either), 1 when a
 * sweep by another process took it between creation and flock (it holds
 * the lock, or has unlinked it already): try another name. */
static int lock_new(int fd)
{
	struct stat st;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK || errno == EINTR ? 1 : 0;
	return fstat(fd, &st) == 0 && st.st_nlink == 0 ? 1 : 0;
}

#define LOCK_TRIES 100

/* mkostemp of prefix + "XXXXXX" with an exclusive flock on the result.
 * Never hands out an unlocked file that a sweep could take for dead: after
 * LOCK_TRIES lost races it fails (EAGAIN). */
static int create_locked(const char *prefix, char **path)
{
	for (int tries = 0; tries < LOCK_TRIES; tries++) {
		char *p = ocil_xasprintf("%sXXXXXX", prefix);
		int fd = mkostemp(p, O_CLOEXEC);
		if (fd < 0) {
			free(p);
			return -1;
		}
		if (lock_new(fd) == 0) {
			*path = p;
			return fd;
		}
		close(fd); /* the sweep that took it removes it */
		free(p);
	}
	errno = EAGAIN;
	return -1;
}

/* create_locked of base + sep + TMPFILE_PREFIX, with "creating a temporary
 * file <how> base" as the error. */
static int tmpfile_create(const char *base, const char *sep, const char *how, char **path,
			  ocil_error **err)
{
	cleanup_free char *prefix = ocil_xasprintf("%s%s" TMPFILE_PREFIX, base, sep);
	int fd = create_locked(prefix, path);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno,
					    "creating a temporary file %s %s", how, base);
	return fd;
}

int ocil_tmpfile_create_for(const char *path, char **tmp, ocil_error **err)
{
	return tmpfile_create(path, "", "for", tmp, err);
}

int ocil_write_file_atomic(const char *path, const void *buf, size_t len, ocil_error **err)
{
	/* flocked until renamed, so that ocil_tmpfile_sweep can tell a
	 * temporary left by a killed process from one being written */
	cleanup_free char *tmp = NULL;
	cleanup_close int fd = ocil_tmpfile_create_for(path, &tmp, err);
	if (fd < 0)
		return -1;
	if (fchmod(fd, 0644) < 0 || ocil_write_all(fd, buf, len, tmp, err) < 0 || fsync(fd) < 0 ||
	    rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		if (err != NULL && *err != NULL)
			return -1;
		return ocil_error_set_errno(err, OCIL_E_IO, e, "writing %s", path);
	}
	return 0;
}

int ocil_tmpfile_create(const char *dir, char **path, ocil_error **err)
{
	return tmpfile_create(dir, "/", "in", path, err);
}

/* Whether name in dir is still the file fd has open: another sweep may
 * have removed the dead one since we opened it, and a new temporary taken
 * its name. */
static bool same_file(int dir, const char *name, int fd)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && a.st_nlink > 0 &&
	       fstatat(dir, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

/* Unlink the temporaries in dir whose lock can be taken: those of name
 * ("<name>.tmp-XXXXXX"), or when name is NULL any ".tmp-XXXXXX" and
 * "<anything>.tmp-XXXXXX". */
static void tmpfile_sweep(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	size_t tail = strlen(TMPFILE_PREFIX) + 6, nlen = name ? strlen(name) : 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < tail || strncmp(de->d_name + n - tail, TMPFILE_PREFIX, tail - 6) != 0)
			continue;
		if (name != NULL && (n != nlen + tail || strncmp(de->d_name, name, nlen) != 0))
			continue;
		int fd =
		    openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && same_file(dirfd(d), de->d_name, fd))
			unlinkat(dirfd(d), de->d_name, 0);
		close(fd);
	}
	closedir(d);
}

void ocil_tmpfile_sweep(const char *dir)
{
	tmpfile_sweep(dir, NULL);
}

void ocil_tmpfile_sweep_for(const char *path)
{
	cleanup_free char *d = ocil_xstrdup(path), *b = ocil_xstrdup(path);
	tmpfile_sweep(dirname(d), basename(b));
}

/* mkdtemp of parent/prefix + "XXXXXX", flocked as create_locked does; what
 * names it in errors. */
static int lockdir_create(const char *parent, const char *prefix, const char *what, char **path,
			  ocil_error **err)
{
	for (int tries = 0; tries < LOCK_TRIES; tries++) {
		char *p = ocil_xasprintf("%s/%sXXXXXX", parent, prefix);
		if (mkdtemp(p) == NULL) {
			int e = errno;
			free(p);
			return ocil_error_set_errno(err, OCIL_E_IO, e, "creating a %s in %s", what,
						    parent);
		}
		int fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			/* a sweep by another process took it, unlocked, between
			 * mkdtemp and open, and removed it: try another name */
			free(p);
			continue;
		}
		if (fd < 0) {
			/* not taken by a sweep (that needs the lock): ours to remove */
			int e = errno;
			rmdir(p);
			free(p);
			return ocil_error_set_errno(err, OCIL_E_IO, e, "opening a %s in %s", what,
						    parent);
		}
		if (lock_new(fd) == 0) {
			*path = p;
			return fd;
		}
		close(fd); /* the sweep that took it removes it */
		free(p);
	}
	return ocil_error_set_errno(err, OCIL_E_IO, EAGAIN, "creating a %s in %s", what, parent);
}

/* Remove the directories parent/prefix + 6 characters that are ours and
 * whose lock can be taken. */
static void lockdir_sweep(const char *parent, const char *prefix)
{
	DIR *d = opendir(parent);
	if (d == NULL)
		return;
	size_t plen = strlen(prefix);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0 || strlen(de->d_name) != plen + 6)
			continue;
		int fd =
		    openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		/* in a shared $TMPDIR, another user's directory is not ours */
		if (fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
		    flock(fd, LOCK_EX | LOCK_NB) == 0 && same_file(dirfd(d), de->d_name, fd)) {
			cleanup_free char *path = ocil_xasprintf("%s/%s", parent, de->d_name);
			ocil_error *e = NULL;
			ocil_remove_tree(path, &e);
			ocil_error_free(e);
		}
		close(fd);
	}
	closedir(d);
}

int ocil_staging_create(const char *parent, const char *name, char **path, ocil_error **err)
{
	cleanup_free char *prefix = ocil_xasprintf(".%s.ocilambda-", name);
	lockdir_sweep(parent, prefix); /* left by builds that were killed */
	return lockdir_create(parent, prefix, "staging directory", path, err);
}

void ocil_staging_sweep(const char *parent, const char *name)
{
	cleanup_free char *prefix = ocil_xasprintf(".%s.ocilambda-", name);
	lockdir_sweep(parent, prefix);
}

int ocil_tmpdir_create(const char *parent, const char *name, ocil_tmpdir *t, ocil_error **err)
{
	const char *env = getenv("TMPDIR");
	if (parent == NULL)
		parent = env != NULL && env[0] != '\0' ? env : "/tmp";
	cleanup_free char *prefix = ocil_xasprintf("ocilambda-%s.", name);
	lockdir_sweep(parent, prefix); /* left by runs that were killed */
	t->path = NULL;
	t->fd = lockdir_create(parent, prefix, "temporary directory", &t->path, err);
	return t->fd < 0 ? -1 : 0;
}

void ocil_tmpdir_remove(ocil_tmpdir *t)
{
	if (t->path == NULL)
		return;
	ocil_error *e = NULL;
	ocil_remove_tree(t->path, &e);
	ocil_error_free(e);
	free(t->path);
	t->path = NULL;
	close(t->fd); /* the lock, after the tree: no sweep races the removal */
	t->fd = -1;
}

/* A directory we may not read or change (a tree unpacked rootless keeps
 * its modes, 0555 and all): as its owner, make it ours to empty first. */
static int open_dir_to_empty(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		int p = openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (p < 0)
			return -1;
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", p);
		int r = chmod(proc, 0700);
		close(p);
		if (r < 0) {
			errno = EACCES;
			return -1;
		}
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & S_IRWXU) != S_IRWXU)
		(void)fchmod(fd, (st.st_mode & 07777) | S_IRWXU);
	return fd;
}

int ocil_remove_at(int parent, const char *name, ocil_error **err)
{
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "removing %s", name);
	int fd = open_dir_to_empty(parent, name);
	if (fd < 0)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", name);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "opening %s", name);
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = ocil_remove_at(dirfd(d), de->d_name, err);
	}
	closedir(d);
	if (r < 0)
		return ocil_error_wrap(err, "%s", name);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "removing %s", name);
	return 0;
}

int ocil_remove_tree(const char *path, ocil_error **err)
{
	return ocil_remove_at(AT_FDCWD, path, err);
}

int ocil_mkdir_p(const char *path, int mode, ocil_error **err)
{
	cleanup_free char *p = ocil_xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "creating %s", p);
		*s = '/';
	}
	if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
		return ocil_error_set_errno(err, OCIL_E_IO, errno, "creating %s", p);
	return 0;
}
