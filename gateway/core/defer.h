/*
 * defer.h - run a callback once, just before the loop next waits for I/O.
 *
 * The tunnel's receive side delivers one small message at a time (1 KiB
 * from the agent); writing each to the client socket at once would cost a
 * syscall per message. Writers queue themselves here instead and flush
 * everything a loop pass produced in one write. Queued items run in the
 * loop's idle phase, which comes before it polls, and while anything is
 * queued the poll does not block: nothing waits longer than the rest of
 * the current pass. It is also the one "call me soon" of the tree (never
 * from inside the function that asked), instead of 0 ms timers.
 */
#ifndef SSMGATE_DEFER_H
#define SSMGATE_DEFER_H

#include <uv.h>

#include "list.h"

struct defer {
    void (*cb)(struct defer *d);
    struct list link;
    int queued; /* 0 no, 1 for the next run, 2 in the current run */
};

/* Queues d (once; a queued item stays queued) behind those already
 * queued. The first call sets up the idle handle on loop. */
void defer_queue(uv_loop_t *loop, struct defer *d);
/* Unqueues d; call before freeing it. */
void defer_cancel(struct defer *d);
/* Closes the idle handle (at shutdown, before uv_loop_close). */
void defer_shutdown(void);

#endif
