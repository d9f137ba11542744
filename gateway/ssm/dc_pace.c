/*
 * dc_pace.c - see dc_pace.h.
 *
 * The bucket alone bounds a 1 s window only to rate + depth, and a timer
 * that fires late lets the whole depth out at once; the ring of send
 * times is the hard bound: the rate-th most recent send must be at least
 * DC_PACE_SPAN_NS old before the next one goes. The bucket keeps the rate even
 * within the second (depth: 20 ms worth of messages, at least one, so
 * that a timer late by a few milliseconds costs no throughput).
 */
#include "dc_pace.h"

#include <stdlib.h>

#include "common.h"

int dc_pace_init(struct dc_pace *p, int rate, uint64_t now_ns)
{
    p->rate = rate;
    p->tokens = 1.0;
    p->at_ns = now_ns;
    p->sent = NULL;
    p->n = p->head = 0;
    p->max_1s = 0;
    return 0;
}

/* Sends within the second that ends at now_ns, the one just recorded
 * included: the ring is in time order from head, so a binary search. */
static int dc_pace_count_1s(const struct dc_pace *p, uint64_t now_ns)
{
    uint64_t from = now_ns >= 1000000000ull ? now_ns - 1000000000ull : 0;
    int lo = 0, hi = p->n; /* the first entry after from */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (p->sent[(p->head + mid) % p->rate] > from)
            hi = mid;
        else
            lo = mid + 1;
    }
    return p->n - lo;
}

void dc_pace_trim(struct dc_pace *p, uint64_t now_ns)
{
    if (p->sent == NULL ||
        (p->n > 0 &&
         p->sent[(p->head + p->n - 1) % p->rate] + DC_PACE_SPAN_NS > now_ns))
        return;
    free(p->sent);
    p->sent = NULL;
    p->n = p->head = 0;
}

int dc_pace_holds(const struct dc_pace *p)
{
    return p->sent != NULL;
}

void dc_pace_free(struct dc_pace *p)
{
    free(p->sent);
    p->sent = NULL;
}

static double dc_pace_depth(const struct dc_pace *p)
{
    return p->rate / 50.0 > 1.0 ? p->rate / 50.0 : 1.0;
}

static void dc_pace_refill(struct dc_pace *p, uint64_t now_ns)
{
    if (now_ns > p->at_ns) {
        p->tokens += (double)(now_ns - p->at_ns) * p->rate / 1e9;
        p->at_ns = now_ns;
    }
    if (p->tokens > dc_pace_depth(p))
        p->tokens = dc_pace_depth(p);
}

uint64_t dc_pace_wait(struct dc_pace *p, uint64_t now_ns)
{
    if (p->rate <= 0)
        return 0;
    uint64_t wait = 0;
    if (p->sent != NULL && p->n == p->rate) {
        uint64_t oldest = p->sent[p->head];
        if (now_ns < oldest + DC_PACE_SPAN_NS)
            wait = oldest + DC_PACE_SPAN_NS - now_ns;
    }
    dc_pace_refill(p, now_ns);
    if (p->tokens < 1.0) {
        uint64_t t = (uint64_t)((1.0 - p->tokens) * 1e9 / p->rate) + 1;
        wait = GW_MAX(wait, t);
    }
    return wait;
}

uint64_t dc_pace_wait_n(struct dc_pace *p, uint64_t now_ns, int n)
{
    if (p->rate <= 0)
        return 0;
    int depth = (int)dc_pace_depth(p);
    n = GW_MAX(1, GW_MIN(n, depth));
    uint64_t wait = dc_pace_wait(p, now_ns); /* refills the bucket */
    if (p->tokens < (double)n) {
        uint64_t t = (uint64_t)(((double)n - p->tokens) * 1e9 / p->rate) + 1;
        wait = GW_MAX(wait, t);
    }
    /* Sends that must have left the span first: the last of them. */
    int out = p->sent != NULL ? p->n + n - p->rate : 0;
    if (out > 0) {
        uint64_t t = p->sent[(p->head + out - 1) % p->rate] + DC_PACE_SPAN_NS;
        if (t > now_ns)
            wait = GW_MAX(wait, t - now_ns);
    }
    return wait;
}

void dc_pace_sent(struct dc_pace *p, uint64_t now_ns)
{
    if (p->rate <= 0)
        return;
    dc_pace_refill(p, now_ns);
    p->tokens -= 1.0;
    if (p->sent == NULL && p->rate <= DC_PACE_RING_MAX)
        p->sent = malloc((size_t)p->rate * sizeof(*p->sent));
    if (p->sent == NULL)
        return; /* the bucket alone (no memory, or a rate past the ring) */
    if (p->n < p->rate) {
        p->sent[(p->head + p->n++) % p->rate] = now_ns;
    } else {
        p->sent[p->head] =
            now_ns; /* the oldest goes, the newest in its place */
        p->head = (p->head + 1) % p->rate;
    }
    int c = dc_pace_count_1s(p, now_ns);
    if (c > p->max_1s)
        p->max_1s = c;
}
