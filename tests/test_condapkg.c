#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "base/util.h"
#include "layers/condapkg.h"
#include "support_tar.h"
#include "test.h"

#define DEST "/opt/conda-env"
#define TEXT_PH "/opt/anaconda1anaconda2anaconda3"
/* a binary placeholder longer than DEST, as conda-build pads it */
#define BIN_PH "/opt/conda/conda-bld/x_1/_h_env_placehold_placehold_placehold"

static const char index_json[] = "{\"name\": \"demo\", \"version\": \"1.0\", \"build\": \"h0_0\", "
				 "\"build_number\": 0, \"subdir\": \"linux-64\", "
				 "\"license\": \"MIT\", \"depends\": []}";

static const char paths_json[] =
    "{\"paths_version\": 1, \"paths\": ["
    "{\"_path\": \"bin/tool\", \"path_type\": \"hardlink\", \"prefix_placeholder\": "
    "\"" TEXT_PH "\", \"file_mode\": \"text\"},"
    "{\"_path\": \"bin/tool-again\", \"path_type\": \"hardlink\", \"prefix_placeholder\": "
    "\"" TEXT_PH "\", \"file_mode\": \"text\"},"
    "{\"_path\": \"lib/data.bin\", \"path_type\": \"hardlink\", \"prefix_placeholder\": "
    "\"" BIN_PH "\", \"file_mode\": \"binary\", \"size_in_bytes\": 80},"
    "{\"_path\": \"share/plain.txt\", \"path_type\": \"hardlink\", \"sha256\": "
    "\"aa23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"},"
    "{\"_path\": \"bin/t\", \"path_type\": \"softlink\"},"
    "{\"_path\": \"share/empty\", \"path_type\": \"directory\"}"
    "]}";

static const char bin_data[] = "A" BIN_PH "/lib\0B" BIN_PH "\0tail";

/* Write tmp/<fn> as a .tar.bz2 of info/index.json, info/paths.json (when
 * given) and the payload; returns its path. */
static char *mk_pkg(const char *fn, const char *index, const char *paths, const tent *payload,
		    size_t n)
{
	tent ents[16];
	size_t k = 0;
	ents[k++] = (tent){"info/index.json", 'f', index, 0, 0};
	if (paths != NULL)
		ents[k++] = (tent){"info/paths.json", 'f', paths, 0, 0};
	for (size_t i = 0; i < n && k < NENTS(ents); i++)
		ents[k++] = payload[i];
	return mk_tar(fn, "bzip2", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ents, k);
}

static const tent demo_payload[] = {
    {"bin/tool", 'f', "#!/bin/sh\necho " TEXT_PH "\n", 0, 0755},
    {"bin/tool-again", 'h', "bin/tool", 0, 0755},
    {"lib/data.bin", 'f', bin_data, sizeof(bin_data) - 1, 0644},
    {"share/plain.txt", 'f', "plain " TEXT_PH "\n", 0, 0644},
    {"share/unlisted.txt", 'f', "conda leaves me out\n", 0, 0644},
    {"bin/t", 'l', "tool", 0, 0},
};

static int open_md5(const char *file, ocil_condapkg **p, ocil_error **err)
{
	char md5[33], sha[65];
	uint64_t size = 0;
	if (ocil_hash_file(file, md5, sha, &size, err) < 0)
		return -1;
	return ocil_condapkg_open(file, md5, NULL, p, err);
}

/* Install with --strict or not; the warnings go to warns (when not NULL). */
static int install_layer_with(ocil_condapkg *p, bool strict, ocil_strv *warns, rlayer *l,
			      ocil_error **err)
{
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	ocil_condapkg_install_opts o = {
	    .dest = DEST, .python_minor = "3.11", .strict = strict, .warnings = warns};
	if (open_layer_writer(&bs, &w, err) < 0 ||
	    ocil_layer_writer_add_parents(w, DEST "/x", err) < 0 ||
	    ocil_condapkg_install(p, &o, w, err) < 0)
		return -1;
	return finish_read_layer(bs, w, l, err);
}

static int install_layer(ocil_condapkg *p, rlayer *l, ocil_error **err)
{
	cleanup_blobstore ocil_blobstore *bs = NULL;
	cleanup_layer_writer ocil_layer_writer *w = NULL;
	ocil_condapkg_install_opts o = {.dest = DEST, .python_minor = "3.11", .strict = true};
	if (open_layer_writer(&bs, &w, err) < 0 ||
	    ocil_layer_writer_add_parents(w, DEST "/x", err) < 0 ||
	    ocil_condapkg_install(p, &o, w, err) < 0)
		return -1;
	return finish_read_layer(bs, w, l, err);
}

static void test_install(void)
{
	ocil_error *err = NULL;
	cleanup_free char *file = mk_pkg("demo-1.0-h0_0.tar.bz2", index_json, paths_json,
					 demo_payload, NENTS(demo_payload));
	CHECK(file != NULL);
	ocil_condapkg *p = NULL;
	CHECK_OK(open_md5(file, &p, &err), &err);
	CHECK_STREQ(p->name, "demo");
	CHECK_STREQ(p->subdir, "linux-64");
	CHECK(!p->noarch_python && p->n_paths == 6);
	CHECK_OK(ocil_condapkg_map(p, NULL, &err), &err);
	rlayer l = {0};
	int r = install_layer(p, &l, &err);
	if (r < 0)
		fprintf(stderr, "install: %s\n", err ? err->msg : "?");
	const rentry *tool = rlayer_find(&l, "opt/conda-env/bin/tool");
	const rentry *again = rlayer_find(&l, "opt/conda-env/bin/tool-again");
	const rentry *bin = rlayer_find(&l, "opt/conda-env/lib/data.bin");
	const rentry *plain = rlayer_find(&l, "opt/conda-env/share/plain.txt");
	const rentry *link = rlayer_find(&l, "opt/conda-env/bin/t");
	bool ok = r == 0 && tool && again && bin && plain && link &&
		  strcmp(tool->data, "#!/bin/sh\necho " DEST "\n") == 0 && tool->perm == 0755 &&
		  strcmp(again->data, tool->data) == 0 && again->link == NULL &&
		  bin->size == sizeof(bin_data) - 1 &&
		  memcmp(bin->data, "A" DEST "/lib\0", strlen(DEST) + 6) == 0 &&
		  strcmp(plain->data, "plain " TEXT_PH "\n") == 0 &&
		  strcmp(link->link, "tool") == 0 &&
		  rlayer_find(&l, "opt/conda-env/share/unlisted.txt") == NULL &&
		  rlayer_find(&l, "opt/conda-env/share/empty/") != NULL;
	/* the binary string keeps its length: NUL padding up to the next string */
	size_t b = 1 + strlen(BIN_PH "/lib") + 1;
	ok = ok && memcmp(bin->data + b, "B" DEST "\0", strlen(DEST) + 2) == 0;
	rlayer_clear(&l);
	json_t *rec = ok ? ocil_condapkg_record(p, "https://c.example/ch/linux-64",
						"https://c.example/ch/linux-64/"
						"demo-1.0-h0_0.tar.bz2",
						DEST "/pkgs")
			 : NULL;
	const json_t *paths = json_object_get(json_object_get(rec, "paths_data"), "paths");
	ok = ok && json_array_size(json_object_get(rec, "files")) == 6 &&
	     json_array_size(paths) == 6 &&
	     strcmp(ocil_json_opt_string(rec, "fn"), "demo-1.0-h0_0.tar.bz2") == 0 &&
	     strcmp(ocil_json_opt_string(rec, "md5"), p->md5) == 0 &&
	     strcmp(ocil_json_opt_string(rec, "channel"), "https://c.example/ch/linux-64") == 0 &&
	     strcmp(ocil_json_opt_string(rec, "license"), "MIT") == 0 &&
	     ocil_json_opt_string(json_array_get(paths, 0), "sha256_in_prefix") != NULL &&
	     strcmp(ocil_json_opt_string(json_array_get(paths, 2), "file_mode"), "binary") == 0;
	json_decref(rec);
	ocil_condapkg_free(p);
	ocil_error_free(err);
	CHECK(ok);
}

static const char noarch_index[] =
    "{\"name\": \"greet\", \"version\": \"0.1\", \"build\": \"py_0\", \"noarch\": \"python\", "
    "\"subdir\": \"noarch\"}";

static void test_noarch_python(void)
{
	ocil_error *err = NULL;
	static const tent payload[] = {
	    {"info/link.json", 'f',
	     "{\"noarch\": {\"type\": \"python\", \"entry_points\": [\"greet = greet.cli:main\"]}}",
	     0, 0},
	    {"site-packages/greet/__init__.py", 'f', "X = 1\n", 0, 0},
	    {"python-scripts/greet-tool", 'f', "#!/bin/sh\n", 0, 0755},
	};
	cleanup_free char *file =
	    mk_pkg("greet-0.1-py_0.tar.bz2", noarch_index,
		   "{\"paths\": [{\"_path\": \"site-packages/greet/__init__.py\"}, {\"_path\": "
		   "\"python-scripts/greet-tool\"}]}",
		   payload, NENTS(payload));
	CHECK(file != NULL);
	ocil_condapkg *p = NULL;
	CHECK_OK(open_md5(file, &p, &err), &err);
	CHECK(p->noarch_python && p->entry_points.n == 1);
	int r = ocil_condapkg_map(p, NULL, &err);
	bool ok = r < 0 && err != NULL &&
		  strstr(err->msg, "is noarch: python but the lock has no "
				   "python package") != NULL;
	ocil_error_free(err);
	err = NULL;
	ocil_condapkg_free(p);
	CHECK(ok);
	CHECK_OK(open_md5(file, &p, &err), &err);
	rlayer l = {0};
	r = ocil_condapkg_map(p, "3.11", &err);
	if (r == 0)
		r = install_layer(p, &l, &err);
	if (r < 0)
		fprintf(stderr, "noarch: %s\n", err ? err->msg : "?");
	const rentry *ep = rlayer_find(&l, "opt/conda-env/bin/greet");
	ok = r == 0 &&
	     rlayer_find(&l, "opt/conda-env/lib/python3.11/site-packages/greet/__init__.py") &&
	     rlayer_find(&l, "opt/conda-env/bin/greet-tool") && ep != NULL &&
	     ocil_str_has_prefix(ep->data, "#!" DEST "/bin/python3.11\n") &&
	     strstr(ep->data, "from greet.cli import main\n") != NULL &&
	     strstr(ep->data, "sys.exit(main())") != NULL && ep->perm == 0755 &&
	     strcmp(p->paths[2].path_type, "unix_python_entry_point") == 0;
	rlayer_clear(&l);
	ocil_condapkg_free(p);
	ocil_error_free(err);
	CHECK(ok);
}

/* Opening (and installing) fails with OCIL_E_INPUT and a message holding needle. */
static bool fails(const char *fn, const char *index, const char *paths, const tent *payload,
		  size_t n, const char *needle)
{
	ocil_error *err = NULL;
	cleanup_free char *file = mk_pkg(fn, index, paths, payload, n);
	ocil_condapkg *p = NULL;
	rlayer l = {0};
	int r = file ? open_md5(file, &p, &err) : 0;
	if (r == 0 && p != NULL)
		r = ocil_condapkg_map(p, "3.11", &err);
	if (r == 0 && p != NULL)
		r = install_layer(p, &l, &err);
	bool ok = r < 0 && err != NULL && err->code == OCIL_E_INPUT && strstr(err->msg, needle);
	if (!ok)
		fprintf(stderr, "%s: want \"%s\", got: %s\n", fn, needle,
			err ? err->msg : "success");
	rlayer_clear(&l);
	ocil_condapkg_free(p);
	ocil_error_free(err);
	return ok;
}

static void test_bad_packages(void)
{
	static const tent one[] = {{"bin/a", 'f', "a\n", 0, 0}};
	CHECK(fails("a-1-0.tar.bz2", "not json", NULL, one, 1, "info/index.json"));
	CHECK(fails("a-1-0.tar.bz2", "{\"name\": \"a\"}", NULL, one, 1, "version"));
	CHECK(fails("a-1-0.tar.bz2", index_json, "{\"paths\": 3}", one, 1, "no \"paths\" list"));
	CHECK(fails("a-1-0.tar.bz2", index_json, "{\"paths\": [{\"_path\": \"../etc/x\"}]}", one, 1,
		    "path \"../etc/x\" escapes the prefix"));
	/* (install_layer is --strict) */
	CHECK(fails("a-1-0.tar.bz2", index_json,
		    "{\"paths\": [{\"_path\": \"bin/a\"}, {\"_path\": \"bin/gone\"}]}", one, 1,
		    "a-1-0.tar.bz2: info/paths.json lists bin/gone, which is not in the package"));
	CHECK(fails("a-1-0.tar.bz2", index_json,
		    "{\"paths\": [{\"_path\": \"bin/a\", \"prefix_placeholder\": \"/short\", "
		    "\"file_mode\": \"binary\"}]}",
		    one, 1,
		    "a-1-0.tar.bz2: bin/a: new prefix " DEST
		    " is longer than the placeholder conda "
		    "recorded (14 > 6 bytes)"));
	CHECK(fails("a-1-0.tar.bz2", index_json,
		    "{\"paths\": [{\"_path\": \"bin/a\", \"prefix_placeholder\": \"/p\", "
		    "\"file_mode\": \"weird\"}]}",
		    one, 1, "unknown file_mode \"weird\""));
	static const tent dangling[] = {{"bin/b", 'h', "bin/nothere", 0, 0}};
	CHECK(fails("a-1-0.tar.bz2", index_json, "{\"paths\": [{\"_path\": \"bin/b\"}]}", dangling,
		    1, "bin/b is a hardlink to bin/nothere, which is not in the package"));
	CHECK(
	    fails("a-1-0.tar.bz2",
		  "{\"name\": \"a\", \"version\": \"1\", \"build\": \"0\", \"noarch\": \"python\"}",
		  "{\"paths\": []}",
		  (const tent[]){{"info/link.json", 'f',
				  "{\"noarch\": {\"type\": \"python\", \"entry_points\": "
				  "[\"nonsense\"]}}",
				  0, 0}},
		  1, "entry point 0 is not \"name = module:func\""));
	CHECK(fails("a-1-0.zip", index_json, NULL, one, 1, "not a conda package"));
	/* a symlink over a directory already written, then a file under it:
	 * an extractor would write lib/x/passwd to the image's /etc */
	static const tent through[] = {{"lib/x/a", 'f', "a\n", 0, 0},
				       {"lib/x", 'l', "/etc", 0, 0},
				       {"lib/x/passwd", 'f', "root::0:0::/:/bin/sh\n", 0, 0}};
	CHECK(fails("a-1-0.tar.bz2", index_json,
		    "{\"paths\": [{\"_path\": \"lib/x/a\"}, {\"_path\": \"lib/x\", "
		    "\"path_type\": \"softlink\"}, {\"_path\": \"lib/x/passwd\"}]}",
		    through, NENTS(through),
		    "a-1-0.tar.bz2: lib/x: layer writer: " DEST
		    "/lib/x: a symlink where a directory was added"));
}

static void test_bad_files(void)
{
	ocil_error *err = NULL;
	ocil_condapkg *p = NULL;
	cleanup_free char *file = mk_pkg("demo-1.0-h0_0.tar.bz2", index_json, paths_json,
					 demo_payload, NENTS(demo_payload));
	CHECK(file != NULL);
	CHECK_FAIL(ocil_condapkg_open(file, "0123456789abcdef0123456789abcdef", NULL, &p, &err),
		   &err, OCIL_E_INPUT, "demo-1.0-h0_0.tar.bz2: md5 mismatch (the lock says 0123");
	CHECK_FAIL(ocil_condapkg_open(file, NULL, "00", &p, &err), &err, OCIL_E_INPUT,
		   "sha256 mismatch");
	CHECK_FAIL(ocil_condapkg_open(file, NULL, NULL, &p, &err), &err, OCIL_E_INPUT,
		   "no md5 or sha256 to check it against");
	CHECK(putn("junk-1-0.conda", "not a zip", 9, 0644) == 0);
	cleanup_free char *junk = tpath("junk-1-0.conda");
	CHECK_FAIL(open_md5(junk, &p, &err), &err, OCIL_E_INPUT, "junk-1-0.conda");
	cleanup_free char *gone = tpath("gone-1-0.conda");
	CHECK_FAIL(ocil_condapkg_open(gone, "0123456789abcdef0123456789abcdef", NULL, &p, &err),
		   &err, OCIL_E_INPUT, "gone-1-0.conda");
	CHECK(p == NULL);
}

/* What is installed is what was verified: a package file replaced under
 * the same name, or rewritten in place, after it was opened is an error,
 * and its new bytes are not installed. */
static void test_swapped_file(void)
{
	ocil_error *err = NULL;
	ocil_condapkg *p = NULL;
	static const tent evil[] = {{"bin/tool", 'f', "#!/bin/sh\necho pwned\n", 0, 0755},
				    {"bin/tool-again", 'f', "x", 0, 0755},
				    {"lib/data.bin", 'f', bin_data, sizeof(bin_data) - 1, 0644},
				    {"share/plain.txt", 'f', "x", 0, 0644},
				    {"bin/t", 'l', "tool", 0, 0}};
	cleanup_free char *file = mk_pkg("demo-1.0-h0_0.tar.bz2", index_json, paths_json,
					 demo_payload, NENTS(demo_payload));
	CHECK(file != NULL);
	CHECK_OK(open_md5(file, &p, &err), &err);
	CHECK_OK(ocil_condapkg_map(p, NULL, &err), &err);
	cleanup_free char *other =
	    mk_pkg("evil.tar.bz2", index_json, paths_json, evil, NENTS(evil));
	CHECK(other != NULL && rename(other, file) == 0);
	rlayer l = {0};
	CHECK_FAIL(install_layer(p, &l, &err), &err, OCIL_E_INPUT,
		   "demo-1.0-h0_0.tar.bz2 was changed or replaced while it was being read");
	rlayer_clear(&l);
	ocil_condapkg_free(p);
	p = NULL;

	/* in place (mk_tar truncates and rewrites the same inode), to a
	 * different size so the change shows whatever the clock's grain */
	cleanup_free char *again = mk_pkg("demo-1.0-h0_0.tar.bz2", index_json, paths_json,
					  demo_payload, NENTS(demo_payload));
	CHECK(again != NULL);
	CHECK_OK(open_md5(file, &p, &err), &err);
	CHECK_OK(ocil_condapkg_map(p, NULL, &err), &err);
	free(mk_pkg("demo-1.0-h0_0.tar.bz2", index_json, paths_json, evil, NENTS(evil)));
	struct stat st;
	CHECK(stat(file, &st) == 0 && st.st_ino == p->src.st.st_ino &&
	      st.st_size != p->src.st.st_size);
	CHECK_FAIL(install_layer(p, &l, &err), &err, OCIL_E_INPUT,
		   "demo-1.0-h0_0.tar.bz2 was changed or replaced while it was being read");
	rlayer_clear(&l);
	ocil_condapkg_free(p);
}

/* A .conda as conda-package-handling writes it: a stored zip of an empty
 * metadata.json, info-<dist>.tar.zst then pkg-<dist>.tar.zst (the order of
 * the real ncurses-6.2-he6710b0_1.conda). */
static char *mk_conda(const char *dist, const tent *info, size_t n_info, const tent *pkg,
		      size_t n_pkg)
{
	cleanup_free char *iname = ocil_xasprintf("info-%s.tar.zst", dist);
	cleanup_free char *pname = ocil_xasprintf("pkg-%s.tar.zst", dist);
	cleanup_free char *ipath =
	    mk_tar(iname, "zstd", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, info, n_info);
	cleanup_free char *ppath =
	    mk_tar(pname, "zstd", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, pkg, n_pkg);
	cleanup_free char *idata = NULL, *pdata = NULL;
	size_t ilen = 0, plen = 0;
	ocil_error *err = NULL;
	if (ipath == NULL || ppath == NULL ||
	    ocil_read_file(ipath, (size_t)1 << 24, &idata, &ilen, &err) < 0 ||
	    ocil_read_file(ppath, (size_t)1 << 24, &pdata, &plen, &err) < 0) {
		ocil_error_free(err);
		return NULL;
	}
	const tent members[] = {{"metadata.json", 'f', "", 0, 0},
				{iname, 'f', idata, ilen, 0},
				{pname, 'f', pdata, plen, 0}};
	cleanup_free char *fn = ocil_xasprintf("%s.conda", dist);
	return mk_tar(fn, NULL, ARCHIVE_FORMAT_ZIP, members, NENTS(members));
}

/* conda extracts both tarballs of a .conda into one directory, so what the
 * info tarball holds outside info/ is installed too (issue 14: the real
 * ncurses-6.2-he6710b0_1.conda of Anaconda main keeps lib/terminfo ->
 * ../share/terminfo there). */
static void test_conda_info_payload(void)
{
	static const char paths[] =
	    "{\"paths_version\": 1, \"paths\": ["
	    "{\"_path\": \"lib/terminfo\", \"path_type\": \"softlink\"},"
	    "{\"_path\": \"share/terminfo/x/xterm\", \"path_type\": \"hardlink\"},"
	    "{\"_path\": \"share/doc/README\", \"path_type\": \"hardlink\", "
	    "\"prefix_placeholder\": \"" TEXT_PH "\", \"file_mode\": \"text\"}]}";
	static const tent info[] = {{"info/index.json", 'f', index_json, 0, 0},
				    {"info/paths.json", 'f', paths, 0, 0},
				    {"lib/terminfo", 'l', "../share/terminfo", 0, 0},
				    {"share/doc/README", 'f', "at " TEXT_PH "\n", 0, 0}};
	static const tent pkg[] = {{"share/terminfo/x/xterm", 'f', "xterm\n", 0, 0}};
	cleanup_free char *file = mk_conda("demo-1.0-h0_0", info, NENTS(info), pkg, NENTS(pkg));
	CHECK(file != NULL);
	ocil_error *err = NULL;
	ocil_condapkg *p = NULL;
	CHECK_OK(open_md5(file, &p, &err), &err);
	CHECK_OK(ocil_condapkg_map(p, NULL, &err), &err);
	rlayer l = {0};
	int r = install_layer(p, &l, &err); /* strict: nothing is missing */
	if (r < 0)
		fprintf(stderr, "install: %s\n", err ? err->msg : "?");
	const rentry *link = rlayer_find(&l, "opt/conda-env/lib/terminfo");
	const rentry *xterm = rlayer_find(&l, "opt/conda-env/share/terminfo/x/xterm");
	const rentry *readme = rlayer_find(&l, "opt/conda-env/share/doc/README");
	bool ok =
	    r == 0 && link && xterm && readme && strcmp(link->link, "../share/terminfo") == 0 &&
	    strcmp(xterm->data, "xterm\n") == 0 && strcmp(readme->data, "at " DEST "\n") == 0 &&
	    rlayer_find(&l, "opt/conda-env/info/index.json") == NULL;
	rlayer_clear(&l);
	ocil_condapkg_free(p);
	ocil_error_free(err);
	CHECK(ok);
}

/* A path paths.json lists that neither tarball holds: left out with a
 * warning (conda's safety_checks: warn) and out of the record; an error
 * under --strict. */
static void test_missing_path(void)
{
	static const char paths[] = "{\"paths\": [{\"_path\": \"bin/a\"}, {\"_path\": "
				    "\"lib/gone\"}, {\"_path\": \"share/gone\"}]}";
	static const tent info[] = {{"info/index.json", 'f', index_json, 0, 0},
				    {"info/paths.json", 'f', paths, 0, 0}};
	static const tent pkg[] = {{"bin/a", 'f', "a\n", 0, 0755}};
	cleanup_free char *conda = mk_conda("demo-1.0-h0_0", info, NENTS(info), pkg, NENTS(pkg));
	cleanup_free char *bz2 = mk_pkg("demo-1.0-h0_0.tar.bz2", index_json, paths, pkg, 1);
	const char *files[] = {conda, bz2};
	for (size_t i = 0; i < 2; i++) {
		CHECK(files[i] != NULL);
		ocil_error *err = NULL;
		ocil_condapkg *p = NULL;
		CHECK_OK(open_md5(files[i], &p, &err), &err);
		CHECK_OK(ocil_condapkg_map(p, NULL, &err), &err);
		rlayer l = {0};
		cleanup_strv ocil_strv warns = {0};
		int r = install_layer_with(p, false, &warns, &l, &err);
		const char *fn = strrchr(files[i], '/') + 1;
		char w0[256], w1[256];
		snprintf(
		    w0, sizeof(w0),
		    "%s: info/paths.json lists lib/gone, which is not in the package; left out",
		    fn);
		snprintf(w1, sizeof(w1),
			 "%s: info/paths.json lists share/gone, which is not in the package; left "
			 "out",
			 fn);
		json_t *rec = r == 0 ? ocil_condapkg_record(p, "c", "u", "/pkgs") : NULL;
		const json_t *recorded = json_object_get(rec, "files");
		bool ok =
		    r == 0 && warns.n == 2 && strcmp(warns.v[0], w0) == 0 &&
		    strcmp(warns.v[1], w1) == 0 && rlayer_find(&l, "opt/conda-env/bin/a") != NULL &&
		    rlayer_find(&l, "opt/conda-env/lib/gone") == NULL &&
		    json_array_size(recorded) == 1 &&
		    json_array_size(json_object_get(json_object_get(rec, "paths_data"), "paths")) ==
			1 &&
		    strcmp(json_string_value(json_array_get(recorded, 0)), "bin/a") == 0;
		if (!ok)
			for (size_t k = 0; k < warns.n; k++)
				fprintf(stderr, "warning: %s\n", warns.v[k]);
		json_decref(rec);
		rlayer_clear(&l);
		ocil_condapkg_free(p);
		CHECK_OK(r, &err);
		CHECK(ok);
		p = NULL;
		CHECK_OK(open_md5(files[i], &p, &err), &err);
		CHECK_OK(ocil_condapkg_map(p, NULL, &err), &err);
		char needle[512];
		snprintf(needle, sizeof(needle),
			 "%s: info/paths.json lists lib/gone, which is not in the package",
			 files[i]);
		CHECK_FAIL(install_layer_with(p, true, NULL, &l, &err), &err, OCIL_E_INPUT, needle);
		rlayer_clear(&l);
		ocil_condapkg_free(p);
	}
}

TEST_MAIN(T(test_install), T(test_noarch_python), T(test_bad_packages), T(test_bad_files),
	  T(test_swapped_file), T(test_conda_info_payload), T(test_missing_path))
