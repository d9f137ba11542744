/*
 * pump.c - see pump.h. Two predicates decide everything:
 *   can_read_client: the backend took all we offered and the client has
 *                    not ended;
 *   remote must pause: the down queue has less room than one more burst.
 */
#include "pump.h"

#include <string.h>

#include "common.h"
#include "log.h"

#define PUMP_DOWN_HIGH (PUMP_DOWN_CAP / 2) /* pause when room below this */
#define PUMP_DOWN_LOW  (PUMP_DOWN_CAP / 8) /* resume when pending below */

static void pump_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void pump_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b);

int pump_init(struct pump *p, uv_stream_t *client, pump_done_cb *done)
{
    memset(p, 0, sizeof(*p));
    p->client = client;
    p->done = done;
    if (buf_init(&p->up, PUMP_UP_CAP) != 0)
        return GW_ENOMEM;
    if (txq_init(&p->down, client, PUMP_DOWN_CAP, pump_down_written, p) != 0) {
        buf_free(&p->up);
        return GW_ENOMEM;
    }
    return 0;
}

void pump_free(struct pump *p)
{
    buf_free(&p->up);
    txq_free(&p->down);
}

static void pump_finish(struct pump *p, int err, const char *reason)
{
    if (p->finished)
        return;
    p->finished = 1;
    if (p->reading) {
        uv_read_stop(p->client);
        p->reading = 0;
    }
    p->done(p, err, reason);
}

static void pump_check_done(struct pump *p)
{
    if (p->up_shut && p->down_shut_done)
        pump_finish(p, 0, NULL);
}

int pump_reply(struct pump *p, const void *data, size_t len)
{
    ssize_t n = txq_write(&p->down, data, len);
    if (n < 0)
        return (int)n;
    return (size_t)n == len ? 0 : GW_ETOO_BIG;
}

static void pump_set_reading(struct pump *p, int on)
{
    if (on == p->reading || p->finished)
        return;
    if (on) {
        if (uv_read_start(p->client, pump_alloc_cb, pump_read_cb) == 0)
            p->reading = 1;
    } else {
        uv_read_stop(p->client);
        p->reading = 0;
    }
}

/* Offers the message's head, then up (as far as the message goes) to the
 * backend; true when the backend took everything offered. */
static int pump_write_up(struct pump *p)
{
    while (p->head_len > 0) {
        ssize_t taken = p->ops->write(p->stream, p->head, p->head_len);
        if (taken < 0) {
            pump_finish(p, (int)taken, "writing to the tunnel failed");
            return 0;
        }
        p->head += taken;
        p->head_len -= (size_t)taken;
        p->bytes_up += (uint64_t)taken;
        if (taken == 0)
            return 0;
    }
    for (;;) {
        size_t avail = buf_len(&p->up);
        if (p->frame != NULL) {
            if (!p->msg_end) {
                int end = 0;
                ssize_t k = p->frame(p->frame_arg, buf_rptr(&p->up) + p->framed,
                                     avail - p->framed, &end);
                if (k < 0) {
                    pump_finish(p, (int)k, "malformed request body");
                    return 0;
                }
                p->framed += (size_t)k;
                p->msg_end = end;
            }
            avail = p->framed;
        }
        if (avail == 0)
            return 1;
        ssize_t taken = p->ops->write(p->stream, buf_rptr(&p->up), avail);
        if (taken < 0) {
            pump_finish(p, (int)taken, "writing to the tunnel failed");
            return 0;
        }
        buf_consume(&p->up, (size_t)taken);
        p->bytes_up += (uint64_t)taken;
        if (p->frame != NULL)
            p->framed -= (size_t)taken;
        /* A backend may take a message's worth at a time; only a call
         * that takes nothing means it is full (it will call on_drain). */
        if (taken == 0)
            return 0;
    }
}

/* Offers the up buffer to the backend; blocks the client when it is full. */
static void pump_flush_up(struct pump *p)
{
    if (p->stream == NULL || p->finished)
        return;
    if (!pump_write_up(p)) {
        if (!p->finished) {
            p->up_blocked = 1;
            pump_set_reading(p, 0);
        }
        return;
    }
    p->up_blocked = 0;
    if (p->frame != NULL && p->msg_end) {
        pump_set_reading(p, 0); /* what follows is the next message's */
        return;
    }
    if (p->client_eof) {
        if (!p->up_shut) {
            p->up_shut = 1;
            p->ops->shutdown(p->stream);
            pump_check_done(p);
        }
        return;
    }
    pump_set_reading(p, 1);
}

/* Per-stream state back to the start, for a new stream. */
static void pump_reset_stream(struct pump *p, const struct backend_ops *ops,
                              struct backend_stream *stream)
{
    p->ops = ops;
    p->stream = stream;
    p->up_blocked = p->up_shut = 0;
    p->remote_eof = p->down_shut = p->down_shut_done = 0;
    p->remote_paused = p->finished = 0;
    p->frame = NULL;
    p->frame_arg = NULL;
    p->head = NULL;
    p->head_len = p->framed = 0;
    p->msg_end = 0;
}

void pump_start(struct pump *p, const struct backend_ops *ops,
                struct backend_stream *stream, const uint8_t *early,
                size_t early_len)
{
    pump_reset_stream(p, ops, stream);
    if (early_len > 0)
        buf_put(&p->up, early, early_len);
    pump_flush_up(p);
}

void pump_start_message(struct pump *p, const struct backend_ops *ops,
                        struct backend_stream *stream, const uint8_t *head,
                        size_t head_len, pump_frame_fn *frame, void *arg)
{
    pump_reset_stream(p, ops, stream);
    p->head = head;
    p->head_len = head_len;
    p->frame = frame;
    p->frame_arg = arg;
    pump_flush_up(p);
}

int pump_message_sent(const struct pump *p)
{
    return p->frame != NULL && p->msg_end && p->framed == 0 && p->head_len == 0;
}

void pump_detach(struct pump *p)
{
    pump_set_reading(p, 0);
    p->stream = NULL;
    p->remote_paused = 0;
    p->up_blocked = 0;
    p->up_shut = 1;
}

static void pump_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    pump_alloc(h->data, b);
}

static void pump_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    pump_client_read(s->data, n);
}

void pump_alloc(struct pump *p, uv_buf_t *b)
{
    uint8_t *w;
    size_t room = buf_reserve_all(&p->up, &w);
    b->base = (char *)w;
    b->len = room;
}

void pump_client_read(struct pump *p, ssize_t n)
{
    if (n == 0)
        return;
    if (n == UV_EOF) {
        p->client_eof = 1;
        pump_set_reading(p, 0);
        pump_flush_up(p);
        return;
    }
    if (n < 0) {
        pump_finish(p, (int)n, "client connection failed");
        return;
    }
    buf_commit(&p->up, (size_t)n);
    pump_flush_up(p);
}

static void pump_shutdown_done(uv_shutdown_t *req, int status)
{
    struct pump *p = CONTAINER_OF(req, struct pump, shutdown_req);
    if (status == UV_ECANCELED)
        return;
    p->down_shut_done = 1;
    pump_check_done(p);
}

/* Half-closes the client once every remote byte reached the kernel. */
static void pump_maybe_shutdown_client(struct pump *p)
{
    if (!p->remote_eof || p->down_shut || txq_pending(&p->down) > 0)
        return;
    p->down_shut = 1;
    if (uv_shutdown(&p->shutdown_req, p->client, pump_shutdown_done) != 0) {
        p->down_shut_done = 1;
        pump_check_done(p);
    }
}

void pump_down_written(struct txq *q, int status, void *arg)
{
    struct pump *p = arg;
    if (status < 0) {
        pump_finish(p, status, "writing to the client failed");
        return;
    }
    if (p->remote_paused && p->stream != NULL &&
        txq_pending(q) < PUMP_DOWN_LOW) {
        p->remote_paused = 0;
        p->ops->resume(p->stream);
    }
    pump_maybe_shutdown_client(p);
}

void pump_backend_data(struct pump *p, const uint8_t *data, size_t n)
{
    if (p->finished)
        return;
    ssize_t taken = txq_queue(&p->down, data, n);
    if (taken < 0) {
        pump_finish(p, (int)taken, "writing to the client failed");
        return;
    }
    if ((size_t)taken < n) {
        /* The backend ignored pause for more than a burst: refuse to drop
         * bytes silently. */
        pump_finish(p, GW_ETOO_BIG, "tunnel overran the client queue");
        return;
    }
    p->bytes_down += n;
    if (!p->remote_paused && p->stream != NULL &&
        txq_room(&p->down) < PUMP_DOWN_HIGH) {
        p->remote_paused = 1;
        p->ops->pause(p->stream);
    }
}

void pump_backend_eof(struct pump *p)
{
    p->remote_eof = 1;
    pump_maybe_shutdown_client(p);
}

void pump_backend_drain(struct pump *p)
{
    if (p->up_blocked)
        pump_flush_up(p);
}
