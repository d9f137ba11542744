/*
 * aws_throttle.h - the waiting line in front of the adaptive limiters
 * (aws_limiter.h): one limiter per key (action, signing region, access
 * key: what the service counts its rate by), and per limiter a FIFO of
 * the attempts waiting for a token, in the order their calls were made
 * (a retried call keeps its place ahead of newer ones). Times are
 * handed in (ms); no loop: the owner (aws_call.c) arms a timer when
 * asked and calls aws_throttle_pump when it fires.
 */
#ifndef SSMGATE_AWS_THROTTLE_H
#define SSMGATE_AWS_THROTTLE_H

#include <stdint.h>

#include "list.h"

#define AWS_THROTTLE_KEY_MAX 192
#define AWS_THROTTLE_BUCKETS 64 /* limiters kept; idle ones are reused */

struct aws_throttle;
struct aws_throttle_bucket;

/* One attempt's place; embedded in the owner's call, zeroed. */
struct aws_throttle_waiter {
    struct list node;
    struct aws_throttle_bucket *b; /* NULL = not using a limiter */
    uint64_t order;                /* FIFO rank: the call's sequence */
    uint64_t deadline;             /* ms: give up queueing here */
    uint64_t queued_at, sent_at;   /* ms */
    int state;                     /* private */
};

struct aws_throttle_ops {
    /* w took its token (it is out of the line): send now. */
    void (*go)(struct aws_throttle_waiter *w);
    /* w's deadline passed in the line (it is out): fail it with why. */
    void (*expire)(struct aws_throttle_waiter *w, const char *why);
    /* w heads its line: call aws_throttle_pump(w) after ms. */
    void (*arm)(struct aws_throttle_waiter *w, uint64_t ms);
};

struct aws_throttle *aws_throttle_new(const struct aws_throttle_ops *ops);
void aws_throttle_free(struct aws_throttle *t);

/* Puts w in key's line and runs it: ops->go(w) may run before this
 * returns. Returns 0, or GW_ENOMEM / GW_ELIMIT when no limiter is
 * available (every slot busy): the owner then sends at once. */
int aws_throttle_enter(struct aws_throttle *t, const char *key,
                       struct aws_throttle_waiter *w, uint64_t now);
/* Runs w's line (from the timer ops->arm asked for). */
void aws_throttle_pump(struct aws_throttle_waiter *w, uint64_t now);

enum aws_throttle_answer {
    AWS_THROTTLE_NO_ANSWER, /* transport error: no word from the service */
    AWS_THROTTLE_ANSWERED,  /* any answer but a throttle */
    AWS_THROTTLE_THROTTLED,
};
/* w's attempt ended; a throttled one is counted as backing off until it
 * enters again or leaves. Returns w's bucket (or NULL) for
 * aws_throttle_run once the owner is done with the answer: a better rate
 * may let the line move sooner. Buckets live as long as t. */
struct aws_throttle_bucket *aws_throttle_answer(struct aws_throttle_waiter *w,
                                                uint64_t now,
                                                enum aws_throttle_answer a);
void aws_throttle_run(struct aws_throttle_bucket *b, uint64_t now);
/* w is done with its limiter (the call ends or is cancelled). */
void aws_throttle_leave(struct aws_throttle_waiter *w, uint64_t now);

#endif
