/* A cache repository (see cache_repo.h). */
#include "registry/cache_repo.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fs.h"
#include "base/json.h"
#include "oci/layer_index.h"
#include "oci/layer_read.h"
#include "oci/pyc.h"
#include "oci/ref.h"
#include "oci/tarstream.h"

/* the empty config of OCI 1.1 artifacts */
#define EMPTY_JSON "{}"
#define EMPTY_DIGEST "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

struct ocil_cache_repo {
	char *registry, *repository, *name;
	ocil_registry_opts ro, wro; /* the main client's; the workers' (no callbacks) */
	ocil_registry *r;
};

void ocil_cache_repo_entry_clear(ocil_cache_repo_entry *e)
{
	ocil_descriptor_clear(&e->layer);
	json_decref(e->facts);
	memset(e, 0, sizeof(*e));
}

void ocil_cache_repo_find_clear(ocil_cache_repo_find *f)
{
	ocil_cache_repo_entry_clear(&f->e);
	free(f->why);
	f->why = NULL;
	f->found = false;
}

void ocil_cache_repo_put_clear(ocil_cache_repo_put *p)
{
	ocil_error_free(p->err);
	p->err = NULL;
}

int ocil_cache_repo_parse(const char *s, char **registry, char **repository, ocil_error **err)
{
	const char *p = ocil_str_has_prefix(s, "docker://") ? s + strlen("docker://") : s;
	size_t dl = ocil_ref_domain_len(p);
	const char *slash = strchr(p, '/'), *last = strrchr(p, '/');
	bool ok = dl > 0 && slash == p + dl && strchr(p, '@') == NULL && last != NULL &&
		  last[1] != '\0' && strchr(last, ':') == NULL;
	ocil_ref ref = {0};
	ocil_error *bad = NULL;
	if (ok && ocil_ref_parse(p, &ref, &bad) < 0)
		ok = false;
	if (!ok) {
		ocil_error_set(
		    err, OCIL_E_USAGE,
		    "--cache-repo \"%s\": want REGISTRY/REPOSITORY, without a tag or "
		    "digest (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ci-cache)%s%s",
		    s, bad ? ": " : "", bad ? bad->msg : "");
		ocil_error_free(bad);
		ocil_ref_clear(&ref);
		return -1;
	}
	*registry = ocil_xstrdup(ref.registry);
	*repository = ocil_xstrdup(ref.repository);
	ocil_ref_clear(&ref);
	return 0;
}

int ocil_cache_repo_open(const char *s, const ocil_registry_opts *ro, ocil_cache_repo **out,
			 ocil_error **err)
{
	ocil_cache_repo *c = ocil_xcalloc(1, sizeof(*c));
	if (ocil_cache_repo_parse(s, &c->registry, &c->repository, err) < 0) {
		ocil_cache_repo_free(c);
		return -1;
	}
	c->name = ocil_xasprintf("%s/%s", c->registry, c->repository);
	c->ro = *ro;
	c->wro = *ro;
	c->wro.notice = NULL;
	c->wro.progress = NULL;
	c->wro.data = NULL;
	if (ocil_registry_open(c->registry, c->repository, &c->ro, &c->r, err) < 0) {
		ocil_cache_repo_free(c);
		return ocil_error_wrap(err, "--cache-repo %s", s);
	}
	*out = c;
	return 0;
}

void ocil_cache_repo_free(ocil_cache_repo *c)
{
	if (c == NULL)
		return;
	ocil_registry_free(c->r);
	free(c->registry);
	free(c->repository);
	free(c->name);
	free(c);
}

const char *ocil_cache_repo_registry(const ocil_cache_repo *c)
{
	return c->registry;
}

const char *ocil_cache_repo_repository(const ocil_cache_repo *c)
{
	return c->repository;
}

const char *ocil_cache_repo_name(const ocil_cache_repo *c)
{
	return c->name;
}

void ocil_cache_repo_tag(const char *key, char tag[OCIL_DIGEST_STR_SIZE])
{
	snprintf(tag, OCIL_DIGEST_STR_SIZE, "sha256-%s", ocil_digest_hex(key));
}

/* ---- the format ---- */

/* A descriptor of the entry: the media type wanted (NULL: a layer's), a
 * size within max. */
static bool entry_desc(const json_t *j, const char *mt, int64_t max, ocil_descriptor *d)
{
	ocil_error *bad = NULL;
	if (ocil_descriptor_parse(j, "cache entry", d, &bad) < 0) {
		ocil_error_free(bad);
		return false;
	}
	bool ok = d->size <= max && d->media_type != NULL &&
		  (mt ? strcmp(d->media_type, mt) == 0
		      : ocil_layer_media_compression(d->media_type) != OCIL_LAYER_UNKNOWN);
	if (!ok)
		ocil_descriptor_clear(d);
	return ok;
}

bool ocil_cache_repo_parse_manifest(const char *key, const char *body, size_t len,
				    ocil_cache_repo_entry *e, ocil_descriptor *facts)
{
	memset(e, 0, sizeof(*e));
	memset(facts, 0, sizeof(*facts));
	cleanup_json json_t *j = NULL;
	ocil_error *bad = NULL;
	if (ocil_json_parse(body, len, "cache entry", &j, &bad) < 0) {
		ocil_error_free(bad);
		return false;
	}
	const json_t *layers = json_object_get(j, "layers");
	const char *mt = ocil_json_opt_string(j, "mediaType");
	const char *at = ocil_json_opt_string(j, "artifactType");
	const char *k =
	    ocil_json_opt_string(json_object_get(j, "annotations"), OCIL_CACHE_REPO_KEY_ANN);
	ocil_descriptor config = {0};
	bool ok =
	    json_is_object(j) && mt != NULL && strcmp(mt, OCIL_MT_OCI_MANIFEST) == 0 &&
	    at != NULL && strcmp(at, OCIL_CACHE_REPO_ARTIFACT) == 0 && k != NULL &&
	    strcmp(k, key) == 0 && json_is_array(layers) && json_array_size(layers) == 2 &&
	    entry_desc(json_object_get(j, "config"), OCIL_CACHE_REPO_EMPTY, 2, &config) &&
	    entry_desc(json_array_get(layers, 0), NULL, (int64_t)OCIL_TAR_MAX_BYTES, &e->layer) &&
	    entry_desc(json_array_get(layers, 1), OCIL_CACHE_REPO_FACTS, OCIL_CACHE_REPO_FACTS_MAX,
		       facts);
	ocil_descriptor_clear(&config);
	if (!ok) {
		ocil_descriptor_clear(&e->layer);
		ocil_descriptor_clear(facts);
	}
	return ok;
}

/* A base64 string of the facts, decoded (NULL when j is null and may be). */
static bool side(const json_t *j, bool may_be_null, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (json_is_null(j) && may_be_null)
		return true;
	const char *s = json_string_value(j);
	ocil_error *bad = NULL;
	if (s == NULL || ocil_base64_decode(s, "cache entry", out, len, &bad) < 0) {
		ocil_error_free(bad);
		return false;
	}
	return true;
}

bool ocil_cache_repo_parse_facts(const char *key, const char *buf, size_t len,
				 ocil_cache_repo_entry *e, char **index, size_t *index_len,
				 char **pyc, size_t *pyc_len)
{
	*index = *pyc = NULL;
	cleanup_json json_t *j = NULL;
	ocil_error *bad = NULL;
	if (ocil_json_parse_max(buf, len, (size_t)OCIL_CACHE_REPO_FACTS_MAX, "cache entry facts",
				&j, &bad) < 0) {
		ocil_error_free(bad);
		return false;
	}
	const char *k = ocil_json_opt_string(j, "key");
	const char *diff_id = ocil_json_opt_string(j, "diff_id");
	const json_t *raw = json_object_get(j, "uncompressed_size");
	const json_t *facts = json_object_get(j, "facts");
	if (k == NULL || strcmp(k, key) != 0 || diff_id == NULL || !ocil_digest_valid(diff_id) ||
	    !json_is_integer(raw) || json_integer_value(raw) < 0 ||
	    (facts != NULL && !json_is_object(facts) && !json_is_null(facts)) ||
	    !side(json_object_get(j, "index"), false, index, index_len) ||
	    !side(json_object_get(j, "pyc"), true, pyc, pyc_len)) {
		free(*index);
		*index = NULL;
		return false;
	}
	snprintf(e->diff_id, sizeof(e->diff_id), "%s", diff_id);
	e->uncompressed_size = (int64_t)json_integer_value(raw);
	e->facts = json_is_object(facts) ? json_incref((json_t *)facts) : NULL;
	return true;
}

/* ---- a lookup ---- */

/* A small blob of the repository, read whole (fetched through bs). */
static int read_blob(ocil_registry *r, const ocil_descriptor *d, ocil_blobstore *bs, char **buf,
		     size_t *len, ocil_error **err)
{
	if (ocil_registry_fetch_blob(r, d, bs, err) < 0)
		return -1;
	cleanup_free char *path = ocil_blobstore_path(bs, d->digest);
	return ocil_read_file(path, (size_t)d->size, buf, len, err);
}

static int write_side(const char *index_dir, const char *name, const char *buf, size_t len,
		      ocil_error **err)
{
	cleanup_free char *path = ocil_xasprintf("%s/%s", index_dir, name);
	if (ocil_mkdir_p(index_dir, 0755, err) < 0 ||
	    ocil_write_file_atomic(path, buf, len, err) < 0)
		return -1;
	return 0;
}

/* Not found, because of why (a wrong entry). */
static int wrong(ocil_cache_repo_find *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int wrong(ocil_cache_repo_find *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = NULL;
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	ocil_cache_repo_find_clear(f);
	f->why = why;
	return 0;
}

/* An error of a registry request: a wrong entry (what it names is not
 * there: 404) or the repository's trouble (-1). */
static int wrong_or_fail(ocil_cache_repo_find *f, ocil_error *e, ocil_error **err)
{
	if (e->code == OCIL_E_INPUT) {
		wrong(f, "%s", e->msg);
		ocil_error_free(e);
		return 0;
	}
	*err = e;
	return -1;
}

static int find_one(ocil_registry *r, const char *name, ocil_cache_repo_find *f,
		    const char *index_dir, ocil_blobstore *bs, ocil_blobstore *scratch,
		    const ocil_cancel *cancel, ocil_error **err)
{
	char tag[OCIL_DIGEST_STR_SIZE], digest[OCIL_DIGEST_STR_SIZE];
	ocil_cache_repo_tag(f->key, tag);
	cleanup_free char *body = NULL, *mt = NULL;
	size_t len = 0;
	bool found = false;
	if (ocil_registry_find_manifest(r, tag, &body, &len, &mt, digest, &found, err) < 0)
		return -1;
	if (!found)
		return 0;
	ocil_descriptor fd = {0};
	if (!ocil_cache_repo_parse_manifest(f->key, body, len, &f->e, &fd))
		return wrong(f, "%s: not an entry of this ocilambda's for that key", tag);
	cleanup_free char *fbuf = NULL, *index = NULL, *pyc = NULL;
	size_t flen = 0, ilen = 0, plen = 0;
	ocil_error *e = NULL;
	int rc = read_blob(r, &fd, scratch, &fbuf, &flen, &e);
	ocil_descriptor_clear(&fd);
	if (rc < 0)
		return wrong_or_fail(f, e, err);
	if (!ocil_cache_repo_parse_facts(f->key, fbuf, flen, &f->e, &index, &ilen, &pyc, &plen))
		return wrong(f, "%s: malformed facts", tag);
	int64_t size = -1;
	if (ocil_registry_blob_size(r, f->e.layer.digest, &size, &e) < 0)
		return wrong_or_fail(f, e, err);
	if (size != f->e.layer.size)
		return wrong(f, "%s: its layer %s is %s", tag, f->e.layer.digest,
			     size < 0 ? "gone" : "not the size the entry says");
	const char *hex = ocil_digest_hex(f->e.layer.digest);
	cleanup_free char *blob =
	    ocil_blobstore_path(f->download ? bs : scratch, f->e.layer.digest);
	if (f->download) {
		if (ocil_registry_fetch_blob(r, &f->e.layer, bs, &e) < 0)
			return e->code == OCIL_E_CANCELLED ? (*err = e, -1)
							   : wrong_or_fail(f, e, err);
		char got[OCIL_DIGEST_STR_SIZE];
		if (ocil_layer_diff_id(blob, ocil_layer_media_compression(f->e.layer.media_type),
				       cancel, got, &e) < 0) {
			if (e->code == OCIL_E_CANCELLED) {
				*err = e;
				return -1;
			}
			unlink(blob);
			return wrong_or_fail(f, e, err);
		}
		if (strcmp(got, f->e.diff_id) != 0) {
			unlink(blob);
			return wrong(f, "%s: its layer holds %s, not the diff_id %s it says", tag,
				     got, f->e.diff_id);
		}
	}
	cleanup_free char *pyc_name = ocil_xasprintf("%s.bytecode", hex);
	if (write_side(index_dir, hex, index, ilen, err) < 0 ||
	    (pyc != NULL && write_side(index_dir, pyc_name, pyc, plen, err) < 0))
		return -1;
	/* both must load as they are: a mounted layer is never read here */
	cleanup_layer_entries ocil_layer_entries *it = NULL;
	if (ocil_layer_entries_open(blob, "cached layer", index_dir, &it, &e) < 0)
		return wrong_or_fail(f, e, err);
	if (!ocil_layer_entries_indexed(it))
		return wrong(f, "%s: the entry index of %s does not load", tag, f->e.layer.digest);
	if (pyc != NULL || !f->download) {
		ocil_pyc_facts pf = {0};
		rc = ocil_pyc_facts_of_layer(blob, "cached layer", index_dir, cancel, &pf, &e);
		ocil_pyc_facts_clear(&pf);
		if (rc < 0 && e->code == OCIL_E_CANCELLED) {
			*err = e;
			return -1;
		}
		if (rc < 0) {
			ocil_error_free(e);
			return wrong(f, "%s: the python facts of %s do not load", tag,
				     f->e.layer.digest);
		}
	}
	(void)name;
	f->found = true;
	return 0;
}

/* ---- batches ---- */

typedef struct pool {
	ocil_cache_repo *c;
	size_t n;
	size_t next;
	const ocil_cancel *cancel;
	pthread_mutex_t lock;
	ocil_error *err; /* the first failure that stops the batch */
	/* find */
	ocil_cache_repo_find *finds;
	const char *index_dir;
	ocil_blobstore *bs, *scratch;
	/* record */
	ocil_cache_repo_put *puts;
	ocil_blobstore *layer_bs;
	const char *mount_repo;
	size_t failed;
	int (*one)(struct pool *p, ocil_registry *r, size_t i, ocil_error **err);
} pool;

static void pool_fail(pool *p, ocil_error *e)
{
	pthread_mutex_lock(&p->lock);
	if (p->err == NULL)
		p->err = e;
	else
		ocil_error_free(e);
	__atomic_store_n(&p->next, p->n, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
}

static void run_jobs(pool *p, ocil_registry *r)
{
	for (;;) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		if (i >= p->n)
			return;
		ocil_error *e = NULL;
		if (ocil_cancel_check(p->cancel, &e) < 0 || p->one(p, r, i, &e) < 0)
			pool_fail(p, e);
	}
}

static void *worker(void *arg)
{
	pool *p = arg;
	ocil_registry *r = NULL;
	ocil_error *e = NULL;
	if (ocil_registry_open(p->c->registry, p->c->repository, &p->c->wro, &r, &e) < 0) {
		pool_fail(p, e);
		return NULL;
	}
	run_jobs(p, r);
	ocil_registry_free(r);
	return NULL;
}

/* Every job of p, on the main client and up to OCIL_CACHE_REPO_JOBS - 1
 * workers of their own. */
static void run_pool(pool *p)
{
	pthread_mutex_init(&p->lock, NULL);
	size_t nw = p->n < OCIL_CACHE_REPO_JOBS ? p->n : OCIL_CACHE_REPO_JOBS;
	pthread_t tids[OCIL_CACHE_REPO_JOBS];
	size_t started = 0;
	/* workers take no signals: they stay with the caller's thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; started + 1 < nw; started++)
		if (pthread_create(&tids[started], NULL, worker, p) != 0)
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	run_jobs(p, p->c->r);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&p->lock);
}

static int find_job(pool *p, ocil_registry *r, size_t i, ocil_error **err)
{
	ocil_cache_repo_find *f = &p->finds[i];
	return find_one(r, p->c->name, f, p->index_dir, p->bs, p->scratch, p->cancel, err);
}

int ocil_cache_repo_find_all(ocil_cache_repo *c, ocil_cache_repo_find *finds, size_t n,
			     const char *index_dir, ocil_blobstore *bs, ocil_blobstore *scratch,
			     const ocil_cancel *cancel, ocil_error **err)
{
	if (n == 0)
		return 0;
	if (index_dir == NULL)
		return ocil_error_set(err, OCIL_E_IO, "%s: no layer index directory", c->name);
	pool p = {.c = c,
		  .n = n,
		  .cancel = cancel,
		  .finds = finds,
		  .index_dir = index_dir,
		  .bs = bs,
		  .scratch = scratch,
		  .one = find_job};
	run_pool(&p);
	if (p.err != NULL) {
		*err = p.err;
		return -1;
	}
	return 0;
}

/* ---- recording ---- */

/* The facts blob of an entry into bs: its descriptor. */
static int put_facts(const ocil_cache_repo_put *p, ocil_blobstore *bs, const char *index_dir,
		     ocil_descriptor *d, ocil_error **err)
{
	const char *hex = ocil_digest_hex(p->e.layer.digest);
	cleanup_free char *ipath = ocil_xasprintf("%s/%s", index_dir, hex);
	cleanup_free char *ppath = ocil_xasprintf("%s/%s.bytecode", index_dir, hex);
	cleanup_free char *index = NULL, *pyc = NULL;
	size_t ilen = 0, plen = 0;
	if (ocil_read_file(ipath, (size_t)OCIL_CACHE_REPO_FACTS_MAX / 2, &index, &ilen, err) < 0)
		return ocil_error_wrap(err, "the layer's entry index");
	ocil_error *none = NULL;
	if (ocil_read_file(ppath, (size_t)OCIL_CACHE_REPO_FACTS_MAX / 2, &pyc, &plen, &none) < 0) {
		ocil_error_free(none); /* no python facts: a scan reads the layer */
		pyc = NULL;
	}
	cleanup_free char *i64 = ocil_base64_encode(index, ilen);
	cleanup_free char *p64 = pyc ? ocil_base64_encode(pyc, plen) : NULL;
	cleanup_json json_t *j =
	    json_pack("{s:s, s:s, s:I, s:O, s:s, s:s?}", "key", p->key, "diff_id", p->e.diff_id,
		      "uncompressed_size", (json_int_t)p->e.uncompressed_size, "facts",
		      p->e.facts ? p->e.facts : json_null(), "index", i64, "pyc", p64);
	cleanup_free char *raw = ocil_json_dump(j);
	d->media_type = ocil_xstrdup(OCIL_CACHE_REPO_FACTS);
	d->size = (int64_t)strlen(raw);
	return ocil_blobstore_put(bs, raw, strlen(raw), d->digest, err);
}

/* Blob d into the repository unless it is there: mounted from mount_repo
 * when given, else uploaded from bs. */
static int send_blob(ocil_registry *r, const ocil_descriptor *d, ocil_blobstore *bs,
		     const char *mount_repo, ocil_error **err)
{
	bool have = false;
	if (ocil_registry_blob_exists(r, d, &have, err) < 0)
		return -1;
	if (!have && mount_repo != NULL &&
	    ocil_registry_mount_blob(r, d, mount_repo, &have, err) < 0)
		return -1;
	if (have)
		return 0;
	cleanup_free char *path = ocil_blobstore_path(bs, d->digest);
	return ocil_registry_push_blob(r, d, path, err);
}

static int record_one(ocil_registry *r, const ocil_cache_repo_put *p, ocil_blobstore *layer_bs,
		      ocil_blobstore *scratch, const char *mount_repo, const char *index_dir,
		      ocil_error **err)
{
	ocil_descriptor facts = {0};
	ocil_descriptor empty = {.media_type = (char *)OCIL_CACHE_REPO_EMPTY, .size = 2};
	snprintf(empty.digest, sizeof(empty.digest), "%s", EMPTY_DIGEST);
	char d[OCIL_DIGEST_STR_SIZE];
	int rc = put_facts(p, scratch, index_dir, &facts, err);
	if (rc == 0)
		rc = ocil_blobstore_put(scratch, EMPTY_JSON, 2, d, err);
	if (rc == 0)
		rc = send_blob(r, &p->e.layer, layer_bs, mount_repo, err);
	if (rc == 0)
		rc = send_blob(r, &empty, scratch, NULL, err);
	if (rc == 0)
		rc = send_blob(r, &facts, scratch, NULL, err);
	if (rc == 0) {
		json_t *m = json_pack(
		    "{s:i, s:s, s:s, s:o, s:[o, o], s:{s:s}}", "schemaVersion", 2, "mediaType",
		    OCIL_MT_OCI_MANIFEST, "artifactType", OCIL_CACHE_REPO_ARTIFACT, "config",
		    ocil_descriptor_to_json(&empty), "layers", ocil_descriptor_to_json(&p->e.layer),
		    ocil_descriptor_to_json(&facts), "annotations", OCIL_CACHE_REPO_KEY_ANN,
		    p->key);
		cleanup_free char *raw = ocil_json_dump(m);
		json_decref(m);
		char tag[OCIL_DIGEST_STR_SIZE], got[OCIL_DIGEST_STR_SIZE];
		ocil_cache_repo_tag(p->key, tag);
		rc = ocil_registry_put_manifest(r, tag, raw, strlen(raw), OCIL_MT_OCI_MANIFEST, got,
						err);
	}
	ocil_descriptor_clear(&facts);
	return rc;
}

static int record_job(pool *p, ocil_registry *r, size_t i, ocil_error **err)
{
	ocil_cache_repo_put *put = &p->puts[i];
	if (record_one(r, put, p->layer_bs, p->scratch, p->mount_repo, p->index_dir, &put->err) <
	    0) {
		__atomic_fetch_add(&p->failed, 1, __ATOMIC_RELAXED);
		if (put->err != NULL && put->err->code == OCIL_E_CANCELLED) {
			*err = put->err;
			put->err = NULL;
			return -1;
		}
	}
	return 0;
}

size_t ocil_cache_repo_record_all(ocil_cache_repo *c, ocil_cache_repo_put *puts, size_t n,
				  ocil_blobstore *layer_bs, ocil_blobstore *scratch,
				  const char *mount_repo, const char *index_dir,
				  const ocil_cancel *cancel)
{
	if (n == 0)
		return 0;
	if (index_dir == NULL) {
		for (size_t i = 0; i < n; i++)
			ocil_error_set(&puts[i].err, OCIL_E_IO, "no layer index directory");
		return n;
	}
	pool p = {.c = c,
		  .n = n,
		  .cancel = cancel,
		  .puts = puts,
		  .layer_bs = layer_bs,
		  .scratch = scratch,
		  .mount_repo = mount_repo,
		  .index_dir = index_dir,
		  .one = record_job};
	run_pool(&p);
	size_t failed = p.failed;
	if (p.err != NULL) {
		/* cancelled (or a worker could not start): the rest not recorded */
		for (size_t i = 0; i < n; i++)
			if (puts[i].err == NULL && failed < n) {
				ocil_error_set(&puts[i].err, p.err->code, "%s", p.err->msg);
				failed++;
			}
		ocil_error_free(p.err);
	}
	return failed;
}
