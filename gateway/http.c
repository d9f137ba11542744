/*
 * http.c - libcurl multi on the libuv loop (curl's multi-uv.c pattern).
 *
 * One CURLM for the client: connections and TLS sessions are reused per
 * host. curl tells us which sockets to watch (socket callback -> one
 * uv_poll_t each, closed on CURL_POLL_REMOVE) and when to wake it (timer
 * callback -> one uv_timer_t; a 0 ms timeout becomes 1 ms so curl is never
 * re-entered from its own callback). Finished transfers are collected
 * after every action and their callbacks run from the loop.
 */
#include "http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "log.h"

#define HTTP_BODY_MAX (16u << 20)

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct http_req *reqs;   /* live requests */
    struct http_sock *socks; /* polls not yet closing */
    int closing;
    int handles_open;
};

struct http_req {
    struct http_req *next, *prev;
    struct http_client *client;
    CURL *easy;
    struct curl_slist *headers;
    http_done_cb *done;
    void *arg;
    char *body;
    size_t body_len, body_cap;
    int too_big;
    char request_id[128];
    char error_type[128];
    char date[64];
    char retry_after[32];
    char errbuf[CURL_ERROR_SIZE];
    void *post_copy; /* request body (curl does not copy POSTFIELDS) */
};

/* One per socket curl asks us to watch. */
struct http_sock {
    struct http_sock *next, *prev;
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_client *client;
};

static void http_check_done(struct http_client *c);

static void http_req_unlink(struct http_req *r)
{
    struct http_client *c = r->client;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
}

static void http_req_free(struct http_req *r)
{
    curl_multi_remove_handle(r->client->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r->post_copy);
    free(r);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct http_sock *s = h->data;
    struct http_client *c = s->client;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    http_check_done(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    http_check_done(c);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    uv_timer_start(&c->timer, on_timeout, timeout_ms == 0 ? 1 : timeout_ms, 0);
    return 0;
}

static void sock_closed(uv_handle_t *h);

static void sock_unlink(struct http_sock *s)
{
    struct http_client *c = s->client;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
}

static void sock_close(struct http_sock *s)
{
    sock_unlink(s);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void sock_closed(uv_handle_t *h)
{
    struct http_sock *s = h->data;
    struct http_client *c = s->client;
    free(s);
    c->handles_open--;
    if (c->closing && c->handles_open == 0)
        free(c);
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp,
                          void *socketp)
{
    struct http_client *c = userp;
    struct http_sock *s = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->client = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        c->handles_open++;
        s->next = c->socks;
        if (c->socks != NULL)
            c->socks->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (action & CURL_POLL_IN)
        events |= UV_READABLE;
    if (action & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
    struct http_req *r = userp;
    size_t len = size * n;
    if (r->body_len + len + 1 > HTTP_BODY_MAX) {
        r->too_big = 1;
        return 0; /* aborts the transfer */
    }
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (b == NULL)
            return 0;
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* Copies the value of "Name: value\r\n" when name matches. */
static void take_header(const char *line, size_t len, const char *name,
                        char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    if (len <= nlen + 1 || strncasecmp(line, name, nlen) != 0 ||
        line[nlen] != ':')
        return;
    const char *v = line + nlen + 1;
    size_t vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen > 0 &&
           (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= outlen)
        vlen = outlen - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *userp)
{
    struct http_req *r = userp;
    size_t len = size * n;
    take_header(p, len, "x-amzn-RequestId", r->request_id,
                sizeof(r->request_id));
    if (r->request_id[0] == '\0')
        take_header(p, len, "x-amz-request-id", r->request_id,
                    sizeof(r->request_id));
    take_header(p, len, "x-amzn-ErrorType", r->error_type,
                sizeof(r->error_type));
    take_header(p, len, "Date", r->date, sizeof(r->date));
    take_header(p, len, "x-amz-retry-after", r->retry_after,
                sizeof(r->retry_after));
    return len;
}

static int map_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return GW_ETIMEOUT;
    case CURLE_COULDNT_CONNECT:
        return GW_EREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return GW_EUNREACHABLE;
    case CURLE_OUT_OF_MEMORY:
        return GW_ENOMEM;
    default:
        return GW_EIO;
    }
}

static void http_check_done(struct http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct http_req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode result = msg->data.result;
        struct http_response resp;
        memset(&resp, 0, sizeof(resp));
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        if (result != CURLE_OK) {
            resp.transport_error =
                r->too_big ? GW_ETOO_BIG : map_curl_error(result);
            resp.error_text =
                r->errbuf[0] ? r->errbuf : curl_easy_strerror(result);
            if (r->too_big)
                resp.error_text = "response body too large";
        }
        resp.body = r->body ? r->body : "";
        resp.body_len = r->body_len;
        resp.request_id = r->request_id;
        resp.error_type = r->error_type;
        resp.date = r->date;
        resp.retry_after = r->retry_after;
        http_req_unlink(r);
        r->done(r, &resp, r->arg);
        http_req_free(r);
    }
}

struct http_client *http_client_new(uv_loop_t *loop)
{
    static int global_done;
    if (!global_done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = 1;
    }
    struct http_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        free(c);
        return NULL;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32L);
    return c;
}

static void timer_closed(uv_handle_t *h)
{
    struct http_client *c = h->data;
    c->handles_open--;
    if (c->handles_open == 0)
        free(c);
}

void http_client_free(struct http_client *c)
{
    if (c == NULL)
        return;
    while (c->reqs != NULL) {
        struct http_req *r = c->reqs;
        http_req_unlink(r);
        http_req_free(r);
    }
    c->closing = 1;
    /* Closing the multi closes curl's sockets; whatever polls curl did not
     * remove through the socket callback are closed here. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks != NULL)
        sock_close(c->socks);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}

struct http_req *http_request(struct http_client *c,
                              const struct http_request_opts *o,
                              http_done_cb *done, void *arg)
{
    struct http_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->client = c;
    r->done = done;
    r->arg = arg;
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        free(r);
        return NULL;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* TLS verification stays on: these are the defaults, set explicitly so
     * nothing else can turn them off. */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file != NULL && o->ca_file[0] != '\0')
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (o->no_proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (o->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    if (o->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    if (strcmp(o->method, "GET") != 0) {
        r->post_copy = malloc(o->body_len ? o->body_len : 1);
        if (r->post_copy == NULL)
            goto fail;
        if (o->body_len > 0)
            memcpy(r->post_copy, o->body, o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post_copy);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)o->body_len);
        if (strcmp(o->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    }
    /* No "Expect: 100-continue" round trip, and no default Content-Type
     * that would differ from the signed one. */
    r->headers = curl_slist_append(NULL, "Expect:");
    for (const char *const *h = o->headers; h != NULL && *h != NULL; h++) {
        struct curl_slist *l = curl_slist_append(r->headers, *h);
        if (l == NULL)
            goto fail;
        r->headers = l;
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        goto fail;
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    return r;
fail:
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->post_copy);
    free(r);
    return NULL;
}

void http_cancel(struct http_req *r)
{
    if (r == NULL)
        return;
    http_req_unlink(r);
    http_req_free(r);
}
