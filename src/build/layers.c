/* The new layers of a build, in order: the conda environment, its bytecode
 * (a lock's), the code, the python link; each taken from the layer cache
 * when its key hits, else made by its producer (layers/). */
#include <string.h>

#include "build/internal.h"
#include "layers/code.h"
#include "layers/conda.h"
#include "layers/pyc_prefix.h"
#include "layers/pylink.h"

int build_write_layer(build *b, size_t i, build_producer fn, ocil_error **err)
{
	ocil_layer_writer *w = NULL;
	ocil_layer_result *res = &b->results[i];
	if (ocil_layer_writer_new(ocil_sink_blobs(b->sink), &b->lo, &w, err) < 0)
		return -1;
	int r = fn(b, w, err);
	if (r == 0)
		r = ocil_layer_writer_finish(w, res, err);
	ocil_layer_writer_free(w);
	if (r < 0)
		return -1;
	ocil_plan_layer *out = &b->layers[i];
	memcpy(out->digest, res->digest, OCIL_DIGEST_STR_SIZE);
	memcpy(out->diff_id, res->diff_id, OCIL_DIGEST_STR_SIZE);
	out->size = (int64_t)res->size;
	return 0;
}

static int produce_conda_lock(build *b, ocil_layer_writer *w, ocil_error **err)
{
	cleanup_strv ocil_strv warnings = {0};
	ocil_condaenv_opts eo = {.dest = b->o.prefix_dest,
				 .created = b->epoch,
				 .minor = b->conda.python_minor,
				 .cancel = b->o.cancel,
				 .strict = b->o.strict,
				 .warnings = &warnings};
	int r = ocil_condaenv_write_layer(&b->lockenv, &eo, w, err);
	/* paths packages list and lack: shown now, kept with a cached layer */
	build_warn_all(b, &warnings);
	for (size_t i = 0; i < warnings.n; i++)
		ocil_strv_push(&b->conda_warnings, steal_pointer(&warnings.v[i]));
	return r;
}

static int produce_conda(build *b, ocil_layer_writer *w, ocil_error **err)
{
	if (b->o.lock != NULL)
		return produce_conda_lock(b, w, err);
	ocil_conda_opts co = {.prefix = b->o.prefix,
			      .dest = b->o.prefix_dest,
			      .info = &b->conda,
			      .cancel = b->o.cancel,
			      .strict = b->o.strict};
	ocil_conda_report rep = {0};
	int r = ocil_conda_write_layer(&co, w, &rep, err);
	/* What relocation could not fix is the user's to know, even on failure. */
	b->conda_warnings = rep.warnings;
	rep.warnings = (ocil_strv){0};
	b->bytecode_note = ocil_pyc_counts_summary(&rep.bytecode);
	build_warn_all(b, &b->conda_warnings);
	ocil_conda_report_clear(&rep);
	return r;
}

static int produce_code(build *b, ocil_layer_writer *w, ocil_error **err)
{
	return ocil_code_write_layer_bytecode(b->o.code, b->o.code_dest, b->code_bytecode,
					      b->o.cancel, w, err);
}

static int produce_runtime(build *b, ocil_layer_writer *w, ocil_error **err)
{
	return ocil_pylink_write_layer(b->fs, b->minor, b->o.prefix_dest, w, err);
}

/* New layer i made by what, with its history text. */
static void name_layer(build *b, size_t i, const char *what, char *created_by)
{
	b->made_by[i] = what;
	free(b->created_by[i]);
	b->created_by[i] = created_by;
	b->layers[i].created_by = created_by;
	b->layers[i].zstd = b->o.zstd;
}

static int conda_layer(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	if (build_split(b)) /* per package (parts.c) */
		return build_conda_parts(b, err);
	b->n_conda = 1;
	const char *what = o->lock ? "lock" : "prefix";
	const char *src = o->lock ? o->lock : o->prefix;
	name_layer(b, 0, "conda", ocil_xasprintf("ocilambda: conda prefix at %s", o->prefix_dest));
	if (b->conda_hit) {
		/* (a lock's were shown with what it holds, as on a miss) */
		if (o->lock == NULL)
			build_warn_all(b, &b->conda_warnings);
		return build_use_cached(b, &b->conda_ce, 0, err);
	}
	build_say(b, "packing conda %s %s (python %s) at %s", what, src, b->conda.python_version,
		  o->prefix_dest);
	if (build_write_layer(b, 0, produce_conda, err) < 0)
		return ocil_error_wrap(err, "conda %s %s", what, src);
	json_t *facts = b->conda_key[0] != '\0' ? build_conda_facts(b) : NULL;
	if (facts != NULL)
		build_remember(b, b->conda_key, 0, facts);
	return 0;
}

/* With --cache-repo, the code layer by a key of its contents: from this
 * machine's cache or the cache repository (downloaded: Lambda's checks read
 * the handler); 1 when found, 0 with key set (or "") when it is to be made. */
static int code_cached(build *b, char key[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	size_t i = b->nl;
	if (build_code_key(b, key, err) < 0)
		return -1;
	if (key[0] == '\0')
		return 0;
	__attribute__((cleanup(ocil_layer_cache_entry_clear))) ocil_layer_cache_entry ce = {0};
	int hit = build_from_cache(b, key, &ce, err);
	if (hit != 0)
		return hit < 0 || build_use_cached(b, &ce, i, err) < 0 ? -1 : 1;
	json_t *facts = NULL;
	hit = build_repo_lookup(b, key, true, i, &facts, err);
	if (hit > 0)
		build_remember(b, key, i, facts);
	else
		json_decref(facts);
	return hit > 0 ? 1 : hit;
}

static int code_layer(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	name_layer(b, b->nl, "code", ocil_xasprintf("ocilambda: handler code at %s", o->code_dest));
	char key[OCIL_DIGEST_STR_SIZE] = "";
	int hit = code_cached(b, key, err);
	if (hit < 0)
		return -1;
	if (hit) {
		build_say(b, "code %s from the cache", o->code);
		b->nl++;
		return 0;
	}
	__attribute__((cleanup(ocil_tmpdir_remove))) ocil_tmpdir code_pycs = {0};
	if (o->compile_code && build_compile_code(b, &code_pycs, err) < 0)
		return -1;
	build_say(b, "packing code %s at %s", o->code, o->code_dest);
	int r = build_write_layer(b, b->nl, produce_code, err);
	b->code_bytecode = NULL;
	if (r < 0)
		return ocil_error_wrap(err, "code %s", o->code);
	if (key[0] != '\0') {
		build_repo_note_layer(b, key, b->nl, NULL);
		build_remember(b, key, b->nl, NULL);
	}
	b->nl++;
	return 0;
}

static int runtime_layer(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	size_t i = b->nl;
	build_say(b, "pointing /var/lang/bin/python%s at %s/bin/python", b->minor, o->prefix_dest);
	char key[OCIL_DIGEST_STR_SIZE];
	build_runtime_key(b, key);
	__attribute__((cleanup(ocil_layer_cache_entry_clear))) ocil_layer_cache_entry rt = {0};
	name_layer(b, i, "runtime",
		   ocil_xasprintf("ocilambda: /var/lang/bin/python%s -> %s/bin/python (original "
				  "kept as python%s-clean)",
				  b->minor, o->prefix_dest, b->minor));
	int hit = build_from_cache(b, key, &rt, err);
	if (hit < 0 || (hit > 0 && build_use_cached(b, &rt, i, err) < 0))
		return -1;
	if (!hit) {
		json_t *facts = NULL;
		hit = build_repo_lookup(b, key, true, i, &facts, err);
		if (hit < 0)
			return -1;
		if (hit > 0)
			build_remember(b, key, i, facts);
		else
			json_decref(facts);
	}
	if (hit) {
		build_say(b, "runtime patch %s from the cache", b->results[i].digest);
	} else {
		if (build_write_layer(b, i, produce_runtime, err) < 0)
			return ocil_error_wrap(err, "runtime patch");
		build_repo_note_layer(b, key, i, NULL);
		build_remember(b, key, i, NULL);
	}
	b->nl++;
	return 0;
}

int build_make_layers(build *b, ocil_error **err)
{
	b->lo = (ocil_layer_opts){.mtime = b->epoch,
				  .compression_level = b->o.level,
				  .zstd = b->o.zstd,
				  .index_dir = b->index_dir};
	if (conda_layer(b, err) < 0)
		return -1;
	b->nl = b->n_conda;
	int bc = build_bytecode_layer(b, b->nl, err);
	if (bc < 0)
		return -1;
	if (bc > 0) {
		name_layer(b, b->nl, "bytecode",
			   ocil_xasprintf("ocilambda: bytecode compiled by %s/bin/python%s "
					  "(unchecked-hash pycs)",
					  b->o.prefix_dest, b->conda.python_minor));
		b->nl++;
	}
	return code_layer(b, err) < 0 || runtime_layer(b, err) < 0 ? -1 : 0;
}
