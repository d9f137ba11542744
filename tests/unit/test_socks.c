/* Unit tests for socks.c: real client byte sequences, split at every
 * point, and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "socks.h"

/* nc -X 5 -x ... i-0123456789abcdef0 22 (aws-and-local-protocols 7.4) */
static const uint8_t nc5_greeting[] = {5, 1, 0};
static const uint8_t nc5_request[] = {
    5,   1,   0,   3,   19,  'i', '-', '0', '1', '2', '3', '4', '5',
    '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', '0', 0,   22};
/* curl --socks4a: 04 01 <port> 00 00 00 01 00 <name> 00 */
static const uint8_t curl4a[] = {4, 1, 0,   80,  0,   0,   0,
                                 1, 0, 'h', 'o', 's', 't', 0};

static void test_greeting(void **state)
{
    unsigned offered;
    uint8_t rep;
    for (size_t cut = 0; cut < sizeof(nc5_greeting); cut++) {
        struct buf_view v = buf_view_of(nc5_greeting, cut);
        assert_int_equal(socks5_parse_greeting(&v, &offered, &rep),
                         GW_ENEED_MORE);
        assert_int_equal(v.pos, 0);
    }
    struct buf_view v = buf_view_of(nc5_greeting, sizeof(nc5_greeting));
    assert_int_equal(socks5_parse_greeting(&v, &offered, &rep), 0);
    assert_int_equal(offered, 1);
    assert_int_equal(v.pos, 3);
    /* curl with GSS-API and credentials: 05 03 00 01 02 */
    static const uint8_t curl[] = {5, 3, 0, 1, 2};
    v = buf_view_of(curl, sizeof(curl));
    assert_int_equal(socks5_parse_greeting(&v, &offered, &rep), 0);
    assert_int_equal(offered, 1 | 2 | 4);
    static const uint8_t zero_methods[] = {5, 0};
    v = buf_view_of(zero_methods, sizeof(zero_methods));
    assert_int_equal(socks5_parse_greeting(&v, &offered, &rep), GW_EPROTO);
    static const uint8_t bad_version[] = {6, 1, 0};
    v = buf_view_of(bad_version, sizeof(bad_version));
    assert_int_equal(socks5_parse_greeting(&v, &offered, &rep), GW_EPROTO);
}

static void test_request_domain(void **state)
{
    struct socks_request r;
    uint8_t rep;
    for (size_t cut = 0; cut < sizeof(nc5_request); cut++) {
        struct buf_view v = buf_view_of(nc5_request, cut);
        assert_int_equal(socks5_parse_request(&v, &r, &rep), GW_ENEED_MORE);
    }
    struct buf_view v = buf_view_of(nc5_request, sizeof(nc5_request));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), 0);
    assert_string_equal(r.host, "i-0123456789abcdef0");
    assert_int_equal(r.port, 22);
    assert_int_equal(v.pos, sizeof(nc5_request));
}

static void test_request_ip(void **state)
{
    static const uint8_t v4[] = {5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90};
    static const uint8_t v6[] = {5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0,
                                 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80};
    struct socks_request r;
    uint8_t rep;
    struct buf_view v = buf_view_of(v4, sizeof(v4));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), 0);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 8080);
    v = buf_view_of(v6, sizeof(v6));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), 0);
    assert_string_equal(r.host, "::1");
}

static void test_request_errors(void **state)
{
    struct socks_request r;
    uint8_t rep;
    static const uint8_t bind[] = {5, 2, 0, 1, 127, 0, 0, 1, 0, 80};
    struct buf_view v = buf_view_of(bind, sizeof(bind));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), GW_EPROTO);
    assert_int_equal(rep, SOCKS5_CMD_UNSUPPORTED);
    static const uint8_t atyp[] = {5, 1, 0, 9, 1, 2, 3, 4, 0, 80};
    v = buf_view_of(atyp, sizeof(atyp));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), GW_EPROTO);
    assert_int_equal(rep, SOCKS5_ATYP_UNSUPPORTED);
    static const uint8_t empty_name[] = {5, 1, 0, 3, 0, 0, 80};
    v = buf_view_of(empty_name, sizeof(empty_name));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), GW_EPROTO);
    static const uint8_t nul_name[] = {5, 1, 0, 3, 3, 'a', 0, 'b', 0, 80};
    v = buf_view_of(nul_name, sizeof(nul_name));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), GW_EPROTO);
    /* A 255-byte name is the maximum and fits. */
    uint8_t big[4 + 1 + 255 + 2];
    memcpy(big, "\x05\x01\x00\x03", 4);
    big[4] = 255;
    memset(big + 5, 'a', 255);
    big[260] = 0;
    big[261] = 22;
    v = buf_view_of(big, sizeof(big));
    assert_int_equal(socks5_parse_request(&v, &r, &rep), 0);
    assert_int_equal(strlen(r.host), 255);
}

static void test_auth(void **state)
{
    static const uint8_t ok[] = {1, 3, 'b', 'o', 'b', 2, 'p', 'w'};
    char user[256], pass[256];
    uint8_t rep;
    for (size_t cut = 0; cut < sizeof(ok); cut++) {
        struct buf_view v = buf_view_of(ok, cut);
        assert_int_equal(
            socks5_parse_auth(&v, user, sizeof(user), pass, sizeof(pass), &rep),
            GW_ENEED_MORE);
    }
    struct buf_view v = buf_view_of(ok, sizeof(ok));
    assert_int_equal(
        socks5_parse_auth(&v, user, sizeof(user), pass, sizeof(pass), &rep), 0);
    assert_string_equal(user, "bob");
    assert_string_equal(pass, "pw");
    static const uint8_t bad[] = {2, 1, 'a', 1, 'b'};
    v = buf_view_of(bad, sizeof(bad));
    assert_int_equal(
        socks5_parse_auth(&v, user, sizeof(user), pass, sizeof(pass), &rep),
        GW_EPROTO);
}

static void test_socks4(void **state)
{
    struct socks_request r;
    uint8_t rep;
    for (size_t cut = 0; cut < sizeof(curl4a); cut++) {
        struct buf_view v = buf_view_of(curl4a, cut);
        assert_int_equal(socks4_parse_request(&v, &r, &rep), GW_ENEED_MORE);
    }
    struct buf_view v = buf_view_of(curl4a, sizeof(curl4a));
    assert_int_equal(socks4_parse_request(&v, &r, &rep), 0);
    assert_string_equal(r.host, "host");
    assert_int_equal(r.port, 80);
    /* nc -X 4: resolved locally, empty user id */
    static const uint8_t nc4[] = {4, 1, 0, 22, 127, 0, 0, 1, 0};
    v = buf_view_of(nc4, sizeof(nc4));
    assert_int_equal(socks4_parse_request(&v, &r, &rep), 0);
    assert_string_equal(r.host, "127.0.0.1");
    /* A user id that never ends is refused once it passes the cap. */
    uint8_t endless[8 + 300];
    memcpy(endless, nc4, 8);
    memset(endless + 8, 'u', 300);
    v = buf_view_of(endless, sizeof(endless));
    assert_int_equal(socks4_parse_request(&v, &r, &rep), GW_EPROTO);
    assert_int_equal(rep, SOCKS4_REJECTED);
}

static void test_replies(void **state)
{
    uint8_t out[10];
    assert_int_equal(socks5_build_reply(out, SOCKS5_REFUSED), 10);
    static const uint8_t want[] = {5, 5, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(out, want, 10);
    assert_int_equal(socks4_build_reply(out, SOCKS4_GRANTED), 8);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 0x5a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_request_domain),
        cmocka_unit_test(test_request_ip),
        cmocka_unit_test(test_request_errors),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_socks4),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
