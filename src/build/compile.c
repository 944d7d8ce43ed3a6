/* Bytecode compiled by the environment's own python, under bubblewrap on
 * the image's tree (layers/bytecode.h): a lock's modules into a layer of
 * their own, and --compile-code's into the code layer. */
#include <errno.h>
#include <stdlib.h>

#include "build/internal.h"
#include "layers/bytecode.h"
#include "layers/code.h"

/* The tree the environment's python runs on: the base's layers, plus for
 * a lock the conda layers (a prefix is bound from the host; those left in
 * the cache repository are downloaded first). Kept in the cache when keep
 * (it serves every --compile-code rebuild), else made in a temporary
 * directory. */
static int python_tree(build *b, bool keep, ocil_bytecode_tree *t, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	if (o->lock != NULL && build_repo_bring(b, err) < 0)
		return -1;
	ocil_blobstore *bs = ocil_sink_blobs(b->sink);
	size_t n = b->n_base_layers + (o->lock != NULL ? b->n_conda : 0);
	cleanup_free const char **paths = ocil_xcalloc(n + 1, sizeof(char *));
	cleanup_free const char **digests = ocil_xcalloc(n + 1, sizeof(char *));
	ocil_strv owned = {0};
	for (size_t i = 0; i < n; i++) {
		digests[i] = i < b->n_base_layers ? b->base_layers[i].digest
						  : b->layers[i - b->n_base_layers].digest;
		ocil_strv_push(&owned, ocil_blobstore_path(bs, digests[i]));
		paths[i] = owned.v[i];
	}
	/* mount points of the binds (the prefix and the code) */
	const char *mounts[] = {o->code_dest, o->lock ? NULL : o->prefix_dest, NULL};
	const char *dir = keep && b->cache != NULL && !o->no_cache ? b->cache_dir : NULL;
	int r = ocil_bytecode_tree_make(dir, paths, digests, n, mounts, o->cancel, t, err);
	ocil_strv_clear(&owned);
	if (r < 0)
		return ocil_error_wrap(err, "unpacking the image for its python");
	return 0;
}

/* The python of the environment, as the image has it. */
static char *env_python(const build *b)
{
	return ocil_xasprintf("%s/bin/python%s", b->o.prefix_dest, b->conda.python_minor);
}

static char *compiled_note(const build *b, json_int_t compiled, json_int_t failed,
			   const char *first_failed)
{
	cleanup_free char *py = env_python(b);
	cleanup_free char *bad =
	    failed > 0 ? ocil_xasprintf("; %lld did not compile (e.g. %s), as with conda",
					(long long)failed, first_failed ? first_failed : "?")
		       : ocil_xstrdup("");
	return ocil_xasprintf("bytecode: %lld modules compiled by %s into their own layer%s",
			      (long long)compiled, py, bad);
}

/* What python compiles at every cold start when there is no bytecode
 * layer, and why. */
static void uncompiled(build *b, size_t n, const char *why)
{
	free(b->bytecode_note);
	b->bytecode_note = ocil_xasprintf(
	    "bytecode: %zu modules of the environment have no valid .pyc: python compiles them "
	    "at every cold start (%s)",
	    n, why);
	if (!b->o.no_compile)
		build_warn(b,
			   "not compiling the environment's bytecode: %s; %zu modules will be "
			   "compiled at every cold start (--no-compile builds so on purpose)",
			   why, n);
}

static int produce_bytecode(build *b, ocil_layer_writer *w, ocil_error **err)
{
	return ocil_bytecode_write_layer(b->compiled_dir, w, b->o.cancel, err);
}

/* What compiling counted, from a bytecode layer's facts: false when they
 * are not such facts. */
static bool bytecode_facts(build *b, const json_t *facts)
{
	json_int_t done = 0, failed = 0;
	const char *first = NULL;
	if (json_unpack((json_t *)facts, "{s:I, s:I, s?s}", "compiled", &done, "failed", &failed,
			"first_failed", &first) != 0)
		return false;
	free(b->bytecode_note);
	b->bytecode_note = compiled_note(b, done, failed, first);
	return true;
}

/* The bytecode layer from the cache, or the cache repository: 1 when
 * there (into new layer i). */
static int bytecode_cached(build *b, const char *key, size_t i, ocil_error **err)
{
	__attribute__((cleanup(ocil_layer_cache_entry_clear))) ocil_layer_cache_entry ce = {0};
	if (b->o.no_compile)
		return 0;
	int hit = build_from_cache(b, key, &ce, err);
	if (hit < 0)
		return -1;
	if (hit > 0 && bytecode_facts(b, ce.facts)) {
		build_say(b, "bytecode layer %s from the cache", ce.digest);
		return build_use_cached(b, &ce, i, err) < 0 ? -1 : 1;
	}
	build_repo_want w = {.key = key, .i = i};
	if (build_repo_find(b, &w, 1, err) < 0)
		return -1;
	if (w.hit == 0)
		return 0;
	if (!bytecode_facts(b, w.facts)) {
		build_repo_unwant(b, &w);
		return 0;
	}
	if (w.hit == 1)
		build_remember(b, key, i, w.facts);
	else
		json_decref(w.facts);
	return 1;
}

/* The sources of the conda layers python would compile at every cold
 * start: from their facts (their .py files and pycs). */
static int uncompiled_sources(build *b, ocil_strv *sources, ocil_error **err)
{
	ocil_blobstore *bs = ocil_sink_blobs(b->sink);
	const char *facts_dir = b->o.no_cache && b->absent.n == 0 ? NULL : b->index_dir;
	ocil_pyc_facts f = {0};
	for (size_t i = 0; i < b->n_conda; i++) {
		cleanup_free char *blob = ocil_blobstore_path(bs, b->layers[i].digest);
		ocil_pyc_facts one = {0};
		if (ocil_pyc_facts_of_layer(blob, "conda layer", facts_dir, b->o.cancel, &one,
					    err) < 0) {
			ocil_pyc_facts_clear(&f);
			return -1;
		}
		for (size_t k = 0; k < one.n; k++) {
			if (f.n == f.cap) {
				f.cap = f.cap ? f.cap * 2 : 256;
				f.v = ocil_xrealloc(f.v, f.cap * sizeof(*f.v));
			}
			f.v[f.n++] = one.v[k];
		}
		free(one.v);
	}
	ocil_bytecode_select(&f, b->o.prefix_dest, b->conda.python_minor, sources);
	ocil_pyc_facts_clear(&f);
	return 0;
}

/* Compile sources into the bytecode layer i; 0 with nothing made when
 * they cannot be compiled here (said). */
static int compile_layer(build *b, const char *key, const ocil_strv *sources, size_t i,
			 ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	build_say(b, "compiling %zu modules with %s/bin/python%s", sources->n, o->prefix_dest,
		  b->conda.python_minor);
	__attribute__((cleanup(ocil_bytecode_tree_clear))) ocil_bytecode_tree tree = {0};
	__attribute__((cleanup(ocil_tmpdir_remove))) ocil_tmpdir out = {0};
	cleanup_free char *python = env_python(b);
	__attribute__((cleanup(ocil_bytecode_result_clear))) ocil_bytecode_result br = {0};
	ocil_error *no = NULL;
	if (python_tree(b, o->compile_code, &tree, &no) == 0 &&
	    ocil_tmpdir_create(NULL, "bytecode", &out, &no) == 0) {
		ocil_bytecode_opts bo = {.tree = tree.path, .python = python, .cancel = o->cancel};
		ocil_bytecode_compile(&bo, sources, out.path, &br, &no);
	}
	if (no != NULL) {
		if (no->code == OCIL_E_CANCELLED) {
			*err = no;
			return -1;
		}
		uncompiled(b, sources->n, no->msg);
		ocil_error_free(no);
		return 0;
	}
	b->compiled_dir = out.path;
	int r = build_write_layer(b, i, produce_bytecode, err);
	b->compiled_dir = NULL;
	if (r < 0)
		return ocil_error_wrap(err, "bytecode layer");
	free(b->bytecode_note);
	b->bytecode_note =
	    compiled_note(b, (json_int_t)br.compiled, (json_int_t)br.failed, br.first_failed);
	json_t *facts = json_pack("{s:I, s:I}", "compiled", (json_int_t)br.compiled, "failed",
				  (json_int_t)br.failed);
	if (br.first_failed != NULL)
		json_object_set_new(facts, "first_failed", json_string(br.first_failed));
	build_repo_note_layer(b, key, i, facts);
	build_remember(b, key, i, facts);
	return 1;
}

int build_bytecode_layer(build *b, size_t i, ocil_error **err)
{
	if (b->o.lock == NULL)
		return 0;
	char key[OCIL_DIGEST_STR_SIZE];
	build_bytecode_key(b, key);
	int hit = bytecode_cached(b, key, i, err);
	if (hit != 0)
		return hit;
	/* what the conda layer lacks, from its sources and pycs */
	cleanup_strv ocil_strv sources = {0};
	if (uncompiled_sources(b, &sources, err) < 0)
		return -1;
	if (sources.n == 0)
		return 0;
	if (b->o.no_compile) {
		uncompiled(b, sources.n, "--no-compile");
		return 0;
	}
	cleanup_free char *why = NULL;
	if (!ocil_bytecode_runs_here(b->platform.arch, &why)) {
		uncompiled(b, sources.n, why);
		return 0;
	}
	return compile_layer(b, key, &sources, i, err);
}

int build_compile_code(build *b, ocil_tmpdir *out, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	cleanup_strv ocil_strv sources = {0};
	if (ocil_code_sources(o->code, o->code_dest, &sources, err) < 0)
		return ocil_error_wrap(err, "--compile-code");
	if (sources.n == 0)
		return 0;
	cleanup_free char *why = NULL;
	if (!ocil_bytecode_runs_here(b->platform.arch, &why))
		return ocil_error_set(err, OCIL_E_IO, "--compile-code: %s", why);
	cleanup_free char *code = realpath(o->code, NULL);
	cleanup_free char *prefix = o->lock ? NULL : realpath(o->prefix, NULL);
	if (code == NULL || (o->lock == NULL && prefix == NULL))
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "--compile-code: %s",
					    code == NULL ? o->code : o->prefix);
	build_say(b, "compiling %zu modules of the code with %s/bin/python%s", sources.n,
		  o->prefix_dest, b->conda.python_minor);
	__attribute__((cleanup(ocil_bytecode_tree_clear))) ocil_bytecode_tree tree = {0};
	cleanup_free char *python = env_python(b);
	const char *binds[] = {code, o->code_dest, prefix, o->prefix_dest, NULL};
	if (prefix == NULL)
		binds[2] = NULL;
	__attribute__((cleanup(ocil_bytecode_result_clear))) ocil_bytecode_result br = {0};
	if (python_tree(b, true, &tree, err) < 0 ||
	    ocil_tmpdir_create(NULL, "code-bytecode", out, err) < 0)
		return ocil_error_wrap(err, "--compile-code");
	ocil_bytecode_opts bo = {
	    .tree = tree.path, .ro_binds = binds, .python = python, .cancel = o->cancel};
	if (ocil_bytecode_compile(&bo, &sources, out->path, &br, err) < 0)
		return ocil_error_wrap(err, "--compile-code");
	if (br.failed > 0)
		build_warn(b,
			   "--compile-code: %zu of %zu files did not compile (e.g. %s): left "
			   "without bytecode",
			   br.failed, sources.n, br.first_failed ? br.first_failed : "?");
	b->code_bytecode = out->path;
	return 0;
}
