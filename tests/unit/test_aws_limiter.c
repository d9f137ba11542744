/*
 * test_aws_limiter.c - the adaptive retry mode's limiter on a simulated
 * clock: dormant until a throttle, the bucket's waits, CUBIC's decrease
 * and recovery, one decrease per congestion event, and a burst of 40
 * callers (FIFO, full-jitter backoff, 3 attempts) against a service that
 * accepts 3 calls in any sliding second: all succeed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "aws_limiter.h"

static void dormant_until_throttled(void **state)
{
    struct aws_limiter l;

    (void)state;
    aws_limiter_init(&l, 100.0);
    for (int i = 0; i < 50; i++)
        assert_true(aws_limiter_acquire(&l, 100.0) == 0);
    assert_true(aws_limiter_rate(&l) == 0);
    aws_limiter_answer(&l, 100.01, 100.0, 0, 0);
    assert_false(l.enabled);
}

/* The limiter's decreases so far, its W_max and its fill rate. */
static void expect(const struct aws_limiter *l, unsigned decreases,
                   double w_max, double rate, double tol)
{
    assert_int_equal(l->decreases, decreases);
    assert_float_equal(l->w_max, w_max, 1e-9);
    assert_float_equal(aws_limiter_rate(l), rate, tol);
}

static void throttle_sets_beta_times_accepted(void **state)
{
    struct aws_limiter l;
    double w;

    (void)state;
    aws_limiter_init(&l, 0.0);
    /* 3 accepted, then throttles of the same burst. */
    for (int i = 0; i < 3; i++)
        aws_limiter_answer(&l, 10.0, 9.99, 0, 0);
    aws_limiter_answer(&l, 10.01, 9.99, 1, 0);
    assert_true(l.enabled);
    assert_float_equal(aws_limiter_rate(&l), 2.1, 1e-9);
    assert_float_equal(l.w_max, 3.0, 1e-9);
    /* 36 more throttles of attempts sent before the decrease: one
     * event, one decrease. */
    for (int i = 0; i < 36; i++)
        aws_limiter_answer(&l, 10.02, 9.99, 1, 0);
    assert_int_equal(l.decreases, 1);
    assert_int_equal(l.throttles, 37);
    assert_float_equal(aws_limiter_rate(&l), 2.1, 1e-9);
    /* A throttle of an attempt sent after the decrease is a new event:
     * 0.7 of what was accepted in the last second (2 more). */
    aws_limiter_answer(&l, 10.3, 10.2, 0, 0);
    aws_limiter_answer(&l, 10.4, 10.3, 0, 0);
    aws_limiter_answer(&l, 11.2, 11.1, 1, 0);
    expect(&l, 2, 2.0, 1.4, 1e-9);
    /* After a decrease the next token is a second away. */
    w = aws_limiter_acquire(&l, 11.2);
    assert_float_equal(w, 1.0, 1e-9);
    assert_true(aws_limiter_acquire(&l, 11.2 + w / 2) > 0);
    assert_true(aws_limiter_acquire(&l, 11.2 + w + 1e-6) == 0);
}

static void echo_may_raise_w_max(void **state)
{
    struct aws_limiter l;

    (void)state;
    aws_limiter_init(&l, 0.0);
    /* The throttle arrives before the successes of the same burst. */
    aws_limiter_answer(&l, 5.0, 4.99, 1, 0);
    assert_float_equal(aws_limiter_rate(&l), 0.5, 1e-9);
    aws_limiter_answer(&l, 5.001, 4.99, 0, 0);
    aws_limiter_answer(&l, 5.002, 4.99, 0, 0);
    aws_limiter_answer(&l, 5.003, 4.99, 1, 0);
    expect(&l, 1, 2.0, 1.4, 0.01);
}

static void cubic_recovers(void **state)
{
    struct aws_limiter l;
    double t = 0, r_k, r_late;

    (void)state;
    aws_limiter_init(&l, 0.0);
    for (int i = 0; i < 10; i++)
        aws_limiter_answer(&l, 0.5 + i * 0.05, 0.4, 0, 0);
    aws_limiter_answer(&l, 0.99, 0.9, 1, 0);
    assert_float_equal(l.w_max, 10.0, 1e-9);
    assert_float_equal(aws_limiter_rate(&l), 7.0, 1e-9);
    /* Successes at the rate in use: back at W_max after K, and beyond
     * it later, but never above twice the answer rate. */
    for (t = 1.0; t < 0.99 + l.k; t += 1.0 / 8)
        aws_limiter_answer(&l, t, t - 0.01, 0, 0);
    r_k = aws_limiter_rate(&l);
    assert_true(r_k > 8.0 && r_k <= 10.0 + 1e-9);
    for (; t < 6.0; t += 1.0 / 10)
        aws_limiter_answer(&l, t, t - 0.01, 0, 0);
    r_late = aws_limiter_rate(&l);
    assert_true(r_late > 10.0);
    assert_true(r_late <= 2.0 * 11 + 1e-9);
}

/* ---- a burst against a sliding-window service ---------------------------
 */

#define N_CALLS 40
#define LIMIT   3
#define LATENCY 0.005
#define MAX_ATT 3

struct sim_call {
    double ready;  /* may send from */
    double answer; /* in flight until, or 0 */
    double sent;
    int throttled; /* the answer in flight */
    int attempts;
    int done, failed;
};

static uint32_t lcg = 12345;
static double rnd(void)
{
    lcg = lcg * 1103515245u + 12345u;
    return (double)(lcg >> 8) / 16777216.0;
}

/* Returns the calls that failed; *throttles, *max_att, *end_t out. */
static int simulate(int use_limiter, uint32_t seed, int *throttles,
                    int *max_att, double *end_t)
{
    struct sim_call c[N_CALLS];
    struct aws_limiter l;
    double window[LIMIT * 4];
    int nw = 0, failed = 0, left = N_CALLS;
    double t;

    lcg = seed;
    memset(c, 0, sizeof(c));
    aws_limiter_init(&l, 0.0);
    *throttles = 0;
    *max_att = 0;
    for (t = 0.0; t < 120.0 && left; t += 0.001) {
        /* Answers due now. */
        for (int i = 0; i < N_CALLS; i++) {
            if (!c[i].answer || c[i].answer > t)
                continue;
            c[i].answer = 0;
            int backlog = c[i].throttled && c[i].attempts < MAX_ATT;
            for (int j = 0; j < N_CALLS; j++)
                backlog += j != i && !c[j].done && !c[j].failed && !c[j].answer;
            if (use_limiter)
                aws_limiter_answer(&l, t, c[i].sent, c[i].throttled, backlog);
            if (!c[i].throttled) {
                c[i].done = 1;
                left--;
            } else if (c[i].attempts >= MAX_ATT) {
                c[i].failed = 1;
                failed++;
                left--;
            } else {
                /* Standard mode: full jitter, 1 s base for throttles. */
                c[i].ready = t + rnd() * 1.0 * (1 << (c[i].attempts - 1));
            }
        }
        /* FIFO by creation: the first ready call takes a token. */
        for (int i = 0; i < N_CALLS; i++) {
            if (c[i].done || c[i].failed || c[i].answer || c[i].ready > t)
                continue;
            if (use_limiter && aws_limiter_acquire(&l, t) > 0)
                break;
            c[i].attempts++;
            if (c[i].attempts > *max_att)
                *max_att = c[i].attempts;
            c[i].sent = t;
            c[i].answer = t + LATENCY;
            /* The service: LIMIT accepted in any sliding second. */
            int k = 0;
            for (int j = 0; j < nw; j++)
                if (t - window[j] < 1.0)
                    window[k++] = window[j];
            nw = k;
            c[i].throttled = nw >= LIMIT;
            if (c[i].throttled)
                (*throttles)++;
            else
                window[nw++] = t;
        }
    }
    *end_t = t;
    return failed + left;
}

static void burst_all_succeed(void **state)
{
    int throttles, max_att, worst_att = 0;
    double end_t, worst_t = 0;

    (void)state;
    for (uint32_t seed = 1; seed <= 200; seed++) {
        int failed = simulate(1, seed, &throttles, &max_att, &end_t);
        if (failed)
            fprintf(stderr, "seed %u: %d failed, %d throttles, %.1f s\n", seed,
                    failed, throttles, end_t);
        assert_int_equal(failed, 0);
        assert_true(max_att <= MAX_ATT);
        worst_att = max_att > worst_att ? max_att : worst_att;
        worst_t = end_t > worst_t ? end_t : worst_t;
    }
    /* 40 calls at about 3/s: well inside a 30 s connect timeout, and no
     * call near its last attempt (the probe HOLD_S after an event may
     * cost a queued call its second throttle; a token right after a
     * throttle would cost many). */
    assert_true(worst_t < 20.0);
    assert_true(worst_att <= MAX_ATT);
    fprintf(stderr, "burst: 200 seeds, worst %.1f s, max attempts %d\n",
            worst_t, worst_att);
}

/* A throttle read at a sparse moment (or caused by others in the account)
 * leaves W_max far below the line's demand: the backlog cap must not hold
 * the line there for good. Demand 2.5/s, service limit 5/s, W_max 1. */
static void low_w_max_recovers_under_backlog(void **state)
{
    struct aws_limiter l;
    double t = 0, next = 0, sent_t = 0;
    int queued = 0, sent = 0;

    (void)state;
    aws_limiter_init(&l, 0.0);
    aws_limiter_answer(&l, 0.5, 0.49, 0, 0);
    aws_limiter_answer(&l, 1.0, 0.99, 1, 5); /* W_max = 1 accepted/s */
    assert_true(aws_limiter_rate(&l) < 1.0);
    for (t = 1.0; t < 20.0; t += 0.01) {
        if (t >= next) { /* demand: 2.5 calls/s */
            queued++;
            next += 0.4;
        }
        if (queued && aws_limiter_acquire(&l, t) == 0) {
            queued--;
            sent++;
            aws_limiter_answer(&l, t + 0.005, t, 0, queued);
            if (t > 15.0)
                sent_t += 1;
        }
    }
    /* Caught up with the demand: the last 5 s sent about 2.5/s and the
     * backlog is gone. */
    assert_true(queued <= 1);
    assert_true(sent_t >= 11);
}

static void burst_fails_without_limiter(void **state)
{
    int throttles, max_att;
    double end_t;

    (void)state;
    assert_true(simulate(0, 7, &throttles, &max_att, &end_t) > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dormant_until_throttled),
        cmocka_unit_test(throttle_sets_beta_times_accepted),
        cmocka_unit_test(echo_may_raise_w_max),
        cmocka_unit_test(cubic_recovers),
        cmocka_unit_test(burst_all_succeed),
        cmocka_unit_test(low_w_max_recovers_under_backlog),
        cmocka_unit_test(burst_fails_without_limiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
