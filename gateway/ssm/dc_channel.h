/*
 * dc_channel.h - one Session Manager data channel: the WebSocket, the
 * OpenDataChannel token, the handshake, and the reliability layer
 * (sequence numbers, acks, retransmission with an RTT-based timeout, an
 * ordered incoming buffer) with pacing under the service's message limit.
 *
 * The state survives a dropped WebSocket: dc_channel_connect() on a new
 * URL/token (after ResumeSession) reopens, sends a new OpenDataChannel and
 * retransmits what was not acknowledged.
 */
#ifndef SSMGATE_DC_CHANNEL_H
#define SSMGATE_DC_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dc_msg.h"
#include "ws.h"

struct stats;

/* Reported to the agent; >= 1.1.70 selects smux for port forwards,
 * > 1.2.331.0 turns the agent's smux keepalive off, and 1.2.764.0 is the
 * oldest plugin AWS still supports. */
#define DC_CLIENT_VERSION "1.2.779.0"

struct dc_channel;

struct dc_channel_cb {
    /* Handshake complete: hs says what the agent runs. */
    void (*on_ready)(void *arg, const struct dc_handshake_request *hs);
    /* Output payload bytes, in order. */
    void (*on_data)(void *arg, const uint8_t *p, size_t n);
    void (*on_flag)(void *arg, uint32_t flag);
    /* dc_channel_write returned short earlier; there is room now. */
    void (*on_writable)(void *arg);
    /* A new WebSocket (after dc_channel_connect on a resumed session) is
     * open and OpenDataChannel went out; optional. */
    void (*on_reopened)(void *arg);
    /* The WebSocket dropped; the channel keeps its state for a resume. */
    void (*on_lost)(void *arg, const char *reason);
    /* The channel ended for good (channel_closed, handshake failure). */
    void (*on_closed)(void *arg, const char *reason);
    /* Optional: the oldest unacknowledged message moved on (the agent
     * acknowledged more); see dc_channel_acked. */
    void (*on_acked)(void *arg);
};

struct dc_channel_opts {
    int message_rate; /* data messages per second; 0 = unpaced */
    int payload_size; /* bytes per data message */
    int handshake_timeout_ms;
    unsigned long long log_id; /* the owner's number, in every log line */
    struct stats *stats;       /* the per-second high mark; NULL = none */
};

struct dc_channel_stats {
    uint64_t msgs_out, msgs_in, bytes_out, bytes_in, resends;
    uint64_t pauses; /* pause_publication received */
    int max_unacked;
    int max_per_second; /* the most sequenced sends in one second (paced) */
};

int dc_channel_new(uv_loop_t *loop, struct ws_ctx *ws,
                   const struct dc_channel_opts *opts,
                   const struct dc_channel_cb *cb, void *arg,
                   struct dc_channel **out);
/* Opens (or reopens) the WebSocket and sends OpenDataChannel with token. */
int dc_channel_connect(struct dc_channel *ch, const char *url,
                       const struct ws_header *headers, size_t n_headers,
                       const char *token);
/*
 * Queues up to n bytes as Output messages. Returns the bytes taken (less
 * than n when the unacknowledged window is full or the service paused
 * publication: wait for on_writable), or GW_ECLOSED.
 */
ssize_t dc_channel_write(struct dc_channel *ch, const uint8_t *p, size_t n);
int dc_channel_send_flag(struct dc_channel *ch, uint32_t flag);
/* Stops/starts handing data to the owner (local side backpressure); the
 * WebSocket pauses too once DC_RX_HOLD messages wait. */
void dc_channel_pause_rx(struct dc_channel *ch, int paused);
/* Asks for on_writable once the window has room again. */
void dc_channel_want_writable(struct dc_channel *ch);
/* Bytes dc_channel_write would take right now (whole messages); 0 while
 * the service paused publication. */
size_t dc_channel_room(const struct dc_channel *ch);
/* Messages sent but not acknowledged yet. */
int dc_channel_unacked(const struct dc_channel *ch);
/* The sequence number of the newest message queued (-1: none yet), and
 * whether the agent acknowledged every message up to seq. */
int64_t dc_channel_last_seq(const struct dc_channel *ch);
int dc_channel_acked(const struct dc_channel *ch, int64_t seq);
/* The smoothed round trip of the acks (ms; 100 before the first). */
double dc_channel_srtt(const struct dc_channel *ch);
void dc_channel_stats(const struct dc_channel *ch,
                      struct dc_channel_stats *out);
/* Closes the WebSocket and frees; no callbacks after this returns. */
void dc_channel_free(struct dc_channel *ch);
/* The same, but what is queued still goes out (closing flags): the
 * channel stays, silent, until the agent acknowledged everything (or a
 * second passed), then closes; done runs then (or at once). */
void dc_channel_free_after_flush(struct dc_channel *ch, void (*done)(void *),
                                 void *arg);

#endif
