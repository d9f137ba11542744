/*
 * Unit tests for dc_pace.c: a simulated clock drives a sender that always
 * has data and wakes late (timers on a loaded machine), sometimes very
 * late; every 1-second window of its send times must hold at most `rate`
 * messages, and the average must still reach the rate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "dc_pace.h"

#define SEC 1000000000ull

static uint64_t rnd_state = 12345;

static uint64_t rnd(uint64_t n)
{
    rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
    return (rnd_state >> 33) % n;
}

/* Runs the sender for secs seconds; returns the send times (n_out). */
static uint64_t *drive(int rate, int secs, size_t *n_out)
{
    struct dc_pace p;
    uint64_t now = 5 * SEC;
    assert_int_equal(dc_pace_init(&p, rate, now), 0);
    size_t cap = (size_t)rate * (size_t)secs * 2 + 16, n = 0;
    uint64_t *t = malloc(cap * sizeof(*t));
    uint64_t end = now + (uint64_t)secs * SEC;
    while (now < end) {
        uint64_t wait;
        while ((wait = dc_pace_wait(&p, now)) == 0) {
            assert_true(n < cap);
            t[n++] = now;
            dc_pace_sent(&p, now);
        }
        /* The timer fires late: up to 2 ms, now and then 20 ms, and
         * once in a while 300 ms (a loaded machine). */
        uint64_t late = rnd(2000) * 1000ull;
        if (rnd(20) == 0)
            late = 20 * 1000000ull;
        if (rnd(500) == 0)
            late = 300 * 1000000ull;
        now += wait + late;
    }
    dc_pace_free(&p);
    *n_out = n;
    return t;
}

static size_t max_in_any_span(const uint64_t *t, size_t n, uint64_t span)
{
    size_t best = 0, j = 0;
    for (size_t i = 0; i < n; i++) {
        while (j < n && t[j] < t[i] + span)
            j++;
        if (j - i > best)
            best = j - i;
    }
    return best;
}

static void test_no_second_holds_more_than_the_rate(void **st)
{
    (void)st;
    int rates[] = {990, 200, 1, 3000, DC_PACE_RING_MAX};
    for (size_t k = 0; k < sizeof(rates) / sizeof(rates[0]); k++) {
        size_t n;
        uint64_t *t = drive(rates[k], 20, &n);
        printf("rate %d: %zu sent, max %zu in 1 s\n", rates[k], n,
               max_in_any_span(t, n, SEC));
        assert_true(max_in_any_span(t, n, SEC) <= (size_t)rates[k]);
        /* and with 50 ms of jitter on the way, at the service too */
        assert_true(max_in_any_span(t, n, DC_PACE_SPAN_NS) <= (size_t)rates[k]);
        /* late timers cost little: 70 % of the rate on average */
        assert_true(n >= (size_t)rates[k] * 20 * 7 / 10);
        free(t);
    }
}

static void test_the_rate_is_even_within_the_second(void **st)
{
    (void)st;
    struct dc_pace p;
    uint64_t now = SEC;
    assert_int_equal(dc_pace_init(&p, 1000, now), 0);
    /* a long idle spell gives 20 messages at once, not a second's worth */
    now += 10 * SEC;
    int burst = 0;
    while (dc_pace_wait(&p, now) == 0) {
        dc_pace_sent(&p, now);
        burst++;
    }
    assert_int_equal(burst, 20);
    assert_true(dc_pace_wait(&p, now) <= 1000001);
    dc_pace_free(&p);
}

static void test_a_rate_above_the_ring_keeps_the_bucket(void **st)
{
    (void)st;
    struct dc_pace p;
    assert_int_equal(dc_pace_init(&p, DC_PACE_RING_MAX + 1, 0), 0);
    assert_null(p.sent);
    int n = 0;
    for (uint64_t now = 0; now < SEC; now += 1000000) {
        while (dc_pace_wait(&p, now) == 0) {
            dc_pace_sent(&p, now);
            n++;
        }
    }
    assert_true(n <= DC_PACE_RING_MAX + 1 + (DC_PACE_RING_MAX + 1) / 50 + 1);
    dc_pace_free(&p);
}

/* A sender with a queue waits for batches of 8: each wake-up sends 8, the
 * rate holds in every span, and the average still reaches the rate. */
static void test_batches_keep_the_bound_and_the_rate(void **st)
{
    (void)st;
    struct dc_pace p;
    uint64_t now = 5 * SEC;
    assert_int_equal(dc_pace_init(&p, 990, now), 0);
    size_t cap = 990 * 30, n = 0, wakes = 0;
    uint64_t *t = malloc(cap * sizeof(*t));
    uint64_t end = now + 20 * SEC;
    while (now < end) {
        int sent = 0;
        while (dc_pace_wait(&p, now) == 0 && sent < 8) {
            assert_true(n < cap);
            t[n++] = now;
            dc_pace_sent(&p, now);
            sent++;
        }
        /* after the first wake-up, every one finds its whole batch */
        if (wakes++ > 1)
            assert_int_equal(sent, 8);
        uint64_t wait = dc_pace_wait_n(&p, now, 8);
        assert_true(wait > 0);
        now += wait + rnd(500) * 1000ull; /* up to 0.5 ms late */
    }
    assert_true(max_in_any_span(t, n, DC_PACE_SPAN_NS) <= 990);
    /* The pacer's own high-water mark is the true one. */
    assert_int_equal(p.max_1s, (int)max_in_any_span(t, n, SEC));
    assert_true(n >= 990 * 20 * 97 / 100);
    assert_true(wakes <= n / 8 + 2);
    dc_pace_free(&p);
    free(t);
}

/* Once the ring is full, n messages wait for the n-th oldest to leave the
 * span, even with a full bucket. */
static void test_a_batch_waits_for_the_span(void **st)
{
    (void)st;
    struct dc_pace p;
    uint64_t now = SEC;
    assert_int_equal(dc_pace_init(&p, 100, now), 0);
    for (int i = 0; i < 100; i++) { /* 100 sends 1 ms apart */
        while (dc_pace_wait(&p, now) != 0)
            now += 1000000;
        dc_pace_sent(&p, now);
    }
    uint64_t first = p.sent[p.head];
    now = first + SEC; /* the bucket is full long before this */
    uint64_t w2 = dc_pace_wait_n(&p, now, 2);
    assert_true(w2 >= p.sent[(p.head + 1) % 100] + DC_PACE_SPAN_NS - now);
    assert_true(dc_pace_wait_n(&p, now, 1) <= w2);
    assert_true(dc_pace_wait_n(&p, now + DC_PACE_SPAN_NS, 2) == 0);
    dc_pace_free(&p);
}

/* An idle pacer frees its history once the newest send left the span and
 * takes it up again at the next send, still bounding the window. */
static void test_an_idle_pacer_holds_no_history(void **st)
{
    (void)st;
    struct dc_pace p;
    uint64_t now = SEC;
    assert_int_equal(dc_pace_init(&p, 990, now), 0);
    assert_false(dc_pace_holds(&p));
    for (int i = 0; i < 5; i++) {
        now += 2000000;
        assert_int_equal(dc_pace_wait(&p, now), 0);
        dc_pace_sent(&p, now);
    }
    assert_true(dc_pace_holds(&p));
    dc_pace_trim(&p, now + DC_PACE_SPAN_NS - 1);
    assert_true(dc_pace_holds(&p));
    now += DC_PACE_SPAN_NS;
    dc_pace_trim(&p, now);
    assert_false(dc_pace_holds(&p));
    size_t n = 0;
    uint64_t *t = malloc(990 * 4 * sizeof(*t));
    for (uint64_t end = now + 3 * SEC; now < end; now += 100000) {
        while (dc_pace_wait(&p, now) == 0) {
            t[n++] = now;
            dc_pace_sent(&p, now);
        }
    }
    assert_true(dc_pace_holds(&p));
    assert_true(max_in_any_span(t, n, DC_PACE_SPAN_NS) <= 990);
    free(t);
    dc_pace_free(&p);
}

/* The high-water mark counts one second, not the ring's whole history: a
 * sender at 400/s under a 990/s pace peaks at 400. */
static void test_the_peak_is_a_second_s_worth(void **st)
{
    (void)st;
    struct dc_pace p;
    uint64_t now = SEC;
    assert_int_equal(dc_pace_init(&p, 990, now), 0);
    for (int i = 0; i < 2000; i++) {
        now += 2500000;
        assert_int_equal(dc_pace_wait(&p, now), 0);
        dc_pace_sent(&p, now);
    }
    assert_true(p.max_1s >= 399 && p.max_1s <= 401);
    dc_pace_free(&p);
}

static void test_unpaced_never_waits(void **st)
{
    (void)st;
    struct dc_pace p;
    assert_int_equal(dc_pace_init(&p, 0, 0), 0);
    for (int i = 0; i < 100000; i++) {
        assert_int_equal(dc_pace_wait(&p, 7), 0);
        dc_pace_sent(&p, 7);
    }
    dc_pace_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_second_holds_more_than_the_rate),
        cmocka_unit_test(test_the_rate_is_even_within_the_second),
        cmocka_unit_test(test_a_rate_above_the_ring_keeps_the_bucket),
        cmocka_unit_test(test_batches_keep_the_bound_and_the_rate),
        cmocka_unit_test(test_a_batch_waits_for_the_span),
        cmocka_unit_test(test_an_idle_pacer_holds_no_history),
        cmocka_unit_test(test_the_peak_is_a_second_s_worth),
        cmocka_unit_test(test_unpaced_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
