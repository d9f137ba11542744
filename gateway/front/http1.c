/*
 * http1.c - HTTP/1.1 syntax for the forwarding proxy (see http1.h).
 *
 * The chunked decoder is a byte-at-a-time state machine over the framing
 * only; chunk data is skipped in one step, so a large body costs nothing
 * per byte.
 */
#include "http1.h"

#include <string.h>
#include <strings.h>

#include "common.h"

size_t http1_head_len(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* RFC 9110 section 5.6.2 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int http1_next_field(const char **line, const char *end, struct http1_field *f)
{
    const char *s = *line;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    if (nl == NULL)
        return GW_EPROTO; /* inside a head that ends in a blank line */
    size_t len = (size_t)(nl - s);
    if (len > 0 && s[len - 1] == '\r')
        len--;
    if (len == 0) {
        *line = nl + 1;
        return 0;
    }
    size_t name_len = 0;
    while (name_len < len && is_tchar((unsigned char)s[name_len]))
        name_len++;
    /* No name, a folded line, or space before the colon. */
    if (name_len == 0 || name_len == len || s[name_len] != ':')
        return GW_EPROTO;
    const char *v = s + name_len + 1;
    size_t vlen = len - name_len - 1;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return GW_EPROTO;
    }
    while (vlen > 0 && is_ows(*v))
        v++, vlen--;
    while (vlen > 0 && is_ows(v[vlen - 1]))
        vlen--;
    f->name = s;
    f->name_len = name_len;
    f->value = v;
    f->value_len = vlen;
    *line = nl + 1;
    return 1;
}

int http1_field_is(const struct http1_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* Calls each element of the comma list v[0..n) (trimmed, not empty) in
 * turn: returns the first non-zero fn result. */
static int list_each(const char *v, size_t n,
                     int (*fn)(const char *p, size_t len, void *arg), void *arg)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && is_ows(v[a]))
            a++;
        while (b > a && is_ows(v[b - 1]))
            b--;
        if (b > a) {
            int rc = fn(v + a, b - a, arg);
            if (rc != 0)
                return rc;
        }
        i = j + 1;
    }
    return 0;
}

static int token_eq(const char *p, size_t len, void *arg)
{
    const char *token = arg;
    return strlen(token) == len && strncasecmp(p, token, len) == 0;
}

int http1_list_has(const char *v, size_t n, const char *token)
{
    return list_each(v, n, token_eq, (void *)token);
}

/* The last element wins: "gzip, chunked" is chunked, "chunked, gzip" is
 * not (RFC 9112 section 6.3). */
static int note_last(const char *p, size_t len, void *arg)
{
    *(int *)arg = len == 7 && strncasecmp(p, "chunked", 7) == 0;
    return 0;
}

static int note_option(const char *p, size_t len, void *arg)
{
    struct http1_facts *fx = arg;
    if (len == 5 && strncasecmp(p, "close", 5) == 0)
        fx->conn_close = 1;
    else if (len == 10 && strncasecmp(p, "keep-alive", 10) == 0)
        fx->conn_keep_alive = 1;
    if (fx->n_opts == HTTP1_CONN_OPTS) {
        fx->opts_overflow = 1;
        return 0;
    }
    fx->opts[fx->n_opts].p = p;
    fx->opts[fx->n_opts].n = len;
    fx->n_opts++;
    return 0;
}

static void note_length(struct http1_facts *fx, const char *v, size_t n)
{
    uint64_t value = 0;
    if (n == 0 || n > 15) /* below 2^50: no overflow, still petabytes */
        fx->cl_bad = 1;
    for (size_t i = 0; i < n && !fx->cl_bad; i++) {
        if (v[i] < '0' || v[i] > '9')
            fx->cl_bad = 1;
        value = value * 10 + (uint64_t)(v[i] - '0');
    }
    if (fx->n_cl > 0 && value != fx->cl)
        fx->cl_bad = 1;
    fx->cl = value;
    fx->n_cl++;
}

void http1_facts_add(struct http1_facts *fx, const struct http1_field *f)
{
    if (http1_field_is(f, "Content-Length")) {
        note_length(fx, f->value, f->value_len);
    } else if (http1_field_is(f, "Transfer-Encoding")) {
        fx->has_te = 1;
        /* A later Transfer-Encoding line continues the list. */
        list_each(f->value, f->value_len, note_last, &fx->te_chunked);
    } else if (http1_field_is(f, "Connection")) {
        list_each(f->value, f->value_len, note_option, fx);
    } else if (http1_field_is(f, "Proxy-Connection")) {
        /* Not a standard field, but what curl and old browsers send to a
         * proxy instead of Connection; its options name no fields. */
        if (http1_list_has(f->value, f->value_len, "close"))
            fx->conn_close = 1;
        if (http1_list_has(f->value, f->value_len, "keep-alive"))
            fx->conn_keep_alive = 1;
    }
}

int http1_hop_by_hop(const struct http1_facts *fx, const struct http1_field *f)
{
    static const char *const fixed[] = {
        "Connection", "Proxy-Connection", "Keep-Alive",
        "TE",         "Trailer",          "Upgrade",
    };
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        if (http1_field_is(f, fixed[i]))
            return 1;
    for (int i = 0; i < fx->n_opts; i++)
        if (fx->opts[i].n == f->name_len &&
            strncasecmp(fx->opts[i].p, f->name, f->name_len) == 0)
            return !http1_field_is(f, "Transfer-Encoding") &&
                   !http1_field_is(f, "Content-Length");
    return 0;
}

/* ---- body framing ---- */

enum {
    CH_SIZE,      /* the first hex digit of a chunk size */
    CH_SIZE_MORE, /* more digits, or the end of the size */
    CH_EXT,       /* chunk extensions, up to the line's end */
    CH_SIZE_LF,   /* the LF after the size line's CR */
    CH_DATA,      /* chunk data */
    CH_DATA_END,  /* the CRLF after a chunk's data */
    CH_DATA_LF,
    CH_TRAILER, /* the start of a trailer line, or the final CRLF */
    CH_TRAILER_LINE,
    CH_END_LF,
};

void http1_body_init(struct http1_body *b, enum http1_body_mode mode,
                     uint64_t length)
{
    memset(b, 0, sizeof(*b));
    b->mode = mode;
    b->left = mode == HTTP1_BODY_LENGTH ? length : 0;
    b->state = CH_SIZE;
    b->done =
        mode == HTTP1_BODY_NONE || (mode == HTTP1_BODY_LENGTH && length == 0);
}

/* The end of a chunk-size line: data follows, or the trailer section. */
static void chunk_size_done(struct http1_body *b)
{
    b->state = b->left > 0 ? CH_DATA : CH_TRAILER;
    b->line = 0;
}

/* One framing byte of a chunked body; 0 or GW_EPROTO. */
static int chunk_byte(struct http1_body *b, uint8_t c)
{
    int h;
    switch (b->state) {
    case CH_SIZE:
    case CH_SIZE_MORE:
        h = gw_hex_value(c);
        if (h >= 0) {
            /* 15 hex digits: below 2^60, no overflow. */
            if (b->line >= 15)
                return GW_EPROTO;
            b->left = b->left * 16 + (uint64_t)h;
            b->line++;
            b->state = CH_SIZE_MORE;
            return 0;
        }
        if (b->state == CH_SIZE)
            return GW_EPROTO;
        if (c == '\r')
            b->state = CH_SIZE_LF;
        else if (c == '\n')
            chunk_size_done(b);
        else if (c == ';' || c == ' ' || c == '\t')
            b->state = CH_EXT;
        else
            return GW_EPROTO;
        return 0;
    case CH_EXT:
        if (++b->line > HTTP1_CHUNK_LINE)
            return GW_EPROTO;
        if (c == '\n')
            chunk_size_done(b);
        else if (c == '\r')
            b->state = CH_SIZE_LF;
        else if (c < 0x20 && c != '\t')
            return GW_EPROTO;
        return 0;
    case CH_SIZE_LF:
        if (c != '\n')
            return GW_EPROTO;
        chunk_size_done(b);
        return 0;
    case CH_DATA_END:
        if (c == '\r') {
            b->state = CH_DATA_LF;
            return 0;
        }
        /* A bare LF ends the data as well. */
        /* fall through */
    case CH_DATA_LF:
        if (c != '\n')
            return GW_EPROTO;
        b->state = CH_SIZE;
        b->left = 0;
        b->line = 0;
        return 0;
    case CH_TRAILER:
        if (c == '\n') {
            b->done = 1;
            return 0;
        }
        if (c == '\r') {
            b->state = CH_END_LF;
            return 0;
        }
        b->state = CH_TRAILER_LINE; /* this is the line's first byte */
        /* fall through */
    case CH_TRAILER_LINE:
        if (++b->line > HTTP1_TRAILER)
            return GW_EPROTO;
        if (c == '\n')
            b->state = CH_TRAILER;
        else if (c < 0x20 && c != '\t' && c != '\r')
            return GW_EPROTO;
        return 0;
    case CH_END_LF:
        if (c != '\n')
            return GW_EPROTO;
        b->done = 1;
        return 0;
    default:
        return GW_EPROTO;
    }
}

ssize_t http1_body_scan(struct http1_body *b, const uint8_t *p, size_t n)
{
    size_t used = 0;
    if (b->done)
        return 0;
    switch (b->mode) {
    case HTTP1_BODY_NONE:
        b->done = 1;
        return 0;
    case HTTP1_BODY_CLOSE:
        return (ssize_t)n;
    case HTTP1_BODY_LENGTH:
        used = b->left < n ? (size_t)b->left : n;
        b->left -= used;
        b->done = b->left == 0;
        return (ssize_t)used;
    case HTTP1_BODY_CHUNKED:
        break;
    }
    while (used < n && !b->done) {
        if (b->state == CH_DATA) {
            size_t k = b->left < n - used ? (size_t)b->left : n - used;
            used += k;
            b->left -= k;
            if (b->left == 0)
                b->state = CH_DATA_END;
            continue;
        }
        if (chunk_byte(b, p[used]) != 0)
            return GW_EPROTO;
        used++;
    }
    return (ssize_t)used;
}
