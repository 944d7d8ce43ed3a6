#include "oci/plan.h"

#include <string.h>
#include <time.h>

#include "base/json.h"
#include "base/util.h"

char *ocil_plan_timestamp(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	char buf[64];
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return ocil_xstrdup(buf);
}

static void set_env(json_t *env, const char *kv)
{
	size_t klen = strcspn(kv, "=");
	size_t i;
	json_t *v;
	json_array_foreach(env, i, v)
	{
		const char *s = json_string_value(v);
		if (s != NULL && strncmp(s, kv, klen) == 0 && s[klen] == '=') {
			json_array_set_new(env, i, json_string(kv));
			return;
		}
	}
	json_array_append_new(env, json_string(kv));
}

static json_t *object_child(json_t *parent, const char *key)
{
	json_t *o = json_object_get(parent, key);
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(parent, key, o);
	}
	return o;
}

static json_t *array_child(json_t *parent, const char *key)
{
	json_t *a = json_object_get(parent, key);
	if (!json_is_array(a)) {
		a = json_array();
		json_object_set_new(parent, key, a);
	}
	return a;
}

static json_t *edit_config(const ocil_plan *p)
{
	json_t *cfg = json_deep_copy(p->base_config);
	cleanup_free char *ts = ocil_plan_timestamp(p->created);
	json_object_set_new(cfg, "created", json_string(ts));
	json_t *c = object_child(cfg, "config");
	json_t *env = array_child(c, "Env");
	for (size_t i = 0; i < p->n_env; i++)
		set_env(env, p->env[i]);
	if (p->entrypoint != NULL)
		json_object_set_new(c, "Entrypoint", json_deep_copy(p->entrypoint));
	json_object_set_new(c, "Cmd", json_pack("[s]", p->handler));

	json_t *diff_ids = array_child(object_child(cfg, "rootfs"), "diff_ids");
	json_object_set_new(json_object_get(cfg, "rootfs"), "type", json_string("layers"));
	for (size_t i = 0; i < p->n_layers; i++)
		json_array_append_new(diff_ids, json_string(p->layers[i].diff_id));
	/* Tools check that history matches the non-empty layers; only extend a
	 * history the base has. */
	json_t *history = json_object_get(cfg, "history");
	if (json_is_array(history))
		for (size_t i = 0; i < p->n_layers; i++)
			json_array_append_new(
			    history, json_pack("{s:s, s:s, s:s}", "created", ts, "created_by",
					       p->layers[i].created_by, "comment", "ocilambda"));
	return cfg;
}

int ocil_plan_write(const ocil_plan *p, ocil_blobstore *bs, ocil_descriptor *manifest,
		    json_t **config_out, ocil_error **err)
{
	cleanup_json json_t *cfg = edit_config(p);
	cleanup_free char *cfg_raw = ocil_json_dump(cfg);
	ocil_descriptor cd = {
	    .media_type = p->docker ? OCIL_MT_DOCKER_CONFIG : OCIL_MT_OCI_CONFIG,
	    .size = (int64_t)strlen(cfg_raw),
	};
	if (ocil_blobstore_put(bs, cfg_raw, strlen(cfg_raw), cd.digest, err) < 0)
		return ocil_error_wrap(err, "storing config");

	size_t n = p->n_base_layers + p->n_layers;
	cleanup_free ocil_descriptor *layers = ocil_xcalloc(n ? n : 1, sizeof(*layers));
	for (size_t i = 0; i < p->n_base_layers; i++)
		layers[i] = p->base_layers[i];
	for (size_t i = 0; i < p->n_layers; i++) {
		ocil_descriptor *d = &layers[p->n_base_layers + i];
		/* translated to the family */
		d->media_type = p->layers[i].zstd ? OCIL_MT_OCI_LAYER_ZSTD : OCIL_MT_OCI_LAYER_GZIP;
		d->size = p->layers[i].size;
		memcpy(d->digest, p->layers[i].digest, OCIL_DIGEST_STR_SIZE);
	}
	if (ocil_manifest_write(p->docker, &cd, layers, n, bs, manifest, err) < 0)
		return -1;
	if (config_out != NULL)
		*config_out = steal_pointer(&cfg);
	return 0;
}
