#include "registry/net.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "base/util.h"

/* How long the loop sleeps in curl_multi_poll when nothing happens; a new
 * transfer wakes it at once (curl_multi_wakeup). */
#define POLL_MS 1000

/* One transfer handed to the loop, and its caller waiting for it. */
typedef struct waiter {
	CURL *easy;
	CURLcode rc;
	bool done;
	pthread_cond_t cv;
	struct waiter *next;
} waiter;

struct ocil_net {
	CURLM *multi;
	int jobs;
	pthread_mutex_t mu;
	bool started, stopping, broken;
	pthread_t thread;
	waiter *queue;	 /* to add to the multi handle */
	waiter **active; /* in the multi handle */
	size_t n_active, cap_active;
	bool curl_inited;
};

/* (under n->mu) */
static void finish(waiter *w, CURLcode rc)
{
	w->rc = rc;
	w->done = true;
	pthread_cond_signal(&w->cv);
}

static void *loop(void *arg)
{
	ocil_net *n = arg;
	for (;;) {
		pthread_mutex_lock(&n->mu);
		while (n->queue != NULL) {
			waiter *w = n->queue;
			n->queue = w->next;
			if (n->n_active == n->cap_active) {
				n->cap_active = n->cap_active ? 2 * n->cap_active : 16;
				n->active =
				    ocil_xrealloc(n->active, n->cap_active * sizeof(*n->active));
			}
			if (curl_multi_add_handle(n->multi, w->easy) != CURLM_OK)
				finish(w, CURLE_FAILED_INIT);
			else
				n->active[n->n_active++] = w;
		}
		bool stop = n->stopping && n->n_active == 0;
		pthread_mutex_unlock(&n->mu);
		if (stop)
			return NULL;
		int running = 0;
		curl_multi_perform(n->multi, &running);
		CURLMsg *m;
		int left = 0;
		while ((m = curl_multi_info_read(n->multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			CURL *easy = m->easy_handle;
			CURLcode rc = m->data.result;
			curl_multi_remove_handle(n->multi, easy);
			pthread_mutex_lock(&n->mu);
			for (size_t i = 0; i < n->n_active; i++)
				if (n->active[i]->easy == easy) {
					finish(n->active[i], rc);
					n->active[i] = n->active[--n->n_active];
					break;
				}
			pthread_mutex_unlock(&n->mu);
		}
		curl_multi_poll(n->multi, NULL, 0, POLL_MS, NULL);
	}
}

int ocil_net_new(int jobs, ocil_net **out, ocil_error **err)
{
	ocil_net *n = ocil_xcalloc(1, sizeof(*n));
	n->jobs = jobs >= 1 && jobs <= OCIL_NET_JOBS_MAX ? jobs : OCIL_NET_JOBS_DEFAULT;
	/* Reference-counted and thread-safe since curl 7.84. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(n);
		return ocil_error_set(err, OCIL_E_IO, "cannot initialise libcurl");
	}
	n->curl_inited = true;
	n->multi = curl_multi_init();
	if (n->multi == NULL) {
		ocil_net_free(n);
		return ocil_error_set(err, OCIL_E_IO, "cannot initialise libcurl");
	}
	curl_multi_setopt(n->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(n->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)n->jobs);
	/* idle connections kept for reuse: a registry's, its CDN's, a token
	 * server's */
	curl_multi_setopt(n->multi, CURLMOPT_MAXCONNECTS, (long)(2 * n->jobs + 4));
	pthread_mutex_init(&n->mu, NULL);
	*out = n;
	return 0;
}

int ocil_net_jobs(const ocil_net *n)
{
	return n->jobs;
}

CURLcode ocil_net_perform(ocil_net *n, CURL *easy)
{
	waiter w = {.easy = easy};
	pthread_cond_init(&w.cv, NULL);
	/* HTTP/2: a new transfer waits for a connection still being set up
	 * rather than opening another, to multiplex on it. */
	curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
	pthread_mutex_lock(&n->mu);
	if (!n->started && !n->broken) {
		if (pthread_create(&n->thread, NULL, loop, n) == 0)
			n->started = true;
		else
			n->broken = true;
	}
	if (n->broken) {
		pthread_mutex_unlock(&n->mu);
		pthread_cond_destroy(&w.cv);
		/* No loop thread: the transfer runs here, alone. */
		return curl_easy_perform(easy);
	}
	waiter **tail = &n->queue;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = &w;
	pthread_mutex_unlock(&n->mu);
	curl_multi_wakeup(n->multi);
	pthread_mutex_lock(&n->mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &n->mu);
	pthread_mutex_unlock(&n->mu);
	pthread_cond_destroy(&w.cv);
	return w.rc;
}

void ocil_net_free(ocil_net *n)
{
	if (n == NULL)
		return;
	if (n->started) {
		pthread_mutex_lock(&n->mu);
		n->stopping = true;
		pthread_mutex_unlock(&n->mu);
		curl_multi_wakeup(n->multi);
		pthread_join(n->thread, NULL);
	}
	if (n->multi != NULL) {
		curl_multi_cleanup(n->multi);
		pthread_mutex_destroy(&n->mu);
	}
	free(n->active);
	if (n->curl_inited)
		curl_global_cleanup();
	free(n);
}
