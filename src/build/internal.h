/* What the files of build/ share: one build's state and the steps of the
 * pipeline (build.h). Not for use outside build/. */
#ifndef OCIL_BUILD_INTERNAL_H
#define OCIL_BUILD_INTERNAL_H

#include <jansson.h>

#include "build/build.h"
#include "lambda/sbom.h"
#include "layers/conda_split.h"
#include "layers/condaenv.h"
#include "oci/image.h"
#include "oci/layer_cache.h"
#include "oci/layer_writer.h"
#include "oci/plan.h"
#include "oci/ref.h"
#include "oci/rootfs.h"
#include "registry/cache_repo.h"
#include "transport/source.h"

/* conda (one, or per package: at most 97 with a base of none), bytecode,
 * code, runtime (the python link) */
#define BUILD_MAX_LAYERS OCIL_LAYERS_MAX

/* A layer made now, recorded in the cache repository once published. */
typedef struct {
	char key[OCIL_DIGEST_STR_SIZE];
	ocil_plan_layer l;
	int64_t uncompressed_size;
	json_t *facts;
} build_repo_note;

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
	/* the new layers: the conda layers first (n_conda of them) */
	ocil_layer_opts lo;
	ocil_plan_layer layers[BUILD_MAX_LAYERS];
	ocil_layer_result results[BUILD_MAX_LAYERS];
	const char *made_by[BUILD_MAX_LAYERS];
	char *created_by[BUILD_MAX_LAYERS];
	char *what[BUILD_MAX_LAYERS];  /* a conda layer's packages, or NULL */
	bool remote[BUILD_MAX_LAYERS]; /* from the cache repository */
	size_t nl, n_conda;
	/* per-package conda layers (parts.c): the whole environment's record
	 * from the cache (the keys of its layers), a prefix's plan while its
	 * layers are made, what packing one reported, the bytecode of all,
	 * a lock's layer being packed */
	json_t *conda_list;
	ocil_conda_split *split;
	size_t part;
	ocil_conda_report part_rep;
	ocil_pyc_counts pyc_sum;
	ocil_condaenv_part lock_part;
	/* --cache-repo (repo.c): NULL when none, or given up on */
	ocil_cache_repo *repo;
	bool repo_write; /* readwrite */
	bool repo_mount; /* the output is a push to its registry: found layers stay there */
	build_repo_note *notes;
	size_t n_notes;
	/* layers found there and left there: the push mounts them */
	ocil_strv absent;
	int64_t *absent_size;
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
/* The end of every layer key: the options of packing any layer. */
void build_key_packing(ocil_hasher *h, const build *b);
/* The python link layer's key: the base's layers, the minor, the prefix's
 * destination, the packing. */
void build_runtime_key(const build *b, char key[OCIL_DIGEST_STR_SIZE]);
/* The bytecode layer's key: the conda layers it compiles, the base it
 * runs on, where, and the packing. */
void build_bytecode_key(const build *b, char key[OCIL_DIGEST_STR_SIZE]);
/* With --cache-repo, the code layer's key of its contents (and, with
 * --compile-code, of what compiles them); "" when it cannot be had. -1
 * only on cancellation. */
int build_code_key(build *b, char key[OCIL_DIGEST_STR_SIZE], ocil_error **err);

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
/* A prefix inspected (layers/conda.h), into b->conda. */
int build_inspect_prefix(build *b, ocil_error **err);
/* A lock loaded, its packages found (downloaded if need be) and checked. */
int build_load_lock(build *b, ocil_error **err);
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

/* ---- per-package conda layers (parts.c) ---- */

/* Whether the conda layers are made by parts.c: per package (--layers
 * other than 1), or one with keys that hold across machines (--cache-repo). */
static inline bool build_split(const build *b)
{
	return b->o.layers != 1 || (b->o.cache_repo != NULL && !b->o.no_cache);
}

/* The whole environment's record of its per-package layers, from the
 * cache (key: the prefix's or the lock's): 1 with b->conda, the warnings,
 * the bytecode note (and a lock's wheel tags and packages) filled from it,
 * 0 when there is none. */
int build_list_cached(build *b, const char *key);
/* The conda layers as new layers 0.. (b->n_conda of them), per package
 * within the budget (--layers). */
int build_conda_parts(build *b, ocil_error **err);

/* ---- --cache-repo (repo.c) ---- */

/* The cache repository's client, when asked for (after the output is
 * parsed: whether found layers can be mounted). */
int build_repo_open(build *b, ocil_error **err);
/* One layer to find in the cache repository. */
typedef struct {
	const char *key;
	bool here;     /* wanted in the output's blobs even when a push could mount it */
	size_t i;      /* new layer i */
	json_t *facts; /* out: the entry's */
	int hit;       /* out: 1 downloaded, 2 left there to be mounted, 0 not found */
} build_repo_want;
/* Look n layers up at once; found ones fill their new layer. -1 only on
 * cancellation (a repository that cannot be asked is given up on, said). */
int build_repo_find(build *b, build_repo_want *w, size_t n, ocil_error **err);
/* One layer (the bytecode layer, the code, the python link): 1 or 2 with
 * *facts the entry's (the caller's), 0 when it has to be made. */
int build_repo_lookup(build *b, const char *key, bool here, size_t i, json_t **facts,
		      ocil_error **err);
/* A layer found and not taken (its facts are not the build's): forgotten. */
void build_repo_unwant(build *b, build_repo_want *w);
/* New layer i, made now, to record under key once published. */
void build_repo_note_layer(build *b, const char *key, size_t i, const json_t *facts);
/* Record the layers made now (failures: one warning). */
void build_repo_record(build *b);
/* Layers left in the cache repository, downloaded after all (python runs
 * on them; a rule of check read a file of one). */
int build_repo_bring(build *b, ocil_error **err);
void build_repo_clear(build *b);

/* ---- the end (publish.c) ---- */

/* Lambda's rules on the image, the SBOM, the sink's commit, the digest
 * file. config: the image config written. */
int build_publish(build *b, const json_t *config, ocil_error **err);

#endif
