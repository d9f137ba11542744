/*
 * aws_limiter.c - the adaptive retry mode's token bucket and CUBIC rate,
 * as botocore has them (see aws_limiter.h for the two changes), with the
 * clock handed in. Rates are tokens per second; the bucket holds at most
 * max(rate, 1) tokens, so an idle client can burst that much.
 */
#include "aws_limiter.h"

#include <math.h>
#include <string.h>

void aws_limiter_init(struct aws_limiter *l, double now)
{
    memset(l, 0, sizeof(*l));
    /* botocore: TokenBucket(max_rate=1), empty, filling from creation;
     * CubicCalculator(starting_max_rate=0, start_time=now). */
    l->fill_rate = 1.0;
    l->max_capacity = 1.0;
    l->last_refill = now;
    l->last_fail = now;
    for (unsigned i = 0; i < AWS_LIMITER_OK_MAX; i++)
        l->all_at[i] = l->ok_at[i] = -INFINITY;
}

static void refill(struct aws_limiter *l, double now)
{
    if (now > l->last_refill) {
        l->capacity += (now - l->last_refill) * l->fill_rate;
        if (l->capacity > l->max_capacity)
            l->capacity = l->max_capacity;
        l->last_refill = now;
    }
}

static void set_rate(struct aws_limiter *l, double now, double rate)
{
    /* Tokens earned so far at the old rate first. */
    refill(l, now);
    l->fill_rate = rate > AWS_LIMITER_MIN_RATE ? rate : AWS_LIMITER_MIN_RATE;
    l->max_capacity = rate >= 1.0 ? rate : 1.0;
    if (l->capacity > l->max_capacity)
        l->capacity = l->max_capacity;
}

double aws_limiter_acquire(struct aws_limiter *l, double now)
{
    double wait;

    if (!l->enabled)
        return 0;
    refill(l, now);
    if (l->capacity >= 1.0) {
        l->capacity -= 1.0;
        return 0;
    }
    wait = (1.0 - l->capacity) / l->fill_rate;
    return wait > 1e-3 ? wait : 1e-3;
}

/* Entries of ring in (now - 1 s, now]. */
static double per_second(const double *ring, double now)
{
    unsigned n = 0;

    for (unsigned i = 0; i < AWS_LIMITER_OK_MAX; i++)
        if (ring[i] > now - 1.0 && ring[i] <= now)
            n++;
    return n;
}

/* An answer to an attempt sent before the latest decrease: the answers
 * of one burst arrive in any order, so a success counted only now may
 * raise the event's W_max. */
static void raise_w_max(struct aws_limiter *l, double now)
{
    double accepted = per_second(l->ok_at, now);

    if (accepted <= l->w_max)
        return;
    l->w_max = accepted;
    l->k = cbrt(accepted * (1.0 - AWS_LIMITER_BETA) / AWS_LIMITER_SCALE);
    if (l->fill_rate < accepted * AWS_LIMITER_BETA)
        set_rate(l, now, accepted * AWS_LIMITER_BETA);
}

void aws_limiter_answer(struct aws_limiter *l, double now, double sent,
                        int throttled, int backlog)
{
    double measured, accepted, rate, dt, cap;

    l->all_at[l->all_next++ % AWS_LIMITER_OK_MAX] = now;
    measured = per_second(l->all_at, now);
    if (!throttled) {
        l->ok_at[l->ok_next++ % AWS_LIMITER_OK_MAX] = now;
        if (l->enabled && sent < l->last_fail)
            raise_w_max(l, now);
        /* botocore success_received, capped at twice what is sent. */
        dt = now - l->last_fail - l->k;
        rate = AWS_LIMITER_SCALE * dt * dt * dt + l->w_max;
        if (rate > 2.0 * measured)
            rate = 2.0 * measured;
        cap = AWS_LIMITER_BACKLOG_SHARE * l->w_max;
        if (backlog > 0 && l->enabled && rate > cap &&
            now - l->last_fail < l->k + AWS_LIMITER_HOLD_S)
            rate = cap;
        set_rate(l, now, rate);
        return;
    }
    l->throttles++;
    accepted = per_second(l->ok_at, now);
    if (l->enabled && sent < l->last_fail) {
        /* The same overload echoing back: one decrease per event. */
        raise_w_max(l, now);
        return;
    }
    /* botocore error_received, with what the service accepted as the
     * rate to use (it cannot exceed what was sent, so botocore's cap by
     * the fill rate, which would ratchet W_max down at every event while
     * a backlog keeps the rate below it, is not needed). */
    l->w_max = accepted;
    l->k = cbrt(accepted * (1.0 - AWS_LIMITER_BETA) / AWS_LIMITER_SCALE);
    l->last_fail = now;
    l->enabled = 1;
    l->decreases++;
    set_rate(l, now, accepted * AWS_LIMITER_BETA);
    /* The service counts calls per second and has just said this one
     * is full: the next token comes a second from now (capacity below
     * zero), as a token saved up here would only buy another throttle
     * of a call whose attempts are counted. */
    l->capacity = 1.0 - l->fill_rate;
}

double aws_limiter_rate(const struct aws_limiter *l)
{
    return l->enabled ? l->fill_rate : 0;
}
