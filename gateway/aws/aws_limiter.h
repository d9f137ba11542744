/*
 * aws_limiter.h - the client-side rate limiter of the AWS SDKs' adaptive
 * retry mode (botocore retries/adaptive.py, bucket.py, throttling.py),
 * pure: every time is handed in (seconds, any monotonic origin).
 *
 * A token bucket stays out of the way until the service first throttles;
 * from then on each attempt takes a token, and the bucket's fill rate
 * follows CUBIC: on a throttle the rate drops to beta (0.7) times the
 * rate the service was accepting, and on successes it grows back along
 * C (t - K)^3 + W_max, never above twice the measured answer rate.
 *
 * Two changes to botocore, for many concurrent callers sharing one
 * bucket (a burst of connects) where botocore has one caller per client:
 * - one decrease per congestion event: a throttle answer to an attempt
 *   sent before the latest decrease is the same overload echoing back
 *   (as TCP counts the losses of one window once), so 37 throttles of
 *   one burst do not cut the rate 37 times to the floor;
 * - the rates are counted over the last second instead of botocore's
 *   smoothed half-second buckets (which read ~0 or ~80/s for one burst
 *   of answers, depending on where a bucket boundary falls): W_max is
 *   the rate the service accepted in the last second (its successful
 *   answers), and growth is capped at twice the rate of all answers in
 *   the last second;
 * - a decrease leaves the bucket a second away from its next token:
 *   the service has no spare capacity for the second it just counted;
 * - no probing on the backlog: while calls wait (a burst being served),
 *   the rate stays below the last known limit (BACKLOG_SHARE of W_max).
 *   Each call has a budget of max_attempts; a probe above the limit
 *   costs one attempt of a queued call, and with a backlog of a few
 *   dozen, some call loses its last one (a simulated burst of 40 against
 *   3/s lost one call in half the runs). Probing resumes with fresh
 *   demand once the backlog is served, or HOLD_S past the time CUBIC
 *   regains W_max: a W_max read low (a throttle caused by others in the
 *   account, or a sparse second) must not hold a line whose demand
 *   exceeds it below that demand for good.
 */
#ifndef SSMGATE_AWS_LIMITER_H
#define SSMGATE_AWS_LIMITER_H

#define AWS_LIMITER_MIN_RATE 0.5 /* tokens/s, botocore's floor */
#define AWS_LIMITER_BETA     0.7
#define AWS_LIMITER_SCALE    0.4 /* CUBIC's C */
#define AWS_LIMITER_OK_MAX   64  /* accepted answers remembered */
/* With a backlog, the rate stays at this share of W_max (half-way from
 * the decrease back to the last known limit). */
#define AWS_LIMITER_BACKLOG_SHARE 0.85
#define AWS_LIMITER_HOLD_S        4.0

struct aws_limiter {
    int enabled; /* the service has throttled: tokens apply */
    /* the bucket */
    double fill_rate, max_capacity, capacity, last_refill;
    /* CUBIC */
    double w_max, k, last_fail;
    /* times of the latest answers and of the accepted ones, rings */
    double all_at[AWS_LIMITER_OK_MAX], ok_at[AWS_LIMITER_OK_MAX];
    unsigned all_next, ok_next;
    unsigned throttles, decreases; /* for the log */
};

void aws_limiter_init(struct aws_limiter *l, double now);

/* Takes a token for an attempt sent at now. Returns 0 (take it: go), or
 * the seconds (> 0) until one is there; nothing is taken then. */
double aws_limiter_acquire(struct aws_limiter *l, double now);

/* An answer at now to an attempt sent at sent: throttled (the service's
 * throttle error) or anything else the service answered. backlog: the
 * calls still waiting for this limiter (queued, or backing off after a
 * throttle). */
void aws_limiter_answer(struct aws_limiter *l, double now, double sent,
                        int throttled, int backlog);

/* The fill rate in tokens/s (0 while not enabled). */
double aws_limiter_rate(const struct aws_limiter *l);

#endif
