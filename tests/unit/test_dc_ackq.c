/*
 * Unit tests for dc_ackq.c: the acks handed to a socket that closed go
 * again, in order, before the ones that never reached it; nothing beyond
 * the bounds is kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dc_ackq.h"

static void id_of(int64_t seq, uint8_t id[16])
{
    memset(id, 0, 16);
    memcpy(id, &seq, sizeof(seq));
}

static uint64_t now_ms = 100000;

static void hand(struct dc_ackq *q, int64_t seq)
{
    uint8_t id[16];
    id_of(seq, id);
    dc_ackq_handed(q, seq, id, now_ms);
}

static int push(struct dc_ackq *q, int64_t seq)
{
    uint8_t id[16];
    id_of(seq, id);
    return dc_ackq_push(q, seq, id);
}

/* Pops everything; checks each id matches its seq; returns the count and
 * the seqs in out. */
static unsigned drain(struct dc_ackq *q, int64_t *out, unsigned cap)
{
    unsigned n = 0;
    const struct dc_ack *a;
    while ((a = dc_ackq_peek(q)) != NULL) {
        uint8_t id[16];
        id_of(a->seq, id);
        assert_memory_equal(a->id, id, 16);
        assert_true(n < cap);
        out[n++] = a->seq;
        dc_ackq_pop(q);
    }
    return n;
}

static void handed_acks_come_back_first_in_order(void **state)
{
    (void)state;
    struct dc_ackq q;
    dc_ackq_init(&q);
    for (int64_t s = 1; s <= 10; s++)
        hand(&q, s);
    assert_int_equal(push(&q, 11), 0);
    assert_int_equal(push(&q, 12), 0);
    dc_ackq_requeue(&q, now_ms);
    int64_t got[64];
    unsigned n = drain(&q, got, 64);
    assert_int_equal(n, 12);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(got[i], (int64_t)i + 1);
    /* Requeued once: a second close without new acks brings none back. */
    dc_ackq_requeue(&q, now_ms);
    assert_null(dc_ackq_peek(&q));
    dc_ackq_free(&q);
}

static void only_those_handed_lately_are_kept(void **state)
{
    (void)state;
    struct dc_ackq q;
    dc_ackq_init(&q);
    for (int64_t s = 0; s < 300; s++)
        hand(&q, s); /* long gone by the close */
    now_ms += 4000;  /* beyond the 3 s that can still be in flight */
    for (int64_t s = 300; s < 1300; s++)
        hand(&q, s);
    dc_ackq_requeue(&q, now_ms);
    int64_t got[DC_ACKQ_MAX];
    unsigned n = drain(&q, got, DC_ACKQ_MAX);
    assert_int_equal(n, 1000);
    assert_int_equal(got[0], 300);
    /* At most DC_ACKQ_RECENT_MAX, the newest. */
    for (int64_t s = 0; s < DC_ACKQ_RECENT_MAX + 40; s++)
        hand(&q, s);
    dc_ackq_requeue(&q, now_ms);
    n = drain(&q, got, DC_ACKQ_MAX);
    assert_int_equal(n, DC_ACKQ_RECENT_MAX);
    assert_int_equal(got[0], 40);
    assert_int_equal(got[n - 1], DC_ACKQ_RECENT_MAX + 39);
    dc_ackq_free(&q);
}

static void the_oldest_give_way_when_all_do_not_fit(void **state)
{
    (void)state;
    struct dc_ackq q;
    dc_ackq_init(&q);
    for (int64_t s = 0; s < 1000; s++)
        hand(&q, s);
    int64_t s = 1000;
    while (push(&q, s) == 0)
        s++;
    assert_int_equal(s, 1000 + DC_ACKQ_MAX); /* full */
    dc_ackq_requeue(&q, now_ms);
    int64_t got[DC_ACKQ_MAX];
    unsigned n = drain(&q, got, DC_ACKQ_MAX);
    assert_int_equal(n, DC_ACKQ_MAX);
    assert_int_equal(got[0], 1000);
    assert_int_equal(got[n - 1], s - 1);
    dc_ackq_free(&q);
}

static void the_reader_stops_before_it_is_full(void **state)
{
    (void)state;
    struct dc_ackq q;
    dc_ackq_init(&q);
    int64_t s = 0;
    while (!dc_ackq_backlogged(&q))
        assert_int_equal(push(&q, s++), 0);
    assert_int_equal(s, DC_ACKQ_HOLD);
    /* What a socket already read still fits: nothing is dropped. */
    while (s < DC_ACKQ_MAX)
        assert_int_equal(push(&q, s++), 0);
    assert_int_equal(q.dropped, 0);
    assert_int_equal(push(&q, s), -1);
    assert_int_equal(q.dropped, 1);
    dc_ackq_pop(&q);
    assert_true(dc_ackq_backlogged(&q));
    while (q.len >= DC_ACKQ_HOLD)
        dc_ackq_pop(&q);
    assert_false(dc_ackq_backlogged(&q));
    dc_ackq_free(&q);
}

static void the_wait_ring_wraps_in_order(void **state)
{
    (void)state;
    struct dc_ackq q;
    dc_ackq_init(&q);
    int64_t next = 0, want = 0;
    for (int round = 0; round < 3 * DC_ACKQ_MAX; round++) {
        assert_int_equal(push(&q, next++), 0);
        assert_int_equal(push(&q, next++), 0);
        assert_int_equal(dc_ackq_peek(&q)->seq, want++);
        dc_ackq_pop(&q);
        if (q.len > 100) {
            assert_int_equal(dc_ackq_peek(&q)->seq, want++);
            dc_ackq_pop(&q);
        }
    }
    assert_true(want > 2 * DC_ACKQ_MAX);
    dc_ackq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handed_acks_come_back_first_in_order),
        cmocka_unit_test(only_those_handed_lately_are_kept),
        cmocka_unit_test(the_oldest_give_way_when_all_do_not_fit),
        cmocka_unit_test(the_reader_stops_before_it_is_full),
        cmocka_unit_test(the_wait_ring_wraps_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
