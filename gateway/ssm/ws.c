/*
 * ws.c - libwebsockets client glue.
 *
 * lws owns the wsi; we own struct ws. They are tied through the wsi's
 * opaque user data. Closing from our side detaches struct ws (no more
 * callbacks) and asks lws to drop the connection; lws frees the wsi later
 * from the loop. Lines lws logs go to our log at debug level.
 *
 * The HTTPS proxy: lws (built with LWS_CLIENT_HTTP_PROXYING) sends
 * "CONNECT host:443" to a vhost's proxy, checks for a 200 and then starts
 * its TLS on the same socket, verifying the AWS endpoint's name (the Host
 * we give it), not the proxy's; our read and write BIOs go under that TLS
 * once the WebSocket is open, as without a proxy. A vhost has one proxy
 * for all its connections, so there are two: the default one, which never
 * uses a proxy (not even the http_proxy variable lws would read by
 * itself), and "proxied", for hosts NO_PROXY does not name.
 */
#include "ws.h"

#include <libwebsockets.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "list.h"
#include "log.h"
#include "secret.h"
#include "tls_bio.h"

#define WS_SLOTS       64
#define WS_WRITE_BATCH 32
#define WS_SLOT_DATA   2048 /* a data message is ~1.1 KiB; bigger: own buffer */
#define WS_SPARE_MAX   1024 /* free frame buffers the context keeps */
#define WS_RX_MAX      (1 << 20)
#define WS_PING_MS     (5 * 60 * 1000)
#define WS_MAX_HEADERS 4
#define WS_PATH_MAX    2048
#define WS_WBUF        (64 * 1024) /* TLS records gathered per write */
#define WS_DRAIN_READS 64          /* records per socket per pass */
/* A socket that receives steadily (a bulk transfer at the service's pace,
 * one message a millisecond) wakes the loop once per WS_BULK_LOWAT bytes,
 * not once per message: a wake-up costs more than the message. What stays
 * below the mark is read WS_BULK_MS after the last read at the latest;
 * interactive traffic never enters bulk mode and waits for nothing. */
#define WS_BULK_LOWAT (12 * 1024) /* ~10 data messages */
#define WS_BULK_MS    12
#define WS_BULK_ENTER 4 /* messages within WS_BULK_MS: bulk */
#define WS_BULK_STAY  2 /* fewer per WS_BULK_MS: interactive again */

/* A frame buffer: LWS_PRE headroom, then the frame. Buffers of
 * WS_SLOT_DATA come from the context's free list and go back once
 * written, so an idle socket holds none: a ring of its own, touched slot
 * by slot as messages pass, kept ~60 KiB resident per idle tunnel. */
struct ws_frame {
    struct ws_frame *next; /* on the free list */
    uint8_t data[LWS_PRE + WS_SLOT_DATA];
};

struct ws_ctx {
    struct lws_context *lws;
    struct ws_frame *spare; /* free frame buffers, newest first */
    unsigned n_spare;
    struct lws_vhost *proxied; /* NULL: no proxy */
    struct proxy proxy;        /* the NO_PROXY list (credentials wiped) */
    char proxy_name[PROXY_HOST_MAX + 32];
    uv_loop_t *loop;
    char *ca_file;
    uv_check_t drain;
    uv_idle_t spin;  /* runs while a socket holds records poll can't see */
    struct list hot; /* sockets that received this loop pass */
    struct list tx;  /* sockets with frames to write this loop pass */
};

struct ws_slot {
    size_t len;
    int binary;
    struct ws_frame *frame; /* frames up to WS_SLOT_DATA */
    uint8_t *big;           /* LWS_PRE + len, for bigger ones */
};

struct ws {
    struct ws_ctx *ctx;
    struct lws *wsi;
    const struct ws_cb *cb;
    void *arg;
    struct ws_slot *slots; /* ring of WS_SLOTS */
    unsigned head, count;
    uint8_t *rx;
    size_t rx_len;
    int rx_binary;
    int open;
    int want_writable;
    int want_ping;
    int closing;
    int in_connect; /* inside lws_client_connect_via_info */
    int rx_paused;
    int via_proxy;
    BIO *wbuf;   /* gathers TLS records; NULL without TLS */
    BIO *rbuf;   /* reads TLS records ahead; NULL without TLS */
    int pollout; /* a writable callback is due */
    int hot;     /* on ctx->hot */
    struct list hot_link;
    int tx; /* on ctx->tx */
    struct list tx_link;
    uint64_t rx_msgs;
    uv_timer_t ping_timer;
    uv_timer_t bulk_timer; /* the tail read while bulk */
    int handles;           /* open uv handles; w is freed with the last */
    int bulk;              /* SO_RCVLOWAT is set */
    unsigned win_msgs;     /* messages in the window from win_t0 */
    uint64_t win_t0;
    char *hdr_name[WS_MAX_HEADERS];
    char *hdr_value[WS_MAX_HEADERS];
    size_t n_headers;
    char host[256];
};

static void ws_free(struct ws *w);

static struct ws_frame *ws_frame_get(struct ws_ctx *c)
{
    struct ws_frame *f = c->spare;
    if (f == NULL)
        return malloc(sizeof(*f));
    c->spare = f->next;
    c->n_spare--;
    return f;
}

static void ws_frame_put(struct ws_ctx *c, struct ws_frame *f)
{
    if (f == NULL)
        return;
    if (c->n_spare >= WS_SPARE_MAX) {
        free(f);
        return;
    }
    f->next = c->spare;
    c->spare = f;
    c->n_spare++;
}

static void ws_slot_release(struct ws_ctx *c, struct ws_slot *s)
{
    ws_frame_put(c, s->frame);
    free(s->big);
    s->frame = NULL;
    s->big = NULL;
}

static void ws_hot_add(struct ws *w)
{
    if (w->hot)
        return;
    w->hot = 1;
    list_insert_head(&w->ctx->hot, &w->hot_link);
}

static void ws_hot_remove(struct ws *w)
{
    if (!w->hot)
        return;
    w->hot = 0;
    list_remove(&w->hot_link);
}

static void ws_spin(uv_idle_t *h)
{
    (void)h; /* ws_drain, in the check phase, does the reading and writing */
}

/* Frames queued in a pass are written after its poll phase, all in one
 * send(), instead of after a POLLOUT round: asking lws for a writable
 * callback re-arms the socket in epoll (libuv deletes and re-adds it),
 * two syscalls and a loop pass per message at the service's pace. */
static void ws_tx_add(struct ws *w)
{
    if (w->tx || w->pollout)
        return; /* the writable callback is due and writes them */
    w->tx = 1;
    list_insert_head(&w->ctx->tx, &w->tx_link);
    uv_idle_start(&w->ctx->spin, ws_spin); /* the poll must not block */
}

static void ws_tx_remove(struct ws *w)
{
    if (!w->tx)
        return;
    w->tx = 0;
    list_remove(&w->tx_link);
}

static void ws_handle_closed(uv_handle_t *h)
{
    struct ws *w = h->data;
    if (--w->handles > 0)
        return;
    ws_hot_remove(w);
    ws_tx_remove(w);
    for (size_t i = 0; i < w->n_headers; i++) {
        free(w->hdr_name[i]);
        secret_free_str(w->hdr_value[i]);
    }
    for (unsigned i = 0; i < w->count; i++)
        ws_slot_release(w->ctx, &w->slots[(w->head + i) % WS_SLOTS]);
    free(w->slots);
    free(w->rx);
    free(w);
}

static void ws_free(struct ws *w)
{
    uv_close((uv_handle_t *)&w->ping_timer, ws_handle_closed);
    uv_close((uv_handle_t *)&w->bulk_timer, ws_handle_closed);
}

/* Reports the end once and detaches from the wsi. */
static void ws_set_lowat(struct ws *w, struct lws *wsi, int bulk);

/* Has lws drop wsi from its loop. The kill is lws's pending work, run
 * from its own callbacks; we may be in none of them (a record read from
 * our bulk timer), so its service is woken to run it now. */
static void ws_kill(struct ws_ctx *c, struct lws *wsi)
{
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    lws_cancel_service(c->lws);
}

/* Leaves the wsi to lws: whatever it still reads (a close frame, a last
 * record under the bulk mark) must wake it, with no timer of ours left. */
static void ws_detach(struct ws *w)
{
    w->closing = 1;
    uv_timer_stop(&w->ping_timer);
    uv_timer_stop(&w->bulk_timer);
    if (w->wsi == NULL)
        return;
    if (w->bulk)
        ws_set_lowat(w, w->wsi, 0);
    lws_set_opaque_user_data(w->wsi, NULL);
}

static void ws_report_close(struct ws *w, const char *reason)
{
    if (w->closing)
        return;
    ws_detach(w);
    w->wsi = NULL;
    if (w->in_connect) {
        /* ws_connect reports this one itself, as its return value. */
        log_debug("ws %s: %s", w->host, reason);
        return;
    }
    w->cb->on_close(w->arg, reason);
    ws_free(w);
}

/* The reader calls this (arg: the wsi) when it holds bytes poll() will
 * not report: ws_drain reads them. A detached wsi has no ws. */
static void ws_on_buffered_input(void *arg)
{
    struct ws *w = lws_get_opaque_user_data(arg);
    if (w != NULL && !w->closing)
        ws_hot_add(w);
}

/* Batches the TLS layer's reads and writes: see tls_bio.h. */
static void ws_batch_tls_io(struct ws *w, struct lws *wsi)
{
    SSL *ssl = lws_get_ssl(wsi);
    if (ssl == NULL)
        return;
    /* An idle tunnel's socket holds no TLS record buffers (~34 KiB each
     * otherwise); a busy one reuses them record after record. */
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    w->wbuf = tls_bio_gather_writes(ssl, WS_WBUF);
    w->rbuf = tls_bio_buffer_reads(ssl, ws_on_buffered_input, wsi);
}

/*
 * Asks lws for a writable callback once until it comes: lws restarts the
 * libuv poll watcher (an epoll_ctl) on every request, even a repeated one,
 * which cost a syscall per queued message.
 */
static void ws_want_pollout(struct ws *w, struct lws *wsi)
{
    if (w->pollout)
        return;
    w->pollout = 1;
    lws_callback_on_writable(wsi);
}

static void ws_set_lowat(struct ws *w, struct lws *wsi, int bulk)
{
    int fd = lws_get_socket_fd(wsi);
    int lowat = bulk ? WS_BULK_LOWAT : 1;
    if (fd >= 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) != 0)
        bulk = 0; /* then every message wakes the loop, as before */
    w->bulk = bulk;
}

static int ws_read_one(struct ws_ctx *c, struct ws *w);

/* Every WS_BULK_MS while bulk: read what waits under the mark; leave bulk
 * mode when the messages of the last period were few. */
static void ws_bulk_due(uv_timer_t *t)
{
    struct ws *w = t->data;
    unsigned n = w->win_msgs;
    w->win_msgs = 0;
    w->win_t0 = uv_now(w->ctx->loop);
    if (w->closing || w->wsi == NULL)
        return;
    if (n < WS_BULK_STAY) {
        uv_timer_stop(t);
        ws_set_lowat(w, w->wsi, 0);
    }
    if (!w->rx_paused && w->open)
        ws_read_one(w->ctx, w); /* the buffered rest goes to ws_drain */
}

/* One more message received: bulk once WS_BULK_ENTER come within
 * WS_BULK_MS. */
static void ws_bulk_count(struct ws *w, struct lws *wsi)
{
    uint64_t now = uv_now(w->ctx->loop);
    if (!w->bulk && now - w->win_t0 > WS_BULK_MS) {
        w->win_t0 = now;
        w->win_msgs = 0;
    }
    if (++w->win_msgs < WS_BULK_ENTER || w->bulk)
        return;
    ws_set_lowat(w, wsi, 1);
    if (w->bulk)
        uv_timer_start(&w->bulk_timer, ws_bulk_due, WS_BULK_MS, WS_BULK_MS);
}

/*
 * Writes queued frames, several per call, their TLS records gathered into
 * one send(). lws appends to its own buffer if the socket takes only part,
 * so stop then and let the writable callback go on. Returns -1 when the
 * connection failed (reported already), else 0. May call on_writable,
 * which may close w: touch nothing after a 0 from here.
 */
static int ws_write_frames(struct ws *w, struct lws *wsi)
{
    for (int n = 0; n < WS_WRITE_BATCH && w->count > 0; n++) {
        if (lws_partial_buffered(wsi))
            break;
        struct ws_slot *s = &w->slots[w->head];
        uint8_t *frame = (s->big != NULL ? s->big : s->frame->data) + LWS_PRE;
        int rc = lws_write(wsi, frame, s->len,
                           s->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        ws_slot_release(w->ctx, s);
        w->head = (w->head + 1) % WS_SLOTS;
        w->count--;
        if (rc < (int)s->len) {
            ws_report_close(w, "WebSocket write failed");
            return -1;
        }
    }
    int flushed = tls_bio_flush(w->wbuf);
    if (flushed < 0) {
        ws_report_close(w, "WebSocket write failed");
        return -1;
    }
    if (flushed == 0 || lws_partial_buffered(wsi))
        ws_want_pollout(w, wsi); /* the socket is full */
    else if (w->count > 0)
        ws_tx_add(w); /* the rest in the next pass */
    if (w->want_writable && w->count < WS_SLOTS) {
        w->want_writable = 0;
        w->cb->on_writable(w->arg);
    }
    return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                       void *user, void *in, size_t len)
{
    struct ws *w = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (w == NULL)
            break;
        unsigned char **p = in, *end = *p + len;
        for (size_t i = 0; i < w->n_headers; i++) {
            char name[96];
            snprintf(name, sizeof(name), "%s:", w->hdr_name[i]);
            if (lws_add_http_header_by_name(
                    wsi, (const unsigned char *)name,
                    (const unsigned char *)w->hdr_value[i],
                    (int)strlen(w->hdr_value[i]), p, end) != 0)
                return -1;
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (w == NULL)
            return -1;
        w->wsi = wsi;
        w->open = 1;
        ws_batch_tls_io(w, wsi);
        w->want_ping = 1; /* a ping right after open, as the plugin does */
        ws_want_pollout(w, wsi);
        w->cb->on_open(w->arg);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (w == NULL)
            return -1;
        if (lws_is_first_fragment(wsi)) {
            w->rx_len = 0;
            w->rx_binary = lws_frame_is_binary(wsi);
        }
        if (w->rx_len + len > WS_RX_MAX) {
            ws_report_close(w, "WebSocket message too large");
            return -1;
        }
        if (lws_is_final_fragment(wsi)) {
            w->rx_msgs++;
            ws_bulk_count(w, wsi);
            if (w->rbuf == NULL)
                ws_hot_add(w); /* without TLS, drain while messages come */
        }
        if (lws_is_final_fragment(wsi) && w->rx_len == 0) {
            w->cb->on_message(w->arg, in, len, w->rx_binary); /* no copy */
            break;
        }
        if (w->rx == NULL && (w->rx = malloc(WS_RX_MAX)) == NULL) {
            ws_report_close(w, "out of memory");
            return -1;
        }
        memcpy(w->rx + w->rx_len, in, len);
        w->rx_len += len;
        if (lws_is_final_fragment(wsi)) {
            size_t n = w->rx_len;
            w->rx_len = 0;
            w->cb->on_message(w->arg, w->rx, n, w->rx_binary);
        }
        break;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (w == NULL)
            return -1;
        w->pollout = 0;
        int flushed = tls_bio_flush(w->wbuf);
        if (flushed < 0) {
            ws_report_close(w, "WebSocket write failed");
            return -1;
        }
        if (flushed == 0) {
            ws_want_pollout(w, wsi);
            break;
        }
        if (w->want_ping) {
            static const char ka[] = "keepalive";
            uint8_t ping[LWS_PRE + sizeof(ka)];
            memcpy(ping + LWS_PRE, ka, sizeof(ka) - 1);
            w->want_ping = 0;
            if (lws_write(wsi, ping + LWS_PRE, sizeof(ka) - 1, LWS_WRITE_PING) <
                0)
                return -1;
            if (w->count > 0 || tls_bio_flush(w->wbuf) == 0)
                ws_want_pollout(w, wsi);
            break;
        }
        return ws_write_frames(w, wsi);
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char why[GW_REASON_MAX];
        const char *what = in ? (const char *)in : "unknown error";
        if (w != NULL && w->via_proxy && strncmp(what, "proxy", 5) == 0)
            snprintf(why, sizeof(why),
                     "WebSocket connect through the HTTPS proxy %s failed: "
                     "%s (%s)",
                     w->ctx->proxy_name,
                     strcmp(what, "proxy not h1") == 0
                         ? "it refused the CONNECT (no 200: wrong "
                           "credentials, or port 443 not allowed?)"
                         : "the proxy closed or failed the connection",
                     what);
        else
            snprintf(why, sizeof(why), "WebSocket connect failed%s%s: %s",
                     w != NULL && w->via_proxy ? " through the HTTPS proxy "
                                               : "",
                     w != NULL && w->via_proxy ? w->ctx->proxy_name : "", what);
        if (w != NULL)
            ws_report_close(w, why);
        break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (w != NULL)
            ws_report_close(w, "WebSocket closed by the server");
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        if (w != NULL)
            ws_report_close(w, "WebSocket connection lost");
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols ws_protocols[] = {
    {"ssmgate-dc", ws_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void ws_lws_log(int level, const char *line)
{
    /* lws lines end in a newline; ours add their own. */
    char copy[512];
    snprintf(copy, sizeof(copy), "%s", line);
    copy[strcspn(copy, "\n")] = '\0';
    if (level & LLL_ERR)
        log_debug("lws: %s", copy);
    else
        log_debug("lws: %s", copy);
}

static int ws_rx_ready(const struct ws *w)
{
    return !w->closing && w->wsi != NULL && w->open && !w->rx_paused;
}

/* Whether w has input that no poll event will announce. */
static int ws_rx_buffered(const struct ws *w)
{
    return ws_rx_ready(w) && w->rbuf != NULL && tls_bio_has_record(w->rbuf);
}

/* One record (TLS) or message (plain) through lws, as a poll event would.
 * Returns 0 when nothing moved. */
static int ws_read_one(struct ws_ctx *c, struct ws *w)
{
    size_t held = w->rbuf != NULL ? BIO_ctrl_pending(w->rbuf) : 0;
    uint64_t msgs = w->rx_msgs;
    struct lws_pollfd pfd = {.fd = lws_get_socket_fd(w->wsi),
                             .events = LWS_POLLIN,
                             .revents = LWS_POLLIN};
    if (pfd.fd < 0 || lws_service_fd(c->lws, &pfd) < 0)
        return 0;
    if (w->closing || w->wsi == NULL)
        return 0;
    return w->rbuf != NULL ? BIO_ctrl_pending(w->rbuf) != held
                           : w->rx_msgs != msgs;
}

/*
 * lws reads one TLS record, which is one message here, per poll event.
 * Records the read-ahead buffer already holds raise no poll event, and
 * each poll event costs lws and libuv several syscalls anyway. After the
 * poll phase, read on from the sockets that just received while whole
 * records wait (plain sockets: while messages come), so a burst costs one
 * loop pass instead of one per message. Sockets still holding records
 * after their share keep the loop spinning instead of blocking in poll.
 */
static void ws_drain(uv_check_t *h)
{
    struct ws_ctx *c = h->data;
    /* Every socket on the list gets its share each pass (a capped batch
     * starved the ones left over). Take the whole list: reading puts
     * sockets on a fresh one. No ws is freed during this callback (frees
     * wait for a uv close callback), and only close callbacks unlink a
     * socket that is still marked hot. */
    struct list todo, *e, *tmp;
    list_move_all(&todo, &c->hot);
    while (!list_empty(&todo)) {
        struct ws *w = CONTAINER_OF(todo.next, struct ws, hot_link);
        list_remove(&w->hot_link);
        w->hot = 0;
        for (int k = 0; k < WS_DRAIN_READS && ws_rx_ready(w); k++) {
            if (w->rbuf != NULL && !tls_bio_has_record(w->rbuf))
                break;
            if (!ws_read_one(c, w)) {
                ws_hot_remove(w); /* no progress: don't spin on it */
                break;
            }
        }
    }
    /* Keep only what poll will not announce: whole buffered records. */
    LIST_FOREACH_SAFE (e, tmp, &c->hot) {
        struct ws *w = CONTAINER_OF(e, struct ws, hot_link);
        if (!ws_rx_buffered(w))
            ws_hot_remove(w);
    }
    /* What this pass queued, the acks of what it read among it. */
    list_move_all(&todo, &c->tx);
    while (!list_empty(&todo)) {
        struct ws *w = CONTAINER_OF(todo.next, struct ws, tx_link);
        list_remove(&w->tx_link);
        w->tx = 0;
        struct lws *wsi = w->wsi;
        if (w->closing || wsi == NULL || !w->open || w->pollout)
            continue;
        if (ws_write_frames(w, wsi) < 0) /* outside lws: end it ourselves */
            ws_kill(c, wsi);
    }
    if (!list_empty(&c->hot) || !list_empty(&c->tx))
        uv_idle_start(&c->spin, ws_spin);
    else
        uv_idle_stop(&c->spin);
}

/* The second vhost, whose connections go through the proxy. The address
 * lws takes is "user:pass@host:port" (it base64s the user info into a
 * Proxy-Authorization: basic header); our copy of it is wiped here. */
static int ws_add_proxied(struct ws_ctx *c,
                          struct lws_context_creation_info *info,
                          const struct proxy *proxy)
{
    char address[2 * PROXY_CRED_MAX + PROXY_HOST_MAX + 16];
    int v6 = strchr(proxy->host, ':') != NULL;
    snprintf(address, sizeof(address), "%s%s%s%s%s%s:%u", proxy->user,
             proxy->user[0] ? ":" : "", proxy->pass, proxy->user[0] ? "@" : "",
             v6 ? "[" : "", proxy->host, proxy->port);
    /* lws splits at its last '@' and takes [v6]:port as a URL has it. */
    info->vhost_name = "proxied";
    info->http_proxy_address = address;
    info->http_proxy_port = proxy->port;
    c->proxied = lws_create_vhost(c->lws, info);
    secret_wipe(address, sizeof(address));
    info->http_proxy_address = NULL;
    return c->proxied != NULL ? 0 : GW_EIO;
}

int ws_ctx_new(uv_loop_t *loop, const char *ca_file, const struct proxy *proxy,
               struct ws_ctx **out)
{
    struct ws_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return GW_ENOMEM;
    lws_set_log_level(log_enabled(LOG_DEBUG) ? LLL_ERR | LLL_WARN : 0,
                      ws_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    void *loops[1] = {loop};
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ws_protocols;
    info.options =
        LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = loops;
    /* Not NULL: lws would take the http_proxy variable for the default
     * vhost. "" sets no proxy (lws logs that it has no port). */
    info.http_proxy_address = "";
    if (ca_file != NULL && ca_file[0] != '\0') {
        c->ca_file = strdup(ca_file);
        info.client_ssl_ca_filepath = c->ca_file;
    }
    c->loop = loop;
    list_init(&c->hot);
    list_init(&c->tx);
    c->lws = lws_create_context(&info);
    if (c->lws == NULL) {
        free(c->ca_file);
        free(c);
        return GW_EIO;
    }
    if (proxy != NULL && proxy->set) {
        c->proxy = *proxy;
        proxy_wipe(&c->proxy);
        proxy_display(proxy, c->proxy_name, sizeof(c->proxy_name));
    }
    uv_idle_init(loop, &c->spin);
    uv_unref((uv_handle_t *)&c->spin); /* still makes poll not block */
    uv_check_init(loop, &c->drain);
    c->drain.data = c;
    uv_check_start(&c->drain, ws_drain);
    uv_unref((uv_handle_t *)&c->drain);
    *out = c;
    /* The context is whole without the proxied vhost: the caller frees
     * it as usual on this error. */
    return proxy != NULL && proxy->set ? ws_add_proxied(c, &info, proxy) : 0;
}

void ws_ctx_free(struct ws_ctx *c)
{
    if (c == NULL)
        return;
    uv_close((uv_handle_t *)&c->drain, NULL);
    uv_close((uv_handle_t *)&c->spin, NULL);
    lws_context_destroy(c->lws);
}

/* With a foreign loop the first destroy only closes lws's uv handles;
 * the second, after the loop ran their close callbacks, frees the rest. */
void ws_ctx_finish(struct ws_ctx *c)
{
    if (c == NULL)
        return;
    lws_context_destroy(c->lws);
    while (c->spare != NULL) {
        struct ws_frame *f = c->spare;
        c->spare = f->next;
        free(f);
    }
    free(c->ca_file);
    free(c);
}

static void ws_ping_due(uv_timer_t *t)
{
    struct ws *w = t->data;
    if (w->wsi != NULL && w->open) {
        w->want_ping = 1;
        ws_want_pollout(w, w->wsi);
    }
}

int ws_connect(struct ws_ctx *ctx, const char *url,
               const struct ws_header *headers, size_t n_headers,
               const struct ws_cb *cb, void *arg, struct ws **out)
{
    int tls;
    if (strncmp(url, "wss://", 6) == 0)
        tls = 1;
    else if (strncmp(url, "ws://", 5) == 0)
        tls = 0;
    else
        return GW_EINVAL;
    if (n_headers > WS_MAX_HEADERS)
        return GW_EINVAL;
    const char *auth = url + (tls ? 6 : 5);
    size_t alen = strcspn(auth, "/?");
    struct ws *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return GW_ENOMEM;
    /* lws copies what it needs of the path while it connects (its stash):
     * the socket keeps no copy for its whole life. */
    char path[WS_PATH_MAX];
    if (alen == 0 || alen >= sizeof(w->host) ||
        strlen(auth + alen) >= sizeof(path) - 1) {
        free(w);
        return GW_EINVAL;
    }
    memcpy(w->host, auth, alen);
    snprintf(path, sizeof(path), "%s%s", auth[alen] == '/' ? "" : "/",
             auth + alen);
    /* host:port, [v6]:port */
    char address[256];
    int port = tls ? 443 : 80;
    snprintf(address, sizeof(address), "%s", w->host);
    char *colon = strrchr(address, ':');
    if (colon != NULL && strchr(colon, ']') == NULL) {
        port = atoi(colon + 1);
        *colon = '\0';
    }
    if (address[0] == '[') {
        memmove(address, address + 1, strlen(address));
        address[strcspn(address, "]")] = '\0';
    }
    w->ctx = ctx;
    w->cb = cb;
    w->arg = arg;
    w->slots = calloc(WS_SLOTS, sizeof(*w->slots));
    for (size_t i = 0; i < n_headers; i++) {
        w->hdr_name[i] = strdup(headers[i].name);
        w->hdr_value[i] = strdup(headers[i].value);
        w->n_headers++;
    }
    uv_timer_init(ctx->loop, &w->ping_timer);
    w->ping_timer.data = w;
    uv_timer_init(ctx->loop, &w->bulk_timer);
    w->bulk_timer.data = w;
    w->handles = 2;
    if (w->slots == NULL) {
        ws_free(w);
        return GW_ENOMEM;
    }
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof(ci));
    ci.context = ctx->lws;
    ci.address = address;
    ci.port = port;
    ci.path = path;
    ci.host = w->host;
    ci.origin = NULL;
    ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
    ci.local_protocol_name = ws_protocols[0].name;
    ci.opaque_user_data = w;
    if (ctx->proxied != NULL && !proxy_bypass(&ctx->proxy, address)) {
        ci.vhost = ctx->proxied;
        w->via_proxy = 1;
    }
    w->in_connect = 1;
    struct lws *wsi = lws_client_connect_via_info(&ci);
    w->in_connect = 0;
    if (wsi == NULL || w->closing) {
        if (wsi != NULL)
            lws_set_opaque_user_data(wsi, NULL);
        ws_free(w);
        return GW_EIO;
    }
    w->wsi = wsi;
    uv_timer_start(&w->ping_timer, ws_ping_due, WS_PING_MS, WS_PING_MS);
    *out = w;
    return 0;
}

int ws_send(struct ws *w, const void *data, size_t len, int binary)
{
    if (w->closing || w->wsi == NULL || !w->open)
        return GW_ECLOSED;
    if (len > WS_RX_MAX)
        return GW_ETOO_BIG;
    if (w->count == WS_SLOTS) {
        w->want_writable = 1;
        return GW_EAGAIN;
    }
    struct ws_slot *s = &w->slots[(w->head + w->count) % WS_SLOTS];
    uint8_t *dst;
    if (len > WS_SLOT_DATA) { /* not the hot path: payload_size > 1.9 KiB */
        if ((s->big = malloc(LWS_PRE + len)) == NULL)
            return GW_ENOMEM;
        dst = s->big;
    } else {
        if ((s->frame = ws_frame_get(w->ctx)) == NULL)
            return GW_ENOMEM;
        dst = s->frame->data;
    }
    memcpy(dst + LWS_PRE, data, len);
    s->len = len;
    s->binary = binary;
    w->count++;
    ws_tx_add(w);
    return 0;
}

int ws_can_send(const struct ws *w)
{
    return !w->closing && w->open && w->count < WS_SLOTS;
}

int ws_backlogged(struct ws *w, unsigned max)
{
    if (w->count < max)
        return 0;
    w->want_writable = 1;
    return 1;
}

void ws_rx_pause(struct ws *w, int paused)
{
    w->rx_paused = paused;
    if (w->wsi != NULL)
        lws_rx_flow_control(w->wsi, paused ? 0 : 1);
    if (ws_rx_buffered(w)) { /* no poll event will come for these */
        ws_hot_add(w);
        uv_idle_start(&w->ctx->spin, ws_spin);
    }
}

void ws_close(struct ws *w)
{
    if (w == NULL || w->closing)
        return;
    ws_detach(w);
    /* Drop the TCP connection without a close frame, as the plugin does;
     * lws frees the wsi from the loop. */
    if (w->wsi != NULL)
        ws_kill(w->ctx, w->wsi);
    w->wsi = NULL;
    ws_free(w);
}
