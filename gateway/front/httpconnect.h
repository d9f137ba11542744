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

/*
 * Parses one request head ending in an empty line. Returns 0 (cursor past
 * the head), GW_ENEED_MORE, or GW_EPROTO with *status set to the HTTP
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
