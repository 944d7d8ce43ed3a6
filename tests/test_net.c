/* registry/net.c: transfers handed to the one loop from several threads at
 * once all finish, each with its own bytes and result (file:// URLs: the
 * loop's mechanics, no server needed; the connection counts are judged
 * against a real registry by tests/cli/t_network.sh). */
#include <pthread.h>
#include <stdint.h>

#include "base/util.h"
#include "registry/net.h"
#include "test.h"

#define THREADS 8

typedef struct {
	ocil_net *net;
	char *url;
	char buf[4096];
	size_t len;
	CURLcode rc;
} xfer;

static size_t on_data(char *p, size_t size, size_t n, void *data)
{
	xfer *x = data;
	size_t len = size * n;
	if (x->len + len > sizeof(x->buf))
		return 0;
	memcpy(x->buf + x->len, p, len);
	x->len += len;
	return len;
}

static void *run(void *arg)
{
	xfer *x = arg;
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	x->rc = ocil_net_perform(x->net, c);
	curl_easy_cleanup(c);
	return NULL;
}

static void many_threads_one_loop(void)
{
	ocil_error *err = NULL;
	ocil_net *n = NULL;
	CHECK_OK(ocil_net_new(0, &n, &err), &err);
	CHECK(ocil_net_jobs(n) == OCIL_NET_JOBS_DEFAULT);
	static xfer xs[THREADS];
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++) {
		char *path = ocil_xasprintf("%s/f%d", ocil_test_tmpdir(), i);
		char *body = ocil_xasprintf("file %d %.*s", i, i * 100, "");
		CHECK_OK(ocil_write_file_atomic(path, body, strlen(body), &err), &err);
		xs[i] = (xfer){.net = n};
		xs[i].url = i == THREADS - 1
				? ocil_xasprintf("file://%s/missing", ocil_test_tmpdir())
				: ocil_xasprintf("file://%s", path);
		free(path);
		free(body);
	}
	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, run, &xs[i]) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < THREADS - 1; i++) {
		CHECK(xs[i].rc == CURLE_OK);
		char *want = ocil_xasprintf("file %d %.*s", i, i * 100, "");
		CHECK(xs[i].len == strlen(want) && memcmp(xs[i].buf, want, xs[i].len) == 0);
		free(want);
	}
	/* a failed transfer gets its own code, the others are not disturbed */
	CHECK(xs[THREADS - 1].rc == CURLE_FILE_COULDNT_READ_FILE);
	/* the loop goes on after a round */
	xs[0].len = 0;
	run(&xs[0]);
	CHECK(xs[0].rc == CURLE_OK && xs[0].len == 7);
	for (int i = 0; i < THREADS; i++)
		free(xs[i].url);
	ocil_net_free(n);
}

static void unused_and_bounds(void)
{
	ocil_error *err = NULL;
	ocil_net *n = NULL;
	CHECK_OK(ocil_net_new(OCIL_NET_JOBS_MAX + 1, &n, &err), &err);
	CHECK(ocil_net_jobs(n) == OCIL_NET_JOBS_DEFAULT);
	ocil_net_free(n); /* no thread was started */
	CHECK_OK(ocil_net_new(1, &n, &err), &err);
	CHECK(ocil_net_jobs(n) == 1);
	ocil_net_free(n);
	ocil_net_free(NULL);
}

TEST_MAIN(T(many_threads_one_loop), T(unused_and_bounds))
