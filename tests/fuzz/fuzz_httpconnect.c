/* Fuzzes the HTTP request head parser (the metrics listener's GET) and the
 * CONNECT parser on top of it; checks the results' invariants. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "httpconnect.h"

/* The head parser alone, with a small limit, and every header line. */
static void fuzz_head(const uint8_t *data, size_t size)
{
    struct http_head h;
    int status = 0;
    int rc = http_head_parse(data, size, 512, &h, &status);
    if (rc == GW_EPROTO) {
        CHECK(status == 400 || status == 431 || status == 505);
        return;
    }
    if (rc != 0) {
        CHECK(rc == GW_ENEED_MORE && size < 512);
        return;
    }
    CHECK(h.len <= size && h.len <= 512);
    CHECK(h.method_len > 0 && h.target_len > 0);
    CHECK(h.target + h.target_len <= (const char *)data + h.len);
    const char *pos = h.headers, *name, *value;
    size_t nl, vl;
    while ((rc = http_head_header(&h, &pos, &name, &nl, &value, &vl)) > 0)
        CHECK(value + vl <= (const char *)data + h.len &&
              memchr(value, '\n', vl) == NULL);
    CHECK(rc == 0); /* the parser checked every line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_head(data, size);
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
