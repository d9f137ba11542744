/*
 * ssm_session.c - the life of one SSM session:
 *
 *   RESOLVING -> STARTING -> OPENING -> OPEN <-> RESUMING
 *        \___________\___________\_______\_________\__-> CLOSED
 *
 * RESOLVING only for a Name target not in the cache; STARTING runs the
 * key push (SSH) beside StartSession; a TargetNotConnected answer for an
 * instance id is WAKING while ssm_start finds out whether the instance is
 * stopped, starts it (start_stopped) and waits for its agent, then
 * STARTING again; OPENING signs the WebSocket upgrade
 * and waits for the handshake, which fixes the mode (ssm_mode_for); a
 * dropped WebSocket is RESUMING (ResumeSession, reconnect, replay) within
 * the resume budget. Every change goes through session_set_state. The
 * session ends by handing its TerminateSession to the owner (on_ended);
 * its memory goes when the last stream closed and its timer's close
 * callback ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws.h"
#include "aws_ssm.h"
#include "common.h"
#include "dc_channel.h"
#include "keypush.h"
#include "log.h"
#include "secret.h"
#include "ssm_names.h"
#include "ssm_start.h"
#include "ssm_stream.h"
#include "stats.h"
#include "ws.h"

static const char *const ssm_state_names[] = {
    [SSM_RESOLVING] = "resolving", [SSM_STARTING] = "starting",
    [SSM_WAKING] = "waking",       [SSM_OPENING] = "opening",
    [SSM_OPEN] = "open",           [SSM_RESUMING] = "resuming",
    [SSM_CLOSED] = "closed",
};

static void session_set_state(struct ssm_session *s, enum ssm_state next,
                              const char *why)
{
    log_debug("ssm %llu: state %s -> %s (%s)", (unsigned long long)s->id,
              ssm_state_names[s->state], ssm_state_names[next], why);
    s->state = next;
}

int ssm_session_live(const struct ssm_session *s)
{
    return s->state == SSM_OPEN || s->state == SSM_RESUMING;
}

/* ---- ending ---- */

/* Ends the AWS side: pending calls, the closing flag, the channel, and
 * TerminateSession (the owner's, after the flag is out). */
static void session_release(struct ssm_session *s, const char *why)
{
    if (s->call != NULL) {
        aws_call_cancel(s->call);
        s->call = NULL;
    }
    if (s->wake != NULL) {
        ssm_start_cancel(s->wake);
        s->wake = NULL;
    }
    struct dc_channel *flushing = NULL;
    if (s->ch != NULL && ssm_session_live(s) && s->session_id[0] != '\0') {
        if (s->mode.terminate_flag)
            dc_channel_send_flag(s->ch, DC_FLAG_TERMINATE_SESSION);
        flushing = s->ch; /* transferred */
        s->ch = NULL;
    }
    if (s->ch != NULL) {
        dc_channel_free(s->ch);
        s->ch = NULL;
    }
    if (s->session_id[0] != '\0') {
        s->env->on_ended(s->session_id, s->spec.profile, s->region, flushing,
                         s->env->arg);
        s->session_id[0] = '\0';
    }
    if (s->state != SSM_CLOSED)
        session_set_state(s, SSM_CLOSED, why);
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->fin_timer);
    uv_timer_stop(&s->hold_timer);
}

static void session_timer_closed(uv_handle_t *h)
{
    struct ssm_session *s = h->data;
    if (--s->handles_open > 0)
        return;
    smux_ctrl_free(&s->ctrl);
    secret_free_str(s->token);
    free(s->wake_why);
    free(s);
}

void ssm_session_close_timer(struct ssm_session *s)
{
    if (s->timer_closing)
        return;
    s->timer_closing = 1;
    defer_cancel(&s->start);
    uv_close((uv_handle_t *)&s->timer, session_timer_closed);
    uv_close((uv_handle_t *)&s->fin_timer, session_timer_closed);
    uv_close((uv_handle_t *)&s->hold_timer, session_timer_closed);
}

void ssm_session_free(struct ssm_session *s)
{
    list_remove(&s->link);
    session_release(s, "ended");
    ssm_session_close_timer(s);
}

/* The session broke: every stream hears it at once (an open one as
 * on_error, one still waiting as its on_open error), and the streams'
 * close() ends it. One line says why, with the service's or agent's
 * words; each connection then logs its own close. */
void ssm_session_fail(struct ssm_session *s, int err, const char *why)
{
    if (s->state == SSM_CLOSED)
        return;
    /* The service's own end (channel_closed: TerminateSession, an idle
     * timeout, an SSH session whose sshd closed) is news, not a fault. */
    if (s->opened && s->n_streams > 0)
        log_msg(s->by_service ? LOG_INFO : LOG_WARN, NULL,
                "ssm %llu: session %s ended, closing its %d connection%s: %s",
                (unsigned long long)s->id, s->session_id, s->n_streams,
                s->n_streams == 1 ? "" : "s", why);
    else
        log_debug("ssm %llu: %s", (unsigned long long)s->id, why);
    if (s->state == SSM_RESUMING)
        stats_count(s->env->opts->stats, STATS_RESUMES_FAILED);
    list_remove(&s->link); /* nobody new joins a broken session */
    session_release(s, "failed");
    /* An open stream hears GW_ECLOSED for the ordinary end of a session
     * of one connection (channel_closed: the SSH session whose sshd
     * closed), GW_EREFUSED for a destination that refused, GW_EIO for a
     * tunnel that broke under it. */
    int open_err = err == GW_EREFUSED              ? GW_EREFUSED
                   : s->by_service && !s->mode.mux ? GW_ECLOSED
                                                   : GW_EIO;
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    ssm_stream_fail(st, st->reported ? open_err : err, why);
    if (s->n_streams == 0)
        ssm_session_close_timer(s);
}

/* An AWS call failed: its code and message, whole, become the reason. */
static void fail_aws(struct ssm_session *s, const char *what, int status,
                     const struct aws_error *e)
{
    char why[GW_REASON_MAX], buf[GW_REASON_MAX];
    if (e != NULL && e->code[0] != '\0')
        snprintf(why, sizeof(why), "%s: %s: %s", what, e->code,
                 e->message[0] ? e->message : "(no message)");
    else
        snprintf(why, sizeof(why), "%s: %s", what,
                 e ? aws_error_str(e, buf, sizeof(buf)) : gw_strerror(status));
    ssm_session_fail(s, aws_ssm_error_to_gw(status, e), why);
}

/* ---- open ---- */

static void maybe_report_open(struct ssm_session *s)
{
    if (s->opened || !s->ready || s->state == SSM_CLOSED)
        return;
    s->opened = 1;
    session_set_state(s, SSM_OPEN, "handshake done");
    ssm_session_open_streams(s);
}

/* Every connection but the first gets a session of its own (the same
 * spec), why for the log. */
static void session_split(struct ssm_session *s, const char *why)
{
    /* The list is newest first: the first connection is at the tail. */
    struct list *first = s->streams.prev;
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    {
        if (&st->link == first || st->dead)
            continue;
        struct ssm_session *n = ssm_session_new(s->env, &s->spec, s->fallback);
        if (n == NULL) {
            ssm_stream_fail(st, GW_ENOMEM, "out of memory");
            continue;
        }
        list_remove(&st->link);
        s->n_streams--;
        st->sess = n;
        st->joined = 0; /* it starts a session of its own */
        list_insert_head(&n->streams, &st->link);
        n->n_streams = 1;
        log_debug("ssm %llu: %s: connection moved to session %llu",
                  (unsigned long long)s->id, why, (unsigned long long)n->id);
    }
}

/* A basic session carries one connection: connections that joined while
 * the mode was unknown get sessions of their own. Such a session is never
 * reused: after DisconnectToPort the agent redials only when the client
 * sends, which would hang protocols where the server speaks first (SSH,
 * MySQL). And when the destination closes first the agent says nothing
 * (it waits for client data to redial), so the local connection stays
 * open until the client ends it: a limit of the protocol. */
static void session_split_basic(struct ssm_session *s)
{
    session_split(s, "basic mode");
}

/* ---- the data channel ---- */

static void session_handshake(void *arg, const struct dc_handshake_request *hs)
{
    struct ssm_session *s = arg;
    ssm_mode_for(hs->properties_type, hs->agent_version, &s->mode);
    log_debug("ssm %llu: handshake done: agent %s, %s mode%s",
              (unsigned long long)s->id, hs->agent_version,
              ssm_mode_name(&s->mode),
              s->mode.keepalive ? " with keepalive" : "");
    if (s->mode.basic)
        session_split_basic(s);
    s->ready = 1;
    maybe_report_open(s);
}

static void session_data(void *arg, const uint8_t *p, size_t n)
{
    ssm_session_input(arg, p, n);
}

static void session_flag(void *arg, uint32_t flag)
{
    struct ssm_session *s = arg;
    if (flag != DC_FLAG_CONNECT_TO_PORT_ERROR)
        return;
    char dest[TUNNEL_HOST_MAX + TUNNEL_TARGET_MAX + 64], why[GW_REASON_MAX];
    ssm_session_dest(s, dest, sizeof(dest));
    snprintf(why, sizeof(why),
             "%s refused the connection (ConnectToPortError from the agent)",
             dest);
    if (!s->mode.mux) {
        ssm_session_fail(s, GW_EREFUSED, why);
        return;
    }
    log_warn("ssm %llu: %s", (unsigned long long)s->id, why);
    /* The flag names no stream; the FIN that follows does (rx_fin):
     * the first stream that ends without a byte from its destination. */
    s->port_errors++;
}

static void session_writable(void *arg)
{
    ssm_session_writable(arg);
}

static void session_acked(void *arg)
{
    struct ssm_session *s = arg;
    if (s->n_holding > 0)
        ssm_session_hold_check(s);
    /* Held client EOFs: their quiet starts once the agent has it all. */
    if (uv_is_active((uv_handle_t *)&s->fin_timer))
        ssm_session_fin_check(s);
}

/* channel_closed (the service ended the session: TerminateSession, an
 * idle timeout, the agent's end) or a failed handshake: nothing can
 * reach the destination any more, so every connection closes now (what
 * already arrived is still written to the client first). With one
 * connection per session, an end before the destination said anything
 * while the report is held is the agent's failed dial. */
static void session_closed(void *arg, const char *reason)
{
    struct ssm_session *s = arg;
    s->by_service = 1;
    struct backend_stream *st =
        list_empty(&s->streams)
            ? NULL
            : CONTAINER_OF(s->streams.next, struct backend_stream, link);
    /* Nothing went either way: the dial failed ([forward] ports do not
     * hold the report, but their log should still say so). */
    if (s->opened && !s->mode.mux && st != NULL &&
        (st->holding || (!st->heard && !st->wrote))) {
        char dest[TUNNEL_HOST_MAX + TUNNEL_TARGET_MAX + 64];
        char why[GW_REASON_MAX];
        ssm_session_dest(s, dest, sizeof(dest));
        snprintf(why, sizeof(why),
                 "%s refused the connection or closed before sending "
                 "anything (%s)",
                 dest, reason);
        ssm_session_fail(s, GW_EREFUSED, why);
        return;
    }
    ssm_session_fail(s, s->opened ? GW_ECLOSED : GW_EUNREACHABLE, reason);
}

/* ---- resume ---- */

static void resume_now(struct ssm_session *s);

static void resume_timer_fired(uv_timer_t *t)
{
    resume_now(t->data);
}

static void resume_retry(struct ssm_session *s, const char *why)
{
    uint64_t now = uv_now(s->env->loop);
    uint64_t delay = 100ull << GW_MIN(s->resume_attempt, 6);
    if (delay > 5000)
        delay = 5000;
    if (now + delay >= s->resume_deadline) {
        char msg[GW_REASON_MAX];
        snprintf(msg, sizeof(msg),
                 "could not resume the session within %d ms: %s",
                 s->env->opts->resume_budget_ms, why);
        ssm_session_fail(s, GW_ECLOSED, msg);
        return;
    }
    s->resume_attempt++;
    uv_timer_start(&s->timer, resume_timer_fired, delay, 0);
}

static void session_lost(void *arg, const char *reason)
{
    struct ssm_session *s = arg;
    if (!s->opened) {
        ssm_session_fail(s, GW_EUNREACHABLE, reason);
        return;
    }
    if (s->state == SSM_RESUMING) {
        resume_retry(s, reason);
        return;
    }
    log_info("ssm %llu: data channel lost (%s); resuming session %s",
             (unsigned long long)s->id, reason, s->session_id);
    session_set_state(s, SSM_RESUMING, "data channel lost");
    s->resume_attempt = 0;
    s->resume_deadline =
        uv_now(s->env->loop) + (uint64_t)s->env->opts->resume_budget_ms;
    resume_now(s);
}

static void session_reopened(void *arg)
{
    struct ssm_session *s = arg;
    if (s->state != SSM_RESUMING)
        return;
    log_info("ssm %llu: session %s resumed", (unsigned long long)s->id,
             s->session_id);
    s->resumes++;
    stats_count(s->env->opts->stats, STATS_RESUMES_OK);
    session_set_state(s, SSM_OPEN, "resumed");
    uv_timer_stop(&s->timer); /* the budget's deadline */
    if (s->local_eof)         /* stream mode: the drain check goes on */
        uv_timer_start(&s->timer, ssm_session_drain_check, 0, 100);
    else if (ssm_session_lingers(s)) /* the resume took the linger timer */
        s->env->on_idle(s, s->env->arg);
}

static const struct dc_channel_cb session_channel_cb = {
    .on_ready = session_handshake,
    .on_data = session_data,
    .on_flag = session_flag,
    .on_writable = session_writable,
    .on_reopened = session_reopened,
    .on_lost = session_lost,
    .on_closed = session_closed,
    .on_acked = session_acked,
};

/* The upgrade request is signed (service ssmmessages): (re)connect. */
static void on_signed(void *arg, int status,
                      const struct aws_ssm_stream_auth *auth,
                      const struct aws_error *err)
{
    struct ssm_session *s = arg;
    int resuming = s->state == SSM_RESUMING;
    s->call = NULL;
    if (status != 0 && resuming) {
        resume_retry(s, "no credentials");
        return;
    }
    if (status != 0) {
        fail_aws(s, "credentials", status, err);
        return;
    }
    snprintf(s->region, sizeof(s->region), "%s", auth->region);
    struct ws_header h[AWS_SSM_AUTH_MAX];
    size_t nh = 0;
    for (; nh < auth->n; nh++)
        h[nh] = (struct ws_header){auth->name[nh], auth->value[nh]};
    if (s->ch == NULL) {
        const struct ssm_opts *op = s->env->opts;
        struct dc_channel_opts o = {op->message_rate, op->payload_size,
                                    op->handshake_timeout_ms,
                                    (unsigned long long)s->id, op->stats};
        if (dc_channel_new(s->env->loop, s->env->ws, &o, &session_channel_cb, s,
                           &s->ch) != 0) {
            ssm_session_fail(s, GW_ENOMEM, "out of memory");
            return;
        }
    }
    int rc = dc_channel_connect(s->ch, s->stream_url, h, nh, s->token);
    secret_wipe_str(s->token); /* single-use */
    if (rc != 0) {
        if (s->state == SSM_RESUMING)
            resume_retry(s, "cannot reconnect the WebSocket");
        else
            ssm_session_fail(s, GW_EUNREACHABLE,
                             "cannot open the data channel");
        return;
    }
    /* Still resuming until the socket is open (session_reopened): a
     * connect that fails must count against the budget and back off. */
}

static int take_session(struct ssm_session *s,
                        const struct aws_ssm_session *sess)
{
    if (sess->stream_url[0] != '\0')
        snprintf(s->stream_url, sizeof(s->stream_url), "%s", sess->stream_url);
    secret_free_str(s->token);
    s->token = strdup(sess->token);
    return s->token != NULL ? 0 : GW_ENOMEM;
}

static void on_resumed(void *arg, int status,
                       const struct aws_ssm_session *sess,
                       const struct aws_error *err)
{
    struct ssm_session *s = arg;
    s->call = NULL;
    /* The session is gone for good, or this try failed. */
    int gone = err != NULL && strcmp(err->code, "DoesNotExistException") == 0;
    if (status != 0 && gone) {
        fail_aws(s, "ResumeSession", status, err);
        return;
    }
    if (status != 0) {
        resume_retry(s, err ? err->code : gw_strerror(status));
        return;
    }
    if (sess->token[0] == '\0') {
        ssm_session_fail(s, GW_ECLOSED,
                         "the session ended: terminated or timed out "
                         "(ResumeSession returned no token)");
        return;
    }
    take_session(s, sess);
    s->call = aws_ssm_sign_stream_url(s->env->aws, s->spec.profile, s->region,
                                      s->stream_url, on_signed, s);
}

/* The budget holds whatever one attempt does: an API call or a socket
 * that hangs ends the session at the deadline, not at its own timeout. */
static void resume_expired(uv_timer_t *t)
{
    struct ssm_session *s = t->data;
    if (s->state != SSM_RESUMING)
        return;
    char msg[GW_REASON_MAX];
    snprintf(msg, sizeof(msg),
             "could not resume the session within %d ms: no answer in time",
             s->env->opts->resume_budget_ms);
    ssm_session_fail(s, GW_ECLOSED, msg);
}

static void resume_now(struct ssm_session *s)
{
    if (s->state != SSM_RESUMING)
        return;
    uint64_t now = uv_now(s->env->loop);
    uv_timer_start(&s->timer, resume_expired,
                   s->resume_deadline > now ? s->resume_deadline - now : 0, 0);
    s->call = aws_ssm_resume_session(s->env->aws, s->spec.profile, s->region,
                                     s->session_id, on_resumed, s);
    if (s->call == NULL)
        resume_retry(s, "cannot call ResumeSession");
}

/* ---- start ---- */

void ssm_stream_push_reset(struct backend_stream *st)
{
    if (st->push != NULL) {
        keypush_cancel(st->push);
        st->push = NULL;
    }
    st->push_started = st->push_pending = st->push_status = 0;
}

static void start_session(struct ssm_session *s);

/* ssm_start's word on a TargetNotConnected instance. */
static void on_woken(void *arg, int status, const char *why)
{
    struct ssm_session *s = arg;
    char msg[GW_REASON_MAX];
    s->wake = NULL;
    if (status == 0) {
        log_info("ssm %llu: instance %s is up: starting the session again",
                 (unsigned long long)s->id, s->instance);
        start_session(s);
        return;
    }
    if (status == GW_ENOT_FOUND) { /* not stopped: StartSession's error */
        if (why != NULL && why[0] != '\0')
            log_debug("ssm %llu: %s", (unsigned long long)s->id, why);
        ssm_session_fail(s, GW_EUNREACHABLE,
                         s->wake_why ? s->wake_why : "StartSession failed");
        return;
    }
    snprintf(msg, sizeof(msg), "%s", why ? why : gw_strerror(status));
    ssm_session_fail(s, status == GW_ETIMEOUT ? GW_ETIMEOUT : GW_EUNREACHABLE,
                     msg);
}

/* TargetNotConnected for an instance: it may be stopped. 1 when the
 * session now waits for ssm_start's answer. */
static int wake_instance(struct ssm_session *s, const struct aws_error *err)
{
    if (s->woken || s->env->starts == NULL || err == NULL ||
        strcmp(err->code, "TargetNotConnected") != 0 ||
        strncmp(s->instance, "i-", 2) != 0)
        return 0;
    s->woken = 1;
    tunnel_reason_set(&s->wake_why, "StartSession: %s: %s", err->code,
                      err->message[0] ? err->message : "(no message)");
    /* The key pushes raced StartSession to a stopped instance and lost;
     * they run again with the next StartSession. */
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    ssm_stream_push_reset(st);
    if (ssm_start_wait(s->env->starts, s->instance, s->spec.profile,
                       s->spec.region, s->spec.start_stopped,
                       s->spec.start_timeout_ms, on_woken, s, &s->wake) != 0)
        return 0;
    session_set_state(s, SSM_WAKING, "TargetNotConnected");
    /* Also without start_stopped: an instance someone else is starting
     * is waited for (a stopped one is refused at once). */
    SSM_STREAM_FOREACH(st, tmp, s)
    if (st->cb->on_wait != NULL && !st->reported)
        st->cb->on_wait(st->arg, (uint64_t)s->spec.start_timeout_ms,
                        "its instance may be starting");
    return 1;
}

/* The port-forward document, not the instance, was denied: an IAM policy
 * that allows ssh only through AWS-StartSSHSession. */
static int document_denied(const struct aws_error *err)
{
    return err != NULL && strcmp(err->code, "AccessDeniedException") == 0 &&
           (strstr(err->message, "AWS-StartPortForwardingSession") != NULL ||
            strstr(err->message, "instance/") == NULL);
}

/* ssh_document = auto: the session and each connection that waited on it
 * go over AWS-StartSSHSession, one session per connection; the owner
 * remembers the answer for the profile and region. */
static void fall_back_to_ssh(struct ssm_session *s, const struct aws_error *err)
{
    char why[GW_REASON_MAX];
    snprintf(why, sizeof(why), "%s: %s", err->code,
             err->message[0] ? err->message : "(no message)");
    s->env->on_denied(s->spec.profile, s->spec.region, why, s->env->arg);
    s->fallback = 0;
    s->shareable = 0;
    s->spec.kind = TUNNEL_SSM_SSH;
    session_split(s, "AWS-StartSSHSession");
    start_session(s);
}

static void on_started(void *arg, int status,
                       const struct aws_ssm_session *sess,
                       const struct aws_error *err)
{
    struct ssm_session *s = arg;
    s->call = NULL;
    if (status != 0 && s->fallback && document_denied(err)) {
        fall_back_to_ssh(s, err);
        return;
    }
    if (status != 0) {
        /* TargetNotConnected, InvalidInstanceId, a terminated instance: the
         * Name may point elsewhere now. */
        if (s->spec.target_is_name &&
            aws_ssm_error_to_gw(status, err) == GW_EUNREACHABLE)
            ssm_names_forget(s->env->names, s->spec.target, s->spec.profile,
                             s->spec.region);
        if (wake_instance(s, err))
            return;
        fail_aws(s, "StartSession", status, err);
        return;
    }
    snprintf(s->session_id, sizeof(s->session_id), "%s", sess->session_id);
    snprintf(s->started_id, sizeof(s->started_id), "%s", sess->session_id);
    if (take_session(s, sess) != 0) {
        ssm_session_fail(s, GW_ENOMEM, "out of memory");
        return;
    }
    log_debug("ssm %llu: session %s started", (unsigned long long)s->id,
              s->session_id);
    session_set_state(s, SSM_OPENING, "StartSession done");
    s->call =
        aws_ssm_sign_stream_url(s->env->aws, s->spec.profile, s->spec.region,
                                s->stream_url, on_signed, s);
}

/* A stream's key push answered: its open report may go. A failure is
 * kept for that moment, so that the session's own failure (StartSession's
 * answer, which comes at about the same time) is the one reported. */
static void on_pushed(void *arg, int status, const struct aws_error *err)
{
    struct backend_stream *st = arg;
    struct ssm_session *s = st->sess;
    st->push = NULL;
    st->push_pending = 0;
    if (status != 0) {
        if (err != NULL && err->code[0] != '\0')
            tunnel_reason_set(&st->notify_why,
                              "SendSSHPublicKey for %s@%s: %s: %s", st->user,
                              s->instance, err->code, err->message);
        else
            tunnel_reason_set(&st->notify_why, "SendSSHPublicKey for %s@%s: %s",
                              st->user, s->instance, gw_strerror(status));
        int rc = aws_ssm_error_to_gw(status, err);
        st->push_status = rc == GW_EAWS ? GW_EDENIED : rc;
    }
    if (st->open_waits) {
        st->open_waits = 0;
        ssm_stream_report(st, 0, NULL);
    }
}

void ssm_stream_push_key(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    const struct ssm_env *env = s->env;
    if (st->push_started || st->user[0] == '\0' || s->instance[0] == '\0' ||
        st->dead)
        return;
    st->push_started = 1;
    if (env->keys == NULL)
        return;
    if (strncmp(s->instance, "i-", 2) != 0) {
        log_debug("ssm %llu: %s is a managed node: no key push; the user's "
                  "own keys apply",
                  (unsigned long long)s->id, s->instance);
        return;
    }
    st->push_pending = 1;
    if (keypush_start(env->keys, s->spec.profile, s->spec.region, s->instance,
                      st->user, on_pushed, st, &st->push) != 0) {
        st->push_pending = 0;
        ssm_stream_fail(st, GW_ENOMEM, "cannot start the key push");
    }
}

static void start_session(struct ssm_session *s)
{
    const struct ssm_env *env = s->env;
    char port[8], reason[256];
    session_set_state(s, SSM_STARTING, s->instance);
    /* Key pushes run alongside StartSession, so they cost no time. */
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    ssm_stream_push_key(st);
    snprintf(port, sizeof(port), "%u", s->spec.port);
    snprintf(reason, sizeof(reason), "%s via %s", env->opts->reason_prefix,
             s->spec.label[0] ? s->spec.label : "SOCKS");
    struct aws_ssm_start req = {
        .target = s->instance,
        .document = tunnel_document(s->spec.kind),
        .port_number = port,
        .host = s->spec.kind == TUNNEL_SSM_REMOTE ? s->spec.host : NULL,
        .reason = reason,
    };
    s->call = aws_ssm_start_session(env->aws, s->spec.profile, s->spec.region,
                                    &req, on_started, s);
    if (s->call == NULL)
        ssm_session_fail(s, GW_ENOMEM, "cannot call StartSession");
}

static void on_resolved(void *arg, int status,
                        const struct aws_ssm_instance *list, size_t n,
                        const struct aws_error *err)
{
    struct ssm_session *s = arg;
    s->call = NULL;
    char why[GW_REASON_MAX];
    if (status != 0) {
        fail_aws(s, "DescribeInstanceInformation", status, err);
        return;
    }
    if (n == 0) {
        snprintf(why, sizeof(why), "no managed instance is named %s",
                 s->spec.target);
        ssm_session_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    if (n > 1) {
        int o = snprintf(why, sizeof(why), "%zu instances are named %s:", n,
                         s->spec.target);
        for (size_t i = 0; i < n && o < (int)sizeof(why) - 40; i++)
            o += snprintf(why + o, sizeof(why) - (size_t)o, " %s",
                          list[i].instance_id);
        ssm_session_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    if (strcmp(list[0].ping_status, "Online") != 0) {
        snprintf(why, sizeof(why),
                 "%s (%s) is not online: its SSM Agent "
                 "ping status is %s",
                 s->spec.target, list[0].instance_id, list[0].ping_status);
        ssm_session_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    snprintf(s->instance, sizeof(s->instance), "%s", list[0].instance_id);
    ssm_names_put(s->env->names, s->spec.target, s->spec.profile,
                  s->spec.region, s->instance, uv_now(s->env->loop));
    log_debug("ssm %llu: %s is %s", (unsigned long long)s->id, s->spec.target,
              s->instance);
    start_session(s);
}

/* The first step, from the loop: on_open must never run inside open(). */
static void open_deferred(struct defer *d)
{
    struct ssm_session *s = CONTAINER_OF(d, struct ssm_session, start);
    const char *cached =
        s->spec.target_is_name
            ? ssm_names_get(s->env->names, s->spec.target, s->spec.profile,
                            s->spec.region, uv_now(s->env->loop))
            : NULL;
    if (cached != NULL) {
        snprintf(s->instance, sizeof(s->instance), "%s", cached);
        start_session(s);
        return;
    }
    if (s->spec.target_is_name) {
        session_set_state(s, SSM_RESOLVING, s->spec.target);
        s->call =
            aws_ssm_find_by_name(s->env->aws, s->spec.profile, s->spec.region,
                                 s->spec.target, on_resolved, s);
        if (s->call == NULL)
            ssm_session_fail(s, GW_ENOMEM,
                             "cannot call DescribeInstanceInformation");
        return;
    }
    snprintf(s->instance, sizeof(s->instance), "%s", s->spec.target);
    start_session(s);
}

/* ---- for the owner ---- */

struct ssm_session *ssm_session_new(const struct ssm_env *env,
                                    const struct tunnel_spec *spec,
                                    int fallback)
{
    struct ssm_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->env = env;
    s->id = ++*env->next_id;
    s->spec = *spec;
    s->state = SSM_RESOLVING;
    s->mode = (struct ssm_mode)SSM_MODE_INIT;
    s->next_sid = 3; /* smux client streams: 3, 5, 7, ... */
    s->shareable =
        spec->kind == TUNNEL_SSM_PORT || spec->kind == TUNNEL_SSM_REMOTE;
    s->fallback = fallback && spec->kind == TUNNEL_SSM_PORT;
    snprintf(s->region, sizeof(s->region), "%s", spec->region);
    list_init(&s->streams);
    uv_timer_init(env->loop, &s->timer);
    s->timer.data = s;
    uv_timer_init(env->loop, &s->fin_timer);
    s->fin_timer.data = s;
    uv_timer_init(env->loop, &s->hold_timer);
    s->hold_timer.data = s;
    s->handles_open = 3;
    list_insert_head(env->sessions, &s->link);
    s->start.cb = open_deferred;
    defer_queue(env->loop, &s->start);
    return s;
}

struct ssm_session *ssm_session_from_link(struct list *l)
{
    return CONTAINER_OF(l, struct ssm_session, link);
}

const struct tunnel_spec *ssm_session_spec(const struct ssm_session *s)
{
    return &s->spec;
}

int ssm_session_joinable(const struct ssm_session *s)
{
    return s->shareable && s->state != SSM_CLOSED &&
           (s->mode.mux || !s->ready) && s->next_sid < 0x7ffffff0u;
}

int ssm_session_idle(const struct ssm_session *s)
{
    return s->n_streams == 0;
}

int ssm_session_lingers(const struct ssm_session *s)
{
    return s->n_streams == 0 && s->state == SSM_OPEN && s->mode.mux &&
           s->shareable;
}

static void session_linger_done(uv_timer_t *t)
{
    struct ssm_session *s = t->data;
    if (s->n_streams == 0)
        ssm_session_free(s);
}

void ssm_session_linger(struct ssm_session *s, uint64_t ms)
{
    /* Counted from when the session went idle: a recycle on the way
     * (its resume takes this timer) must not restart it, or a service
     * that recycles more often than that keeps an idle session forever. */
    uint64_t now = uv_now(s->env->loop);
    if (s->linger_until == 0)
        s->linger_until = now + ms;
    uv_timer_start(&s->timer, session_linger_done,
                   s->linger_until > now ? s->linger_until - now : 0, 0);
}

int ssm_session_busy(const struct ssm_session *s)
{
    uint64_t now = uv_now(s->env->loop);
    int n = 0;
    const struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    n += ssm_stream_busy(st, now);
    return n;
}

void ssm_session_info(const struct ssm_session *s, struct ssm_session_info *out)
{
    uint64_t now = uv_now(s->env->loop);
    *out = (struct ssm_session_info){
        .id = s->id,
        .state = ssm_state_names[s->state],
        .document = tunnel_document(s->spec.kind),
        .target = s->instance[0] ? s->instance : s->spec.target,
        .profile = s->spec.profile,
        .region = s->region,
        .session_id = s->started_id,
        .streams = s->n_streams,
        .busy = ssm_session_busy(s),
        .idle_ms =
            s->n_streams == 0 && s->idle_since != 0 && now > s->idle_since
                ? now - s->idle_since
                : 0,
    };
}

int ssm_session_keepalive(struct ssm_session *s)
{
    if (s->state == SSM_CLOSED || (s->ready && !s->mode.keepalive))
        return 0;
    if (s->mode.keepalive && s->state == SSM_OPEN)
        ssm_session_send_ctrl(s, SMUX_NOP, 0);
    return 1;
}
