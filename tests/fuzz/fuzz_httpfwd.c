/* Fuzzes the response side of the plain HTTP proxy: an origin's bytes
 * through httpfwd_resp_feed in pieces, then its end. The first input byte
 * picks the request (HEAD or not, HTTP/1.0 or 1.1, keep-alive) and the
 * piece size. Checks that what reaches the client is a well-formed head
 * first and that a finished response stays finished. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "http1.h"
#include "httpfwd.h"

struct sink {
    size_t bytes, calls;
    int first_ok;
};

static void emit(void *arg, const uint8_t *p, size_t n)
{
    struct sink *s = arg;
    CHECK(n > 0);
    if (s->calls++ == 0)
        s->first_ok = n >= 13 && memcmp(p, "HTTP/1.1 ", 9) == 0 &&
                      http1_head_len(p, n) == n;
    s->bytes += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static struct httpfwd_resp r;
    struct httpconnect_request req;
    memset(&req, 0, sizeof(req));
    req.head_method = data[0] & 1;
    req.minor = (data[0] >> 1) & 1;
    req.keep_alive = (data[0] >> 2) & 1;
    size_t piece = 1 + (data[0] >> 3);
    httpfwd_resp_init(&r, &req);
    struct sink s = {0, 0, 0};
    const char *why = NULL;
    int rc = 0;
    for (size_t at = 1; at < size && rc == 0;) {
        size_t n = GW_MIN(piece, size - at);
        rc = httpfwd_resp_feed(&r, data + at, n, emit, &s, &why);
        at += n;
    }
    if (s.calls > 0)
        CHECK(s.first_ok);
    CHECK(s.bytes == r.emitted);
    if (rc < 0) {
        CHECK(why != NULL);
        return 0;
    }
    if (rc == 1) {
        CHECK(r.state == HTTPFWD_RESP_DONE);
        CHECK(r.status >= 200);
        size_t before = s.bytes;
        CHECK(httpfwd_resp_feed(&r, data, size, emit, &s, &why) == 1);
        CHECK(s.bytes == before);
        return 0;
    }
    rc = httpfwd_resp_eof(&r, &why);
    CHECK(rc == 1 || (rc == GW_EPROTO && why != NULL));
    return 0;
}
