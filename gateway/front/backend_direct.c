/*
 * backend_direct.c - resolve, connect (with a timeout), then move bytes.
 *
 * States: RESOLVING -> CONNECTING -> OPEN -> CLOSED. The stream is freed
 * only after close() was called AND every handle's close callback ran;
 * until close() the owner gets callbacks, after it none.
 */
#include "backend_direct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "txq.h"

#define DIRECT_READ_CAP (64 * 1024)
#define DIRECT_TX_CAP   (128 * 1024)

enum direct_state {
    DIRECT_RESOLVING,
    DIRECT_CONNECTING,
    DIRECT_OPEN,
    DIRECT_CLOSED,
};

struct backend_stream {
    enum direct_state state;
    uv_loop_t *loop;
    uv_getaddrinfo_t resolve_req;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct txq tx;
    uint8_t *rbuf;
    const struct backend_cb *cb;
    void *arg;
    struct addrinfo *addrs; /* from getaddrinfo; tried in order */
    struct addrinfo *next_addr;
    int failed; /* the failure was reported; report once */
    char host[TUNNEL_HOST_MAX];
    uint16_t port;
    int resolving;  /* the getaddrinfo request is outstanding */
    int handles;    /* open uv handles (tcp, timer) */
    int want_drain; /* write() returned short */
    int want_shut;  /* shutdown() asked; do it when tx is empty */
    int shut_sent;
    int paused;
    int reading;
};

static void direct_maybe_free(struct backend_stream *s)
{
    if (s->state != DIRECT_CLOSED || s->handles > 0 || s->resolving)
        return;
    if (s->addrs != NULL)
        uv_freeaddrinfo(s->addrs);
    txq_free(&s->tx);
    free(s->rbuf);
    free(s);
}

static void direct_handle_closed(uv_handle_t *h)
{
    struct backend_stream *s = h->data;
    s->handles--;
    direct_maybe_free(s);
}

static void direct_fail(struct backend_stream *s, int err, const char *why)
{
    if (s->state == DIRECT_CLOSED || s->failed)
        return;
    s->failed = 1;
    uv_timer_stop(&s->timer);
    if (s->state == DIRECT_OPEN)
        s->cb->on_error(s->arg, err, why);
    else
        s->cb->on_open(s->arg, err, why);
}

/* Maps a connect/resolve error to what the SOCKS reply should say. */
static int direct_map_error(int uverr)
{
    switch (uverr) {
    case UV_ECONNREFUSED:
        return GW_EREFUSED;
    case UV_ETIMEDOUT:
        return GW_ETIMEOUT;
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_EAI_NONAME:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
    case UV_EAI_NODATA:
        return GW_EUNREACHABLE;
    default:
        return GW_EIO;
    }
}

static void direct_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct backend_stream *s = h->data;
    b->base = (char *)s->rbuf;
    b->len = DIRECT_READ_CAP;
}

static void direct_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct backend_stream *s = st->data;
    if (s->state != DIRECT_OPEN || n == 0)
        return;
    if (n == UV_EOF) {
        uv_read_stop(st);
        s->reading = 0;
        s->cb->on_eof(s->arg);
        return;
    }
    if (n < 0) {
        direct_fail(s, direct_map_error((int)n), uv_strerror((int)n));
        return;
    }
    s->cb->on_data(s->arg, s->rbuf, (size_t)n);
}

static void direct_set_reading(struct backend_stream *s)
{
    int want = !s->paused && s->state == DIRECT_OPEN;
    if (want && !s->reading) {
        if (uv_read_start((uv_stream_t *)&s->tcp, direct_alloc, direct_read) ==
            0)
            s->reading = 1;
    } else if (!want && s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
}

static void direct_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the peer's EOF or an error ends the stream */
}

static void direct_maybe_shutdown(struct backend_stream *s)
{
    if (!s->want_shut || s->shut_sent || txq_pending(&s->tx) > 0)
        return;
    s->shut_sent = 1;
    uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, direct_shutdown_done);
}

static void direct_tx_written(struct txq *q, int status, void *arg)
{
    struct backend_stream *s = arg;
    if (s->state != DIRECT_OPEN)
        return;
    if (status < 0) {
        direct_fail(s, GW_EIO, uv_strerror(status));
        return;
    }
    if (s->want_drain && txq_room(q) > 0) {
        s->want_drain = 0;
        s->cb->on_drain(s->arg);
    }
    direct_maybe_shutdown(s);
}

static void direct_try_connect(struct backend_stream *s);

static void direct_connected(uv_connect_t *req, int status)
{
    struct backend_stream *s = req->handle->data;
    if (status == UV_ECANCELED || s->state == DIRECT_CLOSED)
        return;
    if (status != 0) {
        direct_fail(s, direct_map_error(status), uv_strerror(status));
        return;
    }
    uv_timer_stop(&s->timer);
    uv_tcp_nodelay(&s->tcp, 1);
    s->state = DIRECT_OPEN;
    direct_set_reading(s);
    s->cb->on_open(s->arg, 0, NULL);
}

static void direct_try_connect(struct backend_stream *s)
{
    /* The first address only: a handle cannot be reused before its close
     * callback, and loopback/one-address targets are what direct serves. */
    struct addrinfo *ai = s->next_addr;
    int rc =
        uv_tcp_connect(&s->connect_req, &s->tcp, ai->ai_addr, direct_connected);
    if (rc != 0)
        direct_fail(s, direct_map_error(rc), uv_strerror(rc));
}

static void direct_resolved(uv_getaddrinfo_t *req, int status,
                            struct addrinfo *res)
{
    struct backend_stream *s =
        CONTAINER_OF(req, struct backend_stream, resolve_req);
    s->resolving = 0;
    if (s->state == DIRECT_CLOSED) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        direct_maybe_free(s);
        return;
    }
    if (status != 0) {
        direct_fail(s, direct_map_error(status), uv_strerror(status));
        return;
    }
    s->addrs = s->next_addr = res;
    s->state = DIRECT_CONNECTING;
    direct_try_connect(s);
}

static void direct_timeout(uv_timer_t *t)
{
    struct backend_stream *s = t->data;
    direct_fail(s, GW_ETIMEOUT, "connect timed out");
}

static int direct_open(void *ctx, uv_loop_t *loop,
                       const struct tunnel_spec *spec,
                       const struct backend_cb *cb, void *arg,
                       struct backend_stream **out)
{
    const struct backend_direct_ctx *dctx = ctx;
    struct backend_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return GW_ENOMEM;
    s->rbuf = malloc(DIRECT_READ_CAP);
    if (s->rbuf == NULL || txq_init(&s->tx, (uv_stream_t *)&s->tcp,
                                    DIRECT_TX_CAP, direct_tx_written, s) != 0) {
        free(s->rbuf);
        free(s);
        return GW_ENOMEM;
    }
    s->loop = loop;
    s->cb = cb;
    s->arg = arg;
    snprintf(s->host, sizeof(s->host), "%s", spec->host);
    s->port = spec->port;
    uv_tcp_init(loop, &s->tcp);
    uv_timer_init(loop, &s->timer);
    s->tcp.data = s->timer.data = s;
    s->handles = 2;
    char port[8];
    snprintf(port, sizeof(port), "%u", spec->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_ADDRCONFIG};
    int rc = uv_getaddrinfo(loop, &s->resolve_req, direct_resolved, s->host,
                            port, &hints);
    if (rc != 0) {
        s->state = DIRECT_CLOSED;
        uv_close((uv_handle_t *)&s->tcp, direct_handle_closed);
        uv_close((uv_handle_t *)&s->timer, direct_handle_closed);
        return direct_map_error(rc);
    }
    s->resolving = 1;
    uv_timer_start(&s->timer, direct_timeout,
                   (uint64_t)(dctx ? dctx->connect_timeout_ms : 30000), 0);
    *out = s;
    return 0;
}

static ssize_t direct_write(struct backend_stream *s, const uint8_t *p,
                            size_t n)
{
    if (s->state != DIRECT_OPEN)
        return GW_ECLOSED;
    ssize_t taken = txq_write(&s->tx, p, n);
    if (taken >= 0 && (size_t)taken < n)
        s->want_drain = 1;
    return taken < 0 ? GW_EIO : taken;
}

static int direct_shutdown(struct backend_stream *s)
{
    s->want_shut = 1;
    direct_maybe_shutdown(s);
    return 0;
}

static void direct_pause(struct backend_stream *s)
{
    s->paused = 1;
    direct_set_reading(s);
}

static void direct_resume(struct backend_stream *s)
{
    s->paused = 0;
    direct_set_reading(s);
}

static void direct_close(struct backend_stream *s)
{
    if (s->state == DIRECT_CLOSED)
        return;
    s->state = DIRECT_CLOSED;
    if (s->resolving)
        uv_cancel((uv_req_t *)&s->resolve_req);
    uv_close((uv_handle_t *)&s->tcp, direct_handle_closed);
    uv_close((uv_handle_t *)&s->timer, direct_handle_closed);
}

const struct backend_ops backend_direct_ops = {
    .name = "direct",
    .open = direct_open,
    .write = direct_write,
    .shutdown = direct_shutdown,
    .pause = direct_pause,
    .resume = direct_resume,
    .close = direct_close,
};
