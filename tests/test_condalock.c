#include <string.h>

#include "base/util.h"
#include "layers/condalock.h"
#include "test.h"

#define CH "https://conda.anaconda.org/conda-forge"
#define MD5 "0123456789abcdef0123456789ABCDEF"
#define SHA "aa23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char *write_lock(const char *text)
{
	char *path = ocil_xasprintf("%s/lock", ocil_test_tmpdir());
	ocil_error *err = NULL;
	if (ocil_write_file_atomic(path, text, strlen(text), &err) < 0) {
		ocil_error_free(err);
		free(path);
		return NULL;
	}
	return path;
}

static int read_text(const char *text, const char *subdir, ocil_condalock *l, ocil_error **err)
{
	cleanup_free char *path = write_lock(text);
	return ocil_condalock_read(path, subdir, l, err);
}

static void test_explicit(void)
{
	ocil_error *err = NULL;
	ocil_condalock l;
	CHECK_OK(read_text("# platform: linux-64\n@EXPLICIT\n"
			   "  " CH "/linux-64/python-3.11.2-h_0.conda#" MD5 "  \n"
			   "\n" CH "/noarch/greet-0.1-py_0.tar.bz2#sha256:" SHA "\n",
			   "linux-64", &l, &err),
		 &err);
	CHECK(l.n_pkgs == 2 && !l.yaml && l.n_wheels == 0);
	CHECK_STREQ(l.pkgs[0].url, CH "/linux-64/python-3.11.2-h_0.conda");
	CHECK_STREQ(l.pkgs[0].fn, "python-3.11.2-h_0.conda");
	CHECK_STREQ(l.pkgs[0].channel, CH);
	CHECK_STREQ(l.pkgs[0].subdir, "linux-64");
	CHECK_STREQ(l.pkgs[0].md5, "0123456789abcdef0123456789abcdef");
	CHECK(l.pkgs[0].sha256 == NULL && l.pkgs[0].line == 3);
	CHECK_STREQ(l.pkgs[1].subdir, "noarch");
	CHECK_STREQ(l.pkgs[1].sha256, SHA);
	CHECK(l.pkgs[1].md5 == NULL);
	ocil_condalock_clear(&l);
}

static void test_explicit_bad(void)
{
	ocil_error *err = NULL;
	ocil_condalock l;
	CHECK_FAIL(read_text("@EXPLICIT\n" CH "/linux-64/a-1-0.conda\n", "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "lock:2: " CH "/linux-64/a-1-0.conda has no #md5");
	CHECK_FAIL(read_text("@EXPLICIT\n" CH "/linux-64/a-1-0.conda#abc\n", "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "lock:2: md5 is not 32 hex digits");
	CHECK_FAIL(
	    read_text("@EXPLICIT\n" CH "/linux-64/a-1-0.whl#" MD5 "\n", "linux-64", &l, &err), &err,
	    OCIL_E_INPUT, "is not a conda package URL");
	CHECK_FAIL(read_text("@EXPLICIT\na-1-0.conda#" MD5 "\n", "linux-64", &l, &err), &err,
		   OCIL_E_INPUT, "is not a conda package URL");
	CHECK_FAIL(read_text(CH "/linux-64/a-1-0.conda#" MD5 "\n@EXPLICIT\n", "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "lock:1: package line before the @EXPLICIT line");
	CHECK_FAIL(read_text("# nothing\n@EXPLICIT\n", "linux-64", &l, &err), &err, OCIL_E_INPUT,
		   "lists no conda packages");
	CHECK_FAIL(read_text("@EXPLICIT\n" CH "/win-64/vc-14-h_0.conda#" MD5 "\n" CH
			     "/linux-64/a-1-0.conda#" MD5 "\n" CH "/osx-arm64/b-1-0.tar.bz2#" MD5
			     "\n",
			     "linux-64", &l, &err),
		   &err, OCIL_E_INPUT,
		   "lists 2 packages for another platform than linux-64: win-64/vc-14-h_0.conda, "
		   "osx-arm64/b-1-0.tar.bz2");
	CHECK_FAIL(read_text("@EXPLICIT\n" CH "/linux-64/a-1-0.conda#" MD5 "\n", "linux-aarch64",
			     &l, &err),
		   &err, OCIL_E_INPUT, "another platform than linux-aarch64: linux-64/a-1-0.conda");
}

static const char yaml_lock[] =
    "version: 1\n"
    "metadata:\n"
    "  platforms: [linux-64, osx-64]\n"
    "package:\n"
    "- name: python\n"
    "  version: 3.11.2\n"
    "  manager: conda\n"
    "  platform: linux-64\n"
    "  url: " CH "/linux-64/python-3.11.2-h_0.conda\n"
    "  hash:\n"
    "    md5: " MD5 "\n"
    "    sha256: " SHA "\n"
    "- name: python\n"
    "  manager: conda\n"
    "  platform: osx-64\n"
    "  url: " CH "/osx-64/python-3.11.2-h_0.conda\n"
    "  hash: {md5: " MD5 "}\n"
    "- name: awslambdaric\n"
    "  manager: pip\n"
    "  platform: linux-64\n"
    "  url: https://files.pythonhosted.org/x/awslambdaric-2.0-py3-none-any.whl\n"
    "  hash: {sha256: " SHA "}\n";

static void test_yaml(void)
{
	ocil_error *err = NULL;
	ocil_condalock l;
	CHECK_OK(read_text(yaml_lock, "linux-64", &l, &err), &err);
	CHECK(l.yaml && l.n_pkgs == 1 && l.n_wheels == 1);
	CHECK_STREQ(l.pkgs[0].fn, "python-3.11.2-h_0.conda");
	CHECK_STREQ(l.pkgs[0].md5, "0123456789abcdef0123456789abcdef");
	CHECK_STREQ(l.pkgs[0].sha256, SHA);
	CHECK(l.pkgs[0].line == 5);
	CHECK_STREQ(l.wheels[0].fn, "awslambdaric-2.0-py3-none-any.whl");
	CHECK(l.wheels[0].subdir == NULL);
	ocil_condalock_clear(&l);
	CHECK_OK(read_text(yaml_lock, "osx-64", &l, &err), &err);
	CHECK(l.n_pkgs == 1 && l.n_wheels == 0);
	ocil_condalock_clear(&l);
	CHECK_FAIL(read_text(yaml_lock, "linux-aarch64", &l, &err), &err, OCIL_E_INPUT,
		   "lists no conda packages for linux-aarch64");
}

static void test_yaml_bad(void)
{
	ocil_error *err = NULL;
	ocil_condalock l;
	CHECK_FAIL(read_text("a: [b\n", "linux-64", &l, &err), &err, OCIL_E_INPUT,
		   "not an @EXPLICIT lock nor YAML");
	CHECK_FAIL(read_text("version: 1\n", "linux-64", &l, &err), &err, OCIL_E_INPUT,
		   "no \"package\" list");
	CHECK_FAIL(read_text("package:\n- name: a\n  platform: linux-64\n", "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "lock:2: a package entry needs platform, manager and url");
	CHECK_FAIL(read_text("package:\n- {platform: linux-64, manager: conda, url: " CH
			     "/linux-64/a-1-0.conda}\n",
			     "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "has no hash.md5 or hash.sha256");
	CHECK_FAIL(read_text("package:\n- {platform: linux-64, manager: cargo, url: x}\n",
			     "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "unknown manager \"cargo\"");
	CHECK_FAIL(read_text("package:\n- {platform: linux-64, manager: conda, url: " CH
			     "/win-64/a-1-0.conda, hash: {md5: " MD5 "}}\n",
			     "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "another platform than linux-64: win-64/a-1-0.conda");
}

/* An anaconda.org token or a password in a URL is not repeated in errors. */
static void test_secrets_masked(void)
{
	ocil_error *err = NULL;
	ocil_condalock l;
	CHECK_FAIL(read_text("@EXPLICIT\nhttps://conda.anaconda.org/t/tk-s3cret/conda-forge/"
			     "linux-64/a-1-0.conda\n",
			     "linux-64", &l, &err),
		   &err, OCIL_E_INPUT,
		   "https://conda.anaconda.org/t/***/conda-forge/linux-64/a-1-0.conda has no #md5");
	CHECK_FAIL(read_text("@EXPLICIT\nhttps://u:pw-s3cret@h.example/linux-64/a.zip#" MD5 "\n",
			     "linux-64", &l, &err),
		   &err, OCIL_E_INPUT, "\"https://u:***@h.example/linux-64/a.zip\" is not a conda");
	CHECK_FAIL(read_text("package:\n- {platform: linux-64, manager: conda, url: "
			     "https://h.example/t/tk-s3cret/c/linux-64/a-1-0.conda}\n",
			     "linux-64", &l, &err),
		   &err, OCIL_E_INPUT,
		   "https://h.example/t/***/c/linux-64/a-1-0.conda has no hash");
}

/* The URL is fetched as written; what the image records has no token. */
static void test_public_url(void)
{
	ocil_error *err = NULL;
	ocil_condalock l;
	CHECK_OK(read_text("@EXPLICIT\nhttps://u:pw@conda.anaconda.org/t/tk-s3cret/conda-forge/"
			   "linux-64/a-1-0.conda#" MD5 "\n",
			   "linux-64", &l, &err),
		 &err);
	if (l.n_pkgs == 1) {
		CHECK_STREQ(l.pkgs[0].url,
			    "https://u:pw@conda.anaconda.org/t/tk-s3cret/conda-forge/"
			    "linux-64/a-1-0.conda");
		CHECK_STREQ(l.pkgs[0].public_url,
			    "https://conda.anaconda.org/conda-forge/linux-64/a-1-0.conda");
		CHECK_STREQ(l.pkgs[0].channel, "https://conda.anaconda.org/conda-forge");
		CHECK_STREQ(l.pkgs[0].subdir, "linux-64");
	}
	CHECK(l.n_pkgs == 1);
	ocil_condalock_clear(&l);
}

TEST_MAIN(T(test_explicit), T(test_explicit_bad), T(test_yaml), T(test_yaml_bad),
	  T(test_secrets_masked), T(test_public_url))
