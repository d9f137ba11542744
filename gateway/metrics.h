/*
 * metrics.h - the scrape endpoint: a small HTTP/1.1 server on the loop
 * that answers GET /metrics with the page its owner renders (Prometheus
 * text, prom.h) and nothing else.
 *
 * One request per connection (the answer says Connection: close). The
 * request head is bounded (METRICS_HEAD_MAX, else 431) and a client has
 * METRICS_CLIENT_MS to send it and read the answer, so a slow or silent
 * client cannot pin memory; at most METRICS_CLIENTS at once (a new one
 * pushes out the oldest).
 */
#ifndef SSMGATE_METRICS_H
#define SSMGATE_METRICS_H

#include <uv.h>

#include "buf.h"

#define METRICS_HEAD_MAX  4096
#define METRICS_CLIENT_MS 10000
#define METRICS_CLIENTS   16
#define METRICS_PAGE_MAX  (1024 * 1024)

struct metrics;

/* Writes the page into out (METRICS_PAGE_MAX room); 0 or an error
 * (answered 500). */
typedef int metrics_render_fn(void *arg, struct buf *out);

/* Listens on addr ("ADDR:PORT", port 0 = any) and prints "ssmgate:
 * metrics on http://ADDR:PORT/metrics" to stderr. 0 or an error (logged). */
int metrics_start(uv_loop_t *loop, const char *addr, metrics_render_fn *render,
                  void *arg, struct metrics **out);
const char *metrics_addr(const struct metrics *m);
/* Closes the listener and every client; the memory goes with the last
 * close callback. NULL is fine. */
void metrics_stop(struct metrics *m);

#endif
