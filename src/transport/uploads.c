/* The uploads of a registry output (see uploads.h). */
#include "transport/uploads.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/net.h"

/* How often a waiting thread looks at the caller's cancellation. */
#define WATCH_MS 100

typedef struct tapped tapped;

typedef enum { J_QUEUED, J_RUNNING, J_DONE } jstate;

typedef struct job {
	jstate state;
	bool whole;	/* a blob in one PUT (the registry refused parts) */
	bool refused;	/* a stream the registry would not take in parts */
	bool abandoned; /* a stream whose writer gave up */
	bool probe;	/* only whether the registry has it (or can mount it) */
	bool missing;	/* a probe: it has not */
	ocil_error *err;
	ocil_descriptor d; /* a finished blob; a stream's once it is done */
	char *path;	   /* a finished blob's file */
	tapped *t;	   /* a stream */
	struct job *next;
} job;

/* One writer the tap sees. */
struct tapped {
	ocil_uploads *u;
	int fd;
	char *path;
	unsigned label;	  /* "new blob N" until its digest is known */
	uint64_t size;	  /* in the file */
	uint64_t acked;	  /* at the registry */
	uint64_t lead;	  /* how far the writer may be ahead of acked */
	bool uploading;	  /* a worker streams it: the writer waits for it */
	bool done, gone;  /* committed (digest, size); the writer dropped it */
	bool writer_over; /* end was called */
	char digest[OCIL_DIGEST_STR_SIZE];
	job *job;
};

struct ocil_uploads {
	ocil_uploads_opts o;
	size_t workers;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* anything changed */
	job *jobs, **tail;
	size_t started;
	pthread_t *tids;
	bool stopping, finishing;
	volatile int stop; /* the cancellation the workers' transfers honour */
	ocil_cancel stop_cancel;
	unsigned labels;
	/* the first worker makes sure the handle is logged in, then each
	 * worker works on a clone of it */
	pthread_mutex_t login_mu;
	bool logged_in;
	ocil_error *login_err;
	char *mount_from[2];
};

static bool user_cancelled(const ocil_uploads *u)
{
	return u->o.cancel != NULL && u->o.cancel->flag != NULL && *u->o.cancel->flag;
}

/* (under mu) wait for a change, at most WATCH_MS; the caller's
 * cancellation becomes ours */
static void wait_locked(ocil_uploads *u)
{
	if (user_cancelled(u))
		u->stop = 1;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += WATCH_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&u->cv, &u->mu, &ts);
}

static void tapped_free_locked(tapped *t)
{
	if (t->fd >= 0)
		close(t->fd);
	free(t->path);
	free(t);
}

/* ---- the stream a worker feeds to the registry ---- */

static int stream_wait(void *data, uint64_t have, ocil_blob_stream_state *st, ocil_error **err)
{
	tapped *t = data;
	ocil_uploads *u = t->u;
	pthread_mutex_lock(&u->mu);
	while (t->size <= have && !t->done && !t->gone && !u->stop)
		wait_locked(u);
	int r = 0;
	if (t->gone) {
		t->job->abandoned = true;
		r = ocil_error_set(err, OCIL_E_CANCELLED, "the blob was not finished");
	} else if (u->stop && !t->done && t->size <= have) {
		r = ocil_error_set(err, OCIL_E_CANCELLED, "interrupted");
	} else {
		st->size = t->size;
		st->done = t->done;
		memcpy(st->digest, t->digest, sizeof(st->digest));
	}
	pthread_mutex_unlock(&u->mu);
	return r;
}

static void stream_acked(void *data, uint64_t n, uint64_t part_min)
{
	tapped *t = data;
	pthread_mutex_lock(&t->u->mu);
	t->acked = n;
	t->lead = 2 * ocil_registry_stream_part_max(part_min);
	pthread_cond_broadcast(&t->u->cv);
	pthread_mutex_unlock(&t->u->mu);
}

/* ---- workers ---- */

static int login(ocil_uploads *u, ocil_error **err)
{
	pthread_mutex_lock(&u->login_mu);
	if (!u->logged_in && u->login_err == NULL &&
	    ocil_registry_login(u->o.registry, &u->login_err) == 0)
		u->logged_in = true;
	int r = 0;
	if (!u->logged_in)
		r = ocil_error_set(err, u->login_err->code, "%s", u->login_err->msg);
	pthread_mutex_unlock(&u->login_mu);
	return r;
}

static int clone_registry(ocil_uploads *u, ocil_registry **out, ocil_error **err)
{
	if (login(u, err) < 0)
		return -1;
	pthread_mutex_lock(&u->login_mu);
	int r = ocil_registry_clone(u->o.registry, &u->stop_cancel, out, err);
	pthread_mutex_unlock(&u->login_mu);
	return r;
}

/* HEAD, mount, upload: a finished blob. */
static int run_blob(ocil_uploads *u, ocil_registry *r, job *j, ocil_error **err)
{
	bool have = false;
	if (!j->whole && ocil_registry_blob_exists(r, &j->d, &have, err) < 0)
		return -1;
	for (size_t i = 0; i < 2 && !have && !j->whole; i++)
		if (u->mount_from[i] != NULL &&
		    ocil_registry_mount_blob(r, &j->d, u->mount_from[i], &have, err) < 0)
			return -1;
	if (have)
		return 0;
	if (j->probe) {
		/* others read the jobs' flags under mu */
		pthread_mutex_lock(&u->mu);
		j->missing = true;
		pthread_mutex_unlock(&u->mu);
		return 0;
	}
	return j->whole ? ocil_registry_push_blob_whole(r, &j->d, j->path, err)
			: ocil_registry_push_blob(r, &j->d, j->path, err);
}

static int run_stream(ocil_uploads *u, ocil_registry *r, job *j, ocil_error **err)
{
	tapped *t = j->t;
	char label[48];
	snprintf(label, sizeof(label), "(new blob %u)", t->label);
	ocil_blob_stream s = {.fd = t->fd,
			      .what = t->path,
			      .label = label,
			      .wait = stream_wait,
			      .acked = stream_acked,
			      .data = t};
	ocil_descriptor d = {0};
	bool refused = false;
	int rc = ocil_registry_push_stream(r, &s, &d, &refused, err);
	pthread_mutex_lock(&u->mu);
	t->uploading = false;
	j->refused = refused; /* others read the jobs' flags under mu */
	if (rc == 0 && !j->refused) {
		memcpy(j->d.digest, d.digest, sizeof(d.digest));
		j->d.size = d.size;
	}
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	return rc;
}

static void *work(void *arg)
{
	ocil_uploads *u = arg;
	ocil_registry *r = NULL;
	pthread_mutex_lock(&u->mu);
	for (;;) {
		job *j = NULL;
		for (job *k = u->jobs; k != NULL && j == NULL; k = k->next)
			if (k->state == J_QUEUED)
				j = k;
		if (u->stopping)
			break; /* what is queued is not wanted any more */
		if (j == NULL) {
			wait_locked(u);
			continue;
		}
		j->state = J_RUNNING;
		if (j->t != NULL)
			j->t->uploading = true;
		pthread_mutex_unlock(&u->mu);
		ocil_error *e = NULL;
		int rc = r == NULL ? clone_registry(u, &r, &e) : 0;
		if (rc == 0)
			rc = j->t != NULL ? run_stream(u, r, j, &e) : run_blob(u, r, j, &e);
		pthread_mutex_lock(&u->mu);
		if (j->t != NULL)
			j->t->uploading = false;
		if (rc < 0)
			j->err = e;
		j->state = J_DONE;
		pthread_cond_broadcast(&u->cv);
	}
	pthread_mutex_unlock(&u->mu);
	ocil_registry_free(r);
	return NULL;
}

/* (under mu) */
static job *add_locked(ocil_uploads *u, job *j)
{
	j->state = J_QUEUED;
	*u->tail = j;
	u->tail = &j->next;
	if (u->started < u->workers) {
		/* one more thread while there is more work than threads */
		size_t busy = 0;
		for (job *k = u->jobs; k != NULL; k = k->next)
			busy += k->state != J_DONE;
		if (busy > u->started && pthread_create(&u->tids[u->started], NULL, work, u) == 0)
			u->started++;
	}
	pthread_cond_broadcast(&u->cv);
	return j;
}

/* ---- the tap ---- */

#define STREAM_START ((uint64_t)5 << 20)

static void *tap_begin(void *data, const char *tmp)
{
	ocil_uploads *u = data;
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL; /* not streamed: uploaded whole at finish */
	tapped *t = ocil_xcalloc(1, sizeof(*t));
	t->u = u;
	t->fd = fd;
	t->path = ocil_xstrdup(tmp);
	pthread_mutex_lock(&u->mu);
	t->label = ++u->labels;
	pthread_mutex_unlock(&u->mu);
	return t;
}

static void tap_wrote(void *w, uint64_t size)
{
	tapped *t = w;
	ocil_uploads *u = t->u;
	pthread_mutex_lock(&u->mu);
	t->size = size;
	if (t->job == NULL && size >= STREAM_START && !u->finishing && !u->stopping) {
		job *j = ocil_xcalloc(1, sizeof(*j));
		j->t = t;
		t->job = j;
		t->lead = 2 * ocil_registry_stream_part_max(STREAM_START);
		add_locked(u, j);
	}
	pthread_cond_broadcast(&u->cv);
	/* held back while far ahead of what the registry has */
	while (t->uploading && !u->stop && t->size - t->acked > t->lead)
		wait_locked(u);
	pthread_mutex_unlock(&u->mu);
}

static void tap_end(void *w, const char *digest, uint64_t size)
{
	tapped *t = w;
	ocil_uploads *u = t->u;
	pthread_mutex_lock(&u->mu);
	if (digest != NULL) {
		t->done = true;
		t->size = size;
		memcpy(t->digest, digest, sizeof(t->digest));
	} else {
		t->gone = true;
	}
	t->writer_over = true;
	pthread_cond_broadcast(&u->cv);
	if (t->job == NULL)
		tapped_free_locked(t);
	pthread_mutex_unlock(&u->mu);
}

void ocil_uploads_tap(ocil_uploads *u, ocil_blob_tap *tap)
{
	*tap = (ocil_blob_tap){.begin = tap_begin, .wrote = tap_wrote, .end = tap_end, .data = u};
}

/* ---- the caller's side ---- */

int ocil_uploads_new(const ocil_uploads_opts *o, ocil_uploads **out, ocil_error **err)
{
	ocil_uploads *u = ocil_xcalloc(1, sizeof(*u));
	u->o = *o;
	u->workers =
	    o->jobs >= 1 && o->jobs <= OCIL_NET_JOBS_MAX ? (size_t)o->jobs : OCIL_NET_JOBS_DEFAULT;
	u->tids = ocil_xcalloc(u->workers, sizeof(*u->tids));
	u->tail = &u->jobs;
	u->stop_cancel.flag = &u->stop;
	for (size_t i = 0; i < 2; i++)
		u->mount_from[i] = o->mount_from[i] ? ocil_xstrdup(o->mount_from[i]) : NULL;
	pthread_mutex_init(&u->mu, NULL);
	pthread_mutex_init(&u->login_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = u;
	return 0;
}

void ocil_uploads_add(ocil_uploads *u, const ocil_descriptor *d, const char *path)
{
	pthread_mutex_lock(&u->mu);
	bool known = false;
	for (job *k = u->jobs; k != NULL && !known; k = k->next)
		known = k->t == NULL
			    ? strcmp(k->d.digest, d->digest) == 0
			    : k->t->done && !k->refused && strcmp(k->t->digest, d->digest) == 0;
	if (!known) {
		job *j = ocil_xcalloc(1, sizeof(*j));
		ocil_descriptor_copy(&j->d, d);
		j->path = ocil_xstrdup(path);
		add_locked(u, j);
	}
	pthread_mutex_unlock(&u->mu);
}

int ocil_uploads_probe(ocil_uploads *u, const ocil_descriptor *ds, size_t n, bool *have,
		       ocil_error **err)
{
	job **js = ocil_xcalloc(n + 1, sizeof(*js));
	pthread_mutex_lock(&u->mu);
	for (size_t i = 0; i < n; i++) {
		js[i] = ocil_xcalloc(1, sizeof(*js[i]));
		ocil_descriptor_copy(&js[i]->d, &ds[i]);
		js[i]->probe = true;
		add_locked(u, js[i]);
	}
	for (size_t i = 0; i < n; i++)
		while (js[i]->state != J_DONE)
			wait_locked(u);
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		have[i] = js[i]->err == NULL && !js[i]->missing;
		if (r == 0 && js[i]->err != NULL)
			r = ocil_error_set(err, js[i]->err->code, "%s", js[i]->err->msg);
	}
	if (r == 0 && user_cancelled(u))
		r = ocil_cancel_check(u->o.cancel, err);
	pthread_mutex_unlock(&u->mu);
	free(js);
	return r;
}

/* (under mu) the job that covers digest: a finished blob's, or a stream's
 * that did not fail to be taken */
static job *covering_locked(ocil_uploads *u, const char *digest)
{
	for (job *k = u->jobs; k != NULL; k = k->next) {
		const char *dg = k->t != NULL ? (k->t->done ? k->t->digest : NULL) : k->d.digest;
		if (dg != NULL && strcmp(dg, digest) == 0 && !k->refused && !k->abandoned &&
		    !k->missing)
			return k;
	}
	return NULL;
}

/* (under mu) whether a stream of digest was turned down in parts */
static bool refused_locked(ocil_uploads *u, const char *digest)
{
	for (job *k = u->jobs; k != NULL; k = k->next)
		if (k->t != NULL && k->refused && k->t->done && strcmp(k->t->digest, digest) == 0)
			return true;
	return false;
}

static void wait_all_locked(ocil_uploads *u)
{
	for (;;) {
		bool busy = false;
		for (job *k = u->jobs; k != NULL && !busy; k = k->next)
			busy = k->state != J_DONE;
		if (!busy)
			return;
		wait_locked(u);
	}
}

int ocil_uploads_finish(ocil_uploads *u, const ocil_descriptor *const *blobs, size_t n,
			ocil_blobstore *bs, ocil_error **err)
{
	pthread_mutex_lock(&u->mu);
	u->finishing = true;
	/* twice: a stream still under way may yet be refused */
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < n; i++) {
			if (covering_locked(u, blobs[i]->digest) != NULL)
				continue;
			job *j = ocil_xcalloc(1, sizeof(*j));
			ocil_descriptor_copy(&j->d, blobs[i]);
			j->path = ocil_blobstore_path(bs, blobs[i]->digest);
			j->whole = refused_locked(u, blobs[i]->digest);
			add_locked(u, j);
		}
		wait_all_locked(u);
	}
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		job *j = covering_locked(u, blobs[i]->digest);
		if (j == NULL) {
			r = ocil_error_set(err, OCIL_E_IO, "blob %s: not uploaded",
					   blobs[i]->digest);
		} else if (j->err != NULL) {
			r = ocil_error_set(err, j->err->code, "%s", j->err->msg);
		}
	}
	if (r == 0 && user_cancelled(u))
		r = ocil_cancel_check(u->o.cancel, err);
	pthread_mutex_unlock(&u->mu);
	return r;
}

void ocil_uploads_free(ocil_uploads *u)
{
	if (u == NULL)
		return;
	pthread_mutex_lock(&u->mu);
	u->stopping = true;
	u->stop = 1;
	pthread_cond_broadcast(&u->cv);
	pthread_mutex_unlock(&u->mu);
	for (size_t i = 0; i < u->started; i++)
		pthread_join(u->tids[i], NULL);
	for (job *k = u->jobs, *next; k != NULL; k = next) {
		next = k->next;
		if (k->t != NULL)
			tapped_free_locked(k->t);
		ocil_descriptor_clear(&k->d);
		free(k->path);
		ocil_error_free(k->err);
		free(k);
	}
	free(u->tids);
	free(u->mount_from[0]);
	free(u->mount_from[1]);
	ocil_error_free(u->login_err);
	pthread_cond_destroy(&u->cv);
	pthread_mutex_destroy(&u->mu);
	pthread_mutex_destroy(&u->login_mu);
	free(u);
}
