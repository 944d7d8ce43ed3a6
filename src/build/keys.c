/* The layer cache's keys: everything that changes a layer's bytes, so that
 * a hit gives the very layer packing would make (layer_cache.h). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/walk.h"
#include "build/internal.h"
#include "layers/bytecode.h"
#include "layers/code.h"
#include "layers/condalock.h"

void build_key_packing(ocil_hasher *h, const build *b)
{
	ocil_layer_cache_key_int(h, b->o.zstd);
	ocil_layer_cache_key_int(h, b->o.level ? b->o.level : 6);
	ocil_layer_cache_key_int(h, b->epoch);
}

/* The conda layer's cache key: every option that changes its bytes, then
 * the metadata of every file of the prefix (ocil_walk_fingerprint). */
static int prefix_key(const build *b, char key[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	cleanup_free char *real = realpath(o->prefix, NULL);
	if (real == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda prefix %s", o->prefix);
	ocil_hasher *h = ocil_layer_cache_key_begin("conda-layer/2");
	ocil_layer_cache_key_str(h, real);
	ocil_layer_cache_key_str(h, o->prefix_dest);
	ocil_layer_cache_key_str(h, o->source_prefix);
	ocil_layer_cache_key_int(h, (int64_t)o->n_excludes);
	for (size_t i = 0; i < o->n_excludes; i++)
		ocil_layer_cache_key_str(h, o->excludes[i]);
	ocil_layer_cache_key_int(h, o->strict);
	build_key_packing(h, b);
	if (build_split(b)) /* (one layer: the key it always had) */
		ocil_layer_cache_key_int(h, (int64_t)o->layers + 1000);
	int r = ocil_walk_fingerprint(real, h, o->cancel, err);
	ocil_layer_cache_key_finish(h, key);
	return r;
}

/* A directory the lock's files are read from: its real path and the
 * metadata of everything in it; a symlinked entry is opened through the
 * link, so what it points at counts too. */
static int key_dir(ocil_hasher *h, const char *what, const char *dir, const ocil_cancel *cancel,
		   ocil_error **err)
{
	cleanup_free char *real = realpath(dir, NULL);
	if (real == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s %s", what, dir);
	ocil_layer_cache_key_str(h, real);
	if (ocil_walk_fingerprint(real, h, cancel, err) < 0)
		return -1;
	DIR *d = opendir(real);
	if (d == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "%s %s", what, dir);
	cleanup_strv ocil_strv links = {0};
	for (struct dirent *de; (de = readdir(d)) != NULL;)
		if (de->d_type == DT_LNK || de->d_type == DT_UNKNOWN)
			ocil_strv_push(&links, ocil_xasprintf("%s/%s", real, de->d_name));
	closedir(d);
	ocil_strv_sort(&links);
	for (size_t i = 0; i < links.n; i++) {
		struct stat st;
		if (lstat(links.v[i], &st) < 0 || !S_ISLNK(st.st_mode))
			continue;
		ocil_layer_cache_key_str(h, links.v[i]);
		if (stat(links.v[i], &st) < 0) {
			ocil_layer_cache_key_int(h, -1); /* dangling: loading says so */
			continue;
		}
		ocil_walk_fold_stat(h, &st);
	}
	return 0;
}

/* The lock's conda layer: the lock (its path, which the history names,
 * and its bytes), the metadata of the package and wheel directories, and
 * every option that changes the layer's bytes. */
static int lock_key(const build *b, const char *subdir, char key[OCIL_DIGEST_STR_SIZE],
		    ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	cleanup_free char *real = realpath(o->lock, NULL);
	if (real == NULL)
		return ocil_error_set_errno(err, OCIL_E_INPUT, errno, "conda lock %s", o->lock);
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (ocil_read_file(real, OCIL_CONDALOCK_MAX_SIZE, &text, &len, err) < 0)
		return -1;
	char sum[OCIL_DIGEST_STR_SIZE];
	ocil_digest_buf(text, len, sum);
	ocil_hasher *h = ocil_layer_cache_key_begin("conda-lock-layer/2");
	ocil_layer_cache_key_str(h, real);
	ocil_layer_cache_key_str(h, sum);
	int r = 0;
	if (o->pkgs_dir == NULL)
		ocil_layer_cache_key_str(h, NULL);
	else
		r = key_dir(h, "packages directory", o->pkgs_dir, o->cancel, err);
	if (r == 0 && o->wheels_dir == NULL)
		ocil_layer_cache_key_str(h, NULL);
	else if (r == 0)
		r = key_dir(h, "wheels directory", o->wheels_dir, o->cancel, err);
	ocil_layer_cache_key_str(h, subdir);
	ocil_layer_cache_key_str(h, o->prefix_dest);
	ocil_layer_cache_key_int(h, o->strict);
	build_key_packing(h, b);
	if (build_split(b)) /* (one layer: the key it always had) */
		ocil_layer_cache_key_int(h, (int64_t)o->layers + 1000);
	ocil_layer_cache_key_finish(h, key);
	return r;
}

int build_conda_key(build *b, const char *subdir, char key[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	key[0] = '\0';
	if (b->cache == NULL)
		return 0;
	ocil_error *no_key = NULL;
	int r = b->o.lock != NULL ? lock_key(b, subdir, key, &no_key) : prefix_key(b, key, &no_key);
	if (r == 0)
		return 0;
	key[0] = '\0';
	if (no_key->code == OCIL_E_CANCELLED) {
		*err = no_key;
		return -1;
	}
	build_say(b, "not caching the conda layer: %s", no_key->msg);
	ocil_error_free(no_key);
	return 0;
}

void build_runtime_key(const build *b, char key[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher *h = ocil_layer_cache_key_begin("runtime-layer/1");
	ocil_layer_cache_key_int(h, (int64_t)b->n_base_layers);
	for (size_t i = 0; i < b->n_base_layers; i++)
		ocil_layer_cache_key_str(h, b->base_layers[i].digest);
	ocil_layer_cache_key_str(h, b->minor);
	ocil_layer_cache_key_str(h, b->o.prefix_dest);
	build_key_packing(h, b);
	ocil_layer_cache_key_finish(h, key);
}

void build_bytecode_key(const build *b, char key[OCIL_DIGEST_STR_SIZE])
{
	ocil_hasher *h = ocil_layer_cache_key_begin("bytecode-layer/1");
	ocil_layer_cache_key_str(h, ocil_bytecode_driver());
	if (b->n_conda != 1) /* (one conda layer: the key it always had) */
		ocil_layer_cache_key_int(h, (int64_t)b->n_conda);
	for (size_t i = 0; i < b->n_conda; i++)
		ocil_layer_cache_key_str(h, b->layers[i].diff_id);
	ocil_layer_cache_key_int(h, (int64_t)b->n_base_layers);
	for (size_t i = 0; i < b->n_base_layers; i++)
		ocil_layer_cache_key_str(h, b->base_layers[i].digest);
	ocil_layer_cache_key_str(h, b->o.prefix_dest);
	ocil_layer_cache_key_str(h, b->conda.python_minor);
	build_key_packing(h, b);
	ocil_layer_cache_key_finish(h, key);
}

int build_code_key(build *b, char key[OCIL_DIGEST_STR_SIZE], ocil_error **err)
{
	const ocil_build_opts *o = &b->o;
	key[0] = '\0';
	if (b->repo == NULL || o->no_cache)
		return 0;
	ocil_hasher *h = ocil_layer_cache_key_begin("code-layer/1");
	ocil_layer_cache_key_str(h, o->code_dest);
	ocil_layer_cache_key_int(h, o->compile_code);
	if (o->compile_code) {
		/* what compiles it: the environment's python on the base */
		ocil_layer_cache_key_str(h, ocil_bytecode_driver());
		ocil_layer_cache_key_str(h, o->prefix_dest);
		ocil_layer_cache_key_str(h, b->conda.python_minor);
		for (size_t i = 0; i < b->n_base_layers; i++)
			ocil_layer_cache_key_str(h, b->base_layers[i].digest);
		for (size_t i = 0; i < b->n_conda; i++)
			ocil_layer_cache_key_str(h, b->layers[i].diff_id);
	}
	build_key_packing(h, b);
	ocil_error *no = NULL;
	int r = ocil_code_fold(o->code, h, o->cancel, &no);
	ocil_layer_cache_key_finish(h, key);
	if (r == 0)
		return 0;
	key[0] = '\0';
	if (no->code == OCIL_E_CANCELLED) {
		*err = no;
		return -1;
	}
	ocil_error_free(no); /* packing says what is wrong */
	return 0;
}
