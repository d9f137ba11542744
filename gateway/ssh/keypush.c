/*
 * keypush.c - SendSSHPublicKey per (profile, region, instance, user),
 * cached and shared.
 *
 * Model: one struct kp_entry per key tuple, in one of three states:
 *
 *   IDLE      no call; have_push says whether pushed_at/generation hold a
 *             successful push (fresh while younger than reuse_ms and made
 *             with the ring's current generation)
 *   QUEUED    waiters want a push; waiting for a slot (max_inflight)
 *   INFLIGHT  one API call running; every waiter for the tuple hangs on
 *             the entry's waiters list
 *
 * A result already known when keypush_start runs (fresh push, mi- target,
 * the API refusing to start) goes to the ready list and is delivered from
 * the loop (defer.h), so callbacks never run inside keypush_start. Results
 * of API calls fan out from the API's own (asynchronous) done callback.
 *
 * Lists are list.h rings; a waiter unlinks itself from whichever list
 * holds it, which is what makes cancel from inside another waiter's
 * callback safe. keypush_free may run inside one of our callbacks: the
 * struct then lives on (dead, busy) until that callback returns.
 */
#include "keypush.h"

#include <string.h>

#include "common.h"
#include "defer.h"
#include "list.h"
#include "log.h"
#include "stats.h"

#define KP_FIELD_MAX 128

/* Moves all of src's elements to dst (whose old contents are dropped):
 * dst joins src's ring as its first element, then src leaves it. */
static void kp_list_take(struct list *dst, struct list *src)
{
    list_init(dst);
    list_insert_head(src, dst);
    list_remove(src);
}

enum kp_state {
    KP_IDLE,
    KP_QUEUED,
    KP_INFLIGHT,
};

static const char *const kp_state_names[] = {"idle", "queued", "inflight"};

/* Owner: struct keypush (entries list). */
struct kp_entry {
    struct list link;  /* kp->entries */
    struct list qlink; /* kp->queue while QUEUED */
    struct keypush *kp;
    char profile[KP_FIELD_MAX];
    char region[KP_FIELD_MAX];
    char instance[KP_FIELD_MAX];
    char user[KP_FIELD_MAX];
    enum kp_state state;
    struct list waiters;
    struct aws_call *call; /* INFLIGHT */
    uint64_t gen_pushing;  /* INFLIGHT: generation being pushed */
    uint64_t started_at;   /* INFLIGHT: uv_now() when the call began */
    int have_push;
    uint64_t generation; /* of the last successful push */
    uint64_t pushed_at;  /* uv_now() when that call began */
};

/* Owner: the caller until done runs or keypush_cancel; kept on a list. */
struct keypush_wait {
    struct list link;
    struct keypush *kp;
    keypush_done_cb *done;
    void *arg;
    int status; /* the result to deliver */
};

/* Owner: the daemon (keypush_new / keypush_free). */
struct keypush {
    uv_loop_t *loop;
    struct defer ready_defer; /* delivers the ready list */
    const struct key_ring *ring;
    struct keypush_api api;
    uint64_t reuse_ms;
    int max_inflight;
    int inflight;
    int dead; /* keypush_free ran (maybe from inside a callback) */
    int busy; /* our callbacks running: the free waits for them */
    uint64_t calls;
    struct stats *stats;
    struct list entries;
    struct list queue;
    struct list ready;
};

static void kp_pump(struct keypush *kp);

static void kp_set_state(struct kp_entry *e, enum kp_state s)
{
    log_debug("keypush %s@%s: %s -> %s", e->user, e->instance,
              kp_state_names[e->state], kp_state_names[s]);
    e->state = s;
}

static void kp_destroy(struct keypush *kp)
{
    memset(kp, 0xa5, sizeof(*kp)); /* poison */
    free(kp);
}

/* Around our callbacks' calls out: keypush_free inside them only marks kp
 * dead, and the last release frees it. */
static void kp_hold(struct keypush *kp)
{
    kp->busy++;
}

/* Returns whether kp is gone. */
static int kp_release(struct keypush *kp)
{
    if (--kp->busy > 0 || !kp->dead)
        return 0;
    kp_destroy(kp);
    return 1;
}

/* Calls every waiter on list (taken off its owner) with its w->status. */
static void kp_deliver(struct keypush *kp, struct list *list,
                       const struct aws_error *err)
{
    while (!list_empty(list)) {
        struct keypush_wait *w =
            CONTAINER_OF(list->next, struct keypush_wait, link);
        list_remove(&w->link);
        keypush_done_cb *done = w->done;
        void *arg = w->arg;
        int status = w->status;
        free(w);
        if (!kp->dead)
            done(arg, status, err);
    }
}

static void kp_ready_cb(struct defer *d)
{
    struct keypush *kp = CONTAINER_OF(d, struct keypush, ready_defer);
    struct list list;
    kp_list_take(&list, &kp->ready);
    kp_hold(kp);
    kp_deliver(kp, &list, NULL);
    kp_release(kp);
}

/* Delivers status to w from the loop, not from the current call stack. */
static void kp_make_ready(struct keypush *kp, struct keypush_wait *w,
                          int status)
{
    w->status = status;
    list_insert_tail(&kp->ready, &w->link);
    defer_queue(kp->loop, &kp->ready_defer);
}

/* Fans out one result to every waiter of e (e may be freed by one). */
static void kp_fan_out(struct kp_entry *e, int status,
                       const struct aws_error *err)
{
    struct list list;
    kp_list_take(&list, &e->waiters);
    for (struct list *l = list.next; l != &list; l = l->next)
        CONTAINER_OF(l, struct keypush_wait, link)->status = status;
    kp_deliver(e->kp, &list, err);
}

static void kp_call_done(void *arg, int status, const struct aws_error *err)
{
    struct kp_entry *e = arg;
    struct keypush *kp = e->kp;

    CHECK(e->state == KP_INFLIGHT);
    e->call = NULL;
    kp->inflight--;
    stats_count(kp->stats,
                status == 0 ? STATS_KEY_PUSH_OK : STATS_KEY_PUSH_FAILED);
    if (status == 0 && e->gen_pushing != kp->ring->generation &&
        !list_empty(&e->waiters)) {
        /* The key rotated while the call ran: the waiters will offer the
         * new key, so push that one first. */
        log_debug("keypush %s@%s: key rotated during the push, again", e->user,
                  e->instance);
        kp_set_state(e, KP_QUEUED);
        list_insert_head(&kp->queue, &e->qlink);
        kp_pump(kp);
        return;
    }
    kp_set_state(e, KP_IDLE);
    if (status == 0) {
        e->have_push = 1;
        e->generation = e->gen_pushing;
        /* The instance's 60 s count from when AWS took the key, which is
         * after the call began (retries included): count from then. */
        e->pushed_at = e->started_at;
        log_debug("keypush %s@%s: key generation %llu pushed", e->user,
                  e->instance, (unsigned long long)e->generation);
    } else {
        e->have_push = 0;
        log_debug("keypush %s@%s: push failed: %s%s%s", e->user, e->instance,
                  err != NULL ? err->code : "",
                  err != NULL && err->code[0] ? " " : "", gw_strerror(status));
    }
    kp_hold(kp);
    kp_fan_out(e, status, err);
    if (!kp_release(kp) && !kp->dead)
        kp_pump(kp);
}

/* Starts queued pushes while there are free slots. */
static void kp_pump(struct keypush *kp)
{
    while (kp->inflight < kp->max_inflight && !list_empty(&kp->queue)) {
        struct kp_entry *e =
            CONTAINER_OF(kp->queue.next, struct kp_entry, qlink);
        list_remove(&e->qlink);
        if (list_empty(&e->waiters)) {
            kp_set_state(e, KP_IDLE); /* everyone cancelled */
            continue;
        }
        kp_set_state(e, KP_INFLIGHT);
        e->gen_pushing = kp->ring->generation;
        e->started_at = uv_now(kp->loop);
        kp->inflight++;
        kp->calls++;
        log_debug("keypush %s@%s: SendSSHPublicKey (generation %llu, "
                  "%d in flight)",
                  e->user, e->instance, (unsigned long long)e->gen_pushing,
                  kp->inflight);
        e->call = kp->api.send(kp->api.ctx, e->profile[0] ? e->profile : NULL,
                               e->region[0] ? e->region : NULL, e->instance,
                               e->user, kp->ring->line, kp_call_done, e);
        if (e->call == NULL) {
            /* Could not even start: report from the loop. */
            kp->inflight--;
            stats_count(kp->stats, STATS_KEY_PUSH_FAILED);
            kp_set_state(e, KP_IDLE);
            log_warn("keypush %s@%s: could not start SendSSHPublicKey", e->user,
                     e->instance);
            while (!list_empty(&e->waiters)) {
                struct keypush_wait *w =
                    CONTAINER_OF(e->waiters.next, struct keypush_wait, link);
                list_remove(&w->link);
                kp_make_ready(kp, w, GW_EIO);
            }
        }
    }
}

static int kp_fresh(const struct keypush *kp, const struct kp_entry *e)
{
    return e->state == KP_IDLE && e->have_push &&
           e->generation == kp->ring->generation &&
           uv_now(kp->loop) - e->pushed_at < kp->reuse_ms;
}

static void kp_entry_free(struct kp_entry *e)
{
    list_remove(&e->link);
    free(e);
}

/* Drops idle entries that no longer hold a reusable push. */
static void kp_prune(struct keypush *kp)
{
    struct list *l = kp->entries.next;
    while (l != &kp->entries) {
        struct kp_entry *e = CONTAINER_OF(l, struct kp_entry, link);
        l = l->next;
        if (e->state == KP_IDLE && list_empty(&e->waiters) && !kp_fresh(kp, e))
            kp_entry_free(e);
    }
}

static struct kp_entry *kp_find(struct keypush *kp, const char *profile,
                                const char *region, const char *instance,
                                const char *user)
{
    for (struct list *l = kp->entries.next; l != &kp->entries; l = l->next) {
        struct kp_entry *e = CONTAINER_OF(l, struct kp_entry, link);
        if (strcmp(e->instance, instance) == 0 && strcmp(e->user, user) == 0 &&
            strcmp(e->profile, profile) == 0 && strcmp(e->region, region) == 0)
            return e;
    }
    return NULL;
}

int keypush_new(uv_loop_t *loop, const struct key_ring *ring,
                const struct keypush_api *api, const struct keypush_opts *opts,
                struct keypush **out)
{
    if (api == NULL || api->send == NULL || ring == NULL)
        return GW_EINVAL;
    struct keypush *kp = calloc(1, sizeof(*kp));
    if (kp == NULL)
        return GW_ENOMEM;
    kp->loop = loop;
    kp->ring = ring;
    kp->api = *api;
    kp->reuse_ms = opts && opts->reuse_ms ? opts->reuse_ms : KEYPUSH_REUSE_MS;
    kp->max_inflight = opts && opts->max_inflight > 0 ? opts->max_inflight
                                                      : KEYPUSH_MAX_INFLIGHT;
    kp->stats = opts ? opts->stats : NULL;
    list_init(&kp->entries);
    list_init(&kp->queue);
    list_init(&kp->ready);
    kp->ready_defer.cb = kp_ready_cb;
    *out = kp;
    return 0;
}

void keypush_free(struct keypush *kp)
{
    if (kp == NULL || kp->dead)
        return;
    kp->dead = 1;
    while (!list_empty(&kp->entries)) {
        struct kp_entry *e =
            CONTAINER_OF(kp->entries.next, struct kp_entry, link);
        if (e->call != NULL && kp->api.cancel != NULL)
            kp->api.cancel(kp->api.ctx, e->call);
        kp_deliver(kp, &e->waiters, NULL); /* dead: frees, calls none */
        list_remove(&e->qlink);
        kp_entry_free(e);
    }
    kp_deliver(kp, &kp->ready, NULL);
    defer_cancel(&kp->ready_defer);
    if (kp->busy == 0)
        kp_destroy(kp);
}

static int field_ok(const char *s, int required)
{
    if (s == NULL)
        return !required;
    size_t n = strlen(s);
    return n < KP_FIELD_MAX && (n > 0 || !required);
}

int keypush_start(struct keypush *kp, const char *profile, const char *region,
                  const char *instance_id, const char *os_user,
                  keypush_done_cb *done, void *arg, struct keypush_wait **out)
{
    if (!field_ok(instance_id, 1) || !field_ok(os_user, 1) ||
        !field_ok(profile, 0) || !field_ok(region, 0) || done == NULL)
        return GW_EINVAL;
    if (profile == NULL)
        profile = "";
    if (region == NULL)
        region = "";

    struct keypush_wait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return GW_ENOMEM;
    list_init(&w->link);
    w->kp = kp;
    w->done = done;
    w->arg = arg;
    if (out != NULL)
        *out = w;

    if (strncmp(instance_id, "mi-", 3) == 0) {
        /* EC2 Instance Connect serves EC2 instances only; a managed node
         * must already have the user's key. */
        log_debug("keypush %s@%s: managed node, no key push", os_user,
                  instance_id);
        kp_make_ready(kp, w, 0);
        return 0;
    }

    kp_prune(kp);
    struct kp_entry *e = kp_find(kp, profile, region, instance_id, os_user);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            free(w);
            return GW_ENOMEM;
        }
        e->kp = kp;
        snprintf(e->profile, sizeof(e->profile), "%s", profile);
        snprintf(e->region, sizeof(e->region), "%s", region);
        snprintf(e->instance, sizeof(e->instance), "%s", instance_id);
        snprintf(e->user, sizeof(e->user), "%s", os_user);
        list_init(&e->waiters);
        list_init(&e->qlink);
        list_insert_tail(&kp->entries, &e->link);
    }
    if (kp_fresh(kp, e)) {
        log_debug("keypush %s@%s: reusing the push of %llu ms ago", os_user,
                  instance_id,
                  (unsigned long long)(uv_now(kp->loop) - e->pushed_at));
        stats_count(kp->stats, STATS_KEY_PUSH_REUSED);
        kp_make_ready(kp, w, 0);
        return 0;
    }
    list_insert_tail(&e->waiters, &w->link);
    if (e->state == KP_IDLE) {
        kp_set_state(e, KP_QUEUED);
        list_insert_tail(&kp->queue, &e->qlink);
        kp_pump(kp);
    }
    return 0;
}

void keypush_cancel(struct keypush_wait *w)
{
    if (w == NULL)
        return;
    /* Whatever list holds it (an entry's waiters or the ready list), the
     * push itself goes on: its result is still worth caching. */
    list_remove(&w->link);
    free(w);
}

uint64_t keypush_calls(const struct keypush *kp)
{
    return kp->calls;
}

int keypush_inflight(const struct keypush *kp)
{
    return kp->inflight;
}
