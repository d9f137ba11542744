/*
 * httpconnect.h - the request a client sends to the HTTP proxy port, and
 * the proxy's own replies. Pure.
 *
 * Two kinds of request: CONNECT host:port (RFC 9110 section 9.3.6), a
 * tunnel; and a plain proxy request with an absolute-form target
 * (RFC 9112 section 3.2.2, "GET http://host/path HTTP/1.1", what curl -x,
 * wget, requests and browsers send for http:// URLs), forwarded by
 * httpfwd.c. The target comes from the request line, never from Host (nc
 * sends HTTP/1.0 without Host; curl sends both). CONNECT is read as
 * leniently as before (only Proxy-Authorization matters); a request to
 * forward is read strictly, since its head goes on to an origin server.
 */
#ifndef SSMGATE_HTTPCONNECT_H
#define SSMGATE_HTTPCONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

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
    /* A plain proxy request to forward (0: CONNECT). Offsets are into the
     * head the parser was given. */
    int forward;
    size_t head_len;      /* the head, its blank line included */
    size_t method_len;    /* the method is at offset 0 */
    size_t authority_off; /* host[:port] of the target URI */
    size_t authority_len;
    size_t path_off, path_len; /* path?query; 0 bytes means "/" */
    int head_method;           /* HEAD: the response has no body */
    int keep_alive;            /* the client will send more requests */
    enum http1_body_mode body; /* NONE, LENGTH or CHUNKED */
    uint64_t body_len;
    struct http1_facts facts; /* for the rewrite: Connection options */
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
 * Parses one proxy request head ending in an empty line. Returns 0 (cursor
 * past the head), GW_ENEED_MORE, or GW_EPROTO with *status set to the HTTP
 * status to answer and *why (static) to say: 400 malformed, or not a
 * proxy request (origin-form "GET / "), 431 head too large, 501 a scheme
 * other than http:// (an https:// URL goes through CONNECT), 505 not
 * HTTP/1.x.
 */
int httpconnect_parse(struct buf_view *v, struct httpconnect_request *req,
                      int *status, const char **why);

/* "HTTP/1.1 <status> <reason>\r\n...\r\n\r\n" into out; returns length. */
size_t httpconnect_build_reply(char *out, size_t len, int status);
/* The same with text (NULL or "" = none) as a text/plain body, one line.
 * A body that does not fit is cut (Content-Length says what is sent);
 * returns 0 when not even the head fits. Every refusal closes the
 * connection (Connection: close). */
size_t httpconnect_build_reply_text(char *out, size_t len, int status,
                                    const char *text);

#endif
