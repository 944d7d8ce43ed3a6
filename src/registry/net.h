/* One libcurl multi handle for every registry transfer of a command, driven
 * by a thread of its own, so that transfers made from several threads at
 * once share connections (kept alive, reused; HTTP/2 streams multiplexed
 * over one connection where the server offers it) and their number per
 * host is bounded.
 *
 * A caller prepares an easy handle as for curl_easy_perform and hands it to
 * ocil_net_perform, which returns when the transfer is over. Meanwhile the
 * handle's callbacks (header, write, read, seek, progress) run on the loop
 * thread, one transfer's at a time: they may touch what the waiting caller
 * owns, but whatever they share with other transfers or threads (a
 * progress display) needs its own lock. */
#ifndef OCIL_NET_H
#define OCIL_NET_H

#include <curl/curl.h>

#include "base/error.h"

/* Transfers at once unless --jobs says. */
#define OCIL_NET_JOBS_DEFAULT 6
#define OCIL_NET_JOBS_MAX 64

typedef struct ocil_net ocil_net;

/* jobs (1..OCIL_NET_JOBS_MAX; else the default): connections to one host at
 * once; more transfers than that wait inside libcurl for one to be free.
 * No thread runs until the first ocil_net_perform. */
int ocil_net_new(int jobs, ocil_net **out, ocil_error **err);
/* The transfer easy describes, to its end: what curl_easy_perform(easy)
 * returns. Any thread may call it, several at once; each blocks. */
CURLcode ocil_net_perform(ocil_net *n, CURL *easy);
/* The jobs given to ocil_net_new (after the default). */
int ocil_net_jobs(const ocil_net *n);
/* Stop the loop and free. Every ocil_net_perform must have returned. Safe
 * on NULL. */
void ocil_net_free(ocil_net *n);

#endif
