/* Unit tests for front_reply.c: every gw_err to its SOCKS5 code and HTTP
 * status, the SOCKS4 codes, and an HTTP refusal's body (whole, or cut to
 * a small buffer without breaking the reply). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "front_reply.h"
#include "socks.h"

/* The mapping, written out once more from RFC 1928 and RFC 9110. */
static void want_for(int err, uint8_t *rep, int *status)
{
    switch (err) {
    case 0:
        *rep = SOCKS5_SUCCEEDED, *status = 200;
        break;
    case GW_ENO_ROUTE:
    case GW_EDENIED:
        *rep = SOCKS5_NOT_ALLOWED, *status = 403;
        break;
    case GW_EUNREACHABLE:
        *rep = SOCKS5_HOST_UNREACHABLE, *status = 502;
        break;
    case GW_EREFUSED:
        *rep = SOCKS5_REFUSED, *status = 502;
        break;
    case GW_ETIMEOUT:
        *rep = SOCKS5_TTL_EXPIRED, *status = 504;
        break;
    default:
        *rep = SOCKS5_GENERAL_FAILURE, *status = 502;
        break;
    }
}

static const int all_errs[] = {
    0,
#define ERR_ROW(name, msg) GW_E##name,
    GW_ERR_MAP(ERR_ROW)
#undef ERR_ROW
        - 111, /* a libuv error (UV_ECONNREFUSED) is a general failure */
};

/* Content-Length from an HTTP reply, or -1. */
static long content_length(const char *reply)
{
    const char *p = strstr(reply, "Content-Length: ");
    return p ? strtol(p + 16, NULL, 10) : -1;
}

static const char *body_of(const char *reply)
{
    const char *p = strstr(reply, "\r\n\r\n");
    return p ? p + 4 : NULL;
}

static void test_every_error(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(all_errs); i++) {
        int err = all_errs[i], status;
        uint8_t rep;
        want_for(err, &rep, &status);
        if (front_socks5_rep_for(err) != rep)
            fail_msg("%s: SOCKS5 %u, want %u", gw_strerror(err),
                     front_socks5_rep_for(err), rep);
        if (front_http_status_for(err) != status)
            fail_msg("%s: HTTP %d, want %d", gw_strerror(err),
                     front_http_status_for(err), status);

        uint8_t out[FRONT_REPLY_MAX];
        assert_int_equal(
            front_reply(FRONT_PROTO_SOCKS5, err, "why", out, sizeof(out)), 10);
        assert_int_equal(out[0], 5);
        assert_int_equal(out[1], rep);
        assert_int_equal(out[3], 1); /* ATYP IPv4: nc -X 5 wants it */
        assert_int_equal(
            front_reply(FRONT_PROTO_SOCKS4, err, "why", out, sizeof(out)), 8);
        assert_int_equal(out[0], 0);
        assert_int_equal(out[1], err == 0 ? SOCKS4_GRANTED : SOCKS4_REJECTED);

        char http[FRONT_REPLY_MAX], head[32];
        size_t n = front_reply(FRONT_PROTO_HTTP, err, "the reason", http,
                               sizeof(http));
        assert_int_equal(n, strlen(http));
        snprintf(head, sizeof(head), "HTTP/1.1 %d ", status);
        assert_memory_equal(http, head, strlen(head));
        if (err == 0) {
            assert_string_equal(body_of(http), ""); /* bytes follow */
            assert_null(strstr(http, "Content-Length"));
        } else {
            assert_string_equal(body_of(http), "the reason\n");
            assert_int_equal(content_length(http), 11);
        }
        assert_int_equal(
            front_reply(FRONT_PROTO_FORWARD, err, "why", out, sizeof(out)), 0);
        assert_int_equal(
            front_reply(FRONT_PROTO_NONE, err, "why", out, sizeof(out)), 0);
    }
}

/* An AWS code and message of GW_REASON_MAX - 1 bytes reach the client. */
static void test_long_reason(void **state)
{
    char reason[GW_REASON_MAX], out[FRONT_REPLY_MAX];
    size_t len = sizeof(reason) - 1;
    int n = snprintf(reason, sizeof(reason), "AccessDeniedException: ");
    memset(reason + n, 'x', len - (size_t)n - 4);
    memcpy(reason + len - 4, "END.", 5);
    size_t got =
        front_reply(FRONT_PROTO_HTTP, GW_EAWS, reason, out, sizeof(out));
    assert_int_equal(got, strlen(out));
    assert_memory_equal(out, "HTTP/1.1 502 Bad Gateway\r\n", 26);
    assert_int_equal(content_length(out), (long)len + 1);
    const char *body = body_of(out);
    assert_memory_equal(body, reason, len);
    assert_string_equal(body + len, "\n");
}

/* A buffer too small for the body cuts the body, never the head, and the
 * Content-Length stays true; too small for the head: no reply at all. */
static void test_small_cap(void **state)
{
    char out[FRONT_REPLY_MAX];
    static const char reason[] = "a reason longer than the room left for it";
    size_t head = front_reply(FRONT_PROTO_HTTP, GW_ETIMEOUT, "", out,
                              sizeof(out)); /* "" = no body */
    assert_true(head > 0);
    for (size_t cap = 0; cap < head + sizeof(reason) + 64; cap++) {
        memset(out, '#', sizeof(out));
        size_t n = front_reply(FRONT_PROTO_HTTP, GW_ETIMEOUT, reason, out, cap);
        if (n == 0)
            continue;
        assert_true(n < cap);
        assert_int_equal(out[n], '\0');
        assert_memory_equal(out, "HTTP/1.1 504 ", 13);
        const char *body = body_of(out);
        assert_non_null(body);
        long cl = content_length(out);
        assert_int_equal(cl, (long)(n - (size_t)(body - out)));
        assert_int_equal(body[cl - 1], '\n');
        assert_memory_equal(body, reason, (size_t)cl - 1);
    }
    /* Big enough: the whole reason. */
    assert_true(front_reply(FRONT_PROTO_HTTP, GW_ETIMEOUT, reason, out,
                            sizeof(out)) > head);
    assert_string_equal(body_of(out), "a reason longer than the room left for "
                                      "it\n");
    /* SOCKS replies need their 10 and 8 bytes. */
    uint8_t s[10];
    assert_int_equal(front_reply(FRONT_PROTO_SOCKS5, GW_EIO, NULL, s, 9), 0);
    assert_int_equal(front_reply(FRONT_PROTO_SOCKS5, GW_EIO, NULL, s, 10), 10);
    assert_int_equal(front_reply(FRONT_PROTO_SOCKS4, GW_EIO, NULL, s, 7), 0);
    assert_int_equal(front_reply(FRONT_PROTO_SOCKS4, GW_EIO, NULL, s, 8), 8);
    assert_int_equal(front_reply(FRONT_PROTO_HTTP, GW_EIO, "x", out, 16), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_error),
        cmocka_unit_test(test_long_reason),
        cmocka_unit_test(test_small_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
