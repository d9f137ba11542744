/*
 * backend_ssm.c - one SSM session per local connection.
 *
 *   RESOLVING (Name -> instance id, DescribeInstanceInformation)
 *   STARTING  (StartSession, and for SSH the key push, in parallel)
 *   OPENING   (credentials, signed WebSocket upgrade, handshake)
 *   OPEN      (bytes flow; stream mode raw, port mode over smux v1)
 *   RESUMING  (the WebSocket dropped: ResumeSession, reopen, replay)
 *   CLOSED
 *
 * on_open fires once: when the channel is ready and the key push (if any)
 * finished. Closing sends the TerminateSession flag and calls the
 * TerminateSession API so no session lingers on the AWS side.
 */
#include "backend_ssm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws.h"
#include "aws_sigv4.h"
#include "aws_ssm.h"
#include "buf.h"
#include "common.h"
#include "dc_channel.h"
#include "keypush.h"
#include "log.h"
#include "ws.h"
#include <openssl/crypto.h>

#define SMUX_SID     3 /* the first stream a smux client opens */
#define SMUX_MAX_PSH 32768

enum ssm_state {
    SSM_RESOLVING,
    SSM_STARTING,
    SSM_OPENING,
    SSM_OPEN,
    SSM_RESUMING,
    SSM_CLOSED,
};

struct backend_ssm {
    uv_loop_t *loop;
    struct aws_client *aws;
    struct ws_ctx *ws;
    struct keypush *keys;
    struct backend_ssm_opts opts;
    char reason_prefix[128];
    struct backend be;
    uint64_t next_id;
};

struct backend_stream {
    struct backend_ssm *b;
    uint64_t id;
    struct tunnel_spec spec;
    const struct backend_cb *cb;
    void *arg;
    enum ssm_state state;
    char instance[TUNNEL_TARGET_MAX];
    char region[64]; /* resolved, for signing the upgrade */
    struct aws_call *call;
    struct keypush_wait *push;
    int push_pending;
    int push_status;
    char push_error[1400];
    char session_id[AWS_SSM_SESSION_ID_MAX];
    char stream_url[AWS_SSM_URL_MAX];
    char *token;
    struct dc_channel *ch;
    int ready;
    int reported;
    int mux;
    int local_eof; /* stream mode: the client finished sending */
    int eof_sent;
    /* smux receive state: a partial frame header or body */
    uint8_t smux_hdr[8];
    size_t smux_hdr_len;
    uint32_t smux_body_left;
    uint32_t smux_body_sid;
    uint8_t smux_cmd;
    uv_timer_t timer; /* resume back-off */
    uint64_t resume_deadline;
    int resume_attempt;
    int timer_open;
};

static const char *document_port(const struct backend_stream *s, char *buf,
                                 size_t len)
{
    snprintf(buf, len, "%u", s->spec.port);
    return buf;
}

/* ---- ending ---- */

static void stream_timer_closed(uv_handle_t *h)
{
    struct backend_stream *s = h->data;
    if (s->token != NULL) {
        OPENSSL_cleanse(s->token, strlen(s->token));
        free(s->token);
    }
    free(s);
}

static void terminate_done(void *arg, int status, const struct aws_error *err)
{
    char *sid = arg;
    if (status != 0 && err != NULL)
        log_debug("TerminateSession %s: %s: %s", sid, err->code, err->message);
    free(sid);
}

/* Releases everything; owner callbacks stop. */
static void stream_release(struct backend_stream *s)
{
    if (s->call != NULL) {
        aws_call_cancel(s->call);
        s->call = NULL;
    }
    if (s->push != NULL) {
        keypush_cancel(s->push);
        s->push = NULL;
    }
    if (s->ch != NULL) {
        dc_channel_free(s->ch);
        s->ch = NULL;
    }
    if (s->session_id[0] != '\0') {
        char *sid = strdup(s->session_id);
        if (sid != NULL && aws_ssm_terminate_session(
                               s->b->aws, s->spec.profile, s->region,
                               s->session_id, terminate_done, sid) == NULL)
            free(sid);
        s->session_id[0] = '\0';
    }
    s->state = SSM_CLOSED;
    uv_timer_stop(&s->timer);
}

/* A failure before or after open, reported once to the owner. */
static void stream_fail(struct backend_stream *s, int err, const char *why)
{
    if (s->state == SSM_CLOSED)
        return;
    log_debug("ssm %llu: %s", (unsigned long long)s->id, why);
    stream_release(s);
    if (!s->reported) {
        s->reported = 1;
        s->cb->on_open(s->arg, err, why);
    } else {
        s->cb->on_error(s->arg, err, why);
    }
}

/* AWS error codes to what the SOCKS reply should say. */
static int map_aws_error(int status, const struct aws_error *e)
{
    if (status != GW_EAWS || e == NULL)
        return status == GW_ENO_CREDS ? GW_EDENIED : status;
    const char *c = e->code;
    if (strcmp(c, "TargetNotConnected") == 0 ||
        strcmp(c, "EC2InstanceNotFoundException") == 0 ||
        strcmp(c, "EC2InstanceStateInvalidException") == 0 ||
        strcmp(c, "EC2InstanceUnavailableException") == 0 ||
        strcmp(c, "InvalidInstanceId") == 0)
        return GW_EUNREACHABLE;
    if (strncmp(c, "AccessDenied", 12) == 0 ||
        strcmp(c, "AuthException") == 0 ||
        strcmp(c, "UnrecognizedClientException") == 0 ||
        strcmp(c, "ExpiredTokenException") == 0 ||
        strcmp(c, "InvalidSignatureException") == 0 ||
        strcmp(c, "InvalidDocument") == 0)
        return GW_EDENIED;
    return GW_EAWS;
}

static void fail_aws(struct backend_stream *s, const char *what, int status,
                     const struct aws_error *e)
{
    char why[1400], buf[1300];
    if (e != NULL && e->code[0] != '\0')
        snprintf(why, sizeof(why), "%s: %s: %s", what, e->code,
                 e->message[0] ? e->message : "(no message)");
    else
        snprintf(why, sizeof(why), "%s: %s", what,
                 e ? aws_error_str(e, buf, sizeof(buf)) : gw_strerror(status));
    stream_fail(s, map_aws_error(status, e), why);
}

/* ---- open ---- */

static void maybe_report_open(struct backend_stream *s)
{
    if (s->reported || !s->ready || s->push_pending)
        return;
    if (s->push_status != 0) {
        stream_fail(s, s->push_status, s->push_error);
        return;
    }
    s->reported = 1;
    s->state = SSM_OPEN;
    s->cb->on_open(s->arg, 0, NULL);
}

static void smux_send_ctrl(struct backend_stream *s, uint8_t cmd)
{
    uint8_t f[8] = {1, cmd, 0, 0, SMUX_SID, 0, 0, 0};
    dc_channel_write(s->ch, f, sizeof(f));
}

static void on_ready(void *arg, const struct dc_handshake_request *hs)
{
    struct backend_stream *s = arg;
    /* The agent runs smux when the session is LocalPortForwarding and our
     * ClientVersion is >= 1.1.70 (it is): speak it on our side too. */
    s->mux = strcmp(hs->properties_type, "LocalPortForwarding") == 0 &&
             dc_version_cmp(hs->agent_version, "3.0.196.0") > 0;
    log_debug("ssm %llu: handshake done: agent %s, %s mode",
              (unsigned long long)s->id, hs->agent_version,
              s->mux ? "smux" : "stream");
    if (s->mux)
        smux_send_ctrl(s, 0); /* SYN */
    s->ready = 1;
    maybe_report_open(s);
}

/* Feeds smux bytes from the agent; frames may span messages. */
static void smux_input(struct backend_stream *s, const uint8_t *p, size_t n)
{
    while (n > 0 && s->state != SSM_CLOSED) {
        if (s->smux_body_left > 0) {
            size_t k = GW_MIN(n, (size_t)s->smux_body_left);
            if (s->smux_cmd == 2 && s->smux_body_sid == SMUX_SID)
                s->cb->on_data(s->arg, p, k);
            s->smux_body_left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = GW_MIN(n, sizeof(s->smux_hdr) - s->smux_hdr_len);
        memcpy(s->smux_hdr + s->smux_hdr_len, p, k);
        s->smux_hdr_len += k;
        p += k;
        n -= k;
        if (s->smux_hdr_len < sizeof(s->smux_hdr))
            return;
        s->smux_hdr_len = 0;
        uint8_t ver = s->smux_hdr[0], cmd = s->smux_hdr[1];
        uint32_t len = (uint32_t)(s->smux_hdr[2] | (s->smux_hdr[3] << 8));
        uint32_t sid =
            (uint32_t)s->smux_hdr[4] | (uint32_t)s->smux_hdr[5] << 8 |
            (uint32_t)s->smux_hdr[6] << 16 | (uint32_t)s->smux_hdr[7] << 24;
        if (ver != 1 || cmd > 4 || (cmd != 2 && cmd != 4 && len != 0)) {
            stream_fail(s, GW_EPROTO, "smux protocol error from the agent");
            return;
        }
        s->smux_cmd = cmd;
        s->smux_body_sid = sid;
        s->smux_body_left = len;
        if (cmd == 1 && sid == SMUX_SID && !s->eof_sent) {
            s->eof_sent = 1;
            s->cb->on_eof(s->arg);
        }
    }
}

static void on_data(void *arg, const uint8_t *p, size_t n)
{
    struct backend_stream *s = arg;
    if (s->mux)
        smux_input(s, p, n);
    else
        s->cb->on_data(s->arg, p, n);
}

static void on_flag(void *arg, uint32_t flag)
{
    struct backend_stream *s = arg;
    if (flag == DC_FLAG_CONNECT_TO_PORT_ERROR)
        stream_fail(s, GW_EREFUSED,
                    "the agent could not connect to the destination port");
}

static void on_writable(void *arg)
{
    struct backend_stream *s = arg;
    if (s->state == SSM_OPEN)
        s->cb->on_drain(s->arg);
}

static void on_closed(void *arg, const char *reason)
{
    struct backend_stream *s = arg;
    if (s->state == SSM_OPEN && !s->mux &&
        strstr(reason, "closed the") != NULL) {
        /* The destination ended the session: an EOF, not an error. */
        log_debug("ssm %llu: %s", (unsigned long long)s->id, reason);
        if (!s->eof_sent) {
            s->eof_sent = 1;
            s->cb->on_eof(s->arg);
        }
        return;
    }
    stream_fail(s, s->reported ? GW_ECLOSED : GW_EUNREACHABLE, reason);
}

static void resume_now(struct backend_stream *s);

static void resume_timer_fired(uv_timer_t *t)
{
    resume_now(t->data);
}

static void resume_retry(struct backend_stream *s, const char *why)
{
    uint64_t now = uv_now(s->b->loop);
    uint64_t delay = 100ull << GW_MIN(s->resume_attempt, 6);
    if (delay > 5000)
        delay = 5000;
    if (now + delay >= s->resume_deadline) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "could not resume the session within %d "
                 "ms: %s",
                 s->b->opts.resume_budget_ms, why);
        stream_fail(s, GW_ECLOSED, msg);
        return;
    }
    s->resume_attempt++;
    uv_timer_start(&s->timer, resume_timer_fired, delay, 0);
}

static void on_lost(void *arg, const char *reason)
{
    struct backend_stream *s = arg;
    if (!s->reported) {
        stream_fail(s, GW_EUNREACHABLE, reason);
        return;
    }
    if (s->state == SSM_RESUMING) {
        resume_retry(s, reason);
        return;
    }
    log_info("ssm %llu: data channel lost (%s); resuming session %s",
             (unsigned long long)s->id, reason, s->session_id);
    s->state = SSM_RESUMING;
    s->resume_attempt = 0;
    s->resume_deadline =
        uv_now(s->b->loop) + (uint64_t)s->b->opts.resume_budget_ms;
    resume_now(s);
}

static const struct dc_channel_cb channel_cb = {
    .on_ready = on_ready,
    .on_data = on_data,
    .on_flag = on_flag,
    .on_writable = on_writable,
    .on_lost = on_lost,
    .on_closed = on_closed,
};

/* Signs the upgrade request (service ssmmessages) and (re)connects. */
static void on_creds(void *arg, int status, const struct aws_sigv4_creds *creds,
                     const char *region, const struct aws_error *err)
{
    struct backend_stream *s = arg;
    s->call = NULL;
    if (status != 0) {
        if (s->state == SSM_RESUMING)
            resume_retry(s, "no credentials");
        else
            fail_aws(s, "credentials", status, err);
        return;
    }
    snprintf(s->region, sizeof(s->region), "%s", region);
    struct aws_sigv4_result sig;
    struct ws_header h[3];
    size_t nh = 0;
    /* A presigned StreamUrl is used as is. */
    if (strstr(s->stream_url, "X-Amz-") == NULL) {
        struct aws_sigv4_request req = {
            .method = "GET", .url = s->stream_url}; /* path as written */
        if (aws_sigv4_sign(&req, creds, region, "ssmmessages", time(NULL), &sig,
                           NULL, NULL) == 0) {
            h[nh++] = (struct ws_header){"Authorization", sig.authorization};
            h[nh++] = (struct ws_header){"X-Amz-Date", sig.amz_date};
            if (creds->session_token != NULL && creds->session_token[0])
                h[nh++] = (struct ws_header){"X-Amz-Security-Token",
                                             creds->session_token};
        }
    }
    if (s->ch == NULL) {
        struct dc_channel_opts o = {s->b->opts.message_rate,
                                    s->b->opts.payload_size,
                                    s->b->opts.handshake_timeout_ms};
        if (dc_channel_new(s->b->loop, s->b->ws, &o, &channel_cb, s, &s->ch) !=
            0) {
            stream_fail(s, GW_ENOMEM, "out of memory");
            return;
        }
    }
    int rc = dc_channel_connect(s->ch, s->stream_url, h, nh, s->token);
    /* The token is single-use. */
    OPENSSL_cleanse(s->token, strlen(s->token));
    if (rc != 0) {
        if (s->state == SSM_RESUMING)
            resume_retry(s, "cannot reconnect the WebSocket");
        else
            stream_fail(s, GW_EUNREACHABLE, "cannot open the data channel");
        return;
    }
    if (s->state == SSM_RESUMING) {
        log_info("ssm %llu: session %s resumed", (unsigned long long)s->id,
                 s->session_id);
        s->state = SSM_OPEN;
    }
}

static int take_session(struct backend_stream *s,
                        const struct aws_ssm_session *sess)
{
    if (sess->stream_url[0] != '\0')
        snprintf(s->stream_url, sizeof(s->stream_url), "%s", sess->stream_url);
    if (s->token != NULL) {
        OPENSSL_cleanse(s->token, strlen(s->token));
        free(s->token);
    }
    s->token = strdup(sess->token);
    return s->token != NULL ? 0 : GW_ENOMEM;
}

static void on_resumed(void *arg, int status,
                       const struct aws_ssm_session *sess,
                       const struct aws_error *err)
{
    struct backend_stream *s = arg;
    s->call = NULL;
    if (status != 0) {
        if (err != NULL && strcmp(err->code, "DoesNotExistException") == 0) {
            fail_aws(s, "ResumeSession", status, err);
            return;
        }
        resume_retry(s, err ? err->code : gw_strerror(status));
        return;
    }
    if (sess->token[0] == '\0') {
        stream_fail(s, GW_ECLOSED,
                    "the session timed out (ResumeSession "
                    "returned no token)");
        return;
    }
    take_session(s, sess);
    s->call =
        aws_get_credentials(s->b->aws, s->spec.profile, s->region, on_creds, s);
}

static void resume_now(struct backend_stream *s)
{
    if (s->state != SSM_RESUMING)
        return;
    s->call = aws_ssm_resume_session(s->b->aws, s->spec.profile, s->region,
                                     s->session_id, on_resumed, s);
    if (s->call == NULL)
        resume_retry(s, "cannot call ResumeSession");
}

static void on_started(void *arg, int status,
                       const struct aws_ssm_session *sess,
                       const struct aws_error *err)
{
    struct backend_stream *s = arg;
    s->call = NULL;
    if (status != 0) {
        fail_aws(s, "StartSession", status, err);
        return;
    }
    snprintf(s->session_id, sizeof(s->session_id), "%s", sess->session_id);
    if (take_session(s, sess) != 0) {
        stream_fail(s, GW_ENOMEM, "out of memory");
        return;
    }
    log_debug("ssm %llu: session %s started", (unsigned long long)s->id,
              s->session_id);
    s->state = SSM_OPENING;
    s->call = aws_get_credentials(s->b->aws, s->spec.profile, s->spec.region,
                                  on_creds, s);
}

static void on_pushed(void *arg, int status, const struct aws_error *err)
{
    struct backend_stream *s = arg;
    s->push = NULL;
    s->push_pending = 0;
    s->push_status = status;
    if (status != 0) {
        if (err != NULL && err->code[0] != '\0')
            snprintf(s->push_error, sizeof(s->push_error),
                     "SendSSHPublicKey for %s@%s: %s: %.300s", s->spec.user,
                     s->instance, err->code, err->message);
        else
            snprintf(s->push_error, sizeof(s->push_error),
                     "SendSSHPublicKey for %s@%s: %s", s->spec.user,
                     s->instance, gw_strerror(status));
        s->push_status = map_aws_error(status, err);
        if (s->push_status == GW_EAWS)
            s->push_status = GW_EDENIED;
    }
    maybe_report_open(s);
}

static void start_session(struct backend_stream *s)
{
    struct backend_ssm *b = s->b;
    char port[8], reason[256];
    s->state = SSM_STARTING;
    /* The key push runs alongside StartSession, so it costs no time. */
    if (s->spec.kind == TUNNEL_SSM_SSH && b->keys != NULL &&
        strncmp(s->instance, "i-", 2) == 0) {
        s->push_pending = 1;
        if (keypush_start(b->keys, s->spec.profile, s->spec.region, s->instance,
                          s->spec.user, on_pushed, s, &s->push) != 0) {
            s->push_pending = 0;
            s->push_status = GW_ENOMEM;
            snprintf(s->push_error, sizeof(s->push_error),
                     "cannot start the key push");
        }
    } else if (s->spec.kind == TUNNEL_SSM_SSH) {
        log_debug("ssm %llu: %s is a managed node: no key push; the user's "
                  "own keys apply",
                  (unsigned long long)s->id, s->instance);
    }
    snprintf(reason, sizeof(reason), "%s via %s", b->reason_prefix,
             s->spec.label[0] ? s->spec.label : "SOCKS");
    struct aws_ssm_start req = {
        .target = s->instance,
        .document = tunnel_document(s->spec.kind),
        .port_number = document_port(s, port, sizeof(port)),
        .host = s->spec.kind == TUNNEL_SSM_REMOTE ? s->spec.host : NULL,
        .reason = reason,
    };
    s->call = aws_ssm_start_session(b->aws, s->spec.profile, s->spec.region,
                                    &req, on_started, s);
    if (s->call == NULL)
        stream_fail(s, GW_ENOMEM, "cannot call StartSession");
}

static void on_resolved(void *arg, int status,
                        const struct aws_ssm_instance *list, size_t n,
                        const struct aws_error *err)
{
    struct backend_stream *s = arg;
    s->call = NULL;
    char why[512];
    if (status != 0) {
        fail_aws(s, "DescribeInstanceInformation", status, err);
        return;
    }
    if (n == 0) {
        snprintf(why, sizeof(why), "no managed instance is named %s",
                 s->spec.target);
        stream_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    if (n > 1) {
        int o = snprintf(why, sizeof(why), "%zu instances are named %s:", n,
                         s->spec.target);
        for (size_t i = 0; i < n && o < (int)sizeof(why) - 40; i++)
            o += snprintf(why + o, sizeof(why) - (size_t)o, " %s",
                          list[i].instance_id);
        stream_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    if (strcmp(list[0].ping_status, "Online") != 0) {
        snprintf(why, sizeof(why),
                 "%s (%s) is not online: its SSM Agent "
                 "ping status is %s",
                 s->spec.target, list[0].instance_id, list[0].ping_status);
        stream_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    snprintf(s->instance, sizeof(s->instance), "%s", list[0].instance_id);
    log_debug("ssm %llu: %s is %s", (unsigned long long)s->id, s->spec.target,
              s->instance);
    start_session(s);
}

static void open_deferred(uv_timer_t *t)
{
    struct backend_stream *s = t->data;
    if (s->spec.target_is_name) {
        s->state = SSM_RESOLVING;
        s->call =
            aws_ssm_find_by_name(s->b->aws, s->spec.profile, s->spec.region,
                                 s->spec.target, on_resolved, s);
        if (s->call == NULL)
            stream_fail(s, GW_ENOMEM,
                        "cannot call DescribeInstanceInformation");
        return;
    }
    snprintf(s->instance, sizeof(s->instance), "%s", s->spec.target);
    start_session(s);
}

/* ---- backend ops ---- */

static int ssm_open(void *ctx, uv_loop_t *loop, const struct tunnel_spec *spec,
                    const struct backend_cb *cb, void *arg,
                    struct backend_stream **out)
{
    struct backend_ssm *b = ctx;
    struct backend_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return GW_ENOMEM;
    s->b = b;
    s->id = ++b->next_id;
    s->spec = *spec;
    s->cb = cb;
    s->arg = arg;
    snprintf(s->region, sizeof(s->region), "%s", spec->region);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    /* on_open must never run inside open(): start from the loop. */
    uv_timer_start(&s->timer, open_deferred, 0, 0);
    *out = s;
    return 0;
}

static ssize_t ssm_write(struct backend_stream *s, const uint8_t *p, size_t n)
{
    if (s->state == SSM_CLOSED)
        return GW_ECLOSED;
    if (s->ch == NULL)
        return 0;
    if (!s->mux)
        return dc_channel_write(s->ch, p, n);
    /* One PSH frame that fits the window whole, so frames never split
     * between what was taken and what was not. */
    size_t room = dc_channel_room(s->ch);
    if (room <= 8) {
        dc_channel_want_writable(s->ch);
        return 0;
    }
    size_t k = GW_MIN(GW_MIN(n, room - 8), (size_t)SMUX_MAX_PSH);
    uint8_t frame[8 + SMUX_MAX_PSH];
    frame[0] = 1;
    frame[1] = 2;
    frame[2] = (uint8_t)k;
    frame[3] = (uint8_t)(k >> 8);
    frame[4] = SMUX_SID;
    frame[5] = frame[6] = frame[7] = 0;
    memcpy(frame + 8, p, k);
    ssize_t taken = dc_channel_write(s->ch, frame, 8 + k);
    if (taken < 0)
        return taken;
    CHECK((size_t)taken == 8 + k);
    return (ssize_t)k;
}

/* Stream mode has no half-close: once the client is done and the agent
 * acknowledged every byte, the session has nothing left to carry, so end
 * it rather than wait on a remote that may never speak again. */
static void stream_drain_check(uv_timer_t *t)
{
    struct backend_stream *s = t->data;
    if (s->state != SSM_OPEN || s->ch == NULL)
        return;
    if (dc_channel_unacked(s->ch) > 0)
        return;
    uv_timer_stop(&s->timer);
    if (!s->eof_sent) {
        s->eof_sent = 1;
        s->cb->on_eof(s->arg);
    }
}

static int ssm_shutdown(struct backend_stream *s)
{
    if (s->ch == NULL || s->state != SSM_OPEN)
        return 0;
    if (s->mux) {
        smux_send_ctrl(s, 1); /* FIN */
        return 0;
    }
    s->local_eof = 1;
    uv_timer_start(&s->timer, stream_drain_check, 0, 100);
    return 0;
}

static void ssm_pause(struct backend_stream *s)
{
    if (s->ch != NULL)
        dc_channel_pause_rx(s->ch, 1);
}

static void ssm_resume(struct backend_stream *s)
{
    if (s->ch != NULL)
        dc_channel_pause_rx(s->ch, 0);
}

static void ssm_close(struct backend_stream *s)
{
    if (s->ch != NULL && s->state == SSM_OPEN)
        dc_channel_send_flag(s->ch, DC_FLAG_TERMINATE_SESSION);
    stream_release(s);
    uv_close((uv_handle_t *)&s->timer, stream_timer_closed);
}

static const struct backend_ops ssm_ops = {
    .name = "ssm",
    .open = ssm_open,
    .write = ssm_write,
    .shutdown = ssm_shutdown,
    .pause = ssm_pause,
    .resume = ssm_resume,
    .close = ssm_close,
};

int backend_ssm_new(uv_loop_t *loop, struct aws_client *aws, struct ws_ctx *ws,
                    struct keypush *keys, const struct backend_ssm_opts *opts,
                    struct backend_ssm **out)
{
    struct backend_ssm *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return GW_ENOMEM;
    b->loop = loop;
    b->aws = aws;
    b->ws = ws;
    b->keys = keys;
    b->opts = *opts;
    snprintf(b->reason_prefix, sizeof(b->reason_prefix), "%s",
             opts->reason_prefix ? opts->reason_prefix : "ssmgate");
    b->be.ops = &ssm_ops;
    b->be.ctx = b;
    *out = b;
    return 0;
}

const struct backend *backend_ssm_backend(struct backend_ssm *b)
{
    return &b->be;
}

void backend_ssm_free(struct backend_ssm *b)
{
    free(b);
}
