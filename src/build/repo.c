/* --cache-repo in a build (issue 17, registry/cache_repo.h): layers looked
 * up there before they are made, and the layers made recorded there once
 * the image is published. Nothing here fails a build: a cache repository
 * that cannot be asked is given up on with a warning, a wrong entry means
 * a repack, a write that fails is a warning. */
#include <string.h>

#include "build/internal.h"

/* The blob store the cache repository's small blobs go through. */
static ocil_blobstore *scratch(build *b)
{
	return b->cache != NULL ? ocil_layer_cache_blobs(b->cache) : ocil_sink_blobs(b->sink);
}

int build_repo_open(build *b, ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	if (o->cache_repo == NULL || o->no_cache)
		return 0;
	b->repo_write = o->cache_repo_mode == NULL || strcmp(o->cache_repo_mode, "read") != 0;
	ocil_registry_opts ro = o->registry;
	ro.push = b->repo_write;
	ro.cancel = o->cancel;
	if (ocil_cache_repo_open(o->cache_repo, &ro, &b->repo, err) < 0)
		return -1;
	b->repo_mount = b->out_ref.transport == OCIL_REF_DOCKER &&
			strcmp(b->out_ref.registry, ocil_cache_repo_registry(b->repo)) == 0 &&
			strcmp(b->out_ref.repository, ocil_cache_repo_repository(b->repo)) != 0;
	return 0;
}

void build_repo_clear(build *b)
{
	ocil_cache_repo_free(b->repo);
	b->repo = NULL;
	for (size_t i = 0; i < b->n_notes; i++)
		json_decref(b->notes[i].facts);
	free(b->notes);
	b->notes = NULL;
	b->n_notes = 0;
	ocil_strv_clear(&b->absent);
	free(b->absent_size);
	b->absent_size = NULL;
}

/* The cache repository could not be asked: said once, not asked again. */
static void give_up(build *b, ocil_error *why)
{
	build_warn(b, "cache repository %s: %s; building without it", ocil_cache_repo_name(b->repo),
		   why->msg);
	ocil_error_free(why);
	ocil_cache_repo_free(b->repo);
	b->repo = NULL;
}

static void absent_add(build *b, const char *digest, int64_t size)
{
	b->absent_size = ocil_xrealloc(b->absent_size, (b->absent.n + 1) * sizeof(int64_t));
	b->absent_size[b->absent.n] = size;
	ocil_strv_push(&b->absent, ocil_xstrdup(digest));
}

/* What an entry found gives new layer i. */
static void take_entry(build *b, size_t i, const ocil_cache_repo_entry *e)
{
	ocil_plan_layer *l = &b->layers[i];
	ocil_layer_result *res = &b->results[i];
	memcpy(l->digest, e->layer.digest, OCIL_DIGEST_STR_SIZE);
	memcpy(l->diff_id, e->diff_id, OCIL_DIGEST_STR_SIZE);
	l->size = e->layer.size;
	memcpy(res->digest, e->layer.digest, OCIL_DIGEST_STR_SIZE);
	memcpy(res->diff_id, e->diff_id, OCIL_DIGEST_STR_SIZE);
	res->size = (uint64_t)e->layer.size;
	res->uncompressed_size = (uint64_t)e->uncompressed_size;
	res->cached = true;
	b->remote[i] = true;
}

int build_repo_find(build *b, build_repo_want *w, size_t n, ocil_error **err)
{
	for (size_t i = 0; i < n; i++) {
		w[i].hit = 0;
		w[i].facts = NULL;
	}
	if (b->repo == NULL || n == 0)
		return 0;
	ocil_cache_repo_find *f = ocil_xcalloc(n, sizeof(*f));
	for (size_t i = 0; i < n; i++)
		f[i] = (ocil_cache_repo_find){.key = w[i].key,
					      .download = w[i].here || !b->repo_mount};
	ocil_error *no = NULL;
	int r = ocil_cache_repo_find_all(b->repo, f, n, b->index_dir, ocil_sink_blobs(b->sink),
					 scratch(b), b->o.cancel, &no);
	size_t looked = n;
	if (r < 0 && no->code == OCIL_E_CANCELLED) {
		*err = no;
	} else if (r < 0) {
		give_up(b, no);
		r = 0;
		looked = 0; /* nothing found */
	}
	for (size_t i = 0; r == 0 && i < looked; i++) {
		if (f[i].why != NULL)
			build_say(b, "cache repository %s: %s: packing the layer",
				  ocil_cache_repo_name(b->repo), f[i].why);
		if (!f[i].found)
			continue;
		take_entry(b, w[i].i, &f[i].e);
		w[i].facts = steal_pointer(&f[i].e.facts);
		w[i].hit = f[i].download ? 1 : 2;
		if (!f[i].download)
			absent_add(b, f[i].e.layer.digest, f[i].e.layer.size);
		build_say(b, "layer %s from the cache repository%s", f[i].e.layer.digest,
			  f[i].download ? "" : " (mounted when pushed)");
	}
	for (size_t i = 0; i < n; i++)
		ocil_cache_repo_find_clear(&f[i]);
	free(f);
	return r;
}

void build_repo_unwant(build *b, build_repo_want *w)
{
	const char *digest = b->layers[w->i].digest;
	for (size_t i = b->absent.n; w->hit == 2 && i-- > 0;)
		if (strcmp(b->absent.v[i], digest) == 0) {
			free(b->absent.v[i]);
			memmove(&b->absent.v[i], &b->absent.v[i + 1],
				(b->absent.n - i) * sizeof(char *)); /* (with the NULL) */
			memmove(&b->absent_size[i], &b->absent_size[i + 1],
				(b->absent.n - i - 1) * sizeof(int64_t));
			b->absent.n--;
			break;
		}
	json_decref(w->facts);
	w->facts = NULL;
	w->hit = 0;
	b->remote[w->i] = false;
	memset(&b->results[w->i], 0, sizeof(b->results[w->i]));
}

int build_repo_lookup(build *b, const char *key, bool here, size_t i, json_t **facts,
		      ocil_error **err)
{
	build_repo_want w = {.key = key, .here = here, .i = i};
	*facts = NULL;
	if (key[0] == '\0')
		return 0;
	if (build_repo_find(b, &w, 1, err) < 0)
		return -1;
	*facts = w.facts;
	return w.hit;
}

void build_repo_note_layer(build *b, const char *key, size_t i, const json_t *facts)
{
	if (b->repo == NULL || !b->repo_write || key[0] == '\0')
		return;
	b->notes = ocil_xrealloc(b->notes, (b->n_notes + 1) * sizeof(*b->notes));
	build_repo_note *n = &b->notes[b->n_notes++];
	memset(n, 0, sizeof(*n));
	snprintf(n->key, sizeof(n->key), "%s", key);
	n->l = b->layers[i];
	n->l.created_by = NULL;
	n->uncompressed_size = (int64_t)b->results[i].uncompressed_size;
	/* a copy: the workers that record it share nothing with the build */
	n->facts = facts ? json_deep_copy(facts) : NULL;
}

void build_repo_record(build *b)
{
	if (b->repo == NULL || b->n_notes == 0)
		return;
	const char *mount = b->repo_mount ? b->out_ref.repository : NULL;
	cleanup_free ocil_cache_repo_put *puts = ocil_xcalloc(b->n_notes, sizeof(*puts));
	for (size_t i = 0; i < b->n_notes; i++) {
		build_repo_note *n = &b->notes[i];
		ocil_cache_repo_put *p = &puts[i];
		p->key = n->key;
		p->e.uncompressed_size = n->uncompressed_size;
		p->e.facts = n->facts;
		p->e.layer.media_type = (char *)ocil_layer_media_type(
		    false, n->l.zstd ? OCIL_LAYER_ZSTD : OCIL_LAYER_GZIP);
		memcpy(p->e.layer.digest, n->l.digest, OCIL_DIGEST_STR_SIZE);
		p->e.layer.size = n->l.size;
		memcpy(p->e.diff_id, n->l.diff_id, OCIL_DIGEST_STR_SIZE);
	}
	size_t failed =
	    ocil_cache_repo_record_all(b->repo, puts, b->n_notes, ocil_sink_blobs(b->sink),
				       scratch(b), mount, b->index_dir, b->o.cancel);
	const char *first = NULL;
	for (size_t i = 0; first == NULL && i < b->n_notes; i++)
		if (puts[i].err != NULL)
			first = puts[i].err->msg;
	if (failed > 0)
		build_warn(b, "cache repository %s: %zu of %zu new layers not recorded: %s",
			   ocil_cache_repo_name(b->repo), failed, b->n_notes, first ? first : "?");
	else
		build_say(b, "recorded %zu layers in the cache repository %s", b->n_notes,
			  ocil_cache_repo_name(b->repo));
	for (size_t i = 0; i < b->n_notes; i++)
		ocil_cache_repo_put_clear(&puts[i]);
}

int build_repo_bring(build *b, ocil_error **err)
{
	if (b->absent.n == 0)
		return 0;
	const ocil_build_opts *o = &b->o;
	/* (given up on since: the registry is asked all the same) */
	cleanup_free char *registry = NULL, *repository = NULL;
	if (ocil_cache_repo_parse(o->cache_repo, &registry, &repository, err) < 0)
		return -1;
	ocil_registry_opts ro = o->registry;
	ro.cancel = o->cancel;
	ocil_registry *r = NULL;
	if (ocil_registry_open(registry, repository, &ro, &r, err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < b->absent.n; i++) {
		ocil_descriptor d = {.size = b->absent_size[i]};
		snprintf(d.digest, sizeof(d.digest), "%s", b->absent.v[i]);
		rc = ocil_registry_fetch_blob(r, &d, ocil_sink_blobs(b->sink), err);
	}
	ocil_registry_free(r);
	if (rc < 0)
		return ocil_error_wrap(err, "cache repository %s/%s", registry, repository);
	ocil_strv_clear(&b->absent);
	return 0;
}
