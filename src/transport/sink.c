#include "transport/sink.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "base/json.h"
#include "registry/registry.h"
#include "transport/sink_archive.h"
#include "transport/sink_layout.h"
#include "transport/source.h"
#include "transport/uploads.h"

struct ocil_sink {
	const ocil_ref *ref;
	ocil_sink_opts o;
	ocil_layout_sink *layout; /* oci: */
	char *staging;		  /* docker-archive:, docker:// */
	int staging_fd;		  /* its lock (ocil_staging_create), or -1 */
	ocil_blobstore *bs;	  /* docker-archive:, docker:// */
	ocil_registry *reg;	  /* docker:// */
	ocil_uploads *up;	  /* docker://: its blobs on their way */
};

int ocil_format_parse(const char *s, ocil_format *out, ocil_error **err)
{
	if (strcmp(s, "oci") == 0)
		*out = OCIL_FORMAT_OCI;
	else if (strcmp(s, "docker") == 0)
		*out = OCIL_FORMAT_DOCKER;
	else
		return ocil_error_set(err, OCIL_E_USAGE, "--format \"%s\": want oci or docker", s);
	return 0;
}

/* A staging blob store in dir, removed unless the sink commits. */
static int open_staging(ocil_sink *s, const char *dir, const char *name, ocil_error **err)
{
	if (ocil_mkdir_p(dir, 0755, err) < 0)
		return -1;
	s->staging_fd = ocil_staging_create(dir, name, &s->staging, err);
	if (s->staging_fd < 0)
		return -1;
	return ocil_blobstore_open(s->staging, &s->bs, err);
}

static int open_archive(ocil_sink *s, ocil_error **err)
{
	const char *path = s->ref->path;
	if (s->ref->tag != NULL) {
		/* A malformed REPO:TAG fails before anything is built. */
		cleanup_free char *repo = NULL, *tag = NULL;
		if (ocil_archive_parse_tag(s->ref->tag, &repo, &tag, err) < 0)
			return ocil_error_wrap(err, "%s", s->ref->input);
	}
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT, "output %s is a directory", path);
	cleanup_free char *c1 = ocil_xstrdup(path), *c2 = ocil_xstrdup(path);
	const char *parent = dirname(c1);
	if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
		return ocil_error_set(err, OCIL_E_INPUT,
				      "output %s: parent directory %s does not exist", path,
				      parent);
	return open_staging(s, parent, basename(c2), err);
}

/* repo, when blobs can be mounted from it into the output: another
 * repository of the same registry. */
static const char *mountable(const ocil_sink *s, const char *registry, const char *repo)
{
	return registry != NULL && repo != NULL && strcmp(registry, s->ref->registry) == 0 &&
		       strcmp(repo, s->ref->repository) != 0
		   ? repo
		   : NULL;
}

/* The staging store, and the uploads that start from it while the image is
 * made (new layers as they are compressed: uploads.h). No network yet. */
static int open_registry(ocil_sink *s, ocil_error **err)
{
	cleanup_free char *dflt = s->o.cache_dir ? NULL : ocil_source_default_cache_dir();
	cleanup_free char *dir =
	    ocil_xasprintf("%s/staging", s->o.cache_dir ? s->o.cache_dir : dflt);
	if (open_staging(s, dir, "push", err) < 0)
		return -1;
	const ocil_ref *ref = s->ref;
	ocil_registry_opts ro = *s->o.registry;
	ro.push = true;
	ro.cancel = s->o.cancel;
	if (ocil_registry_open(ref->registry, ref->repository, &ro, &s->reg, err) < 0)
		return -1;
	ocil_uploads_opts uo = {
	    .registry = s->reg,
	    .jobs = ro.jobs,
	    .cancel = s->o.cancel,
	    .mount_from = {mountable(s, s->o.mount_registry, s->o.mount_repo),
			   mountable(s, s->o.cache_registry, s->o.cache_repo)},
	};
	if (ocil_uploads_new(&uo, &s->up, err) < 0)
		return -1;
	ocil_blob_tap tap;
	ocil_uploads_tap(s->up, &tap);
	ocil_blobstore_set_tap(s->bs, &tap);
	return 0;
}

int ocil_sink_open(const ocil_ref *ref, const ocil_sink_opts *o, ocil_sink **out, ocil_error **err)
{
	ocil_sink *s = ocil_xcalloc(1, sizeof(*s));
	s->staging_fd = -1;
	s->ref = ref;
	s->o = *o;
	int r = 0;
	switch (ref->transport) {
	case OCIL_REF_OCI:
		r = ocil_layout_sink_open(ref->path, &s->layout, err);
		break;
	case OCIL_REF_DOCKER_ARCHIVE:
		r = open_archive(s, err);
		break;
	case OCIL_REF_DOCKER:
		r = open_registry(s, err);
		break;
	}
	if (r < 0) {
		ocil_sink_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

ocil_blobstore *ocil_sink_blobs(ocil_sink *s)
{
	return s->layout ? ocil_layout_sink_blobs(s->layout) : s->bs;
}

int ocil_sink_family(const ocil_sink *s, ocil_format f, bool base_docker, bool *docker,
		     ocil_error **err)
{
	if (s->ref->transport == OCIL_REF_OCI) {
		if (f == OCIL_FORMAT_DOCKER)
			return ocil_error_set(err, OCIL_E_USAGE,
					      "--format docker: an OCI layout holds OCI manifests "
					      "(use docker:// or docker-archive: for Docker)");
		*docker = false;
		return 0;
	}
	*docker = f == OCIL_FORMAT_DEFAULT ? base_docker : f == OCIL_FORMAT_DOCKER;
	return 0;
}

/* "fn:v1" for docker-archive:FILE:fn:v1; none when no reference was given. */
static int archive_commit(ocil_sink *s, const ocil_sink_image *img, ocil_error **err)
{
	const char *tags[1] = {s->ref->tag};
	ocil_archive_spec spec = {
	    .blobs = s->bs,
	    .config = img->config,
	    .layers = img->layers,
	    .diff_ids = img->diff_ids,
	    .n_layers = img->n_layers,
	    .repo_tags = tags,
	    .n_repo_tags = s->ref->tag ? 1 : 0,
	    .mtime = s->o.mtime,
	    .cancel = s->o.cancel,
	};
	return ocil_sink_archive_write(s->ref->path, &spec, err);
}

/* The layers found in the cache repository (issue 17) and never
 * downloaded, which the staging store lacks: those the output's registry
 * has, or could mount (from the cache repository when it is on the same
 * registry), count as uploaded; the others are downloaded from the cache
 * repository (and verified) to be uploaded. */
static int from_cache_repo(ocil_sink *s, const ocil_sink_image *img, ocil_error **err)
{
	const ocil_sink_opts *o = &s->o;
	if (o->cache_repo == NULL || o->cache_registry == NULL)
		return 0;
	cleanup_free ocil_descriptor *lack = ocil_xcalloc(img->n_layers + 1, sizeof(*lack));
	size_t n = 0;
	for (size_t i = 0; i < img->n_layers; i++)
		if (!ocil_blobstore_has(s->bs, img->layers[i].digest))
			lack[n++] = img->layers[i];
	if (n == 0)
		return 0;
	cleanup_free bool *have = ocil_xcalloc(n, sizeof(*have));
	if (ocil_uploads_probe(s->up, lack, n, have, err) < 0)
		return -1;
	ocil_registry *cr = NULL;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (have[i])
			continue;
		if (cr == NULL) {
			ocil_registry_opts ro = *o->registry;
			ro.push = false;
			ro.cancel = o->cancel;
			rc = ocil_registry_open(o->cache_registry, o->cache_repo, &ro, &cr, err);
		}
		if (rc == 0)
			rc = ocil_registry_fetch_blob(cr, &lack[i], s->bs, err);
	}
	ocil_registry_free(cr);
	return rc;
}

/* Blobs first (skipping what the registry has, mounting what the base's
 * or the cache repository has, downloading from the cache repository what
 * the staging lacks; those under way since the image was made waited
 * for), then the manifest: a failure before the manifest PUT publishes nothing. */
static int registry_commit(ocil_sink *s, const ocil_sink_image *img, char **published,
			   ocil_error **err)
{
	const ocil_ref *ref = s->ref;
	int rc = from_cache_repo(s, img, err);
	cleanup_free const ocil_descriptor **blobs =
	    ocil_xcalloc(img->n_layers + 1, sizeof(*blobs));
	for (size_t i = 0; i < img->n_layers; i++)
		blobs[i] = &img->layers[i];
	blobs[img->n_layers] = img->config;
	if (rc == 0)
		rc = ocil_uploads_finish(s->up, blobs, img->n_layers + 1, s->bs, err);
	cleanup_free char *raw = NULL;
	size_t len = 0;
	if (rc == 0) {
		cleanup_free char *path = ocil_blobstore_path(s->bs, img->manifest->digest);
		rc = ocil_read_file(path, OCIL_JSON_MAX, &raw, &len, err);
	}
	char digest[OCIL_DIGEST_STR_SIZE];
	const char *reference = ref->tag ? ref->tag : img->manifest->digest;
	if (rc == 0)
		rc = ocil_registry_put_manifest(s->reg, reference, raw, len,
						img->manifest->media_type, digest, err);
	if (rc < 0)
		return ocil_error_wrap(err, "pushing to %s/%s", ref->registry, ref->repository);
	if (strcmp(digest, img->manifest->digest) != 0)
		return ocil_error_set(err, OCIL_E_REGISTRY, "pushed manifest is %s, expected %s",
				      digest, img->manifest->digest);
	*published = ocil_xasprintf("%s/%s@%s", ref->registry, ref->repository, digest);
	return 0;
}

void ocil_sink_upload(ocil_sink *s, const ocil_descriptor *ds, size_t n)
{
	for (size_t i = 0; s->up != NULL && i < n; i++) {
		cleanup_free char *path = ocil_blobstore_path(s->bs, ds[i].digest);
		ocil_uploads_add(s->up, &ds[i], path);
	}
}

int ocil_sink_probe(ocil_sink *s, const ocil_descriptor *ds, size_t n, bool *have, ocil_error **err)
{
	for (size_t i = 0; i < n; i++)
		have[i] = false;
	if (s->up == NULL || n == 0)
		return 0;
	if (ocil_uploads_probe(s->up, ds, n, have, err) < 0)
		return ocil_error_wrap(err, "pushing to %s/%s", s->ref->registry,
				       s->ref->repository);
	return 0;
}

int ocil_sink_commit(ocil_sink *s, const ocil_sink_image *img, char **published, ocil_error **err)
{
	if (ocil_cancel_check(s->o.cancel, err) < 0)
		return -1;
	switch (s->ref->transport) {
	case OCIL_REF_OCI:
		if (ocil_layout_sink_commit(s->layout, s->ref->tag ? s->ref->tag : "latest",
					    img->manifest, err) < 0)
			return -1;
		break;
	case OCIL_REF_DOCKER_ARCHIVE:
		if (archive_commit(s, img, err) < 0)
			return -1;
		break;
	case OCIL_REF_DOCKER:
		return registry_commit(s, img, published, err);
	}
	*published = ocil_xstrdup(img->manifest->digest);
	return 0;
}

void ocil_sink_free(ocil_sink *s)
{
	if (s == NULL)
		return;
	/* the uploads read the staging store's files */
	ocil_uploads_free(s->up);
	ocil_registry_free(s->reg);
	ocil_layout_sink_free(s->layout);
	ocil_blobstore_free(s->bs);
	if (s->staging != NULL) {
		ocil_error *e = NULL;
		ocil_remove_tree(s->staging, &e);
		ocil_error_free(e);
	}
	if (s->staging_fd >= 0)
		close(s->staging_fd);
	free(s->staging);
	free(s);
}
