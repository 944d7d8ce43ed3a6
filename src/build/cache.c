/* The layer cache in a build: layers taken from it, layers kept in it, and
 * the facts a cached conda layer keeps of what reading the environment
 * found (so a hit need not read it again). */
#include <string.h>

#include "base/json.h"
#include "build/internal.h"

int build_from_cache(build *b, const char *key, ocil_layer_cache_entry *ce, ocil_error **err)
{
	if (b->cache == NULL || b->o.no_cache)
		return 0;
	return ocil_layer_cache_get(b->cache, key, ce, b->o.cancel, err);
}

int build_use_cached(build *b, const ocil_layer_cache_entry *ce, size_t i, ocil_error **err)
{
	ocil_plan_layer *l = &b->layers[i];
	ocil_layer_result *res = &b->results[i];
	if (ocil_layer_cache_export(b->cache, ce, ocil_sink_blobs(b->sink), err) < 0)
		return -1;
	memcpy(l->digest, ce->digest, OCIL_DIGEST_STR_SIZE);
	memcpy(l->diff_id, ce->diff_id, OCIL_DIGEST_STR_SIZE);
	l->size = ce->size;
	memcpy(res->digest, ce->digest, OCIL_DIGEST_STR_SIZE);
	memcpy(res->diff_id, ce->diff_id, OCIL_DIGEST_STR_SIZE);
	res->size = (uint64_t)ce->size;
	res->uncompressed_size = (uint64_t)ce->uncompressed_size;
	res->cached = true;
	return 0;
}

void build_remember(build *b, const char *key, size_t i, json_t *facts)
{
	const ocil_plan_layer *l = &b->layers[i];
	ocil_layer_cache_entry ce = {.size = l->size,
				     .uncompressed_size = (int64_t)b->results[i].uncompressed_size,
				     .facts = facts};
	memcpy(ce.digest, l->digest, sizeof(ce.digest));
	memcpy(ce.diff_id, l->diff_id, sizeof(ce.diff_id));
	ocil_error *not_kept = NULL;
	if (b->cache != NULL &&
	    ocil_layer_cache_put(b->cache, key, &ce, ocil_sink_blobs(b->sink), &not_kept) < 0) {
		build_say(b, "not caching a layer: %s", not_kept->msg);
		ocil_error_free(not_kept);
	}
	ocil_layer_cache_entry_clear(&ce);
}

json_t *build_wheel_tags(const ocil_condaenv *env)
{
	json_t *a = json_array();
	for (size_t i = 0; i < env->n_wheels; i++) {
		const ocil_wheel *w = env->wheels[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s}", "fn", w->fn, "py",
						   w->py, "abi", w->abi, "plat", w->plat, "arch",
						   w->arch));
	}
	return a;
}

/* Back from the facts: false unless every wheel has all of them. */
static bool wheel_tags_valid(const json_t *a)
{
	static const char *const keys[] = {"fn", "py", "abi", "plat", "arch"};
	if (!json_is_array(a))
		return false;
	for (size_t i = 0; i < json_array_size(a); i++)
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!json_is_string(json_object_get(json_array_get(a, i), keys[k])))
				return false;
	return true;
}

int build_lock_packages(build *b, ocil_error **err)
{
	if (b->lock_sbom_ready)
		return 0;
	if (ocil_condaenv_sbom_packages(&b->lockenv, &b->lock_sbom, err) < 0) {
		ocil_sbom_packages_clear(&b->lock_sbom);
		return -1;
	}
	b->lock_sbom_ready = true;
	return 0;
}

/* A lock's facts back (what the rest of the build would have from loading
 * the lock): false when they are not all there. */
static bool lock_facts(build *b, const ocil_layer_cache_entry *ce)
{
	const json_t *tags = json_object_get(ce->facts, "wheels");
	ocil_error *bad = NULL;
	if (!wheel_tags_valid(tags) ||
	    ocil_sbom_packages_from_json(json_object_get(ce->facts, "sbom"), &b->lock_sbom, &bad) <
		0) {
		ocil_error_free(bad);
		ocil_sbom_packages_clear(&b->lock_sbom);
		return false;
	}
	b->wheel_tags = json_incref((json_t *)tags);
	b->lock_sbom_ready = true;
	return true;
}

int build_conda_cached(build *b, const char *key, ocil_layer_cache_entry *ce, ocil_error **err)
{
	int r = build_from_cache(b, key, ce, err);
	if (r <= 0)
		return r;
	const json_t *warnings = json_object_get(ce->facts, "warnings");
	if (!ocil_conda_info_from_json(json_object_get(ce->facts, "conda"), &b->conda) ||
	    !json_is_array(warnings) || (b->o.lock != NULL && !lock_facts(b, ce))) {
		ocil_conda_info_clear(&b->conda);
		ocil_layer_cache_entry_clear(ce);
		return 0;
	}
	size_t i;
	json_t *w;
	json_array_foreach(warnings, i, w) if (json_is_string(w))
	    ocil_strv_push(&b->conda_warnings, ocil_xstrdup(json_string_value(w)));
	const char *note = ocil_json_opt_string(ce->facts, "bytecode");
	b->bytecode_note = note ? ocil_xstrdup(note) : NULL;
	return 1;
}

json_t *build_conda_facts(build *b)
{
	json_t *warnings = json_array();
	for (size_t i = 0; i < b->conda_warnings.n; i++)
		json_array_append_new(warnings, json_string(b->conda_warnings.v[i]));
	json_t *facts = json_pack("{s:o, s:o}", "conda", ocil_conda_info_to_json(&b->conda),
				  "warnings", warnings);
	if (facts != NULL && b->bytecode_note != NULL)
		json_object_set_new(facts, "bytecode", json_string(b->bytecode_note));
	if (facts == NULL)
		build_say(b, "not caching the conda layer: what it holds cannot be recorded");
	if (facts == NULL || b->o.lock == NULL)
		return facts;
	ocil_error *no_sbom = NULL;
	if (build_lock_packages(b, &no_sbom) < 0) {
		build_say(b, "not caching the conda layer: %s", no_sbom->msg);
		ocil_error_free(no_sbom);
		json_decref(facts);
		return NULL;
	}
	json_object_set(facts, "wheels", b->wheel_tags);
	json_object_set_new(facts, "sbom", ocil_sbom_packages_to_json(&b->lock_sbom));
	return facts;
}

int build_list_cached(build *b, const char *key)
{
	json_t *j = NULL;
	if (key[0] == '\0' || b->cache == NULL || b->o.no_cache ||
	    ocil_layer_cache_get_json(b->cache, key, &j) == 0)
		return 0;
	ocil_layer_cache_entry ce = {.facts = j};
	const json_t *warnings = json_object_get(j, "warnings");
	if (!ocil_conda_info_from_json(json_object_get(j, "conda"), &b->conda) ||
	    !json_is_array(warnings) || (b->o.lock != NULL && !lock_facts(b, &ce))) {
		ocil_conda_info_clear(&b->conda);
		json_decref(j);
		ocil_layer_cache_forget_json(b->cache, key);
		return 0;
	}
	size_t i;
	json_t *w;
	json_array_foreach(warnings, i, w) if (json_is_string(w))
	    ocil_strv_push(&b->conda_warnings, ocil_xstrdup(json_string_value(w)));
	const char *note = ocil_json_opt_string(j, "bytecode");
	b->bytecode_note = note ? ocil_xstrdup(note) : NULL;
	b->conda_list = j;
	return 1;
}
