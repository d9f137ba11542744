/*
 * dc_reorder.h - the incoming messages that arrived ahead of the one
 * expected, kept by sequence number until the gap fills. Sized like the
 * official plugin's incoming buffer (10 000 messages) so that a loss of a
 * few thousand messages (a WebSocket dropped mid-burst) recovers in one
 * round of resends; the index grows only as far ahead as messages really
 * arrive and each frame is one allocation, so an idle channel holds
 * nothing. Pure.
 */
#ifndef SSMGATE_DC_REORDER_H
#define SSMGATE_DC_REORDER_H

#include <stddef.h>
#include <stdint.h>

#define DC_REORDER_MAX 10000

struct dc_reorder_slot;

struct dc_reorder {
    struct dc_reorder_slot *slots; /* indexed by seq % cap */
    size_t cap;
    size_t n; /* frames held */
};

void dc_reorder_init(struct dc_reorder *r);
/* Keeps a copy of frame for seq (expected < seq): 0, GW_ELIMIT when seq is
 * DC_REORDER_MAX or more ahead (the sender resends it), GW_ENOMEM. */
int dc_reorder_put(struct dc_reorder *r, int64_t expected, int64_t seq,
                   const uint8_t *frame, size_t len);
/* 1 when a frame for seq is kept. */
int dc_reorder_holds(const struct dc_reorder *r, int64_t seq);
/* The frame kept for seq, now the caller's (free it), or NULL. */
uint8_t *dc_reorder_take(struct dc_reorder *r, int64_t seq, size_t *len);
void dc_reorder_free(struct dc_reorder *r);

#endif
