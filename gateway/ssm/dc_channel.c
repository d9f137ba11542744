/*
 * dc_channel.c - see dc_channel.h.
 *
 * Outgoing: every sequenced message (handshake response, data, flags)
 * lives in a ring slot, encoded once, from its send until its ack; the
 * ring is the window, so a full ring is backpressure, never eviction.
 * Slots are allocated once per channel. Acks are selective; the oldest
 * unacked message is resent per 100 ms tick once its RTO (RFC 6298 style:
 * 1/8 and 1/4 gains, 10 ms granularity, 1 s cap) has passed.
 * Incoming: in-order messages are processed at once; later ones wait in a
 * bounded reorder buffer (dc_reorder.h, acked when stored); duplicates are
 * re-acked so a lost ack cannot make the agent resend forever. While the
 * owner takes no data (pause_rx) the socket is still read, and what comes
 * waits in the reorder buffer, acked, up to DC_RX_HOLD messages: acks for
 * our sends, pause/start and a recycle's close frame keep arriving through
 * a short stall of one slow local reader. Only beyond that is the socket
 * itself paused (TCP backpressure towards the agent).
 * Pacing (dc_pace.h) covers every sequenced send, resends too; acks never
 * wait. pause_publication holds them all and reports no room, so the owner
 * stops reading; acks and receiving go on until start_publication.
 */
#include "dc_channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "buf.h"
#include "dc_ackq.h"
#include "dc_hs.h"
#include "dc_pace.h"
#include "dc_reorder.h"
#include "defer.h"
#include "log.h"
#include "secret.h"
#include "stats.h"

#define DC_WINDOW      256
#define DC_TICK_MS     100
#define DC_RTO_INIT_MS 200.0
#define DC_RTT_INIT_MS 100.0
#define DC_RTO_MAX_MS  1000.0
#define DC_CLOCK_G_MS  10.0
#define DC_DRAIN_MS    1000 /* closing flags: wait this long for acks */
#define DC_RX_HOLD     1024 /* messages kept while the owner takes none */
/* Paced data waits in our ring, not in the socket's queue: a queue filled
 * while the socket was blocked would leave as one burst, past the rate. */
#define DC_WS_DEPTH   32
#define DC_GAP_LOG_MS 1000 /* a longer recovery from a loss is logged */
#define DC_PACE_BATCH 12   /* messages per wake-up when pacing holds a queue */
#define DC_RESEND_BATCH                                                        \
    32 /* lost messages resent per tick beyond the oldest                      \
        */

enum dc_state {
    DC_IDLE,      /* no socket yet */
    DC_OPENING,   /* WebSocket connecting */
    DC_HANDSHAKE, /* OpenDataChannel sent; waiting for the agent */
    DC_READY,     /* HandshakeComplete received */
    DC_LOST,      /* socket dropped; state kept for a resume */
    DC_CLOSED,    /* ended for good */
};

struct dc_slot {
    int64_t seq;
    uint8_t *frame; /* from dc_queue until its ack */
    size_t len;
    uint64_t last_sent_ms;
    int sent;
    int acked;
    int resent;
};

struct dc_channel {
    uv_loop_t *loop;
    struct ws_ctx *ws_ctx;
    struct ws *ws;
    const struct dc_channel_cb *cb;
    void *arg;
    struct dc_channel_opts opts;
    enum dc_state state;
    int ready_once;
    uint8_t client_id[16];
    struct dc_ids ids;
    char *token;

    /* outgoing */
    size_t frame_cap;      /* the largest message taken */
    struct dc_slot *slots; /* DC_WINDOW, only while messages are unacked */
    int64_t tail_seq;      /* oldest unacked */
    int64_t send_seq;      /* next to hand to the socket */
    int64_t next_seq;      /* next to assign */
    int64_t high_acked; /* the newest acked: unacked ones below it are lost */
    int want_writable;
    double rtt, rttv, rto;
    struct dc_pace pace_q;
    int pub_paused; /* pause_publication until start_publication */

    /* incoming */
    struct dc_ackq acks;
    int64_t expected;
    struct dc_reorder reorder;
    struct dc_handshake_request hs;

    uv_timer_t tick, pace, hs_timer;
    int handles;
    int rx_paused; /* the owner takes no data */
    int ws_held;   /* ...and DC_RX_HOLD wait: the socket is paused too */
    struct defer rx_resume; /* drains the reorder buffer after a pause */
    /* dc_channel_free_after_flush: waiting for the last acks */
    void (*drain_done)(void *);
    void *drain_arg;
    int draining;
    struct dc_channel_stats stats;
    /* A gap (a message lost, later ones kept): since when, and how many
     * resends filled it so far. */
    uint64_t gap_since_ms;
    unsigned gap_fills;
};

static uint64_t wall_ms(void)
{
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static struct dc_slot *slot_of(struct dc_channel *ch, int64_t seq)
{
    return &ch->slots[seq % DC_WINDOW];
}

static uint8_t *frame_of(struct dc_channel *ch, int64_t seq)
{
    return slot_of(ch, seq)->frame;
}

/* A frame lives from its queueing to its ack, in its own allocation: a
 * window of preallocated slots gets touched slot by slot as messages
 * pass and stays resident for an idle tunnel. */
static void dc_slot_release(struct dc_slot *s)
{
    free(s->frame);
    s->frame = NULL;
}

static void dc_drain_finish(struct dc_channel *ch);

static const char *const dc_state_names[] = {
    [DC_IDLE] = "idle",           [DC_OPENING] = "opening",
    [DC_HANDSHAKE] = "handshake", [DC_READY] = "ready",
    [DC_LOST] = "lost",           [DC_CLOSED] = "closed",
};

/* Every change of state goes through here (one line at debug level). */
static void dc_set_state(struct dc_channel *ch, enum dc_state to,
                         const char *why)
{
    if (ch->state == to)
        return;
    log_debug("dc %llu: state %s -> %s (%s)", ch->opts.log_id,
              dc_state_names[ch->state], dc_state_names[to], why);
    ch->state = to;
}

static void dc_close_for_good(struct dc_channel *ch, const char *reason)
{
    if (ch->draining) {
        dc_drain_finish(ch);
        return;
    }
    if (ch->state == DC_CLOSED)
        return;
    dc_set_state(ch, DC_CLOSED, reason ? reason : "closed");
    uv_timer_stop(&ch->tick);
    uv_timer_stop(&ch->pace);
    uv_timer_stop(&ch->hs_timer);
    if (ch->ws != NULL) {
        ws_close(ch->ws);
        ch->ws = NULL;
    }
    ch->cb->on_closed(ch->arg, reason);
}

/* ---- sending ---- */

/* Encodes and hands one ack to the socket; GW_EAGAIN when its queue is
 * full. */
static int dc_write_ack(struct dc_channel *ch, const uint8_t msg_id[16],
                        int64_t seq)
{
    uint8_t frame[DC_MSG_OVERHEAD + 256];
    /* Acks go to output_stream_data only; the type comes from our list. */
    size_t jlen = dc_ack_format((char *)frame + DC_MSG_OVERHEAD, 256,
                                DC_TYPE_OUTPUT, msg_id, seq);
    if (jlen == 0)
        return 0;
    uint8_t id[16];
    dc_ids_next(&ch->ids, id);
    size_t n = dc_msg_encode(frame, DC_TYPE_ACK, 0, 3, id, wall_ms(), 0,
                             frame + DC_MSG_OVERHEAD, (uint32_t)jlen);
    int rc = ws_send(ch->ws, frame, n, 1);
    if (rc == 0)
        dc_ackq_handed(&ch->acks, seq, msg_id, uv_now(ch->loop));
    return rc;
}

/* Acks waiting for socket room go first, before any data: an agent
 * waiting for them would otherwise stall and resend. */
static void dc_rx_hold_check(struct dc_channel *ch);

static int dc_flush_acks(struct dc_channel *ch)
{
    const struct dc_ack *a;
    int rc = 0;
    while (ch->ws != NULL && (a = dc_ackq_peek(&ch->acks)) != NULL) {
        if (dc_write_ack(ch, a->id, a->seq) != 0) {
            rc = GW_EAGAIN; /* the socket's on_writable resumes us */
            break;
        }
        dc_ackq_pop(&ch->acks);
    }
    dc_rx_hold_check(ch);
    return rc;
}

/* No socket (a resume on the way) or no room: it waits for the next. */
static void dc_send_ack(struct dc_channel *ch, const struct dc_msg *m)
{
    if (ch->ws != NULL && dc_ackq_peek(&ch->acks) == NULL &&
        dc_write_ack(ch, m->id, m->seq) == 0)
        return;
    if (dc_ackq_push(&ch->acks, m->seq, m->id) != 0)
        log_debug("dc %llu: ack of %lld dropped (%llu so far)", ch->opts.log_id,
                  (long long)m->seq, (unsigned long long)ch->acks.dropped);
    dc_flush_acks(ch);
}

static void dc_flush(struct dc_channel *ch);

/* One sequenced message went out: the pace history, and its high mark
 * for the counters when it rises (rarely: at most once per message of
 * the busiest second). */
static void dc_sent(struct dc_channel *ch)
{
    dc_pace_sent(&ch->pace_q, uv_hrtime());
    stats_dc_rate(ch->opts.stats, (uint64_t)ch->pace_q.max_1s);
}

static void dc_pace_fired(uv_timer_t *t)
{
    dc_flush(t->data);
}

/* 1 when pacing lets a message go now; else the pace timer is armed.
 * A queue at the service's pace is sent DC_PACE_BATCH messages per wake-up
 * (one TLS write, one loop pass), not one each millisecond: a wake-up
 * costs more than a message. Until the batch is due, the acks that wake
 * us meanwhile send nothing, so the batch stays whole. */
static int dc_may_send(struct dc_channel *ch)
{
    if (uv_is_active((uv_handle_t *)&ch->pace))
        return 0;
    uint64_t now = uv_hrtime();
    if (dc_pace_wait(&ch->pace_q, now) == 0)
        return 1;
    int64_t queued = ch->next_seq - ch->send_seq;
    int n = queued < DC_PACE_BATCH ? (int)queued : DC_PACE_BATCH;
    uint64_t wait = dc_pace_wait_n(&ch->pace_q, now, n);
    uv_timer_start(&ch->pace, dc_pace_fired, wait / 1000000 + 1, 0);
    return 0;
}

static void dc_tick(uv_timer_t *t);

/* The retransmission tick runs only while something is unacknowledged:
 * a thousand idle tunnels must not wake the process ten times a second. */
static void dc_arm_tick(struct dc_channel *ch)
{
    if (!uv_is_active((uv_handle_t *)&ch->tick))
        uv_timer_start(&ch->tick, dc_tick, DC_TICK_MS, DC_TICK_MS);
}

/* Hands queued messages to the socket, as pacing and the socket allow. */
static void dc_flush(struct dc_channel *ch)
{
    if (dc_flush_acks(ch) != 0 || ch->pub_paused)
        return;
    while (ch->ws != NULL && ch->send_seq < ch->next_seq &&
           (ch->state == DC_READY || ch->state == DC_HANDSHAKE)) {
        struct dc_slot *s = slot_of(ch, ch->send_seq);
        if (s->acked) {
            ch->send_seq++;
            continue;
        }
        /* Only the handshake answer may go out before HandshakeComplete:
         * the agent would ack and drop anything else. */
        if (ch->state != DC_READY && s->seq != 0)
            break;
        if (ws_backlogged(ch->ws, DC_WS_DEPTH) || !dc_may_send(ch))
            break;
        if (ws_send(ch->ws, frame_of(ch, ch->send_seq), s->len, 1) != 0)
            break; /* the socket's on_writable restarts us */
        dc_sent(ch);
        if (s->sent)
            ch->stats.resends++;
        s->sent = 1;
        s->last_sent_ms = uv_now(ch->loop);
        ch->stats.msgs_out++;
        ch->send_seq++;
        dc_arm_tick(ch);
    }
}

/* Puts one sequenced message into the ring; 0 or GW_EAGAIN when full. */
static int dc_queue(struct dc_channel *ch, uint32_t payload_type,
                    const uint8_t *p, size_t n)
{
    if (ch->next_seq - ch->tail_seq >= DC_WINDOW)
        return GW_EAGAIN;
    if (DC_MSG_OVERHEAD + n > ch->frame_cap)
        return GW_ETOO_BIG;
    uint8_t *frame = malloc(DC_MSG_OVERHEAD + n);
    if (frame == NULL)
        return GW_ENOMEM;
    if (ch->slots == NULL &&
        (ch->slots = malloc(DC_WINDOW * sizeof(*ch->slots))) == NULL) {
        free(frame);
        return GW_ENOMEM;
    }
    int64_t seq = ch->next_seq++;
    struct dc_slot *s = slot_of(ch, seq);
    uint8_t id[16];
    dc_ids_next(&ch->ids, id);
    memset(s, 0, sizeof(*s));
    s->seq = seq;
    s->frame = frame;
    s->len = dc_msg_encode(frame, DC_TYPE_INPUT, seq, 0, id, wall_ms(),
                           payload_type, p, (uint32_t)n);
    int unacked = (int)(ch->next_seq - ch->tail_seq);
    if (unacked > ch->stats.max_unacked)
        ch->stats.max_unacked = unacked;
    return 0;
}

ssize_t dc_channel_write(struct dc_channel *ch, const uint8_t *p, size_t n)
{
    if (ch->state == DC_CLOSED)
        return GW_ECLOSED;
    size_t taken = 0;
    if (ch->pub_paused)
        n = 0; /* nothing new is taken while the service pauses us */
    size_t chunk_max = (size_t)ch->opts.payload_size;
    while (taken < n) {
        size_t chunk = GW_MIN(n - taken, chunk_max);
        if (dc_queue(ch, DC_PT_OUTPUT, p + taken, chunk) != 0)
            break;
        taken += chunk;
    }
    ch->stats.bytes_out += taken;
    if (taken < n || ch->pub_paused)
        ch->want_writable = 1;
    dc_flush(ch);
    return (ssize_t)taken;
}

int dc_channel_send_flag(struct dc_channel *ch, uint32_t flag)
{
    uint8_t p[4];
    p[0] = (uint8_t)(flag >> 24);
    p[1] = (uint8_t)(flag >> 16);
    p[2] = (uint8_t)(flag >> 8);
    p[3] = (uint8_t)flag;
    int rc = dc_queue(ch, DC_PT_FLAG, p, 4);
    if (rc == 0)
        dc_flush(ch);
    return rc;
}

/* ---- acks and retransmission ---- */

/* The owner waits for room (last: on_writable may free the channel). */
static void dc_maybe_writable(struct dc_channel *ch)
{
    if (ch->want_writable && dc_channel_room(ch) > 0) {
        ch->want_writable = 0;
        ch->cb->on_writable(ch->arg);
    }
}

static void dc_on_ack(struct dc_channel *ch, int64_t seq)
{
    if (seq < ch->tail_seq || seq >= ch->next_seq)
        return;
    struct dc_slot *s = slot_of(ch, seq);
    if (s->acked || s->seq != seq)
        return;
    s->acked = 1;
    dc_slot_release(s);
    if (seq > ch->high_acked)
        ch->high_acked = seq;
    if (s->sent) {
        double r = (double)(uv_now(ch->loop) - s->last_sent_ms);
        ch->rttv =
            0.75 * ch->rttv + 0.25 * (ch->rtt > r ? ch->rtt - r : r - ch->rtt);
        ch->rtt = 0.875 * ch->rtt + 0.125 * r;
        double var =
            4.0 * ch->rttv > DC_CLOCK_G_MS ? 4.0 * ch->rttv : DC_CLOCK_G_MS;
        ch->rto = ch->rtt + var;
        if (ch->rto > DC_RTO_MAX_MS)
            ch->rto = DC_RTO_MAX_MS;
    }
    int64_t tail = ch->tail_seq;
    while (ch->tail_seq < ch->next_seq && slot_of(ch, ch->tail_seq)->acked)
        ch->tail_seq++;
    if (ch->tail_seq == ch->next_seq) { /* an idle channel holds no window */
        free(ch->slots);
        ch->slots = NULL;
    }
    if (ch->send_seq < ch->tail_seq)
        ch->send_seq = ch->tail_seq;
    if (ch->draining) {
        if (ch->tail_seq >= ch->next_seq)
            dc_drain_finish(ch);
        return;
    }
    if (ch->tail_seq != tail && ch->cb->on_acked != NULL)
        ch->cb->on_acked(ch->arg);
    dc_maybe_writable(ch);
}

/* Resends one sequenced message; 0, or not sent now (pacing, socket). */
static int dc_resend(struct dc_channel *ch, int64_t seq)
{
    struct dc_slot *s = slot_of(ch, seq);
    if (dc_pace_wait(&ch->pace_q, uv_hrtime()) != 0)
        return GW_EAGAIN; /* the next tick tries again */
    if (ws_send(ch->ws, frame_of(ch, seq), s->len, 1) != 0)
        return GW_EAGAIN;
    dc_sent(ch);
    s->last_sent_ms = uv_now(ch->loop);
    s->resent++;
    ch->stats.resends++;
    log_debug("dc %llu: resent seq %lld (rto %.0f ms)", ch->opts.log_id,
              (long long)seq, ch->rto);
    return 0;
}

static int dc_resend_due(struct dc_channel *ch, const struct dc_slot *s)
{
    return !s->acked && s->sent &&
           (double)(uv_now(ch->loop) - s->last_sent_ms) > ch->rto;
}

/*
 * The oldest unacked message past its RTO is resent, as both official
 * sides do. Acks are selective, so an unacked message below a newer acked
 * one was lost (or its ack was): those are resent too, up to
 * DC_RESEND_BATCH a tick, where the official clients wait for each to
 * become the oldest: a 100 ms tick per lost message or ack, seconds of a
 * stalled upload after a burst of them. The agent keeps what comes early
 * and acks what it had already.
 */
static void dc_tick(uv_timer_t *t)
{
    struct dc_channel *ch = t->data;
    if (ch->tail_seq >= ch->send_seq) {
        /* All acknowledged: the tick stops (the next send rearms it) once
         * the pacing history has left its span and is freed too. */
        dc_pace_trim(&ch->pace_q, uv_hrtime());
        if (!dc_pace_holds(&ch->pace_q))
            uv_timer_stop(t);
        return;
    }
    if (ch->ws == NULL || ch->pub_paused)
        return;
    if (!dc_resend_due(ch, slot_of(ch, ch->tail_seq)) ||
        dc_resend(ch, ch->tail_seq) != 0)
        return;
    int budget = DC_RESEND_BATCH;
    int64_t end = GW_MIN(ch->high_acked, ch->send_seq);
    for (int64_t q = ch->tail_seq + 1; q < end && budget > 0; q++) {
        if (!dc_resend_due(ch, slot_of(ch, q)))
            continue;
        if (ws_backlogged(ch->ws, DC_WS_DEPTH) || dc_resend(ch, q) != 0)
            break;
        budget--;
    }
}

/* ---- receiving ---- */

static void dc_handshake_timeout(uv_timer_t *t)
{
    struct dc_channel *ch = t->data;
    dc_close_for_good(ch, "the agent did not complete the handshake in "
                          "time (is the SSM Agent running and current?)");
}

static void dc_deliver(struct dc_channel *ch, const struct dc_msg *m)
{
    const char *why = NULL;
    switch (m->payload_type) {
    case DC_PT_HANDSHAKE_REQUEST: {
        if (dc_handshake_request_parse(m->payload, m->payload_len, &ch->hs,
                                       &why) != 0) {
            dc_close_for_good(ch, why);
            return;
        }
        char *json = dc_handshake_response_json(&ch->hs, DC_CLIENT_VERSION,
                                                dc_hs_is_port(&ch->hs));
        if (json != NULL) {
            dc_queue(ch, DC_PT_HANDSHAKE_RESPONSE, (const uint8_t *)json,
                     strlen(json));
            free(json);
            dc_flush(ch);
        }
        char reason[GW_REASON_MAX];
        if (dc_hs_refusal(&ch->hs, reason, sizeof(reason)))
            dc_close_for_good(ch, reason);
        return;
    }
    case DC_PT_HANDSHAKE_COMPLETE: {
        char msg[GW_REASON_MAX];
        dc_handshake_complete_parse(m->payload, m->payload_len, msg,
                                    sizeof(msg));
        if (msg[0] != '\0')
            log_info("dc %llu: agent says: %s", ch->opts.log_id, msg);
        uv_timer_stop(&ch->hs_timer);
        dc_set_state(ch, DC_READY, "handshake complete");
        if (!ch->ready_once) {
            ch->ready_once = 1;
            ch->cb->on_ready(ch->arg, &ch->hs);
        }
        dc_flush(ch);
        return;
    }
    case DC_PT_OUTPUT:
        ch->stats.bytes_in += m->payload_len;
        if (m->payload_len > 0)
            ch->cb->on_data(ch->arg, m->payload, m->payload_len);
        return;
    case DC_PT_FLAG:
        if (m->payload_len == 4)
            ch->cb->on_flag(ch->arg, buf_load_u32(m->payload));
        return;
    default:
        return; /* stderr, exit codes: not used by port sessions */
    }
}

/* Delivers what waited for the expected message while the owner takes
 * more (thousands may wait); the rest when it resumes (pause_rx 0). */
static void dc_drain_reorder(struct dc_channel *ch)
{
    while (ch->state != DC_CLOSED && !ch->rx_paused) {
        size_t flen;
        uint8_t *f = dc_reorder_take(&ch->reorder, ch->expected, &flen);
        if (f == NULL)
            break;
        struct dc_msg next;
        const char *why;
        ch->expected++;
        if (dc_msg_decode(f, flen, &next, &why) == 0) {
            ch->stats.msgs_in++;
            dc_deliver(ch, &next);
        }
        free(f);
    }
}

/* The socket pauses only when DC_RX_HOLD wait for an owner that takes
 * none (short stalls of a local reader leave it read), or when the acks
 * owed pile up behind a socket with no room: reading on would lose acks. */
static void dc_rx_hold_check(struct dc_channel *ch)
{
    int hold = (ch->rx_paused && ch->reorder.n >= DC_RX_HOLD) ||
               dc_ackq_backlogged(&ch->acks);
    if (hold == ch->ws_held)
        return;
    ch->ws_held = hold;
    if (ch->ws != NULL)
        ws_rx_pause(ch->ws, hold);
}

/* The agent resends only its oldest unacked message per 100 ms tick, so
 * K messages lost at once hold every stream of the session for about
 * K x 100 ms; a user who sees a tunnel freeze learns why here. */
static void dc_gap_check(struct dc_channel *ch)
{
    if (ch->gap_since_ms == 0 || ch->reorder.n > 0)
        return;
    uint64_t took = uv_now(ch->loop) - ch->gap_since_ms;
    if (took >= DC_GAP_LOG_MS)
        log_info("dc %llu: %u messages lost by the service came back one "
                 "by one in %.1f s (the agent resends one per 100 ms)",
                 ch->opts.log_id, ch->gap_fills, (double)took / 1000.0);
    ch->gap_since_ms = 0;
}

static void dc_on_output(struct dc_channel *ch, const struct dc_msg *m,
                         const uint8_t *frame, size_t len)
{
    /* The expected one may be kept already, its delivery held by rx
     * backpressure: then this is a duplicate too. */
    if (m->seq < ch->expected || dc_reorder_holds(&ch->reorder, m->seq)) {
        dc_send_ack(ch, m); /* a duplicate: our ack was lost */
        return;
    }
    if (m->seq > ch->expected && ch->gap_since_ms == 0) {
        ch->gap_since_ms = uv_now(ch->loop);
        ch->gap_fills = 0;
    }
    /* Ahead of a gap, or the owner takes nothing now: kept, acked. */
    if (m->seq > ch->expected || ch->rx_paused) {
        if (dc_reorder_put(&ch->reorder, ch->expected, m->seq, frame, len) != 0)
            return; /* too far ahead (or no memory): no ack, it comes again */
        ch->gap_fills += m->seq == ch->expected && ch->gap_since_ms != 0;
        dc_send_ack(ch, m);
        dc_rx_hold_check(ch);
        return;
    }
    /* In order. Handshake messages are acked before processing. */
    dc_send_ack(ch, m);
    ch->expected++;
    ch->stats.msgs_in++;
    ch->gap_fills += ch->gap_since_ms != 0;
    dc_deliver(ch, m);
    dc_drain_reorder(ch);
    dc_gap_check(ch);
}

static void dc_rx_resumed(struct defer *d)
{
    struct dc_channel *ch = CONTAINER_OF(d, struct dc_channel, rx_resume);
    dc_drain_reorder(ch);
    dc_gap_check(ch);
}

/* While paused nothing sequenced goes out and the owner sees no room. */
static void dc_set_paused(struct dc_channel *ch, int paused)
{
    if (ch->pub_paused == paused)
        return;
    log_debug("dc %llu: %s", ch->opts.log_id,
              paused ? "paused by the service" : "resumed");
    ch->pub_paused = paused;
    if (paused) {
        ch->stats.pauses++;
        uv_timer_stop(&ch->pace);
        return;
    }
    dc_flush(ch);
    if (!ch->draining)
        dc_maybe_writable(ch);
}

static void dc_ws_message(void *arg, const uint8_t *data, size_t len,
                          int binary)
{
    struct dc_channel *ch = arg;
    struct dc_msg m;
    const char *why;
    if (dc_msg_decode(data, len, &m, &why) != 0) {
        log_debug("dc %llu: dropped a bad message: %s", ch->opts.log_id, why);
        return;
    }
    if (strcmp(m.type, DC_TYPE_OUTPUT) == 0) {
        dc_on_output(ch, &m, data, len);
    } else if (strcmp(m.type, DC_TYPE_ACK) == 0) {
        int64_t seq;
        if (dc_ack_parse(m.payload, m.payload_len, &seq) == 0)
            dc_on_ack(ch, seq);
    } else if (strcmp(m.type, DC_TYPE_CLOSED) == 0) {
        /* The agent's words, whole, with room for our prefix. */
        char out[GW_REASON_MAX - 64], reason[GW_REASON_MAX];
        dc_channel_closed_parse(m.payload, m.payload_len, out, sizeof(out));
        snprintf(reason, sizeof(reason), "the service closed the session%s%s",
                 out[0] ? ": " : "", out);
        dc_close_for_good(ch, reason);
    } else if (strcmp(m.type, DC_TYPE_PAUSE_PUB) == 0) {
        dc_set_paused(ch, 1);
    } else if (strcmp(m.type, DC_TYPE_START_PUB) == 0) {
        dc_set_paused(ch, 0);
    }
}

/* ---- the socket ---- */

static void dc_ws_open(void *arg)
{
    struct dc_channel *ch = arg;
    char ids[37];
    dc_uuid_str(ch->client_id, ids);
    char *open = dc_open_json(ch->token, ids, DC_CLIENT_VERSION);
    if (open == NULL || ws_send(ch->ws, open, strlen(open), 0) != 0) {
        free(open);
        dc_close_for_good(ch, "cannot send OpenDataChannel");
        return;
    }
    secret_free_str(open);
    dc_set_state(ch, ch->ready_once ? DC_READY : DC_HANDSHAKE,
                 ch->ready_once ? "resumed" : "socket open");
    /* Resend everything not acknowledged, in order. */
    ch->send_seq = ch->tail_seq;
    for (int64_t s = ch->tail_seq; s < ch->next_seq; s++)
        if (slot_of(ch, s)->sent)
            slot_of(ch, s)->resent++;
    if (ch->ws_held)
        ws_rx_pause(ch->ws, 1);
    /* A new socket starts unpaused (as the agent does). Through the
     * setter: an owner that saw no room while paused waits to hear of
     * room, and with nothing in flight no ack would ever tell it. */
    if (ch->pub_paused)
        dc_set_paused(ch, 0);
    else
        dc_flush(ch);
    if (ch->ready_once && ch->ws != NULL && ch->cb->on_reopened != NULL)
        ch->cb->on_reopened(ch->arg);
}

static void dc_ws_writable(void *arg)
{
    dc_flush(arg);
}

static void dc_ws_close(void *arg, const char *reason)
{
    struct dc_channel *ch = arg;
    ch->ws = NULL;
    dc_ackq_requeue(&ch->acks, uv_now(ch->loop));
    if (ch->draining) {
        dc_drain_finish(ch);
        return;
    }
    if (ch->state == DC_CLOSED)
        return;
    dc_set_state(ch, DC_LOST, "socket closed");
    uv_timer_stop(&ch->pace);
    ch->cb->on_lost(ch->arg, reason);
}

static const struct ws_cb dc_ws_cb = {
    .on_open = dc_ws_open,
    .on_message = dc_ws_message,
    .on_writable = dc_ws_writable,
    .on_close = dc_ws_close,
};

int dc_channel_connect(struct dc_channel *ch, const char *url,
                       const struct ws_header *headers, size_t n_headers,
                       const char *token)
{
    if (ch->state == DC_CLOSED)
        return GW_ECLOSED;
    if (ch->ws != NULL) {
        ws_close(ch->ws);
        ch->ws = NULL;
        dc_ackq_requeue(&ch->acks, uv_now(ch->loop));
    }
    secret_free_str(ch->token);
    ch->token = strdup(token);
    if (ch->token == NULL)
        return GW_ENOMEM;
    dc_set_state(ch, DC_OPENING, "connecting");
    int rc =
        ws_connect(ch->ws_ctx, url, headers, n_headers, &dc_ws_cb, ch, &ch->ws);
    if (rc != 0) {
        ch->ws = NULL;
        dc_set_state(ch, DC_LOST, "cannot connect");
        return rc;
    }
    if (!ch->ready_once)
        uv_timer_start(&ch->hs_timer, dc_handshake_timeout,
                       (uint64_t)ch->opts.handshake_timeout_ms, 0);
    return 0;
}

int dc_channel_new(uv_loop_t *loop, struct ws_ctx *ws,
                   const struct dc_channel_opts *opts,
                   const struct dc_channel_cb *cb, void *arg,
                   struct dc_channel **out)
{
    struct dc_channel *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return GW_ENOMEM;
    ch->opts = *opts;
    if (ch->opts.payload_size <= 0)
        ch->opts.payload_size = 1024;
    if (ch->opts.handshake_timeout_ms <= 0)
        ch->opts.handshake_timeout_ms = 20000;
    /* Room for our data messages and for the handshake answer. */
    ch->frame_cap =
        DC_MSG_OVERHEAD + GW_MAX((size_t)ch->opts.payload_size, (size_t)4096);
    ch->loop = loop;
    ch->ws_ctx = ws;
    ch->cb = cb;
    ch->arg = arg;
    ch->rtt = DC_RTT_INIT_MS;
    ch->rto = DC_RTO_INIT_MS;
    dc_reorder_init(&ch->reorder);
    dc_ackq_init(&ch->acks);
    if (dc_pace_init(&ch->pace_q, ch->opts.message_rate, uv_hrtime()) != 0) {
        free(ch);
        return GW_ENOMEM;
    }
    dc_uuid_new(ch->client_id);
    dc_ids_init(&ch->ids);
    uv_timer_init(loop, &ch->tick);
    uv_timer_init(loop, &ch->pace);
    uv_timer_init(loop, &ch->hs_timer);
    ch->tick.data = ch->pace.data = ch->hs_timer.data = ch;
    ch->handles = 3;
    ch->rx_resume.cb = dc_rx_resumed;
    *out = ch;
    return 0;
}

void dc_channel_pause_rx(struct dc_channel *ch, int paused)
{
    ch->rx_paused = paused;
    if (!paused && ch->reorder.n > 0)
        defer_queue(ch->loop, &ch->rx_resume);
    dc_rx_hold_check(ch);
}

void dc_channel_want_writable(struct dc_channel *ch)
{
    ch->want_writable = 1;
}

size_t dc_channel_room(const struct dc_channel *ch)
{
    if (ch->pub_paused)
        return 0;
    int64_t free_slots = DC_WINDOW - (ch->next_seq - ch->tail_seq);
    return free_slots > 0 ? (size_t)free_slots * (size_t)ch->opts.payload_size
                          : 0;
}

int dc_channel_unacked(const struct dc_channel *ch)
{
    return (int)(ch->next_seq - ch->tail_seq);
}

int64_t dc_channel_last_seq(const struct dc_channel *ch)
{
    return ch->next_seq - 1;
}

int dc_channel_acked(const struct dc_channel *ch, int64_t seq)
{
    return seq < ch->tail_seq;
}

double dc_channel_srtt(const struct dc_channel *ch)
{
    return ch->rtt;
}

void dc_channel_stats(const struct dc_channel *ch, struct dc_channel_stats *o)
{
    *o = ch->stats;
    o->max_per_second = ch->pace_q.max_1s;
}

static void dc_handle_closed(uv_handle_t *h)
{
    struct dc_channel *ch = h->data;
    if (--ch->handles > 0)
        return;
    dc_reorder_free(&ch->reorder);
    dc_ackq_free(&ch->acks);
    dc_pace_free(&ch->pace_q);
    secret_free_str(ch->token);
    for (int64_t q = ch->tail_seq; q < ch->next_seq; q++)
        dc_slot_release(slot_of(ch, q));
    free(ch->slots);
    free(ch);
}

void dc_channel_free(struct dc_channel *ch)
{
    if (ch == NULL)
        return;
    dc_set_state(ch, DC_CLOSED, "freed");
    defer_cancel(&ch->rx_resume);
    if (ch->ws != NULL) {
        ws_close(ch->ws);
        ch->ws = NULL;
    }
    uv_close((uv_handle_t *)&ch->tick, dc_handle_closed);
    uv_close((uv_handle_t *)&ch->pace, dc_handle_closed);
    uv_close((uv_handle_t *)&ch->hs_timer, dc_handle_closed);
}

static void dc_drain_expired(uv_timer_t *t)
{
    dc_drain_finish(t->data);
}

static void dc_drain_finish(struct dc_channel *ch)
{
    void (*done)(void *) = ch->drain_done;
    void *arg = ch->drain_arg;
    ch->draining = 0;
    ch->drain_done = NULL;
    dc_channel_free(ch);
    if (done != NULL)
        done(arg);
}

/* The unused parameters are the callback types' (-Wno-unused-parameter). */
static void dc_silent_data(void *arg, const uint8_t *p, size_t n)
{
}

static void dc_silent_flag(void *arg, uint32_t flag)
{
}

static void dc_silent(void *arg)
{
}

static void dc_silent_reason(void *arg, const char *reason)
{
}

/* The owner is gone: nobody hears the channel while it drains. */
static const struct dc_channel_cb dc_silent_cb = {
    .on_data = dc_silent_data,
    .on_flag = dc_silent_flag,
    .on_writable = dc_silent,
    .on_lost = dc_silent_reason,
    .on_closed = dc_silent_reason,
};

void dc_channel_free_after_flush(struct dc_channel *ch, void (*done)(void *),
                                 void *arg)
{
    if (ch->ws == NULL || ch->state != DC_READY ||
        ch->tail_seq >= ch->next_seq) {
        dc_channel_free(ch);
        if (done != NULL)
            done(arg);
        return;
    }
    /* Wait (a second at most) until the agent acknowledged everything,
     * the closing flags included: then they surely arrived. */
    ch->draining = 1;
    ch->drain_done = done;
    ch->drain_arg = arg;
    ch->cb = &dc_silent_cb;
    ch->arg = NULL;
    uv_timer_start(&ch->hs_timer, dc_drain_expired, DC_DRAIN_MS, 0);
}
