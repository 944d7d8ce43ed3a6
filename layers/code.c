#include "layers/code.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/walk.h"
#include "oci/layer_cache.h"

typedef struct {
	ocil_layer_writer *w;
	const char *dest;
	const char *bytecode; /* compiled pycs, by image path, or NULL */
	const ocil_cancel *cancel;
	ocil_strv *sources; /* ocil_code_sources: collect instead of writing */
} code_ctx;

/* The compiled __pycache__ of the image directory dir, after it. */
static int add_pycache(code_ctx *c, const char *dir, ocil_error **err)
{
	if (c->bytecode == NULL)
		return 0;
	cleanup_free char *host = ocil_xasprintf("%s%s/__pycache__", c->bytecode, dir);
	DIR *d = opendir(host);
	if (d == NULL)
		return errno == ENOENT ? 0
				       : ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", host);
	cleanup_strv ocil_strv names = {0};
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		if (ocil_str_has_suffix(de->d_name, ".pyc") && de->d_name[0] != '.')
			ocil_strv_push(&names, ocil_xstrdup(de->d_name));
	closedir(d);
	ocil_strv_sort(&names);
	cleanup_free char *cache = ocil_xasprintf("%s/__pycache__", dir);
	if (ocil_layer_writer_add_dir(c->w, cache, 0755, err) < 0)
		return -1;
	for (size_t i = 0; i < names.n; i++) {
		cleanup_free char *from = ocil_xasprintf("%s/%s", host, names.v[i]);
		cleanup_free char *to = ocil_xasprintf("%s/%s", cache, names.v[i]);
		cleanup_close int fd = open(from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0)
			return ocil_error_set_errno(err, OCIL_E_IO, errno, "%s", from);
		if (ocil_layer_writer_add_fd(c->w, to, 0644, fd, (uint64_t)st.st_size, from,
					     c->cancel, err) < 0)
			return -1;
	}
	return 0;
}

static bool code_skip(const ocil_walk_entry *e, void *ud)
{
	if (strcmp(e->name, ".git") == 0) /* a dir, or a worktree's .git file */
		return true;
	if (S_ISDIR(e->st->st_mode))
		return strcmp(e->name, "__pycache__") == 0;
	return ocil_str_has_suffix(e->name, ".pyc");
}

static int code_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	code_ctx *c = ud;
	cleanup_free char *path = ocil_xasprintf("%s/%s", c->dest, e->rel);
	mode_t m = e->st->st_mode;
	if (c->sources != NULL) {
		if (S_ISREG(m) && ocil_str_has_suffix(e->name, ".py"))
			ocil_strv_push(c->sources, steal_pointer(&path));
		return 0;
	}
	if (S_ISDIR(m))
		return ocil_layer_writer_add_dir(c->w, path, ocil_layer_file_mode(m), err) < 0
			   ? -1
			   : add_pycache(c, path, err);
	if (S_ISLNK(m)) {
		cleanup_free char *target = NULL;
		if (ocil_walk_readlink(e, &target, err) < 0)
			return -1;
		return ocil_layer_writer_add_symlink(c->w, path, target, err);
	}
	if (S_ISREG(m)) {
		cleanup_close int fd = -1;
		if (ocil_walk_open(e, &fd, err) < 0)
			return -1;
		return ocil_layer_writer_add_fd(c->w, path, ocil_layer_file_mode(m), fd,
						(uint64_t)e->st->st_size, e->path, c->cancel, err);
	}
	return ocil_error_set(err, OCIL_E_INPUT, "%s: a %s can not go into an image layer", e->path,
			      ocil_walk_kind(m));
}

static int check_dir(const char *dir, ocil_error **err)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return ocil_error_set_errno(err, errno == EACCES ? OCIL_E_IO : OCIL_E_INPUT, errno,
					    "code directory %s", dir);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "code directory %s: not a directory", dir);
	return 0;
}

int ocil_code_sources(const char *dir, const char *dest, ocil_strv *out, ocil_error **err)
{
	if (check_dir(dir, err) < 0)
		return -1;
	code_ctx c = {.dest = dest, .sources = out};
	ocil_walk_opts o = {.fn = code_entry, .skip = code_skip, .ud = &c};
	return ocil_walk(dir, &o, err);
}

int ocil_code_write_layer(const char *dir, const char *dest, const ocil_cancel *cancel,
			  ocil_layer_writer *w, ocil_error **err)
{
	return ocil_code_write_layer_bytecode(dir, dest, NULL, cancel, w, err);
}

int ocil_code_write_layer_bytecode(const char *dir, const char *dest, const char *bytecode_dir,
				   const ocil_cancel *cancel, ocil_layer_writer *w,
				   ocil_error **err)
{
	if (check_dir(dir, err) < 0)
		return -1;
	code_ctx c = {.w = w, .dest = dest, .bytecode = bytecode_dir, .cancel = cancel};
	if (ocil_layer_writer_add_parents(w, dest, err) < 0 ||
	    ocil_layer_writer_add_dir(w, dest, 0755, err) < 0 || add_pycache(&c, dest, err) < 0)
		return -1;
	ocil_walk_opts o = {.fn = code_entry, .skip = code_skip, .ud = &c, .cancel = cancel};
	return ocil_walk(dir, &o, err);
}

/* ---- a key of the code's contents (issue 17) ---- */

static int fold_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	ocil_hasher *h = ud;
	mode_t m = e->st->st_mode;
	ocil_layer_cache_key_str(h, e->rel);
	if (S_ISDIR(m)) {
		ocil_layer_cache_key_str(h, "dir");
		return 0;
	}
	if (S_ISLNK(m)) {
		cleanup_free char *target = NULL;
		if (ocil_walk_readlink(e, &target, err) < 0)
			return -1;
		ocil_layer_cache_key_str(h, "link");
		ocil_layer_cache_key_str(h, target);
		return 0;
	}
	if (!S_ISREG(m))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: a %s can not go into an image layer",
				      e->path, ocil_walk_kind(m));
	cleanup_close int fd = -1;
	if (ocil_walk_open(e, &fd, err) < 0)
		return -1;
	ocil_hasher *fh = ocil_hasher_new();
	unsigned char buf[65536];
	int r = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = ocil_error_set_errno(err, OCIL_E_IO, errno, "reading %s", e->path);
			break;
		}
		if (n == 0)
			break;
		ocil_hasher_update(fh, buf, (size_t)n);
	}
	char d[OCIL_DIGEST_STR_SIZE];
	ocil_hasher_final(fh, d);
	ocil_hasher_free(fh);
	ocil_layer_cache_key_str(h, "file");
	ocil_layer_cache_key_int(h, (m & 0111) != 0);
	ocil_layer_cache_key_str(h, d);
	return r;
}

int ocil_code_fold(const char *dir, ocil_hasher *h, const ocil_cancel *cancel, ocil_error **err)
{
	if (check_dir(dir, err) < 0)
		return -1;
	ocil_walk_opts o = {.fn = fold_entry, .skip = code_skip, .ud = h, .cancel = cancel};
	return ocil_walk(dir, &o, err);
}
