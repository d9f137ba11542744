/* Fuzzes the proxy port's request parser (CONNECT and plain proxy
 * requests), the request head reader under it (the metrics listener's
 * GET), the rewrite of a request to forward and the framing of its body;
 * checks the results' invariants. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "http1.h"
#include "httpconnect.h"
#include "httpfwd.h"

/* The rewritten head parses again as a head and keeps none of the
 * proxy's own fields. */
static void check_rewrite(const uint8_t *data, size_t size,
                          const struct httpconnect_request *r)
{
    static char out[HTTPFWD_HEAD_OUT_MAX];
    size_t n = httpfwd_request_head(data, r, out, sizeof(out));
    CHECK(n > 0);
    CHECK(n <= sizeof(out));
    CHECK(memcmp(out, data, r->method_len) == 0 && out[r->method_len] == ' ');
    CHECK(http1_head_len((const uint8_t *)out, n) == n);
    CHECK(memmem(out, n, "\r\nConnection: close\r\n", 21) != NULL);
    const char *line = memchr(out, '\n', n) + 1;
    struct http1_field f;
    int rc, hosts = 0;
    while ((rc = http1_next_field(&line, out + n, &f)) == 1) {
        CHECK(!http1_field_is(&f, "Proxy-Authorization"));
        CHECK(!http1_field_is(&f, "Proxy-Connection"));
        CHECK(!http1_field_is(&f, "Keep-Alive"));
        hosts += http1_field_is(&f, "Host");
    }
    CHECK(rc == 0 && hosts == 1);
    /* The body's framing over what follows the head. */
    struct http1_body b;
    http1_body_init(&b, r->body, r->body_len);
    size_t at = r->head_len;
    while (at < size && !b.done) {
        size_t step = GW_MIN(size - at, 7); /* arrives in pieces */
        ssize_t k = http1_body_scan(&b, data + at, step);
        if (k < 0)
            break;
        CHECK((size_t)k <= step);
        CHECK((size_t)k == step || b.done);
        at += (size_t)k;
    }
}

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
    const char *why = NULL;
    int rc = httpconnect_parse(&v, &r, &status, &why);
    if (rc == 0) {
        CHECK(r.port != 0 && r.host[0] != '\0');
        CHECK(v.pos <= size && v.pos <= HTTPCONNECT_HEAD_MAX);
        CHECK(v.pos == r.head_len);
        if (r.forward) {
            CHECK(r.authority_off + r.authority_len <= r.head_len);
            CHECK(r.path_off + r.path_len <= r.head_len);
            CHECK(r.body != HTTP1_BODY_CLOSE);
            check_rewrite(data, size, &r);
        }
    } else if (rc == GW_EPROTO) {
        CHECK(status >= 400 && status < 600);
        CHECK(why != NULL);
        char out[256];
        CHECK(httpconnect_build_reply(out, sizeof(out), status) > 0);
    }
    return 0;
}
