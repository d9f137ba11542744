/*
 * socks.c - SOCKS wire formats. Every length the peer sends is checked
 * against what is in the view before use; nothing is copied until a whole
 * message is present.
 */
#include "socks.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

int socks5_parse_greeting(struct buf_view *v, unsigned *offered, uint8_t *rep)
{
    struct buf_view t = *v;
    uint8_t ver, n;
    const uint8_t *methods;
    if (buf_get_u8(&t, &ver) != 0 || buf_get_u8(&t, &n) != 0)
        return GW_ENEED_MORE;
    if (ver != 5 || n == 0) {
        *rep = SOCKS5_GENERAL_FAILURE;
        return GW_EPROTO;
    }
    if (buf_get_bytes(&t, n, &methods) != 0)
        return GW_ENEED_MORE;
    *offered = 0;
    for (unsigned i = 0; i < n; i++)
        if (methods[i] < 8)
            *offered |= 1u << methods[i];
    *v = t;
    return 0;
}

/* A length-prefixed field of 1..255 bytes copied as a C string. */
static int get_short_string(struct buf_view *t, char *out, size_t outlen,
                            int allow_empty)
{
    uint8_t len;
    const uint8_t *p;
    if (buf_get_u8(t, &len) != 0)
        return GW_ENEED_MORE;
    if (buf_get_bytes(t, len, &p) != 0)
        return GW_ENEED_MORE;
    if ((len == 0 && !allow_empty) || len >= outlen ||
        memchr(p, '\0', len) != NULL)
        return GW_EPROTO;
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

int socks5_parse_auth(struct buf_view *v, char *user, size_t userlen,
                      char *pass, size_t passlen, uint8_t *rep)
{
    struct buf_view t = *v;
    uint8_t ver;
    int rc;
    *rep = 0x01; /* RFC 1929: any non-zero status is failure */
    if (buf_get_u8(&t, &ver) != 0)
        return GW_ENEED_MORE;
    if (ver != 1)
        return GW_EPROTO;
    if ((rc = get_short_string(&t, user, userlen, 0)) != 0)
        return rc;
    if ((rc = get_short_string(&t, pass, passlen, 0)) != 0)
        return rc;
    *v = t;
    return 0;
}

int socks5_parse_request(struct buf_view *v, struct socks_request *req,
                         uint8_t *rep)
{
    struct buf_view t = *v;
    uint8_t ver, cmd, rsv, atyp;
    const uint8_t *addr;
    if (buf_get_u8(&t, &ver) != 0 || buf_get_u8(&t, &cmd) != 0 ||
        buf_get_u8(&t, &rsv) != 0 || buf_get_u8(&t, &atyp) != 0)
        return GW_ENEED_MORE;
    *rep = SOCKS5_GENERAL_FAILURE;
    if (ver != 5)
        return GW_EPROTO;
    memset(req, 0, sizeof(*req));
    req->version = 5;
    switch (atyp) {
    case 1:
        if (buf_get_bytes(&t, 4, &addr) != 0)
            return GW_ENEED_MORE;
        inet_ntop(AF_INET, addr, req->host, sizeof(req->host));
        break;
    case 3: {
        int rc = get_short_string(&t, req->host, sizeof(req->host), 0);
        if (rc == GW_EPROTO)
            *rep = SOCKS5_HOST_UNREACHABLE;
        if (rc != 0)
            return rc;
        break;
    }
    case 4:
        if (buf_get_bytes(&t, 16, &addr) != 0)
            return GW_ENEED_MORE;
        inet_ntop(AF_INET6, addr, req->host, sizeof(req->host));
        break;
    default:
        *rep = SOCKS5_ATYP_UNSUPPORTED;
        return GW_EPROTO;
    }
    if (buf_get_u16(&t, &req->port) != 0)
        return GW_ENEED_MORE;
    /* Checked after the whole message is in, so the reply is sent once. */
    if (cmd != 1) {
        *rep = SOCKS5_CMD_UNSUPPORTED;
        return GW_EPROTO;
    }
    *v = t;
    return 0;
}

/* A NUL-terminated field of at most max bytes (SOCKS4 user id, 4a host). */
static int get_cstring(struct buf_view *t, char *out, size_t max)
{
    const uint8_t *start = t->p + t->pos;
    size_t left = buf_view_left(t);
    const uint8_t *nul = memchr(start, '\0', GW_MIN(left, max));
    if (nul == NULL)
        return left < max ? GW_ENEED_MORE : GW_EPROTO;
    size_t len = (size_t)(nul - start);
    memcpy(out, start, len);
    out[len] = '\0';
    t->pos += len + 1;
    return 0;
}

int socks4_parse_request(struct buf_view *v, struct socks_request *req,
                         uint8_t *rep)
{
    struct buf_view t = *v;
    uint8_t ver, cmd;
    uint16_t port;
    const uint8_t *ip;
    int rc;
    *rep = SOCKS4_REJECTED;
    if (buf_get_u8(&t, &ver) != 0 || buf_get_u8(&t, &cmd) != 0 ||
        buf_get_u16(&t, &port) != 0 || buf_get_bytes(&t, 4, &ip) != 0)
        return GW_ENEED_MORE;
    if (ver != 4)
        return GW_EPROTO;
    memset(req, 0, sizeof(*req));
    req->version = 4;
    req->port = port;
    if ((rc = get_cstring(&t, req->user, sizeof(req->user))) != 0)
        return rc;
    /* SOCKS4a: 0.0.0.x with x != 0 means a host name follows. */
    if (ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0) {
        if ((rc = get_cstring(&t, req->host, sizeof(req->host))) != 0)
            return rc;
        if (req->host[0] == '\0')
            return GW_EPROTO;
    } else {
        inet_ntop(AF_INET, ip, req->host, sizeof(req->host));
    }
    if (cmd != 1 || port == 0)
        return GW_EPROTO;
    *v = t;
    return 0;
}

size_t socks5_build_reply(uint8_t out[10], uint8_t rep)
{
    static const uint8_t tmpl[10] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    memcpy(out, tmpl, sizeof(tmpl));
    out[1] = rep;
    return sizeof(tmpl);
}

size_t socks4_build_reply(uint8_t out[8], uint8_t rep)
{
    memset(out, 0, 8);
    out[1] = rep;
    return 8;
}
