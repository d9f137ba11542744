/*
 * defer.c - see defer.h. One prepare handle for the process (the daemon
 * runs one loop); it is unreferenced so an idle queue never keeps the
 * loop alive. A run first moves the queue aside: callbacks may queue
 * again (for the next pass) or cancel items still waiting in this one.
 */
#include "defer.h"

#include <stddef.h>

static uv_prepare_t defer_handle;
static int defer_started;
static struct defer *defer_queued;  /* for the next run */
static struct defer *defer_running; /* taken by the current run */

static void defer_push(struct defer **head, struct defer *d)
{
    d->prev = NULL;
    d->next = *head;
    if (*head != NULL)
        (*head)->prev = d;
    *head = d;
}

static void defer_unlink(struct defer **head, struct defer *d)
{
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        *head = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

static void defer_run(uv_prepare_t *h)
{
    (void)h;
    defer_running = defer_queued;
    defer_queued = NULL;
    for (struct defer *d = defer_running; d != NULL; d = d->next)
        d->queued = 2;
    while (defer_running != NULL) {
        struct defer *d = defer_running;
        defer_unlink(&defer_running, d);
        d->queued = 0;
        d->cb(d);
    }
}

void defer_queue(uv_loop_t *loop, struct defer *d)
{
    if (d->queued)
        return;
    if (!defer_started) {
        uv_prepare_init(loop, &defer_handle);
        uv_prepare_start(&defer_handle, defer_run);
        uv_unref((uv_handle_t *)&defer_handle);
        defer_started = 1;
    }
    d->queued = 1;
    defer_push(&defer_queued, d);
}

void defer_cancel(struct defer *d)
{
    if (d->queued == 1)
        defer_unlink(&defer_queued, d);
    else if (d->queued == 2)
        defer_unlink(&defer_running, d);
    d->queued = 0;
}

void defer_shutdown(void)
{
    if (!defer_started)
        return;
    defer_started = 0;
    defer_queued = defer_running = NULL;
    uv_close((uv_handle_t *)&defer_handle, NULL);
}
