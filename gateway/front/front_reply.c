/*
 * front_reply.c - one table of outcomes per protocol.
 *
 * A gw_err maps to the nearest code the protocol has (RFC 1928 section 6
 * for SOCKS5; SOCKS4 knows only granted and rejected; RFC 9110 statuses
 * for HTTP); the bytes themselves come from the codecs in socks.c and
 * httpconnect.c.
 */
#include "front_reply.h"

#include "common.h"
#include "httpconnect.h"
#include "socks.h"

uint8_t front_socks5_rep_for(int err)
{
    switch (err) {
    case 0:
        return SOCKS5_SUCCEEDED;
    case GW_ENO_ROUTE:
    case GW_EDENIED:
        return SOCKS5_NOT_ALLOWED;
    case GW_EUNREACHABLE:
        return SOCKS5_HOST_UNREACHABLE;
    case GW_EREFUSED:
        return SOCKS5_REFUSED;
    case GW_ETIMEOUT:
        return SOCKS5_TTL_EXPIRED;
    default:
        return SOCKS5_GENERAL_FAILURE;
    }
}

int front_http_status_for(int err)
{
    switch (err) {
    case 0:
        return 200;
    case GW_ENO_ROUTE:
    case GW_EDENIED:
        return 403;
    case GW_ETIMEOUT:
        return 504;
    default:
        return 502;
    }
}

size_t front_reply(enum front_proto proto, int err, const char *reason,
                   void *out, size_t cap)
{
    switch (proto) {
    case FRONT_PROTO_SOCKS5:
        if (cap < 10)
            return 0;
        return socks5_build_reply(out, front_socks5_rep_for(err));
    case FRONT_PROTO_SOCKS4:
        if (cap < 8)
            return 0;
        return socks4_build_reply(out,
                                  err == 0 ? SOCKS4_GRANTED : SOCKS4_REJECTED);
    case FRONT_PROTO_HTTP:
        return httpconnect_build_reply_text(
            out, cap, front_http_status_for(err), err == 0 ? NULL : reason);
    default:
        return 0; /* a [forward] port has no reply */
    }
}
