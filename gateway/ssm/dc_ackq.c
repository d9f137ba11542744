/*
 * dc_ackq.c - see dc_ackq.h.
 */
#include "dc_ackq.h"

#include <string.h>

void dc_ackq_init(struct dc_ackq *q)
{
    memset(q, 0, sizeof(*q));
}

int dc_ackq_push(struct dc_ackq *q, int64_t seq, const uint8_t id[16])
{
    if (q->len == DC_ACKQ_WAIT)
        return -1;
    struct dc_ack *a = &q->wait[(q->head + q->len++) % DC_ACKQ_WAIT];
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
    q->head = (q->head + 1) % DC_ACKQ_WAIT;
    q->len--;
}

void dc_ackq_handed(struct dc_ackq *q, int64_t seq, const uint8_t id[16])
{
    struct dc_ack *a = &q->recent[q->recent_next];
    a->seq = seq;
    memcpy(a->id, id, 16);
    q->recent_next = (q->recent_next + 1) % DC_ACKQ_RECENT;
    if (q->recent_len < DC_ACKQ_RECENT)
        q->recent_len++;
}

void dc_ackq_requeue(struct dc_ackq *q)
{
    struct dc_ack all[DC_ACKQ_RECENT + DC_ACKQ_WAIT];
    unsigned n = 0;
    unsigned first =
        (q->recent_next + DC_ACKQ_RECENT - q->recent_len) % DC_ACKQ_RECENT;
    for (unsigned i = 0; i < q->recent_len; i++)
        all[n++] = q->recent[(first + i) % DC_ACKQ_RECENT];
    for (unsigned i = 0; i < q->len; i++)
        all[n++] = q->wait[(q->head + i) % DC_ACKQ_WAIT];
    unsigned skip = n > DC_ACKQ_WAIT ? n - DC_ACKQ_WAIT : 0;
    memcpy(q->wait, all + skip, (n - skip) * sizeof(all[0]));
    q->head = 0;
    q->len = n - skip;
    q->recent_len = 0;
}
