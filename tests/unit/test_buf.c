/* Unit tests for buf.c: cursors, bounds, big/little-endian, views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "common.h"

static void test_put_get_roundtrip(void **state)
{
    struct buf b;
    assert_int_equal(buf_init(&b, 64), 0);
    assert_int_equal(buf_put_u8(&b, 0xab), 0);
    assert_int_equal(buf_put_u16(&b, 0x1234), 0);
    assert_int_equal(buf_put_u32(&b, 0xdeadbeef), 0);
    assert_int_equal(buf_put_u64(&b, 0x0102030405060708ull), 0);
    assert_int_equal(buf_put_u16_le(&b, 0x1234), 0);
    assert_int_equal(buf_put_u32_le(&b, 0x01020304), 0);
    assert_int_equal(buf_len(&b), 1 + 2 + 4 + 8 + 2 + 4);
    const uint8_t *raw = buf_rptr(&b);
    assert_int_equal(raw[1], 0x12);
    assert_int_equal(raw[15], 0x34);
    assert_int_equal(raw[17], 0x04);

    struct buf_view v = buf_peek(&b);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    assert_int_equal(buf_get_u8(&v, &u8), 0);
    assert_int_equal(u8, 0xab);
    assert_int_equal(buf_get_u16(&v, &u16), 0);
    assert_int_equal(u16, 0x1234);
    assert_int_equal(buf_get_u32(&v, &u32), 0);
    assert_int_equal(u32, 0xdeadbeef);
    assert_int_equal(buf_get_u64(&v, &u64), 0);
    assert_true(u64 == 0x0102030405060708ull);
    assert_int_equal(buf_get_u16_le(&v, &u16), 0);
    assert_int_equal(u16, 0x1234);
    assert_int_equal(buf_get_u32_le(&v, &u32), 0);
    assert_int_equal(u32, 0x01020304);
    assert_int_equal(buf_get_u8(&v, &u8), GW_ENEED_MORE);
    buf_free(&b);
}

static void test_bounds(void **state)
{
    struct buf b;
    uint8_t mem[8];
    buf_wrap(&b, mem, sizeof(mem));
    assert_int_equal(buf_put(&b, "12345678", 8), 0);
    assert_int_equal(buf_put_u8(&b, 1), GW_ETOO_BIG);
    assert_int_equal(buf_len(&b), 8);
    buf_consume(&b, 3);
    assert_int_equal(buf_room(&b), 3);
    /* Reserving 3 must compact the 5 unread bytes to the front. */
    uint8_t *w;
    assert_int_equal(buf_reserve(&b, 3, &w), 0);
    memcpy(w, "abc", 3);
    buf_commit(&b, 3);
    assert_memory_equal(buf_rptr(&b), "45678abc", 8);
    assert_int_equal(buf_reserve(&b, 1, &w), GW_ETOO_BIG);
    buf_consume(&b, 8);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_reserve_all(&b, &w), 8);
    buf_free(&b);
}

static void test_strings_and_views(void **state)
{
    struct buf b;
    assert_int_equal(buf_init(&b, 32), 0);
    assert_int_equal(buf_put_string(&b, "hello", 5), 0);
    /* A truncated string needs more and leaves the cursor alone. */
    struct buf_view v = buf_view_of(buf_rptr(&b), 6);
    const uint8_t *p;
    size_t n;
    assert_int_equal(buf_get_string(&v, 100, &p, &n), GW_ENEED_MORE);
    assert_int_equal(v.pos, 0);
    /* A length over the cap is refused before waiting for the bytes. */
    assert_int_equal(buf_get_string(&v, 4, &p, &n), GW_ETOO_BIG);
    v = buf_peek(&b);
    assert_int_equal(buf_get_string(&v, 100, &p, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);

    struct buf_view parent = buf_view_of("abcdef", 6), child;
    assert_int_equal(buf_get_view(&parent, 4, &child), 0);
    assert_int_equal(buf_view_left(&child), 4);
    assert_int_equal(buf_view_left(&parent), 2);
    assert_int_equal(buf_get_view(&parent, 3, &child), GW_ENEED_MORE);
    buf_free(&b);
}

/* Storage comes with the first write and goes with a trim of an empty
 * buf; an empty buf reads as empty either way. */
static void test_storage_on_demand(void **state)
{
    (void)state;
    struct buf b;
    assert_int_equal(buf_init(&b, 1 << 20), 0);
    assert_null(b.data);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_room(&b), 1 << 20);
    assert_non_null(buf_rptr(&b));
    assert_int_equal(buf_put(&b, "abc", 3), 0);
    assert_non_null(b.data);
    buf_trim(&b); /* not empty: kept */
    assert_non_null(b.data);
    assert_memory_equal(buf_rptr(&b), "abc", 3);
    buf_consume(&b, 3);
    buf_trim(&b);
    assert_null(b.data);
    uint8_t *w;
    assert_true(buf_reserve_all(&b, &w) == 1 << 20);
    assert_non_null(w);
    buf_free(&b);
}

static void test_strerror(void **state)
{
    assert_string_equal(gw_strerror(GW_ENOMEM), "out of memory");
    assert_string_equal(gw_strerror(GW_ELIMIT), "limit reached");
    assert_string_equal(gw_strerror(0), "success");
    assert_non_null(gw_strerror(-2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_roundtrip),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_strings_and_views),
        cmocka_unit_test(test_storage_on_demand),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
