/*
 * defer.c - see defer.h. One idle handle for the process (the daemon runs
 * one loop), active only while something is queued: an active idle handle
 * makes the loop poll without blocking and keeps it alive, so queued work
 * runs on the next pass, including work queued by a deferred callback or
 * from a phase after the poll, and uv_run never returns with work left.
 * Idle handles run after timers and before the poll, i.e. before the loop
 * would sleep. A run first moves the queue aside (first queued, first
 * run): callbacks may queue again (for the next pass) or cancel items
 * still waiting in this one.
 */
#include "defer.h"

#include <stddef.h>

#include "common.h"

static uv_idle_t defer_handle;
static int defer_started;
static struct list defer_queued;  /* for the next run */
static struct list defer_running; /* taken by the current run */

static void defer_run(uv_idle_t *h)
{
    struct list *e;

    list_move_all(&defer_running, &defer_queued);
    for (e = defer_running.next; e != &defer_running; e = e->next)
        CONTAINER_OF(e, struct defer, link)->queued = 2;
    while (!list_empty(&defer_running)) {
        struct defer *d = CONTAINER_OF(defer_running.next, struct defer, link);
        list_remove(&d->link);
        d->queued = 0;
        d->cb(d);
    }
    if (list_empty(&defer_queued))
        uv_idle_stop(h);
}

void defer_queue(uv_loop_t *loop, struct defer *d)
{
    if (d->queued)
        return;
    if (!defer_started) {
        uv_idle_init(loop, &defer_handle);
        list_init(&defer_queued);
        list_init(&defer_running);
        defer_started = 1;
    }
    d->queued = 1;
    list_insert_tail(&defer_queued, &d->link);
    uv_idle_start(&defer_handle, defer_run); /* no-op when active */
}

void defer_cancel(struct defer *d)
{
    if (d->queued)
        list_remove(&d->link);
    d->queued = 0;
}

void defer_shutdown(void)
{
    if (!defer_started)
        return;
    defer_started = 0;
    /* Forget what is still queued, so a later defer_cancel is a no-op. */
    while (!list_empty(&defer_queued)) {
        struct defer *d = CONTAINER_OF(defer_queued.next, struct defer, link);
        list_remove(&d->link);
        d->queued = 0;
    }
    uv_close((uv_handle_t *)&defer_handle, NULL);
}
