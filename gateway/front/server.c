/*
 * server.c - owns the listeners and the conn list.
 *
 * A listener is keyed by its kind and address; a reload keeps listeners
 * whose key did not change (their sockets stay bound, so clients never
 * see a refused connection during SIGHUP) and refreshes their [forward]
 * spec from the new config.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_direct.h"
#include "common.h"
#include "config.h"
#include "conn.h"
#include "list.h"
#include "log.h"
#include "route.h"

struct listener {
    struct list link; /* in the server's listeners */
    struct server *server;
    uv_tcp_t tcp;
    char kind[CONFIG_NAME_MAX]; /* "socks" or the forward's name */
    char addr[CONFIG_ADDR_MAX]; /* as configured */
    int is_forward;
    struct tunnel_spec spec; /* [forward] only */
    int keep;                /* reload bookkeeping */
};

struct server {
    uv_loop_t *loop;
    struct config *cfg;
    struct list listeners; /* struct listener */
    struct list conns;     /* struct conn */
    size_t n_conns;
    uint64_t next_id;
    struct backend direct;
    struct backend_direct_ctx direct_ctx;
    const struct backend *ssm;
    struct conn_env env;
    uv_timer_t drain_timer;
    int shutting_down;
    int open_listeners; /* handles not yet closed */
    int drain_timer_open;
    void (*shutdown_done)(void *arg);
    void *shutdown_arg;
};

static void server_check_shutdown(struct server *s)
{
    if (!s->shutting_down || s->n_conns > 0 || s->open_listeners > 0 ||
        s->drain_timer_open)
        return;
    if (s->shutdown_done != NULL) {
        void (*done)(void *) = s->shutdown_done;
        s->shutdown_done = NULL;
        done(s->shutdown_arg);
    }
}

static void server_conn_closed(struct conn *c, void *arg)
{
    struct server *s = arg;
    list_remove(&c->link);
    s->n_conns--;
    if (s->shutting_down && s->n_conns == 0 && s->drain_timer_open) {
        uv_close((uv_handle_t *)&s->drain_timer, NULL);
        s->drain_timer_open = 0;
    }
    server_check_shutdown(s);
}

int server_new(uv_loop_t *loop, struct config *cfg, struct server **out)
{
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return GW_ENOMEM;
    s->loop = loop;
    s->cfg = config_ref(cfg);
    s->next_id = 1;
    list_init(&s->listeners);
    list_init(&s->conns);
    s->direct_ctx.connect_timeout_ms = cfg->connect_timeout_ms;
    s->direct.ops = &backend_direct_ops;
    s->direct.ctx = &s->direct_ctx;
    s->env.direct = &s->direct;
    s->env.on_closed = server_conn_closed;
    s->env.arg = s;
    *out = s;
    return 0;
}

void server_set_ssm_backend(struct server *s, const struct backend *b)
{
    s->ssm = b;
    s->env.ssm = b;
}

void server_set_observer(struct server *s, server_tunnel_fn *opened,
                         server_tunnel_fn *ended, void *arg)
{
    s->env.on_opened = opened;
    s->env.on_ended = ended;
    s->env.observer_arg = arg;
}

static void server_on_connection(uv_stream_t *ls, int status)
{
    struct listener *l = CONTAINER_OF(ls, struct listener, tcp);
    struct server *s = l->server;
    if (status < 0) {
        log_warn("listener %s %s: accept: %s", l->kind, l->addr,
                 uv_strerror(status));
        return;
    }
    struct conn *c = conn_new(s->loop, s->cfg, &s->env, s->next_id++, l->kind,
                              l->is_forward ? &l->spec : NULL);
    if (c == NULL) {
        log_error("listener %s: out of memory for a new connection", l->kind);
        return;
    }
    list_insert_head(&s->conns, &c->link);
    s->n_conns++;
    if (uv_accept(ls, conn_stream(c)) != 0) {
        conn_kill(c, "accept failed");
        return;
    }
    if (s->shutting_down) {
        conn_kill(c, "shutting down");
        return;
    }
    if ((int)s->n_conns > s->cfg->max_connections) {
        log_warn("conn %llu: refused: %d connections is the limit "
                 "(max_connections)",
                 (unsigned long long)c->id, s->cfg->max_connections);
        conn_reject(c, TUNNEL_REFUSED, "connection limit reached");
        return;
    }
    conn_start(c);
}

int server_parse_addr(const char *text, struct sockaddr_storage *ss)
{
    char host[CONFIG_ADDR_MAX];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
        return GW_EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    int port = atoi(colon + 1);
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return GW_EINVAL;
        host[n - 1] = '\0';
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss);
    }
    if (strcmp(host, "localhost") == 0)
        return uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)ss);
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = CONTAINER_OF(h, struct listener, tcp);
    struct server *s = l->server;
    free(l);
    s->open_listeners--;
    server_check_shutdown(s);
}

static int listener_open(struct server *s, const char *kind, const char *addr,
                         const struct tunnel_spec *spec, struct listener **out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = server_parse_addr(addr, &ss);
    if (rc != 0) {
        log_error("listener %s: bad address %s", kind, addr);
        return rc;
    }
    struct listener *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return GW_ENOMEM;
    l->server = s;
    snprintf(l->kind, sizeof(l->kind), "%s", kind);
    snprintf(l->addr, sizeof(l->addr), "%s", addr);
    if (spec != NULL) {
        l->is_forward = 1;
        l->spec = *spec;
    }
    uv_tcp_init(s->loop, &l->tcp);
    s->open_listeners++;
    rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 511, server_on_connection);
    if (rc != 0) {
        log_error("listener %s: cannot listen on %s: %s", kind, addr,
                  uv_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
        return rc;
    }
    list_insert_head(&s->listeners, &l->link);
    *out = l;
    return 0;
}

void server_bound_name(const uv_tcp_t *tcp, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip + 1, sizeof(ip) - 2);
            ip[0] = '[';
            strcat(ip, "]");
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(out, len, "%s:%d", ip, port);
}

static void listener_announce(const struct listener *l)
{
    char bound[SERVER_ADDR_MAX];
    server_bound_name(&l->tcp, bound, sizeof(bound));
    fprintf(stderr, "ssmgate: listening on %s (%s)\n", bound, l->kind);
}

static struct listener *listener_find(struct server *s, const char *kind,
                                      const char *addr)
{
    struct list *e, *tmp;
    LIST_FOREACH_SAFE (e, tmp, &s->listeners) {
        struct listener *l = CONTAINER_OF(e, struct listener, link);
        if (strcmp(l->kind, kind) == 0 && strcmp(l->addr, addr) == 0 &&
            !l->keep)
            return l;
    }
    return NULL;
}

/*
 * Makes the listeners match cfg. announce_all prints every listener (start
 * up); otherwise only new ones.
 */
static int server_reconcile(struct server *s, const struct config *cfg,
                            int announce_all)
{
    struct listener *fresh[CONFIG_MAX_LISTEN + 256];
    int n_fresh = 0, rc = 0;
    struct list *e, *tmp;
    LIST_FOREACH_SAFE (e, tmp, &s->listeners) {
        CONTAINER_OF(e, struct listener, link)->keep = 0;
    }
    for (int i = 0; i < cfg->n_listen && rc == 0; i++) {
        struct listener *l = listener_find(s, "socks", cfg->listen[i]);
        if (l != NULL) {
            l->keep = 1;
            continue;
        }
        rc = listener_open(s, "socks", cfg->listen[i], NULL, &l);
        if (rc == 0) {
            l->keep = 1;
            fresh[n_fresh++] = l;
        }
    }
    for (int i = 0; i < cfg->n_forwards && rc == 0; i++) {
        const struct config_forward *f = &cfg->forwards[i];
        struct tunnel_spec spec;
        rc = route_from_forward(cfg, f, &spec);
        if (rc != 0) {
            log_error("[forward %s]: cannot build its tunnel", f->name);
            break;
        }
        struct listener *l = listener_find(s, f->name, f->listen);
        if (l != NULL) {
            l->keep = 1;
            l->spec = spec;
            continue;
        }
        if (n_fresh >= (int)ARRAY_SIZE(fresh)) {
            rc = GW_ELIMIT;
            break;
        }
        rc = listener_open(s, f->name, f->listen, &spec, &l);
        if (rc == 0) {
            l->keep = 1;
            fresh[n_fresh++] = l;
        }
    }
    if (rc != 0) {
        /* Roll back: close what this call opened, keep all the rest. */
        LIST_FOREACH_SAFE (e, tmp, &s->listeners) {
            struct listener *l = CONTAINER_OF(e, struct listener, link);
            int opened_now = 0;
            for (int i = 0; i < n_fresh; i++)
                opened_now |= fresh[i] == l;
            l->keep = !opened_now;
        }
    }
    /* Close listeners not wanted any more. */
    LIST_FOREACH_SAFE (e, tmp, &s->listeners) {
        struct listener *l = CONTAINER_OF(e, struct listener, link);
        if (l->keep)
            continue;
        list_remove(&l->link);
        if (rc == 0)
            log_info("listener %s on %s closed (no longer configured)", l->kind,
                     l->addr);
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
    }
    if (rc != 0)
        return rc;
    if (announce_all) {
        LIST_FOREACH_SAFE (e, tmp, &s->listeners) {
            listener_announce(CONTAINER_OF(e, struct listener, link));
        }
    } else {
        for (int i = 0; i < n_fresh; i++)
            listener_announce(fresh[i]);
    }
    return 0;
}

int server_listen(struct server *s)
{
    return server_reconcile(s, s->cfg, 1);
}

int server_reload(struct server *s, struct config *cfg)
{
    int rc = server_reconcile(s, cfg, 0);
    if (rc != 0)
        return rc;
    config_unref(s->cfg);
    s->cfg = config_ref(cfg);
    s->direct_ctx.connect_timeout_ms = cfg->connect_timeout_ms;
    return 0;
}

static void server_drain_timeout(uv_timer_t *t)
{
    struct server *s = CONTAINER_OF(t, struct server, drain_timer);
    log_info("drain timeout: closing %zu remaining tunnels", s->n_conns);
    uv_close((uv_handle_t *)&s->drain_timer, NULL);
    s->drain_timer_open = 0;
    struct list *e, *tmp;
    LIST_FOREACH_SAFE (e, tmp, &s->conns) {
        conn_kill(CONTAINER_OF(e, struct conn, link), "shutting down");
    }
    server_check_shutdown(s);
}

void server_shutdown(struct server *s, void (*done)(void *arg), void *arg)
{
    if (s->shutting_down)
        return;
    s->shutting_down = 1;
    s->shutdown_done = done;
    s->shutdown_arg = arg;
    struct list *e, *tmp;
    LIST_FOREACH_SAFE (e, tmp, &s->listeners) {
        struct listener *l = CONTAINER_OF(e, struct listener, link);
        list_remove(&l->link);
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
    }
    LIST_FOREACH_SAFE (e, tmp, &s->conns) {
        conn_drain(CONTAINER_OF(e, struct conn, link));
    }
    if (s->n_conns > 0) {
        log_info("draining %zu tunnels (up to %d ms)", s->n_conns,
                 s->cfg->drain_timeout_ms);
        uv_timer_init(s->loop, &s->drain_timer);
        s->drain_timer_open = 1;
        uv_timer_start(&s->drain_timer, server_drain_timeout,
                       (uint64_t)s->cfg->drain_timeout_ms, 0);
    }
    server_check_shutdown(s);
}

void server_free(struct server *s)
{
    if (s == NULL)
        return;
    config_unref(s->cfg);
    free(s);
}

void server_foreach_tunnel(const struct server *s, server_tunnel_fn *fn,
                           void *arg)
{
    const struct list *e;
    for (e = s->conns.next; e != &s->conns; e = e->next) {
        struct conn_info info;
        if (conn_describe(CONTAINER_OF(e, struct conn, link), &info) == 0)
            fn(&info, arg);
    }
}

/* The open listener for kind and configured addr, or NULL. */
static const struct listener *
listener_lookup(const struct server *s, const char *kind, const char *addr)
{
    const struct list *e;
    for (e = s->listeners.next; e != &s->listeners; e = e->next) {
        const struct listener *l = CONTAINER_OF(e, struct listener, link);
        if (strcmp(l->kind, kind) == 0 && strcmp(l->addr, addr) == 0)
            return l;
    }
    return NULL;
}

static void report_listener(const struct listener *l, server_listener_fn *fn,
                            void *arg)
{
    struct server_listener_info info = {l->is_forward ? "forward" : "socks",
                                        l->is_forward ? l->kind : "", l->addr,
                                        ""};
    server_bound_name(&l->tcp, info.bound, sizeof(info.bound));
    fn(&info, arg);
}

void server_foreach_listener(const struct server *s, server_listener_fn *fn,
                             void *arg)
{
    const struct config *cfg = s->cfg;
    const struct listener *l;
    for (int i = 0; i < cfg->n_listen; i++)
        if ((l = listener_lookup(s, "socks", cfg->listen[i])) != NULL)
            report_listener(l, fn, arg);
    for (int i = 0; i < cfg->n_forwards; i++)
        if ((l = listener_lookup(s, cfg->forwards[i].name,
                                 cfg->forwards[i].listen)) != NULL)
            report_listener(l, fn, arg);
}

size_t server_conn_count(const struct server *s)
{
    return s->n_conns;
}
