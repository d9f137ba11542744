/*
 * httpconnect.c - the proxy port's request parser: a small HTTP/1.x head
 * reader (the request line, NAME: value lines up to a blank line; the
 * metrics listener reads its GET with it too), then for CONNECT only
 * Proxy-Authorization among the fields (nc and ssh's ProxyCommand send
 * little else), for a request to forward every field, strictly (http1.c),
 * since the head goes on to an origin server.
 */
#include "httpconnect.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "secret.h"

/* host:port, [v6]:port; dflt_port 0 = the port is required, else an
 * absent or empty port is dflt_port (RFC 3986 section 3.2.3). */
static int parse_authority(const char *s, size_t len, uint16_t dflt_port,
                           struct httpconnect_request *req)
{
    const char *colon;
    const char *host = s;
    size_t hostlen;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return GW_EPROTO;
        host = s + 1;
        hostlen = (size_t)(close - host);
        if (close + 1 == s + len && dflt_port != 0)
            colon = s + len; /* no port */
        else if (close + 1 >= s + len || close[1] != ':')
            return GW_EPROTO;
        else
            colon = close + 1;
    } else {
        colon = NULL;
        for (size_t i = len; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        if (colon == NULL && dflt_port == 0)
            return GW_EPROTO;
        if (colon == NULL)
            colon = s + len;
        hostlen = (size_t)(colon - s);
    }
    if (hostlen == 0 || hostlen >= sizeof(req->host))
        return GW_EPROTO;
    for (size_t i = 0; i < hostlen; i++)
        if (!isgraph((unsigned char)host[i]))
            return GW_EPROTO;
    const char *port = colon + (colon < s + len);
    size_t portlen = (size_t)(s + len - port);
    if ((portlen == 0 && dflt_port == 0) || portlen > 5)
        return GW_EPROTO;
    unsigned long value = portlen == 0 ? dflt_port : 0;
    for (size_t i = 0; i < portlen; i++) {
        if (!isdigit((unsigned char)port[i]))
            return GW_EPROTO;
        value = value * 10 + (unsigned long)(port[i] - '0');
    }
    if (value == 0 || value > 65535)
        return GW_EPROTO;
    memcpy(req->host, host, hostlen);
    req->host[hostlen] = '\0';
    req->port = (uint16_t)value;
    return 0;
}

/* "Basic base64(user:pass)" into req->user / req->pass. */
static void parse_basic_auth(const char *value, size_t len,
                             struct httpconnect_request *req)
{
    while (len > 0 && (*value == ' ' || *value == '\t'))
        value++, len--;
    if (len < 6 || strncasecmp(value, "Basic ", 6) != 0)
        return;
    value += 6;
    len -= 6;
    while (len > 0 && value[len - 1] == ' ')
        len--;
    unsigned char decoded[2 * HTTPCONNECT_CRED_MAX];
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(decoded) - 1)
        return;
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)value, (int)len);
    if (n < 0)
        goto out;
    /* EVP_DecodeBlock counts the padding as output bytes. */
    if (value[len - 1] == '=')
        n--;
    if (value[len - 2] == '=')
        n--;
    decoded[n] = '\0';
    char *colon = memchr(decoded, ':', (size_t)n);
    if (colon == NULL || memchr(decoded, '\0', (size_t)n) != NULL)
        goto out;
    size_t ulen = (size_t)(colon - (char *)decoded);
    size_t plen = (size_t)n - ulen - 1;
    if (ulen >= sizeof(req->user) || plen >= sizeof(req->pass))
        goto out;
    memcpy(req->user, decoded, ulen);
    req->user[ulen] = '\0';
    memcpy(req->pass, colon + 1, plen);
    req->pass[plen] = '\0';
    req->has_auth = 1;
out:
    secret_wipe(decoded, sizeof(decoded)); /* the password, in clear */
}

/* The head's end and its request line, METHOD SP target SP HTTP/1.x;
 * the method and the target may be empty (the callers judge them). */
static int head_split(const uint8_t *p, size_t len, size_t max,
                      struct http_head *h, int *status)
{
    size_t head_len = http1_head_len(p, GW_MIN(len, max));
    *status = 400;
    if (head_len == 0) {
        if (len >= max) {
            *status = 431;
            return GW_EPROTO;
        }
        return GW_ENEED_MORE;
    }
    memset(h, 0, sizeof(*h));
    const char *s = (const char *)p;
    const char *eol = memchr(s, '\n', head_len);
    size_t line_len = (size_t)(eol - s);
    if (line_len > 0 && s[line_len - 1] == '\r')
        line_len--;
    const char *sp1 = memchr(s, ' ', line_len);
    if (sp1 == NULL)
        return GW_EPROTO;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', line_len - (size_t)(target - s));
    if (sp2 == NULL)
        return GW_EPROTO;
    size_t version_len = line_len - (size_t)(sp2 + 1 - s);
    if (version_len != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        !isdigit((unsigned char)sp2[8])) {
        *status = 505;
        return GW_EPROTO;
    }
    h->method = s;
    h->method_len = (size_t)(sp1 - s);
    h->target = target;
    h->target_len = (size_t)(sp2 - target);
    h->minor = sp2[8] - '0';
    h->headers = eol + 1;
    h->len = head_len;
    return 0;
}

int http_head_parse(const uint8_t *p, size_t len, size_t max,
                    struct http_head *h, int *status)
{
    int rc = head_split(p, len, max, h, status);
    if (rc != 0)
        return rc;
    if (h->method_len == 0 || h->target_len == 0)
        return GW_EPROTO;
    /* Every header line is NAME: value. */
    const char *pos = h->headers, *name, *value;
    size_t name_len, value_len;
    while ((rc = http_head_header(h, &pos, &name, &name_len, &value,
                                  &value_len)) > 0)
        ;
    return rc == 0 ? 0 : GW_EPROTO;
}

int http_head_header(const struct http_head *h, const char **pos,
                     const char **name, size_t *name_len, const char **value,
                     size_t *value_len)
{
    const char *end = h->method + h->len, *line = *pos;
    if (line >= end)
        return 0;
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    size_t n = (size_t)(nl - line);
    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (n == 0)
        return 0; /* the empty line */
    const char *colon = memchr(line, ':', n);
    if (colon == NULL)
        return GW_EPROTO;
    *name = line;
    *name_len = (size_t)(colon - line);
    *value = colon + 1;
    *value_len = n - *name_len - 1;
    *pos = nl + 1;
    return 1;
}

/* The CONNECT request's fields: only Proxy-Authorization matters. */
static int connect_fields(const struct http_head *h,
                          struct httpconnect_request *req)
{
    const char *pos = h->headers, *name, *value;
    size_t name_len, value_len;
    int rc;
    while ((rc = http_head_header(h, &pos, &name, &name_len, &value,
                                  &value_len)) > 0)
        if (name_len == 19 && strncasecmp(name, "Proxy-Authorization", 19) == 0)
            parse_basic_auth(value, value_len, req);
    return rc;
}

/* Refuses with status and a sentence for the client. */
static int refuse(int *status, const char **why, int code, const char *text)
{
    *status = code;
    *why = text;
    return GW_EPROTO;
}

/*
 * An absolute-form target, "http://host[:port][/path][?query]", at
 * t[0..len) of head. The scheme is case-insensitive; no user info (RFC
 * 9110 section 4.2.4 deprecates it) and no fragment.
 */
static int parse_absolute(const char *head, const char *t, size_t len,
                          struct httpconnect_request *req, int *status,
                          const char **why)
{
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)t[i]) || t[i] == '#')
            return refuse(status, why, 400, "bad characters in the URL");
    const char *sep = memchr(t, ':', len);
    size_t slen = sep ? (size_t)(sep - t) : 0;
    if (slen == 0 || !isalpha((unsigned char)t[0]) || len - slen < 3 ||
        memcmp(sep, "://", 3) != 0)
        return refuse(status, why, 400,
                      "not a proxy request: expected an absolute URL "
                      "(GET http://host/path) or CONNECT host:port");
    if (slen == 5 && strncasecmp(t, "https", 5) == 0)
        return refuse(status, why, 501,
                      "https:// URLs go through CONNECT (the client "
                      "tunnels TLS); only http:// URLs are forwarded");
    if (slen != 4 || strncasecmp(t, "http", 4) != 0)
        return refuse(status, why, 501, "only http:// URLs are forwarded");
    const char *a = sep + 3;
    const char *tend = t + len;
    size_t alen = 0;
    while (a + alen < tend && a[alen] != '/' && a[alen] != '?')
        alen++;
    if (memchr(a, '@', alen) != NULL)
        return refuse(status, why, 400, "user info in the URL");
    if (parse_authority(a, alen, 80, req) != 0)
        return refuse(status, why, 400, "bad host or port in the URL");
    req->authority_off = (size_t)(a - head);
    req->authority_len = alen;
    req->path_off = (size_t)(a + alen - head);
    req->path_len = (size_t)(tend - (a + alen));
    return 0;
}

/* The fields of a request to forward, read strictly; decides framing and
 * whether the client keeps the connection. */
static int forward_fields(const char *line, const char *end,
                          struct httpconnect_request *req, int *status,
                          const char **why)
{
    struct http1_field f;
    int rc, hosts = 0;
    while ((rc = http1_next_field(&line, end, &f)) == 1) {
        http1_facts_add(&req->facts, &f);
        hosts += http1_field_is(&f, "Host");
        if (http1_field_is(&f, "Proxy-Authorization"))
            parse_basic_auth(f.value, f.value_len, req);
    }
    struct http1_facts *fx = &req->facts;
    if (rc != 0)
        return refuse(status, why, 400, "malformed header field");
    if (hosts > 1)
        return refuse(status, why, 400, "more than one Host field");
    if (fx->cl_bad)
        return refuse(status, why, 400, "bad Content-Length");
    if (fx->opts_overflow)
        return refuse(status, why, 400, "too many Connection options");
    /* RFC 9112 section 6.1: Transfer-Encoding must end in chunked, is
     * not HTTP/1.0, and must not come with Content-Length (a proxy that
     * picks one of two framings is how requests get smuggled). */
    if (fx->has_te && (!fx->te_chunked || req->minor == 0 || fx->n_cl > 0))
        return refuse(status, why, 400, "bad Transfer-Encoding");
    req->body = fx->has_te ? HTTP1_BODY_CHUNKED
                : fx->n_cl ? HTTP1_BODY_LENGTH
                           : HTTP1_BODY_NONE;
    req->body_len = fx->cl;
    req->keep_alive =
        !fx->conn_close && (req->minor > 0 || fx->conn_keep_alive);
    return 0;
}

int httpconnect_parse(struct buf_view *v, struct httpconnect_request *req,
                      int *status, const char **why)
{
    struct http_head h;
    int rc = head_split(v->p + v->pos, buf_view_left(v), HTTPCONNECT_HEAD_MAX,
                        &h, status);
    *why = *status == 431   ? "request head too large"
           : *status == 505 ? "only HTTP/1.x is spoken here"
                            : "bad HTTP request";
    if (rc != 0)
        return rc;
    memset(req, 0, sizeof(*req));
    req->head_len = h.len;
    req->minor = h.minor;
    req->method_len = h.method_len;
    const char *s = h.method, *end = h.method + h.len;
    if (h.method_len == 7 && memcmp(s, "CONNECT", 7) == 0) {
        if (parse_authority(h.target, h.target_len, 0, req) != 0 ||
            connect_fields(&h, req) != 0)
            return GW_EPROTO;
        v->pos += h.len;
        return 0;
    }
    for (size_t i = 0; i < h.method_len; i++)
        if (!isalpha((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return refuse(status, why, 400, "bad method");
    if (h.method_len == 0)
        return GW_EPROTO;
    req->forward = 1;
    req->head_method = h.method_len == 4 && memcmp(s, "HEAD", 4) == 0;
    rc = parse_absolute(s, h.target, h.target_len, req, status, why);
    if (rc == 0)
        rc = forward_fields(h.headers, end, req, status, why);
    if (rc != 0) {
        secret_wipe(req->pass, sizeof(req->pass));
        return rc;
    }
    v->pos += h.len;
    return 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "Connection established";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* The head for a body of body_len bytes (SIZE_MAX = none), or -1. */
static int build_head(char *out, size_t len, int status, size_t body_len)
{
    const char *auth = status == 407 ? "Proxy-Authenticate: Basic "
                                       "realm=\"ssmgate\"\r\n"
                                     : "";
    int n;
    if (status == 200)
        n = snprintf(out, len, "HTTP/1.1 200 %s\r\n\r\n", reason_phrase(200));
    else if (body_len == SIZE_MAX)
        n = snprintf(out, len,
                     "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: "
                     "close\r\n\r\n",
                     status, reason_phrase(status), auth);
    else
        n = snprintf(out, len,
                     "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason_phrase(status), auth, body_len);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

size_t httpconnect_build_reply_text(char *out, size_t len, int status,
                                    const char *text)
{
    if (status == 200 || text == NULL || text[0] == '\0') {
        int n = build_head(out, len, status, SIZE_MAX);
        return n < 0 ? 0 : (size_t)n;
    }
    /* The body is the text and a newline; the head's length depends on
     * the body's, so shrink the body until both fit. */
    size_t body = strlen(text) + 1;
    for (;;) {
        int n = build_head(out, len, status, body);
        if (n < 0)
            return 0;
        size_t room = len - (size_t)n - 1;
        if (body <= room) {
            memcpy(out + n, text, body - 1);
            out[n + body - 1] = '\n';
            out[n + body] = '\0';
            return (size_t)n + body;
        }
        if (room == 0)
            return 0;
        body = room;
    }
}

size_t httpconnect_build_reply(char *out, size_t len, int status)
{
    return httpconnect_build_reply_text(out, len, status, NULL);
}
