#include "code.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "walk.h"

typedef struct {
	ocil_layer_writer *w;
	const char *dest;
	const ocil_cancel *cancel;
} code_ctx;

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
	if (S_ISDIR(m))
		return ocil_layer_writer_add_dir(c->w, path, ocil_layer_file_mode(m), err);
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

int ocil_code_write_layer(const char *dir, const char *dest, const ocil_cancel *cancel,
			  ocil_layer_writer *w, ocil_error **err)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		return ocil_error_set_errno(err, errno == EACCES ? OCIL_E_IO : OCIL_E_INPUT, errno,
					    "code directory %s", dir);
	if (!S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "code directory %s: not a directory", dir);
	if (ocil_layer_writer_add_parents(w, dest, err) < 0 ||
	    ocil_layer_writer_add_dir(w, dest, 0755, err) < 0)
		return -1;
	code_ctx c = {.w = w, .dest = dest, .cancel = cancel};
	ocil_walk_opts o = {.fn = code_entry, .skip = code_skip, .ud = &c, .cancel = cancel};
	return ocil_walk(dir, &o, err);
}
