/*
 * httpconnect.h - HTTP CONNECT request parsing (RFC 9110 9.3.6) and reply
 * building. Pure. The target comes from the request line, never from Host
 * (nc sends HTTP/1.0 without Host; curl sends both).
 */
#ifndef SSMGATE_HTTPCONNECT_H
#define SSMGATE_HTTPCONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HTTPCONNECT_HEAD_MAX 8192
#define HTTPCONNECT_HOST_MAX 256
#define HTTPCONNECT_CRED_MAX 256

struct httpconnect_request {
    char host[HTTPCONNECT_HOST_MAX]; /* IPv6 literals without brackets */
    uint16_t port;
    int minor;    /* HTTP/1.x */
    int has_auth; /* Proxy-Authorization: Basic seen */
    char user[HTTPCONNECT_CRED_MAX];
    char pass[HTTPCONNECT_CRED_MAX];
};

/* One request head, split; the pointers are into the parsed bytes. */
struct http_head {
    const char *method;
    size_t method_len;
    const char *target; /* the request-target as sent */
    size_t target_len;
    int minor;           /* HTTP/1.x */
    const char *headers; /* the header lines, then the empty line */
    size_t len;          /* of the whole head, through the empty line */
};

/*
 * Parses the request head at the start of p[0..len): the request line and
 * NAME: value header lines up to an empty line, within max bytes. Returns
 * 0, GW_ENEED_MORE, or GW_EPROTO with *status the HTTP status to answer
 * (400 malformed, 431 longer than max, 505 not HTTP/1.x).
 */
int http_head_parse(const uint8_t *p, size_t len, size_t max,
                    struct http_head *h, int *status);
/* The header line at *pos (start with h->headers) of a parsed head: 1 with
 * its name and value (untrimmed) and *pos moved past it, 0 at the empty
 * line, GW_EPROTO for a line without a colon. */
int http_head_header(const struct http_head *h, const char **pos,
                     const char **name, size_t *name_len, const char **value,
                     size_t *value_len);

/*
 * Parses one CONNECT request head ending in an empty line. Returns 0 (cursor
 * past the head), GW_ENEED_MORE, or GW_EPROTO with *status set to the HTTP
 * status to answer (400 malformed, 405 not CONNECT, 431 head too large,
 * 505 not HTTP/1.x).
 */
int httpconnect_parse(struct buf_view *v, struct httpconnect_request *req,
                      int *status);

/* "HTTP/1.1 <status> <reason>\r\n...\r\n\r\n" into out; returns length. */
size_t httpconnect_build_reply(char *out, size_t len, int status);
/* The same with text (NULL or "" = none) as a text/plain body, one line.
 * A body that does not fit is cut (Content-Length says what is sent);
 * returns 0 when not even the head fits. */
size_t httpconnect_build_reply_text(char *out, size_t len, int status,
                                    const char *text);

#endif
