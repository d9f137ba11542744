/*
 * front_reply.h - the reply a client gets for the outcome of its request,
 * in the protocol it spoke. Pure: a gw_err and a reason in, reply bytes
 * out; conn.c queues them.
 *
 * SOCKS5 and SOCKS4 carry a code only; an HTTP CONNECT refusal carries
 * the whole reason as a text/plain body, so an AWS code and message reach
 * the client as the log line has them.
 */
#ifndef SSMGATE_FRONT_REPLY_H
#define SSMGATE_FRONT_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Room for any reply front_reply builds: the HTTP head plus a reason of
 * GW_REASON_MAX (core/common.h). */
#define FRONT_REPLY_MAX (GW_REASON_MAX + 256)

/* What the client spoke; decides the reply's encoding. */
enum front_proto {
    FRONT_PROTO_NONE,
    FRONT_PROTO_SOCKS5,
    FRONT_PROTO_SOCKS4,
    FRONT_PROTO_HTTP,
    FRONT_PROTO_FORWARD, /* a [forward] port: no request, no reply */
};

/* The SOCKS5 reply code (enum socks5_rep) for err (0 = success). */
uint8_t front_socks5_rep_for(int err);
/* The HTTP status for err (0 = 200). */
int front_http_status_for(int err);

/*
 * Encodes the reply for the outcome err (0 = success) into out[0..cap).
 * reason (may be NULL) becomes an HTTP refusal's body; the SOCKS replies
 * have no room for it. Returns the length, or 0 when proto has no reply
 * or out cannot hold one (an HTTP body is cut to fit before that).
 */
size_t front_reply(enum front_proto proto, int err, const char *reason,
                   void *out, size_t cap);

#endif
