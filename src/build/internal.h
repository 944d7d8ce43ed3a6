/* What the files of build/ share: one build's state and the steps of the
 * pipeline (build.h). Not for use outside build/. */
#ifndef OCIL_BUILD_INTERNAL_H
#define OCIL_BUILD_INTERNAL_H

#include <jansson.h>

#include "build/build.h"
#include "lambda/sbom.h"
#include "layers/condaenv.h"
#include "oci/image.h"
#include "oci/layer_cache.h"
#include "oci/layer_writer.h"
#include "oci/plan.h"
#include "oci/ref.h"
#include "oci/rootfs.h"
#include "transport/source.h"

/* conda, bytecode, code, runtime (the python link) */
#define BUILD_MAX_LAYERS 4

/* Everything one build owns, freed in one place (build_clear). */
typedef struct build {
	ocil_build_opts o; /* the caller's, defaults filled in */
	const ocil_build_report *rep;
	int64_t epoch; /* SOURCE_DATE_EPOCH */
	ocil_ref base_ref, out_ref;
	ocil_platform platform;
	ocil_conda_info conda;
	ocil_condaenv lockenv; /* --conda-lock */
	ocil_sink *sink;
	ocil_source *src;
	bool docker; /* the output's manifests are Docker v2s2 */
	ocil_descriptor *base_layers;
	size_t n_base_layers;
	ocil_rootfs *fs;
	json_t *entrypoint;
	ocil_strv env, pythons;
	ocil_strv conda_warnings; /* what packing the prefix (or loading the lock) reported */
	char *bytecode_note;	  /* what became of the bytecode (pyc_prefix.h), or NULL */
	char *cache_dir;	  /* the cache's directory (also when it is not usable) */
	char *compiled_dir;	  /* the bytecode layer's pycs, while it is written */
	char *code_bytecode;	  /* --compile-code: the code's pycs, or NULL */
	/* --conda-lock, kept with a cached layer: each wheel's fn and tags
	 * (the glibc check), and the packages --sbom lists */
	json_t *wheel_tags;
	ocil_sbom_packages lock_sbom;
	bool lock_sbom_ready;	 /* lock_sbom filled (from the cache, or made once) */
	ocil_layer_cache *cache; /* NULL: none usable */
	char *index_dir;	 /* layer entry indexes (under the cache), or NULL */
	char *minor;		 /* the base's python the link layer points at */
	/* the conda layer's cache key ("" when it has none) and, on a hit,
	 * its entry */
	char conda_key[OCIL_DIGEST_STR_SIZE];
	ocil_layer_cache_entry conda_ce;
	bool conda_hit;
	/* the new layers */
	ocil_layer_opts lo;
	ocil_plan_layer layers[BUILD_MAX_LAYERS];
	ocil_layer_result results[BUILD_MAX_LAYERS];
	const char *made_by[BUILD_MAX_LAYERS];
	char *created_by[BUILD_MAX_LAYERS];
	size_t nl;
	ocil_descriptor manifest;
	char *published;
} build;

/* ---- report (assemble.c) ---- */

void build_say(const build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void build_warn(const build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Each of w as a warning. */
void build_warn_all(const build *b, const ocil_strv *w);

/* ---- options (options.c) ---- */

/* The options with the defaults filled in (pointers into o, or static). */
void build_opts_defaults(const ocil_build_opts *o, ocil_build_opts *out);
/* --entrypoint: a JSON array of strings, or one path. */
int build_parse_entrypoint(const char *s, json_t **out, ocil_error **err);
/* The cap on one download: OCIL_FETCH_MAX_SIZE, or $OCIL_FETCH_MAX_SIZE. */
int build_fetch_max_size(uint64_t *out, ocil_error **err);

/* ---- cache keys (keys.c) ---- */

/* The conda layer's key (the prefix's or the lock's); one that cannot be
 * had leaves the layer uncached (packing says what is wrong, if
 * anything): key[0] is then '\0'. -1 only on cancellation. subdir: the
 * lock's conda subdir (NULL for a prefix). */
int build_conda_key(build *b, const char *subdir, char key[OCIL_DIGEST_STR_SIZE], ocil_error **err);
/* The python link layer's key: the base's layers, the minor, the prefix's
 * destination, the packing. */
void build_runtime_key(const build *b, char key[OCIL_DIGEST_STR_SIZE]);
/* The bytecode layer's key: the conda layer it compiles, the base it runs
 * on, where, and the packing. */
void build_bytecode_key(const build *b, const ocil_plan_layer *conda,
			char key[OCIL_DIGEST_STR_SIZE]);

/* ---- the layer cache (cache.c) ---- */

/* A layer from the cache: 1 when found (ce filled), 0 when it has to be
 * made (no cache, --no-cache, or not there). */
int build_from_cache(build *b, const char *key, ocil_layer_cache_entry *ce, ocil_error **err);
/* Put a cached layer into the output as new layer i. */
int build_use_cached(build *b, const ocil_layer_cache_entry *ce, size_t i, ocil_error **err);
/* Keep new layer i for next time (facts taken over); failing to is only
 * said with the progress. */
void build_remember(build *b, const char *key, size_t i, json_t *facts);
/* The conda layer from the cache: 1 when found (b->conda and the warnings
 * filled from what the first build found), 0 when it has to be packed. */
int build_conda_cached(build *b, const char *key, ocil_layer_cache_entry *ce, ocil_error **err);
/* What a cached conda layer keeps of the build (NULL when it cannot be
 * had: then the layer is not kept). */
json_t *build_conda_facts(build *b);
/* What the glibc check needs of the lock's wheels, kept with the layer. */
json_t *build_wheel_tags(const ocil_condaenv *env);
/* A lock build's packages as --sbom lists them (made once). */
int build_lock_packages(build *b, ocil_error **err);

/* ---- the environment and the base (environment.c) ---- */

/* The conda environment: its facts from the cache when its key hits, else
 * read (a prefix inspected, a lock loaded and its packages fetched). */
int build_read_environment(build *b, ocil_error **err);
/* The base: opened, its layers imported into the output, its python
 * checked against the environment's. */
int build_open_base(build *b, ocil_error **err);

/* ---- new layers (layers.c) ---- */

typedef int (*build_producer)(build *b, ocil_layer_writer *w, ocil_error **err);
/* New layer i produced by fn into the output. */
int build_write_layer(build *b, size_t i, build_producer fn, ocil_error **err);
/* Every new layer, in order, each from the cache or produced. */
int build_make_layers(build *b, ocil_error **err);

/* ---- bytecode (compile.c) ---- */

/* A lock build's bytecode layer as new layer i: 1 when it is made (or
 * cached), 0 when there is none (nothing to compile, --no-compile, or it
 * cannot be compiled here: said). */
int build_bytecode_layer(build *b, size_t i, ocil_error **err);
/* --compile-code: the code's sources compiled into b->code_bytecode (the
 * temporary directory out). */
int build_compile_code(build *b, ocil_tmpdir *out, ocil_error **err);

/* ---- the end (publish.c) ---- */

/* Lambda's rules on the image, the SBOM, the sink's commit, the digest
 * file. config: the image config written. */
int build_publish(build *b, const json_t *config, ocil_error **err);

#endif
