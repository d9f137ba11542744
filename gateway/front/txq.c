/*
 * txq.c - see txq.h. The invariant: bufs[flight] is only read (by the
 * pending uv_write) while writing is set; everything new lands in the
 * other buffer.
 */
#include "txq.h"

#include <string.h>

#include "common.h"

static void txq_flush(struct txq *q);

/* A pass's pieces go out with uv_try_write: a uv_write that completes at
 * once still re-arms the socket in epoll when libuv drains its queue, a
 * syscall per pass for nothing. Only what the kernel refuses waits in a
 * uv_write. */
static void txq_flush_later(struct defer *d)
{
    struct txq *q = CONTAINER_OF(d, struct txq, later);
    struct buf *b = &q->bufs[q->flight];
    if (!q->writing && buf_len(b) > 0) {
        uv_buf_t ub = uv_buf_init((char *)buf_rptr(b), (unsigned)buf_len(b));
        int rc = uv_try_write(q->stream, &ub, 1);
        if (rc > 0)
            buf_consume(b, (size_t)rc);
        if (txq_pending(q) == 0) {
            buf_reset(b);
            if (q->written != NULL)
                q->written(q, 0, q->arg);
            return;
        }
    }
    txq_flush(q);
}

int txq_init(struct txq *q, uv_stream_t *stream, size_t cap,
             txq_written_cb *written, void *arg)
{
    memset(q, 0, sizeof(*q));
    if (buf_init(&q->bufs[0], cap) != 0)
        return GW_ENOMEM;
    if (buf_init(&q->bufs[1], cap) != 0) {
        buf_free(&q->bufs[0]);
        return GW_ENOMEM;
    }
    q->stream = stream;
    q->written = written;
    q->arg = arg;
    q->later.cb = txq_flush_later;
    return 0;
}

void txq_free(struct txq *q)
{
    defer_cancel(&q->later);
    buf_free(&q->bufs[0]);
    buf_free(&q->bufs[1]);
}

size_t txq_pending(const struct txq *q)
{
    return buf_len(&q->bufs[0]) + buf_len(&q->bufs[1]);
}

size_t txq_room(const struct txq *q)
{
    return buf_room(&q->bufs[q->writing ? 1 - q->flight : q->flight]);
}

static void txq_write_done(uv_write_t *req, int status)
{
    struct txq *q = CONTAINER_OF(req, struct txq, req);
    if (status == UV_ECANCELED)
        return; /* the stream was closed; q may already be gone */
    q->writing = 0;
    buf_reset(&q->bufs[q->flight]);
    if (status == 0) {
        q->flight = 1 - q->flight;
        txq_flush(q);
    }
    if (q->written != NULL)
        q->written(q, status, q->arg);
}

/* Starts a uv_write of whatever the fill buffer holds. */
static void txq_flush(struct txq *q)
{
    if (q->writing)
        return;
    struct buf *b = &q->bufs[q->flight];
    if (buf_len(b) == 0) {
        b = &q->bufs[1 - q->flight];
        if (buf_len(b) == 0)
            return;
        q->flight = 1 - q->flight;
    }
    uv_buf_t ub = uv_buf_init((char *)buf_rptr(b), (unsigned)buf_len(b));
    int rc = uv_write(&q->req, q->stream, &ub, 1, txq_write_done);
    if (rc == 0)
        q->writing = 1;
}

ssize_t txq_write(struct txq *q, const uint8_t *p, size_t n)
{
    size_t taken = 0;
    if (n == 0)
        return 0;
    if (!q->writing && txq_pending(q) == 0) {
        uv_buf_t ub = uv_buf_init((char *)p, (unsigned)n);
        int rc = uv_try_write(q->stream, &ub, 1);
        if (rc < 0 && rc != UV_EAGAIN)
            return rc;
        if (rc > 0)
            taken = (size_t)rc;
    }
    if (taken < n) {
        struct buf *fill = &q->bufs[q->writing ? 1 - q->flight : q->flight];
        size_t k = GW_MIN(n - taken, buf_room(fill));
        buf_put(fill, p + taken, k);
        taken += k;
        txq_flush(q);
    }
    q->bytes += taken;
    return (ssize_t)taken;
}

ssize_t txq_queue(struct txq *q, const uint8_t *p, size_t n)
{
    struct buf *fill = &q->bufs[q->writing ? 1 - q->flight : q->flight];
    if (n >= TXQ_COALESCE_MAX || buf_room(fill) < n) {
        txq_flush(q); /* what is queued goes first */
        return txq_write(q, p, n);
    }
    buf_put(fill, p, n);
    q->bytes += n;
    if (!q->writing)
        defer_queue(q->stream->loop, &q->later);
    return (ssize_t)n;
}
