/*
 * dc_reorder.c - see dc_reorder.h.
 *
 * Every kept seq lies in [expected, expected + cap), so seq % cap is a
 * unique slot; growing doubles cap (up to DC_REORDER_MAX) and moves the
 * slots to their new places.
 */
#include "dc_reorder.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

#define DC_REORDER_MIN 256

struct dc_reorder_slot {
    int64_t seq; /* -1 = empty */
    uint8_t *frame;
    size_t len;
};

void dc_reorder_init(struct dc_reorder *r)
{
    memset(r, 0, sizeof(*r));
}

static int dc_reorder_grow(struct dc_reorder *r, size_t need)
{
    size_t cap = r->cap ? r->cap : DC_REORDER_MIN;
    while (cap < need)
        cap *= 2;
    cap = GW_MIN(cap, (size_t)DC_REORDER_MAX);
    struct dc_reorder_slot *slots = malloc(cap * sizeof(*slots));
    if (slots == NULL)
        return GW_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        slots[i] = (struct dc_reorder_slot){.seq = -1};
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].seq >= 0)
            slots[(uint64_t)r->slots[i].seq % cap] = r->slots[i];
    free(r->slots);
    r->slots = slots;
    r->cap = cap;
    return 0;
}

int dc_reorder_put(struct dc_reorder *r, int64_t expected, int64_t seq,
                   const uint8_t *frame, size_t len)
{
    if (seq - expected >= DC_REORDER_MAX)
        return GW_ELIMIT;
    if ((size_t)(seq - expected) >= r->cap) {
        int rc = dc_reorder_grow(r, (size_t)(seq - expected) + 1);
        if (rc != 0)
            return rc;
    }
    struct dc_reorder_slot *s = &r->slots[(uint64_t)seq % r->cap];
    if (s->seq == seq)
        return 0; /* a duplicate: the copy we hold is as good */
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return GW_ENOMEM;
    memcpy(copy, frame, len);
    if (s->seq >= 0)
        free(s->frame); /* stale: below expected, never taken */
    else
        r->n++;
    *s = (struct dc_reorder_slot){.seq = seq, .frame = copy, .len = len};
    return 0;
}

int dc_reorder_holds(const struct dc_reorder *r, int64_t seq)
{
    return r->n > 0 && r->slots[(uint64_t)seq % r->cap].seq == seq;
}

uint8_t *dc_reorder_take(struct dc_reorder *r, int64_t seq, size_t *len)
{
    if (!dc_reorder_holds(r, seq))
        return NULL;
    struct dc_reorder_slot *s = &r->slots[(uint64_t)seq % r->cap];
    uint8_t *f = s->frame;
    *len = s->len;
    *s = (struct dc_reorder_slot){.seq = -1};
    r->n--;
    return f;
}

void dc_reorder_free(struct dc_reorder *r)
{
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].seq >= 0)
            free(r->slots[i].frame);
    free(r->slots);
    memset(r, 0, sizeof(*r));
}
