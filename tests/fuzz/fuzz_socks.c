/* Fuzzes the SOCKS parsers the way conn.c drives them: the first byte picks
 * the protocol, then each phase parses from where the previous stopped. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf_view v = buf_view_of(data, size);
    struct socks_request r;
    uint8_t rep;
    if (size == 0)
        return 0;
    if (data[0] == 4) {
        if (socks4_parse_request(&v, &r, &rep) == 0)
            CHECK(strlen(r.host) < sizeof(r.host) && v.pos <= size);
        return 0;
    }
    unsigned offered;
    if (socks5_parse_greeting(&v, &offered, &rep) != 0)
        return 0;
    if (offered & 4) {
        char user[256], pass[256];
        if (socks5_parse_auth(&v, user, sizeof(user), pass, sizeof(pass),
                              &rep) != 0)
            return 0;
        CHECK(strlen(user) > 0 && strlen(pass) > 0);
    }
    if (socks5_parse_request(&v, &r, &rep) == 0)
        CHECK(r.host[0] != '\0' && v.pos <= size);
    return 0;
}
