#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "base/util.h"
#include "registry/challenge.h"
#include "registry/credentials.h"
#include "test.h"

/* --- WWW-Authenticate --- */

static void challenge_ecr(void)
{
	ocil_error *err = NULL;
	ocil_challenge c;
	/* Exactly what public.ecr.aws sends (see REFERENCE.md). */
	CHECK_OK(ocil_challenge_parse(
		     "Bearer realm=\"https://public.ecr.aws/token/\",service=\"public.ecr.aws\"",
		     &c, &err),
		 &err);
	CHECK_STREQ(c.scheme, "bearer");
	CHECK_STREQ(c.realm, "https://public.ecr.aws/token/");
	CHECK_STREQ(c.service, "public.ecr.aws");
	CHECK(c.scope == NULL);
	ocil_challenge_clear(&c);

	/* docker distribution: scope with a colon-separated action list and a
	 * comma inside quotes; error param ignored. */
	CHECK_OK(ocil_challenge_parse("Bearer realm=\"https://auth.docker.io/token\","
				      "service=\"registry.docker.io\","
				      "scope=\"repository:library/python:pull,push\","
				      "error=\"insufficient_scope\"",
				      &c, &err),
		 &err);
	CHECK_STREQ(c.realm, "https://auth.docker.io/token");
	CHECK_STREQ(c.service, "registry.docker.io");
	CHECK_STREQ(c.scope, "repository:library/python:pull,push");
	ocil_challenge_clear(&c);
}

static void challenge_forms(void)
{
	ocil_error *err = NULL;
	ocil_challenge c;
	/* Case-insensitive scheme and names, spaces around '=' and ',',
	 * escapes in quoted strings, unquoted tokens. */
	CHECK_OK(
	    ocil_challenge_parse("  BEARER   Realm = \"https://x/t?a=1\" ,  service=reg.example "
				 ", foo=\"a\\\"b\\\\c\", scope=\"q\\\"uo\\te\"",
				 &c, &err),
	    &err);
	CHECK_STREQ(c.scheme, "bearer");
	CHECK_STREQ(c.realm, "https://x/t?a=1");
	CHECK_STREQ(c.service, "reg.example");
	CHECK_STREQ(c.scope, "q\"uote");
	ocil_challenge_clear(&c);

	CHECK_OK(ocil_challenge_parse("Basic realm=\"Registry Realm\"", &c, &err), &err);
	CHECK_STREQ(c.scheme, "basic");
	CHECK_STREQ(c.realm, "Registry Realm");
	ocil_challenge_clear(&c);

	/* A bare scheme, a token68, and a second challenge after the first. */
	CHECK_OK(ocil_challenge_parse("Basic", &c, &err), &err);
	CHECK_STREQ(c.scheme, "basic");
	CHECK(c.realm == NULL);
	ocil_challenge_clear(&c);
	CHECK_OK(ocil_challenge_parse("Negotiate abc+/def==", &c, &err), &err);
	CHECK_STREQ(c.scheme, "negotiate");
	ocil_challenge_clear(&c);
	CHECK_OK(ocil_challenge_parse("Basic realm=\"a, b\", Bearer realm=\"https://t\"", &c, &err),
		 &err);
	CHECK_STREQ(c.scheme, "basic");
	CHECK_STREQ(c.realm, "a, b");
	ocil_challenge_clear(&c);
}

static void challenge_garbage(void)
{
	ocil_error *err = NULL;
	ocil_challenge c;
	CHECK_FAIL(ocil_challenge_parse("", &c, &err), &err, OCIL_E_REGISTRY, "no auth scheme");
	CHECK_FAIL(ocil_challenge_parse("\"Bearer\"", &c, &err), &err, OCIL_E_REGISTRY,
		   "no auth scheme");
	CHECK_FAIL(ocil_challenge_parse("Bearer realm=\"https://x", &c, &err), &err,
		   OCIL_E_REGISTRY, "unterminated");
	CHECK_FAIL(ocil_challenge_parse("Bearer realm=\"x\\", &c, &err), &err, OCIL_E_REGISTRY,
		   "unterminated");
	CHECK_FAIL(ocil_challenge_parse("Bearer realm=", &c, &err), &err, OCIL_E_REGISTRY,
		   "without a value");
	CHECK_FAIL(ocil_challenge_parse("Bearer realm", &c, &err), &err, OCIL_E_REGISTRY,
		   "expected '='");
	CHECK_FAIL(ocil_challenge_parse("Bearer realm=\"a\" service=\"b\"", &c, &err), &err,
		   OCIL_E_REGISTRY, "expected ','");
	CHECK_FAIL(ocil_challenge_parse("Bearer realm=\"a\",realm=\"b\"", &c, &err), &err,
		   OCIL_E_REGISTRY, "twice");
	CHECK_FAIL(ocil_challenge_parse("Bearer ,=x", &c, &err), &err, OCIL_E_REGISTRY,
		   "parameter name");
	CHECK_FAIL(ocil_challenge_parse("Bearer\x01", &c, &err), &err, OCIL_E_REGISTRY,
		   "space after the scheme");
	char *huge = ocil_xmalloc(9000);
	memset(huge, 'a', 8999);
	huge[8999] = '\0';
	memcpy(huge, "Bearer realm=", 13);
	int r = ocil_challenge_parse(huge, &c, &err);
	free(huge);
	CHECK(r < 0 && err != NULL && strstr(err->msg, "8 KiB") != NULL);
	ocil_error_free(err);
}

/* --- base64 --- */

static void base64(void)
{
	ocil_error *err = NULL;
	char *out = NULL;
	size_t len = 0;
	CHECK_OK(ocil_base64_decode("dXNlcjpwYXNz", "x", &out, &len, &err), &err);
	CHECK_STREQ(out, "user:pass");
	CHECK(len == 9);
	free(out);
	CHECK_OK(ocil_base64_decode("YTpi", "x", &out, &len, &err), &err);
	CHECK_STREQ(out, "a:b");
	free(out);
	/* Padding optional, but right when present. */
	CHECK_OK(ocil_base64_decode("YTpiYw", "x", &out, &len, &err), &err);
	CHECK_STREQ(out, "a:bc");
	free(out);
	CHECK_OK(ocil_base64_decode("YTpiYw==", "x", &out, &len, &err), &err);
	CHECK_STREQ(out, "a:bc");
	free(out);
	CHECK_FAIL(ocil_base64_decode("YTpiYw=", "A", &out, &len, &err), &err, OCIL_E_INPUT,
		   "A: invalid base64");
	CHECK_FAIL(ocil_base64_decode("YTpiY===", "A", &out, &len, &err), &err, OCIL_E_INPUT,
		   "invalid base64");
	CHECK_FAIL(ocil_base64_decode("YTp!", "A", &out, &len, &err), &err, OCIL_E_INPUT,
		   "unexpected character at offset 3");
	CHECK_FAIL(ocil_base64_decode("YTpiY", "A", &out, &len, &err), &err, OCIL_E_INPUT,
		   "bad length");
	CHECK_FAIL(ocil_base64_decode("YTpiYx==", "A", &out, &len, &err), &err, OCIL_E_INPUT,
		   "trailing bits");
	/* OpenSSL's decoder skips blanks around the text; we do not */
	CHECK_FAIL(ocil_base64_decode(" YTpiYTp", "A", &out, &len, &err), &err, OCIL_E_INPUT,
		   "unexpected character at offset 0");
	CHECK_FAIL(ocil_base64_decode("YTpi\nYTp", "A", &out, &len, &err), &err, OCIL_E_INPUT,
		   "unexpected character at offset 4");
	CHECK_OK(ocil_base64_decode("", "x", &out, &len, &err), &err);
	CHECK(len == 0 && out != NULL && out[0] == '\0');
	free(out);

	for (size_t n = 0; n < 8; n++) {
		const char *src = "\xff\x00zq:p!w";
		char *enc = ocil_base64_encode(src, n);
		CHECK(strlen(enc) == (n + 2) / 3 * 4);
		CHECK(ocil_base64_decode(enc, "x", &out, &len, &err) == 0);
		CHECK(len == n && memcmp(out, src, n) == 0);
		free(enc);
		free(out);
	}
	char *e = ocil_base64_encode("user:pass", 9);
	CHECK_STREQ(e, "dXNlcjpwYXNz");
	free(e);
}

/* --- auth files --- */

static char *write_file(const char *dir, const char *name, const char *content, int mode);
/* write_file when the test needs no path back */
static void put_file(const char *dir, const char *name, const char *content, int mode)
{
	free(write_file(dir, name, content, mode));
}

static char *write_file(const char *dir, const char *name, const char *content, int mode)
{
	char *path = ocil_xasprintf("%s/%s", dir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	ocil_error *err = NULL;
	if (ocil_mkdir_p(path, 0755, &err) < 0) {
		fprintf(stderr, "%s\n", err->msg);
		abort();
	}
	*slash = '/';
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(content, f) < 0 || fclose(f) != 0)
		abort();
	chmod(path, (mode_t)mode);
	return path;
}

/* Point every place ocil_auth_find looks at under dir, empty. */
static void isolate(const char *dir)
{
	cleanup_free char *home = ocil_xasprintf("%s/home", dir);
	ocil_error *err = NULL;
	ocil_mkdir_p(home, 0755, &err);
	setenv("HOME", home, 1);
	unsetenv("REGISTRY_AUTH_FILE");
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("DOCKER_CONFIG");
}

static void auth_files(void)
{
	const char *dir = ocil_test_tmpdir();
	isolate(dir);
	ocil_error *err = NULL;
	ocil_creds c = {0};
	bool found = true;

	/* Nothing anywhere. */
	CHECK_OK(ocil_auth_find("public.ecr.aws", NULL, &c, &found, &err), &err);
	CHECK(!found);

	/* ~/.docker/config.json with Docker Hub's legacy key. */
	put_file(dir, "home/.docker/config.json",
		 "{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1YnB3\"},"
		 "\"http://reg.example:5000/v1/\":{\"auth\":\"ZG9jazpkcHc=\"},"
		 "\"other.example\":{}}}",
		 0600);
	CHECK_OK(ocil_auth_find("registry-1.docker.io", NULL, &c, &found, &err), &err);
	CHECK(found);
	CHECK_STREQ(c.username, "hub");
	CHECK_STREQ(c.password, "hubpw");
	ocil_creds_clear(&c);
	CHECK_OK(ocil_auth_find("docker.io", NULL, &c, &found, &err), &err);
	CHECK(found);
	ocil_creds_clear(&c);
	CHECK_OK(ocil_auth_find("reg.example:5000", NULL, &c, &found, &err), &err);
	CHECK(found);
	CHECK_STREQ(c.username, "dock");
	ocil_creds_clear(&c);
	/* The port is part of the name; an empty entry is no match. */
	CHECK_OK(ocil_auth_find("reg.example", NULL, &c, &found, &err), &err);
	CHECK(!found);
	CHECK_OK(ocil_auth_find("other.example", NULL, &c, &found, &err), &err);
	CHECK(!found);

	/* $DOCKER_CONFIG replaces ~/.docker. */
	cleanup_free char *dc = ocil_xasprintf("%s/dockercfg", dir);
	put_file(dir, "dockercfg/config.json",
		 "{\"auths\":{\"reg.example:5000\":{\"username\":\"u2\",\"password\":\"p2\"}}}",
		 0600);
	setenv("DOCKER_CONFIG", dc, 1);
	CHECK_OK(ocil_auth_find("reg.example:5000", NULL, &c, &found, &err), &err);
	CHECK(found);
	CHECK_STREQ(c.username, "u2");
	ocil_creds_clear(&c);
	CHECK_OK(ocil_auth_find("registry-1.docker.io", NULL, &c, &found, &err), &err);
	CHECK(!found);

	/* ${XDG_RUNTIME_DIR}/containers/auth.json comes before docker's. */
	cleanup_free char *run = ocil_xasprintf("%s/run", dir);
	put_file(dir, "run/containers/auth.json",
		 "{\"auths\":{\"https://reg.example:5000\":{\"auth\":\"cG9kOnBwdw==\"}}}", 0600);
	setenv("XDG_RUNTIME_DIR", run, 1);
	CHECK_OK(ocil_auth_find("reg.example:5000", NULL, &c, &found, &err), &err);
	CHECK(found);
	CHECK_STREQ(c.username, "pod");
	CHECK_STREQ(c.password, "ppw");
	ocil_creds_clear(&c);

	/* $REGISTRY_AUTH_FILE comes first; a host it lacks falls through. */
	cleanup_free char *ra =
	    write_file(dir, "raf.json",
		       "{\"auths\":{\"reg.example:5000\":{\"auth\":\"cmFmOnJwdw==\"}}}", 0600);
	setenv("REGISTRY_AUTH_FILE", ra, 1);
	CHECK_OK(ocil_auth_find("reg.example:5000", NULL, &c, &found, &err), &err);
	CHECK_STREQ(c.username, "raf");
	ocil_creds_clear(&c);

	/* --authfile is the only file read, and must exist. */
	cleanup_free char *af = write_file(dir, "af.json", "{}", 0600);
	CHECK_OK(ocil_auth_find("reg.example:5000", af, &c, &found, &err), &err);
	CHECK(!found);
	cleanup_free char *missing = ocil_xasprintf("%s/nope.json", dir);
	CHECK_FAIL(ocil_auth_find("reg.example:5000", missing, &c, &found, &err), &err,
		   OCIL_E_INPUT, "nope.json");

	/* ocil_auth_sources lists the search for messages. */
	cleanup_free char *src = ocil_auth_sources(NULL);
	CHECK(strstr(src, "raf.json") != NULL);
	CHECK(strstr(src, "run/containers/auth.json") != NULL);
	CHECK(strstr(src, "dockercfg/config.json") != NULL);
	cleanup_free char *src1 = ocil_auth_sources(af);
	CHECK_STREQ(src1, af);
	unsetenv("REGISTRY_AUTH_FILE");
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("DOCKER_CONFIG");
}

static void auth_files_malformed(void)
{
	const char *dir = ocil_test_tmpdir();
	isolate(dir);
	ocil_error *err = NULL;
	ocil_creds c = {0};
	bool found = false;
	struct {
		const char *content, *needle;
	} cases[] = {
	    {"{\"auths\":", "malformed JSON"},
	    {"{\"auths\":{},\"auths\":{}}", "duplicate object key"},
	    {"{\"auths\":{\"h.example\":{\"auth\":\"\xff\"}}}", "unable to decode byte 0xff"},
	    {"[]", "not a JSON object"},
	    {"{\"auths\":[]}", "auths is not an object"},
	    {"{\"auths\":{\"h.example\":\"x\"}}", "is not an object"},
	    {"{\"auths\":{\"h.example\":{\"auth\":\"***\"}}}", "invalid base64"},
	    {"{\"auths\":{\"h.example\":{\"auth\":\"bm9jb2xvbg==\"}}}", "user:password"},
	    {"{\"auths\":{\"h.example\":{\"auth\":7}}}", "not a string"},
	    {"{\"credHelpers\":{\"h.example\":1}}", "not a string"},
	    {"{\"credsStore\":{}}", "credsStore is not a string"},
	    {"{\"credHelpers\":{\"h.example\":\"../x\"}}", "invalid credential helper name"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cleanup_free char *p = write_file(dir, "bad.json", cases[i].content, 0600);
		CHECK(ocil_auth_find("h.example", p, &c, &found, &err) < 0);
		if (err->code != OCIL_E_INPUT || strstr(err->msg, cases[i].needle) == NULL ||
		    strstr(err->msg, "bad.json") == NULL) {
			fprintf(stderr, "case %zu: %s\n", i, err->msg);
			CHECK(0);
		}
		CHECK(!found && c.username == NULL);
		ocil_error_free(err);
		err = NULL;
	}
}

/* --- credential helpers --- */

static void helpers(void)
{
	const char *dir = ocil_test_tmpdir();
	isolate(dir);
	ocil_error *err = NULL;
	ocil_creds c = {0};
	bool found = false;

	/* Helpers echo what they were asked, to check the server name. */
	put_file(
	    dir, "bin/docker-credential-good",
	    "#!/bin/sh\n[ \"$1\" = get ] || exit 9\nread -r s\n"
	    "printf '{\"ServerURL\":\"%s\",\"Username\":\"u-%s\",\"Secret\":\"s3cr\\\\\"et\"}' "
	    "\"$s\" \"$s\"\n",
	    0755);
	put_file(dir, "bin/docker-credential-none",
		 "#!/bin/sh\necho 'credentials not found in native "
		 "keychain'\nexit 1\n",
		 0755);
	put_file(
	    dir, "bin/docker-credential-fail",
	    "#!/bin/sh\necho 'error getting credentials - err: exit status 1, out: `boom`' >&2\n"
	    "exit 3\n",
	    0755);
	put_file(dir, "bin/docker-credential-garbage", "#!/bin/sh\necho 'hello'\n", 0755);
	put_file(dir, "bin/docker-credential-flood", "#!/bin/sh\nhead -c 200000 /dev/zero\n", 0755);
	cleanup_free char *bin = ocil_xasprintf("%s/bin", dir);
	cleanup_free char *old_path =
	    ocil_xstrdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	cleanup_free char *path = ocil_xasprintf("%s:%s", bin, old_path);
	setenv("PATH", path, 1);

	cleanup_free char *f1 = write_file(
	    dir, "a1.json",
	    "{\"auths\":{\"h.example\":{\"auth\":\"ZmlsZTpmcHc=\"}},"
	    "\"credHelpers\":{\"h.example\":\"good\",\"n.example\":\"none\",\"f.example\":\"fail\","
	    "\"g.example\":\"garbage\",\"m.example\":\"missing\",\"x.example\":\"flood\"},"
	    "\"credsStore\":\"good\"}",
	    0600);
	/* credHelpers wins over auths for its host. */
	CHECK_OK(ocil_auth_find("h.example", f1, &c, &found, &err), &err);
	CHECK(found);
	CHECK_STREQ(c.username, "u-h.example");
	CHECK_STREQ(c.password, "s3cr\"et");
	ocil_creds_clear(&c);
	/* Docker Hub is asked for by its legacy key (credsStore here). */
	CHECK_OK(ocil_auth_find("registry-1.docker.io", f1, &c, &found, &err), &err);
	CHECK(found);
	CHECK_STREQ(c.username, "u-https://index.docker.io/v1/");
	ocil_creds_clear(&c);
	/* "credentials not found" from the helper: no match, then auths, then
	 * credsStore. */
	CHECK_OK(ocil_auth_find("n.example", f1, &c, &found, &err), &err);
	CHECK(found);
	CHECK_STREQ(c.username, "u-n.example");
	ocil_creds_clear(&c);

	CHECK_FAIL(ocil_auth_find("f.example", f1, &c, &found, &err), &err, OCIL_E_REGISTRY,
		   "docker-credential-fail: exit status 3: error getting credentials");
	CHECK(!found && c.username == NULL);
	CHECK_FAIL(ocil_auth_find("g.example", f1, &c, &found, &err), &err, OCIL_E_REGISTRY,
		   "docker-credential-garbage: output is not a JSON object");
	CHECK_FAIL(ocil_auth_find("m.example", f1, &c, &found, &err), &err, OCIL_E_REGISTRY,
		   "docker-credential-missing: not found in PATH");
	CHECK_FAIL(ocil_auth_find("x.example", f1, &c, &found, &err), &err, OCIL_E_REGISTRY,
		   "docker-credential-flood: output larger than");

	/* A credsStore that has nothing: not found, no error. */
	cleanup_free char *f2 = write_file(dir, "a2.json", "{\"credsStore\":\"none\"}", 0600);
	CHECK_OK(ocil_auth_find("q.example", f2, &c, &found, &err), &err);
	CHECK(!found);
	setenv("PATH", old_path, 1);
}

TEST_MAIN(T(challenge_ecr), T(challenge_forms), T(challenge_garbage), T(base64), T(auth_files),
	  T(auth_files_malformed), T(helpers))
