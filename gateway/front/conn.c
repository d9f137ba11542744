/*
 * conn.c - the life of one client connection.
 *
 *   SNIFF --0x05--> S5_GREETING --(auth?)--> S5_AUTH --> S5_REQUEST --+
 *         --0x04--> S4_REQUEST ----------------------------------------+
 *         --else--> HTTP_REQUEST --------------------------------------+
 *   [forward] port ----------------------------------------------------+
 *                                                                      v
 *   ROUTE --> OPENING --on_open ok--> PUMP --pump done--> CLOSING
 *                    \--on_open error / timeout--> REFUSING --> CLOSING
 *
 * Libuv and backend callbacks only record what happened and call one of
 * the conn_do_* steps; every state change goes through conn_set_state,
 * which logs it. Nothing is freed before the last close callback.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "common.h"
#include "config.h"
#include "conn_http.h"
#include "front_reply.h"
#include "httpconnect.h"
#include "log.h"
#include "peer_uid.h"
#include "secret.h"

#define CONN_REQ_CAP  (HTTPCONNECT_HEAD_MAX + 512)
#define CONN_FLUSH_MS 2000 /* a dead tunnel's last bytes to a slow client */

static const char *const conn_state_names[] = {
    [CONN_SNIFF] = "sniff",
    [CONN_S5_GREETING] = "socks5-greeting",
    [CONN_S5_AUTH] = "socks5-auth",
    [CONN_S5_REQUEST] = "socks5-request",
    [CONN_S4_REQUEST] = "socks4-request",
    [CONN_HTTP_REQUEST] = "http-request",
    [CONN_ROUTE] = "route",
    [CONN_OPENING] = "opening",
    [CONN_PUMP] = "pump",
    [CONN_REFUSING] = "refusing",
    [CONN_CLOSING] = "closing",
};

void conn_set_state(struct conn *c, enum conn_state next)
{
    log_debug("conn %llu: %s -> %s", (unsigned long long)c->id,
              conn_state_names[c->state], conn_state_names[next]);
    c->state = next;
}

static struct conn *conn_of_handle(uv_handle_t *h)
{
    return CONTAINER_OF((struct pump *)h->data, struct conn, pump);
}

/* ---- replies ---- */

/* Queues the success reply (a [forward] port has none). */
static void conn_reply_ok(struct conn *c)
{
    char out[FRONT_REPLY_MAX];
    size_t len = front_reply(c->proto, 0, NULL, out, sizeof(out));
    if (len > 0)
        pump_reply(&c->pump, out, len);
}

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void conn_open_timeout(uv_timer_t *t);

/* The refusal is out. An HTTP client may still be sending (the body of a
 * request we refused): closing a socket with unread bytes sends a reset,
 * which can destroy the reply before the client read it. So it gets a FIN
 * and what it sends is read and dropped until it closes, or for
 * CONN_FLUSH_MS (RFC 9112 section 9.6). */
static void conn_refused_flushed(struct conn *c)
{
    uv_os_fd_t fd;
    if (c->lingering)
        return;
    if (c->proto != FRONT_PROTO_HTTP || c->failed ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        shutdown(fd, SHUT_WR) != 0) {
        conn_kill(c, c->close_reason);
        return;
    }
    c->lingering = 1;
}

/* Refuses with a wire-level reply (already encoded) and closes after it. */
static void conn_refuse_raw(struct conn *c, enum tunnel_outcome outcome,
                            const void *reply, size_t len, const char *reason)
{
    c->outcome = outcome;
    tunnel_reason_set(&c->close_reason, "%s", reason);
    uv_read_stop(conn_stream(c));
    uv_timer_stop(&c->timer);
    if (c->state == CONN_PUMP)
        pump_detach(&c->pump); /* a forwarded request's stream failed */
    conn_set_state(c, CONN_REFUSING);
    if (c->proto == FRONT_PROTO_HTTP) {
        buf_reset(conn_input(c)); /* room for reads that are dropped */
        uv_timer_start(&c->timer, conn_open_timeout, CONN_FLUSH_MS, 0);
        uv_read_start(conn_stream(c), conn_alloc, conn_read);
    }
    if (len == 0 || pump_reply(&c->pump, reply, len) != 0)
        conn_kill(c, c->close_reason);
    else if (txq_pending(&c->pump.down) == 0)
        conn_refused_flushed(c);
}

/* Refuses with the reply for err; an HTTP client reads reason whole. */
void conn_refuse(struct conn *c, enum tunnel_outcome outcome, int err,
                 const char *reason)
{
    char out[FRONT_REPLY_MAX];
    conn_refuse_raw(c, outcome, out,
                    front_reply(c->proto, err, reason, out, sizeof(out)),
                    reason);
}

/* An HTTP refusal whose status the parser chose (400, 407, 501, ...). */
void conn_refuse_http(struct conn *c, int status, const char *reason)
{
    char out[FRONT_REPLY_MAX];
    conn_refuse_raw(
        c, status == 407 ? TUNNEL_AUTH_FAILED : TUNNEL_BAD_REQUEST, out,
        httpconnect_build_reply_text(out, sizeof(out), status, reason), reason);
}

/* ---- close path ---- */

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = conn_of_handle(h);
    if (--c->handles > 0)
        return;
    conn_http_free(c);
    pump_free(&c->pump);
    buf_free(&c->req);
    config_unref(c->cfg);
    free(c->close_reason);
    c->env->on_closed(c, c->env->arg);
#ifndef NDEBUG
    memset(c, 0xa5, sizeof(*c));
#endif
    free(c);
}

static uint64_t now_ms(struct conn *c)
{
    return uv_now(c->loop);
}

/* Whether the kernel has sent all we wrote to the client: a reset would
 * throw away what it still holds. */
static int conn_sent_all(struct conn *c)
{
    uv_os_fd_t fd;
    int unsent = 0;
    return uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
           ioctl(fd, SIOCOUTQ, &unsent) == 0 && unsent == 0;
}

static const char *conn_proto_name(const struct conn *c)
{
    switch (c->proto) {
    case FRONT_PROTO_SOCKS5:
        return "socks5";
    case FRONT_PROTO_SOCKS4:
        return "socks4";
    case FRONT_PROTO_HTTP: /* CONNECT, or plain requests forwarded */
        return c->http != NULL ? "http-forward" : "http";
    case FRONT_PROTO_FORWARD:
        return "forward";
    default:
        return "";
    }
}

/* Everything known of c, live or ending. */
static void conn_fill_info(const struct conn *c, struct conn_info *out)
{
    const char *doc = tunnel_document(c->spec.kind);
    uint64_t now = uv_now(c->loop);
    int routed = c->spec.target[0] != '\0' || c->spec.host[0] != '\0';
    memset(out, 0, sizeof(*out));
    out->id = c->id;
    out->client = c->peer;
    out->client_uid = c->peer_uid;
    out->listener = c->listener;
    out->protocol = conn_proto_name(c);
    out->proxy_user = c->proxy_user;
    out->request = c->req_host;
    out->request_port = c->req_port;
    out->target = c->spec.target[0] ? c->spec.target : c->spec.host;
    out->host = c->spec.target[0] ? c->spec.host : "";
    out->port = routed ? c->spec.port : 0;
    out->user = c->spec.user;
    out->document = !routed ? "" : doc ? doc : "direct";
    out->kind = routed ? tunnel_kind_name(c->spec.kind) : "";
    out->label = c->spec.label;
    out->profile = c->spec.profile;
    if (c->stream != NULL && c->backend->ops->describe != NULL)
        c->backend->ops->describe(c->stream, &out->stream);
    else
        conn_http_served(c, &out->stream);
    if (out->stream.document[0] != '\0')
        out->document = out->stream.document;
    out->region = out->stream.region[0] ? out->stream.region : c->spec.region;
    out->started_wall_ms = c->started_wall_ms;
    out->age_s = c->opened_ms ? (now - c->opened_ms) / 1000 : 0;
    out->open_ms = c->opened_ms ? GW_MAX(c->opened_ms - c->started_ms, 1) : 0;
    out->duration_ms = now - c->started_ms;
    out->bytes_up = c->pump.bytes_up;
    out->bytes_down = c->pump.bytes_down;
    if (c->stream != NULL && c->backend->ops->shared_streams != NULL)
        out->streams = c->backend->ops->shared_streams(c->stream);
    /* c->outcome is TUNNEL_OK once open (conn.h) */
    if (!c->failed)
        out->outcome = c->outcome;
    else if (c->fail_err == GW_ECLOSED)
        out->outcome = TUNNEL_OK;
    else
        out->outcome =
            c->fail_err == GW_EREFUSED ? TUNNEL_REFUSED : TUNNEL_BROKEN;
    out->reason = c->close_reason ? c->close_reason : "done";
}

void conn_kill(struct conn *c, const char *reason)
{
    if (c->state == CONN_CLOSING)
        return;
    if (reason != NULL && reason != c->close_reason)
        tunnel_reason_set(&c->close_reason, "%s", reason);
    if (c->env->on_ended != NULL) {
        struct conn_info info;
        conn_fill_info(c, &info);
        c->env->on_ended(&info, c->env->observer_arg);
    }
    if (c->opened_ms != 0)
        log_info("conn %llu: closed %s after %.1fs: %llu bytes up, %llu "
                 "bytes down: %s",
                 (unsigned long long)c->id,
                 c->spec.target[0] ? c->spec.target : c->spec.host,
                 (double)(now_ms(c) - c->opened_ms) / 1000.0,
                 (unsigned long long)c->pump.bytes_up,
                 (unsigned long long)c->pump.bytes_down,
                 c->close_reason ? c->close_reason : "done");
    else
        log_info("conn %llu: %s: closed: %s", (unsigned long long)c->id,
                 c->peer, c->close_reason ? c->close_reason : "done");
    conn_set_state(c, CONN_CLOSING);
    if (c->stream != NULL) {
        c->backend->ops->close(c->stream);
        c->stream = NULL;
    }
    if (c->failed && conn_sent_all(c))
        uv_tcp_close_reset(&c->tcp, conn_handle_closed);
    else
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

void conn_drain(struct conn *c)
{
    c->draining = 1;
    if (c->state < CONN_PUMP)
        conn_kill(c, "shutting down");
}

/* ---- backend callbacks ---- */

static void conn_pump_done(struct pump *p, int err, const char *reason)
{
    struct conn *c = CONTAINER_OF(p, struct conn, pump);
    if (err != 0 && reason != NULL)
        tunnel_reason_set(&c->close_reason, "%s: %s", reason, gw_strerror(err));
    conn_kill(c, c->close_reason ? c->close_reason : "both sides closed");
}

static void conn_on_open(void *arg, int status, const char *reason)
{
    struct conn *c = arg;
    if (c->state != CONN_OPENING)
        return;
    uv_timer_stop(&c->timer);
    if (status != 0) {
        char why[GW_REASON_MAX];
        snprintf(why, sizeof(why), "%s", reason ? reason : gw_strerror(status));
        log_warn("conn %llu: %s:%u: %s", (unsigned long long)c->id,
                 c->spec.target[0] ? c->spec.target : c->spec.host,
                 c->spec.port, why);
        conn_refuse(c, status == GW_ETIMEOUT ? TUNNEL_TIMEOUT : TUNNEL_REFUSED,
                    status, why);
        return;
    }
    /* A keep-alive connection opens a stream per forwarded request; it
     * opened (for the audit log and the counters) with its first. */
    int first = c->opened_ms == 0;
    if (first)
        c->opened_ms = now_ms(c);
    c->outcome = TUNNEL_OK;
    /* With several accounts, which one (profile, region) is worth a word. */
    int ssm = c->spec.kind != TUNNEL_DIRECT;
    /* The session's own document (ssh may ride a port forward). */
    struct backend_stream_info bi;
    memset(&bi, 0, sizeof(bi));
    if (c->stream != NULL && c->backend->ops->describe != NULL)
        c->backend->ops->describe(c->stream, &bi);
    const char *doc = bi.document[0] ? bi.document
                      : tunnel_document(c->spec.kind)
                          ? tunnel_document(c->spec.kind)
                          : "direct";
    log_info("conn %llu: open %s -> %s%s%s:%u (%s%s%s%s%s%s%s)",
             (unsigned long long)c->id, c->peer,
             c->spec.user[0] ? c->spec.user : "", c->spec.user[0] ? "@" : "",
             c->spec.target[0] ? c->spec.target : c->spec.host, c->spec.port,
             doc, c->spec.kind == TUNNEL_SSM_REMOTE ? " to " : "",
             c->spec.kind == TUNNEL_SSM_REMOTE ? c->spec.host : "",
             ssm && c->spec.profile[0] ? ", profile " : "",
             ssm ? c->spec.profile : "",
             ssm && c->spec.region[0] ? ", region " : "",
             ssm ? c->spec.region : "");
    if (first && c->env->on_opened != NULL) {
        struct conn_info info;
        conn_fill_info(c, &info);
        c->env->on_opened(&info, c->env->observer_arg);
    }
    if (c->fwd) { /* no reply: the request goes on to the origin */
        conn_http_open(c);
        return;
    }
    conn_reply_ok(c);
    conn_set_state(c, CONN_PUMP);
    /* Bytes the client sent after its request go first. */
    pump_start(&c->pump, c->backend->ops, c->stream, buf_rptr(&c->req),
               buf_len(&c->req));
    buf_reset(&c->req);
}

static void conn_on_data(void *arg, const uint8_t *p, size_t n)
{
    struct conn *c = arg;
    if (c->state == CONN_PUMP && c->fwd)
        conn_http_data(c, p, n);
    else if (c->state == CONN_PUMP)
        pump_backend_data(&c->pump, p, n);
}

static void conn_on_eof(void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_PUMP && c->fwd)
        conn_http_eof(c);
    else if (c->state == CONN_PUMP)
        pump_backend_eof(&c->pump);
}

static void conn_on_drain(void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_PUMP)
        pump_backend_drain(&c->pump);
}

/* The tunnel is gone (the session ended): nothing the client sends can
 * go anywhere, so it closes now; what the remote sent before the end
 * still goes to the client first, within CONN_FLUSH_MS. Then a reset,
 * not a FIN: what the client sent last may not have arrived, and a
 * clean end would tell it that it had (an upload would look complete).
 * Only when the kernel has sent everything: a reset drops the rest. */
static void conn_on_error(void *arg, int err, const char *reason)
{
    struct conn *c = arg;
    char why[GW_REASON_MAX];
    if (c->state == CONN_PUMP && c->fwd && conn_http_error(c, err, reason))
        return;
    c->failed = c->state == CONN_PUMP;
    c->fail_err = err;
    if (c->opened_ms == 0 || c->state == CONN_OPENING)
        c->outcome = TUNNEL_REFUSED;
    snprintf(why, sizeof(why), "tunnel failed: %s",
             reason ? reason : gw_strerror(err));
    if (c->state != CONN_PUMP || txq_pending(&c->pump.down) == 0) {
        conn_kill(c, why);
        return;
    }
    tunnel_reason_set(&c->close_reason, "%s", why);
    uv_read_stop(conn_stream(c));
    conn_set_state(c, CONN_REFUSING);
    uv_timer_start(&c->timer, conn_open_timeout, CONN_FLUSH_MS, 0);
}

/* The backend waits for something slow (an instance starting): the open
 * may take that long, then a connect_timeout_ms of its own. The client's
 * reply is held all the while (a SOCKS client waits; ssh's ConnectTimeout
 * counts only the TCP connect to this port). */
static void conn_on_wait(void *arg, uint64_t ms, const char *why)
{
    struct conn *c = arg;
    if (c->state != CONN_OPENING)
        return;
    log_debug("conn %llu: waiting up to %llu ms: %s", (unsigned long long)c->id,
              (unsigned long long)ms, why);
    uv_timer_start(&c->timer, conn_open_timeout,
                   ms + (uint64_t)c->cfg->connect_timeout_ms + 2000, 0);
}

static const struct backend_cb conn_backend_cb = {
    .on_open = conn_on_open,
    .on_data = conn_on_data,
    .on_eof = conn_on_eof,
    .on_drain = conn_on_drain,
    .on_error = conn_on_error,
    .on_wait = conn_on_wait,
};

/* ---- routing and opening ---- */

static void conn_open_timeout(uv_timer_t *t)
{
    struct conn *c = conn_of_handle((uv_handle_t *)t);
    if (c->state == CONN_OPENING) {
        log_warn("conn %llu: %s:%u: no tunnel after %d ms",
                 (unsigned long long)c->id,
                 c->spec.target[0] ? c->spec.target : c->spec.host,
                 c->spec.port, c->cfg->connect_timeout_ms);
        conn_refuse(c, TUNNEL_TIMEOUT, GW_ETIMEOUT, "tunnel open timed out");
    } else if (c->state < CONN_ROUTE && conn_http_idle(c)) {
        conn_kill(c, "idle keep-alive connection");
    } else if (c->state < CONN_ROUTE) {
        conn_refuse(c, TUNNEL_BAD_REQUEST, GW_ETIMEOUT,
                    "client did not finish its request");
    } else if (c->state == CONN_REFUSING) { /* the client does not read */
        conn_kill(c, c->close_reason);
    }
}

static void conn_do_open(struct conn *c)
{
    conn_set_state(c, CONN_OPENING);
    /* A forwarded request has no reply to hold for a refusal: it goes at
     * once, and a refused destination is a 502 before any response. */
    if (c->fwd)
        c->spec.no_reply = 1;
    uv_read_stop(conn_stream(c));
    if (c->spec.kind == TUNNEL_DIRECT)
        c->backend = c->env->direct;
    else
        c->backend = c->env->ssm;
    if (c->backend == NULL) {
        log_warn("conn %llu: SSM backend not available",
                 (unsigned long long)c->id);
        conn_refuse(c, TUNNEL_REFUSED, GW_EUNSUPPORTED,
                    "SSM backend not available");
        return;
    }
    /* The backend has its own timeouts; this one bounds the whole open
     * (key push, API calls, WebSocket, handshake) with a margin. */
    uv_timer_start(&c->timer, conn_open_timeout,
                   (uint64_t)c->cfg->connect_timeout_ms + 2000, 0);
    int rc = c->backend->ops->open(c->backend->ctx, c->loop, &c->spec,
                                   &conn_backend_cb, c, &c->stream);
    if (rc != 0) {
        c->stream = NULL;
        log_warn("conn %llu: cannot open tunnel: %s", (unsigned long long)c->id,
                 gw_strerror(rc));
        conn_refuse(c, TUNNEL_REFUSED, rc, "cannot open tunnel");
    }
}

void conn_do_route(struct conn *c, const char *host, uint16_t port)
{
    const char *reason = NULL;
    snprintf(c->req_host, sizeof(c->req_host), "%s", host);
    c->req_port = port;
    conn_set_state(c, CONN_ROUTE);
    int rc = route_resolve(c->cfg, host, port, &c->spec, &reason);
    if (rc != 0) {
        log_warn("conn %llu: route: %s:%u: %s", (unsigned long long)c->id, host,
                 port, reason ? reason : gw_strerror(rc));
        conn_refuse(c, TUNNEL_REFUSED, GW_ENO_ROUTE,
                    reason ? reason : "no route");
        return;
    }
    conn_do_open(c);
}

/* ---- request parsing ---- */

static int conn_auth_required(const struct conn *c)
{
    return c->cfg->socks_user[0] != '\0' && c->cfg->socks_password[0] != '\0';
}

static int conn_auth_ok(const struct conn *c, const char *user,
                        const char *pass)
{
    /* Lengths first, then a constant-time compare of the secret. */
    size_t plen = strlen(pass), want = strlen(c->cfg->socks_password);
    unsigned diff = plen != want;
    for (size_t i = 0; i < plen && i < want; i++)
        diff |= (unsigned)(pass[i] ^ c->cfg->socks_password[i]);
    return strcmp(user, c->cfg->socks_user) == 0 && diff == 0;
}

/* Runs the parser for the current state over the buffered bytes until it
 * needs more input or the request is complete. */
static void conn_do_request(struct conn *c)
{
    for (;;) {
        struct buf_view v = buf_peek(conn_input(c));
        uint8_t rep = 0;
        int rc;
        switch (c->state) {
        case CONN_SNIFF: {
            uint8_t first;
            if (buf_get_u8(&v, &first) != 0)
                return;
            if (first == 5) {
                c->proto = FRONT_PROTO_SOCKS5;
                conn_set_state(c, CONN_S5_GREETING);
            } else if (first == 4) {
                c->proto = FRONT_PROTO_SOCKS4;
                conn_set_state(c, CONN_S4_REQUEST);
            } else {
                c->proto = FRONT_PROTO_HTTP;
                conn_set_state(c, CONN_HTTP_REQUEST);
            }
            continue;
        }
        case CONN_S5_GREETING: {
            unsigned offered;
            rc = socks5_parse_greeting(&v, &offered, &rep);
            if (rc == GW_ENEED_MORE)
                return;
            if (rc != 0) {
                conn_refuse_raw(c, TUNNEL_BAD_REQUEST, NULL, 0,
                                "bad SOCKS5 greeting");
                return;
            }
            buf_consume(&c->req, v.pos);
            int need = conn_auth_required(c) ? SOCKS5_METHOD_USERPASS
                                             : SOCKS5_METHOD_NONE;
            uint8_t choice[2] = {5, (uint8_t)need};
            if (!(offered & (1u << need))) {
                choice[1] = SOCKS5_METHOD_UNACCEPTABLE;
                log_warn("conn %llu: %s: SOCKS5 client offers no acceptable "
                         "method (%s required)",
                         (unsigned long long)c->id, c->peer,
                         need ? "username/password" : "no-auth");
                conn_refuse_raw(c, TUNNEL_AUTH_FAILED, choice, 2,
                                "no acceptable SOCKS5 method");
                return;
            }
            pump_reply(&c->pump, choice, 2);
            conn_set_state(c, need ? CONN_S5_AUTH : CONN_S5_REQUEST);
            continue;
        }
        case CONN_S5_AUTH: {
            char user[256], pass[256];
            rc = socks5_parse_auth(&v, user, sizeof(user), pass, sizeof(pass),
                                   &rep);
            if (rc == GW_ENEED_MORE)
                return;
            uint8_t status[2] = {1, 0};
            int ok = rc == 0 && conn_auth_ok(c, user, pass);
            secret_wipe(pass, sizeof(pass));
            if (!ok) {
                status[1] = 1;
                log_warn("conn %llu: %s: SOCKS5 authentication failed",
                         (unsigned long long)c->id, c->peer);
                conn_refuse_raw(c, TUNNEL_AUTH_FAILED, status, 2,
                                "SOCKS5 authentication failed");
                return;
            }
            snprintf(c->proxy_user, sizeof(c->proxy_user), "%s", user);
            buf_consume(&c->req, v.pos);
            pump_reply(&c->pump, status, 2);
            conn_set_state(c, CONN_S5_REQUEST);
            continue;
        }
        case CONN_S5_REQUEST:
        case CONN_S4_REQUEST: {
            struct socks_request r;
            rc = c->state == CONN_S5_REQUEST
                     ? socks5_parse_request(&v, &r, &rep)
                     : socks4_parse_request(&v, &r, &rep);
            if (rc == GW_ENEED_MORE)
                return;
            if (rc != 0) {
                uint8_t out[10];
                size_t len = c->proto == FRONT_PROTO_SOCKS5
                                 ? socks5_build_reply(out, rep)
                                 : socks4_build_reply(out, rep);
                log_warn("conn %llu: %s: malformed or unsupported SOCKS%d "
                         "request",
                         (unsigned long long)c->id, c->peer,
                         r.version ? r.version
                                   : (c->proto == FRONT_PROTO_SOCKS5 ? 5 : 4));
                conn_refuse_raw(c, TUNNEL_BAD_REQUEST, out, len,
                                "bad SOCKS request");
                return;
            }
            if (c->proto == FRONT_PROTO_SOCKS4 && conn_auth_required(c)) {
                log_warn("conn %llu: %s: SOCKS4 has no password; refused "
                         "because socks_user is set",
                         (unsigned long long)c->id, c->peer);
                conn_refuse(c, TUNNEL_AUTH_FAILED, GW_EDENIED,
                            "SOCKS4 without authentication");
                return;
            }
            buf_consume(&c->req, v.pos);
            conn_do_route(c, r.host, r.port);
            return;
        }
        case CONN_HTTP_REQUEST: {
            struct httpconnect_request r;
            int status;
            const char *why;
            rc = httpconnect_parse(&v, &r, &status, &why);
            if (rc == GW_ENEED_MORE)
                return;
            if (rc != 0) {
                log_warn("conn %llu: %s: bad HTTP request (%d: %s)",
                         (unsigned long long)c->id, c->peer, status, why);
                conn_refuse_http(c, status, why);
                return;
            }
            int denied = conn_auth_required(c) &&
                         (!r.has_auth || !conn_auth_ok(c, r.user, r.pass));
            secret_wipe(r.pass, sizeof(r.pass));
            if (denied) {
                log_warn("conn %llu: %s: HTTP proxy authentication %s",
                         (unsigned long long)c->id, c->peer,
                         r.has_auth ? "failed" : "missing");
                conn_refuse_http(c, 407, "proxy authentication required");
                return;
            }
            if (conn_auth_required(c))
                snprintf(c->proxy_user, sizeof(c->proxy_user), "%s", r.user);
            if (r.forward) {
                conn_http_request(c, conn_input(c), &r);
                return;
            }
            buf_consume(conn_input(c), v.pos);
            conn_do_route(c, r.host, r.port);
            return;
        }
        default:
            return;
        }
    }
}

/* ---- libuv callbacks ---- */

static void conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = conn_of_handle(h);
    uint8_t *w;
    size_t room = buf_reserve_all(conn_input(c), &w);
    b->base = (char *)w;
    b->len = room;
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = conn_of_handle((uv_handle_t *)s);
    if (c->state == CONN_REFUSING && n < 0) /* the end of a lingering close */
        conn_kill(c, c->close_reason);
    if (n == 0 || c->state >= CONN_ROUTE)
        return; /* a refused client's bytes are not kept */
    if (n < 0) {
        conn_kill(c, n != UV_EOF         ? uv_strerror((int)n)
                     : conn_http_idle(c) ? "client closed its connection"
                                         : "client left before its request");
        return;
    }
    buf_commit(conn_input(c), (size_t)n);
    conn_do_request(c);
    if (c->state < CONN_ROUTE && buf_room(conn_input(c)) == 0) {
        conn_refuse(c, TUNNEL_BAD_REQUEST, GW_ETOO_BIG, "request too large");
    }
}

static void conn_reply_written(struct txq *q, int status, void *arg)
{
    struct pump *p = arg;
    struct conn *c = CONTAINER_OF(p, struct conn, pump);
    if (c->state != CONN_REFUSING)
        return;
    if (status < 0)
        conn_kill(c, c->close_reason);
    else if (txq_pending(q) == 0)
        conn_refused_flushed(c);
}

static void conn_written(struct txq *q, int status, void *arg)
{
    struct conn *c = CONTAINER_OF((struct pump *)arg, struct conn, pump);
    if (c->state == CONN_PUMP)
        pump_down_written(q, status, arg);
    else
        conn_reply_written(q, status, arg);
}

void conn_next_request(struct conn *c)
{
    conn_set_state(c, CONN_HTTP_REQUEST);
    uv_timer_start(&c->timer, conn_open_timeout,
                   (uint64_t)c->cfg->request_timeout_ms, 0);
    conn_do_request(c);
    if (c->state == CONN_HTTP_REQUEST &&
        uv_read_start(conn_stream(c), conn_alloc, conn_read) != 0)
        conn_kill(c, "cannot read from the client");
}

struct conn *conn_new(uv_loop_t *loop, struct config *cfg,
                      const struct conn_env *env, uint64_t id,
                      const char *listener, const struct tunnel_spec *fixed)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    list_init(&c->link);
    c->id = id;
    c->loop = loop;
    c->env = env;
    if (buf_init(&c->req, CONN_REQ_CAP) != 0 ||
        pump_init(&c->pump, (uv_stream_t *)&c->tcp, conn_pump_done) != 0) {
        buf_free(&c->req);
        free(c);
        return NULL;
    }
    c->pump.down.written = conn_written;
    c->cfg = config_ref(cfg);
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c->timer.data = &c->pump;
    c->handles = 2;
    c->started_ms = uv_now(loop);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    c->started_wall_ms =
        (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    c->peer_uid = -1;
    c->outcome = TUNNEL_ABORTED;
    snprintf(c->listener, sizeof(c->listener), "%s", listener);
    if (fixed != NULL) {
        c->spec = *fixed;
        c->proto = FRONT_PROTO_FORWARD;
    }
    return c;
}

uv_stream_t *conn_stream(struct conn *c)
{
    return (uv_stream_t *)&c->tcp;
}

/* The peer's address and, for a client on this host, its user. */
static void conn_find_peer(struct conn *c)
{
    struct sockaddr_storage ss, local;
    int len = sizeof(ss), llen = sizeof(local);
    char ip[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    memset(&ss, 0, sizeof(ss));
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            uv_ip4_name(sin, ip, sizeof(ip));
            port = ntohs(sin->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(sin6, ip, sizeof(ip));
            port = ntohs(sin6->sin6_port);
        }
        if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&local, &llen) == 0)
            c->peer_uid = peer_uid_lookup(&ss, &local);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, port);
}

void conn_reject(struct conn *c, enum tunnel_outcome outcome,
                 const char *reason)
{
    conn_find_peer(c);
    c->outcome = outcome;
    conn_kill(c, reason);
}

void conn_start(struct conn *c)
{
    conn_find_peer(c);
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->proto == FRONT_PROTO_FORWARD) {
        conn_do_open(c);
        return;
    }
    uv_timer_start(&c->timer, conn_open_timeout,
                   (uint64_t)c->cfg->request_timeout_ms, 0);
    if (uv_read_start(conn_stream(c), conn_alloc, conn_read) != 0)
        conn_kill(c, "cannot read from the client");
}

int conn_describe(const struct conn *c, struct conn_info *out)
{
    if (c->state != CONN_PUMP)
        return GW_ENOT_FOUND;
    conn_fill_info(c, out);
    return 0;
}
