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

/*
 * Parses one request head ending in an empty line. Returns 0 (cursor past
 * the head), GW_ENEED_MORE, or GW_EPROTO with *status set to the HTTP
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
