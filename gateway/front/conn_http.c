/*
 * conn_http.c - one forwarded request after another (see conn_http.h).
 *
 *   HTTP_REQUEST --absolute-form head--> ROUTE --> OPENING --> PUMP
 *        ^                                                      |
 *        +---- the response ended, both sides keep the connection
 *                                     else: flush, FIN, close --+
 *
 * The end of a response is seen inside the backend's data callback; what
 * follows (closing the stream, reading the next request, which may open
 * another stream) runs from the deferral queue, outside it.
 */
#include "conn_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "defer.h"
#include "http1.h"
#include "httpfwd.h"
#include "log.h"

struct conn_http {
    struct conn *c;
    struct http1_body body; /* the request's: where it ends */
    struct httpfwd_resp resp;
    struct defer done; /* the response ended or failed: what next */
    int outcome;       /* 0 going on, 1 ended, or a negative gw_err */
    char why[GW_REASON_MAX];
    unsigned requests; /* finished on this connection */
    /* The session of the last request served (its stream is closed): the
     * audit log's SessionId and instance for the connection. */
    struct backend_stream_info served;
    char method[16]; /* for the log: method and host, never the path */
    size_t head_len;
    uint8_t head[HTTPFWD_HEAD_OUT_MAX]; /* the rewritten request head */
};

struct buf *conn_input(struct conn *c)
{
    return c->http != NULL && c->http->requests > 0 ? &c->pump.up : &c->req;
}

int conn_http_idle(const struct conn *c)
{
    return c->http != NULL && c->http->requests > 0 &&
           buf_len(&c->pump.up) == 0;
}

static void conn_http_done(struct defer *d);

void conn_http_request(struct conn *c, struct buf *in,
                       const struct httpconnect_request *r)
{
    if (c->http == NULL) {
        c->http = calloc(1, sizeof(*c->http));
        if (c->http == NULL) {
            conn_refuse(c, TUNNEL_REFUSED, GW_ENOMEM, "out of memory");
            return;
        }
        c->http->c = c;
        c->http->done.cb = conn_http_done;
    }
    struct conn_http *h = c->http;
    h->head_len =
        httpfwd_request_head(buf_rptr(in), r, (char *)h->head, sizeof(h->head));
    if (h->head_len == 0) {
        conn_refuse_http(c, 431, "request head too large");
        return;
    }
    snprintf(h->method, sizeof(h->method), "%.*s", (int)r->method_len,
             (const char *)buf_rptr(in));
    buf_consume(in, r->head_len);
    http1_body_init(&h->body, r->body, r->body_len);
    httpfwd_resp_init(&h->resp, r);
    h->outcome = 0;
    h->why[0] = '\0';
    memset(&h->served, 0, sizeof(h->served));
    c->outcome = TUNNEL_ABORTED; /* until this request's stream opens */
    c->fwd = 1;
    conn_do_route(c, r->host, r->port);
}

/* pump_frame_fn: the request's body bytes, as its framing says. */
static ssize_t conn_http_frame(void *arg, const uint8_t *b, size_t n, int *end)
{
    struct conn_http *h = arg;
    ssize_t k = http1_body_scan(&h->body, b, n);
    *end = h->body.done;
    return k;
}

void conn_http_open(struct conn *c)
{
    struct conn_http *h = c->http;
    conn_set_state(c, CONN_PUMP);
    /* A first request's body bytes were read with its head: they join
     * what waits in up (nothing yet: the head was read into req). */
    if (buf_len(&c->req) > 0) {
        CHECK(buf_put(&c->pump.up, buf_rptr(&c->req), buf_len(&c->req)) == 0);
        buf_reset(&c->req);
    }
    pump_start_message(&c->pump, c->backend->ops, c->stream, h->head,
                       h->head_len, conn_http_frame, h);
}

/* The response ended (1) or failed: decided outside the callback. */
static void conn_http_end(struct conn *c, int outcome, const char *why)
{
    struct conn_http *h = c->http;
    if (h->outcome != 0)
        return;
    h->outcome = outcome;
    snprintf(h->why, sizeof(h->why), "%s", why ? why : "");
    defer_queue(c->loop, &h->done);
}

static void conn_http_emit(void *arg, const uint8_t *p, size_t n)
{
    struct conn *c = arg;
    pump_backend_data(&c->pump, p, n);
}

void conn_http_data(struct conn *c, const uint8_t *p, size_t n)
{
    const char *why = NULL;
    if (c->http->outcome != 0)
        return; /* past the response's end: dropped */
    int rc = httpfwd_resp_feed(&c->http->resp, p, n, conn_http_emit, c, &why);
    if (rc != 0 && c->state == CONN_PUMP)
        conn_http_end(c, rc, why);
}

void conn_http_eof(struct conn *c)
{
    const char *why = NULL;
    if (c->http->outcome != 0)
        return;
    conn_http_end(c, httpfwd_resp_eof(&c->http->resp, &why), why);
}

int conn_http_error(struct conn *c, int err, const char *reason)
{
    struct conn_http *h = c->http;
    if (h->outcome != 0 || h->resp.emitted > 0)
        return 0;
    conn_http_end(c, err, reason ? reason : gw_strerror(err));
    return 1;
}

/* A request that got no response: what the audit log and the counters
 * call it (the stream opened at once, so a refused destination comes as an
 * error on it, and a malformed or missing response is the origin's). */
static enum tunnel_outcome conn_http_unanswered(int err)
{
    return err == GW_ETIMEOUT ? TUNNEL_TIMEOUT
           : err == GW_EPROTO ? TUNNEL_BROKEN
                              : TUNNEL_REFUSED;
}

static void conn_http_done(struct defer *d)
{
    struct conn_http *h = CONTAINER_OF(d, struct conn_http, done);
    struct conn *c = h->c;
    const char *host = c->spec.target[0] ? c->spec.target : c->spec.host;
    if (c->state != CONN_PUMP)
        return;
    if (h->outcome < 0) {
        log_warn("conn %llu: %s %s:%u: %s", (unsigned long long)c->id,
                 h->method, host, c->spec.port, h->why);
        if (h->resp.emitted == 0) {
            conn_refuse(c, conn_http_unanswered(h->outcome), h->outcome,
                        h->why);
            return;
        }
        /* Part of the response went out: a reset tells the client it is
         * cut, where a clean end would not (a close-delimited body). */
        c->failed = 1;
        c->fail_err = h->outcome;
        conn_kill(c, h->why);
        return;
    }
    if (c->backend->ops->describe != NULL)
        c->backend->ops->describe(c->stream, &h->served);
    c->backend->ops->close(c->stream);
    c->stream = NULL;
    int sent = pump_message_sent(&c->pump);
    pump_detach(&c->pump);
    h->requests++;
    c->fwd = 0;
    log_debug("conn %llu: %s %s:%u -> %d (request %u)",
              (unsigned long long)c->id, h->method, host, c->spec.port,
              h->resp.status, h->requests);
    /* The next request needs a client that keeps the connection, a
     * self-delimited response, and the whole of this request sent (an
     * origin that answered before reading the body leaves the rest of it
     * where the next head would be). */
    if (!h->resp.keep || !sent || c->pump.client_eof || c->draining) {
        tunnel_reason_set(&c->close_reason, "%u HTTP request%s served",
                          h->requests, h->requests == 1 ? "" : "s");
        pump_backend_eof(&c->pump); /* FIN once flushed, then closed */
        return;
    }
    conn_next_request(c);
}

void conn_http_served(const struct conn *c, struct backend_stream_info *out)
{
    if (c->http != NULL)
        *out = c->http->served;
}

void conn_http_free(struct conn *c)
{
    if (c->http == NULL)
        return;
    defer_cancel(&c->http->done);
    free(c->http);
    c->http = NULL;
}
