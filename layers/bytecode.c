/* Bytecode compiled by the image's own python (see bytecode.h). */
#include "layers/bytecode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "base/digest.h"
#include "base/walk.h"
#include "oci/unpack.h"
#include "run/sandbox.h"

/* Where the output directory is bound in the sandbox (under its /tmp). */
#define OUT_MOUNT "/tmp/ocilambda-bytecode"
/* Largest report the driver may print (one line a failed source). */
#define REPORT_MAX ((size_t)16 << 20)

/* Reads NUL-separated source paths on stdin, compiles each to
 * OUT + cache_from_source(path) (no optimization level: what python reads
 * by default), names the source in co_filename as the image has it, and
 * prints "E <path>\t<exception>" for a source that does not compile,
 * then "N <compiled> <failed>". Python 3.7+ (invalidation modes). */
static const char DRIVER[] =
    "import sys, os, py_compile, importlib.util\n"
    "out = sys.argv[1]\n"
    "mode = py_compile.PycInvalidationMode.UNCHECKED_HASH\n"
    "ok = bad = 0\n"
    "for raw in sys.stdin.buffer.read().split(b'\\0'):\n"
    "    if not raw:\n"
    "        continue\n"
    "    src = os.fsdecode(raw)\n"
    "    cfile = out + importlib.util.cache_from_source(src, optimization='')\n"
    "    try:\n"
    "        py_compile.compile(src, cfile=cfile, dfile=src, doraise=True,\n"
    "                           invalidation_mode=mode)\n"
    "        ok += 1\n"
    "    except Exception as e:\n"
    "        bad += 1\n"
    "        print('E %s\\t%s' % (src, type(e).__name__))\n"
    "print('N %d %d' % (ok, bad))\n";

const char *ocil_bytecode_driver(void)
{
	return DRIVER;
}

/* ---- what needs compiling ---- */

static int by_path(const void *a, const void *b)
{
	return strcmp(((const ocil_pyc_fact *const *)a)[0]->path,
		      ((const ocil_pyc_fact *const *)b)[0]->path);
}

static const ocil_pyc_fact *find(const ocil_pyc_fact **v, size_t n, const char *path)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid]->path, path);
		if (c == 0)
			return v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void ocil_bytecode_select(const ocil_pyc_facts *f, const char *dest, const char *minor,
			  ocil_strv *out)
{
	int m = ocil_pyc_minor(minor);
	if (m < 0)
		return;
	char tag[16];
	ocil_pyc_tag(m, tag, sizeof(tag));
	cleanup_free char *lib = ocil_xasprintf("%s/lib/python%s/", dest, minor);
	cleanup_free const ocil_pyc_fact **v = ocil_xcalloc(f->n + 1, sizeof(*v));
	for (size_t i = 0; i < f->n; i++)
		v[i] = &f->v[i];
	qsort(v, f->n, sizeof(*v), by_path);
	for (size_t i = 0; i < f->n; i++) {
		const ocil_pyc_fact *s = v[i];
		size_t n = strlen(s->path);
		if (s->pyc || !ocil_str_has_prefix(s->path, lib) || n < 4 ||
		    strcmp(s->path + n - 3, ".py") != 0)
			continue;
		const char *name = strrchr(s->path, '/') + 1;
		cleanup_free char *pyc =
		    ocil_xasprintf("%.*s__pycache__/%.*s.%s.pyc", (int)(name - s->path), s->path,
				   (int)(strlen(name) - 3), name, tag);
		const ocil_pyc_fact *p = find(v, f->n, pyc);
		ocil_pyc_header h;
		if (p != NULL)
			ocil_pyc_header_parse(p->head, p->head_len, &h);
		/* a checked-hash pyc is taken as valid: its source is in the
		 * same package, hashed when it was made */
		if (p == NULL || ocil_pyc_stale_reason(&h, m, s->mtime, s->size, NULL) != NULL)
			ocil_strv_push(out, ocil_xstrdup(s->path));
	}
}

/* ---- can it run here ---- */

static const char *oci_arch_of_machine(const char *m)
{
	if (strcmp(m, "x86_64") == 0)
		return "amd64";
	if (strcmp(m, "aarch64") == 0 || strcmp(m, "arm64") == 0)
		return "arm64";
	return m;
}

bool ocil_bytecode_runs_here(const char *arch, char **why)
{
	*why = NULL;
	struct utsname u;
	const char *host = uname(&u) == 0 ? oci_arch_of_machine(u.machine) : "?";
	if (arch == NULL || strcmp(arch, host) == 0)
		return true;
	/* binfmt_misc's entry for the arch, as qemu-user-static registers it */
	const char *qemu = strcmp(arch, "arm64") == 0	? "aarch64"
			   : strcmp(arch, "amd64") == 0 ? "x86_64"
							: arch;
	cleanup_free char *entry = ocil_xasprintf("/proc/sys/fs/binfmt_misc/qemu-%s", qemu);
	cleanup_free char *text = NULL;
	size_t len = 0;
	ocil_error *e = NULL;
	bool ok = ocil_read_file(entry, 65536, &text, &len, &e) == 0 &&
		  ocil_str_has_prefix(text, "enabled\n");
	ocil_error_free(e);
	const char *flags = ok ? strstr(text, "\nflags: ") : NULL;
	if (flags != NULL && strchr(flags + 8, 'F') != NULL &&
	    strchr(flags + 8, 'F') < strchrnul(flags + 8, '\n'))
		return true;
	*why =
	    ocil_xasprintf("%s programs do not run on this %s machine (%s)", arch, host,
			   ok ? "its binfmt_misc entry lacks the F flag, so the emulator cannot be "
				"found inside the sandbox"
			      : "no binfmt_misc emulator for it: e.g. qemu-user-static");
	return false;
}

/* ---- the tree ---- */

int ocil_bytecode_tree_make(const char *cache_dir, const char *const *layer_paths,
			    const char *const *digests, size_t n, const char *const *mounts,
			    const ocil_cancel *cancel, ocil_bytecode_tree *t, ocil_error **err)
{
	memset(t, 0, sizeof(*t));
	ocil_unpack_opts uo = {.cancel = cancel};
	if (cache_dir != NULL) {
		ocil_hasher *h = ocil_hasher_new();
		static const char kind[] = "ocilambda-bytecode-tree/1";
		ocil_hasher_update(h, kind, sizeof(kind));
		for (size_t i = 0; i < n; i++)
			ocil_hasher_update(h, digests[i], strlen(digests[i]) + 1);
		ocil_hasher_update(h, "", 1);
		for (size_t i = 0; mounts != NULL && mounts[i] != NULL; i++)
			ocil_hasher_update(h, mounts[i], strlen(mounts[i]) + 1);
		char key[OCIL_DIGEST_STR_SIZE];
		ocil_hasher_final(h, key);
		ocil_hasher_free(h);
		bool made = false;
		if (ocil_unpack_cached(cache_dir, key, layer_paths, n, mounts, &uo, &made, err) < 0)
			return -1;
		t->path = ocil_unpack_cache_path(cache_dir, key);
		return 0;
	}
	if (ocil_tmpdir_create(NULL, "pytree", &t->tmp, err) < 0)
		return -1;
	t->path = ocil_xasprintf("%s/root", t->tmp.path);
	cleanup_close int fd = -1;
	if (mkdir(t->path, 0755) < 0 ||
	    (fd = open(t->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		ocil_error_set_errno(err, OCIL_E_IO, errno, "creating %s", t->path);
		ocil_bytecode_tree_clear(t);
		return -1;
	}
	int r = ocil_unpack_layers(fd, layer_paths, n, &uo, err);
	for (size_t i = 0; r == 0 && mounts != NULL && mounts[i] != NULL; i++)
		r = ocil_unpack_mkdir(fd, mounts[i], 0755, err);
	if (r < 0)
		ocil_bytecode_tree_clear(t);
	return r;
}

void ocil_bytecode_tree_clear(ocil_bytecode_tree *t)
{
	if (t->tmp.path != NULL) {
		ocil_error *e = NULL;
		ocil_remove_tree(t->path, &e);
		ocil_error_free(e);
		ocil_tmpdir_remove(&t->tmp);
	}
	free(t->path);
	memset(t, 0, sizeof(*t));
}

/* ---- compiling ---- */

void ocil_bytecode_result_clear(ocil_bytecode_result *r)
{
	free(r->first_failed);
	memset(r, 0, sizeof(*r));
}

/* A file of the list (NUL-separated), unlinked, for the sandbox's stdin. */
static int list_fd(const ocil_strv *sources, const char *dir, ocil_error **err)
{
	cleanup_free char *path = NULL;
	int fd = ocil_tmpfile_create(dir, &path, err);
	if (fd < 0)
		return -1;
	unlink(path);
	for (size_t i = 0; i < sources->n; i++)
		if (ocil_write_all(fd, sources->v[i], strlen(sources->v[i]) + 1, path, err) < 0) {
			close(fd);
			return -1;
		}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		int e = errno;
		close(fd);
		return ocil_error_set_errno(err, OCIL_E_IO, e, "%s", path);
	}
	return fd;
}

/* The driver's last line "N ok bad", and the first "E" line. */
static int parse_report(const char *text, ocil_bytecode_result *res)
{
	bool done = false;
	for (const char *l = text; *l != '\0';) {
		const char *end = strchrnul(l, '\n');
		unsigned long long ok = 0, bad = 0;
		if (l[0] == 'E' && l[1] == ' ' && res->first_failed == NULL) {
			res->first_failed = ocil_xstrndup(l + 2, (size_t)(end - l - 2));
			char *tab = strchr(res->first_failed, '\t');
			if (tab != NULL) {
				/* "path\tSyntaxError" -> "path: SyntaxError" */
				cleanup_free char *s = res->first_failed;
				*tab = '\0';
				res->first_failed = ocil_xasprintf("%s: %s", s, tab + 1);
			}
		} else if (sscanf(l, "N %llu %llu", &ok, &bad) == 2) {
			res->compiled = (size_t)ok;
			res->failed = (size_t)bad;
			done = true;
		}
		l = *end ? end + 1 : end;
	}
	return done ? 0 : -1;
}

int ocil_bytecode_compile(const ocil_bytecode_opts *o, const ocil_strv *sources,
			  const char *out_dir, ocil_bytecode_result *res, ocil_error **err)
{
	memset(res, 0, sizeof(*res));
	cleanup_close int in = list_fd(sources, out_dir, err);
	if (in < 0)
		return -1;
	cleanup_free char *rpath = NULL;
	cleanup_close int rep = ocil_tmpfile_create(out_dir, &rpath, err);
	if (rep < 0)
		return -1;
	unlink(rpath);
	ocil_strv binds = {0};
	for (size_t i = 0; o->ro_binds != NULL && o->ro_binds[i] != NULL; i++)
		ocil_strv_push(&binds, ocil_xstrdup(o->ro_binds[i]));
	const char *rw[] = {out_dir, OUT_MOUNT, NULL};
	/* a fixed hash seed: marshal writes sets in their iteration order */
	const char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "PYTHONHASHSEED=0",
			     "LC_ALL=C.UTF-8", NULL};
	ocil_sandbox_opts so = {.root = o->tree,
				.ro_binds = (const char *const *)binds.v,
				.rw_binds = rw,
				.env = env,
				.stdin_fd = in,
				.stdout_fd = rep,
				.cancel = o->cancel};
	/* -S: no site (nothing but the stdlib is needed); -s, -B: nothing of
	 * the user's, nothing written but the pycs */
	const char *argv[] = {o->python, "-S", "-s", "-B", "-c", DRIVER, OUT_MOUNT, NULL};
	int status = 0;
	cleanup_free char *errtext = NULL;
	int r = ocil_sandbox_run(&so, argv, &status, &errtext, err);
	ocil_strv_clear(&binds);
	if (r < 0)
		return -1;
	cleanup_free char *report = NULL;
	size_t len = 0;
	if (lseek(rep, 0, SEEK_SET) < 0 ||
	    ocil_read_fd(rep, "the compiler's report", REPORT_MAX, &report, &len, err) < 0)
		return -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && parse_report(report, res) == 0)
		return 0;
	ocil_bytecode_result_clear(res);
	const char *m = errtext ? errtext : "";
	/* bwrap's own complaints start with "bwrap: " */
	if (ocil_str_has_prefix(m, "bwrap: "))
		return ocil_sandbox_failed(m + 7, err);
	/* the last line python printed (a traceback's last is its error) */
	size_t n = strlen(m);
	while (n > 0 && m[n - 1] == '\n')
		n--;
	const char *line = m + n;
	while (line > m && line[-1] != '\n')
		line--;
	cleanup_free char *st = WIFEXITED(status)
				    ? ocil_xasprintf("exit status %d", WEXITSTATUS(status))
				    : ocil_xasprintf("signal %d", WTERMSIG(status));
	return ocil_error_set(err, OCIL_E_IO, "%s -c <compile driver> failed (%s)%s%.*s", o->python,
			      st, n > 0 ? ": " : "", (int)(m + n - line), line);
}

/* ---- the layer ---- */

typedef struct {
	ocil_layer_writer *w;
	const ocil_cancel *cancel;
} write_ctx;

static int write_entry(const ocil_walk_entry *e, void *ud, ocil_error **err)
{
	write_ctx *c = ud;
	cleanup_free char *path = ocil_xasprintf("/%s", e->rel);
	if (S_ISDIR(e->st->st_mode))
		return ocil_layer_writer_add_dir(c->w, path, 0755, err);
	if (!S_ISREG(e->st->st_mode))
		return ocil_error_set(err, OCIL_E_IO, "%s: not a file the compiler writes",
				      e->path);
	cleanup_close int fd = -1;
	if (ocil_walk_open(e, &fd, err) < 0)
		return -1;
	return ocil_layer_writer_add_fd(c->w, path, 0644, fd, (uint64_t)e->st->st_size, e->path,
					c->cancel, err);
}

/* the compiler's own temporaries (the report and the list, unlinked
 * already; py_compile's, should one be left) */
static bool skip_tmp(const ocil_walk_entry *e, void *ud)
{
	return e->name[0] == '.';
}

int ocil_bytecode_write_layer(const char *out_dir, ocil_layer_writer *w, const ocil_cancel *cancel,
			      ocil_error **err)
{
	write_ctx c = {.w = w, .cancel = cancel};
	ocil_walk_opts wo = {.fn = write_entry, .skip = skip_tmp, .ud = &c, .cancel = cancel};
	return ocil_walk(out_dir, &wo, err);
}
