/*
 * backend_ssm.c - Session Manager sessions behind the backend interface.
 *
 * The adapter between the front end's struct backend and ssm_session.c.
 * It owns the list of live sessions and decides who joins which: SSH
 * sessions carry one stream; port-forward sessions speak smux, so later
 * connections to the same (target, port, remote host, profile, region)
 * join the open session as new smux streams: one SYN, no API call. An
 * idle smux session lingers session_linger_ms for the next connection, then
 * it is terminated; every session ends with TerminateSession, made here
 * once the session's last flags went out. One keepalive timer walks the
 * sessions and sends NOPs where the agent expects them.
 */
#include "backend_ssm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws.h"
#include "aws_ssm.h"
#include "common.h"
#include "dc_channel.h"
#include "list.h"
#include "log.h"
#include "ssm_mode.h"
#include "ssm_names.h"
#include "ssm_session.h"
#include "stats.h"

struct backend_ssm {
    struct ssm_env env;
    struct ssm_opts opts;
    char reason_prefix[128];
    struct backend be;
    uint64_t next_id;
    struct list sessions;  /* live sessions, for sharing */
    uv_timer_t *keepalive; /* smux NOPs; own allocation, closed at free */
    struct list terms;     /* TerminateSession calls waiting for a flush */
    struct ssm_names names;
    struct ssm_starts *starts; /* stopped instances being started */
};

/* ---- TerminateSession after the flush ---- */

static void terminate_done(void *arg, int status, const struct aws_error *err)
{
    char *sid = arg;
    if (status != 0 && err != NULL)
        log_debug("TerminateSession %s: %s: %s", sid, err->code, err->message);
    free(sid);
}

/* A TerminateSession call made once the session's last flags are out:
 * called at the same moment, the API could end the session on the
 * agent before the flags (DisconnectToPort, TerminateSession) arrive. */
struct ssm_term {
    struct list link;      /* in b->terms */
    struct backend_ssm *b; /* NULL once the backend is gone */
    char session_id[AWS_SSM_SESSION_ID_MAX];
    char profile[TUNNEL_PROFILE_MAX];
    char region[64];
};

static void term_call(struct aws_client *aws, const char *session_id,
                      const char *profile, const char *region)
{
    char *sid = strdup(session_id);
    if (sid != NULL &&
        aws_ssm_terminate_session(aws, profile, region, session_id,
                                  terminate_done, sid) == NULL)
        free(sid);
}

static void term_after_flush(void *arg)
{
    struct ssm_term *t = arg;
    if (t->b != NULL) {
        list_remove(&t->link);
        term_call(t->b->env.aws, t->session_id, t->profile, t->region);
    }
    free(t);
}

/* env->on_ended: a session is done with its SSM session id. */
static void term_session(const char *session_id, const char *profile,
                         const char *region, struct dc_channel *flushing,
                         void *arg)
{
    struct backend_ssm *b = arg;
    struct ssm_term *t = flushing ? calloc(1, sizeof(*t)) : NULL;
    if (t == NULL) {
        if (flushing != NULL)
            dc_channel_free(flushing);
        term_call(b->env.aws, session_id, profile, region);
        return;
    }
    t->b = b;
    snprintf(t->session_id, sizeof(t->session_id), "%s", session_id);
    snprintf(t->profile, sizeof(t->profile), "%s", profile);
    snprintf(t->region, sizeof(t->region), "%s", region);
    list_insert_head(&b->terms, &t->link);
    dc_channel_free_after_flush(flushing, term_after_flush, t);
}

/* ---- sessions ---- */

/* env->on_idle: the last stream left; linger or end. */
static void session_idle(struct ssm_session *s, void *arg)
{
    struct backend_ssm *b = arg;
    if (ssm_session_lingers(s) && b->opts.session_linger_ms > 0)
        ssm_session_linger(s, (uint64_t)b->opts.session_linger_ms);
    else
        ssm_session_free(s);
}

static void keepalive_tick(uv_timer_t *t)
{
    struct backend_ssm *b = t->data;
    struct list *l, *tmp;
    int any = 0;
    LIST_FOREACH_SAFE (l, tmp, &b->sessions)
        any |= ssm_session_keepalive(ssm_session_from_link(l));
    if (!any)
        uv_timer_stop(t);
}

static void keepalive_closed(uv_handle_t *h)
{
    free(h);
}

static int same_target(const struct tunnel_spec *a, const struct tunnel_spec *b)
{
    return a->kind == b->kind && a->port == b->port &&
           strcmp(a->target, b->target) == 0 && strcmp(a->host, b->host) == 0 &&
           strcmp(a->profile, b->profile) == 0 &&
           strcmp(a->region, b->region) == 0;
}

/* The newest session spec may join, or NULL. */
static struct ssm_session *session_to_join(struct backend_ssm *b,
                                           const struct tunnel_spec *spec)
{
    struct list *l, *tmp;
    if (spec->kind != TUNNEL_SSM_PORT && spec->kind != TUNNEL_SSM_REMOTE)
        return NULL;
    LIST_FOREACH_SAFE (l, tmp, &b->sessions) {
        struct ssm_session *s = ssm_session_from_link(l);
        if (ssm_session_joinable(s) && same_target(ssm_session_spec(s), spec))
            return s;
    }
    return NULL;
}

/* ---- backend ops ---- */

static int ssm_open(void *ctx, uv_loop_t *loop, const struct tunnel_spec *spec,
                    const struct backend_cb *cb, void *arg,
                    struct backend_stream **out)
{
    struct backend_ssm *b = ctx;
    (void)loop; /* the backend's own loop: the same one */
    struct ssm_session *s = session_to_join(b, spec);
    int created = s == NULL;
    if (created) {
        if ((s = ssm_session_new(&b->env, spec)) == NULL)
            return GW_ENOMEM;
        /* Its mode is known at the handshake; the timer stops by itself
         * where no session wants NOPs. */
        if (!uv_is_active((uv_handle_t *)b->keepalive))
            uv_timer_start(b->keepalive, keepalive_tick, SSM_MODE_NOP_MS,
                           SSM_MODE_NOP_MS);
    }
    int rc = ssm_stream_new(s, spec->no_reply, cb, arg, out);
    if (rc != 0 && created)
        ssm_session_free(s);
    else if (rc == 0 && !created) /* a warm hit: no StartSession */
        stats_count(b->opts.stats, STATS_WARM_HITS);
    return rc;
}

/* The streams' own functions are the ops; only open picks a session. */
static const struct backend_ops ssm_ops = {
    .name = "ssm",
    .open = ssm_open,
    .write = ssm_stream_write,
    .shutdown = ssm_stream_shutdown,
    .pause = ssm_stream_pause,
    .resume = ssm_stream_resume,
    .close = ssm_stream_close,
    .shared_streams = ssm_stream_shared,
    .describe = ssm_stream_describe,
};

int backend_ssm_new(uv_loop_t *loop, struct aws_client *aws, struct ws_ctx *ws,
                    struct keypush *keys, const struct ssm_opts *opts,
                    struct backend_ssm **out)
{
    struct backend_ssm *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return GW_ENOMEM;
    if ((b->starts = ssm_starts_new(loop, aws)) == NULL) {
        free(b);
        return GW_ENOMEM;
    }
    b->env = (struct ssm_env){
        .loop = loop,
        .aws = aws,
        .ws = ws,
        .keys = keys,
        .opts = &b->opts,
        .names = &b->names,
        .starts = b->starts,
        .sessions = &b->sessions,
        .next_id = &b->next_id,
        .on_idle = session_idle,
        .on_ended = term_session,
        .arg = b,
    };
    list_init(&b->sessions);
    list_init(&b->terms);
    backend_ssm_set_opts(b, opts);
    b->be.ops = &ssm_ops;
    b->be.ctx = b;
    b->keepalive = malloc(sizeof(*b->keepalive));
    if (b->keepalive == NULL) {
        ssm_starts_free(b->starts);
        free(b);
        return GW_ENOMEM;
    }
    uv_timer_init(loop, b->keepalive);
    b->keepalive->data = b;
    *out = b;
    return 0;
}

void backend_ssm_set_opts(struct backend_ssm *b, const struct ssm_opts *opts)
{
    snprintf(b->reason_prefix, sizeof(b->reason_prefix), "%s",
             opts->reason_prefix ? opts->reason_prefix : "ssmgate");
    b->opts = *opts;
    b->opts.reason_prefix = b->reason_prefix; /* the copy outlives opts */
}

const struct backend *backend_ssm_backend(struct backend_ssm *b)
{
    return &b->be;
}

void backend_ssm_close_idle(struct backend_ssm *b)
{
    struct list *l, *tmp;
    LIST_FOREACH_SAFE (l, tmp, &b->sessions) {
        struct ssm_session *s = ssm_session_from_link(l);
        if (ssm_session_idle(s))
            ssm_session_free(s);
    }
}

int backend_ssm_sessions(const struct backend_ssm *b)
{
    return b != NULL ? (int)list_count(&b->sessions) : 0;
}

int backend_ssm_terminating(const struct backend_ssm *b)
{
    return b != NULL ? (int)list_count(&b->terms) : 0;
}

void backend_ssm_foreach_start(const struct backend_ssm *b, ssm_start_fn *fn,
                               void *arg)
{
    if (b != NULL)
        ssm_starts_foreach(b->starts, fn, arg);
}

void backend_ssm_free(struct backend_ssm *b)
{
    if (b == NULL)
        return;
    /* Lingering idle sessions: terminate them now. */
    while (!list_empty(&b->sessions))
        ssm_session_free(ssm_session_from_link(b->sessions.next));
    uv_close((uv_handle_t *)b->keepalive, keepalive_closed);
    ssm_starts_free(b->starts); /* no session waits any more */
    /* Sockets still flushing: their TerminateSession calls go now. */
    struct list *l, *tmp;
    LIST_FOREACH_SAFE (l, tmp, &b->terms) {
        struct ssm_term *t = CONTAINER_OF(l, struct ssm_term, link);
        list_remove(&t->link);
        term_call(b->env.aws, t->session_id, t->profile, t->region);
        t->b = NULL; /* term_after_flush frees it later */
    }
    free(b);
}
