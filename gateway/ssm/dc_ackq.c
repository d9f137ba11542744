/*
 * dc_ackq.c - see dc_ackq.h.
 */
#include "dc_ackq.h"

#include <stdlib.h>
#include <string.h>

#define DC_ACKQ_MIN 64

void dc_ackq_init(struct dc_ackq *q)
{
    memset(q, 0, sizeof(*q));
}

void dc_ackq_free(struct dc_ackq *q)
{
    free(q->wait);
    free(q->recent);
    memset(q, 0, sizeof(*q));
}

/* Moves the len entries of a ring (oldest at first) to the front of a new
 * array of new_cap; 0, or -1 with the ring untouched. */
static int dc_ack_ring_grow(struct dc_ack **ring, unsigned *cap, unsigned first,
                            unsigned len, unsigned new_cap)
{
    struct dc_ack *r = malloc((size_t)new_cap * sizeof(*r));
    if (r == NULL)
        return -1;
    for (unsigned i = 0; i < len; i++)
        r[i] = (*ring)[(first + i) % *cap];
    free(*ring);
    *ring = r;
    *cap = new_cap;
    return 0;
}

/* Room for `need` waiting acks. */
static int dc_ackq_reserve(struct dc_ackq *q, unsigned need)
{
    if (need <= q->cap)
        return 0;
    if (need > DC_ACKQ_MAX)
        return -1;
    unsigned cap = q->cap ? q->cap : DC_ACKQ_MIN;
    while (cap < need)
        cap *= 2;
    if (cap > DC_ACKQ_MAX)
        cap = DC_ACKQ_MAX;
    if (dc_ack_ring_grow(&q->wait, &q->cap, q->head, q->len, cap) != 0)
        return -1;
    q->head = 0;
    return 0;
}

int dc_ackq_push(struct dc_ackq *q, int64_t seq, const uint8_t id[16])
{
    if (dc_ackq_reserve(q, q->len + 1) != 0) {
        q->dropped++;
        return -1;
    }
    struct dc_ack *a = &q->wait[(q->head + q->len++) % q->cap];
    a->seq = seq;
    memcpy(a->id, id, 16);
    return 0;
}

const struct dc_ack *dc_ackq_peek(const struct dc_ackq *q)
{
    return q->len > 0 ? &q->wait[q->head] : NULL;
}

void dc_ackq_pop(struct dc_ackq *q)
{
    if (q->len == 0)
        return;
    q->head = (q->head + 1) % q->cap;
    q->len--;
}

int dc_ackq_backlogged(const struct dc_ackq *q)
{
    return q->len >= DC_ACKQ_HOLD;
}

void dc_ackq_handed(struct dc_ackq *q, int64_t seq, const uint8_t id[16],
                    uint64_t now_ms)
{
    if (q->recent_len == q->recent_cap && q->recent_cap < DC_ACKQ_RECENT_MAX) {
        unsigned first =
            q->recent_cap ? (q->recent_next + q->recent_cap - q->recent_len) %
                                q->recent_cap
                          : 0;
        if (dc_ack_ring_grow(&q->recent, &q->recent_cap, first, q->recent_len,
                             q->recent_cap ? q->recent_cap * 2 : DC_ACKQ_MIN) ==
            0)
            q->recent_next = q->recent_len;
    }
    if (q->recent_cap == 0)
        return; /* no memory: the agent resends, the duplicate gets acked */
    struct dc_ack *a = &q->recent[q->recent_next];
    a->seq = seq;
    a->at_ms = now_ms;
    memcpy(a->id, id, 16);
    q->recent_next = (q->recent_next + 1) % q->recent_cap;
    if (q->recent_len < q->recent_cap)
        q->recent_len++;
}

void dc_ackq_requeue(struct dc_ackq *q, uint64_t now_ms)
{
    /* Only those handed in the socket's last moments can have died with
     * it; older ones had long left. */
    unsigned first =
        q->recent_cap
            ? (q->recent_next + q->recent_cap - q->recent_len) % q->recent_cap
            : 0;
    unsigned old = 0;
    while (old < q->recent_len &&
           q->recent[(first + old) % q->recent_cap].at_ms + DC_ACKQ_RECENT_MS <
               now_ms)
        old++;
    unsigned recent = q->recent_len - old;
    unsigned n = recent + q->len;
    unsigned skip = n > DC_ACKQ_MAX ? n - DC_ACKQ_MAX : 0;
    q->recent_len = 0;
    if (recent == 0 || dc_ackq_reserve(q, n - skip) != 0)
        return; /* no memory: the agent resends, duplicates get acked */
    /* The waiting ones move up; the handed ones go in front of them. */
    unsigned keep_recent = recent > skip ? recent - skip : 0;
    unsigned drop_wait = skip > recent ? skip - recent : 0;
    q->head = (q->head + drop_wait) % q->cap;
    q->len -= drop_wait;
    unsigned from = (first + old + (recent - keep_recent)) % q->recent_cap;
    for (unsigned i = keep_recent; i-- > 0;) {
        q->head = (q->head + q->cap - 1) % q->cap;
        q->wait[q->head] = q->recent[(from + i) % q->recent_cap];
        q->len++;
    }
}
