/* Unit tests for http1.c and httpfwd.c: the plain HTTP proxy's rewrite of
 * requests and responses and its body framing, with what curl, wget and
 * Python's http.server really send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "http1.h"
#include "httpconnect.h"
#include "httpfwd.h"

static void parse_ok(const char *text, struct httpconnect_request *r)
{
    struct buf_view v = buf_view_of(text, strlen(text));
    int status;
    const char *why;
    assert_int_equal(httpconnect_parse(&v, r, &status, &why), 0);
}

static void test_request_rewrite(void **state)
{
    const char *in = "GET http://web.internal:8080/a?b=1 HTTP/1.1\r\n"
                     "Host: elsewhere\r\nUser-Agent: curl/7.88.1\r\n"
                     "Accept: */*\r\nProxy-Connection: Keep-Alive\r\n"
                     "Proxy-Authorization: Basic Ym9iOnNlY3JldA==\r\n"
                     "Connection: X-Hop, keep-alive\r\nX-Hop: 1\r\n"
                     "Keep-Alive: timeout=5\r\nTE: trailers\r\n"
                     "Upgrade: websocket\r\nX-Kept:  spaced value \r\n\r\n";
    struct httpconnect_request r;
    char out[HTTPFWD_HEAD_OUT_MAX];
    parse_ok(in, &r);
    size_t n = httpfwd_request_head((const uint8_t *)in, &r, out, sizeof(out));
    const char *want = "GET /a?b=1 HTTP/1.1\r\nHost: web.internal:8080\r\n"
                       "User-Agent: curl/7.88.1\r\nAccept: */*\r\n"
                       "X-Kept: spaced value\r\nConnection: close\r\n"
                       "Via: 1.1 ssmgate\r\n\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    /* An empty path becomes "/", a query alone "/?q"; 1.0 stays 1.0. */
    in = "GET http://h?q HTTP/1.0\r\n\r\n";
    parse_ok(in, &r);
    n = httpfwd_request_head((const uint8_t *)in, &r, out, sizeof(out));
    want = "GET /?q HTTP/1.0\r\nHost: h\r\nConnection: close\r\n"
           "Via: 1.0 ssmgate\r\n\r\n";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    /* Too small a buffer: 0, never a cut head. */
    assert_int_equal(
        httpfwd_request_head((const uint8_t *)in, &r, out, strlen(want) - 1),
        0);
}

/* Feeds body bytes one at a time: how many belong to the body. */
static ssize_t scan_bytewise(struct http1_body *b, const char *p, size_t n)
{
    size_t used = 0;
    for (size_t i = 0; i < n && !b->done; i++) {
        ssize_t k = http1_body_scan(b, (const uint8_t *)p + i, 1);
        if (k < 0)
            return k;
        used += (size_t)k;
    }
    return (ssize_t)used;
}

static void test_body_framing(void **state)
{
    const char *chunked = "4\r\nwiki\r\n5;name=\"v\"\r\npedia\r\nE\r\n in\r\n"
                          "\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";
    const char *next = "GET http://next/ HTTP/1.1\r\n\r\n";
    char all[256];
    snprintf(all, sizeof(all), "%s%s", chunked, next);
    struct http1_body b;
    http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
    assert_int_equal(http1_body_scan(&b, (const uint8_t *)all, strlen(all)),
                     strlen(chunked));
    assert_true(b.done);
    http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
    assert_int_equal(scan_bytewise(&b, all, strlen(all)), strlen(chunked));
    assert_true(b.done);
    /* Bare LFs, as lax clients send them. */
    http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
    assert_int_equal(http1_body_scan(&b, (const uint8_t *)"3\nabc\n0\n\nX", 10),
                     9);
    assert_true(b.done);
    static const char *const bad[] = {
        "x\r\n",
        "3\r\nabcX",
        "3\rX",
        "1234567890abcdef\r\n",
        "0\r\nX: \x01\r\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        http1_body_init(&b, HTTP1_BODY_CHUNKED, 0);
        assert_int_equal(
            http1_body_scan(&b, (const uint8_t *)bad[i], strlen(bad[i])),
            GW_EPROTO);
    }
    http1_body_init(&b, HTTP1_BODY_LENGTH, 5);
    assert_int_equal(http1_body_scan(&b, (const uint8_t *)"helloGET", 8), 5);
    assert_true(b.done);
    http1_body_init(&b, HTTP1_BODY_NONE, 0);
    assert_true(b.done);
    assert_int_equal(http1_body_scan(&b, (const uint8_t *)"GET", 3), 0);
    http1_body_init(&b, HTTP1_BODY_CLOSE, 0);
    assert_int_equal(http1_body_scan(&b, (const uint8_t *)"GET", 3), 3);
    assert_false(b.done);
}

struct sink {
    char out[4096];
    size_t len;
};

static void emit(void *arg, const uint8_t *p, size_t n)
{
    struct sink *s = arg;
    assert_true(s->len + n <= sizeof(s->out));
    memcpy(s->out + s->len, p, n);
    s->len += n;
}

/* Runs a response through a relay for request req, in pieces of step
 * bytes; returns the last feed result (and *eof_rc after the end). */
static int relay(const char *req, const char *resp, size_t step, struct sink *s,
                 struct httpfwd_resp *r)
{
    struct httpconnect_request q;
    const char *why = NULL;
    parse_ok(req, &q);
    httpfwd_resp_init(r, &q);
    memset(s, 0, sizeof(*s));
    int rc = 0;
    size_t n = strlen(resp);
    for (size_t at = 0; at < n && rc == 0; at += step)
        rc = httpfwd_resp_feed(r, (const uint8_t *)resp + at,
                               GW_MIN(step, n - at), emit, s, &why);
    return rc;
}

static void test_response_keep_alive(void **state)
{
    static struct httpfwd_resp r;
    struct sink s;
    const char *get = "GET http://h/ HTTP/1.1\r\n\r\n";
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                       "Connection: close\r\nKeep-Alive: x\r\n\r\nhelloJUNK";
    const char *want = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                       "Via: 1.1 ssmgate\r\n\r\nhello";
    for (size_t step = 1; step <= strlen(resp); step++) {
        assert_int_equal(relay(get, resp, step, &s, &r), 1);
        assert_int_equal(s.len, strlen(want));
        assert_memory_equal(s.out, want, s.len);
        assert_true(r.keep);
        assert_int_equal(r.status, 200);
    }
    /* Chunked after an interim 100: both heads go, the body as it came. */
    resp = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
           "Transfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n"
           "3\r\nabc\r\n0\r\n\r\n";
    want = "HTTP/1.1 100 Continue\r\nVia: 1.1 ssmgate\r\n\r\n"
           "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n"
           "Via: 1.1 ssmgate\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_int_equal(relay(get, resp, 3, &s, &r), 1);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.out, want, s.len);
    assert_true(r.keep);
    /* HEAD and 304: no body whatever Content-Length says. */
    assert_int_equal(relay("HEAD http://h/ HTTP/1.1\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 7,
                           &s, &r),
                     1);
    assert_true(r.keep);
    assert_int_equal(
        relay(get, "HTTP/1.1 304 Not Modified\r\n\r\n", 100, &s, &r), 1);
}

static void test_response_close(void **state)
{
    static struct httpfwd_resp r;
    struct sink s;
    const char *why;
    /* Python's http.server: HTTP/1.0, no length: the body runs to EOF. */
    const char *resp = "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\n\r\nbody";
    assert_int_equal(relay("GET http://h/ HTTP/1.1\r\n\r\n", resp, 5, &s, &r),
                     0);
    assert_false(r.keep);
    const char *want = "HTTP/1.1 200 OK\r\nServer: SimpleHTTP/0.6\r\n"
                       "Connection: close\r\nVia: 1.1 ssmgate\r\n\r\nbody";
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.out, want, s.len);
    assert_int_equal(httpfwd_resp_eof(&r, &why), 1);
    /* The client said close: so does the response. */
    assert_int_equal(
        relay("GET http://h/ HTTP/1.1\r\nConnection: close\r\n\r\n",
              "HTTP/1.1 204 No Content\r\n\r\n", 100, &s, &r),
        1);
    assert_false(r.keep);
    assert_non_null(strstr(s.out, "Connection: close\r\n"));
    /* An HTTP/1.0 client that asked keep-alive hears it; it never sees
     * interim responses. */
    assert_int_equal(relay("GET http://h/ HTTP/1.0\r\nConnection: keep-alive"
                           "\r\n\r\n",
                           "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                           "Content-Length: 0\r\n\r\n",
                           100, &s, &r),
                     1);
    assert_true(r.keep);
    assert_memory_equal(s.out, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(strstr(s.out, "Connection: keep-alive\r\n"));
}

static void test_response_errors(void **state)
{
    static struct httpfwd_resp r;
    struct sink s;
    const char *why = NULL;
    const char *get = "GET http://h/ HTTP/1.1\r\n\r\n";
    assert_int_equal(relay(get, "HTTP/1.1 101 Switching\r\n\r\n", 100, &s, &r),
                     GW_EPROTO);
    assert_int_equal(relay(get, "SSH-2.0-OpenSSH_9.2\r\n\r\n", 100, &s, &r),
                     GW_EPROTO);
    assert_int_equal(s.len, 0);
    assert_int_equal(relay(get, "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                           100, &s, &r),
                     GW_EPROTO);
    assert_int_equal(relay(get,
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                           "\r\nzz\r\n",
                           100, &s, &r),
                     GW_EPROTO);
    /* Cut short: before the head, and in a counted body. */
    assert_int_equal(relay(get, "HTTP/1.1 200", 100, &s, &r), 0);
    assert_int_equal(httpfwd_resp_eof(&r, &why), GW_EPROTO);
    assert_int_equal(relay(get, "", 100, &s, &r), 0);
    assert_int_equal(httpfwd_resp_eof(&r, &why), GW_EPROTO);
    assert_non_null(strstr(why, "without a response"));
    assert_int_equal(relay(get,
                           "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab",
                           100, &s, &r),
                     0);
    assert_int_equal(httpfwd_resp_eof(&r, &why), GW_EPROTO);
    assert_non_null(strstr(why, "cut short"));
    /* A head that never ends is refused at the cap. */
    struct httpconnect_request q;
    parse_ok(get, &q);
    httpfwd_resp_init(&r, &q);
    static uint8_t big[HTTPFWD_RESP_HEAD_MAX + 1];
    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(&s, 0, sizeof(s));
    assert_int_equal(httpfwd_resp_feed(&r, big, sizeof(big), emit, &s, &why),
                     GW_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_rewrite),
        cmocka_unit_test(test_body_framing),
        cmocka_unit_test(test_response_keep_alive),
        cmocka_unit_test(test_response_close),
        cmocka_unit_test(test_response_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
