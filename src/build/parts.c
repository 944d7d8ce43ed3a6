/* Per-package conda layers (issue 17, layers/conda_split.h): a prefix's
 * files by the record that owns them, a lock's by package, each layer from
 * the layer cache by a key of its own, from the cache repository by a key
 * of its contents, or packed.
 *
 * An unchanged environment takes all its layers from one record (the
 * whole prefix's or lock's key, as one layer had: build_list_cached), so a
 * code-only rebuild costs what it did; after a change each layer is found
 * by its own key and only the changed ones are packed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "build/internal.h"
#include "layers/conda.h"

/* ---- facts ---- */

static json_t *pyc_counts_json(const ocil_pyc_counts *c)
{
	json_t *j = json_pack("{s:I, s:I, s:I, s:I}", "pycs", (json_int_t)c->pycs, "valid",
			      (json_int_t)c->valid, "stale_host", (json_int_t)c->stale_host,
			      "rewritten", (json_int_t)c->rewritten);
	if (c->first_stale != NULL)
		json_object_set_new(j, "first_stale", json_string(c->first_stale));
	if (c->first_rewritten != NULL)
		json_object_set_new(j, "first_rewritten", json_string(c->first_rewritten));
	return j;
}

/* Add the counts of one layer (j: as pyc_counts_json) to sum. */
static bool pyc_counts_add(ocil_pyc_counts *sum, const json_t *j)
{
	json_int_t pycs = 0, valid = 0, stale = 0, rew = 0;
	const char *fs = NULL, *fr = NULL;
	if (json_unpack((json_t *)j, "{s:I, s:I, s:I, s:I, s?s, s?s}", "pycs", &pycs, "valid",
			&valid, "stale_host", &stale, "rewritten", &rew, "first_stale", &fs,
			"first_rewritten", &fr) != 0 ||
	    pycs < 0 || valid < 0 || stale < 0 || rew < 0)
		return false;
	sum->pycs += (size_t)pycs;
	sum->valid += (size_t)valid;
	sum->stale_host += (size_t)stale;
	sum->rewritten += (size_t)rew;
	if (sum->first_stale == NULL && fs != NULL)
		sum->first_stale = ocil_xstrdup(fs);
	if (sum->first_rewritten == NULL && fr != NULL)
		sum->first_rewritten = ocil_xstrdup(fr);
	return true;
}

static bool warnings_ok(const json_t *facts)
{
	const json_t *w = json_object_get(facts, "warnings");
	size_t i;
	const json_t *v;
	if (!json_is_array(w))
		return false;
	json_array_foreach(w, i, v) if (!json_is_string(v)) return false;
	return true;
}

/* A prefix part's facts: what packing it reported and its bytecode. */
static bool prefix_facts_ok(const json_t *facts)
{
	ocil_pyc_counts c = {0};
	bool ok = warnings_ok(facts) && pyc_counts_add(&c, json_object_get(facts, "pyc"));
	ocil_pyc_counts_clear(&c);
	return ok;
}

/* A part's warnings, reported and kept for the whole environment's record;
 * a prefix part's bytecode added up. */
static void facts_take(build *b, const json_t *facts)
{
	size_t i;
	const json_t *v;
	json_array_foreach(json_object_get(facts, "warnings"), i, v)
	{
		build_warn(b, "%s", json_string_value(v));
		ocil_strv_push(&b->conda_warnings, ocil_xstrdup(json_string_value(v)));
	}
	const json_t *pyc = json_object_get(facts, "pyc");
	if (pyc != NULL)
		pyc_counts_add(&b->pyc_sum, pyc);
}

/* ---- the state of each part ---- */

typedef struct {
	char key[OCIL_DIGEST_STR_SIZE];	 /* this machine's (a lock's: any machine's) */
	char ckey[OCIL_DIGEST_STR_SIZE]; /* a prefix part's content key ("" none) */
	json_t *facts;			 /* once found or made */
} part_state;

static void states_free(part_state *st, size_t n)
{
	for (size_t i = 0; st != NULL && i < n; i++)
		json_decref(st[i].facts);
	free(st);
}

/* Part k from this machine's cache by key (st->key, or a prefix part's
 * content key: a copy of the prefix elsewhere); 1 when found. */
static int part_local(build *b, part_state *s, size_t k, const char *key,
		      bool (*valid)(const json_t *), ocil_error **err)
{
	__attribute__((cleanup(ocil_layer_cache_entry_clear))) ocil_layer_cache_entry ce = {0};
	int hit = key[0] ? build_from_cache(b, key, &ce, err) : 0;
	if (hit <= 0 || !valid(ce.facts))
		return hit < 0 ? -1 : 0;
	if (build_use_cached(b, &ce, k, err) < 0)
		return -1;
	s->facts = steal_pointer(&ce.facts);
	if (key != s->key) /* found by its contents: by this machine's key next time */
		build_remember(b, s->key, k, json_incref(s->facts));
	return 1;
}

/* Parts not found yet, looked up in the cache repository all at once (by
 * their content key, or key when they have none). */
static int parts_from_repo(build *b, part_state *st, size_t n, bool (*valid)(const json_t *),
			   ocil_error **err)
{
	if (b->repo == NULL)
		return 0;
	cleanup_free build_repo_want *w = ocil_xcalloc(n + 1, sizeof(*w));
	size_t m = 0;
	for (size_t k = 0; k < n; k++) {
		const char *key = st[k].ckey[0] ? st[k].ckey : st[k].key;
		if (st[k].facts == NULL && key[0] != '\0')
			w[m++] = (build_repo_want){.key = key, .i = k};
	}
	if (build_repo_find(b, w, m, err) < 0)
		return -1;
	for (size_t j = 0; j < m; j++) {
		part_state *s = &st[w[j].i];
		if (w[j].hit == 0)
			continue;
		if (!valid(w[j].facts)) {
			build_repo_unwant(b, &w[j]);
			continue;
		}
		s->facts = steal_pointer(&w[j].facts);
		if (w[j].hit == 1) { /* downloaded: kept for next time */
			if (s->ckey[0] != '\0')
				build_remember(b, s->ckey, w[j].i, json_incref(s->facts));
			build_remember(b, s->key, w[j].i, json_incref(s->facts));
		}
	}
	return 0;
}

/* A part just packed (facts: what it reported), kept under its keys and
 * noted for the cache repository. */
static void part_made(build *b, part_state *s, size_t k, json_t *facts)
{
	s->facts = facts;
	const char *shared = s->ckey[0] ? s->ckey : s->key;
	build_repo_note_layer(b, shared, k, facts);
	if (s->ckey[0] != '\0')
		build_remember(b, s->ckey, k, json_incref(facts));
	build_remember(b, s->key, k, json_incref(facts));
}

static void name_part(build *b, size_t k, const ocil_split_plan *plan)
{
	const char *dest = b->o.prefix_dest;
	const char *what = plan->what[k];
	char *by;
	if (plan->n == 1)
		by = ocil_xasprintf("ocilambda: conda prefix at %s", dest);
	else if (k == plan->unowned)
		by = ocil_xasprintf(
		    "ocilambda: %s at %s",
		    b->o.lock ? "conda-meta/history" : "prefix files no conda record owns", dest);
	else if (ocil_str_has_prefix(what, "group "))
		by = ocil_xasprintf("ocilambda: conda packages, %s, at %s", what, dest);
	else
		by = ocil_xasprintf("ocilambda: conda package %s at %s", what, dest);
	b->made_by[k] = "conda";
	free(b->created_by[k]);
	b->created_by[k] = by;
	b->layers[k].created_by = by;
	b->layers[k].zstd = b->o.zstd;
	free(b->what[k]);
	b->what[k] = plan->n == 1 ? NULL : ocil_xstrdup(what);
}

/* ---- the whole environment's record ---- */

/* Every layer of the record from the cache: 1 when all are there (and
 * taken), 0 when one is not (the parts are made anew), -1 on errors. */
static int list_take(build *b, size_t budget, ocil_error **err)
{
	const json_t *j = b->conda_list;
	json_int_t was = 0;
	const json_t *parts = json_object_get(j, "layers");
	if (j == NULL || json_unpack((json_t *)j, "{s:I}", "budget", &was) != 0 ||
	    (size_t)was != budget || !json_is_array(parts) || json_array_size(parts) == 0 ||
	    json_array_size(parts) > budget)
		return 0;
	size_t n = json_array_size(parts);
	for (size_t k = 0; k < n; k++) {
		const json_t *p = json_array_get(parts, k);
		const char *key = ocil_json_opt_string(p, "key");
		const char *by = ocil_json_opt_string(p, "created_by");
		const char *what = ocil_json_opt_string(p, "what");
		__attribute__((cleanup(ocil_layer_cache_entry_clear)))
		ocil_layer_cache_entry ce = {0};
		int hit =
		    key && by && ocil_digest_valid(key) ? build_from_cache(b, key, &ce, err) : 0;
		if (hit <= 0)
			return hit;
		if (build_use_cached(b, &ce, k, err) < 0)
			return -1;
		b->made_by[k] = "conda";
		free(b->created_by[k]);
		b->created_by[k] = ocil_xstrdup(by);
		b->layers[k].created_by = b->created_by[k];
		b->layers[k].zstd = b->o.zstd;
		free(b->what[k]);
		b->what[k] = what ? ocil_xstrdup(what) : NULL;
	}
	b->n_conda = n;
	build_say(b, "conda %s %s unchanged: %zu layers from the cache",
		  b->o.lock ? "lock" : "prefix", b->o.lock ? b->o.lock : b->o.prefix, n);
	return 1;
}

/* Keep the environment's record: its facts and the keys of its layers. */
static void list_keep(build *b, size_t budget, const part_state *st, size_t n)
{
	if (b->conda_key[0] == '\0' || b->cache == NULL)
		return;
	json_t *parts = json_array();
	for (size_t k = 0; k < n; k++) {
		json_t *p =
		    json_pack("{s:s, s:s}", "key", st[k].key, "created_by", b->created_by[k]);
		if (b->what[k] != NULL)
			json_object_set_new(p, "what", json_string(b->what[k]));
		json_array_append_new(parts, p);
	}
	json_t *facts = build_conda_facts(b);
	if (facts == NULL) {
		json_decref(parts);
		return;
	}
	json_object_set_new(facts, "budget", json_integer((json_int_t)budget));
	json_object_set_new(facts, "layers", parts);
	ocil_error *not_kept = NULL;
	if (ocil_layer_cache_put_json(b->cache, b->conda_key, facts, &not_kept) < 0) {
		build_say(b, "not caching the conda layers' list: %s", not_kept->msg);
		ocil_error_free(not_kept);
	}
	json_decref(facts);
}

/* A layer of the record is gone: the environment is read after all (what
 * the record said of it is dropped). */
static int list_drop(build *b, ocil_error **err)
{
	json_decref(b->conda_list);
	b->conda_list = NULL;
	ocil_strv_clear(&b->conda_warnings);
	free(b->bytecode_note);
	b->bytecode_note = NULL;
	for (size_t k = 0; k < b->n_conda; k++)
		memset(&b->results[k], 0, sizeof(b->results[k]));
	b->n_conda = 0;
	ocil_conda_info_clear(&b->conda);
	if (b->o.lock == NULL)
		return build_inspect_prefix(b, err);
	json_decref(b->wheel_tags);
	b->wheel_tags = NULL;
	ocil_sbom_packages_clear(&b->lock_sbom);
	b->lock_sbom_ready = false;
	return build_load_lock(b, err);
}

/* ---- a prefix ---- */

static int produce_part(build *b, ocil_layer_writer *w, ocil_error **err)
{
	ocil_conda_split_layer sl = {.s = b->split, .k = b->part};
	ocil_conda_opts co = {.prefix = b->o.prefix,
			      .dest = b->o.prefix_dest,
			      .info = &b->conda,
			      .cancel = b->o.cancel,
			      .strict = b->o.strict,
			      .keep = ocil_conda_split_keep,
			      .keep_ud = &sl};
	ocil_conda_report_clear(&b->part_rep);
	return ocil_conda_write_layer(&co, w, &b->part_rep, err);
}

/* The start of a prefix part's keys: every option that shapes its bytes. */
static ocil_hasher *prefix_key_begin(const build *b, const char *kind)
{
	const ocil_build_opts *o = &b->o;
	ocil_hasher *h = ocil_layer_cache_key_begin(kind);
	ocil_layer_cache_key_str(h, b->conda.origin);
	ocil_layer_cache_key_str(h, o->prefix_dest);
	ocil_layer_cache_key_str(h, b->conda.python_minor);
	ocil_layer_cache_key_int(h, (int64_t)o->n_excludes);
	for (size_t i = 0; i < o->n_excludes; i++)
		ocil_layer_cache_key_str(h, o->excludes[i]);
	ocil_layer_cache_key_int(h, o->strict);
	build_key_packing(h, b);
	return h;
}

/* With --cache-repo, the key of part k that holds across machines (the
 * contents of its files); "" when it cannot be had (said). -1 only on
 * cancellation. */
static int content_key(build *b, size_t k, char ckey[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	ocil_hasher *h = prefix_key_begin(b, "conda-part-content/1");
	ocil_error *no = NULL;
	int r = ocil_conda_split_fold_content(b->split, k, h, b->o.cancel, &no);
	ocil_layer_cache_key_finish(h, ckey);
	if (r == 0)
		return 0;
	ckey[0] = '\0';
	if (no->code == OCIL_E_CANCELLED) {
		*err = no;
		return -1;
	}
	build_say(b, "conda layer %zu: no key for the cache repository: %s", k + 1, no->msg);
	ocil_error_free(no);
	return 0;
}

static int prefix_pack(build *b, part_state *s, size_t k, ocil_error **err)
{
	const ocil_split_plan *plan = ocil_conda_split_plan(b->split);
	build_say(b, "packing conda layer %zu/%zu (%s)", k + 1, plan->n, plan->what[k]);
	b->part = k;
	if (build_write_layer(b, k, produce_part, err) < 0)
		return ocil_error_wrap(err, "conda prefix %s", b->o.prefix);
	ocil_conda_report *rep = &b->part_rep;
	json_t *w = json_array();
	for (size_t i = 0; i < rep->warnings.n; i++)
		json_array_append_new(w, json_string(rep->warnings.v[i]));
	part_made(b, s, k,
		  json_pack("{s:o, s:o}", "warnings", w, "pyc", pyc_counts_json(&rep->bytecode)));
	return 0;
}

/* Every part of the split prefix: from this machine's cache, else (with
 * --cache-repo) by its contents from this machine's cache or the cache
 * repository, else packed; then their warnings and bytecode, in order. */
static int prefix_parts(build *b, size_t budget, ocil_error **err)
{
	if (ocil_conda_split_prefix(b->o.prefix, &b->conda, budget, b->o.cancel, &b->split, err) <
	    0)
		return -1;
	const ocil_split_plan *plan = ocil_conda_split_plan(b->split);
	size_t n = plan->n;
	b->n_conda = n;
	build_say(b, "conda prefix %s: %zu records in %zu layers", b->o.prefix,
		  b->conda.record_files.n, n);
	part_state *st = ocil_xcalloc(n + 1, sizeof(*st));
	cleanup_free char *real = realpath(b->o.prefix, NULL);
	int r = 0;
	for (size_t k = 0; r == 0 && k < n; k++) {
		name_part(b, k, plan);
		ocil_hasher *h = prefix_key_begin(b, "conda-part/1");
		ocil_layer_cache_key_str(h, real);
		ocil_conda_split_fold_local(b->split, k, h);
		ocil_layer_cache_key_finish(h, st[k].key);
		r = part_local(b, &st[k], k, st[k].key, prefix_facts_ok, err);
		if (r > 0)
			build_say(b, "conda layer %zu/%zu (%s) from the cache", k + 1, n,
				  plan->what[k]);
		r = r < 0 ? -1 : 0;
	}
	for (size_t k = 0; r == 0 && b->repo != NULL && k < n; k++) {
		if (st[k].facts != NULL)
			continue;
		r = content_key(b, k, st[k].ckey, err);
		if (r == 0 && st[k].ckey[0] != '\0')
			r = part_local(b, &st[k], k, st[k].ckey, prefix_facts_ok, err) < 0 ? -1 : 0;
	}
	if (r == 0)
		r = parts_from_repo(b, st, n, prefix_facts_ok, err);
	for (size_t k = 0; r == 0 && k < n; k++)
		if (st[k].facts == NULL)
			r = prefix_pack(b, &st[k], k, err);
	for (size_t k = 0; r == 0 && k < n; k++)
		facts_take(b, st[k].facts);
	if (r == 0) {
		free(b->bytecode_note);
		b->bytecode_note = ocil_pyc_counts_summary(&b->pyc_sum);
		list_keep(b, budget, st, n);
	}
	states_free(st, n);
	return r;
}

/* ---- a lock ---- */

static int produce_lock_part(build *b, ocil_layer_writer *w, ocil_error **err)
{
	ocil_strv_clear(&b->part_rep.warnings);
	ocil_condaenv_opts eo = {.dest = b->o.prefix_dest,
				 .created = b->epoch,
				 .minor = b->conda.python_minor,
				 .cancel = b->o.cancel,
				 .strict = b->o.strict,
				 .warnings = &b->part_rep.warnings,
				 .part = &b->lock_part};
	return ocil_condaenv_write_layer(&b->lockenv, &eo, w, err);
}

/* Layer k's key: what its packages are (each checked against the lock's
 * hash when it was loaded; a wheel's own bytes, its RECORD being only
 * what it claims), what later packages take from them, and the options;
 * nothing of this machine's, so it holds on any. "" when a wheel cannot
 * be read (packing says why). */
static void lock_part_key(build *b, char key[OCIL_DIGEST_STR_SIZE])
{
	ocil_condaenv *env = &b->lockenv;
	const ocil_condaenv_part *part = &b->lock_part;
	ocil_hasher *h = ocil_layer_cache_key_begin("conda-lock-part/1");
	ocil_layer_cache_key_str(h, b->o.prefix_dest);
	ocil_layer_cache_key_str(h, b->conda.python_minor);
	ocil_layer_cache_key_str(h, b->conda.subdir);
	ocil_layer_cache_key_int(h, b->o.strict);
	build_key_packing(h, b);
	for (size_t i = 0; i < env->n; i++) {
		if (!part->pkgs[i])
			continue;
		const ocil_condapkg *p = env->pkgs[i];
		const ocil_condalock_pkg *lp = &env->lock.pkgs[i];
		ocil_layer_cache_key_str(h, p->fn);
		ocil_layer_cache_key_str(h, p->sha256);
		ocil_layer_cache_key_str(h, lp->channel);
		ocil_layer_cache_key_str(h, lp->subdir);
		ocil_layer_cache_key_str(h, lp->public_url);
		for (size_t j = 0; j < p->n_paths; j++)
			if (p->paths[j].clobbered)
				ocil_layer_cache_key_str(h, p->paths[j].target);
	}
	bool readable = true;
	for (size_t i = 0; readable && i < env->n_wheels; i++) {
		if (!part->wheels[i])
			continue;
		ocil_wheel *w = env->wheels[i];
		char md5[33], sha256[65];
		uint64_t size = 0;
		ocil_error *no = NULL;
		readable = ocil_pkgfile_reopen(&w->src, &no) == 0 &&
			   ocil_pkgfile_hash(&w->src, md5, sha256, &size, &no) == 0;
		ocil_error_free(no);
		ocil_pkgfile_close(&w->src);
		ocil_layer_cache_key_str(h, w->fn);
		ocil_layer_cache_key_str(h, sha256);
		for (size_t j = 0; readable && j < w->n_files; j++)
			ocil_layer_cache_key_int(h, w->files[j].clobbered);
	}
	ocil_layer_cache_key_int(h, part->history);
	if (part->history) {
		cleanup_free char *hist = ocil_condaenv_history(env, b->epoch);
		ocil_layer_cache_key_str(h, hist);
	}
	ocil_layer_cache_key_finish(h, key);
	if (!readable)
		key[0] = '\0';
}

/* What layer k of the plan holds, into b->lock_part. */
static void lock_part_of(build *b, const ocil_split_plan *plan, size_t k, bool *in_pkgs,
			 bool *in_wheels)
{
	const ocil_condaenv *env = &b->lockenv;
	for (size_t i = 0; i < env->n; i++)
		in_pkgs[i] = plan->n == 1 || plan->of[i] == k;
	for (size_t i = 0; i < env->n_wheels; i++)
		in_wheels[i] = plan->n == 1 || plan->of[env->n + i] == k;
	b->lock_part = (ocil_condaenv_part){
	    .pkgs = in_pkgs, .wheels = in_wheels, .history = plan->n == 1 || k == plan->unowned};
}

static uint64_t pkg_size(const ocil_condapkg *p)
{
	uint64_t n = 0;
	for (size_t j = 0; j < p->n_paths; j++)
		if (p->paths[j].size > 0)
			n += (uint64_t)p->paths[j].size;
	return n > 0 ? n : p->size;
}

/* The lock's packages and wheels, planned within budget. */
static void lock_plan(build *b, size_t budget, ocil_split_plan *plan)
{
	const ocil_condaenv *env = &b->lockenv;
	size_t np = env->n + env->n_wheels;
	cleanup_free ocil_split_pkg *pkgs = ocil_xcalloc(np + 1, sizeof(*pkgs));
	cleanup_strv ocil_strv labels = {0};
	for (size_t i = 0; i < env->n; i++) {
		const ocil_condapkg *p = env->pkgs[i];
		ocil_strv_push(&labels, ocil_xasprintf("%s-%s-%s", p->name, p->version, p->build));
		pkgs[i] =
		    (ocil_split_pkg){.name = p->name, .label = labels.v[i], .size = pkg_size(p)};
	}
	for (size_t i = 0; i < env->n_wheels; i++) {
		const ocil_wheel *w = env->wheels[i];
		ocil_strv_push(&labels, ocil_xstrdup(w->fn));
		pkgs[env->n + i] = (ocil_split_pkg){.name = w->name,
						    .label = labels.v[env->n + i],
						    .size = (uint64_t)w->src.st.st_size};
	}
	ocil_split_assign(pkgs, np, budget, true, plan);
}

static int lock_pack(build *b, part_state *s, size_t k, const ocil_split_plan *plan,
		     ocil_error **err)
{
	build_say(b, "packing conda layer %zu/%zu (%s)", k + 1, plan->n, plan->what[k]);
	if (build_write_layer(b, k, produce_lock_part, err) < 0)
		return ocil_error_wrap(err, "conda lock %s", b->o.lock);
	json_t *w = json_array();
	for (size_t i = 0; i < b->part_rep.warnings.n; i++)
		json_array_append_new(w, json_string(b->part_rep.warnings.v[i]));
	ocil_strv_clear(&b->part_rep.warnings);
	part_made(b, s, k, json_pack("{s:o}", "warnings", w));
	return 0;
}

/* A lock's parts: from the cache by their keys (any machine's), from the
 * cache repository, or packed; their warnings in order. */
static int lock_parts(build *b, size_t budget, ocil_error **err)
{
	ocil_split_plan plan = {0};
	lock_plan(b, budget, &plan);
	size_t n = plan.n;
	b->n_conda = n;
	build_say(b, "conda lock %s: %zu packages in %zu layers", b->o.lock,
		  b->lockenv.n + b->lockenv.n_wheels, n);
	cleanup_free bool *in_pkgs = ocil_xcalloc(b->lockenv.n + 1, sizeof(bool));
	cleanup_free bool *in_wheels = ocil_xcalloc(b->lockenv.n_wheels + 1, sizeof(bool));
	part_state *st = ocil_xcalloc(n + 1, sizeof(*st));
	int r = 0;
	for (size_t k = 0; r == 0 && k < n; k++) {
		name_part(b, k, &plan);
		lock_part_of(b, &plan, k, in_pkgs, in_wheels);
		lock_part_key(b, st[k].key);
		r = part_local(b, &st[k], k, st[k].key, warnings_ok, err);
		if (r > 0)
			build_say(b, "conda layer %zu/%zu (%s) from the cache", k + 1, n,
				  plan.what[k]);
		r = r < 0 ? -1 : 0;
	}
	if (r == 0)
		r = parts_from_repo(b, st, n, warnings_ok, err);
	for (size_t k = 0; r == 0 && k < n; k++) {
		if (st[k].facts != NULL)
			continue;
		lock_part_of(b, &plan, k, in_pkgs, in_wheels);
		r = lock_pack(b, &st[k], k, &plan, err);
	}
	for (size_t k = 0; r == 0 && k < n; k++)
		facts_take(b, st[k].facts);
	if (r == 0)
		list_keep(b, budget, st, n);
	states_free(st, n);
	ocil_split_plan_clear(&plan);
	return r;
}

int build_conda_parts(build *b, ocil_error **err)
{
	size_t budget = ocil_split_budget(b->o.layers, b->n_base_layers);
	int r = list_take(b, budget, err);
	if (r != 0) {
		if (r > 0 && b->o.lock == NULL)
			build_warn_all(b, &b->conda_warnings); /* (a lock's: when read) */
		return r < 0 ? -1 : 0;
	}
	if (b->conda_list != NULL && list_drop(b, err) < 0)
		return -1;
	ocil_pyc_counts_clear(&b->pyc_sum);
	if (b->o.lock == NULL) {
		ocil_strv_clear(&b->conda_warnings);
		return prefix_parts(b, budget, err);
	}
	return lock_parts(b, budget, err);
}
