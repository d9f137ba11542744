/*
 * aws_call_limit.c - the adaptive retry mode's line in front of an
 * attempt: which calls wait for a token (the throttle-prone ones, or
 * every signed call in retry_mode = adaptive), under which key, and the
 * engine's side of aws_throttle.h: the call's own timer wakes the head of
 * a line, a token sends the attempt, a deadline that passes in the line
 * fails the call naming the throttle. The retry settings (retry_mode,
 * max_attempts) are read here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_call_int.h"
#include "aws_profile.h"
#include "common.h"
#include "log.h"

void aws_call_ctx_set_retry(struct aws_call_ctx *x, const char *mode,
                            const char *max_attempts)
{
    const char *v;

    /* The environment wins over the profile, as in the SDKs. */
    v = aws_env_get(NULL, "AWS_MAX_ATTEMPTS");
    if (!v || !v[0])
        v = max_attempts;
    if (v && atoi(v) >= 1 && atoi(v) <= 10)
        x->max_attempts = atoi(v);
    v = aws_env_get(NULL, "AWS_RETRY_MODE");
    if (!v || !v[0])
        v = mode;
    if (v && v[0])
        x->adaptive = strcmp(v, "adaptive") == 0;
}

void aws_call_ctx_set_queue_deadline(struct aws_call_ctx *x, int ms)
{
    x->queue_ms = ms > 0 ? ms : 0;
}

/* Whether the call waits for its limiter, and its key: the service counts
 * a rate per action, region and account; the owner's rate_scope (the
 * profile) stands for the account, else the access key does (and then a
 * temporary key's limiter starts over after a refresh, which the
 * service's own bucket does not, so it errs towards sending). */
static int call_limited(const struct aws_call *call, char *key, size_t n)
{
    static const char *const prone[] = {"StartSession", "ResumeSession",
                                        "SendSSHPublicKey"};
    int hit = call->x->adaptive;

    if (!call->x->throttle || !call->creds.access_key_id)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(prone) && !hit; i++)
        hit = strcmp(call->action, prone[i]) == 0;
    if (hit)
        snprintf(key, n, "%s %s %s", call->action,
                 call->signing_region ? call->signing_region : "",
                 call->rate_scope ? call->rate_scope
                                  : call->creds.access_key_id);
    return hit;
}

void aws_call_send_limited(struct aws_call *call)
{
    char key[AWS_THROTTLE_KEY_MAX];

    uint64_t started = call->deadline - AWS_CALL_DEADLINE_MS;

    if (call->attempt > 0)
        aws_call_refresh_creds(call); /* a retry: its keys may have aged */
    call->tw.deadline = call->deadline;
    if (call->x->queue_ms > 0 &&
        started + (uint64_t)call->x->queue_ms < call->deadline)
        call->tw.deadline = started + (uint64_t)call->x->queue_ms;
    if (call_limited(call, key, sizeof(key)) &&
        aws_throttle_enter(call->x->throttle, key, &call->tw,
                           uv_now(call->x->loop)) == 0)
        return; /* sent, or queued */
    aws_call_send_attempt(call);
}

static void throttle_go(struct aws_throttle_waiter *w)
{
    struct aws_call *call = CONTAINER_OF(w, struct aws_call, tw);

    uv_timer_stop(&call->timer);
    if (call->x->free_requested) /* not while tearing down */
        return;
    if (w->sent_at != w->queued_at)
        aws_call_refresh_creds(call); /* it waited: its keys may have aged */
    aws_call_send_attempt(call);
}

static void throttle_expire(struct aws_throttle_waiter *w, const char *why)
{
    struct aws_call *call = CONTAINER_OF(w, struct aws_call, tw);
    char msg[GW_REASON_MAX];

    uv_timer_stop(&call->timer);
    log_warn("aws: %s: %s", call->action, why);
    snprintf(msg, sizeof(msg), "%s %s", call->action, why);
    aws_call_fail(call, GW_ETIMEOUT, msg);
}

static void throttle_timer(uv_timer_t *t)
{
    struct aws_call *call = CONTAINER_OF(t, struct aws_call, timer);

    aws_throttle_pump(&call->tw, uv_now(call->x->loop));
}

static void throttle_arm(struct aws_throttle_waiter *w, uint64_t ms)
{
    struct aws_call *call = CONTAINER_OF(w, struct aws_call, tw);

    uv_timer_start(&call->timer, throttle_timer, ms, 0);
}

const struct aws_throttle_ops aws_call_throttle_ops = {
    .go = throttle_go,
    .expire = throttle_expire,
    .arm = throttle_arm,
};
