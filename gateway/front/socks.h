/*
 * socks.h - SOCKS5 (RFC 1928, RFC 1929 username/password) and SOCKS4/4a
 * request parsing and reply building. Pure: bytes in a view, a result out.
 *
 * Each parser reads one message from a view and returns 0 (the view's
 * cursor is past the message), GW_ENEED_MORE (cursor unchanged) or
 * GW_EPROTO with *rep set to the reply code the client should get.
 */
#ifndef SSMGATE_SOCKS_H
#define SSMGATE_SOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* SOCKS5 reply codes: the wire values (RFC 1928 section 6). */
enum socks5_rep {
    SOCKS5_SUCCEEDED = 0x00,
    SOCKS5_GENERAL_FAILURE = 0x01,
    SOCKS5_NOT_ALLOWED = 0x02,
    SOCKS5_NET_UNREACHABLE = 0x03,
    SOCKS5_HOST_UNREACHABLE = 0x04,
    SOCKS5_REFUSED = 0x05,
    SOCKS5_TTL_EXPIRED = 0x06,
    SOCKS5_CMD_UNSUPPORTED = 0x07,
    SOCKS5_ATYP_UNSUPPORTED = 0x08,
};

/* SOCKS4 reply codes (the second byte of the 8-byte reply). */
enum socks4_rep {
    SOCKS4_GRANTED = 0x5a,
    SOCKS4_REJECTED = 0x5b,
};

enum socks5_method {
    SOCKS5_METHOD_NONE = 0x00,
    SOCKS5_METHOD_USERPASS = 0x02,
    SOCKS5_METHOD_UNACCEPTABLE = 0xff,
};

#define SOCKS_HOST_MAX 256 /* 255 + NUL */
#define SOCKS_USER_MAX 256

struct socks_request {
    int version;               /* 4 or 5 */
    char host[SOCKS_HOST_MAX]; /* name, or IPv4/IPv6 literal as text */
    uint16_t port;
    char user[SOCKS_USER_MAX]; /* SOCKS4 user id / RFC 1929 user */
};

/*
 * SOCKS5 greeting (VER NMETHODS METHODS). *offered gets a bit per method
 * 0..7 the client offered (bit 0 = no auth, bit 2 = user/pass).
 */
int socks5_parse_greeting(struct buf_view *v, unsigned *offered, uint8_t *rep);

/* RFC 1929 sub-negotiation: VER(1) ULEN UNAME PLEN PASSWD. */
int socks5_parse_auth(struct buf_view *v, char *user, size_t userlen,
                      char *pass, size_t passlen, uint8_t *rep);

/* SOCKS5 request: VER CMD RSV ATYP DST.ADDR DST.PORT (CONNECT only). */
int socks5_parse_request(struct buf_view *v, struct socks_request *req,
                         uint8_t *rep);

/* SOCKS4 / SOCKS4a CONNECT request. */
int socks4_parse_request(struct buf_view *v, struct socks_request *req,
                         uint8_t *rep);

/* Replies. SOCKS5 replies always carry ATYP 1 0.0.0.0:0: nc -X 5 rejects
 * a domain-name reply. Return the number of bytes written. */
size_t socks5_build_reply(uint8_t out[10], uint8_t rep);
size_t socks4_build_reply(uint8_t out[8], uint8_t rep);

#endif
