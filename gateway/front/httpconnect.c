/*
 * httpconnect.c - a strict, small HTTP/1.x request head parser (request
 * line, header lines up to a blank line, nothing else) and CONNECT on top
 * of it. Only Proxy-Authorization is interpreted; other headers are
 * skipped. The metrics listener reads its GET with the same head parser.
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

/* Finds the end of the head ("\r\n\r\n", or "\n\n" from lax clients). */
static const uint8_t *find_head_end(const uint8_t *p, size_t len,
                                    size_t *head_len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n') {
            *head_len = i + 2;
            return p + i;
        }
        if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n') {
            *head_len = i + 3;
            return p + i;
        }
    }
    return NULL;
}

static int parse_authority(const char *s, size_t len,
                           struct httpconnect_request *req)
{
    const char *colon;
    const char *host = s;
    size_t hostlen;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL || close + 1 >= s + len || close[1] != ':')
            return GW_EPROTO;
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = NULL;
        for (size_t i = len; i > 0; i--)
            if (s[i - 1] == ':') {
                colon = s + i - 1;
                break;
            }
        if (colon == NULL)
            return GW_EPROTO;
        hostlen = (size_t)(colon - s);
    }
    if (hostlen == 0 || hostlen >= sizeof(req->host))
        return GW_EPROTO;
    for (size_t i = 0; i < hostlen; i++)
        if (!isgraph((unsigned char)host[i]))
            return GW_EPROTO;
    const char *port = colon + 1;
    size_t portlen = (size_t)(s + len - port);
    if (portlen == 0 || portlen > 5)
        return GW_EPROTO;
    unsigned long value = 0;
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

int http_head_parse(const uint8_t *p, size_t len, size_t max,
                    struct http_head *h, int *status)
{
    size_t head_len;
    int rc;
    *status = 400;
    if (find_head_end(p, GW_MIN(len, max), &head_len) == NULL) {
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
    /* METHOD SP request-target SP HTTP/1.x */
    const char *sp1 = memchr(s, ' ', line_len);
    if (sp1 == NULL || sp1 == s)
        return GW_EPROTO;
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', line_len - (size_t)(target - s));
    if (sp2 == NULL || sp2 == target)
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

int httpconnect_parse(struct buf_view *v, struct httpconnect_request *req,
                      int *status)
{
    struct http_head h;
    int rc = http_head_parse(v->p + v->pos, buf_view_left(v),
                             HTTPCONNECT_HEAD_MAX, &h, status);
    if (rc != 0)
        return rc;
    memset(req, 0, sizeof(*req));
    req->minor = h.minor;
    if (h.method_len != 7 || memcmp(h.method, "CONNECT", 7) != 0) {
        *status = 405;
        return GW_EPROTO;
    }
    if (parse_authority(h.target, h.target_len, req) != 0)
        return GW_EPROTO;
    /* Headers: only Proxy-Authorization matters. */
    const char *pos = h.headers, *name, *value;
    size_t name_len, value_len;
    while (http_head_header(&h, &pos, &name, &name_len, &value, &value_len) > 0)
        if (name_len == 19 && strncasecmp(name, "Proxy-Authorization", 19) == 0)
            parse_basic_auth(value, value_len, req);
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
