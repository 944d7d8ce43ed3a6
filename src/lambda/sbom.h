/* sbom: the conda packages of an environment, read from its conda-meta
 * records, and an SPDX 2.3 JSON document listing them.
 *
 * The packages come from a prefix directory on disk (what assemble packs)
 * or from a prefix inside an image's merged rootfs (what inspect finds);
 * either way the list is collected first and the document is written from
 * it, so both paths give the same SBOM for the same records.
 *
 * The document is deterministic: packages sorted by name, version, build;
 * the creation time is given by the caller (SOURCE_DATE_EPOCH, else 0);
 * the documentNamespace ends in the sha256 of the document's own canonical
 * form, so the same inputs give the same bytes and different inputs a
 * different namespace, without random UUIDs.
 *
 * What each package carries (SPDX field <- conda-meta record):
 *   SPDXID            "SPDXRef-Package-<name>-<version>", characters other
 *                     than [A-Za-z0-9.-] as "-"; "-2", "-3"... on a clash
 *   name, versionInfo <- name, version
 *   downloadLocation  <- url; else <channel URL>/<subdir>/<fn> when channel
 *                     is a URL; else NOASSERTION
 *   licenseDeclared   <- license when it parses as an SPDX license
 *                     expression (ids are not checked against the SPDX
 *                     license list); another text becomes
 *                     "LicenseRef-<sanitized>" with the text kept in
 *                     hasExtractedLicensingInfos; absent: NOASSERTION
 *   licenseConcluded, supplier: NOASSERTION; filesAnalyzed: false
 *   checksums         [{SHA256, <- sha256}] when recorded (the package
 *                     archive's digest, as the channel serves it)
 *   externalRefs      PACKAGE-MANAGER purl
 *                     pkg:conda/<name>@<version>?build=..&channel=..&subdir=..&type=..
 *                     (qualifiers sorted and percent-encoded; channel as a
 *                     name for conda.anaconda.org and repo.anaconda.com/pkgs
 *                     URLs, else the URL; type tar.bz2 or conda from fn)
 * and the document DESCRIBES each package. */
#ifndef OCIL_SBOM_H
#define OCIL_SBOM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "oci/rootfs.h"

/* Caps on the conda-meta records read from a prefix or an image (the SBOM
 * and the conda layer producer read the same records). */
#define OCIL_CONDA_MAX_RECORD ((size_t)64 << 20) /* one conda-meta record */
#define OCIL_CONDA_MAX_RECORDS 100000

/* One installed conda package. Strings are owned; NULL when not recorded. */
typedef struct {
	char *name, *version, *build; /* never NULL */
	char *channel;		      /* as recorded: a URL or a name */
	char *subdir;		      /* "linux-64", "noarch" */
	char *fn;		      /* "python-3.8.16-h_0.tar.bz2" */
	char *url;
	char *license;
	char *sha256; /* 64 hex digits, lowercase */
} ocil_sbom_package;

typedef struct {
	ocil_sbom_package *v;
	size_t n, cap;
} ocil_sbom_packages;

/* Fill p from a parsed conda-meta record. OCIL_E_INPUT "<what>: malformed
 * conda record: ..." when it is not an object, name/version/build are
 * missing, empty or not strings, an optional field (channel, subdir, fn,
 * url, license, sha256) is neither a string nor null, or sha256 is not
 * 64 hex digits. Empty optional strings count as not recorded. */
int ocil_sbom_package_from_record(const json_t *record, const char *what, ocil_sbom_package *p,
				  ocil_error **err);
void ocil_sbom_package_clear(ocil_sbom_package *p);
/* Append p, taking over its strings (p is zeroed). */
void ocil_sbom_packages_push(ocil_sbom_packages *l, ocil_sbom_package *p);
/* By name, version, build (bytewise). */
void ocil_sbom_packages_sort(ocil_sbom_packages *l);
void ocil_sbom_packages_clear(ocil_sbom_packages *l);
static inline void ocil_sbom_packages_clearp(ocil_sbom_packages *l)
{
	ocil_sbom_packages_clear(l);
}
#define cleanup_sbom_packages __attribute__((cleanup(ocil_sbom_packages_clearp)))

/* The list as a JSON array of records (the fields above, absent ones left
 * out), to keep it without the environment (assemble's layer cache); back
 * with ocil_sbom_packages_from_json, which takes each element as
 * ocil_sbom_package_from_record does (its errors, what = "element N"). */
json_t *ocil_sbom_packages_to_json(const ocil_sbom_packages *l);
int ocil_sbom_packages_from_json(const json_t *j, ocil_sbom_packages *out, ocil_error **err);

/* Append the packages of the records <prefix>/conda-meta/NAME.json (hidden files left
 * out), sorted. OCIL_E_INPUT when prefix has no conda-meta directory, a
 * record is unreadable, over OCIL_CONDA_MAX_RECORD bytes, not JSON or
 * malformed, or there are more than OCIL_CONDA_MAX_RECORDS records. */
int ocil_sbom_read_prefix(const char *prefix, ocil_sbom_packages *out, ocil_error **err);
/* The same for a prefix inside an image (absolute path in fs); a record
 * that is not a regular file (after symlinks, inside the image) is an
 * error too. Errors name the path inside the image. */
int ocil_sbom_read_rootfs(ocil_rootfs *fs, const char *prefix, ocil_sbom_packages *out,
			  ocil_error **err);

/* The channel as a purl/human would name it: "conda-forge" for
 * "https://conda.anaconda.org/conda-forge/linux-64", "main" for
 * "https://repo.anaconda.com/pkgs/main", other URLs without a trailing
 * "/<subdir>"; NULL when not recorded. Caller frees. */
char *ocil_sbom_channel_name(const ocil_sbom_package *p);
/* pkg:conda/... as described above. Caller frees. */
char *ocil_sbom_purl(const ocil_sbom_package *p);

/* What the document is about. */
typedef struct {
	/* document name: the image reference, or the prefix; required */
	const char *name;
	/* the image's manifest digest, or NULL; said in the document comment
	 * and so part of the namespace hash */
	const char *image_digest;
	/* where the packages are installed (e.g. "/opt/conda-env"), or NULL */
	const char *prefix;
	/* creationInfo.created, seconds since 1970 (SOURCE_DATE_EPOCH, else 0) */
	int64_t created;
} ocil_sbom_opts;

/* The SPDX document (pkgs need not be sorted). OCIL_E_USAGE when name is
 * missing or created is outside 0..253402300799 (year 9999). */
int ocil_sbom_build(const ocil_sbom_opts *o, const ocil_sbom_packages *pkgs, json_t **out,
		    ocil_error **err);
/* Build it and write it to path atomically (temporary file in the same
 * directory, fsync, rename), indented, keys in SPDX order, ending in a
 * newline. */
int ocil_sbom_write(const char *path, const ocil_sbom_opts *o, const ocil_sbom_packages *pkgs,
		    ocil_error **err);

#endif
