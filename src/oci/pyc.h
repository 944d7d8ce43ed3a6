/* Python bytecode (.pyc) as importlib checks it, so that the layers keep
 * the bytecode a prefix or a package ships valid, and check and inspect
 * can say what Python will find stale.
 *
 * A pyc for dir/stem.py is dir/__pycache__/stem.<tag>[.opt-N].pyc (tag
 * "cpython-311": the interpreter that wrote it and the only one that reads
 * it; opt-N for -O and -OO). Its 16-byte header (PEP 552): a 4-byte magic
 * number (2 bytes little-endian, then "\r\n"), 4 bytes of flags, then
 *   flags 0  (timestamp): the source's mtime (seconds, low 32 bits) and
 *            size (low 32 bits); python compares both with a stat of the
 *            source at every import;
 *   flags 3  (checked hash): the source's SipHash (_imp.source_hash,
 *            keyed with the magic), compared with the source's bytes;
 *   flags 1  (unchecked hash): the same hash, never compared.
 * A pyc python rejects (wrong magic, another source mtime, size or hash)
 * is stale: the module is compiled again at every import, in memory only
 * on Lambda's read-only file system.
 *
 * "The bytecode python reads" below means stem.<tag>.pyc of the image's
 * (or prefix's) python, without an optimization level, for a regular
 * source file beside its __pycache__. Other pycs (other tags, opt-N) are
 * kept as they are; they are valid in the image when they were on the host
 * (they record the same source mtime) but not counted. */
#ifndef OCIL_PYC_H
#define OCIL_PYC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/util.h"
#include "oci/rootfs.h"

#define OCIL_PYC_HEADER_SIZE 16
/* Biggest stale sources a scan keeps, for check's findings. */
#define OCIL_PYC_TOP 5

typedef enum {
	OCIL_PYC_TIMESTAMP,	 /* flags 0 */
	OCIL_PYC_CHECKED_HASH,	 /* flags 3 */
	OCIL_PYC_UNCHECKED_HASH, /* flags 1 */
	OCIL_PYC_BAD,		 /* short, unknown flags, magic not ending in "\r\n" */
} ocil_pyc_kind;

typedef struct {
	ocil_pyc_kind kind;
	uint16_t magic;
	uint32_t mtime, size; /* OCIL_PYC_TIMESTAMP */
	uint64_t hash;	      /* the hash-based kinds */
} ocil_pyc_header;

/* Parse the first len bytes of a pyc (OCIL_PYC_BAD when len < 16). */
void ocil_pyc_header_parse(const unsigned char *buf, size_t len, ocil_pyc_header *h);

/* A __pycache__ file name "stem.tag.pyc" or "stem.tag.opt-N.pyc": the
 * stem's length, the tag (pointing into name, tag_len bytes) and N (0 for
 * none). False for anything else. */
bool ocil_pyc_name_parse(const char *name, size_t *stem_len, const char **tag, size_t *tag_len,
			 int *opt);
/* Whether name is stem.<tag>[.opt-N].pyc for this stem (any tag). */
bool ocil_pyc_name_is_for(const char *name, const char *stem, size_t stem_len);

/* "3.11" -> 11 (the minor of a python 3), -1 when it is not that. */
int ocil_pyc_minor(const char *version);
/* "cpython-311" for minor 11, in buf (at least 16 bytes). */
void ocil_pyc_tag(int minor, char *buf, size_t size);
/* "cpython-3NN" -> NN, else -1. */
int ocil_pyc_tag_minor(const char *tag, size_t len);
/* Whether a python 3.minor release takes this magic number: the release's
 * own for 3.5 to 3.13; from 3.14 on, any number of the version's range
 * (2900 + 50 * minor, 50 wide; unknown finals); any for older ones. */
bool ocil_pyc_magic_ok(int minor, uint16_t magic);

/* _imp.source_hash of python 3.minor: SipHash-1-3 (3.11 and later) or
 * SipHash-2-4 (before), keyed with the 4-byte magic as a little-endian
 * integer; incremental. */
typedef struct {
	uint64_t v0, v1, v2, v3;
	unsigned char buf[8];
	size_t nbuf;
	uint64_t total;
	int c_rounds;
} ocil_pyc_hasher;
void ocil_pyc_hash_begin(ocil_pyc_hasher *h, int minor, uint16_t magic);
void ocil_pyc_hash_update(ocil_pyc_hasher *h, const void *buf, size_t len);
uint64_t ocil_pyc_hash_final(ocil_pyc_hasher *h);

/* Why python 3.minor rejects a pyc of a source of that mtime, size and
 * (for a checked-hash pyc; NULL when unknown: counted as valid) source
 * hash: NULL when it takes it, else "magic", "mtime", "size", "hash",
 * "header". */
const char *ocil_pyc_stale_reason(const ocil_pyc_header *h, int minor, int64_t mtime, uint64_t size,
				  const uint64_t *source_hash);

/* ---- what a layer holds, for scans ---- */

/* A .py file, or a .pyc file in a __pycache__ directory, of a layer. */
typedef struct {
	char *path;	/* image path */
	uint64_t index; /* its entry's position in the layer */
	int64_t mtime;
	uint64_t size;
	bool pyc;
	unsigned char head[OCIL_PYC_HEADER_SIZE]; /* a pyc's first bytes */
	unsigned head_len;
} ocil_pyc_fact;

typedef struct {
	ocil_pyc_fact *v;
	size_t n, cap;
} ocil_pyc_facts;
void ocil_pyc_facts_clear(ocil_pyc_facts *f);
/* Whether a regular file at path is one to record. */
bool ocil_pyc_facts_wants(const char *path);
/* Record an entry (path wanted); its pyc head bytes come with _feed. */
void ocil_pyc_facts_add(ocil_pyc_facts *f, const char *path, uint64_t index, int64_t mtime,
			uint64_t size);
/* Data of the last entry added (only a pyc's head is kept). */
void ocil_pyc_facts_feed(ocil_pyc_facts *f, const void *buf, size_t len);
/* Keep the facts of layer digest in dir (<dir>/<hex>.bytecode, beside its
 * entry index, atomically; a killed writer's temporary is swept with the
 * indexes'); errors only cost a later scan. */
void ocil_pyc_facts_save(const ocil_pyc_facts *f, const char *dir, const char *digest);
/* The facts of a layer blob: from dir when it has good ones (dir may be
 * NULL), else by reading the layer (then kept in dir). The blob path must
 * be .../sha256/<hex> for the facts to be kept. */
int ocil_pyc_facts_of_layer(const char *path, const char *what, const char *dir,
			    const ocil_cancel *cancel, ocil_pyc_facts *out, ocil_error **err);

/* ---- an image ---- */

typedef struct {
	char *source; /* image path */
	uint64_t size;
	const char *why; /* ocil_pyc_stale_reason's word */
} ocil_pyc_offender;

typedef struct {
	int minor;   /* of the python the scan was for */
	size_t pycs; /* bytecode python reads, with its source */
	size_t stale;
	ocil_pyc_offender top[OCIL_PYC_TOP]; /* the biggest stale sources, biggest first */
	size_t n_top;
} ocil_pyc_stats;
void ocil_pyc_stats_clear(ocil_pyc_stats *s);

typedef struct {
	const ocil_cancel *cancel;
	/* where facts of layers are kept (the entry indexes' <cache>/index), or NULL */
	const char *facts_dir;
} ocil_pyc_scan_opts;

/* The bytecode python 3.minor reads in the merged view fs of the layers
 * (blob files, bottom first; what fs was opened on) and how much of it is
 * stale. Layers are read once each (not at all when their facts are
 * kept); sources with checked-hash pycs are read again for their hash.
 * Errors: reading a layer (OCIL_E_INPUT, OCIL_E_IO), OCIL_E_CANCELLED. */
int ocil_pyc_scan_image(const char *const *layer_paths, size_t n, ocil_rootfs *fs, int minor,
			const ocil_pyc_scan_opts *o, ocil_pyc_stats *out, ocil_error **err);

#endif
