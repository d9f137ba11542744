/*
 * aws_throttle.c - keyed limiters and their FIFO lines.
 *
 * A waiter goes IDLE -> QUEUED (in its bucket's line) -> FLIGHT (took a
 * token, sent) -> IDLE (answered) or BACKOFF (throttled: the engine's
 * backoff timer runs, then it enters again). The bucket counts the
 * waiters in each state: its backlog (queued + backing off) keeps the
 * limiter from probing above the last known limit, and a bucket with no
 * waiter at all may be given to a new key when the table is full.
 * pump() hands out tokens head first; a go/expire callback may enter,
 * leave or pump again, so a nested pump only asks the running one for
 * another round.
 */
#include "aws_throttle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_limiter.h"
#include "common.h"
#include "log.h"

enum { W_IDLE, W_QUEUED, W_FLIGHT, W_BACKOFF };

struct aws_throttle_bucket {
    struct aws_throttle *t;
    char key[AWS_THROTTLE_KEY_MAX];
    struct aws_limiter lim;
    struct list line; /* waiters, by order */
    int n[4];         /* waiters per state */
    uint64_t used;    /* ms: latest enter */
    int pumping, again;
    unsigned logged_decreases;
};

struct aws_throttle {
    const struct aws_throttle_ops *ops;
    struct aws_throttle_bucket *b[AWS_THROTTLE_BUCKETS];
};

static double secs(uint64_t ms)
{
    return (double)ms / 1000.0;
}

struct aws_throttle *aws_throttle_new(const struct aws_throttle_ops *ops)
{
    struct aws_throttle *t = calloc(1, sizeof(*t));

    if (t)
        t->ops = ops;
    return t;
}

void aws_throttle_free(struct aws_throttle *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < AWS_THROTTLE_BUCKETS; i++)
        free(t->b[i]);
    free(t);
}

static int bucket_idle(const struct aws_throttle_bucket *b)
{
    return !b->pumping && !b->n[W_QUEUED] && !b->n[W_FLIGHT] &&
           !b->n[W_BACKOFF] && !b->n[W_IDLE];
}

/* key's bucket: the existing one, a free slot, or the least recently used
 * idle one (its limiter starts over). */
static struct aws_throttle_bucket *bucket_get(struct aws_throttle *t,
                                              const char *key, uint64_t now)
{
    struct aws_throttle_bucket *b, *lru = NULL;
    size_t i, free_i = AWS_THROTTLE_BUCKETS;

    for (i = 0; i < AWS_THROTTLE_BUCKETS; i++) {
        b = t->b[i];
        if (!b) {
            if (free_i == AWS_THROTTLE_BUCKETS)
                free_i = i;
            continue;
        }
        if (strcmp(b->key, key) == 0)
            return b;
        if (bucket_idle(b) && (!lru || b->used < lru->used))
            lru = b;
    }
    if (free_i < AWS_THROTTLE_BUCKETS) {
        b = calloc(1, sizeof(*b));
        if (!b)
            return NULL;
        t->b[free_i] = b;
    } else if (lru) {
        b = lru;
        memset(b, 0, sizeof(*b));
    } else {
        return NULL;
    }
    b->t = t;
    snprintf(b->key, sizeof(b->key), "%s", key);
    list_init(&b->line);
    aws_limiter_init(&b->lim, secs(now));
    return b;
}

static void set_state(struct aws_throttle_waiter *w, int state)
{
    w->b->n[w->state]--;
    w->state = state;
    w->b->n[state]++;
}

static void pump(struct aws_throttle_bucket *b, uint64_t now)
{
    const struct aws_throttle_ops *ops = b->t->ops;
    struct aws_throttle_waiter *w;
    char why[GW_REASON_MAX];
    double wait;

    if (b->pumping) {
        b->again = 1;
        return;
    }
    b->pumping = 1;
    do {
        b->again = 0;
        while (!list_empty(&b->line)) {
            w = CONTAINER_OF(b->line.next, struct aws_throttle_waiter, node);
            wait = aws_limiter_acquire(&b->lim, secs(now));
            if (wait <= 0) {
                list_remove(&w->node);
                set_state(w, W_FLIGHT);
                w->sent_at = now;
                ops->go(w);
                continue;
            }
            if (now + (uint64_t)(wait * 1000.0) < w->deadline) {
                /* Round up: a timer early by a fraction of a ms would
                 * find no token and wait again. */
                ops->arm(w, (uint64_t)(wait * 1000.0) + 1);
                break;
            }
            snprintf(why, sizeof(why),
                     "throttled by the service: its client-side rate limit "
                     "(%.1f calls/s, %d waiting) has no turn for it within "
                     "its deadline (queued %llu ms)",
                     aws_limiter_rate(&b->lim), b->n[W_QUEUED],
                     (unsigned long long)(now - w->queued_at));
            list_remove(&w->node);
            set_state(w, W_IDLE);
            ops->expire(w, why);
        }
    } while (b->again);
    b->pumping = 0;
}

int aws_throttle_enter(struct aws_throttle *t, const char *key,
                       struct aws_throttle_waiter *w, uint64_t now)
{
    struct aws_throttle_bucket *b = w->b;
    struct list *e;

    if (b && strcmp(b->key, key) != 0)
        aws_throttle_leave(w, now);
    if (!w->b) {
        b = bucket_get(t, key, now);
        if (!b)
            return GW_ELIMIT;
        w->b = b;
        w->state = W_IDLE;
        b->n[W_IDLE]++;
    }
    b = w->b;
    if (w->state == W_QUEUED)
        return 0;
    b->used = now;
    w->queued_at = now;
    set_state(w, W_QUEUED);
    /* FIFO by call: behind every earlier call, ahead of later ones. */
    for (e = b->line.prev; e != &b->line; e = e->prev)
        if (CONTAINER_OF(e, struct aws_throttle_waiter, node)->order <=
            w->order)
            break;
    list_insert_head(e, &w->node); /* after e */
    pump(b, now);
    return 0;
}

void aws_throttle_pump(struct aws_throttle_waiter *w, uint64_t now)
{
    if (w->b)
        pump(w->b, now);
}

struct aws_throttle_bucket *aws_throttle_answer(struct aws_throttle_waiter *w,
                                                uint64_t now,
                                                enum aws_throttle_answer a)
{
    struct aws_throttle_bucket *b = w->b;
    int backlog;

    if (!b || w->state != W_FLIGHT)
        return NULL;
    set_state(w, a == AWS_THROTTLE_THROTTLED ? W_BACKOFF : W_IDLE);
    if (a != AWS_THROTTLE_NO_ANSWER) {
        backlog = b->n[W_QUEUED] + b->n[W_BACKOFF];
        aws_limiter_answer(&b->lim, secs(now), secs(w->sent_at),
                           a == AWS_THROTTLE_THROTTLED, backlog);
        if (b->lim.decreases != b->logged_decreases) {
            b->logged_decreases = b->lim.decreases;
            log_info("aws: %s throttled: client-side rate now %.2f/s "
                     "(%d waiting)",
                     b->key, aws_limiter_rate(&b->lim), backlog);
        }
    }
    return b;
}

void aws_throttle_run(struct aws_throttle_bucket *b, uint64_t now)
{
    if (b)
        pump(b, now);
}

void aws_throttle_leave(struct aws_throttle_waiter *w, uint64_t now)
{
    struct aws_throttle_bucket *b = w->b;
    int was_queued;

    if (!b)
        return;
    was_queued = w->state == W_QUEUED;
    if (was_queued)
        list_remove(&w->node);
    b->n[w->state]--;
    w->b = NULL;
    w->state = W_IDLE;
    /* The head may have gone: the next one needs its timer. */
    if (was_queued)
        pump(b, now);
}
