/*
 * dc_pace.h - pacing of data-channel messages under the service's limit:
 * a token bucket for an even rate, and the times of the last `rate`
 * sends so that no 1-second window, wherever it starts, holds more than
 * `rate` messages (a late timer on a loaded machine cannot make a burst).
 * Rates above DC_PACE_RING_MAX (far above the service's 1000/s) get the
 * bucket only, so the ring's memory stays bounded.
 * Pure: the caller passes the clock.
 */
#ifndef SSMGATE_DC_PACE_H
#define SSMGATE_DC_PACE_H

#include <stdint.h>

/* The span the ring bounds: a second plus 20 ms for the jitter between a
 * send here and its arrival at the service (the WebSocket's queue, the
 * network). With the default rate (990) the service's own 1-second windows
 * then stay under its 1000 unless arrivals bunch by more than ~30 ms; it
 * costs 2 % of the rate (970/s, 0.97 MB/s of 1 KiB messages). */
#define DC_PACE_SPAN_NS  1020000000ull
#define DC_PACE_RING_MAX 20000

struct dc_pace {
    int rate; /* messages per second; <= 0 = unpaced */
    double tokens;
    uint64_t at_ns;
    uint64_t *sent; /* ring of the last `rate` send times, lazily */
    int n, head;
    int max_1s; /* the most sends seen in one second, ending at a send */
};

/* 0 or GW_ENOMEM; rate <= 0 never waits and allocates nothing. */
int dc_pace_init(struct dc_pace *p, int rate, uint64_t now_ns);
/* Frees the send-time ring once its newest entry left the span: an idle
 * channel keeps no history (the ring is allocated again at the next send). */
void dc_pace_trim(struct dc_pace *p, uint64_t now_ns);
/* Whether send times are held (the ring is allocated). */
int dc_pace_holds(const struct dc_pace *p);
void dc_pace_free(struct dc_pace *p);
/* 0 when a message may go at now_ns, else the nanoseconds to wait. */
uint64_t dc_pace_wait(struct dc_pace *p, uint64_t now_ns);
/* The nanoseconds until n messages may go one after another (n is
 * clamped to the bucket's depth): a sender with a queue waits for a batch
 * and wakes once for it, instead of once per message. */
uint64_t dc_pace_wait_n(struct dc_pace *p, uint64_t now_ns, int n);
/* A message went out at now_ns (after dc_pace_wait said 0). */
void dc_pace_sent(struct dc_pace *p, uint64_t now_ns);

#endif
