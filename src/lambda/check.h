/* check: the Lambda rules (docs/ARCHITECTURE.md, check and inspect) run on
 * an image, as findings. The library never prints: callers get a list of
 * findings (rule id, severity, where, message) and decide what to do.
 *
 * Rules (stable ids; the severity is the one a failed rule reports):
 *
 *   id    severity what it checks
 *   L000  error    the layers merge as a runtime unpacks them (a hardlink to a
 *                  missing file, ...); if not, L012-L014 are skipped
 *   L001  error    the reference names a single-platform image manifest (OCI or
 *                  Docker v2s2), not an index / manifest list
 *   L002  error    layers are gzip (zstd and uncompressed are refused; info for a
 *                  docker-archive, whose layers are compressed when pushed); the
 *                  config media type is an image config
 *   L003  error    os linux, architecture amd64 or arm64, and the one asked for
 *                  (--platform); info: which one it is
 *   L004  error    regular files are world-readable (mode & 0444)
 *   L005  error    directories are world-readable and searchable (mode & 0555)
 *                  L004/L005 are errors for what the function uses: /opt,
 *                  /var/lang, /var/runtime, LAMBDA_TASK_ROOT (/var/task), the
 *                  PYTHONPATH entries, the Entrypoint[0] and Cmd[0] programs, and
 *                  the directories leading to them; warnings elsewhere (bases
 *                  ship /root 0550 or /etc/shadow 0000, which Lambda accepts)
 *   L006  error    no hardlink entries
 *   L007  error    the parent directory of every entry is in the same layer or
 *                  below it
 *   L008  warning  no device nodes, fifos or sockets
 *   L009  error    uncompressed size at most 10 GiB, manifest at most 4 MiB;
 *                  info: the sizes
 *   L010  error    Entrypoint and Cmd in exec form (JSON arrays of strings, not a
 *                  string, not ["/bin/sh", "-c", ...])
 *   L011  warning  Cmd present (else the handler must come from the function's
 *                  ImageConfig)
 *   L012  error    the handler Cmd[0] "module.function" resolves: module.py or
 *                  module/__init__.py under a PYTHONPATH entry or
 *                  LAMBDA_TASK_ROOT, defining the function at top level
 *   L013  error    /var/lang/bin/python3.X is there and, when a symlink, its target
 *                  exists in the image
 *   L014  error    the python that /var/lang/bin/python3.X runs (the conda prefix
 *                  it points into: conda-meta/python-*.json) has minor X
 *   L015  warning  no setuid or setgid files
 *   L016  warning  the bytecode that python reads (__pycache__/M.cpython-3X.pyc
 *                  beside M.py, pyc.h) is not stale: Lambda's file system is
 *                  read-only, so a stale module is compiled again at every cold
 *                  start; one finding with the count, then the biggest stale
 *                  sources (at most OCIL_PYC_TOP); info: how many there are
 *
 * Per-entry rules (L004-L008) report at most OCIL_CHECK_MAX_PER_RULE
 * findings per severity, then one "... and N more". */
#ifndef OCIL_CHECK_H
#define OCIL_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/blobstore.h"
#include "base/util.h"
#include "oci/image.h"
#include "oci/ref.h"
#include "transport/source.h"

/* X(id, severity, summary): the table above, for --help and tests. */
#define OCIL_CHECK_RULES(X)                                                                        \
	X(L000, "error", "the layers merge as a runtime unpacks them")                             \
	X(L001, "error", "a single-platform image manifest (OCI or Docker v2s2), not an index")    \
	X(L002, "error", "gzip layers (not zstd, not uncompressed); an image config media type")   \
	X(L003, "error", "linux/amd64 or linux/arm64, and the --platform asked for")               \
	X(L004, "error", "regular files world-readable (mode & 0444) where the function reads")    \
	X(L005, "error", "directories world-readable and searchable (0555) on its paths")          \
	X(L006, "error", "no hardlink entries")                                                    \
	X(L007, "error", "every entry's parent directory in its layer or below")                   \
	X(L008, "warning", "no device nodes, fifos or sockets")                                    \
	X(L009, "error", "uncompressed size <= 10 GiB, manifest <= 4 MiB")                         \
	X(L010, "error", "Entrypoint and Cmd in exec form (arrays of strings)")                    \
	X(L011, "warning", "Cmd present (else the function configuration gives the handler)")      \
	X(L012, "error", "handler module.function: the module file exists and defines it")         \
	X(L013, "error", "/var/lang/bin/python3.X present; a symlink's target exists")             \
	X(L014, "error", "the python it runs (conda prefix) has the same minor 3.X")               \
	X(L015, "warning", "no setuid or setgid files")                                            \
	X(L016, "warning", "no stale bytecode (compiled again at every cold start)")

/* Findings per per-entry rule before "... and N more". */
#define OCIL_CHECK_MAX_PER_RULE 20

typedef enum { OCIL_SEV_ERROR, OCIL_SEV_WARNING, OCIL_SEV_INFO } ocil_severity;

typedef struct ocil_finding {
	const char *rule; /* "L004": static, from the table */
	ocil_severity sev;
	char *where; /* path in the image, config field, "manifest", "layer 2 (sha256:...)" */
	char *msg;
} ocil_finding;

typedef struct {
	ocil_finding *v;
	size_t n, cap;
} ocil_findings;

typedef struct {
	/* The function's platform (os/arch[/variant]); NULL: linux/amd64 or
	 * linux/arm64, whichever the image is. */
	const ocil_platform *platform;
	const ocil_cancel *cancel;
	/* ocil_check_source: a store that may already hold the layer blobs
	 * as files (a layout, the blob cache); they are verified (digest and
	 * size) before use. Layers it lacks go to a temporary directory under
	 * $TMPDIR, removed before returning. NULL: all of them do. */
	ocil_blobstore *blobs;
	/* Uncompressed layers are fine (info, not error): a docker-archive,
	 * whose layers `docker push` / skopeo compress with gzip. */
	bool layers_compressed_on_push;
	/* Layer entry indexes (layer_index.h) to use and to leave for next
	 * time, or NULL. */
	const char *index_dir;
	/* ocil_check_blobs: layers whose blob is not in the store (a push
	 * mounts them from another repository, issue 17): read from their
	 * entry index and python facts in index_dir */
	const char *const *elsewhere;
	size_t n_elsewhere;
} ocil_check_opts;

const char *ocil_severity_name(ocil_severity s);
/* "L004 error /opt/x: not world-readable (mode 0600)"; caller frees. */
char *ocil_finding_format(const ocil_finding *x);
/* Safe on a zeroed value. */
void ocil_findings_clear(ocil_findings *f);
bool ocil_findings_have_errors(const ocil_findings *f);
size_t ocil_findings_count(const ocil_findings *f, ocil_severity sev);
/* The rules that failed at error level, once each in the order found:
 * "L004, L012" ("" when none); caller frees. */
char *ocil_findings_failed_rules(const ocil_findings *f);
/* The first finding of rule, or NULL (for tests and callers that care about one). */
const ocil_finding *ocil_findings_find(const ocil_findings *f, const char *rule);

/* Run every rule on an opened source: its manifest (as served: an index
 * there is L001), config and layers. Layers are streamed twice at most
 * (the per-entry rules, and the merged view for the python rules, in
 * parallel); memory grows with the number of entries, not their size.
 * manifest_media_type: what the reference named as served (NULL: the
 * source's manifest type). Findings are appended to out, grouped by rule.
 * Returns -1 only when the image cannot be read (OCIL_E_INPUT, e.g. a
 * damaged layer; OCIL_E_IO; OCIL_E_CANCELLED): a failed rule is a finding,
 * not an error. */
int ocil_check_source(ocil_source *src, const char *manifest_media_type, const ocil_check_opts *o,
		      ocil_findings *out, ocil_error **err);

/* The same for an image whose blobs are all in bs (e.g. what assemble has
 * just written, before it is published): manifest is its descriptor, whose
 * media type counts as served. bs's own blobs are trusted (it verifies
 * what it stores); o->blobs is ignored. */
int ocil_check_blobs(ocil_blobstore *bs, const ocil_descriptor *manifest, const ocil_check_opts *o,
		     ocil_findings *out, ocil_error **err);

/* What a reference names, opened for checking. ocil_source_open picks one
 * platform out of an index silently; this first reads what the reference
 * itself names (oci: the index.json entry for the tag and the blob it points
 * at; docker://: the manifest GET by tag or digest, stored in the blob
 * cache so that the source reads it from there; docker-archive: always an
 * image manifest), then opens the source: for an index, on its image for
 * o->platform (default linux/amd64, else linux/arm64). */
typedef struct {
	ocil_source *src;      /* NULL when an index has no image to check */
	char *media_type;      /* of what the reference names, as served */
	ocil_blobstore *blobs; /* where src's layers may already be (layout, cache), or NULL */
	bool archive;	       /* docker-archive */
	/* docker://: the reference pinned to the served digest (src points at it) */
	ocil_ref *pinned;
	ocil_platform platform; /* the platform picked from an index */
} ocil_check_target;

/* When the index holds no image to check, t->src stays NULL and L001 and
 * L003 findings are added to out. so->platform is ignored (o->platform
 * counts). Errors: as ocil_source_open. Clear t afterwards, also on
 * failure. Then run ocil_check_source(t->src, t->media_type, o with
 * .blobs = t->blobs and .layers_compressed_on_push = t->archive). */
int ocil_check_target_open(const ocil_ref *ref, const ocil_source_opts *so,
			   const ocil_check_opts *o, ocil_check_target *t, ocil_findings *out,
			   ocil_error **err);
void ocil_check_target_clear(ocil_check_target *t);

/* The whole of `ocilambda check`: the reference parsed and opened (an
 * index's platform image; platform NULL: linux/amd64 or linux/arm64,
 * whichever the image is), every rule run. The findings (also on
 * failure) and the target stay in out, for the report; clear it. */
typedef struct {
	const char *image, *platform;
	const ocil_registry_opts *registry;
	const char *cache_dir;
	const ocil_cancel *cancel;
} ocil_check_ref_opts;
typedef struct {
	ocil_ref ref;
	ocil_platform platform;
	ocil_check_target target;
	ocil_findings findings;
} ocil_check_report;
int ocil_check_ref(const ocil_check_ref_opts *o, ocil_check_report *out, ocil_error **err);
void ocil_check_report_clear(ocil_check_report *r);

/* "linux/amd64[/variant]" of the checked config, or NULL. Caller frees. */
char *ocil_check_image_platform(const ocil_source *src);
/* The findings as `check --json` prints them: image, media_type, digest,
 * platform, findings [{rule, severity, where, message}], summary {errors,
 * warnings, infos, passed}. */
json_t *ocil_check_report_json(const char *input, const ocil_check_target *t,
			       const ocil_findings *f);

/* Whether python source text defines name at module level: "def name(",
 * "async def name(", "class name", "name =" / "name: T =", or a top-level
 * "from m import ..., name" / "import m as name". A static look at the text,
 * no evaluation. */
bool ocil_check_py_defines(const char *text, size_t len, const char *name);

#endif
