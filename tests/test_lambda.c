#include <string.h>

#include "base/util.h"
#include "lambda/lambda.h"
#include "support_tar.h"
#include "test.h"

/* The one rule for the interpreter's name, used by check, inspect and the
 * runtime patch alike. */
static void test_python_names(void)
{
	static const struct {
		const char *name;
		bool ok;
		unsigned minor;
	} cases[] = {
	    {"python3.8", true, 8},	   {"python3.12", true, 12}, {"python3.1234", true, 1234},
	    {"python3.12345", false, 0},   {"python3.", false, 0},   {"python3", false, 0},
	    {"python3.8-clean", false, 0}, {"python3.8m", false, 0}, {"python2.7", false, 0},
	    {"python3.x", false, 0},	   {"Python3.8", false, 0},  {"python3.-1", false, 0},
	    {"python3.+8", false, 0},	   {"python33.8", false, 0},
	};
	for (size_t i = 0; i < NENTS(cases); i++) {
		unsigned m = 99999;
		bool ok = ocil_lambda_python_name(cases[i].name, &m);
		if (ok != cases[i].ok || (ok && m != cases[i].minor)) {
			fprintf(stderr, "%s: %d %u\n", cases[i].name, ok, m);
			CHECK(!"python name");
		}
		/* "3.N" alone: the same verdict */
		CHECK(ocil_lambda_python_version(cases[i].name + 6, NULL) == cases[i].ok ||
		      strncmp(cases[i].name, "python", 6) != 0);
	}
	CHECK(ocil_lambda_python_version("3.11", NULL));
	CHECK(!ocil_lambda_python_version("3.11.2", NULL));
	/* what a function reads: the directories check holds to L004/L005 */
	size_t n = 0;
	while (ocil_lambda_read_dirs[n] != NULL)
		n++;
	CHECK(n == 3 && strcmp(ocil_lambda_read_dirs[0], "/opt") == 0);
}

static void test_glibc_version(void)
{
	ocil_glibc v = {0, 0};
	CHECK(ocil_lambda_glibc_from_name("libc-2.26.so", &v) && v.major == 2 && v.minor == 26);
	CHECK(ocil_lambda_glibc_from_name("libc-2.5.so", &v) && v.major == 2 && v.minor == 5);
	CHECK(!ocil_lambda_glibc_from_name("libc.so.6", &v));
	CHECK(!ocil_lambda_glibc_from_name("libc-2.26.so.1", &v));
	CHECK(!ocil_lambda_glibc_from_name("libc-2.so", &v));
	CHECK(!ocil_lambda_glibc_from_name("libc-.26.so", &v));
	CHECK(!ocil_lambda_glibc_from_name("libcrypt-2.26.so", &v));

	/* what `strings` shows of Debian bookworm's and Amazon Linux 2's */
	static const char deb[] =
	    "\x7f"
	    "ELF\x02\x01\x00junk\0GNU C Library (Debian GLIBC 2.36-9+deb12u4) "
	    "stable release version 2.36.\nCopyright (C) 2022\0more";
	static const char al2[] = "x\0GNU C Library (GNU libc) stable release version 2.26, by "
				  "Roland McGrath et al.\0";
	v = (ocil_glibc){0, 0};
	CHECK(ocil_lambda_glibc_from_banner(deb, sizeof(deb) - 1, &v) && v.major == 2 &&
	      v.minor == 36);
	CHECK(ocil_lambda_glibc_from_banner(al2, sizeof(al2) - 1, &v) && v.major == 2 &&
	      v.minor == 26);
	/* cut inside the number: "2.3" is not taken for 2.36 */
	const char *cut = strstr(deb + 12, "2.36.");
	CHECK(!ocil_lambda_glibc_from_banner(deb, (size_t)(cut - deb) + 3, &v));
	CHECK(ocil_lambda_glibc_from_banner(deb, (size_t)(cut - deb) + 5, &v) && v.minor == 36);
	static const char other[] = "release version 2.36.\0GNU C Library\0release version 2.99.";
	CHECK(!ocil_lambda_glibc_from_banner(other, sizeof(other) - 1, &v));
	static const char two[] = "GNU C Library\0GNU C Library stable release version 2.17.";
	CHECK(ocil_lambda_glibc_from_banner(two, sizeof(two) - 1, &v) && v.minor == 17);
}

/* Layers as the bases have them: glibc's version from the name libc.so.6
 * resolves to, through a symlinked /lib64 (Amazon Linux 2), else from the
 * bytes of a plain libc.so.6 (Debian); whiteouts honoured. */
static void test_base_glibc(void)
{
	/* the banner far into the file, across a read block */
	size_t big = ((size_t)64 << 10) + 100;
	cleanup_free char *libc = ocil_xcalloc(1, big + 1);
	static const char banner[] = "GNU C Library (Debian GLIBC 2.36-9) stable release version "
				     "2.36.\n";
	memcpy(libc + (64 << 10) - 30, banner, strlen(banner));
	tent deb[] = {
	    {"lib/", 'd', NULL, 0, 0},
	    {"lib/x86_64-linux-gnu/", 'd', NULL, 0, 0},
	    {"lib/x86_64-linux-gnu/libc.so.6", 'f', libc, big, 0755},
	};
	tent al2[] = {
	    {"usr/", 'd', NULL, 0, 0},
	    {"usr/lib64/", 'd', NULL, 0, 0},
	    {"usr/lib64/libc-2.26.so", 'f', "not an ELF", 0, 0755},
	    {"usr/lib64/libc.so.6", 'l', "libc-2.26.so", 0, 0},
	    {"lib64", 'l', "usr/lib64", 0, 0},
	};
	tent gone[] = {{"usr/lib64/.wh.libc.so.6", 'f', "", 0, 0}};
	tent none[] = {{"etc/", 'd', NULL, 0, 0}, {"usr/lib64/libc.so.6", 'f', "no banner", 0, 0}};
	cleanup_free char *l_deb =
	    mk_tar("deb.tar", NULL, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, deb, NENTS(deb));
	cleanup_free char *l_al2 =
	    mk_tar("al2.tar", "gzip", ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, al2, NENTS(al2));
	cleanup_free char *l_gone =
	    mk_tar("gone.tar", NULL, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, gone, NENTS(gone));
	cleanup_free char *l_none =
	    mk_tar("none.tar", NULL, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, none, NENTS(none));
	CHECK(l_deb && l_al2 && l_gone && l_none);
	static const struct {
		int layers[3]; /* 1 deb, 2 al2, 3 gone, 4 none; 0 ends */
		unsigned minor;
		const char *where;
	} cases[] = {
	    {{1}, 36, "/lib/x86_64-linux-gnu/libc.so.6"},
	    {{2}, 26, "/usr/lib64/libc-2.26.so"},
	    {{1, 2}, 26, "/usr/lib64/libc-2.26.so"}, /* /lib64 first */
	    {{1, 2, 3}, 36, "/lib/x86_64-linux-gnu/libc.so.6"},
	    {{2, 3}, 0, NULL},
	    {{4}, 0, NULL},
	};
	const char *files[] = {NULL, l_deb, l_al2, l_gone, l_none};
	for (size_t i = 0; i < NENTS(cases); i++) {
		const char *paths[3];
		size_t n = 0;
		while (n < 3 && cases[i].layers[n] != 0) {
			paths[n] = files[cases[i].layers[n]];
			n++;
		}
		ocil_error *err = NULL;
		cleanup_rootfs ocil_rootfs *fs = NULL;
		CHECK_OK(ocil_rootfs_open(paths, n, NULL, &fs, &err), &err);
		if (fs == NULL)
			continue;
		ocil_glibc v = {9, 9};
		cleanup_free char *where = NULL;
		CHECK_OK(ocil_lambda_base_glibc(fs, "x86_64", &v, &where, &err), &err);
		bool good =
		    v.minor == cases[i].minor && v.major == (cases[i].minor ? 2u : 0u) &&
		    (cases[i].where ? where && strcmp(where, cases[i].where) == 0 : where == NULL);
		if (!good)
			fprintf(stderr, "case %zu: %u.%u from %s\n", i, v.major, v.minor,
				where ? where : "(none)");
		CHECK(good);
	}
}

TEST_MAIN(T(test_python_names), T(test_glibc_version), T(test_base_glibc))
