/*
 * http.c - libcurl multi on the libuv loop (the curl multi-uv.c pattern).
 *
 * Model: one CURLM per client, so every request shares curl's connection
 * and DNS caches (keep-alive per endpoint, HTTP/2 multiplexing when the
 * server offers it). curl tells us which sockets to watch (sock_cb) and
 * when to wake it (timer_cb); we keep one uv_poll_t per socket and one
 * uv_timer_t and call curl_multi_socket_action() from the loop, never from
 * inside a curl callback. Finished transfers are collected after each
 * socket action and reported to their owner; the request is freed after
 * its callback returns.
 *
 * Lifetimes: a struct http_sock lives from CURL_POLL_IN/OUT until its
 * poll handle's close callback. The client is freed once the timer and
 * every poll handle have closed.
 */
#include "http.h"

#include <curl/curl.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "list.h"
#include "log.h"

#define HTTP_BODY_MAX (16u * 1024 * 1024)
#define HTTP_HDR_VAL  256

struct http_client {
    uv_loop_t *loop;
    int has_proxy;      /* proxy decides; else curl's environment rules */
    struct proxy proxy; /* its credentials are wiped at free */
    char proxy_url[PROXY_HOST_MAX + 32]; /* "http://host:port" */
    CURLM *multi;
    uv_timer_t timer;
    struct list reqs; /* live requests */
    int open_handles; /* timer + polls not yet closed */
    int dispatching;  /* inside check_done: defer the free */
    int free_requested;
    int freeing;
};

/* One socket curl asked us to watch. Owned by the client until closed. */
struct http_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_client *c;
};

struct http_req {
    struct http_client *c;
    struct list link; /* on c->reqs */
    CURL *easy;
    struct curl_slist *headers;
    http_done_cb *done;
    void *arg;
    char *body;
    size_t body_len, body_cap;
    int too_big;
    char request_id[HTTP_HDR_VAL];
    char error_type[HTTP_HDR_VAL];
    char date[HTTP_HDR_VAL];
    char retry_after[HTTP_HDR_VAL];
    char errbuf[CURL_ERROR_SIZE];
};

static void handle_closed(uv_handle_t *h);
static void client_finish_free(struct http_client *c);

static void req_unlink(struct http_req *r)
{
    list_remove(&r->link);
}

static void req_free(struct http_req *r)
{
    if (r->easy) {
        curl_multi_remove_handle(r->c->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

static int map_curl_error(CURLcode cc, int too_big)
{
    if (too_big)
        return GW_ETOO_BIG;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return GW_ETIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return GW_EREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return GW_EUNREACHABLE;
    case CURLE_OUT_OF_MEMORY:
        return GW_ENOMEM;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return GW_ECRYPTO;
    default:
        return GW_EIO;
    }
}

/* Reports every finished transfer. Runs from a poll or timer callback. */
static void check_done(struct http_client *c)
{
    CURLMsg *msg;
    int left;

    c->dispatching++;
    while (!c->free_requested &&
           (msg = curl_multi_info_read(c->multi, &left))) {
        struct http_req *r = NULL;
        struct http_response resp;
        long status = 0;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CHECK(r != NULL);
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        memset(&resp, 0, sizeof(resp));
        if (msg->data.result != CURLE_OK) {
            resp.transport_error = map_curl_error(msg->data.result, r->too_big);
            resp.error_text =
                r->errbuf[0] ? r->errbuf : curl_easy_strerror(msg->data.result);
            status = 0;
        }
        resp.status = status;
        resp.body = r->body ? r->body : "";
        resp.body_len = r->body_len;
        resp.request_id = r->request_id;
        resp.error_type = r->error_type;
        resp.date = r->date;
        resp.retry_after = r->retry_after;
        req_unlink(r);
        r->done(r, &resp, r->arg);
        req_free(r);
    }
    c->dispatching--;
    if (c->dispatching == 0 && c->free_requested && !c->freeing)
        client_finish_free(c);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct http_sock *s = CONTAINER_OF(p, struct http_sock, poll);
    struct http_client *c = s->c;
    int flags = 0;
    int running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static void timer_fired(uv_timer_t *t)
{
    struct http_client *c = CONTAINER_OF(t, struct http_client, timer);
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

/* curl's timer callback: only (re)arms the uv timer. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;

    (void)multi;
    if (c->freeing)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    /* 0 would run curl from inside this callback's caller; wait 1 ms. */
    if (timeout_ms == 0)
        timeout_ms = 1;
    uv_timer_start(&c->timer, timer_fired, (uint64_t)timeout_ms, 0);
    return 0;
}

/* curl's socket callback: start, change or stop watching one socket. */
static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                   void *sockp)
{
    struct http_client *c = userp;
    struct http_sock *s = sockp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, handle_closed);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        c->open_handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    struct http_client *c;

    if (h->type == UV_POLL) {
        struct http_sock *s = CONTAINER_OF(h, struct http_sock, poll);
        c = s->c;
        free(s);
    } else {
        c = CONTAINER_OF(h, struct http_client, timer);
    }
    c->open_handles--;
    if (c->freeing && c->open_handles == 0) {
        proxy_wipe(&c->proxy);
        free(c);
    }
}

struct http_client *http_client_new(uv_loop_t *loop, const struct proxy *proxy)
{
    struct http_client *c;
    static int global_done;

    if (!global_done) {
        /* Not thread-safe by design: ssmgate runs one loop thread. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        global_done = 1;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    if (proxy != NULL) {
        c->has_proxy = 1;
        c->proxy = *proxy;
        proxy_display(&c->proxy, c->proxy_url, sizeof(c->proxy_url));
    }
    list_init(&c->reqs);
    c->multi = curl_multi_init();
    if (!c->multi) {
        proxy_wipe(&c->proxy);
        free(c);
        return NULL;
    }
    CHECK(uv_timer_init(loop, &c->timer) == 0);
    c->open_handles = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32L);
    return c;
}

static void client_finish_free(struct http_client *c)
{
    c->freeing = 1;
    while (!list_empty(&c->reqs)) {
        struct http_req *r = CONTAINER_OF(c->reqs.next, struct http_req, link);
        req_unlink(r);
        req_free(r);
    }
    /* Closing the cached connections makes curl call sock_cb with
     * CURL_POLL_REMOVE, which closes their poll handles. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

void http_client_free(struct http_client *c)
{
    if (!c || c->free_requested)
        return;
    c->free_requested = 1;
    if (c->dispatching)
        return; /* check_done finishes it */
    client_finish_free(c);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct http_req *r = userp;
    size_t n = size * nmemb;

    if (n > HTTP_BODY_MAX - r->body_len) {
        r->too_big = 1;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        char *nb;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        nb = realloc(r->body, cap);
        if (!nb)
            return 0;
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, ptr, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static void copy_header_value(char *dst, const char *v, size_t len)
{
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
                   v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= HTTP_HDR_VAL)
        len = HTTP_HDR_VAL - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    struct http_req *r = userp;
    size_t n = size * nitems;
    static const struct {
        const char *name;
        size_t off;
    } want[] = {
        {"x-amzn-requestid", offsetof(struct http_req, request_id)},
        {"x-amz-request-id", offsetof(struct http_req, request_id)},
        {"x-amzn-errortype", offsetof(struct http_req, error_type)},
        {"date", offsetof(struct http_req, date)},
        {"x-amz-retry-after", offsetof(struct http_req, retry_after)},
    };
    const char *colon;
    size_t i;

    /* A new status line (after 100 Continue): forget earlier headers. */
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        r->request_id[0] = r->error_type[0] = r->date[0] = '\0';
        r->retry_after[0] = '\0';
        return n;
    }
    colon = memchr(buf, ':', n);
    if (!colon)
        return n;
    for (i = 0; i < ARRAY_SIZE(want); i++) {
        size_t nl = strlen(want[i].name);
        if ((size_t)(colon - buf) == nl &&
            strncasecmp(buf, want[i].name, nl) == 0) {
            copy_header_value((char *)r + want[i].off, colon + 1,
                              n - (size_t)(colon - buf) - 1);
            break;
        }
    }
    return n;
}

/* Whether the request to url goes through the proxy (NO_PROXY). */
static int wants_proxy(struct http_client *c, const char *url)
{
    char *host = NULL;
    CURLU *u = curl_url();
    int via = 1;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        via = !proxy_bypass(&c->proxy, host);
    curl_free(host);
    curl_url_cleanup(u);
    return via;
}

/*
 * The request's way: the proxy core/proxy.h decided, or direct. An empty
 * proxy string turns off curl's own environment lookup, and an empty
 * no-proxy list its own NO_PROXY match: the decision is made once, here,
 * as ws.c makes it for the WebSocket. Instance metadata and container
 * credentials never go through a proxy (no_proxy).
 */
static void set_proxy(struct http_client *c, CURL *e,
                      const struct http_request_opts *o)
{
    if (!o->no_proxy && !c->has_proxy)
        return; /* curl's environment rules */
    if (o->no_proxy || !wants_proxy(c, o->url)) {
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        return;
    }
    curl_easy_setopt(e, CURLOPT_PROXY, c->proxy_url);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    curl_easy_setopt(e, CURLOPT_PROXYTYPE, (long)CURLPROXY_HTTP);
    if (c->proxy.user[0] != '\0') {
        curl_easy_setopt(e, CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_PROXYUSERNAME, c->proxy.user);
        curl_easy_setopt(e, CURLOPT_PROXYPASSWORD, c->proxy.pass);
    }
}

static int has_header(const char *const *headers, const char *name)
{
    size_t nl = strlen(name);

    for (; headers && *headers; headers++)
        if (strncasecmp(*headers, name, nl) == 0 && (*headers)[nl] == ':')
            return 1;
    return 0;
}

struct http_req *http_request(struct http_client *c,
                              const struct http_request_opts *o,
                              http_done_cb *done, void *arg)
{
    struct http_req *r;
    const char *const *h;
    CURL *e;

    if (!c || c->free_requested || !o || !o->url || !o->method || !done)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->c = c;
    list_init(&r->link);
    r->done = done;
    r->arg = arg;
    e = r->easy = curl_easy_init();
    if (!e)
        goto fail;
    for (h = o->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(r->headers, *h);
        if (!n)
            goto fail;
        r->headers = n;
    }
    /* Exactly the headers we signed: no 100-continue, no default
     * form Content-Type. */
    r->headers = curl_slist_append(r->headers, "Expect:");
    if (r->headers && !has_header(o->headers, "Content-Type"))
        r->headers = curl_slist_append(r->headers, "Content-Type:");
    if (!r->headers)
        goto fail;

    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ssmgate/" SSMGATE_VERSION);
    if (o->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    if (o->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    if (o->ca_file && o->ca_file[0])
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    set_proxy(c, e, o);

    if (strcmp(o->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS,
                         o->body_len ? (const char *)o->body : "");
        if (strcmp(o->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    }

    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        goto fail;
    list_insert_head(&c->reqs, &r->link);
    return r;
fail:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r);
    return NULL;
}

void http_cancel(struct http_req *r)
{
    if (!r)
        return;
    req_unlink(r);
    req_free(r);
}
