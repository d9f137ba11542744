/*
 * ssm_start.c - one start per instance (see ssm_start.h):
 *
 *   CHECKING -> STOPPING -> STARTING -> BOOTING -> AGENT -> (done)
 *        \          \           \          \         \___-> (failed)
 *
 * CHECKING reads the state once; STOPPING polls until "stopped" (EC2
 * refuses to start a stopping instance); STARTING is the one
 * StartInstances; BOOTING polls DescribeInstances until "running"; AGENT
 * polls DescribeInstanceInformation until PingStatus Online. A start
 * ends when its last waiter left or it finished; every change goes
 * through start_set_state, which logs it.
 */
#include "ssm_start.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws.h"
#include "aws_ec2.h"
#include "aws_ssm.h"
#include "common.h"
#include "list.h"
#include "log.h"
#include "tunnel.h"

/* Between polls: an instance boots in tens of seconds, its agent a bit
 * later; one DescribeInstances a second is far below EC2's rate. */
#define START_POLL_MS 1000

enum start_state {
    START_CHECKING,
    START_STOPPING,
    START_STARTING,
    START_BOOTING,
    START_AGENT,
    START_DONE,
};

static const char *const start_state_names[] = {
    [START_CHECKING] = "checking", [START_STOPPING] = "stopping",
    [START_STARTING] = "starting", [START_BOOTING] = "booting",
    [START_AGENT] = "agent",       [START_DONE] = "done",
};

struct ssm_starts {
    uv_loop_t *loop;
    struct aws_client *aws;
    struct list starts;
};

struct start {
    struct list link; /* in ssm_starts.starts */
    struct ssm_starts *owner;
    char instance[TUNNEL_TARGET_MAX];
    char profile[TUNNEL_PROFILE_MAX];
    char region[TUNNEL_REGION_MAX];
    enum start_state state;
    char ec2_state[32]; /* the last state EC2 reported */
    uint64_t t0;
    int timeout_ms;
    struct aws_call *call;
    uv_timer_t *poll, *deadline; /* own allocations: closed, then freed */
    struct list waiters;
    int n_waiters;
};

struct ssm_start_wait {
    struct list link; /* in start.waiters */
    struct start *start;
    int may_start;
    ssm_start_cb *cb;
    void *arg;
};

static void start_set_state(struct start *s, enum start_state next,
                            const char *why)
{
    log_info("start %s: state %s -> %s (%s, %llu ms)", s->instance,
             start_state_names[s->state], start_state_names[next], why,
             (unsigned long long)(uv_now(s->owner->loop) - s->t0));
    s->state = next;
}

static void handle_free(uv_handle_t *h)
{
    free(h);
}

/* Unlinks and frees s; its waiters are gone already. */
static void start_free(struct start *s)
{
    if (s->call)
        aws_call_cancel(s->call);
    list_remove(&s->link);
    uv_close((uv_handle_t *)s->poll, handle_free);
    uv_close((uv_handle_t *)s->deadline, handle_free);
    free(s);
}

static void waiter_report(struct ssm_start_wait *w, int status, const char *why)
{
    struct start *s = w->start;
    list_remove(&w->link);
    s->n_waiters--;
    w->cb(w->arg, status, why);
    free(w);
}

/* Every waiter hears status; then s goes. */
static void start_finish(struct start *s, int status, const char *why)
{
    if (s->state != START_DONE)
        start_set_state(s, START_DONE, status == 0 ? "ready" : why);
    while (!list_empty(&s->waiters))
        waiter_report(
            CONTAINER_OF(s->waiters.next, struct ssm_start_wait, link), status,
            why);
    start_free(s);
}

static void aws_reason(char *out, size_t cap, const char *what, int status,
                       const struct aws_error *e)
{
    char eb[GW_REASON_MAX];
    if (e && e->code[0])
        snprintf(out, cap, "%s: %s: %s", what, e->code, e->message);
    else
        snprintf(out, cap, "%s: %s", what,
                 e ? aws_error_str(e, eb, sizeof(eb)) : gw_strerror(status));
}

/* The instance is stopped (or stopping): waiters that may not start it
 * hear so now. 0 while someone still wants it started. */
static int refuse_unwilling(struct start *s)
{
    char why[GW_REASON_MAX];
    struct list *l, *tmp;
    snprintf(why, sizeof(why),
             "instance %s is %s; set start_stopped = yes to start it",
             s->instance, s->ec2_state);
    LIST_FOREACH_SAFE (l, tmp, &s->waiters) {
        struct ssm_start_wait *w = CONTAINER_OF(l, struct ssm_start_wait, link);
        if (!w->may_start) /* its connection logs why it failed */
            waiter_report(w, GW_EUNREACHABLE, why);
    }
    if (s->n_waiters > 0)
        return 0;
    start_finish(s, GW_EUNREACHABLE, why);
    return -1;
}

static void poll_fired(uv_timer_t *t);
static void describe_or_fail(struct start *s);

static void poll_later(struct start *s)
{
    uv_timer_start(s->poll, poll_fired, START_POLL_MS, 0);
}

static void on_started(void *arg, int status, const char *state,
                       const struct aws_error *err)
{
    struct start *s = arg;
    char why[GW_REASON_MAX];
    s->call = NULL;
    if (status < 0) {
        aws_reason(why, sizeof(why), "StartInstances", status, err);
        log_warn("start %s: %s", s->instance, why);
        start_finish(s, GW_EUNREACHABLE, why);
        return;
    }
    snprintf(s->ec2_state, sizeof(s->ec2_state), "%s", state);
    start_set_state(s, START_BOOTING, state);
    poll_later(s);
}

static void start_instance(struct start *s)
{
    start_set_state(s, START_STARTING, "stopped");
    s->call = aws_ec2_start_instance(s->owner->aws, s->profile, s->region,
                                     s->instance, on_started, s);
    if (!s->call)
        start_finish(s, GW_ENOMEM, "cannot call StartInstances");
}

static void on_agent(void *arg, int status, const struct aws_ssm_instance *in,
                     size_t n, const struct aws_error *err)
{
    struct start *s = arg;
    s->call = NULL;
    /* Not listed yet, ConnectionLost, a failed call: all mean not yet. */
    if (status == 0 && n == 1 && strcmp(in[0].ping_status, "Online") == 0) {
        start_finish(s, 0, NULL);
        return;
    }
    if (status < 0)
        log_debug("start %s: DescribeInstanceInformation: %s", s->instance,
                  err && err->code[0] ? err->code : gw_strerror(status));
    poll_later(s);
}

static void on_described(void *arg, int status,
                         const struct aws_ec2_instance *in, size_t n,
                         const struct aws_error *err)
{
    struct start *s = arg;
    char why[GW_REASON_MAX];
    s->call = NULL;
    if (status < 0 || n != 1) {
        if (status < 0)
            aws_reason(why, sizeof(why), "DescribeInstances", status, err);
        else
            snprintf(why, sizeof(why), "DescribeInstances: %s not found",
                     s->instance);
        if (s->state == START_CHECKING) {
            start_finish(s, GW_ENOT_FOUND, why);
        } else { /* a poll: the next one may answer */
            log_debug("start %s: %s", s->instance, why);
            poll_later(s);
        }
        return;
    }
    snprintf(s->ec2_state, sizeof(s->ec2_state), "%s", in[0].state);
    const char *st = s->ec2_state;
    switch (s->state) {
    case START_CHECKING:
        if (strcmp(st, "stopped") == 0) {
            if (refuse_unwilling(s) == 0)
                start_instance(s);
        } else if (strcmp(st, "stopping") == 0) {
            if (refuse_unwilling(s) == 0) {
                start_set_state(s, START_STOPPING, st);
                poll_later(s);
            }
        } else if (strcmp(st, "pending") == 0) {
            start_set_state(s, START_BOOTING, st); /* started by another */
            poll_later(s);
        } else {
            snprintf(why, sizeof(why), "instance %s is %s", s->instance, st);
            start_finish(s, GW_ENOT_FOUND, why);
        }
        return;
    case START_STOPPING:
        if (strcmp(st, "stopped") == 0)
            start_instance(s);
        else if (strcmp(st, "stopping") == 0)
            poll_later(s);
        else
            break;
        return;
    case START_BOOTING:
        if (strcmp(st, "running") == 0) {
            start_set_state(s, START_AGENT, st);
            describe_or_fail(s);
        } else if (strcmp(st, "pending") == 0) {
            poll_later(s);
        } else {
            break;
        }
        return;
    default:
        return;
    }
    snprintf(why, sizeof(why), "instance %s went %s while starting",
             s->instance, st);
    log_warn("start %s: %s", s->instance, why);
    start_finish(s, GW_EUNREACHABLE, why);
}

/* The state's one call: DescribeInstances, or DescribeInstanceInformation
 * once the instance runs. 0 or -1 (not even queued). */
static int describe(struct start *s)
{
    if (s->state == START_AGENT)
        s->call = aws_ssm_describe_instance(
            s->owner->aws, s->profile, s->region, s->instance, on_agent, s);
    else
        s->call = aws_ec2_describe_instances(
            s->owner->aws, s->profile, s->region,
            (const char *const[]){s->instance}, 1, 5, on_described, s);
    return s->call ? 0 : -1;
}

static void describe_or_fail(struct start *s)
{
    if (describe(s) < 0)
        start_finish(s, GW_ENOMEM, "cannot call DescribeInstances");
}

static void poll_fired(uv_timer_t *t)
{
    describe_or_fail(t->data);
}

static void deadline_fired(uv_timer_t *t)
{
    struct start *s = t->data;
    char why[GW_REASON_MAX];
    snprintf(why, sizeof(why),
             "instance %s did not come up within start_timeout_ms = %d "
             "(state %s%s)",
             s->instance, s->timeout_ms, s->ec2_state[0] ? s->ec2_state : "?",
             s->state == START_AGENT ? ", SSM Agent not online yet" : "");
    log_warn("start %s: %s", s->instance, why);
    start_finish(s, GW_ETIMEOUT, why);
}

static struct start *start_new(struct ssm_starts *st, const char *instance,
                               const char *profile, const char *region,
                               int timeout_ms)
{
    struct start *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->poll = malloc(sizeof(*s->poll));
    s->deadline = malloc(sizeof(*s->deadline));
    if (!s->poll || !s->deadline) {
        free(s->poll);
        free(s->deadline);
        free(s);
        return NULL;
    }
    s->owner = st;
    snprintf(s->instance, sizeof(s->instance), "%s", instance);
    snprintf(s->profile, sizeof(s->profile), "%s", profile);
    snprintf(s->region, sizeof(s->region), "%s", region);
    s->t0 = uv_now(st->loop);
    s->timeout_ms = timeout_ms;
    list_init(&s->waiters);
    uv_timer_init(st->loop, s->poll);
    uv_timer_init(st->loop, s->deadline);
    s->poll->data = s->deadline->data = s;
    list_insert_head(&st->starts, &s->link);
    log_info("start %s: TargetNotConnected: reading its state", instance);
    if (describe(s) < 0) {
        start_free(s);
        return NULL;
    }
    uv_timer_start(s->deadline, deadline_fired, (uint64_t)timeout_ms, 0);
    return s;
}

int ssm_start_wait(struct ssm_starts *st, const char *instance,
                   const char *profile, const char *region, int may_start,
                   int timeout_ms, ssm_start_cb *cb, void *arg,
                   struct ssm_start_wait **out)
{
    struct start *s = NULL;
    struct list *l, *tmp;
    LIST_FOREACH_SAFE (l, tmp, &st->starts) {
        struct start *x = CONTAINER_OF(l, struct start, link);
        if (strcmp(x->instance, instance) == 0 &&
            strcmp(x->profile, profile) == 0 && strcmp(x->region, region) == 0)
            s = x;
    }
    struct ssm_start_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return GW_ENOMEM;
    w->may_start = may_start;
    w->cb = cb;
    w->arg = arg;
    if (!s && !(s = start_new(st, instance, profile, region, timeout_ms))) {
        free(w);
        return GW_ENOMEM;
    }
    /* One that may not start it, joining a start under way, gets the
     * instance someone else is starting. */
    w->start = s;
    list_insert_tail(&s->waiters, &w->link);
    s->n_waiters++;
    *out = w;
    return 0;
}

void ssm_start_cancel(struct ssm_start_wait *w)
{
    struct start *s = w->start;
    list_remove(&w->link);
    s->n_waiters--;
    free(w);
    /* Nobody waits: the instance goes on booting, the polls stop (a
     * finishing start frees itself). */
    if (s->n_waiters == 0 && s->state != START_DONE) {
        log_info("start %s: no connection waits any more", s->instance);
        start_free(s);
    }
}

struct ssm_starts *ssm_starts_new(uv_loop_t *loop, struct aws_client *aws)
{
    struct ssm_starts *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->loop = loop;
    st->aws = aws;
    list_init(&st->starts);
    return st;
}

void ssm_starts_free(struct ssm_starts *st)
{
    if (!st)
        return;
    while (!list_empty(&st->starts)) {
        struct start *s = CONTAINER_OF(st->starts.next, struct start, link);
        while (!list_empty(&s->waiters)) {
            struct ssm_start_wait *w =
                CONTAINER_OF(s->waiters.next, struct ssm_start_wait, link);
            list_remove(&w->link);
            free(w);
        }
        start_free(s);
    }
    free(st);
}

void ssm_starts_foreach(const struct ssm_starts *st, ssm_start_fn *fn,
                        void *arg)
{
    if (!st)
        return;
    for (const struct list *l = st->starts.next; l != &st->starts;
         l = l->next) {
        const struct start *s = CONTAINER_OF(l, struct start, link);
        fn(arg, s->instance, s->ec2_state[0] ? s->ec2_state : "?",
           uv_now(st->loop) - s->t0, s->n_waiters);
    }
}
