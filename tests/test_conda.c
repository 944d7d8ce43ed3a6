#include <archive.h>
#include <archive_entry.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conda.h"
#include "support_tar.h"
#include "test.h"
#include "util.h"

/* The prefix the fixture env claims it was built at (does not exist). */
#define ORIGIN "/opt/build-origin/env"
#define DEST "/opt/conda-env"

/* ---- helpers ---- */

static int put(const char *rel, const char *content)
{
	return putn(rel, content, strlen(content), 0644);
}

/* Inspect tmp/<rel> and write its layer at dest into l. */
static int conda_layer(const char *rel, const char *origin, const char *dest, rlayer *l,
		       ocil_error **err)
{
	cleanup_free char *prefix = tpath(rel);
	ocil_conda_info info;
	if (ocil_conda_inspect(prefix, origin, &info, err) < 0)
		return -1;
	ocil_conda_opts o = {.prefix = prefix, .dest = dest, .info = &info};
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	int r = open_layer_writer(&bs, &w, err) || ocil_conda_write_layer(&o, w, err) ||
		finish_read_layer(bs, w, l, err);
	ocil_conda_info_clear(&info);
	return r;
}

static const char python_rec[] =
    "{\"name\": \"python\", \"version\": \"3.11.2\", \"build\": \"h1_0\", \"build_number\": 0,"
    " \"subdir\": \"linux-64\", \"files\": [],"
    " \"paths_data\": {\"paths_version\": 1, \"paths\": ["
    "  {\"_path\": \"bin/python3.11\", \"path_type\": \"hardlink\", \"file_mode\": "
    "\"binary\", \"prefix_placeholder\": \"/tmp/build/_h_env_placehold_placehold\"},"
    "  {\"_path\": \"bin/python\", \"path_type\": \"softlink\"},"
    "  {\"_path\": \"lib/python3.11/os.py\", \"path_type\": \"hardlink\"},"
    "  {\"_path\": \"lib/python3.11/sysconfig.txt\", \"path_type\": \"hardlink\","
    "   \"prefix_placeholder\": \"/opt/anaconda1anaconda2anaconda3\"}"
    "]}}";

static const char tool_rec[] =
    "{\"name\": \"tool\", \"version\": \"1.0\", \"build\": \"0\", \"subdir\": \"noarch\","
    " \"paths_data\": {\"paths_version\": 1, \"paths\": ["
    "  {\"_path\": \"bin/tool\", \"path_type\": \"unix_python_entry_point\"},"
    "  {\"_path\": \"share/tool/settings.cfg\", \"path_type\": \"hardlink\","
    "   \"prefix_placeholder\": \"/opt/anaconda1anaconda2anaconda3\", \"file_mode\": "
    "\"text\"}"
    "]}}";

/* An ELF-ish file with NUL-terminated strings holding the origin. */
static const char elf[] = "\177ELF\0" ORIGIN "/lib\0x" ORIGIN "/lib:" ORIGIN "/lib64\0tail";
static const char elf_want[] = "\177ELF\0" DEST "/lib\0\0\0\0\0\0\0\0x" DEST "/lib:" DEST
			       "/lib64\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0tail";

static const char tool_script[] = "#!" ORIGIN "/bin/python3.11\nimport sys\n# " ORIGIN "\n";

static int make_prefix(const char *p)
{
	char rel[256];
#define P(x) (snprintf(rel, sizeof(rel), "%s/%s", p, x), rel)
	int r = put(P("conda-meta/python-3.11.2-h1_0.json"), python_rec) ||
		put(P("conda-meta/tool-1.0-0.json"), tool_rec) ||
		put(P("conda-meta/history"), "==> 2024 <==\n") ||
		putn(P("bin/python3.11"), elf, sizeof(elf) - 1, 0755) ||
		sym("python3.11", P("bin/python")) ||
		sym(ORIGIN "/lib/python3.11/os.py", P("bin/abs-link")) ||
		sym(ORIGIN, P("bin/prefix-link")) || sym("/usr/bin/env", P("bin/env-link")) ||
		putn(P("bin/tool"), tool_script, sizeof(tool_script) - 1, 0755) ||
		put(P("bin/pip-script"), "#!" ORIGIN "/bin/python3.11\nprint('" ORIGIN "')\n") ||
		put(P("bin/notscript"), "data " ORIGIN "\n") ||
		put(P("share/tool/settings.cfg"), "prefix=" ORIGIN "\nlib=" ORIGIN "/lib\n") ||
		put(P("lib/python3.11/sysconfig.txt"), "no prefix mentioned\n") ||
		put(P("lib/python3.11/os.py"), "print('hi')\n") ||
		put(P("lib/python3.11/__pycache__/os.cpython-311.pyc"), "pyc") ||
		put(P("lib/python3.11/site-packages/awslambdaric/__init__.py"), "") ||
		put(P("pkgs/junk-1.0.tar.bz2"), "junk") || put(P("conda-bld/x"), "junk") ||
		put(P("envs/other/bin/x"), "junk") || put(P("share/envs/keep"), "kept");
	if (r == 0) {
		char *a = tpath(P("lib/python3.11/os.py"));
		char *b = tpath(P("lib/python3.11/os2.py"));
		r = link(a, b);
		free(a);
		free(b);
	}
#undef P
	return r;
}

/* ---- tests ---- */

static void inspect(void)
{
	CHECK(make_prefix("env") == 0);
	char *prefix = tpath("env");
	ocil_conda_info info;
	ocil_error *err = NULL;
	int r = ocil_conda_inspect(prefix, NULL, &info, &err);
	free(prefix);
	CHECK_OK(r, &err);
	int ok = strcmp(info.python_version, "3.11.2") == 0 &&
		 strcmp(info.python_minor, "3.11") == 0 && strcmp(info.origin, ORIGIN) == 0 &&
		 info.subdir && strcmp(info.subdir, "linux-64") == 0 && info.has_awslambdaric &&
		 info.records == 2;
	if (!ok)
		fprintf(stderr, "python %s minor %s origin %s subdir %s aws %d records %zu\n",
			info.python_version, info.python_minor, info.origin, info.subdir,
			info.has_awslambdaric, info.records);
	ocil_conda_info_clear(&info);
	CHECK(ok);

	/* override wins (trailing slash dropped) */
	prefix = tpath("env");
	r = ocil_conda_inspect(prefix, "/somewhere/else/", &info, &err);
	free(prefix);
	CHECK_OK(r, &err);
	ok = strcmp(info.origin, "/somewhere/else") == 0;
	ocil_conda_info_clear(&info);
	CHECK(ok);
}

static void origin_fallback(void)
{
	/* no entry points or text placeholders: the env is where it lies */
	CHECK(put("plain/conda-meta/python-3.9.1-0.json",
		  "{\"name\": \"python\", \"version\": \"3.9.1\", \"build\": \"0\"}") == 0);
	CHECK(put("plain/bin/x", "#!/usr/bin/env python\n") == 0);
	char *prefix = tpath("plain");
	char *real = realpath(prefix, NULL);
	ocil_conda_info info;
	ocil_error *err = NULL;
	int r = ocil_conda_inspect(prefix, NULL, &info, &err);
	free(prefix);
	int ok = r == 0 && real && strcmp(info.origin, real) == 0 &&
		 strcmp(info.python_minor, "3.9") == 0 && info.subdir == NULL &&
		 !info.has_awslambdaric;
	free(real);
	ocil_conda_info_clear(&info);
	CHECK_OK(r, &err);
	CHECK(ok);
}

static void layer(void)
{
	CHECK(make_prefix("env") == 0);
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	int r = conda_layer("env", NULL, DEST, &l, &err);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	static const char *want[] = {
	    "opt/",
	    "opt/conda-env/",
	    "opt/conda-env/bin/",
	    "opt/conda-env/bin/abs-link",
	    "opt/conda-env/bin/env-link",
	    "opt/conda-env/bin/notscript",
	    "opt/conda-env/bin/pip-script",
	    "opt/conda-env/bin/prefix-link",
	    "opt/conda-env/bin/python",
	    "opt/conda-env/bin/python3.11",
	    "opt/conda-env/bin/tool",
	    "opt/conda-env/conda-meta/",
	    "opt/conda-env/conda-meta/history",
	    "opt/conda-env/conda-meta/python-3.11.2-h1_0.json",
	    "opt/conda-env/conda-meta/tool-1.0-0.json",
	    "opt/conda-env/lib/",
	    "opt/conda-env/lib/python3.11/",
	    "opt/conda-env/lib/python3.11/__pycache__/",
	    "opt/conda-env/lib/python3.11/__pycache__/os.cpython-311.pyc",
	    "opt/conda-env/lib/python3.11/os.py",
	    "opt/conda-env/lib/python3.11/os2.py",
	    "opt/conda-env/lib/python3.11/site-packages/",
	    "opt/conda-env/lib/python3.11/site-packages/awslambdaric/",
	    "opt/conda-env/lib/python3.11/site-packages/awslambdaric/__init__.py",
	    "opt/conda-env/lib/python3.11/sysconfig.txt",
	    "opt/conda-env/share/",
	    "opt/conda-env/share/envs/",
	    "opt/conda-env/share/envs/keep",
	    "opt/conda-env/share/tool/",
	    "opt/conda-env/share/tool/settings.cfg",
	};
	int names_ok = rlayer_names_are(&l, want, NENTS(want));
#define E(n) rlayer_find(&l, "opt/conda-env/" n)
	const rentry *py = E("bin/python3.11"), *tool = E("bin/tool"), *pip = E("bin/pip-script"),
		     *ns = E("bin/notscript"), *cfg = E("share/tool/settings.cfg"),
		     *os1 = E("lib/python3.11/os.py"), *os2 = E("lib/python3.11/os2.py");
	int bin_ok = names_ok && py->size == sizeof(elf) - 1 &&
		     memcmp(py->data, elf_want, py->size) == 0 && py->perm == 0755;
	int text_ok =
	    names_ok &&
	    strcmp(tool->data, "#!" DEST "/bin/python3.11\nimport sys\n# " DEST "\n") == 0 &&
	    tool->perm == 0755 &&
	    strcmp(pip->data, "#!" DEST "/bin/python3.11\nprint('" DEST "')\n") == 0 &&
	    strcmp(ns->data, "data " ORIGIN "\n") == 0 &&
	    strcmp(cfg->data, "prefix=" DEST "\nlib=" DEST "/lib\n") == 0 && cfg->perm == 0644;
	int link_ok = names_ok && strcmp(E("bin/python")->link, "python3.11") == 0 &&
		      strcmp(E("bin/abs-link")->link, DEST "/lib/python3.11/os.py") == 0 &&
		      strcmp(E("bin/prefix-link")->link, DEST) == 0 &&
		      strcmp(E("bin/env-link")->link, "/usr/bin/env") == 0 &&
		      os1->type == AE_IFREG && os2->type == AE_IFREG && os2->link == NULL &&
		      strcmp(os2->data, "print('hi')\n") == 0;
#undef E
	rlayer_clear(&l);
	CHECK(names_ok);
	CHECK(bin_ok);
	CHECK(text_ok);
	CHECK(link_ok);
}

/* dest == origin: bytes go through unchanged. */
static void no_relocation(void)
{
	CHECK(make_prefix("env") == 0);
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	int r = conda_layer("env", ORIGIN, ORIGIN, &l, &err);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	const rentry *py = rlayer_find(&l, "opt/build-origin/env/bin/python3.11");
	const rentry *tool = rlayer_find(&l, "opt/build-origin/env/bin/tool");
	const rentry *lk = rlayer_find(&l, "opt/build-origin/env/bin/abs-link");
	int ok = py && py->size == sizeof(elf) - 1 && memcmp(py->data, elf, py->size) == 0 &&
		 tool && strstr(tool->data, "#!" ORIGIN "/bin/python3.11\n") &&
		 strcmp(lk->link, ORIGIN "/lib/python3.11/os.py") == 0;
	rlayer_clear(&l);
	CHECK(ok);
}

static void dest_too_long(void)
{
	CHECK(make_prefix("env") == 0);
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	CHECK_FAIL(conda_layer("env", NULL, "/opt/a-destination-longer-than-the-origin", &l, &err),
		   &err, OCIL_E_INPUT, "env/bin/python3.11: new prefix");
	CHECK(l.n == 0);
}

static void special_files(void)
{
	CHECK(make_prefix("env") == 0);
	char *f = tpath("env/lib/a-fifo");
	int r = mkfifo(f, 0644);
	free(f);
	CHECK(r == 0);
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	CHECK_FAIL(conda_layer("env", NULL, DEST, &l, &err), &err, OCIL_E_INPUT,
		   "env/lib/a-fifo: a fifo can not go into an image layer");
}

static void inspect_errors(void)
{
	ocil_conda_info info;
	ocil_error *err = NULL;
	char *p = tpath("missing");
	int r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "missing: No such file or directory");

	CHECK(put("file", "x") == 0);
	p = tpath("file");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "file: not a directory");

	CHECK(put("nometa/bin/python", "x") == 0);
	p = tpath("nometa");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "nometa is not a conda prefix: no conda-meta directory");

	CHECK(put("bad/conda-meta/python-3.11.2-0.json", python_rec) == 0);
	CHECK(put("bad/conda-meta/zlib-1.2-0.json", "{\"name\": \"zlib\", ") == 0);
	p = tpath("bad");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "bad/conda-meta/zlib-1.2-0.json: malformed JSON");

	CHECK(put("bad2/conda-meta/x-1-0.json", "[1]") == 0);
	p = tpath("bad2");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "x-1-0.json: malformed conda record: not a JSON object");

	CHECK(put("escape/conda-meta/x-1-0.json",
		  "{\"name\": \"x\", \"paths_data\": {\"paths\": [{\"_path\": \"../../etc\"}]}}") ==
	      0);
	p = tpath("escape");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "is not inside the prefix");

	CHECK(put("nopy/conda-meta/zlib-1.2-0.json",
		  "{\"name\": \"zlib\", \"version\": \"1.2\"}") == 0);
	p = tpath("nopy");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "nopy: no python package in conda-meta");

	CHECK(put("badver/conda-meta/python-x.json",
		  "{\"name\": \"python\", \"version\": \"3\"}") == 0);
	p = tpath("badver");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "python version \"3\" is not X.Y");

	CHECK(make_prefix("env") == 0);
	p = tpath("env");
	r = ocil_conda_inspect(p, "relative/origin", &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "not an absolute path");
}

TEST_MAIN(T(inspect), T(origin_fallback), T(layer), T(no_relocation), T(dest_too_long),
	  T(special_files), T(inspect_errors))
