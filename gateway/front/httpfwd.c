/*
 * httpfwd.c - rewriting heads for and from the origin (see httpfwd.h).
 *
 * Both directions drop the same hop-by-hop fields (http1_hop_by_hop) and
 * add the proxy's own Connection and Via; field lines are copied as they
 * came otherwise (names keep their case, values their bytes).
 */
#include "httpfwd.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

/* An output buffer that remembers whether anything did not fit. */
struct out {
    char *p;
    size_t cap, len;
    int full;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Copies the field lines from line (after the start line) up to the
 * blank line, without the hop-by-hop ones and those skip() names. The
 * head was checked by the parser: a malformed line ends the copy. */
static void copy_fields(struct out *o, const char *line, const char *end,
                        const struct http1_facts *fx,
                        int (*skip)(const struct http1_field *f, void *arg),
                        void *arg)
{
    struct http1_field f;
    while (http1_next_field(&line, end, &f) == 1) {
        if (http1_hop_by_hop(fx, &f) || skip(&f, arg))
            continue;
        put(o, f.name, f.name_len);
        put(o, ": ", 2);
        put(o, f.value, f.value_len);
        put(o, "\r\n", 2);
    }
}

/* ---- request ---- */

static int skip_request_field(const struct http1_field *f, void *arg)
{
    (void)arg;
    /* Host comes from the target URI (RFC 9112 section 3.2.2); the proxy
     * credentials are ours and never go on to the origin. */
    return http1_field_is(f, "Host") ||
           http1_field_is(f, "Proxy-Authorization");
}

size_t httpfwd_request_head(const uint8_t *head,
                            const struct httpconnect_request *r, char *out,
                            size_t cap)
{
    const char *s = (const char *)head;
    const char *end = s + r->head_len;
    struct out o = {out, cap, 0, 0};
    put(&o, s, r->method_len);
    put(&o, " ", 1);
    if (r->path_len == 0 || s[r->path_off] != '/')
        put(&o, "/", 1);
    put(&o, s + r->path_off, r->path_len);
    /* An HTTP/1.0 client's request goes as 1.0, so the origin does not
     * answer in chunks that client cannot read (RFC 9110 section 2.5
     * allows this downgrade). */
    puts_(&o, r->minor > 0 ? " HTTP/1.1\r\nHost: " : " HTTP/1.0\r\nHost: ");
    put(&o, s + r->authority_off, r->authority_len);
    puts_(&o, "\r\n");
    const char *line = memchr(s, '\n', r->head_len);
    if (line != NULL)
        copy_fields(&o, line + 1, end, &r->facts, skip_request_field, NULL);
    puts_(&o, r->minor > 0 ? "Connection: close\r\nVia: 1.1 ssmgate\r\n\r\n"
                           : "Connection: close\r\nVia: 1.0 ssmgate\r\n\r\n");
    return o.full ? 0 : o.len;
}

/* ---- response ---- */

void httpfwd_resp_init(struct httpfwd_resp *r,
                       const struct httpconnect_request *req)
{
    r->state = HTTPFWD_RESP_HEAD;
    r->head_method = req->head_method;
    r->client_minor = req->minor;
    r->client_keep = req->keep_alive;
    r->keep = 0;
    r->status = 0;
    r->emitted = 0;
    r->head_len = 0;
    http1_body_init(&r->body, HTTP1_BODY_NONE, 0);
}

static void emit_out(struct httpfwd_resp *r, httpfwd_emit_fn *emit, void *arg,
                     const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    r->emitted += n;
    emit(arg, p, n);
}

static int skip_length(const struct http1_field *f, void *arg)
{
    /* With Transfer-Encoding the chunks frame the body: a Content-Length
     * beside it is dropped (RFC 9112 section 6.3). */
    return *(const int *)arg && http1_field_is(f, "Content-Length");
}

/* "HTTP/1.x NNN reason": 0 with *code and the reason, or GW_EPROTO. */
static int status_line(const char *s, size_t len, int *code,
                       const char **reason, size_t *reason_len)
{
    if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' ||
        s[8] != ' ')
        return GW_EPROTO;
    for (int i = 9; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return GW_EPROTO;
    *code = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (*code < 100 || (len > 12 && s[12] != ' '))
        return GW_EPROTO;
    *reason = len > 13 ? s + 13 : "";
    *reason_len = len > 13 ? len - 13 : 0;
    for (size_t i = 0; i < *reason_len; i++) {
        unsigned char c = (unsigned char)(*reason)[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return GW_EPROTO;
    }
    return 0;
}

/* One complete head in r->head: rewritten to the client. */
static int resp_head(struct httpfwd_resp *r, httpfwd_emit_fn *emit, void *arg,
                     const char **why)
{
    const char *s = (const char *)r->head;
    const char *end = s + r->head_len;
    const char *nl = memchr(s, '\n', r->head_len);
    size_t len = (size_t)(nl - s);
    if (len > 0 && s[len - 1] == '\r')
        len--;
    int code;
    const char *reason;
    size_t reason_len;
    *why = "malformed response head from the server";
    if (status_line(s, len, &code, &reason, &reason_len) != 0)
        return GW_EPROTO;
    struct http1_facts fx;
    struct http1_field f;
    const char *line = nl + 1;
    int rc;
    memset(&fx, 0, sizeof(fx));
    while ((rc = http1_next_field(&line, end, &f)) == 1)
        http1_facts_add(&fx, &f);
    if (rc != 0 || fx.opts_overflow)
        return GW_EPROTO;
    if (code == 101) {
        *why = "the server switched protocols (101), which a forwarded "
               "request never asks for";
        return GW_EPROTO;
    }
    int interim = code < 200;
    /* An HTTP/1.0 client knows no interim responses (RFC 9110 section
     * 15.2): they are dropped. */
    if (interim && r->client_minor == 0)
        return 0;
    enum http1_body_mode mode = HTTP1_BODY_CLOSE;
    if (interim || r->head_method || code == 204 || code == 304)
        mode = HTTP1_BODY_NONE;
    else if (fx.has_te)
        mode = fx.te_chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_CLOSE;
    else if (fx.n_cl > 0)
        mode = HTTP1_BODY_LENGTH;
    if (mode == HTTP1_BODY_LENGTH && fx.cl_bad) {
        *why = "bad Content-Length from the server";
        return GW_EPROTO;
    }
    char out_mem[HTTPFWD_RESP_HEAD_MAX + 256];
    struct out o = {out_mem, sizeof(out_mem), 0, 0};
    char start[32];
    snprintf(start, sizeof(start), "HTTP/1.1 %03d ", code);
    puts_(&o, start);
    put(&o, reason, reason_len);
    puts_(&o, "\r\n");
    copy_fields(&o, nl + 1, end, &fx, skip_length, &fx.has_te);
    if (!interim) {
        r->status = code;
        r->keep = r->client_keep && mode != HTTP1_BODY_CLOSE;
        if (!r->keep)
            puts_(&o, "Connection: close\r\n");
        else if (r->client_minor == 0)
            puts_(&o, "Connection: keep-alive\r\n");
    }
    puts_(&o, r->client_minor > 0 ? "Via: 1.1 ssmgate\r\n\r\n"
                                  : "Via: 1.0 ssmgate\r\n\r\n");
    if (o.full) {
        *why = "response head from the server too large";
        return GW_EPROTO;
    }
    emit_out(r, emit, arg, (const uint8_t *)o.p, o.len);
    if (interim)
        return 0;
    http1_body_init(&r->body, mode, fx.cl);
    r->state = r->body.done ? HTTPFWD_RESP_DONE : HTTPFWD_RESP_BODY;
    return 0;
}

/* Takes head bytes from p; returns how many it used, or GW_EPROTO. */
static ssize_t resp_head_bytes(struct httpfwd_resp *r, const uint8_t *p,
                               size_t n, httpfwd_emit_fn *emit, void *arg,
                               const char **why)
{
    size_t old = r->head_len;
    size_t take = GW_MIN(n, sizeof(r->head) - old);
    memcpy(r->head + old, p, take);
    r->head_len += take;
    /* Only the new bytes can end the head: look from just before them. */
    size_t from = old > 3 ? old - 3 : 0;
    size_t end = http1_head_len(r->head + from, r->head_len - from);
    if (end == 0) {
        if (r->head_len == sizeof(r->head)) {
            *why = "response head from the server too large";
            return GW_EPROTO;
        }
        return (ssize_t)take;
    }
    end += from;
    size_t used = take - (r->head_len - end);
    r->head_len = end;
    int rc = resp_head(r, emit, arg, why);
    r->head_len = 0;
    return rc != 0 ? rc : (ssize_t)used;
}

int httpfwd_resp_feed(struct httpfwd_resp *r, const uint8_t *p, size_t n,
                      httpfwd_emit_fn *emit, void *arg, const char **why)
{
    size_t used = 0;
    while (used < n && r->state != HTTPFWD_RESP_DONE) {
        ssize_t k;
        if (r->state == HTTPFWD_RESP_HEAD) {
            k = resp_head_bytes(r, p + used, n - used, emit, arg, why);
        } else {
            k = http1_body_scan(&r->body, p + used, n - used);
            if (k < 0)
                *why = "malformed chunked body from the server";
            else
                emit_out(r, emit, arg, p + used, (size_t)k);
            if (k >= 0 && r->body.done)
                r->state = HTTPFWD_RESP_DONE;
        }
        if (k < 0)
            return (int)k;
        used += (size_t)k;
    }
    return r->state == HTTPFWD_RESP_DONE;
}

int httpfwd_resp_eof(struct httpfwd_resp *r, const char **why)
{
    if (r->state == HTTPFWD_RESP_BODY && r->body.mode == HTTP1_BODY_CLOSE)
        r->state = HTTPFWD_RESP_DONE;
    if (r->state == HTTPFWD_RESP_DONE)
        return 1;
    *why = r->emitted == 0 && r->head_len == 0
               ? "the server closed the connection without a response"
               : "the server's response was cut short";
    return GW_EPROTO;
}
