/* build: the assemble pipeline. A base image, a conda environment (a
 * prefix, or a lock and its package files) and handler code become a
 * Lambda image written to a layout, an archive or a registry:
 *
 *   options checked -> layer cache opened -> the conda environment read
 *   (or its facts taken from the cache) -> base opened, its layers
 *   imported -> its python checked against the environment's -> new
 *   layers (conda, bytecode, code, python link), each from the cache or
 *   produced -> config and manifest (oci/plan.h) -> Lambda's rules
 *   (lambda/check.h) -> SBOM, publish, digest file.
 *
 * Nothing here prints: what a user sees of the way (steps, warnings,
 * findings, downloads) goes to the report callbacks, what was built comes
 * back in the result. The same inputs give the same bytes (SOURCE_DATE_EPOCH
 * sets every timestamp). */
#ifndef OCIL_BUILD_H
#define OCIL_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/digest.h"
#include "base/error.h"
#include "base/util.h"
#include "lambda/check.h"
#include "registry/fetch.h"
#include "registry/registry.h"
#include "transport/sink.h"

/* Where assemble's report goes; every callback may be NULL. */
typedef struct {
	void *data;
	/* a step of the way: "reading base oci:./base:3.8", "packing code …" */
	void (*progress)(void *data, const char *msg);
	/* what the user should know even without progress: what packing the
	 * environment could not fix, bytecode that is not compiled */
	void (*warning)(void *data, const char *msg);
	/* a finding of Lambda's rules on the image (not the infos); notable:
	 * one to show even without progress (errors; zstd asked for) */
	void (*finding)(void *data, const ocil_finding *f, bool notable);
	/* downloads of a lock's packages: notices (retries) and progress;
	 * p NULL: the downloads are over */
	void (*notice)(void *data, const char *msg);
	void (*fetch)(void *data, const ocil_fetch_progress *p);
} ocil_build_report;

typedef struct {
	const char *base;   /* base image reference (oci:DIR[:TAG], docker-archive:, docker://) */
	const char *prefix; /* a conda prefix (with conda-meta/), or */
	const char *lock;   /* an @EXPLICIT lock or conda-lock.yml, with: */
	const char *pkgs_dir, *wheels_dir; /* may be NULL */
	const ocil_mirror *mirrors;
	size_t n_mirrors;
	int jobs;	   /* package downloads at once; 0: the default */
	bool offline;	   /* no network at all */
	bool no_compile;   /* a lock's environment: no bytecode layer */
	const char *code;  /* handler code directory */
	bool compile_code; /* the code's pycs too */
	const char *handler;
	const char *output;	 /* where the image goes */
	ocil_format format;	 /* manifests for docker:// and docker-archive: */
	const char *digestfile;	 /* the manifest digest written there, or NULL */
	const char *sbom;	 /* SPDX of the conda packages written there, or NULL */
	bool no_check;		 /* publish even if Lambda's rules fail */
	bool zstd;		 /* new layers zstd, else gzip */
	int level;		 /* 1..9, 0: 6 */
	bool no_cache;		 /* take nothing from the layer cache */
	const char *prefix_dest; /* NULL: /opt/conda-env */
	const char *code_dest;	 /* NULL: /opt/my-code */
	const char *const *env;	 /* K=V, set in order over the base's */
	size_t n_env;
	const char *entrypoint;	     /* a JSON array or one path; NULL: the base's */
	const char *platform;	     /* NULL: linux/amd64 */
	bool allow_mismatch;	     /* the prefix's python minor need not be the base's */
	const char *source_prefix;   /* where the prefix was built; NULL: detected */
	const char *const *excludes; /* globs relative to the prefix */
	size_t n_excludes;
	bool strict; /* what relocation cannot fix fails the build */
	/* the conda layers (issue 17): 0 per package within 100 layers with
	 * the base's (README "Layers: one per package"), N at most N
	 * (1..OCIL_SPLIT_MAX_LAYERS), 1 one layer as before */
	size_t layers;
	/* REGISTRY/REPO whose layers builds on any machine share (README
	 * "Sharing layers between CI runners"), or NULL; read: look layers up
	 * there but never record any; mode: "read" or "readwrite" (NULL:
	 * readwrite), as the command line gives it */
	const char *cache_repo;
	const char *cache_repo_mode;
	/* registry options, with the caller's notice and progress callbacks */
	ocil_registry_opts registry;
	const char *cache_dir; /* NULL: ocil_source_default_cache_dir() */
	const ocil_cancel *cancel;
	const ocil_build_report *report; /* NULL: nothing reported */
} ocil_build_opts;

/* One layer of the image built, for the summary. */
typedef struct {
	const char *made_by; /* "base", "conda", "bytecode", "code", "runtime" */
	char digest[OCIL_DIGEST_STR_SIZE];
	int64_t size;	      /* as stored (compressed) */
	int64_t uncompressed; /* -1: not known (base layers are not unpacked) */
	bool cached;	      /* taken from the layer cache, not made now */
	bool remote;	      /* ... from the cache repository (--cache-repo) */
	bool base;	      /* a base layer: neither cached nor new */
	const char *what;     /* a conda layer's packages ("numpy-1.24.2-py311h_0",
			       * "group 3 of 8: six, idna"), or NULL */
} ocil_build_layer;

typedef struct {
	char digest[OCIL_DIGEST_STR_SIZE]; /* the manifest's */
	char *published;		   /* the digest, or HOST/REPO@digest for a registry */
	ocil_build_layer *layers;	   /* base layers first */
	size_t n_layers;
	char *bytecode_note; /* what became of the environment's bytecode, or NULL */
	char **whats;	     /* (owns the layers' what) */
	size_t n_whats;
} ocil_build_result;
void ocil_build_result_clear(ocil_build_result *r);

/* The options alone: what is required, the handler's and the
 * destinations' shapes, what goes together (OCIL_E_USAGE). assemble checks
 * them first too. */
int ocil_build_check_opts(const ocil_build_opts *o, ocil_error **err);

/* Build and publish the image. Errors: OCIL_E_USAGE (options), OCIL_E_INPUT
 * (base, environment, code), OCIL_E_REGISTRY, OCIL_E_CHECK (Lambda's rules;
 * nothing published), OCIL_E_IO, OCIL_E_CANCELLED; the output is never left
 * half-written. */
int ocil_build_assemble(const ocil_build_opts *o, ocil_build_result *out, ocil_error **err);

#endif
