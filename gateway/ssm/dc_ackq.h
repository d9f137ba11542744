/*
 * dc_ackq.h - the acks of one data channel on their way out.
 *
 * Acks are selective (one per message, no cumulative form), and the agent
 * resends only its oldest unacked message per 100 ms tick: every ack lost
 * costs a tick, and a few hundred lost put the session's one real gap
 * behind minutes of resends of messages we already have. So none is
 * dropped: acks wait here while the socket has no room (the ring grows on
 * demand, small for an idle tunnel), the reader stops reading before it
 * fills (dc_ackq_backlogged), and the last ones handed to a socket that
 * then closed go again on the next (dc_ackq_requeue).
 */
#ifndef SSMGATE_DC_ACKQ_H
#define SSMGATE_DC_ACKQ_H

#include <stdint.h>

#define DC_ACKQ_MAX  4096 /* waiting for room in the socket queue */
#define DC_ACKQ_HOLD 2048 /* this many waiting: stop reading the socket */
/* Acks handed to a socket in its last DC_ACKQ_RECENT_MS may have died with
 * it (a peer that stopped reading, then closed): up to DC_ACKQ_RECENT_MAX
 * of those go again on the next one. */
#define DC_ACKQ_RECENT_MAX 4096
#define DC_ACKQ_RECENT_MS  3000

struct dc_ack {
    int64_t seq;
    uint64_t at_ms; /* when handed to the socket (recent ones) */
    uint8_t id[16];
};

struct dc_ackq {
    struct dc_ack *wait; /* ring of cap */
    unsigned cap, head, len;
    struct dc_ack *recent; /* ring of recent_cap, grown on demand */
    unsigned recent_cap, recent_next, recent_len;
    uint64_t dropped; /* pushes refused at DC_ACKQ_MAX (or no memory) */
};

void dc_ackq_init(struct dc_ackq *q);
void dc_ackq_free(struct dc_ackq *q);
/* Queues an ack to send later: 0, or -1 when full or out of memory (the
 * agent resends that message; its duplicate gets acked then). */
int dc_ackq_push(struct dc_ackq *q, int64_t seq, const uint8_t id[16]);
/* The oldest waiting ack, or NULL. */
const struct dc_ack *dc_ackq_peek(const struct dc_ackq *q);
/* Drops the oldest waiting ack (after it was handed to the socket). */
void dc_ackq_pop(struct dc_ackq *q);
/* 1 when DC_ACKQ_HOLD or more wait: read no more until they drain. */
int dc_ackq_backlogged(const struct dc_ackq *q);
/* Remembers an ack handed to the socket at now_ms. */
void dc_ackq_handed(struct dc_ackq *q, int64_t seq, const uint8_t id[16],
                    uint64_t now_ms);
/* The socket closed at now_ms: the ones handed in its last
 * DC_ACKQ_RECENT_MS wait again, before the others; the oldest give way
 * when all do not fit. */
void dc_ackq_requeue(struct dc_ackq *q, uint64_t now_ms);

#endif
