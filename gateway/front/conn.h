/*
 * conn.h - one accepted client connection, from its first byte to its
 * close: protocol sniffing, the SOCKS / HTTP CONNECT request, routing,
 * opening the backend, the reply, the byte pump and the single close path;
 * for plain HTTP proxy requests, one request after another on the same
 * connection, each routed and opened on its own (conn_http.c).
 *
 * Owned by the server (server.c keeps the list); it tells the server it is
 * gone through env->on_closed, from its last close callback.
 */
#ifndef SSMGATE_CONN_H
#define SSMGATE_CONN_H

#include <stdint.h>
#include <uv.h>

#include "backend.h"
#include "buf.h"
#include "common.h"
#include "config.h"
#include "front_reply.h"
#include "list.h"
#include "pump.h"
#include "route.h"
#include "socks.h"

struct config;
struct conn;
struct conn_http;
struct conn_info;

/* What a conn needs from its server; outlives every conn. */
struct conn_env {
    const struct backend *direct;
    const struct backend *ssm; /* NULL = SSM tunnels are refused */
    void (*on_closed)(struct conn *c, void *arg);
    void *arg;
    /* Optional, for the audit log and the counters: a tunnel opened, and
     * every connection once as it ends (from its close path). */
    void (*on_opened)(const struct conn_info *t, void *arg);
    void (*on_ended)(const struct conn_info *t, void *arg);
    void *observer_arg;
};

enum conn_state {
    CONN_SNIFF,        /* waiting for the first byte */
    CONN_S5_GREETING,  /* SOCKS5 method negotiation */
    CONN_S5_AUTH,      /* RFC 1929 username/password */
    CONN_S5_REQUEST,   /* SOCKS5 CONNECT request */
    CONN_S4_REQUEST,   /* SOCKS4/4a request */
    CONN_HTTP_REQUEST, /* HTTP CONNECT or proxy request head */
    CONN_ROUTE,        /* deciding the tunnel */
    CONN_OPENING,      /* backend open in progress; client reads paused */
    CONN_PUMP,         /* reply sent; bytes flow */
    CONN_REFUSING,     /* failure reply queued; close once written */
    CONN_CLOSING,      /* handles closing */
};

struct conn {
    struct list link; /* in the server's list */
    uint64_t id;
    enum conn_state state;
    enum front_proto proto;
    uv_loop_t *loop;
    struct config *cfg; /* our ref: the config we started with */
    const struct conn_env *env;
    uv_tcp_t tcp;
    uv_timer_t timer; /* request timeout, then open timeout */
    int handles;      /* open handles: tcp, timer */
    struct buf req;   /* request bytes until the reply */
    struct pump pump;
    const struct backend *backend;
    struct backend_stream *stream;
    struct tunnel_spec spec;
    char peer[64];
    long peer_uid;                  /* the local client's user; -1 */
    char listener[CONFIG_NAME_MAX]; /* "socks" or the [forward] name */
    char proxy_user[256];           /* who authenticated; "" */
    char req_host[TUNNEL_HOST_MAX]; /* what the client asked for */
    uint16_t req_port;
    uint64_t started_ms, opened_ms;
    uint64_t started_wall_ms; /* ms since the epoch at accept */
    char *close_reason;       /* tunnel_reason_set; NULL: none yet */
    /* How it ends unless the open tunnel fails: ABORTED until open, OK
     * once open, a refusal's own (a forwarded request's too, after others
     * were served). */
    enum tunnel_outcome outcome;
    int draining;  /* server shutting down */
    int failed;    /* the tunnel broke: the client hears a reset */
    int fail_err;  /* its on_error err: the outcome of an open tunnel */
    int lingering; /* refused: FIN sent, dropping what the client sends */
    /* A plain HTTP proxy connection (GET http://...): NULL until its first
     * such request; fwd while the current request is one. */
    struct conn_http *http;
    int fwd;
};

/* A new conn with a ref on cfg. listener: "socks" or the [forward]
 * name; fixed: the spec of a [forward] port, or NULL for the SOCKS/HTTP
 * port. Accept into conn_stream(c), then conn_start(c). Returns NULL when
 * out of memory. */
struct conn *conn_new(uv_loop_t *loop, struct config *cfg,
                      const struct conn_env *env, uint64_t id,
                      const char *listener, const struct tunnel_spec *fixed);
uv_stream_t *conn_stream(struct conn *c);
void conn_start(struct conn *c);

/* Ends the conn (idempotent): logs the close line, tells env->on_ended,
 * closes the backend and the handles; env->on_closed runs when everything
 * is closed. */
void conn_kill(struct conn *c, const char *reason);
/* Refuses a conn before it started (the connection limit): outcome and
 * reason go to the close line and env->on_ended. */
void conn_reject(struct conn *c, enum tunnel_outcome outcome,
                 const char *reason);

/* Server shutdown: conns still negotiating are closed now; tunnels keep
 * running until they end or conn_kill. */
void conn_drain(struct conn *c);

/* One connection as `ssmgate status` shows it (live) and the audit log
 * records it (ended). The strings are the conn's own: valid until the
 * loop runs again. Empty strings are unknown or do not apply. */
struct conn_info {
    uint64_t id;
    const char *client;     /* the peer, "ADDR:PORT" */
    long client_uid;        /* its local user (peer_uid.h); -1 */
    const char *listener;   /* "socks" or the [forward] name */
    const char *protocol;   /* socks5, socks4, http, forward */
    const char *proxy_user; /* the SOCKS/HTTP user that authenticated */
    const char *request;    /* the host the client asked for */
    uint16_t request_port;
    const char *target; /* instance id, Name or host */
    const char *host;   /* remote_host / direct host */
    uint16_t port;
    const char *user;     /* OS user of an SSH tunnel */
    const char *document; /* the SSM document, or "direct" */
    const char *kind;     /* tunnel_kind_name */
    const char *label;    /* "route NAME" / "forward NAME" */
    const char *profile;  /* the tunnel's profile; "" = the default */
    const char *region;   /* the session's region, else the tunnel's */
    struct backend_stream_info stream;
    uint64_t started_wall_ms; /* accept, ms since the epoch */
    uint64_t age_s;           /* since the open */
    uint64_t open_ms;         /* accept to open; 0 = never opened */
    uint64_t duration_ms;     /* accept to now */
    uint64_t bytes_up, bytes_down;
    int streams; /* streams sharing its SSM session; 0 = not shared */
    /* Ended conns only. */
    enum tunnel_outcome outcome;
    const char *reason;
};

/* Fills *out for a tunnel whose bytes flow; GW_ENOT_FOUND while the conn
 * is still negotiating, opening or closing. */
int conn_describe(const struct conn *c, struct conn_info *out);

#endif
