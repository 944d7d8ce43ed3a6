#include "base/version.h"

#include <archive.h>
#include <curl/curl.h>
#include <isa-l.h>
#include <jansson.h>
#include <libdeflate.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* "libarchive 3.6.2" -> "3.6.2" */
static const char *after_name(const char *s)
{
	const char *sp = strchr(s, ' ');
	return sp != NULL ? sp + 1 : s;
}

size_t ocil_lib_versions(ocil_lib_version *out, size_t n)
{
	const ocil_lib_version all[] = {
	    {"libarchive", after_name(archive_version_string()), ARCHIVE_VERSION_ONLY_STRING, true},
	    {"jansson", jansson_version_str(), JANSSON_VERSION, true},
	    {"OpenSSL", OpenSSL_version(OPENSSL_VERSION_STRING), OPENSSL_VERSION_STR, true},
	    {"zlib", zlibVersion(), ZLIB_VERSION, true},
	    {"libcurl", curl_version_info(CURLVERSION_NOW)->version, LIBCURL_VERSION, true},
	    {"libzstd", ZSTD_versionString(), ZSTD_VERSION_STRING, true},
	    /* neither has a version call */
	    {"libdeflate", LIBDEFLATE_VERSION_STRING, LIBDEFLATE_VERSION_STRING, false},
	    {"isa-l",
	     STR(ISAL_MAJOR_VERSION) "." STR(ISAL_MINOR_VERSION) "." STR(ISAL_PATCH_VERSION),
	     STR(ISAL_MAJOR_VERSION) "." STR(ISAL_MINOR_VERSION) "." STR(ISAL_PATCH_VERSION),
	     false},
	};
	size_t total = sizeof(all) / sizeof(all[0]);
	for (size_t i = 0; i < total && i < n; i++)
		out[i] = all[i];
	return total;
}
