/*
 * metrics.c - GET /metrics over HTTP/1.1, one request per connection.
 *
 *   accept -> read the head (http_head_parse, the CONNECT parser's head
 *   reader) -> answer 200 / 400 / 404 / 405 / 431 / 505 -> close
 *
 * The listener and each client are owned here; struct metrics goes when
 * the listener and its last client have closed (refs).
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "httpconnect.h"
#include "list.h"
#include "log.h"
#include "prom.h"
#include "server.h"

struct metrics {
    uv_tcp_t listener;
    char addr[CONFIG_ADDR_MAX];
    metrics_render_fn *render;
    void *arg;
    struct list clients;
    int n_clients;
    int refs; /* the listener and each client */
};

struct metrics_client {
    struct list link; /* in m->clients */
    struct metrics *m;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uint8_t head[METRICS_HEAD_MAX];
    size_t len;
    char reply[512];
    struct buf page;
    int handles;
    int killed;
};

static void metrics_unref(struct metrics *m)
{
    if (--m->refs == 0)
        free(m);
}

static void client_closed(uv_handle_t *h)
{
    struct metrics_client *cl = h->data;
    if (--cl->handles > 0)
        return;
    struct metrics *m = cl->m;
    buf_free(&cl->page);
    free(cl);
    metrics_unref(m);
}

static void client_kill(struct metrics_client *cl)
{
    if (cl->killed)
        return;
    cl->killed = 1;
    list_remove(&cl->link);
    cl->m->n_clients--;
    uv_close((uv_handle_t *)&cl->tcp, client_closed);
    uv_close((uv_handle_t *)&cl->timer, client_closed);
}

static void client_written(uv_write_t *req, int status)
{
    client_kill(req->data);
}

static void client_send(struct metrics_client *cl, int status,
                        const char *extra, const char *body)
{
    static const struct {
        int status;
        const char *phrase;
    } phrases[] = {{200, "OK"},
                   {400, "Bad Request"},
                   {404, "Not Found"},
                   {405, "Method Not Allowed"},
                   {431, "Request Header Fields Too Large"},
                   {500, "Internal Server Error"},
                   {505, "HTTP Version Not Supported"}};
    const char *phrase = "Error";
    for (size_t i = 0; i < ARRAY_SIZE(phrases); i++)
        if (phrases[i].status == status)
            phrase = phrases[i].phrase;
    size_t body_len = body != NULL ? strlen(body) : buf_len(&cl->page);
    int n = snprintf(cl->reply, sizeof(cl->reply),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n",
                     status, phrase,
                     status == 200 ? PROM_CONTENT_TYPE : "text/plain", extra,
                     body_len);
    uv_buf_t b[2] = {
        uv_buf_init(cl->reply, (unsigned)n),
        body != NULL
            ? uv_buf_init((char *)body, (unsigned)body_len)
            : uv_buf_init((char *)buf_rptr(&cl->page), (unsigned)body_len),
    };
    uv_read_stop((uv_stream_t *)&cl->tcp);
    cl->wr.data = cl;
    if (uv_write(&cl->wr, (uv_stream_t *)&cl->tcp, b, 2, client_written) != 0)
        client_kill(cl);
}

/* A whole head arrived (or could not): the answer. */
static void client_answer(struct metrics_client *cl, const struct http_head *h)
{
    static const char path[] = "/metrics";
    size_t plen = sizeof(path) - 1;
    if (h->method_len != 3 || memcmp(h->method, "GET", 3) != 0) {
        client_send(cl, 405, "Allow: GET\r\n", "only GET /metrics\n");
        return;
    }
    /* The path alone: a query string (?name[]=...) asks for nothing we
     * would filter. */
    if (h->target_len < plen || memcmp(h->target, path, plen) != 0 ||
        (h->target_len > plen && h->target[plen] != '?')) {
        client_send(cl, 404, "", "only GET /metrics\n");
        return;
    }
    if (buf_init(&cl->page, METRICS_PAGE_MAX) != 0 ||
        cl->m->render(cl->m->arg, &cl->page) != 0) {
        buf_reset(&cl->page);
        client_send(cl, 500, "", "could not render the metrics\n");
        return;
    }
    client_send(cl, 200, "", NULL);
}

static void client_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct metrics_client *cl = h->data;
    b->base = (char *)cl->head + cl->len;
    b->len = sizeof(cl->head) - cl->len;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct metrics_client *cl = s->data;
    if (n < 0) {
        client_kill(cl);
        return;
    }
    cl->len += (size_t)n;
    struct http_head h;
    int status;
    int rc = http_head_parse(cl->head, cl->len, sizeof(cl->head), &h, &status);
    if (rc == GW_ENEED_MORE)
        return;
    if (rc != 0) {
        client_send(cl, status, "", "bad request\n");
        return;
    }
    client_answer(cl, &h);
}

static void client_timeout(uv_timer_t *t)
{
    client_kill(t->data);
}

static void metrics_on_connection(uv_stream_t *ls, int status)
{
    struct metrics *m = CONTAINER_OF(ls, struct metrics, listener);
    if (status < 0)
        return;
    /* At the cap the oldest goes: it is the likeliest to be stuck, and a
     * few silent connections must not lock the scraper out. */
    if (m->n_clients >= METRICS_CLIENTS)
        client_kill(CONTAINER_OF(m->clients.next, struct metrics_client, link));
    struct metrics_client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return;
    cl->m = m;
    m->refs++;
    m->n_clients++;
    list_insert_tail(&m->clients, &cl->link);
    uv_tcp_init(ls->loop, &cl->tcp);
    uv_timer_init(ls->loop, &cl->timer);
    cl->tcp.data = cl->timer.data = cl;
    cl->handles = 2;
    if (uv_accept(ls, (uv_stream_t *)&cl->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&cl->tcp, client_alloc, client_read) !=
            0) {
        client_kill(cl);
        return;
    }
    uv_timer_start(&cl->timer, client_timeout, METRICS_CLIENT_MS, 0);
}

static void listener_closed(uv_handle_t *h)
{
    metrics_unref(CONTAINER_OF(h, struct metrics, listener));
}

int metrics_start(uv_loop_t *loop, const char *addr, metrics_render_fn *render,
                  void *arg, struct metrics **out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = server_parse_addr(addr, &ss);
    if (rc != 0) {
        log_error("metrics: bad address %s", addr);
        return rc;
    }
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return GW_ENOMEM;
    m->render = render;
    m->arg = arg;
    m->refs = 1;
    list_init(&m->clients);
    uv_tcp_init(loop, &m->listener);
    rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 64, metrics_on_connection);
    if (rc != 0) {
        log_error("metrics: cannot listen on %s: %s", addr, uv_strerror(rc));
        uv_close((uv_handle_t *)&m->listener, listener_closed);
        return rc;
    }
    server_bound_name(&m->listener, m->addr, sizeof(m->addr));
    fprintf(stderr, "ssmgate: metrics on http://%s/metrics\n", m->addr);
    *out = m;
    return 0;
}

const char *metrics_addr(const struct metrics *m)
{
    return m->addr;
}

void metrics_stop(struct metrics *m)
{
    if (m == NULL)
        return;
    while (!list_empty(&m->clients))
        client_kill(CONTAINER_OF(m->clients.next, struct metrics_client, link));
    uv_close((uv_handle_t *)&m->listener, listener_closed);
}
