/*
 * conn_http.h - the plain HTTP proxy side of a struct conn (private to
 * conn.c and conn_http.c).
 *
 * A connection that sends "GET http://host/path HTTP/1.1" gets each
 * request routed and opened on its own backend stream: the head is
 * rewritten for the origin (httpfwd), the body goes up as far as its
 * framing says, the response comes back rewritten, and when it ended the
 * stream is closed and the next request on the connection is read (from
 * the pump's up buffer, where the bytes past the last request wait). The
 * connection closes after a response when the client or the response
 * asks for that (see httpfwd.h).
 */
#ifndef SSMGATE_CONN_HTTP_H
#define SSMGATE_CONN_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conn.h"
#include "httpconnect.h"

/* ---- in conn_http.c, for conn.c ---- */

/* Where the next request's bytes are: the conn's request buffer, then,
 * after a first forwarded request, the pump's up buffer. */
struct buf *conn_input(struct conn *c);
/* A parsed request to forward, its head at the front of in: rewrites it,
 * takes it from in and routes it (or refuses). */
void conn_http_request(struct conn *c, struct buf *in,
                       const struct httpconnect_request *r);
/* The backend stream of a forwarded request opened / sent / ended. */
void conn_http_open(struct conn *c);
void conn_http_data(struct conn *c, const uint8_t *p, size_t n);
void conn_http_eof(struct conn *c);
/* The stream broke: 1 when the client still gets a whole reply (a 502
 * with the reason, nothing of the response having been sent), else 0. */
int conn_http_error(struct conn *c, int err, const char *reason);
/* Waiting for the next request with nothing of it buffered. */
int conn_http_idle(const struct conn *c);
/* The session of the last request served, once its stream is closed;
 * *out untouched for a conn that forwarded nothing. */
void conn_http_served(const struct conn *c, struct backend_stream_info *out);
void conn_http_free(struct conn *c);

/* ---- in conn.c, for conn_http.c ---- */

void conn_set_state(struct conn *c, enum conn_state next);
void conn_refuse(struct conn *c, enum tunnel_outcome outcome, int err,
                 const char *reason);
void conn_refuse_http(struct conn *c, int status, const char *reason);
void conn_do_route(struct conn *c, const char *host, uint16_t port);
/* Reads the connection's next request (keep-alive). */
void conn_next_request(struct conn *c);

#endif
