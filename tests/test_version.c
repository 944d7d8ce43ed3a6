#include <ctype.h>
#include <string.h>

#include "base/version.h"
#include "test.h"

/* "3.6.2", "2.14": digits and dots, starting with a digit. */
static bool looks_like_version(const char *s)
{
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return false;
	for (; *s != '\0' && *s != ' '; s++)
		if (!isdigit((unsigned char)*s) && *s != '.')
			return false;
	return true;
}

static void every_library_has_a_version(void)
{
	ocil_lib_version v[16];
	size_t n = ocil_lib_versions(v, 16);
	CHECK(n == 8);
	const char *names[] = {"libarchive", "jansson", "OpenSSL",    "zlib",
			       "libcurl",    "libzstd", "libdeflate", "isa-l"};
	for (size_t i = 0; i < n && i < 8; i++) {
		CHECK_STREQ(v[i].name, names[i]);
		CHECK(looks_like_version(v[i].version));
		CHECK(looks_like_version(v[i].compiled));
		/* the same major version at run time as in the headers */
		CHECK(strncmp(v[i].version, v[i].compiled, strcspn(v[i].compiled, ".")) == 0);
		CHECK(v[i].runtime == (i < 6));
	}
}

static void a_short_buffer_gets_the_first_ones(void)
{
	ocil_lib_version v[2];
	CHECK(ocil_lib_versions(v, 2) == 8);
	CHECK_STREQ(v[0].name, "libarchive");
	CHECK_STREQ(v[1].name, "jansson");
	CHECK(ocil_lib_versions(NULL, 0) == 8);
}

TEST_MAIN(T(every_library_has_a_version), T(a_short_buffer_gets_the_first_ones))
