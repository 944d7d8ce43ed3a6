/* base/parallel.c: every item runs once, at most `workers` at once and that
 * many together when there is work for them; the first failure stops the
 * rest and is the error returned; the caller's cancellation stops it too. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "base/parallel.h"
#include "test.h"

typedef struct {
	atomic_int ran[64];
	atomic_int now, peak;
	atomic_int seen_worker[8];
	int fail_at;	      /* an item that fails, or -1 */
	int slow_ms;	      /* each item takes this long */
	volatile int *cancel; /* set by item 0 when not NULL */
} box;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int item(void *data, size_t worker, size_t i, const ocil_cancel *stop, ocil_error **err)
{
	box *b = data;
	atomic_fetch_add(&b->ran[i], 1);
	atomic_fetch_add(&b->seen_worker[worker], 1);
	int now = atomic_fetch_add(&b->now, 1) + 1;
	int peak = atomic_load(&b->peak);
	while (now > peak && !atomic_compare_exchange_weak(&b->peak, &peak, now))
		;
	if (b->cancel != NULL && i == 0)
		*b->cancel = 1;
	int r = 0;
	/* a long item watches stop, as a transfer does */
	for (int t = 0; t < b->slow_ms && r == 0; t += 5) {
		sleep_ms(5);
		r = ocil_cancel_check(stop, err);
	}
	if (r == 0 && (int)i == b->fail_at)
		r = ocil_error_set(err, OCIL_E_REGISTRY, "item %zu broke", i);
	atomic_fetch_sub(&b->now, 1);
	return r;
}

static void all_items_once(void)
{
	ocil_error *err = NULL;
	static box b;
	b = (box){.fail_at = -1, .slow_ms = 20};
	size_t failed = 99;
	CHECK_OK(ocil_parallel_run(16, 4, item, &b, NULL, &failed, &err), &err);
	CHECK(failed == 16);
	for (int i = 0; i < 16; i++)
		CHECK(atomic_load(&b.ran[i]) == 1);
	CHECK(atomic_load(&b.peak) <= 4);
	CHECK(atomic_load(&b.peak) >= 2);
	for (int w = 4; w < 8; w++)
		CHECK(atomic_load(&b.seen_worker[w]) == 0);

	/* fewer items than workers: one thread each, no more */
	b = (box){.fail_at = -1, .slow_ms = 20};
	CHECK_OK(ocil_parallel_run(2, 8, item, &b, NULL, NULL, &err), &err);
	CHECK(atomic_load(&b.ran[0]) == 1 && atomic_load(&b.ran[1]) == 1);
	CHECK(atomic_load(&b.peak) <= 2);
	for (int w = 2; w < 8; w++)
		CHECK(atomic_load(&b.seen_worker[w]) == 0);

	/* nothing to do */
	CHECK_OK(ocil_parallel_run(0, 4, item, &b, NULL, &failed, &err), &err);
	CHECK(failed == 0);

	/* one worker: in order, one at a time */
	b = (box){.fail_at = -1};
	CHECK_OK(ocil_parallel_run(10, 1, item, &b, NULL, NULL, &err), &err);
	CHECK(atomic_load(&b.peak) == 1);
}

static void first_failure_wins(void)
{
	ocil_error *err = NULL;
	static box b;
	b = (box){.fail_at = 3, .slow_ms = 30};
	size_t failed = 0;
	CHECK_FAIL(ocil_parallel_run(40, 4, item, &b, NULL, &failed, &err), &err, OCIL_E_REGISTRY,
		   "item 3 broke");
	CHECK(failed == 3);
	/* after the failure no item starts: far fewer than all ran */
	int ran = 0;
	for (int i = 0; i < 40; i++)
		ran += atomic_load(&b.ran[i]);
	CHECK(ran < 40);
	CHECK(atomic_load(&b.now) == 0);
}

static void cancelled(void)
{
	ocil_error *err = NULL;
	static box b;
	static volatile int flag;
	flag = 0;
	b = (box){.fail_at = -1, .slow_ms = 2000, .cancel = &flag};
	ocil_cancel c = {.flag = &flag};
	CHECK_FAIL(ocil_parallel_run(8, 2, item, &b, &c, NULL, &err), &err, OCIL_E_CANCELLED, "");
	CHECK(atomic_load(&b.ran[7]) == 0);
	CHECK(atomic_load(&b.now) == 0);
}

TEST_MAIN(T(all_items_once), T(first_failure_wins), T(cancelled))
