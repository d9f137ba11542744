/* Unit tests for httpconnect.c with what nc and curl really send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "httpconnect.h"

static int parse(const char *text, struct httpconnect_request *r, int *status)
{
    struct buf_view v = buf_view_of(text, strlen(text));
    const char *why;
    return httpconnect_parse(&v, r, status, &why);
}

static void test_nc(void **state)
{
    const char *req = "CONNECT i-0123456789abcdef0:22 HTTP/1.0\r\n\r\n";
    struct httpconnect_request r;
    int status;
    const char *why;
    for (size_t cut = 0; cut < strlen(req); cut++) {
        struct buf_view v = buf_view_of(req, cut);
        assert_int_equal(httpconnect_parse(&v, &r, &status, &why),
                         GW_ENEED_MORE);
    }
    assert_int_equal(parse(req, &r, &status), 0);
    assert_string_equal(r.host, "i-0123456789abcdef0");
    assert_int_equal(r.port, 22);
    assert_int_equal(r.minor, 0);
}

static void test_curl(void **state)
{
    struct httpconnect_request r;
    int status;
    assert_int_equal(
        parse("CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n"
              "User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n"
              "Proxy-Authorization: Basic Ym9iOnNlY3JldA==\r\n\r\n",
              &r, &status),
        0);
    assert_string_equal(r.host, "db.internal");
    assert_int_equal(r.port, 5432);
    assert_true(r.has_auth);
    assert_string_equal(r.user, "bob");
    assert_string_equal(r.pass, "secret");
    assert_int_equal(parse("CONNECT [::1]:8080 HTTP/1.1\r\n\r\n", &r, &status),
                     0);
    assert_string_equal(r.host, "::1");
}

static void test_errors(void **state)
{
    struct httpconnect_request r;
    int status;
    /* Origin-form is no proxy request. */
    assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n", &r, &status), GW_EPROTO);
    assert_int_equal(status, 400);
    assert_int_equal(parse("CONNECT host HTTP/1.1\r\n\r\n", &r, &status),
                     GW_EPROTO);
    assert_int_equal(status, 400);
    assert_int_equal(parse("CONNECT host:99999 HTTP/1.1\r\n\r\n", &r, &status),
                     GW_EPROTO);
    assert_int_equal(parse("CONNECT host:0 HTTP/1.1\r\n\r\n", &r, &status),
                     GW_EPROTO);
    assert_int_equal(parse("CONNECT host:22 HTTP/2.0\r\n\r\n", &r, &status),
                     GW_EPROTO);
    assert_int_equal(status, 505);
    assert_int_equal(
        parse("CONNECT host:22 HTTP/1.1\r\nno colon here\r\n\r\n", &r, &status),
        GW_EPROTO);
    /* A head that never ends is refused at the cap, not buffered forever. */
    static char big[HTTPCONNECT_HEAD_MAX + 10];
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "CONNECT h:1 HTTP/1.1\r\nX: ", 25);
    struct buf_view v = buf_view_of(big, sizeof(big) - 1);
    const char *why;
    assert_int_equal(httpconnect_parse(&v, &r, &status, &why), GW_EPROTO);
    assert_int_equal(status, 431);
    /* Bad base64 in Proxy-Authorization is ignored, not trusted. */
    assert_int_equal(parse("CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Basic "
                           "!!!!\r\n\r\n",
                           &r, &status),
                     0);
    assert_false(r.has_auth);
}

/* What curl -x (no -p), wget and python requests send for http:// URLs. */
static void test_forward(void **state)
{
    struct httpconnect_request r;
    int status;
    const char *curl = "GET http://web.internal:8080/a/b?x=1 HTTP/1.1\r\n"
                       "Host: web.internal:8080\r\nUser-Agent: curl/7.88.1\r\n"
                       "Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n";
    assert_int_equal(parse(curl, &r, &status), 0);
    assert_true(r.forward);
    assert_string_equal(r.host, "web.internal");
    assert_int_equal(r.port, 8080);
    assert_int_equal(r.head_len, strlen(curl));
    assert_int_equal(r.method_len, 3);
    assert_memory_equal(curl + r.authority_off, "web.internal:8080", 17);
    assert_int_equal(r.authority_len, 17);
    assert_memory_equal(curl + r.path_off, "/a/b?x=1", 8);
    assert_int_equal(r.path_len, 8);
    assert_true(r.keep_alive);
    assert_int_equal(r.body, HTTP1_BODY_NONE);
    /* Default port, empty path, a body, HTTP/1.0 closes by default. */
    assert_int_equal(parse("POST http://Db.Internal HTTP/1.0\r\n"
                           "Content-Length: 5\r\n\r\nhello",
                           &r, &status),
                     0);
    assert_int_equal(r.port, 80);
    assert_int_equal(r.path_len, 0);
    assert_int_equal(r.body, HTTP1_BODY_LENGTH);
    assert_int_equal(r.body_len, 5);
    assert_false(r.keep_alive);
    const char *put = "PUT HTTP://[::1]:81/x HTTP/1.1\r\nTransfer-Encoding: "
                      "gzip, chunked\r\nConnection: close\r\n\r\n";
    assert_int_equal(parse(put, &r, &status), 0);
    assert_int_equal(r.body, HTTP1_BODY_CHUNKED);
    assert_false(r.keep_alive);
    assert_true(strcmp(r.host, "::1") == 0 && r.port == 81);
    assert_int_equal(parse("HEAD http://h/ HTTP/1.1\r\nProxy-Authorization: "
                           "Basic Ym9iOnNlY3JldA==\r\n\r\n",
                           &r, &status),
                     0);
    assert_true(r.head_method);
    assert_true(r.has_auth);
    assert_string_equal(r.pass, "secret");
}

/* Requests a proxy must refuse rather than guess at (RFC 9112). */
static void test_forward_refused(void **state)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GET https://h/ HTTP/1.1\r\n\r\n", 501},
        {"GET ftp://h/ HTTP/1.1\r\n\r\n", 501},
        {"GET http://u:p@h/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://h/#frag HTTP/1.1\r\n\r\n", 400},
        {"GET http://h:99999/ HTTP/1.1\r\n\r\n", 400},
        {"GET http:///x HTTP/1.1\r\n\r\n", 400},
        {"GET * HTTP/1.1\r\n\r\n", 400},
        {"G@T http://h/ HTTP/1.1\r\n\r\n", 400},
        {"GET http://h/ HTTP/1.1\r\nHost : h\r\n\r\n", 400},
        {"GET http://h/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400},
        {"GET http://h/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
        {"GET http://h/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"POST http://h/ HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
        {"POST http://h/ HTTP/1.1\r\nContent-Length: 1\r\n"
         "Content-Length: 2\r\n\r\n",
         400},
        {"POST http://h/ HTTP/1.1\r\nContent-Length: 1\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         400},
        {"POST http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
         400},
        {"POST http://h/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"GET http://h/ HTTP/2.0\r\n\r\n", 505},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct httpconnect_request r;
        int status = 0;
        struct buf_view v = buf_view_of(cases[i].req, strlen(cases[i].req));
        const char *why = NULL;
        assert_int_equal(httpconnect_parse(&v, &r, &status, &why), GW_EPROTO);
        if (status != cases[i].status)
            fail_msg("%s: %d, not %d", cases[i].req, status, cases[i].status);
        assert_non_null(why);
    }
}

static void test_reply(void **state)
{
    char out[256];
    size_t n = httpconnect_build_reply(out, sizeof(out), 200);
    assert_int_equal(n, strlen("HTTP/1.1 200 Connection established\r\n\r\n"));
    assert_memory_equal(out, "HTTP/1.1 200 ", 13);
    n = httpconnect_build_reply(out, sizeof(out), 407);
    assert_non_null(strstr(out, "Proxy-Authenticate: Basic"));
    /* A refusal's reason is the body; the 407 keeps its challenge. */
    n = httpconnect_build_reply_text(out, sizeof(out), 407, "who are you");
    assert_int_equal(n, strlen(out));
    assert_non_null(strstr(out, "Proxy-Authenticate: Basic"));
    assert_non_null(strstr(out, "Content-Length: 12\r\n"));
    assert_non_null(strstr(out, "\r\n\r\nwho are you\n"));
    assert_int_equal(httpconnect_build_reply_text(out, 20, 502, "x"), 0);
}

/* What Prometheus and curl send to the metrics listener. */
static void test_head_get(void **state)
{
    const char *req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9108\r\n"
                      "User-Agent: Prometheus/2.42.0\r\nAccept: "
                      "application/openmetrics-text;version=1.0.0,text/"
                      "plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
                      "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
    struct http_head h;
    int status;
    for (size_t cut = 0; cut < strlen(req); cut++)
        assert_int_equal(
            http_head_parse((const uint8_t *)req, cut, 4096, &h, &status),
            GW_ENEED_MORE);
    assert_int_equal(
        http_head_parse((const uint8_t *)req, strlen(req), 4096, &h, &status),
        0);
    assert_int_equal(h.len, strlen(req));
    assert_int_equal(h.method_len, 3);
    assert_memory_equal(h.method, "GET", 3);
    assert_int_equal(h.target_len, 8);
    assert_memory_equal(h.target, "/metrics", 8);
    assert_int_equal(h.minor, 1);
    const char *pos = h.headers, *name, *value;
    size_t nl, vl;
    int n = 0;
    while (http_head_header(&h, &pos, &name, &nl, &value, &vl) > 0) {
        if (n == 0) {
            assert_int_equal(nl, 4);
            assert_memory_equal(name, "Host", 4);
            assert_int_equal(vl, 15);
            assert_memory_equal(value, " 127.0.0.1:9108", 15);
        }
        n++;
    }
    assert_int_equal(n, 4);
}

static void test_head_errors(void **state)
{
    struct http_head h;
    int status;
    const char *bad[][2] = {
        {"GET /metrics\r\n\r\n", "400"},
        {" /metrics HTTP/1.1\r\n\r\n", "400"},
        {"GET  HTTP/1.1\r\n\r\n", "400"},
        {"GET /metrics HTTP/2.0\r\n\r\n", "505"},
        {"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "400"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(http_head_parse((const uint8_t *)bad[i][0],
                                         strlen(bad[i][0]), 4096, &h, &status),
                         GW_EPROTO);
        assert_int_equal(status, atoi(bad[i][1]));
    }
    /* No end within max: 431, whatever comes later. */
    char big[600];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    assert_int_equal(
        http_head_parse((const uint8_t *)big, sizeof(big), 512, &h, &status),
        GW_EPROTO);
    assert_int_equal(status, 431);
    assert_int_equal(
        http_head_parse((const uint8_t *)big, 500, 512, &h, &status),
        GW_ENEED_MORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nc),
        cmocka_unit_test(test_curl),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_forward_refused),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_head_get),
        cmocka_unit_test(test_head_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
