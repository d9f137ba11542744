/*
 * dc_ackq.h - the acks of one data channel on their way out.
 *
 * Two rings: acks waiting for room in the socket's queue, and the last
 * ones handed to the socket. When a socket closes, what it was handed may
 * never have left; the agent resends only its oldest unacked message per
 * 100 ms tick, so each lost ack would cost a tick. dc_ackq_requeue puts the
 * handed ones back in front of the waiting ones for the next socket.
 */
#ifndef SSMGATE_DC_ACKQ_H
#define SSMGATE_DC_ACKQ_H

#include <stdint.h>

#define DC_ACKQ_WAIT   512 /* waiting for room in the socket queue */
#define DC_ACKQ_RECENT 128 /* handed to the socket, kept for a requeue */

struct dc_ack {
    int64_t seq;
    uint8_t id[16];
};

struct dc_ackq {
    struct dc_ack wait[DC_ACKQ_WAIT];
    unsigned head, len;
    struct dc_ack recent[DC_ACKQ_RECENT];
    unsigned recent_next, recent_len;
};

void dc_ackq_init(struct dc_ackq *q);
/* Queues an ack to send later: 0, or -1 when full (the agent resends
 * that message; its duplicate gets acked then). */
int dc_ackq_push(struct dc_ackq *q, int64_t seq, const uint8_t id[16]);
/* The oldest waiting ack, or NULL. */
const struct dc_ack *dc_ackq_peek(const struct dc_ackq *q);
/* Drops the oldest waiting ack (after it was handed to the socket). */
void dc_ackq_pop(struct dc_ackq *q);
/* Remembers an ack handed to the socket. */
void dc_ackq_handed(struct dc_ackq *q, int64_t seq, const uint8_t id[16]);
/* The socket closed: the handed ones wait again, before the others; the
 * oldest give way when all do not fit. */
void dc_ackq_requeue(struct dc_ackq *q);

#endif
