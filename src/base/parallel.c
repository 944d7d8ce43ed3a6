#include "base/parallel.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

/* How often the waiting thread looks at the caller's cancellation. */
#define WATCH_MS 100

typedef struct {
	size_t n, next, running;
	ocil_parallel_fn fn;
	void *data;
	volatile int stop_flag;
	ocil_cancel stop;
	ocil_error **errs; /* per item */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a worker ended */
} pool;

typedef struct {
	pool *p;
	size_t worker;
	pthread_t tid;
	bool started;
} worker;

static void *work(void *arg)
{
	worker *wk = arg;
	pool *p = wk->p;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		size_t i = p->stop_flag ? p->n : p->next;
		if (i < p->n)
			p->next++;
		pthread_mutex_unlock(&p->mu);
		if (i >= p->n)
			break;
		ocil_error *e = NULL;
		if (p->fn(p->data, wk->worker, i, &p->stop, &e) < 0) {
			if (e == NULL)
				ocil_error_set(&e, OCIL_E_IO, "item %zu failed", i);
			pthread_mutex_lock(&p->mu);
			p->errs[i] = e;
			p->stop_flag = 1;
			pthread_mutex_unlock(&p->mu);
		}
	}
	pthread_mutex_lock(&p->mu);
	p->running--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static bool cancelled(const ocil_cancel *c)
{
	return c != NULL && c->flag != NULL && *c->flag;
}

int ocil_parallel_run(size_t n, size_t workers, ocil_parallel_fn fn, void *data,
		      const ocil_cancel *cancel, size_t *failed, ocil_error **err)
{
	size_t failed_local = n;
	if (n == 0) {
		if (failed != NULL)
			*failed = 0;
		return ocil_cancel_check(cancel, err);
	}
	if (failed == NULL)
		failed = &failed_local;
	*failed = n;
	if (workers > n)
		workers = n;
	if (workers == 0)
		workers = 1;
	pool p = {.n = n, .fn = fn, .data = data};
	p.stop.flag = &p.stop_flag;
	p.errs = ocil_xcalloc(n + 1, sizeof(*p.errs));
	pthread_mutex_init(&p.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p.cv, &ca);
	pthread_condattr_destroy(&ca);
	worker *wks = ocil_xcalloc(workers, sizeof(*wks));
	size_t started = 0;
	for (size_t w = 0; w < workers; w++) {
		wks[w] = (worker){.p = &p, .worker = w};
		pthread_mutex_lock(&p.mu);
		p.running++;
		pthread_mutex_unlock(&p.mu);
		if (pthread_create(&wks[w].tid, NULL, work, &wks[w]) != 0) {
			pthread_mutex_lock(&p.mu);
			p.running--;
			pthread_mutex_unlock(&p.mu);
			break;
		}
		wks[w].started = true;
		started++;
	}
	if (started == 0) {
		/* no thread to be had: one worker, here */
		p.running = 1;
		work(&wks[0]);
	}
	pthread_mutex_lock(&p.mu);
	while (p.running > 0) {
		if (cancelled(cancel))
			p.stop_flag = 1;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += WATCH_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p.cv, &p.mu, &ts);
	}
	pthread_mutex_unlock(&p.mu);
	for (size_t w = 0; w < workers; w++)
		if (wks[w].started)
			pthread_join(wks[w].tid, NULL);
	free(wks);
	int r = 0;
	/* the first item that failed by itself; else (all stopped) the first */
	size_t pick = n;
	for (size_t i = 0; i < n && pick == n; i++)
		if (p.errs[i] != NULL && p.errs[i]->code != OCIL_E_CANCELLED)
			pick = i;
	for (size_t i = 0; i < n && pick == n; i++)
		if (p.errs[i] != NULL)
			pick = i;
	if (pick == n && cancelled(cancel)) {
		r = ocil_cancel_check(cancel, err);
	} else if (pick < n) {
		*failed = pick;
		if (err != NULL && *err == NULL)
			*err = steal_pointer(&p.errs[pick]);
		r = -1;
	}
	for (size_t i = 0; i < n; i++)
		ocil_error_free(p.errs[i]);
	free(p.errs);
	pthread_cond_destroy(&p.cv);
	pthread_mutex_destroy(&p.mu);
	return r;
}
