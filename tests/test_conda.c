#include <archive.h>
#include <archive_entry.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "layers/conda.h"
#include "support_tar.h"
#include "test.h"

/* The prefix the fixture env claims it was built at (does not exist). */
#define ORIGIN "/opt/build-origin/env"
#define DEST "/opt/conda-env"

/* ---- helpers ---- */

static int put(const char *rel, const char *content)
{
	return putn(rel, content, strlen(content), 0644);
}

/* Inspect tmp/<rel> with io and write its layer at dest into l, the report
 * into rep (cleared by the caller). */
static int conda_layer_with(const char *rel, const ocil_conda_inspect_opts *io, const char *dest,
			    bool strict, rlayer *l, ocil_conda_report *rep, ocil_error **err)
{
	cleanup_free char *prefix = tpath(rel);
	ocil_conda_info info;
	if (ocil_conda_inspect(prefix, io, &info, err) < 0)
		return -1;
	ocil_conda_opts o = {.prefix = prefix, .dest = dest, .info = &info, .strict = strict};
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	int r = open_layer_writer(&bs, &w, err) || ocil_conda_write_layer(&o, w, rep, err) ||
		finish_read_layer(bs, w, l, err);
	ocil_conda_info_clear(&info);
	return r;
}

/* The same with only an origin override and no report. */
static int conda_layer(const char *rel, const char *origin, const char *dest, rlayer *l,
		       ocil_error **err)
{
	ocil_conda_inspect_opts io = {.source_prefix = origin};
	return conda_layer_with(rel, &io, dest, false, l, NULL, err);
}

/* Inspect tmp/<rel>: 0 or -1 with *err set; info cleared either way. */
static int inspect_at(const char *rel, const ocil_conda_inspect_opts *io, ocil_error **err)
{
	cleanup_free char *prefix = tpath(rel);
	ocil_conda_info info;
	int r = ocil_conda_inspect(prefix, io, &info, err);
	ocil_conda_info_clear(&info);
	return r;
}

/* Whether rep holds exactly these warnings in this order; prints what it
 * holds when not. */
static bool warnings_are(const ocil_conda_report *rep, const char *const *want, size_t n)
{
	bool same = rep->warnings.n == n;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(rep->warnings.v[i], want[i]) == 0;
	if (!same)
		for (size_t i = 0; i < rep->warnings.n; i++)
			fprintf(stderr, "  warning: %s\n", rep->warnings.v[i]);
	return same;
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
		 info.records == 2 && ocil_strmap_size(&info.files) == 6 &&
		 ocil_strmap_get(&info.files, "bin/tool", NULL) &&
		 ocil_strmap_get(&info.files, "bin/python", NULL) &&
		 !ocil_strmap_get(&info.files, "bin/pip-script", NULL);
	if (!ok)
		fprintf(stderr, "python %s minor %s origin %s subdir %s aws %d records %zu\n",
			info.python_version, info.python_minor, info.origin, info.subdir,
			info.has_awslambdaric, info.records);
	ocil_conda_info_clear(&info);
	CHECK(ok);

	/* override wins (trailing slash dropped) */
	prefix = tpath("env");
	ocil_conda_inspect_opts io = {.source_prefix = "/somewhere/else/"};
	r = ocil_conda_inspect(prefix, &io, &info, &err);
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
	CHECK(put("plain/lib/python3.9/site-packages/awslambdaric_not/__init__.py", "") == 0);
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
	ocil_conda_report rep = {0};
	int r = conda_layer_with("env", NULL, DEST, false, &l, &rep, &err);
	static const char *const want_warnings[] = {
	    "bin/env-link -> /usr/bin/env points outside the prefix",
	    "bin/notscript: not managed by conda and still contains " ORIGIN "; left as is",
	};
	bool rep_ok = r == 0 && warnings_are(&rep, want_warnings, NENTS(want_warnings)) &&
		      rep.unmanaged_with_prefix == 1 && rep.unmanaged_pyc == 0 &&
		      rep.links_outside == 1;
	ocil_conda_report_clear(&rep);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	if (!rep_ok)
		rlayer_clear(&l);
	CHECK(rep_ok);
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
	/* longer than the 37-byte placeholder python's record gives */
	CHECK_FAIL(conda_layer("env", NULL, "/opt/a-destination-longer-than-the-origin", &l, &err),
		   &err, OCIL_E_INPUT,
		   "env/bin/python3.11: new prefix /opt/a-destination-longer-than-the-origin is "
		   "longer than the placeholder conda recorded (41 > 37 bytes)");
	CHECK(l.n == 0);
	/* longer than the origin but within the placeholder: the fixture's
	 * ELF has no padding after its strings, so there is no room */
	CHECK_FAIL(conda_layer("env", NULL, "/opt/build-origin/env-and-more", &l, &err), &err,
		   OCIL_E_INPUT,
		   "env/bin/python3.11: no room to relocate to /opt/build-origin/env-and-more: "
		   "the string ending at byte 30 holds " ORIGIN " 1 time and is followed by 0 "
		   "NULs, where conda leaves 16 (a 37-byte placeholder)");
	CHECK(l.n == 0);
}

/* An ELF-ish file as conda installs it for a prefix: each string holding
 * the 37-byte placeholder k times gets the prefix k times, its NUL, then
 * k * (37 - len(prefix)) NULs. n: its size. */
#define PH37 "/tmp/build/_h_env_placehold_placehold"
static char *installed_elf(const char *prefix, size_t *n)
{
	size_t pad = strlen(PH37) - strlen(prefix), len = 0;
	char *out = ocil_xcalloc(1, 512);
	/* each string, its NUL, then its padding (calloc's zeros) */
	len += (size_t)snprintf(out + len, 512 - len, "\177ELF") + 1;
	len += (size_t)snprintf(out + len, 512 - len, "%s/lib", prefix) + 1 + pad;
	len += (size_t)snprintf(out + len, 512 - len, "x%s/lib:%s/lib64", prefix, prefix) + 1 +
	       2 * pad;
	len += (size_t)snprintf(out + len, 512 - len, "tail"); /* no NUL */
	*n = len;
	return out;
}

/* A prefix conda installed at a short path (/tmp/e, as container CI has
 * them) moves to a longer destination: each string grows into the NULs
 * conda left after it, giving the bytes conda writes when it installs
 * there; padding that is not there is refused, naming the file and the
 * lengths (issue 14). */
static void grow_into_padding(void)
{
	static const char rec[] =
	    "{\"name\": \"python\", \"version\": \"3.11.2\", \"build\": \"h1_0\", "
	    "\"subdir\": \"linux-64\", \"paths_data\": {\"paths_version\": 1, \"paths\": ["
	    "  {\"_path\": \"bin/python3.11\", \"path_type\": \"hardlink\", \"file_mode\": "
	    "\"binary\", \"prefix_placeholder\": \"" PH37 "\"},"
	    "  {\"_path\": \"bin/tool\", \"path_type\": \"unix_python_entry_point\"},"
	    "  {\"_path\": \"etc/x.cfg\", \"prefix_placeholder\": "
	    "\"/opt/anaconda1anaconda2anaconda3\"}]}}";
	size_t n = 0, want_n = 0;
	cleanup_free char *elf_e = installed_elf("/tmp/e", &n);
	cleanup_free char *want = installed_elf(DEST, &want_n);
	CHECK(n == want_n);
	CHECK(put("short/conda-meta/python-3.11.2-h1_0.json", rec) == 0 &&
	      putn("short/bin/python3.11", elf_e, n, 0755) == 0 &&
	      put("short/bin/tool", "#!/tmp/e/bin/python3.11\nimport sys\n") == 0 &&
	      put("short/etc/x.cfg", "a=/tmp/e/lib:/tmp/e\n") == 0);
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	CHECK_OK(conda_layer("short", NULL, DEST, &l, &err), &err);
	const rentry *py = rlayer_find(&l, "opt/conda-env/bin/python3.11");
	const rentry *tool = rlayer_find(&l, "opt/conda-env/bin/tool");
	const rentry *cfg = rlayer_find(&l, "opt/conda-env/etc/x.cfg");
	bool ok = py && tool && cfg && py->size == n && memcmp(py->data, want, n) == 0 &&
		  strcmp(tool->data, "#!" DEST "/bin/python3.11\nimport sys\n") == 0 &&
		  strcmp(cfg->data, "a=" DEST "/lib:" DEST "\n") == 0;
	rlayer_clear(&l);
	CHECK(ok);
	/* the longest destination the placeholder allows */
	CHECK_OK(conda_layer("short", NULL, "/opt/thirty-seven-bytes-of-dest/abcde", &l, &err),
		 &err);
	rlayer_clear(&l);

	/* the padding after the second string cut to 40 of its 62 NULs (the
	 * file keeps its size: a non-NUL byte where padding should be) */
	size_t second = (size_t)((char *)memchr(elf_e + 16, 'x', n - 16) - elf_e);
	size_t nul = second + strlen("x/tmp/e/lib:/tmp/e/lib64");
	elf_e[nul + 41] = 'X';
	CHECK(putn("short/bin/python3.11", elf_e, n, 0755) == 0);
	char needle[512];
	cleanup_free char *file = tpath("short/bin/python3.11");
	snprintf(needle, sizeof(needle),
		 "relocating %s: no room to relocate to " DEST ": the string ending at byte %zu "
		 "holds /tmp/e 2 times and is followed by 40 NULs, where conda leaves 62 (a "
		 "37-byte placeholder)",
		 file, nul);
	CHECK_FAIL(conda_layer("short", NULL, DEST, &l, &err), &err, OCIL_E_INPUT, needle);
	rlayer_clear(&l);
	/* the same file into a shorter destination: conda's padding, as before */
	CHECK_OK(conda_layer("short", NULL, "/o", &l, &err), &err);
	rlayer_clear(&l);
}

/* mamba 1.5 records a noarch: python package's paths_data with the
 * package's paths (site-packages/..., python-scripts/...) and its "files"
 * with the prefix's: the paths are those under lib/pythonX.Y/ (a real
 * Miniforge3 updated by mamba: conda-meta/archspec-0.2.2-pyhd8ed1ab_0.json). */
static void mamba_noarch_record(void)
{
	static const char rec[] =
	    "{\"name\": \"greet\", \"version\": \"0.1\", \"build\": \"pyh_0\", \"noarch\": "
	    "\"python\", \"package_type\": \"noarch_python\", \"subdir\": \"noarch\", "
	    "\"files\": [\"lib/python3.11/site-packages/greet/conf.txt\", \"bin/greet\"], "
	    "\"paths_data\": {\"paths_version\": 1, \"paths\": ["
	    "  {\"_path\": \"site-packages/greet/conf.txt\", \"path_type\": \"hardlink\", "
	    "\"prefix_placeholder\": \"/opt/anaconda1anaconda2anaconda3\", \"file_mode\": "
	    "\"text\"},"
	    "  {\"_path\": \"bin/greet\", \"path_type\": \"unix_python_entry_point\"}]}}";
	CHECK(make_prefix("mamba") == 0);
	CHECK(put("mamba/conda-meta/greet-0.1-pyh_0.json", rec) == 0 &&
	      put("mamba/lib/python3.11/site-packages/greet/conf.txt", "at=" ORIGIN "\n") == 0 &&
	      put("mamba/bin/greet", "#!" ORIGIN "/bin/python3.11\n") == 0);
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	ocil_conda_report rep = {0};
	int r = conda_layer_with("mamba", NULL, DEST, false, &l, &rep, &err);
	const rentry *conf =
	    rlayer_find(&l, "opt/conda-env/lib/python3.11/site-packages/greet/conf.txt");
	/* managed, with its text placeholder: replaced, and not reported */
	bool ok = r == 0 && conf != NULL && strcmp(conf->data, "at=" DEST "\n") == 0 &&
		  rep.unmanaged_with_prefix == 1; /* bin/notscript of make_prefix */
	ocil_conda_report_clear(&rep);
	rlayer_clear(&l);
	CHECK_OK(r, &err);
	CHECK(ok);
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

	CHECK(put("bad/conda-meta/python-3.11.2-0.json",
		  "{\"name\": \"python\", \"version\": \"3.11.2\", \"build\": \"0\"}") == 0);
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
		  "{\"name\": \"x\", \"version\": \"1\", \"build\": \"0\", \"paths_data\": "
		  "{\"paths\": [{\"_path\": \"../../etc\"}]}}") == 0);
	p = tpath("escape");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "is not inside the prefix");

	CHECK(put("nopy/conda-meta/zlib-1.2-0.json",
		  "{\"name\": \"zlib\", \"version\": \"1.2\", \"build\": \"0\"}") == 0);
	p = tpath("nopy");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "nopy: no python package in conda-meta");

	CHECK(put("badver/conda-meta/python-x.json",
		  "{\"name\": \"python\", \"version\": \"3\", \"build\": \"0\"}") == 0);
	p = tpath("badver");
	r = ocil_conda_inspect(p, NULL, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "python version \"3\" is not X.Y");

	CHECK(make_prefix("env") == 0);
	p = tpath("env");
	ocil_conda_inspect_opts io = {.source_prefix = "relative/origin"};
	r = ocil_conda_inspect(p, &io, &info, &err);
	free(p);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, "not an absolute path");
}

/* ---- records ---- */

static const char mini_python[] = "{\"name\": \"python\", \"version\": \"3.11.2\", \"build\": "
				  "\"h1_0\", \"subdir\": \"linux-64\"}";

/* A prefix tmp/<p> with a python record that lists nothing. */
static int mini_prefix(const char *p)
{
	cleanup_free char *rel = ocil_xasprintf("%s/conda-meta/python-3.11.2-h1_0.json", p);
	return put(rel, mini_python);
}

#define REC(body) "{\"name\": \"x\", \"version\": \"1\", \"build\": \"0\", " body "}"
#define SHA "0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef"

static void records(void)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
	    {"{\"version\": \"1\", \"build\": \"0\"}", "no \"name\""},
	    {"{\"name\": \"x\", \"build\": \"0\"}", "no \"version\""},
	    {"{\"name\": \"x\", \"version\": \"1\"}", "no \"build\""},
	    {"{\"name\": \"x\", \"version\": \"1\", \"build\": \"\"}", "no \"build\""},
	    {"{\"name\": 5, \"version\": \"1\", \"build\": \"0\"}", "\"name\" is not a string"},
	    {REC("\"channel\": []"), "\"channel\" is not a string"},
	    {REC("\"subdir\": 64"), "\"subdir\" is not a string"},
	    {REC("\"subdir\": \"Linux 64\""), "subdir \"Linux 64\" is not a conda subdir"},
	    {REC("\"platform\": 1"), "\"platform\" is not a string"},
	    {REC("\"sha256\": \"abc\""), "\"sha256\" is not 64 hex digits"},
	    {REC("\"sha256\": 5"), "\"sha256\" is not 64 hex digits"},
	    {REC("\"files\": {}"), "\"files\" is not an array"},
	    {REC("\"files\": [\"a\", 2]"), "files[1] is not a string"},
	    {REC("\"files\": [\"a/../../b\"]"), "path \"a/../../b\" is not inside the prefix"},
	    {REC("\"paths_data\": []"), "\"paths_data.paths\" is not an array"},
	    {REC("\"paths_data\": {\"paths\": {}}"), "\"paths_data.paths\" is not an array"},
	    {REC("\"paths_data\": {\"paths_version\": 1}"), "\"paths_data.paths\" is not an array"},
	    {REC("\"paths_data\": {\"paths\": [\"a\"]}"), "paths_data.paths[0] is not an object"},
	    {REC("\"paths_data\": {\"paths\": [{\"path_type\": \"hardlink\"}]}"),
	     "paths_data.paths[0] has no \"_path\""},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": 7}]}"),
	     "paths_data.paths[0]: \"_path\" is not a string"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"/etc/passwd\"}]}"),
	     "path \"/etc/passwd\" is not inside the prefix"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"lib/../../x\"}]}"),
	     "path \"lib/../../x\" is not inside the prefix"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\"}, {\"_path\": \"a\", \"sha256\": "
		 "\"" SHA "0\"}]}"),
	     "paths_data.paths[1] (a): \"sha256\" is not 64 hex digits"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\", \"sha256\": "
		 "\"g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]}"),
	     "paths_data.paths[0] (a): \"sha256\" is not 64 hex digits"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\", \"size_in_bytes\": -1}]}"),
	     "paths_data.paths[0] (a): \"size_in_bytes\" is not a non-negative integer"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\", \"size_in_bytes\": \"5\"}]}"),
	     "paths_data.paths[0] (a): \"size_in_bytes\" is not a non-negative integer"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\", \"size_in_bytes\": 1.5}]}"),
	     "paths_data.paths[0] (a): \"size_in_bytes\" is not a non-negative integer"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\", \"path_type\": 1}]}"),
	     "paths_data.paths[0] (a): \"path_type\" is not a string"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\", \"prefix_placeholder\": "
		 "true}]}"),
	     "paths_data.paths[0] (a): \"prefix_placeholder\" is not a string"},
	    {REC("\"paths_data\": {\"paths\": [{\"_path\": \"a\", \"prefix_placeholder\": "
		 "\"/p\", \"file_mode\": \"octal\"}]}"),
	     "a: unknown file_mode \"octal\""},
	};
	ocil_error *err = NULL;
	for (size_t i = 0; i < NENTS(bad); i++) {
		char dir[32];
		snprintf(dir, sizeof(dir), "rec%zu", i);
		cleanup_free char *rec = ocil_xasprintf("%s/conda-meta/x-1-0.json", dir);
		cleanup_free char *a = ocil_xasprintf("%s/a", dir);
		CHECK(mini_prefix(dir) == 0 && put(rec, bad[i].json) == 0 && put(a, "a") == 0);
		cleanup_free char *want = ocil_xasprintf(
		    "%s/conda-meta/x-1-0.json: malformed conda record: %s", dir, bad[i].msg);
		CHECK_FAIL(inspect_at(dir, NULL, &err), &err, OCIL_E_INPUT, want);
	}
	/* not JSON as jansson reads it strictly: a duplicate key, bytes not UTF-8 */
	static const char *const notjson[][2] = {
	    {REC("\"name\": \"y\""), "duplicate object key"},
	    {"{\"name\": \"\xc3\x28\", \"version\": \"1\", \"build\": \"0\"}",
	     "unable to decode byte"},
	};
	for (size_t i = 0; i < NENTS(notjson); i++) {
		CHECK(mini_prefix("nj") == 0 &&
		      put("nj/conda-meta/x-1-0.json", notjson[i][0]) == 0);
		CHECK_FAIL(inspect_at("nj", NULL, &err), &err, OCIL_E_INPUT, notjson[i][1]);
	}

	/* the same fields, well formed; old-style platform + arch */
	CHECK(mini_prefix("good") == 0);
	CHECK(
	    put("good/conda-meta/x-1-0.json",
		REC("\"channel\": \"https://conda.anaconda.org/conda-forge/linux-64\", "
		    "\"subdir\": \"linux-64\", \"sha256\": \"" SHA "\", \"sha256_in_prefix\": "
		    "null, \"files\": [\"a\", \"lib/b\"], \"paths_data\": {\"paths_version\": 1, "
		    "\"paths\": [{\"_path\": \"a\", \"path_type\": \"hardlink\", \"sha256\": "
		    "\"" SHA "\", \"size_in_bytes\": 0}, {\"_path\": \"lib/b\", \"size_in_bytes\": "
		    "12, \"sha256\": null}]}")) == 0);
	CHECK(put("good/conda-meta/y-1-0.json",
		  "{\"name\": \"y\", \"version\": \"1\", \"build\": \"0\", \"platform\": "
		  "\"linux\", \"arch\": \"x86_64\", \"files\": null, \"paths_data\": null}") == 0);
	CHECK(put("good/a", "") == 0 && put("good/lib/b", "twelve bytes") == 0);
	CHECK_OK(inspect_at("good", NULL, &err), &err);
}

/* A record listing what the prefix does not have. */
static void missing_files(void)
{
	ocil_error *err = NULL;
	CHECK(mini_prefix("m") == 0);
	CHECK(put("m/conda-meta/x-1-0.json",
		  REC("\"paths_data\": {\"paths\": [{\"_path\": \"lib/here.py\"}, {\"_path\": "
		      "\"share/doc/x/README\"}, {\"_path\": \"lib/gone.py\"}, {\"_path\": "
		      "\"bin/dangling\", \"path_type\": \"softlink\"}]}")) == 0);
	CHECK(put("m/lib/here.py", "") == 0 && put("m/bin/real", "") == 0 &&
	      sym("nowhere", "m/bin/dangling") == 0);
	cleanup_free char *prefix = tpath("m");
	cleanup_free char *want = ocil_xasprintf(
	    "%s/conda-meta/x-1-0.json lists share/doc/x/README, which is not in the prefix",
	    prefix);
	CHECK_FAIL(inspect_at("m", NULL, &err), &err, OCIL_E_INPUT, want);

	/* an excluded directory exempts what is under it, nothing else */
	const char *const ex1[] = {"share/doc"};
	ocil_conda_inspect_opts io = {.excludes = ex1, .n_excludes = 1};
	free(want);
	want = ocil_xasprintf(
	    "%s/conda-meta/x-1-0.json lists lib/gone.py, which is not in the prefix", prefix);
	CHECK_FAIL(inspect_at("m", &io, &err), &err, OCIL_E_INPUT, want);

	const char *const ex2[] = {"./share/doc/", "lib/gone*"};
	io.excludes = ex2;
	io.n_excludes = 2;
	CHECK_OK(inspect_at("m", &io, &err), &err);

	/* bare "files" (old records) are checked too; a path under a file */
	CHECK(mini_prefix("f") == 0);
	CHECK(put("f/conda-meta/x-1-0.json", REC("\"files\": [\"lib/here.py/sub\"]")) == 0);
	CHECK(put("f/lib/here.py", "") == 0);
	CHECK_FAIL(inspect_at("f", NULL, &err), &err, OCIL_E_INPUT,
		   "x-1-0.json lists lib/here.py/sub, which is not in the prefix");

	/* bad patterns */
	const char *const ex3[] = {"/opt/x"};
	io.excludes = ex3;
	io.n_excludes = 1;
	CHECK_FAIL(inspect_at("m", &io, &err), &err, OCIL_E_USAGE,
		   "exclude pattern \"/opt/x\": not a path relative to the prefix");
	const char *const ex4[] = {"./"};
	io.excludes = ex4;
	CHECK_FAIL(inspect_at("m", &io, &err), &err, OCIL_E_USAGE,
		   "exclude pattern \"./\": not a path relative to the prefix");
}

/* ---- platform ---- */

static char *subdir_of(const char *rel, ocil_error **err)
{
	cleanup_free char *prefix = tpath(rel);
	ocil_conda_info info;
	if (ocil_conda_inspect(prefix, NULL, &info, err) < 0)
		return NULL;
	char *s = info.subdir ? ocil_xstrdup(info.subdir) : ocil_xstrdup("(none)");
	ocil_conda_info_clear(&info);
	return s;
}

static void subdir(void)
{
	ocil_error *err = NULL;
	/* python's record decides */
	CHECK(mini_prefix("a") == 0);
	CHECK(put("a/conda-meta/z-1-0.json",
		  "{\"name\": \"z\", \"version\": \"1\", \"build\": \"0\", \"subdir\": "
		  "\"linux-aarch64\"}") == 0);
	cleanup_free char *a = subdir_of("a", &err);
	CHECK_OK(a == NULL, &err);
	CHECK_STREQ(a, "linux-64");

	/* else the most common one but noarch */
	static const char *const recs[][2] = {
	    {"python-3.11.2-0.json", "\"name\": \"python\", \"version\": \"3.11.2\""},
	    {"a-1-0.json", "\"name\": \"a\", \"version\": \"1\", \"subdir\": \"linux-aarch64\""},
	    {"b-1-0.json", "\"name\": \"b\", \"version\": \"1\", \"subdir\": \"linux-aarch64\""},
	    {"c-1-0.json", "\"name\": \"c\", \"version\": \"1\", \"subdir\": \"linux-64\""},
	    {"d-1-0.json", "\"name\": \"d\", \"version\": \"1\", \"subdir\": \"noarch\""},
	    {"e-1-0.json", "\"name\": \"e\", \"version\": \"1\", \"subdir\": \"noarch\""},
	    {"f-1-0.json", "\"name\": \"f\", \"version\": \"1\", \"subdir\": \"noarch\""},
	};
	for (size_t i = 0; i < NENTS(recs); i++) {
		cleanup_free char *rel = ocil_xasprintf("b/conda-meta/%s", recs[i][0]);
		cleanup_free char *json = ocil_xasprintf("{%s, \"build\": \"0\"}", recs[i][1]);
		CHECK(put(rel, json) == 0);
	}
	cleanup_free char *b = subdir_of("b", &err);
	CHECK_OK(b == NULL, &err);
	CHECK_STREQ(b, "linux-aarch64");

	/* a tie: the first in bytewise order; old records: platform + arch */
	CHECK(put("c/conda-meta/python-3.11.2-0.json",
		  "{\"name\": \"python\", \"version\": \"3.11.2\", \"build\": \"0\", \"subdir\": "
		  "\"noarch\"}") == 0);
	CHECK(put("c/conda-meta/a-1-0.json",
		  "{\"name\": \"a\", \"version\": \"1\", \"build\": \"0\", \"platform\": \"osx\", "
		  "\"arch\": \"x86_64\"}") == 0);
	CHECK(put("c/conda-meta/b-1-0.json",
		  "{\"name\": \"b\", \"version\": \"1\", \"build\": \"0\", \"subdir\": "
		  "\"linux-64\"}") == 0);
	cleanup_free char *c = subdir_of("c", &err);
	CHECK_OK(c == NULL, &err);
	CHECK_STREQ(c, "linux-64");
	CHECK(put("c/conda-meta/d-1-0.json",
		  "{\"name\": \"d\", \"version\": \"1\", \"build\": \"0\", \"platform\": \"osx\", "
		  "\"arch\": \"x86_64\"}") == 0);
	cleanup_free char *c2 = subdir_of("c", &err);
	CHECK_OK(c2 == NULL, &err);
	CHECK_STREQ(c2, "osx-64");

	/* noarch only */
	CHECK(put("d/conda-meta/python-3.11.2-0.json",
		  "{\"name\": \"python\", \"version\": \"3.11.2\", \"build\": \"0\"}") == 0);
	CHECK(put("d/conda-meta/a-1-0.json",
		  "{\"name\": \"a\", \"version\": \"1\", \"build\": \"0\", \"subdir\": "
		  "\"noarch\"}") == 0);
	cleanup_free char *d = subdir_of("d", &err);
	CHECK_OK(d == NULL, &err);
	CHECK_STREQ(d, "(none)");
}

static void platform(void)
{
	ocil_error *err = NULL;
	ocil_conda_info info = {.subdir = "linux-64"};
	CHECK_OK(ocil_conda_check_platform(&info, "linux", "amd64", &err), &err);
	CHECK_OK(ocil_conda_check_platform(&info, NULL, NULL, &err), &err);
	CHECK_FAIL(ocil_conda_check_platform(&info, "linux", "arm64", &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for linux-64 but the base image is linux/arm64");
	CHECK_FAIL(ocil_conda_check_platform(&info, "windows", "amd64", &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for linux-64 but the base image is windows/amd64");
	info.subdir = "linux-aarch64";
	CHECK_OK(ocil_conda_check_platform(&info, "linux", "arm64", &err), &err);
	CHECK_OK(ocil_conda_check_platform(&info, "linux", "aarch64", &err), &err);
	CHECK_FAIL(ocil_conda_check_platform(&info, "linux", "amd64", &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for linux-aarch64 but the base image is linux/amd64");
	info.subdir = "linux-ppc64le";
	CHECK_FAIL(ocil_conda_check_platform(&info, "linux", "amd64", &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for linux-ppc64le but the base image is linux/amd64");
	info.subdir = "osx-64";
	CHECK_FAIL(ocil_conda_check_platform(&info, "linux", "amd64", &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for osx-64; Lambda runs linux (build the environment on "
		   "linux-64)");
	CHECK_FAIL(ocil_conda_check_platform(&info, NULL, NULL, &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for osx-64; Lambda runs linux");
	info.subdir = "osx-arm64";
	CHECK_FAIL(ocil_conda_check_platform(&info, "linux", "arm64", &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for osx-arm64; Lambda runs linux (build the environment "
		   "on linux-aarch64)");
	info.subdir = "win-64";
	CHECK_FAIL(ocil_conda_check_platform(&info, "linux", "amd64", &err), &err, OCIL_E_INPUT,
		   "conda prefix is built for win-64; Lambda runs linux");
	info.subdir = "noarch";
	CHECK_OK(ocil_conda_check_platform(&info, "linux", "arm64", &err), &err);
	info.subdir = "linux-riscv64";
	CHECK_OK(ocil_conda_check_platform(&info, "linux", "amd64", &err), &err);
	info.subdir = NULL;
	CHECK_OK(ocil_conda_check_platform(&info, "linux", "amd64", &err), &err);
}

/* ---- editable installs ---- */

static void editable(void)
{
	static const struct {
		const char *file, *content, *msg;
	} bad[] = {
	    {"lib/python3.11/site-packages/mypkg.egg-link", "/home/me/src/mypkg\n.\n",
	     "site-packages/mypkg.egg-link: editable install (pip install -e or setup.py "
	     "develop)"},
	    {"lib/python3.11/site-packages/__editable__.mypkg-1.0.pth", "import x\n",
	     "site-packages/__editable__.mypkg-1.0.pth: editable install"},
	    {"lib/python3.12/site-packages/sub/dir/__editable___mypkg_1_0_finder.py", "",
	     "python3.12/site-packages/sub/dir/__editable___mypkg_1_0_finder.py: editable"},
	    {"lib/python3.11/site-packages/mypkg-1.0.dist-info/direct_url.json",
	     "{\"dir_info\": {\"editable\": true}, \"url\": \"file:///home/me/src/mypkg\"}",
	     "mypkg-1.0.dist-info/direct_url.json: editable install of "
	     "file:///home/me/src/mypkg (pip install -e)"},
	};
	ocil_error *err = NULL;
	for (size_t i = 0; i < NENTS(bad); i++) {
		char dir[32];
		snprintf(dir, sizeof(dir), "ed%zu", i);
		cleanup_free char *f = ocil_xasprintf("%s/%s", dir, bad[i].file);
		CHECK(mini_prefix(dir) == 0 && put(f, bad[i].content) == 0);
		CHECK_FAIL(inspect_at(dir, NULL, &err), &err, OCIL_E_INPUT, bad[i].msg);
	}

	/* not editable: a plain pip install, direct_url.json elsewhere or
	 * broken, an excluded editable install */
	CHECK(mini_prefix("ok") == 0);
	CHECK(put("ok/lib/python3.11/site-packages/a-1.0.dist-info/direct_url.json",
		  "{\"dir_info\": {\"editable\": false}, \"url\": \"file:///src/a\"}") == 0);
	CHECK(put("ok/lib/python3.11/site-packages/b-1.0.dist-info/direct_url.json",
		  "{\"url\": \"https://x/b.whl\", \"archive_info\": {}}") == 0);
	CHECK(put("ok/lib/python3.11/site-packages/c-1.0.dist-info/direct_url.json",
		  "{\"dir_info\": {\"editable\": tru") == 0);
	CHECK(put("ok/lib/python3.11/site-packages/d/direct_url.json",
		  "{\"dir_info\": {\"editable\": true}}") == 0);
	CHECK(put("ok/lib/python3.11/site-packages/e.egg-link-not", "") == 0);
	CHECK(put("ok/share/mypkg.egg-link", "") == 0);
	CHECK_OK(inspect_at("ok", NULL, &err), &err);
	CHECK(put("ok/lib/python3.11/site-packages/excluded/mypkg.egg-link", "") == 0);
	CHECK_FAIL(inspect_at("ok", NULL, &err), &err, OCIL_E_INPUT, "excluded/mypkg.egg-link");
	const char *const ex[] = {"lib/python3.11/site-packages/excluded"};
	ocil_conda_inspect_opts io = {.excludes = ex, .n_excludes = 1};
	CHECK_OK(inspect_at("ok", &io, &err), &err);
}

/* pip's awslambdaric has a dist-info directory and no conda record. */
static void awslambdaric(void)
{
	ocil_error *err = NULL;
	CHECK(mini_prefix("p") == 0);
	CHECK(put("p/lib/python3.11/site-packages/awslambdaric-2.0.10.dist-info/RECORD", "") == 0);
	cleanup_free char *prefix = tpath("p");
	ocil_conda_info info;
	CHECK_OK(ocil_conda_inspect(prefix, NULL, &info, &err), &err);
	bool pip = info.has_awslambdaric;
	ocil_conda_info_clear(&info);
	CHECK(pip);

	const char *const ex[] = {"*.dist-info"};
	ocil_conda_inspect_opts io = {.excludes = ex, .n_excludes = 1};
	CHECK_OK(ocil_conda_inspect(prefix, &io, &info, &err), &err);
	bool excluded = info.has_awslambdaric;
	ocil_conda_info_clear(&info);
	CHECK(!excluded);

	CHECK(mini_prefix("c") == 0);
	CHECK(
	    put("c/conda-meta/awslambdaric-2.0.10-py311_0.json",
		"{\"name\": \"awslambdaric\", \"version\": \"2.0.10\", \"build\": \"py311_0\"}") ==
	    0);
	free(prefix);
	prefix = tpath("c");
	CHECK_OK(ocil_conda_inspect(prefix, NULL, &info, &err), &err);
	bool conda = info.has_awslambdaric;
	ocil_conda_info_clear(&info);
	CHECK(conda);
}

/* ---- excludes and the default skips ---- */

static void excludes(void)
{
	CHECK(mini_prefix("x") == 0);
	CHECK(put("x/conda-meta/z-1-0.json",
		  REC("\"paths_data\": {\"paths\": [{\"_path\": \"share/doc/z/README\"}, "
		      "{\"_path\": \"lib/libz.a\"}]}")) == 0);
	CHECK(put("x/conda-meta/.lock-4711", "") == 0 && put("x/conda-meta/history", "h\n") == 0);
	CHECK(put("x/.condarc", "channels: [x]\n") == 0 && put("x/.conda_lock", "") == 0);
	CHECK(put("x/lib/libz.so.conda_trash", "") == 0);
	CHECK(put("x/lib/libz.so", "so") == 0 && put("x/lib/deep/er/libq.a", "a") == 0);
	CHECK(put("x/lib/python3.11/test/test_os.py", "") == 0);
	CHECK(put("x/lib/python3.11/textwrap.py", "") == 0);
	CHECK(put("x/share/doc/z/README", "") == 0 && put("x/share/docs/keep", "") == 0);
	CHECK(put("x/share/.condarc", "kept: not at the top") == 0);
	const char *const ex[] = {"share/doc/", "*.a", "lib/python3.11/test"};
	ocil_conda_inspect_opts io = {.excludes = ex, .n_excludes = NENTS(ex)};
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	int r = conda_layer_with("x", &io, DEST, false, &l, NULL, &err);
	if (r != 0)
		rlayer_clear(&l);
	CHECK_OK(r, &err);
	static const char *want[] = {
	    "opt/",
	    "opt/conda-env/",
	    "opt/conda-env/conda-meta/",
	    "opt/conda-env/conda-meta/history",
	    "opt/conda-env/conda-meta/python-3.11.2-h1_0.json",
	    "opt/conda-env/conda-meta/z-1-0.json",
	    "opt/conda-env/lib/",
	    "opt/conda-env/lib/deep/",
	    "opt/conda-env/lib/deep/er/",
	    "opt/conda-env/lib/libz.so",
	    "opt/conda-env/lib/python3.11/",
	    "opt/conda-env/lib/python3.11/textwrap.py",
	    "opt/conda-env/share/",
	    "opt/conda-env/share/.condarc",
	    "opt/conda-env/share/docs/",
	    "opt/conda-env/share/docs/keep",
	};
	bool ok = rlayer_names_are(&l, want, NENTS(want));
	rlayer_clear(&l);
	CHECK(ok);
}

/* ---- the report ---- */

/* A file of n bytes of 'x' with s written at offset off. */
static int put_at(const char *rel, size_t n, size_t off, const char *s)
{
	cleanup_free char *buf = ocil_xmalloc(n);
	memset(buf, 'x', n);
	memcpy(buf + off, s, strlen(s));
	return putn(rel, buf, n, 0644);
}

#define CHUNK 65536

static int make_report_prefix(const char *p)
{
	char rel[256];
#define P(x) (snprintf(rel, sizeof(rel), "%s/%s", p, x), rel)
	return mini_prefix(p) ||
	       put(P("conda-meta/tool-1.0-0.json"),
		   REC("\"paths_data\": {\"paths\": [{\"_path\": \"libexec/tool\", \"path_type\": "
		       "\"unix_python_entry_point\"}, {\"_path\": \"share/managed.txt\"}]}")) ||
	       put(P("conda-meta/history"), "# cmd: conda create -p " ORIGIN "\n") ||
	       put(P("libexec/tool"), "#!" ORIGIN "/bin/python3.11\n# " ORIGIN "\n") ||
	       put(P("share/managed.txt"), "built at " ORIGIN "\n") ||
	       put(P("bin/pip-tool"), "#!" ORIGIN "/bin/python3.11\nimport x\n") ||
	       put(P("bin/sub/helper"), "#!" ORIGIN "/bin/python3.11\n") ||
	       put(P("bin/env-tool"), "#!/usr/bin/env python\n# " ORIGIN "\n") ||
	       put(P("lib/script.sh"), "#!" ORIGIN "/bin/python3.11\n") ||
	       put(P("etc/clean.cfg"), "nothing here /opt/build-origin/en\n") ||
	       /* the origin across the reads of the copy, and almost */
	       put_at(P("share/straddle.bin"), CHUNK + 100, CHUNK - 5, ORIGIN) ||
	       put_at(P("share/almost.bin"), CHUNK + 100, CHUNK - 5, "/opt/build-origin/en") ||
	       put(P("lib/python3.11/site-packages/p/__pycache__/a.cpython-311.pyc"),
		   "\x03pyc " ORIGIN "/lib/python3.11/site-packages/p/a.py") ||
	       put(P("lib/python3.11/site-packages/p/__pycache__/b.cpython-311.pyc"),
		   "\x03pyc " ORIGIN "/lib/python3.11/site-packages/p/b.py") ||
	       put(P("lib/python3.11/site-packages/p/__pycache__/c.cpython-311.pyc"), "\x03pyc") ||
	       sym("../lib/script.sh", P("bin/in-link")) ||
	       sym("../../../etc/passwd", P("bin/out-link")) ||
	       sym("./x/../../..", P("lib/up-link")) || sym(ORIGIN "/lib", P("lib/abs-in")) ||
	       sym(DEST "/lib", P("lib/abs-dest")) || sym("/usr/lib/x", P("lib/abs-out"));
#undef P
}

static void report(void)
{
	CHECK(make_report_prefix("r") == 0);
	ocil_error *err = NULL;
	rlayer l = {.n = 0};
	ocil_conda_report rep = {0};
	ocil_conda_inspect_opts io = {.source_prefix = ORIGIN};
	int r = conda_layer_with("r", &io, DEST, false, &l, &rep, &err);
	if (r != 0) {
		rlayer_clear(&l);
		ocil_conda_report_clear(&rep);
	}
	CHECK_OK(r, &err);
	static const char *const want[] = {
	    "bin/env-tool: not managed by conda and still contains " ORIGIN "; left as is",
	    "bin/out-link -> ../../../etc/passwd points outside the prefix",
	    "lib/abs-out -> /usr/lib/x points outside the prefix",
	    "lib/script.sh: not managed by conda and still contains " ORIGIN "; left as is",
	    "lib/up-link -> ./x/../../.. points outside the prefix",
	    "share/straddle.bin: not managed by conda and still contains " ORIGIN "; left as is",
	    "2 .pyc files not managed by conda (e.g. "
	    "lib/python3.11/site-packages/p/__pycache__/a.cpython-311.pyc) still contain " ORIGIN
	    ", which only tracebacks show; left as is",
	};
	bool rep_ok = warnings_are(&rep, want, NENTS(want)) && rep.unmanaged_with_prefix == 3 &&
		      rep.unmanaged_pyc == 2 && rep.links_outside == 3;
	ocil_conda_report_clear(&rep);
#define E(n) rlayer_find(&l, "opt/conda-env/" n)
	const rentry *st = E("share/straddle.bin"), *hist = E("conda-meta/history");
	bool data_ok =
	    strcmp(E("libexec/tool")->data, "#!" DEST "/bin/python3.11\n# " DEST "\n") == 0 &&
	    strcmp(E("bin/pip-tool")->data, "#!" DEST "/bin/python3.11\nimport x\n") == 0 &&
	    strcmp(E("bin/sub/helper")->data, "#!" DEST "/bin/python3.11\n") == 0 &&
	    strcmp(E("lib/script.sh")->data, "#!" ORIGIN "/bin/python3.11\n") == 0 &&
	    strcmp(E("share/managed.txt")->data, "built at " ORIGIN "\n") == 0 &&
	    strcmp(hist->data, "# cmd: conda create -p " ORIGIN "\n") == 0 &&
	    st->size == CHUNK + 100 && memcmp(st->data + CHUNK - 5, ORIGIN, strlen(ORIGIN)) == 0 &&
	    st->data[0] == 'x' && st->data[CHUNK + 99] == 'x' &&
	    strcmp(E("lib/abs-in")->link, DEST "/lib") == 0 &&
	    strcmp(E("lib/abs-dest")->link, DEST "/lib") == 0 &&
	    strcmp(E("bin/in-link")->link, "../lib/script.sh") == 0;
#undef E
	rlayer_clear(&l);
	CHECK(rep_ok);
	CHECK(data_ok);

	/* strict: the first unmanaged file is an error */
	rep = (ocil_conda_report){0};
	l.n = 0;
	cleanup_free char *prefix = tpath("r");
	cleanup_free char *msg = ocil_xasprintf(
	    "%s/bin/env-tool: not managed by conda and still contains " ORIGIN " (strict mode)",
	    prefix);
	r = conda_layer_with("r", &io, DEST, true, &l, &rep, &err);
	rlayer_clear(&l);
	bool strict_counted = rep.unmanaged_with_prefix == 1 && rep.warnings.n == 0;
	ocil_conda_report_clear(&rep);
	CHECK_FAIL(r, &err, OCIL_E_INPUT, msg);
	CHECK(strict_counted);

	/* strict, without that file: links and .pyc files stay warnings */
	cleanup_free char *f = tpath("r/bin/env-tool");
	cleanup_free char *g = tpath("r/lib/script.sh");
	cleanup_free char *h = tpath("r/share/straddle.bin");
	CHECK(unlink(f) == 0 && unlink(g) == 0 && unlink(h) == 0);
	l.n = 0;
	r = conda_layer_with("r", &io, DEST, true, &l, &rep, &err);
	rlayer_clear(&l);
	bool strict_ok = rep.warnings.n == 4 && rep.unmanaged_with_prefix == 0 &&
			 rep.unmanaged_pyc == 2 && rep.links_outside == 3;
	ocil_conda_report_clear(&rep);
	CHECK_OK(r, &err);
	CHECK(strict_ok);

	/* no relocation: nothing to say about contents; ORIGIN is outside now */
	CHECK(make_report_prefix("same") == 0);
	io.source_prefix = DEST;
	l.n = 0;
	r = conda_layer_with("same", &io, DEST, true, &l, &rep, &err);
	rlayer_clear(&l);
	bool same_ok = rep.warnings.n == 4 && rep.unmanaged_with_prefix == 0 &&
		       rep.unmanaged_pyc == 0 && rep.links_outside == 4 &&
		       strcmp(rep.warnings.v[1],
			      "lib/abs-in -> " ORIGIN "/lib points outside the prefix") == 0;
	ocil_conda_report_clear(&rep);
	CHECK_OK(r, &err);
	CHECK(same_ok);
}

/* The layer cache keeps the info as JSON; a lock's has no origin (nor,
 * for some prefixes, a subdir) and must come back all the same. */
static void info_json(void)
{
	ocil_conda_info in = {.python_version = ocil_xstrdup("3.11.2"),
			      .python_minor = ocil_xstrdup("3.11"),
			      .subdir = ocil_xstrdup("linux-64"),
			      .has_awslambdaric = true,
			      .records = 4};
	json_t *j = ocil_conda_info_to_json(&in);
	CHECK(j != NULL);
	ocil_conda_info back = {0};
	CHECK(ocil_conda_info_from_json(j, &back));
	CHECK(back.origin == NULL);
	CHECK_STREQ(back.subdir, "linux-64");
	CHECK_STREQ(back.python_minor, "3.11");
	CHECK(back.has_awslambdaric && back.records == 4);
	json_decref(j);
	ocil_conda_info_clear(&back);
	free(in.subdir);
	in.subdir = NULL;
	in.origin = ocil_xstrdup("/build/env");
	j = ocil_conda_info_to_json(&in);
	CHECK(ocil_conda_info_from_json(j, &back));
	CHECK_STREQ(back.origin, "/build/env");
	CHECK(back.subdir == NULL);
	json_decref(j);
	ocil_conda_info_clear(&back);
	ocil_conda_info_clear(&in);
}

TEST_MAIN(T(inspect), T(origin_fallback), T(layer), T(no_relocation), T(dest_too_long),
	  T(grow_into_padding), T(mamba_noarch_record), T(special_files), T(inspect_errors),
	  T(records), T(missing_files), T(subdir), T(platform), T(editable), T(awslambdaric),
	  T(excludes), T(report), T(info_json))
