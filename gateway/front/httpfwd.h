/*
 * httpfwd.h - a plain HTTP proxy's view of one request and its response
 * (RFC 9112), sans I/O: conn.c feeds bytes and writes what comes out.
 *
 * Request: the client's head becomes origin-form for the origin server
 * ("GET /path?q HTTP/1.1"), with Host from the target URI, without the
 * hop-by-hop fields and Proxy-Authorization, with "Connection: close"
 * (one request per tunnel stream: the response then ends at the latest
 * when the stream does) and a Via. The body is forwarded unchanged; the
 * request's framing (http1_body) says where it ends, so the next request
 * on the client's connection is routed on its own.
 *
 * Response: heads (interim 1xx ones first) are rewritten the same way and
 * the body passed through while its framing says where it ends. The
 * client's connection is kept for the next request when the client asked
 * for that and the response is self-delimiting (Content-Length, chunked,
 * or no body); otherwise the response says "Connection: close".
 */
#ifndef SSMGATE_HTTPFWD_H
#define SSMGATE_HTTPFWD_H

#include <stddef.h>
#include <stdint.h>

#include "http1.h"
#include "httpconnect.h"

#define HTTPFWD_HEAD_OUT_MAX  (HTTPCONNECT_HEAD_MAX + 512)
#define HTTPFWD_RESP_HEAD_MAX (32 * 1024)

/*
 * Writes the request head to send to the origin for r, parsed from head
 * by httpconnect_parse, into out[0..cap). Returns its length, or 0 when
 * it does not fit.
 */
size_t httpfwd_request_head(const uint8_t *head,
                            const struct httpconnect_request *r, char *out,
                            size_t cap);

/* Takes bytes for the client (a rewritten head, body bytes). */
typedef void httpfwd_emit_fn(void *arg, const uint8_t *p, size_t n);

enum httpfwd_resp_state {
    HTTPFWD_RESP_HEAD, /* reading a response head */
    HTTPFWD_RESP_BODY, /* passing its body through */
    HTTPFWD_RESP_DONE, /* the response ended */
};

struct httpfwd_resp {
    enum httpfwd_resp_state state;
    int head_method;  /* the request was HEAD: no body follows */
    int client_minor; /* the client's HTTP/1.x */
    int client_keep;  /* the client wants the connection kept */
    int keep;         /* decided with the final head: keep it */
    int status;       /* the final status, for the log */
    uint64_t emitted; /* bytes handed to the client */
    struct http1_body body;
    size_t head_len;
    uint8_t head[HTTPFWD_RESP_HEAD_MAX];
};

void httpfwd_resp_init(struct httpfwd_resp *r,
                       const struct httpconnect_request *req);

/*
 * Feeds bytes from the origin. Returns 0 (more to come), 1 once the
 * response ended (bytes after its end are dropped), or GW_EPROTO with
 * *why (static) for a response that cannot be forwarded: a head over
 * HTTPFWD_RESP_HEAD_MAX, a malformed head or chunk framing, a 101.
 */
int httpfwd_resp_feed(struct httpfwd_resp *r, const uint8_t *p, size_t n,
                      httpfwd_emit_fn *emit, void *arg, const char **why);

/* The origin's stream ended: 1 when that completes the response (its
 * body runs to the end of the connection), else GW_EPROTO with *why. */
int httpfwd_resp_eof(struct httpfwd_resp *r, const char **why);

#endif
