/*
 * defer.h - run a callback once, just before the loop next waits for I/O.
 *
 * The tunnel's receive side delivers one small message at a time (1 KiB
 * from the agent); writing each to the client socket at once would cost a
 * syscall per message. Writers queue themselves here instead and flush
 * everything a loop pass produced in one write. Queued items run in the
 * loop's prepare phase, which always comes before it blocks, so nothing
 * waits longer than the rest of the current pass.
 */
#ifndef SSMGATE_DEFER_H
#define SSMGATE_DEFER_H

#include <uv.h>

struct defer {
    void (*cb)(struct defer *d);
    struct defer *prev, *next;
    int queued; /* 0 no, 1 for the next run, 2 in the current run */
};

/* Queues d (once; a queued item stays queued). The first call starts the
 * prepare handle on loop. */
void defer_queue(uv_loop_t *loop, struct defer *d);
/* Unqueues d; call before freeing it. */
void defer_cancel(struct defer *d);
/* Closes the prepare handle (at shutdown, before uv_loop_close). */
void defer_shutdown(void);

#endif
