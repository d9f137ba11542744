/*
 * backend_ssm.c - Session Manager sessions behind the backend interface.
 *
 * The adapter between the front end's struct backend and ssm_session.c.
 * It owns the list of live sessions and decides who joins which.
 * Port-forward sessions speak smux, so later connections to the same
 * (target, port, remote host, profile, region) join an open session as new
 * smux streams: one SYN, no API call. ssh rides such a session to the ssh
 * port too (ssh_document auto or port-forward), its key pushed per
 * connection; AWS-StartSSHSession sessions (ssh_document = ssh, or auto
 * after the port-forward document was denied for the profile and region,
 * remembered here) carry one connection each.
 *
 * One target's connections spread over up to sessions_per_target sessions,
 * since the service paces each session (~1000 messages/s): a connection
 * goes to the session with the fewest busy streams (opening, young, or
 * moving bytes: ssm_stream_busy), a new session is started only when every one
 * already carries a busy stream, and idle connections pack onto the
 * fullest idle session so that empty ones age out. An idle session
 * lingers session_linger_ms for the next connection, then it is
 * terminated; every session ends with TerminateSession, made here once
 * the session's last flags went out. One keepalive timer walks the
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
    struct list denied;    /* profiles+regions where ssh uses its own doc */
    struct ssm_names names;
    struct ssm_starts *starts; /* stopped instances being started */
};

/* ---- where ssh may not use the port-forward document ---- */

struct ssh_denied {
    struct list link; /* in b->denied */
    char profile[TUNNEL_PROFILE_MAX];
    char region[TUNNEL_REGION_MAX];
};

static struct ssh_denied *denied_find(struct backend_ssm *b,
                                      const char *profile, const char *region)
{
    struct list *l, *tmp;
    LIST_FOREACH_SAFE (l, tmp, &b->denied) {
        struct ssh_denied *d = CONTAINER_OF(l, struct ssh_denied, link);
        if (strcmp(d->profile, profile) == 0 && strcmp(d->region, region) == 0)
            return d;
    }
    return NULL;
}

/* env->on_denied: said once per profile and region. */
static void ssh_denied(const char *profile, const char *region, const char *why,
                       void *arg)
{
    struct backend_ssm *b = arg;
    if (denied_find(b, profile, region) != NULL)
        return;
    struct ssh_denied *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return;
    snprintf(d->profile, sizeof(d->profile), "%s", profile);
    snprintf(d->region, sizeof(d->region), "%s", region);
    list_insert_head(&b->denied, &d->link);
    log_warn("profile %s%s%s: StartSession with AWS-StartPortForwardingSession "
             "denied (%s); ssh uses AWS-StartSSHSession, one session per "
             "connection, from now on (ssh_document = auto)",
             profile[0] ? profile : "(default)", region[0] ? ", region " : "",
             region, why);
}

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

/* The session a new connection for spec joins, or NULL for a new one:
 * the least busy of its target's sessions (ties: the one with the most
 * connections, so idle ones pack and empty ones linger out), unless every
 * one is busy and there is room for another. */
static struct ssm_session *session_to_join(struct backend_ssm *b,
                                           const struct tunnel_spec *spec)
{
    struct list *l, *tmp;
    if (spec->kind != TUNNEL_SSM_PORT && spec->kind != TUNNEL_SSM_REMOTE)
        return NULL;
    int cap = spec->sessions_max > 0 ? spec->sessions_max
                                     : b->opts.sessions_per_target;
    struct ssm_session *best = NULL;
    int n = 0, best_busy = 0, best_streams = 0;
    LIST_FOREACH_SAFE (l, tmp, &b->sessions) {
        struct ssm_session *s = ssm_session_from_link(l);
        if (!ssm_session_joinable(s) || !same_target(ssm_session_spec(s), spec))
            continue;
        struct ssm_session_info i;
        ssm_session_info(s, &i);
        n++;
        if (best == NULL || i.busy < best_busy ||
            (i.busy == best_busy && (i.busy == 0 ? i.streams > best_streams
                                                 : i.streams < best_streams))) {
            best = s;
            best_busy = i.busy;
            best_streams = i.streams;
        }
    }
    if (best != NULL && best_busy > 0 && n < cap) {
        log_debug("ssm: %s port %u: all %d session%s busy, starting another",
                  spec->target, spec->port, n, n == 1 ? "" : "s");
        return NULL;
    }
    return best;
}

/* ---- backend ops ---- */

static int ssm_open(void *ctx, uv_loop_t *loop, const struct tunnel_spec *spec,
                    const struct backend_cb *cb, void *arg,
                    struct backend_stream **out)
{
    struct backend_ssm *b = ctx;
    (void)loop; /* the backend's own loop: the same one */
    /* ssh: over a port forward to the ssh port unless told otherwise or
     * denied before; the key push is the stream's either way. */
    struct tunnel_spec sp = *spec;
    int fallback = 0;
    if (spec->kind == TUNNEL_SSM_SSH) {
        int doc = b->opts.ssh_document;
        if (doc == SSM_SSH_DOC_AUTO &&
            denied_find(b, spec->profile, spec->region) != NULL)
            doc = SSM_SSH_DOC_SSH;
        if (doc != SSM_SSH_DOC_SSH) {
            sp.kind = TUNNEL_SSM_PORT;
            sp.host[0] = '\0';
            fallback = doc == SSM_SSH_DOC_AUTO;
        }
    }
    struct ssm_session *s = session_to_join(b, &sp);
    int created = s == NULL;
    if (created) {
        if ((s = ssm_session_new(&b->env, &sp, fallback)) == NULL)
            return GW_ENOMEM;
        /* Its mode is known at the handshake; the timer stops by itself
         * where no session wants NOPs. */
        if (!uv_is_active((uv_handle_t *)b->keepalive))
            uv_timer_start(b->keepalive, keepalive_tick, SSM_MODE_NOP_MS,
                           SSM_MODE_NOP_MS);
    }
    int rc = ssm_stream_new(s, spec->no_reply,
                            spec->kind == TUNNEL_SSM_SSH ? spec->user : NULL,
                            cb, arg, out);
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
        .on_denied = ssh_denied,
        .arg = b,
    };
    list_init(&b->sessions);
    list_init(&b->terms);
    list_init(&b->denied);
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

void backend_ssm_foreach_session(struct backend_ssm *b,
                                 backend_ssm_session_cb *cb, void *arg)
{
    struct list *l, *tmp;
    LIST_FOREACH_SAFE (l, tmp, &b->sessions) {
        struct ssm_session_info i;
        ssm_session_info(ssm_session_from_link(l), &i);
        cb(&i, arg);
    }
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
    while (!list_empty(&b->denied)) {
        struct ssh_denied *d =
            CONTAINER_OF(b->denied.next, struct ssh_denied, link);
        list_remove(&d->link);
        free(d);
    }
    free(b);
}
