/*
 * pump.h - moves bytes between a client socket and a backend stream, both
 * ways, with backpressure and half-close.
 *
 *   client -> up (struct buf) -> backend write()   read the client only
 *                                                  while the backend takes
 *   backend on_data -> down (struct txq) -> client pause the backend while
 *                                                  down is over high water
 *
 * Each direction ends on its own: client EOF -> backend shutdown() once up
 * is flushed; backend EOF -> uv_shutdown(client) once down is flushed.
 * When both are done (or on any error) the owner's done callback runs.
 * Buffers are allocated once per pump; nothing is allocated per read.
 *
 * A plain HTTP proxy sends one message (a request) per backend stream:
 * pump_start_message sends a head the owner built, then client bytes only
 * while the owner's frame function says they belong to the message; the
 * rest waits in up for the next request, and the client is not read past
 * the message's end. The owner reads the response itself (httpfwd) and
 * hands it to pump_backend_data; pump_detach ends the stream's part and
 * the pump carries on for the next message.
 */
#ifndef SSMGATE_PUMP_H
#define SSMGATE_PUMP_H

#include <stdint.h>
#include <uv.h>

#include "backend.h"
#include "buf.h"
#include "txq.h"

#define PUMP_UP_CAP   (64 * 1024)
#define PUMP_DOWN_CAP (256 * 1024) /* per txq buffer (two of them) */

struct pump;

/* How many of the n client bytes at b belong to the message being sent
 * (n when it goes on, fewer when it ends among them: *end), or a negative
 * gw_err for bytes that cannot be framed. Called with n = 0 too. */
typedef ssize_t pump_frame_fn(void *arg, const uint8_t *b, size_t n, int *end);

/* err 0: both directions finished cleanly. Otherwise err/reason say why. */
typedef void pump_done_cb(struct pump *p, int err, const char *reason);

struct pump {
    uv_stream_t *client;
    const struct backend_ops *ops;
    struct backend_stream *stream; /* NULL until pump_start */
    struct buf up;
    struct txq down;
    uv_shutdown_t shutdown_req;
    pump_done_cb *done;
    int reading;    /* uv_read_start is active on the client */
    int up_blocked; /* backend took less than offered; wait on_drain */
    int client_eof; /* no more bytes from the client */
    int up_shut;    /* backend shutdown() called */
    int remote_eof; /* no more bytes from the backend */
    int down_shut;  /* uv_shutdown(client) issued */
    int down_shut_done;
    int remote_paused; /* we called ops->pause */
    int finished;      /* done was reported */
    uint64_t bytes_up, bytes_down;
    /* One message at a time (pump_start_message); frame NULL: a stream. */
    pump_frame_fn *frame;
    void *frame_arg;
    const uint8_t *head; /* the owner's; sent before the message's bytes */
    size_t head_len;
    size_t framed; /* bytes at the front of up that are the message's */
    int msg_end;   /* the message's last byte is framed */
};

/* Allocates the buffers. The down queue can carry a reply before start. */
int pump_init(struct pump *p, uv_stream_t *client, pump_done_cb *done);
void pump_free(struct pump *p);

/* Writes raw bytes to the client (SOCKS/HTTP replies). 0 or error. */
int pump_reply(struct pump *p, const void *data, size_t len);

/* Starts pumping; early holds client bytes already read past the request. */
void pump_start(struct pump *p, const struct backend_ops *ops,
                struct backend_stream *stream, const uint8_t *early,
                size_t early_len);

/* Starts one message on a new stream (see the top): head_len bytes of
 * head (kept by the owner until the next start) go first. The down queue
 * and up's bytes carry over from the last message. */
void pump_start_message(struct pump *p, const struct backend_ops *ops,
                        struct backend_stream *stream, const uint8_t *head,
                        size_t head_len, pump_frame_fn *frame, void *arg);
/* Whether every byte of the message went to the backend. */
int pump_message_sent(const struct pump *p);
/* The owner closed the stream: nothing more goes to it, the client is
 * not read; the down queue keeps draining to the client. */
void pump_detach(struct pump *p);

/* Client side, from the owner's libuv read callbacks. */
void pump_alloc(struct pump *p, uv_buf_t *b);
void pump_client_read(struct pump *p, ssize_t n);

/* Backend side, from the owner's backend_cb. */
void pump_backend_data(struct pump *p, const uint8_t *data, size_t n);
void pump_backend_eof(struct pump *p);
void pump_backend_drain(struct pump *p);

/* The down queue's written hook (an owner that wraps the hook calls it). */
void pump_down_written(struct txq *q, int status, void *arg);

#endif
