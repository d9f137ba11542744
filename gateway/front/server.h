/*
 * server.h - the listeners (the SOCKS/HTTP ports and one per [forward]),
 * accepting into conns, the list of live conns, the connection limit,
 * graceful drain and config reload with listener reconciliation.
 */
#ifndef SSMGATE_SERVER_H
#define SSMGATE_SERVER_H

#include <uv.h>

#include "backend.h"

struct config;
struct conn_info;
struct server;

/* Takes a ref on cfg. */
int server_new(uv_loop_t *loop, struct config *cfg, struct server **out);
/* The backend for SSM tunnels (borrowed; outlives the server). */
void server_set_ssm_backend(struct server *s, const struct backend *b);
/* Binds every listener, then prints one "ssmgate: listening on ADDR:PORT
 * (KIND)" line per listener to stderr. 0 or the first bind error. */
int server_listen(struct server *s);
/* Swaps in a new config (takes a ref); live conns keep theirs. Listeners
 * that did not change stay open; new ones are bound (and printed). */
int server_reload(struct server *s, struct config *cfg);

/* Stops accepting and lets tunnels drain for the config's
 * drain_timeout_ms, then closes what is left; done runs once every conn
 * and listener is closed. */
void server_shutdown(struct server *s, void (*done)(void *arg), void *arg);
/* Frees after server_shutdown finished. */
void server_free(struct server *s);

/* Calls fn for every tunnel whose bytes flow (conn.h, struct conn_info),
 * newest first. fn must not close conns. */
typedef void server_tunnel_fn(const struct conn_info *t, void *arg);
/* Who hears of every tunnel that opens (opened, may be NULL) and of
 * every connection as it ends (ended): the audit log and the counters. */
void server_set_observer(struct server *s, server_tunnel_fn *opened,
                         server_tunnel_fn *ended, void *arg);
/* "ADDR:PORT", "[v6]:PORT" or "localhost:PORT" into *ss; 0 or an error. */
int server_parse_addr(const char *text, struct sockaddr_storage *ss);
/* The address a bound socket got, "ADDR:PORT" ("[v6]:PORT"), which
 * SERVER_ADDR_MAX holds. */
#define SERVER_ADDR_MAX 80
void server_bound_name(const uv_tcp_t *tcp, char *out, size_t len);
void server_foreach_tunnel(const struct server *s, server_tunnel_fn *fn,
                           void *arg);
size_t server_conn_count(const struct server *s);

/* One bound listener, for clients that must learn a port the OS chose. */
struct server_listener_info {
    const char *kind;   /* "socks" (SOCKS5/4a + HTTP CONNECT) or "forward" */
    const char *name;   /* the [forward]'s name; "" for socks */
    const char *listen; /* as configured, e.g. "127.0.0.1:0" */
    char bound[SERVER_ADDR_MAX]; /* what the OS bound: "127.0.0.1:41234" */
};
typedef void server_listener_fn(const struct server_listener_info *l,
                                void *arg);
/* Calls fn for every open listener in config order: the SOCKS/HTTP ones
 * (listen = ...), then one per [forward]. */
void server_foreach_listener(const struct server *s, server_listener_fn *fn,
                             void *arg);

#endif
