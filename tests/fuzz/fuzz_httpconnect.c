/* Fuzzes the HTTP CONNECT parser; checks the result's invariants. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "httpconnect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf_view v = buf_view_of(data, size);
    struct httpconnect_request r;
    int status = 0;
    int rc = httpconnect_parse(&v, &r, &status);
    if (rc == 0) {
        CHECK(r.port != 0 && r.host[0] != '\0');
        CHECK(v.pos <= size && v.pos <= HTTPCONNECT_HEAD_MAX);
    } else if (rc == GW_EPROTO) {
        CHECK(status >= 400 && status < 600);
        char out[256];
        CHECK(httpconnect_build_reply(out, sizeof(out), status) > 0);
    }
    return 0;
}
