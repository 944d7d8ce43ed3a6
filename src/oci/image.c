#include "oci/image.h"

#include <string.h>

#include "base/json.h"
#include "base/util.h"

bool ocil_media_type_is_index(const char *mt)
{
	return mt != NULL &&
	       (strcmp(mt, OCIL_MT_OCI_INDEX) == 0 || strcmp(mt, OCIL_MT_DOCKER_LIST) == 0);
}

bool ocil_media_type_is_manifest(const char *mt)
{
	return mt != NULL &&
	       (strcmp(mt, OCIL_MT_OCI_MANIFEST) == 0 || strcmp(mt, OCIL_MT_DOCKER_MANIFEST) == 0);
}

ocil_layer_compression ocil_layer_media_compression(const char *mt)
{
	if (mt == NULL)
		return OCIL_LAYER_UNKNOWN;
	if (strcmp(mt, OCIL_MT_OCI_LAYER_GZIP) == 0 || strcmp(mt, OCIL_MT_DOCKER_LAYER_GZIP) == 0)
		return OCIL_LAYER_GZIP;
	if (strcmp(mt, OCIL_MT_OCI_LAYER) == 0 || strcmp(mt, OCIL_MT_DOCKER_LAYER) == 0)
		return OCIL_LAYER_TAR;
	if (strcmp(mt, OCIL_MT_OCI_LAYER_ZSTD) == 0)
		return OCIL_LAYER_ZSTD;
	return OCIL_LAYER_UNKNOWN;
}

const char *ocil_layer_media_type(bool docker, ocil_layer_compression c)
{
	switch (c) {
	case OCIL_LAYER_TAR:
		return docker ? OCIL_MT_DOCKER_LAYER : OCIL_MT_OCI_LAYER;
	case OCIL_LAYER_GZIP:
		return docker ? OCIL_MT_DOCKER_LAYER_GZIP : OCIL_MT_OCI_LAYER_GZIP;
	case OCIL_LAYER_ZSTD:
		return docker ? NULL : OCIL_MT_OCI_LAYER_ZSTD;
	case OCIL_LAYER_UNKNOWN:
		break;
	}
	return NULL;
}

int ocil_descriptor_parse(const json_t *j, const char *what, ocil_descriptor *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(j))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: descriptor is not an object", what);
	const char *mt = NULL, *digest = NULL;
	if (ocil_json_get_string(j, "mediaType", what, &mt, err) < 0 ||
	    ocil_json_get_string(j, "digest", what, &digest, err) < 0 ||
	    ocil_digest_check(digest, what, err) < 0)
		return -1;
	const json_t *size = json_object_get(j, "size");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: \"size\" missing or not a non-negative integer", what);
	out->media_type = ocil_xstrdup(mt);
	memcpy(out->digest, digest, OCIL_DIGEST_STR_SIZE);
	out->size = json_integer_value(size);
	return 0;
}

json_t *ocil_descriptor_to_json(const ocil_descriptor *d)
{
	return json_pack("{s:s, s:s, s:I}", "mediaType", d->media_type, "digest", d->digest, "size",
			 (json_int_t)d->size);
}

void ocil_descriptor_clear(ocil_descriptor *d)
{
	free(d->media_type);
	memset(d, 0, sizeof(*d));
}

void ocil_descriptor_copy(ocil_descriptor *dst, const ocil_descriptor *src)
{
	*dst = *src;
	dst->media_type = src->media_type ? ocil_xstrdup(src->media_type) : NULL;
}

const char *ocil_manifest_detect_type(const json_t *doc, const char *hint)
{
	const char *mt = ocil_json_opt_string(doc, "mediaType");
	if (mt != NULL)
		return mt;
	if (hint != NULL)
		return hint;
	/* An OCI manifest may omit mediaType; so may an OCI index. */
	if (json_is_array(json_object_get(doc, "manifests")))
		return OCIL_MT_OCI_INDEX;
	if (json_is_object(json_object_get(doc, "config")))
		return OCIL_MT_OCI_MANIFEST;
	return NULL;
}

int ocil_manifest_write(bool docker, const ocil_descriptor *config, const ocil_descriptor *layers,
			size_t n_layers, ocil_blobstore *bs, ocil_descriptor *out, ocil_error **err)
{
	const char *mt = docker ? OCIL_MT_DOCKER_MANIFEST : OCIL_MT_OCI_MANIFEST;
	ocil_descriptor cd = *config;
	cd.media_type = docker ? OCIL_MT_DOCKER_CONFIG : OCIL_MT_OCI_CONFIG;
	cleanup_json json_t *m = json_object();
	json_object_set_new(m, "schemaVersion", json_integer(2));
	json_object_set_new(m, "mediaType", json_string(mt));
	json_object_set_new(m, "config", ocil_descriptor_to_json(&cd));
	json_t *la = json_array();
	json_object_set_new(m, "layers", la);
	for (size_t i = 0; i < n_layers; i++) {
		ocil_descriptor d = layers[i];
		const char *lmt =
		    ocil_layer_media_type(docker, ocil_layer_media_compression(d.media_type));
		if (lmt == NULL)
			return ocil_error_set(err, OCIL_E_INPUT,
					      "layer %s: media type %s has no %s equivalent",
					      d.digest, d.media_type, docker ? "Docker" : "OCI");
		d.media_type = (char *)lmt;
		json_array_append_new(la, ocil_descriptor_to_json(&d));
	}
	cleanup_free char *raw = ocil_json_dump(m);
	memset(out, 0, sizeof(*out));
	if (ocil_blobstore_put(bs, raw, strlen(raw), out->digest, err) < 0)
		return ocil_error_wrap(err, "storing manifest");
	out->media_type = ocil_xstrdup(mt);
	out->size = (int64_t)strlen(raw);
	return 0;
}

int ocil_manifest_parse(const char *buf, size_t len, const char *what, const char *hint,
			ocil_manifest *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	cleanup_json json_t *doc = NULL;
	if (ocil_json_parse(buf, len, what, &doc, err) < 0)
		return -1;
	if (!json_is_object(doc))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: manifest is not a JSON object", what);
	const json_t *sv = json_object_get(doc, "schemaVersion");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return ocil_error_set(err, OCIL_E_INPUT, "%s: schemaVersion must be 2", what);
	const char *mt = ocil_manifest_detect_type(doc, hint);
	/* The document's own mediaType must be what its descriptor (or the
	 * registry's Content-Type) announced: a mismatch means the bytes are
	 * not the image they were asked for. Generic types say nothing. */
	const char *own = ocil_json_opt_string(doc, "mediaType");
	if (own != NULL && hint != NULL &&
	    (ocil_media_type_is_manifest(hint) || ocil_media_type_is_index(hint)) &&
	    strcmp(own, hint) != 0)
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: mediaType is %s, but it was announced as %s", what, own,
				      hint);
	if (!ocil_media_type_is_manifest(mt))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: not an image manifest (media type %s)", what,
				      mt ? mt : "unknown");
	out->media_type = ocil_xstrdup(mt);
	out->docker = strcmp(mt, OCIL_MT_DOCKER_MANIFEST) == 0;
	cleanup_free char *cwhat = ocil_xasprintf("%s: config", what);
	if (ocil_descriptor_parse(json_object_get(doc, "config"), cwhat, &out->config, err) < 0)
		goto fail;
	const json_t *layers = json_object_get(doc, "layers");
	if (!json_is_array(layers)) {
		ocil_error_set(err, OCIL_E_INPUT, "%s: \"layers\" missing or not an array", what);
		goto fail;
	}
	if (json_array_size(layers) > 1000) {
		ocil_error_set(err, OCIL_E_INPUT, "%s: too many layers (%zu)", what,
			       json_array_size(layers));
		goto fail;
	}
	out->layers = ocil_xcalloc(json_array_size(layers), sizeof(ocil_descriptor));
	for (size_t i = 0; i < json_array_size(layers); i++) {
		cleanup_free char *lwhat = ocil_xasprintf("%s: layer %zu", what, i);
		if (ocil_descriptor_parse(json_array_get(layers, i), lwhat, &out->layers[i], err) <
		    0)
			goto fail;
		out->n_layers++;
		if (ocil_layer_media_compression(out->layers[i].media_type) == OCIL_LAYER_UNKNOWN) {
			ocil_error_set(err, OCIL_E_INPUT, "%s: unsupported layer media type %s",
				       lwhat, out->layers[i].media_type);
			goto fail;
		}
	}
	return 0;
fail:
	ocil_manifest_clear(out);
	return -1;
}

void ocil_manifest_clear(ocil_manifest *m)
{
	free(m->media_type);
	ocil_descriptor_clear(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		ocil_descriptor_clear(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

int ocil_platform_parse(const char *s, ocil_platform *out, ocil_error **err)
{
	memset(out, 0, sizeof(*out));
	const char *a = strchr(s, '/');
	if (a == NULL || a == s || a[1] == '\0' || a[1] == '/')
		return ocil_error_set(err, OCIL_E_USAGE,
				      "invalid platform \"%s\" (want os/arch[/variant], e.g. "
				      "linux/amd64)",
				      s);
	const char *v = strchr(a + 1, '/');
	out->os = ocil_xstrndup(s, (size_t)(a - s));
	out->arch = v ? ocil_xstrndup(a + 1, (size_t)(v - a - 1)) : ocil_xstrdup(a + 1);
	out->variant = v && v[1] ? ocil_xstrdup(v + 1) : NULL;
	return 0;
}

void ocil_platform_clear(ocil_platform *p)
{
	free(p->os);
	free(p->arch);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

char *ocil_platform_format(const ocil_platform *p)
{
	return p->variant ? ocil_xasprintf("%s/%s/%s", p->os, p->arch, p->variant)
			  : ocil_xasprintf("%s/%s", p->os, p->arch);
}

static bool is_attestation(const json_t *m)
{
	const json_t *ann = json_object_get(m, "annotations");
	return ocil_json_opt_string(ann, "vnd.docker.reference.type") != NULL;
}

int ocil_index_select(const char *buf, size_t len, const char *what, const ocil_platform *want,
		      ocil_descriptor *out, ocil_error **err)
{
	cleanup_json json_t *doc = NULL;
	if (ocil_json_parse(buf, len, what, &doc, err) < 0)
		return -1;
	const char *own = ocil_json_opt_string(doc, "mediaType");
	if (own != NULL && !ocil_media_type_is_index(own))
		return ocil_error_set(err, OCIL_E_INPUT, "%s: media type %s is not an index", what,
				      own);
	const json_t *ms = json_object_get(doc, "manifests");
	if (!json_is_array(ms))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "%s: \"manifests\" missing or not an array", what);
	cleanup_free char *avail = ocil_xstrdup("");
	size_t idx;
	const json_t *m;
	json_array_foreach(ms, idx, m)
	{
		if (is_attestation(m))
			continue;
		const json_t *p = json_object_get(m, "platform");
		const char *os = ocil_json_opt_string(p, "os");
		const char *arch = ocil_json_opt_string(p, "architecture");
		const char *variant = ocil_json_opt_string(p, "variant");
		if (os == NULL || arch == NULL)
			continue;
		char *next = ocil_xasprintf("%s%s%s/%s%s%s", avail, avail[0] ? ", " : "", os, arch,
					    variant ? "/" : "", variant ? variant : "");
		free(avail);
		avail = next;
		if (strcmp(os, want->os) != 0 || strcmp(arch, want->arch) != 0)
			continue;
		if (want->variant != NULL &&
		    (variant == NULL || strcmp(variant, want->variant) != 0))
			continue;
		cleanup_free char *mwhat = ocil_xasprintf("%s: manifests[%zu]", what, idx);
		if (ocil_descriptor_parse(m, mwhat, out, err) < 0)
			return -1;
		/* an index inside an index is legal OCI, but no image we serve */
		if (!ocil_media_type_is_manifest(out->media_type)) {
			ocil_error_set(err, OCIL_E_INPUT,
				       "%s: media type %s is not an image manifest", mwhat,
				       out->media_type);
			ocil_descriptor_clear(out);
			return -1;
		}
		return 0;
	}
	cleanup_free char *w = ocil_platform_format(want);
	return ocil_error_set(err, OCIL_E_INPUT, "%s: no image for platform %s (available: %s)",
			      what, w, avail[0] ? avail : "none");
}
