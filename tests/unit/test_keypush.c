/*
 * Unit tests for keypush.c on a real uv loop with a fake SendSSHPublicKey:
 * sharing, reuse window, expiry, rotation, error fan-out, cancel, mi-
 * targets, the in-flight cap and its queue, teardown with calls pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "defer.h"
#include "key.h"
#include "keypush.h"
#include "stats.h"

/* ---- the fake API ---- */

struct fake_call {
    uv_timer_t timer;
    struct fake *fake;
    aws_ec2ic_done_cb *done;
    void *arg;
    char instance[64];
    char user[64];
    char profile[64];
    char region[64];
    char key[KEY_LINE_MAX];
};

struct fake {
    uv_loop_t *loop;
    uint64_t delay_ms;
    int status; /* what calls report */
    int refuse; /* send returns NULL */
    int calls;
    int cancels;
    int now_inflight;
    int max_inflight;
    char last_key[KEY_LINE_MAX];
    char order[64][64]; /* instance of each call, in order */
};

static void fake_closed(uv_handle_t *h)
{
    free(CONTAINER_OF(h, struct fake_call, timer));
}

static void fake_fire(uv_timer_t *t)
{
    struct fake_call *c = CONTAINER_OF(t, struct fake_call, timer);
    struct fake *f = c->fake;
    struct aws_error err;
    f->now_inflight--;
    memset(&err, 0, sizeof(err));
    if (f->status != 0) {
        snprintf(err.code, sizeof(err.code), "ThrottlingException");
        snprintf(err.message, sizeof(err.message),
                 "Server is busy! Please retry after a moment.");
        err.http_status = 400;
        err.attempts = 3;
    }
    uv_close((uv_handle_t *)&c->timer, fake_closed);
    c->done(c->arg, f->status, f->status != 0 ? &err : NULL);
}

static struct aws_call *fake_send(void *ctx, const char *profile,
                                  const char *region, const char *instance,
                                  const char *user, const char *key,
                                  aws_ec2ic_done_cb *done, void *arg)
{
    struct fake *f = ctx;
    if (f->refuse)
        return NULL;
    struct fake_call *c = calloc(1, sizeof(*c));
    c->fake = f;
    c->done = done;
    c->arg = arg;
    snprintf(c->instance, sizeof(c->instance), "%s", instance);
    snprintf(c->user, sizeof(c->user), "%s", user);
    snprintf(c->profile, sizeof(c->profile), "%s", profile ? profile : "");
    snprintf(c->region, sizeof(c->region), "%s", region ? region : "");
    snprintf(c->key, sizeof(c->key), "%s", key);
    snprintf(f->last_key, sizeof(f->last_key), "%s", key);
    if (f->calls < 64)
        snprintf(f->order[f->calls], sizeof(f->order[0]), "%s", instance);
    f->calls++;
    f->now_inflight++;
    if (f->now_inflight > f->max_inflight)
        f->max_inflight = f->now_inflight;
    uv_timer_init(f->loop, &c->timer);
    uv_timer_start(&c->timer, fake_fire, f->delay_ms, 0);
    return (struct aws_call *)c;
}

static void fake_cancel(void *ctx, struct aws_call *call)
{
    struct fake *f = ctx;
    struct fake_call *c = (struct fake_call *)call;
    f->cancels++;
    f->now_inflight--;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, fake_closed);
}

/* ---- fixture ---- */

struct waiter {
    int called;
    int status;
    char code[128];
    int order;
};

struct fx {
    uv_loop_t loop;
    struct fake fake;
    struct key_ring kr;
    struct keypush *kp;
    struct stats stats;
    int done_count;
    struct waiter w[64];
};

static struct fx *g_fx;

static void on_done(void *arg, int status, const struct aws_error *err)
{
    struct waiter *w = arg;
    w->called++;
    w->status = status;
    w->order = ++g_fx->done_count;
    snprintf(w->code, sizeof(w->code), "%s", err ? err->code : "");
    /* Wake run_until's loop now rather than at its next timer. */
    uv_stop(&g_fx->loop);
}

static int fx_setup_opts(void **state, uint64_t reuse_ms, int max_inflight)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct keypush_opts opts = {reuse_ms, max_inflight, &fx->stats};
    CHECK(uv_loop_init(&fx->loop) == 0);
    fx->fake.loop = &fx->loop;
    fx->fake.delay_ms = 20;
    CHECK(key_ring_init(&fx->kr, "ssmgate", 120000) == 0);
    struct keypush_api api = {fake_send, fake_cancel, &fx->fake};
    CHECK(keypush_new(&fx->loop, &fx->kr, &api, &opts, &fx->kp) == 0);
    g_fx = fx;
    *state = fx;
    return 0;
}

static int fx_setup(void **state)
{
    return fx_setup_opts(state, 0, 0);
}

static int fx_setup_short(void **state)
{
    return fx_setup_opts(state, 300, 0);
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    keypush_free(fx->kp);
    defer_shutdown(); /* its handle is on this test's loop */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&fx->loop) == 0);
    key_ring_free(&fx->kr);
    free(fx);
    return 0;
}

static void guard_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until n callbacks ran in total (or fails after 5 s). */
static void run_until(struct fx *fx, int n)
{
    uv_timer_t guard;
    int expired = 0;
    uv_timer_init(&fx->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, guard_cb, 5000, 0);
    while (fx->done_count < n && !expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(expired);
    assert_int_equal(fx->done_count, n);
}

/* Lets the loop run for ms (timers, completions). */
static void run_for(struct fx *fx, uint64_t ms)
{
    uv_timer_t t;
    int expired = 0;
    uv_timer_init(&fx->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, guard_cb, ms, 0);
    while (!expired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static int start(struct fx *fx, const char *inst, const char *user, int i,
                 struct keypush_wait **h)
{
    return keypush_start(fx->kp, "prof", "eu-west-1", inst, user, on_done,
                         &fx->w[i], h);
}

/* ---- tests ---- */

static void test_share_one_call(void **state)
{
    struct fx *fx = *state;
    for (int i = 0; i < 10; i++)
        assert_int_equal(start(fx, "i-0abc", "ec2-user", i, NULL), 0);
    /* Nothing is reported from inside keypush_start. */
    assert_int_equal(fx->done_count, 0);
    assert_int_equal(keypush_inflight(fx->kp), 1);
    run_until(fx, 10);
    assert_int_equal(fx->fake.calls, 1);
    assert_int_equal(keypush_calls(fx->kp), 1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(fx->w[i].called, 1);
        assert_int_equal(fx->w[i].status, 0);
    }
    /* The line pushed is the ring's current key. */
    assert_string_equal(fx->fake.last_key, fx->kr.line);
    assert_int_equal(keypush_inflight(fx->kp), 0);
    /* One push made; sharing it is not a reuse of a finished one. */
    assert_int_equal(fx->stats.counter[STATS_KEY_PUSH_OK], 1);
    assert_int_equal(fx->stats.counter[STATS_KEY_PUSH_REUSED], 0);
}

static void test_reuse_then_separate_tuples(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 0, NULL), 0);
    run_until(fx, 1);
    /* Fresh: no new call, but still asynchronous. */
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 1, NULL), 0);
    assert_int_equal(fx->w[1].called, 0);
    run_until(fx, 2);
    assert_int_equal(fx->w[1].status, 0);
    assert_int_equal(fx->fake.calls, 1);
    assert_int_equal(fx->stats.counter[STATS_KEY_PUSH_REUSED], 1);

    /* Another user, instance, profile or region: its own push. */
    assert_int_equal(start(fx, "i-0abc", "ubuntu", 2, NULL), 0);
    assert_int_equal(start(fx, "i-0def", "ec2-user", 3, NULL), 0);
    assert_int_equal(keypush_start(fx->kp, "other", "eu-west-1", "i-0abc",
                                   "ec2-user", on_done, &fx->w[4], NULL),
                     0);
    assert_int_equal(keypush_start(fx->kp, "prof", NULL, "i-0abc", "ec2-user",
                                   on_done, &fx->w[5], NULL),
                     0);
    run_until(fx, 6);
    assert_int_equal(fx->fake.calls, 5);
}

static void test_expiry_new_push(void **state)
{
    struct fx *fx = *state; /* reuse window 300 ms */
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 0, NULL), 0);
    run_until(fx, 1);
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 1, NULL), 0);
    run_until(fx, 2);
    assert_int_equal(fx->fake.calls, 1);
    run_for(fx, 320);
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 2, NULL), 0);
    run_until(fx, 3);
    assert_int_equal(fx->fake.calls, 2);
    assert_int_equal(fx->w[2].status, 0);
}

static void test_rotation_new_push(void **state)
{
    struct fx *fx = *state;
    char old[KEY_LINE_MAX];
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 0, NULL), 0);
    run_until(fx, 1);
    snprintf(old, sizeof(old), "%s", fx->fake.last_key);
    assert_int_equal(key_ring_rotate(&fx->kr, uv_now(&fx->loop)), 0);
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 1, NULL), 0);
    run_until(fx, 2);
    assert_int_equal(fx->fake.calls, 2);
    assert_string_equal(fx->fake.last_key, fx->kr.line);
    assert_string_not_equal(fx->fake.last_key, old);
}

static void test_rotation_during_push(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 0, NULL), 0);
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 1, NULL), 0);
    /* Rotate while the call runs: the waiters get the new key pushed. */
    assert_int_equal(key_ring_rotate(&fx->kr, uv_now(&fx->loop)), 0);
    run_until(fx, 2);
    assert_int_equal(fx->fake.calls, 2);
    assert_string_equal(fx->fake.last_key, fx->kr.line);
    assert_int_equal(fx->w[0].status, 0);
    assert_int_equal(fx->w[1].status, 0);
    /* And that push is what is reused now. */
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 2, NULL), 0);
    run_until(fx, 3);
    assert_int_equal(fx->fake.calls, 2);
}

static void test_error_fan_out(void **state)
{
    struct fx *fx = *state;
    fx->fake.status = GW_EAWS;
    for (int i = 0; i < 5; i++)
        assert_int_equal(start(fx, "i-0abc", "ec2-user", i, NULL), 0);
    run_until(fx, 5);
    assert_int_equal(fx->fake.calls, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fx->w[i].status, GW_EAWS);
        assert_string_equal(fx->w[i].code, "ThrottlingException");
    }
    assert_int_equal(fx->stats.counter[STATS_KEY_PUSH_FAILED], 1);
    assert_int_equal(fx->stats.counter[STATS_KEY_PUSH_OK], 0);
    /* A failure is not cached: the next connect pushes again. */
    fx->fake.status = 0;
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 5, NULL), 0);
    run_until(fx, 6);
    assert_int_equal(fx->fake.calls, 2);
    assert_int_equal(fx->w[5].status, 0);
}

static void test_cancel(void **state)
{
    struct fx *fx = *state;
    struct keypush_wait *h[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(start(fx, "i-0abc", "ec2-user", i, &h[i]), 0);
    keypush_cancel(h[1]);
    run_until(fx, 2);
    run_for(fx, 30);
    assert_int_equal(fx->w[0].called, 1);
    assert_int_equal(fx->w[1].called, 0);
    assert_int_equal(fx->w[2].called, 1);

    /* Cancelling a ready (reused) result. */
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 3, &h[3]), 0);
    keypush_cancel(h[3]);
    run_for(fx, 30);
    assert_int_equal(fx->w[3].called, 0);

    /* Every waiter of an in-flight push cancels: the push still lands and
     * is reused. */
    assert_int_equal(start(fx, "i-0new", "ec2-user", 4, &h[0]), 0);
    keypush_cancel(h[0]);
    run_for(fx, 50);
    assert_int_equal(fx->fake.calls, 2);
    assert_int_equal(start(fx, "i-0new", "ec2-user", 5, NULL), 0);
    run_until(fx, 3);
    assert_int_equal(fx->fake.calls, 2);
    assert_int_equal(fx->w[4].called, 0);
    keypush_cancel(NULL);
}

static void test_managed_node(void **state)
{
    struct fx *fx = *state;
    struct keypush_wait *h;
    assert_int_equal(start(fx, "mi-0123456789abcdef0", "ec2-user", 0, NULL), 0);
    assert_int_equal(fx->w[0].called, 0);
    assert_int_equal(start(fx, "mi-0123456789abcdef0", "ec2-user", 1, &h), 0);
    keypush_cancel(h);
    run_until(fx, 1);
    run_for(fx, 10);
    assert_int_equal(fx->w[0].status, 0);
    assert_int_equal(fx->w[1].called, 0);
    assert_int_equal(fx->fake.calls, 0);
}

static void test_cap_and_queue(void **state)
{
    struct fx *fx = *state;
    char inst[20][32];
    struct keypush_wait *h[20];
    for (int i = 0; i < 20; i++) {
        snprintf(inst[i], sizeof(inst[i]), "i-%04d", i);
        assert_int_equal(start(fx, inst[i], "ec2-user", i, &h[i]), 0);
    }
    /* A second waiter for a queued push, and a queued push everyone
     * leaves (no call for it). */
    assert_int_equal(start(fx, inst[15], "ec2-user", 20, NULL), 0);
    keypush_cancel(h[19]);
    assert_int_equal(keypush_inflight(fx->kp), KEYPUSH_MAX_INFLIGHT);
    run_until(fx, 20);
    assert_int_equal(fx->fake.max_inflight, KEYPUSH_MAX_INFLIGHT);
    assert_int_equal(fx->fake.calls, 19);
    /* In arrival order. */
    for (int i = 0; i < 19; i++)
        assert_string_equal(fx->fake.order[i], inst[i]);
    for (int i = 0; i < 19; i++)
        assert_int_equal(fx->w[i].status, 0);
    assert_int_equal(fx->w[19].called, 0);
    assert_int_equal(fx->w[20].called, 1);
}

static void test_send_refused(void **state)
{
    struct fx *fx = *state;
    fx->fake.refuse = 1;
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 0, NULL), 0);
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 1, NULL), 0);
    assert_int_equal(fx->w[0].called, 0);
    run_until(fx, 2);
    assert_int_equal(fx->w[0].status, GW_EIO);
    assert_int_equal(fx->w[1].status, GW_EIO);
    assert_int_equal(keypush_inflight(fx->kp), 0);
    /* Each connect tried its own call (the first had already failed). */
    assert_int_equal(fx->stats.counter[STATS_KEY_PUSH_FAILED], 2);
    fx->fake.refuse = 0;
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 2, NULL), 0);
    run_until(fx, 3);
    assert_int_equal(fx->w[2].status, 0);
}

static void test_bad_args(void **state)
{
    struct fx *fx = *state;
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(start(fx, "", "ec2-user", 0, NULL), GW_EINVAL);
    assert_int_equal(start(fx, "i-0abc", "", 0, NULL), GW_EINVAL);
    assert_int_equal(start(fx, NULL, "ec2-user", 0, NULL), GW_EINVAL);
    assert_int_equal(start(fx, longname, "ec2-user", 0, NULL), GW_EINVAL);
    assert_int_equal(
        keypush_start(fx->kp, NULL, NULL, "i-1", "u", NULL, NULL, NULL),
        GW_EINVAL);
    struct keypush *kp;
    assert_int_equal(keypush_new(&fx->loop, &fx->kr, NULL, NULL, &kp),
                     GW_EINVAL);
    run_for(fx, 10);
    assert_int_equal(fx->done_count, 0);
    assert_int_equal(fx->fake.calls, 0);
}

/* Freeing with calls in flight and results pending: cancel, no
 * callbacks, no leaks (teardown frees). */
static void test_free_pending(void **state)
{
    struct fx *fx = *state;
    for (int i = 0; i < 12; i++) {
        char inst[16];
        snprintf(inst, sizeof(inst), "i-%d", i);
        assert_int_equal(start(fx, inst, "ec2-user", i, NULL), 0);
    }
    assert_int_equal(start(fx, "mi-1", "ec2-user", 12, NULL), 0);
    keypush_free(fx->kp);
    fx->kp = NULL;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->fake.cancels, KEYPUSH_MAX_INFLIGHT);
    assert_int_equal(fx->done_count, 0);
}

static void free_from_cb(void *arg, int status, const struct aws_error *err)
{
    struct fx *fx = arg;
    fx->done_count++;
    keypush_free(fx->kp);
    fx->kp = NULL;
    uv_stop(&fx->loop);
}

/* keypush_free from inside a callback: the other waiters hear nothing. */
static void test_free_from_callback(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(keypush_start(fx->kp, "prof", "eu-west-1", "i-0abc",
                                   "ec2-user", free_from_cb, fx, NULL),
                     0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(start(fx, "i-0abc", "ec2-user", i, NULL), 0);
    assert_int_equal(start(fx, "i-0def", "ec2-user", 3, NULL), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->done_count, 1);
    assert_int_equal(fx->fake.calls, 2);
    assert_int_equal(fx->fake.cancels, 1); /* i-0def's call */
    for (int i = 0; i < 4; i++)
        assert_int_equal(fx->w[i].called, 0);
}

/* Freshness counts from when the call began, not when it answered: a
 * slow call leaves less of the instance's 60 s. */
static void test_window_from_call_start(void **state)
{
    struct fx *fx = *state; /* reuse window 300 ms */
    fx->fake.delay_ms = 150;
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 0, NULL), 0);
    run_until(fx, 1);
    run_for(fx, 200); /* 200 ms after the answer, 350 after the start */
    assert_int_equal(start(fx, "i-0abc", "ec2-user", 1, NULL), 0);
    run_until(fx, 2);
    assert_int_equal(fx->fake.calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_share_one_call, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_reuse_then_separate_tuples,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_new_push, fx_setup_short,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotation_new_push, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_rotation_during_push, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_error_fan_out, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_managed_node, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_cap_and_queue, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_send_refused, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_pending, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_free_from_callback, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_window_from_call_start,
                                        fx_setup_short, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
