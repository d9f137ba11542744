/*
 * backend_ssm.c - Session Manager sessions behind the backend interface.
 *
 * A struct ssm_session is one SSM session and its data channel:
 *   RESOLVING (Name -> instance id, DescribeInstanceInformation)
 *   STARTING  (StartSession, and for SSH the key push, in parallel)
 *   OPENING   (credentials, signed WebSocket upgrade, handshake)
 *   OPEN      (bytes flow: stream mode raw, port mode over smux v1)
 *   RESUMING  (the WebSocket dropped: ResumeSession, reopen, replay)
 *   CLOSED
 * A struct backend_stream is one local connection on a session. SSH
 * sessions carry one stream; port-forward sessions speak smux, so later
 * connections to the same (target, port, remote host, profile, region)
 * join the open session as new smux streams: one SYN, no API call. An
 * idle smux session lingers SSM_LINGER_MS for the next connection, then
 * it is terminated; every session ends with TerminateSession.
 */
#include "backend_ssm.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws.h"
#include "aws_ssm.h"
#include "buf.h"
#include "common.h"
#include "dc_channel.h"
#include "keypush.h"
#include "log.h"
#include "ws.h"

#define SMUX_MAX_PSH  32768
#define NAME_CACHE_MS 30000 /* a Name tag's instance id is reused this long */
#define NAME_CACHE_N  32
#define SSM_LINGER_MS 30000
#define SSM_EARLY_MAX (256 * 1024) /* bytes held for a stream not reported */
#define SMUX_NOP_MS   10000        /* the plugin's keepalive interval */

enum ssm_state {
    SSM_RESOLVING,
    SSM_STARTING,
    SSM_OPENING,
    SSM_OPEN,
    SSM_RESUMING,
    SSM_CLOSED,
};

struct ssm_session;

struct backend_ssm {
    uv_loop_t *loop;
    struct aws_client *aws;
    struct ws_ctx *ws;
    struct keypush *keys;
    struct backend_ssm_opts opts;
    char reason_prefix[128];
    struct backend be;
    uint64_t next_id;
    struct ssm_session *sessions; /* live sessions, for sharing */
    uv_timer_t *keepalive;  /* smux NOPs; own allocation, closed at free */
    struct ssm_term *terms; /* TerminateSession calls waiting for a flush */
    struct name_cache {
        char name[TUNNEL_TARGET_MAX];
        char profile[TUNNEL_PROFILE_MAX];
        char region[TUNNEL_REGION_MAX];
        char instance[TUNNEL_TARGET_MAX];
        uint64_t until_ms;
    } names[NAME_CACHE_N];
    int next_name;
};

/* The cached instance id for a Name in (profile, region), or NULL. */
static const char *name_cache_get(struct backend_ssm *b,
                                  const struct tunnel_spec *spec)
{
    uint64_t now = uv_now(b->loop);
    for (int i = 0; i < NAME_CACHE_N; i++) {
        struct name_cache *n = &b->names[i];
        if (n->until_ms > now && strcmp(n->name, spec->target) == 0 &&
            strcmp(n->profile, spec->profile) == 0 &&
            strcmp(n->region, spec->region) == 0)
            return n->instance;
    }
    return NULL;
}

static void name_cache_put(struct backend_ssm *b,
                           const struct tunnel_spec *spec, const char *instance)
{
    struct name_cache *n = &b->names[b->next_name];
    b->next_name = (b->next_name + 1) % NAME_CACHE_N;
    snprintf(n->name, sizeof(n->name), "%s", spec->target);
    snprintf(n->profile, sizeof(n->profile), "%s", spec->profile);
    snprintf(n->region, sizeof(n->region), "%s", spec->region);
    snprintf(n->instance, sizeof(n->instance), "%s", instance);
    n->until_ms = uv_now(b->loop) + NAME_CACHE_MS;
}

/* One local connection; owned by its conn until close(). */
struct backend_stream {
    struct backend_stream *next;
    struct ssm_session *sess;
    uint32_t sid; /* smux stream id (odd, from 3) */
    const struct backend_cb *cb;
    void *arg;
    uv_timer_t notify; /* reports open/failure from the loop */
    int notify_status;
    char notify_why[512];
    int reported; /* on_open was called */
    /* What the agent sent before on_open ran (the report waits for a
     * loop pass; a server that speaks first, like sshd, is quicker). */
    uint8_t *early;
    size_t early_len;
    int early_eof;
    int eof_sent;
    int fin_sent;
    int paused;
    int dead; /* failed; waiting for close() */
};

/* One SSM session; owned by the backend (list), freed when its last
 * stream left and it was terminated. */
struct ssm_session {
    struct ssm_session *next;
    struct backend_ssm *b;
    uint64_t id;
    struct tunnel_spec spec; /* of the first stream */
    enum ssm_state state;
    char instance[TUNNEL_TARGET_MAX];
    char region[64];
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
    int opened;
    int mux;
    int basic;     /* basic port forwarding: one connection, then it ends */
    int keepalive; /* smux NOPs for agents that expect them */
    char agent_version[32];
    int shareable; /* a port-forward session other connections may join */
    struct backend_stream *streams;
    int n_streams;
    uint32_t next_sid;
    int paused_streams;
    int local_eof; /* stream mode: the client finished sending */
    /* smux receive state: a partial frame header or body */
    uint8_t smux_hdr[8];
    size_t smux_hdr_len;
    uint32_t smux_body_left;
    uint32_t smux_body_sid;
    uint8_t smux_cmd;
    uv_timer_t timer; /* start, resume back-off, drain check, linger */
    uint64_t resume_deadline;
    int resume_attempt;
    int timer_closing; /* the session is on its way out */
    /* smux SYN/FIN frames waiting for window room, in order: a stream's
     * data never overtakes its SYN. */
    uint8_t (*ctrl)[8];
    size_t ctrl_head, ctrl_len, ctrl_cap;
};

static void session_fail(struct ssm_session *s, int err, const char *why);
static void session_maybe_free(struct ssm_session *s);

/* Open, or between sockets: the channel keeps queueing what is written,
 * and a resume delivers it. */
static int session_live(const struct ssm_session *s)
{
    return s->state == SSM_OPEN || s->state == SSM_RESUMING;
}

/* ---- streams ---- */

static void stream_notify_cb(uv_timer_t *t)
{
    struct backend_stream *st = t->data;
    if (st->dead || st->reported)
        return;
    st->reported = 1;
    if (st->notify_status != 0)
        st->dead = 1;
    st->cb->on_open(st->arg, st->notify_status,
                    st->notify_status ? st->notify_why : NULL);
    /* on_open may have closed the stream (st stays valid until its
     * handle closes). */
    if (!st->dead && st->early_len > 0)
        st->cb->on_data(st->arg, st->early, st->early_len);
    free(st->early);
    st->early = NULL;
    st->early_len = 0;
    if (!st->dead && st->early_eof && !st->eof_sent) {
        st->eof_sent = 1;
        st->cb->on_eof(st->arg);
    }
}

static void stream_fail(struct backend_stream *st, int err, const char *why);

/* Bytes from the agent for one stream: to the owner, or held until it
 * hears that the stream is open. */
static void stream_data(struct backend_stream *st, const uint8_t *p, size_t n)
{
    if (st->dead)
        return;
    if (st->reported) {
        st->cb->on_data(st->arg, p, n);
        return;
    }
    uint8_t *e = st->early_len + n <= SSM_EARLY_MAX
                     ? realloc(st->early, st->early_len + n)
                     : NULL;
    if (e == NULL) {
        stream_fail(st, GW_ETOO_BIG, "too much data before the tunnel opened");
        return;
    }
    memcpy(e + st->early_len, p, n);
    st->early = e;
    st->early_len += n;
}

static void stream_eof(struct backend_stream *st)
{
    if (st->dead || st->eof_sent)
        return;
    if (!st->reported) {
        st->early_eof = 1;
        return;
    }
    st->eof_sent = 1;
    st->cb->on_eof(st->arg);
}

/* Reports the open result from the loop, never from inside a call. */
static void stream_report(struct backend_stream *st, int status,
                          const char *why)
{
    if (st->reported || st->dead)
        return;
    st->notify_status = status;
    snprintf(st->notify_why, sizeof(st->notify_why), "%s", why ? why : "");
    uv_timer_start(&st->notify, stream_notify_cb, 0, 0);
}

/* A broken stream: on_open error before open, on_error after. */
static void stream_fail(struct backend_stream *st, int err, const char *why)
{
    if (st->dead)
        return;
    if (!st->reported) {
        stream_report(st, err, why);
        return;
    }
    st->dead = 1;
    st->cb->on_error(st->arg, err, why);
}

static struct backend_stream *session_find_stream(struct ssm_session *s,
                                                  uint32_t sid)
{
    for (struct backend_stream *st = s->streams; st != NULL; st = st->next)
        if (st->sid == sid)
            return st;
    return NULL;
}

/* Writes queued control frames while the window has room; 1 when the
 * queue is empty. */
static int smux_flush_ctrl(struct ssm_session *s)
{
    while (s->ctrl_len > 0 && s->ch != NULL) {
        if (dc_channel_room(s->ch) < 8)
            return 0;
        dc_channel_write(s->ch, s->ctrl[s->ctrl_head], 8);
        s->ctrl_head = (s->ctrl_head + 1) % s->ctrl_cap;
        s->ctrl_len--;
    }
    return s->ctrl_len == 0;
}

static void smux_send_ctrl(struct ssm_session *s, uint8_t cmd, uint32_t sid)
{
    uint8_t f[8] = {1,
                    cmd,
                    0,
                    0,
                    (uint8_t)sid,
                    (uint8_t)(sid >> 8),
                    (uint8_t)(sid >> 16),
                    (uint8_t)(sid >> 24)};
    if (s->ch == NULL)
        return;
    if (s->ctrl_len == 0 && dc_channel_room(s->ch) >= 8) {
        dc_channel_write(s->ch, f, sizeof(f));
        return;
    }
    if (s->ctrl_len == s->ctrl_cap) {
        size_t cap = s->ctrl_cap ? s->ctrl_cap * 2 : 64;
        uint8_t(*q)[8] = malloc(cap * sizeof(*q));
        if (q == NULL) {
            session_fail(s, GW_ENOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < s->ctrl_len; i++)
            memcpy(q[i], s->ctrl[(s->ctrl_head + i) % s->ctrl_cap], 8);
        free(s->ctrl);
        s->ctrl = q;
        s->ctrl_cap = cap;
        s->ctrl_head = 0;
    }
    memcpy(s->ctrl[(s->ctrl_head + s->ctrl_len) % s->ctrl_cap], f, 8);
    s->ctrl_len++;
    dc_channel_want_writable(s->ch);
}

/* The session is up: open every waiting stream. */
static void session_open_streams(struct ssm_session *s)
{
    for (struct backend_stream *st = s->streams; st != NULL; st = st->next) {
        if (st->reported || st->dead)
            continue;
        if (s->mux)
            smux_send_ctrl(s, 0, st->sid); /* SYN */
        else if (st != s->streams || st->next != NULL) {
            stream_fail(st, GW_EUNSUPPORTED,
                        "the agent does not multiplex this session");
            continue;
        }
        stream_report(st, 0, NULL);
    }
}

/* ---- ending ---- */

static void terminate_done(void *arg, int status, const struct aws_error *err)
{
    char *sid = arg;
    if (status != 0 && err != NULL)
        log_debug("TerminateSession %s: %s: %s", sid, err->code, err->message);
    free(sid);
}

/* Ends the AWS side: channel, pending calls, TerminateSession. */
/* A TerminateSession call made once the session's last flags are out:
 * called at the same moment, the API could end the session on the
 * agent before the flags (DisconnectToPort, TerminateSession) arrive. */
struct ssm_term {
    struct ssm_term *next;
    struct backend_ssm *b; /* NULL once the backend is gone */
    char session_id[AWS_SSM_SESSION_ID_MAX];
    char profile[TUNNEL_PROFILE_MAX];
    char region[64];
};

static void term_call(struct backend_ssm *b, const struct ssm_term *t)
{
    char *sid = strdup(t->session_id);
    if (sid != NULL &&
        aws_ssm_terminate_session(b->aws, t->profile, t->region, t->session_id,
                                  terminate_done, sid) == NULL)
        free(sid);
}

static void term_unlink(struct ssm_term *t)
{
    struct ssm_term **pp = &t->b->terms;
    while (*pp != NULL && *pp != t)
        pp = &(*pp)->next;
    if (*pp == t)
        *pp = t->next;
}

static void term_after_flush(void *arg)
{
    struct ssm_term *t = arg;
    if (t->b != NULL) {
        term_unlink(t);
        term_call(t->b, t);
    }
    free(t);
}

static void session_release(struct ssm_session *s)
{
    if (s->call != NULL) {
        aws_call_cancel(s->call);
        s->call = NULL;
    }
    if (s->push != NULL) {
        keypush_cancel(s->push);
        s->push = NULL;
    }
    struct ssm_term *t = NULL;
    if (s->session_id[0] != '\0' && (t = calloc(1, sizeof(*t))) != NULL) {
        t->b = s->b;
        snprintf(t->session_id, sizeof(t->session_id), "%s", s->session_id);
        snprintf(t->profile, sizeof(t->profile), "%s", s->spec.profile);
        snprintf(t->region, sizeof(t->region), "%s", s->region);
        s->session_id[0] = '\0';
    }
    if (s->ch != NULL && session_live(s) && t != NULL) {
        /* Basic-mode agents up to 2.3.722.0 do not know the flag; the
         * TerminateSession API call (always made) ends those. */
        if (!(s->basic && dc_version_cmp(s->agent_version, "2.3.722.0") <= 0))
            dc_channel_send_flag(s->ch, DC_FLAG_TERMINATE_SESSION);
        t->next = s->b->terms;
        s->b->terms = t;
        dc_channel_free_after_flush(s->ch, term_after_flush, t);
        s->ch = NULL;
        t = NULL;
    }
    if (s->ch != NULL) {
        dc_channel_free(s->ch);
        s->ch = NULL;
    }
    if (t != NULL) {
        term_call(s->b, t);
        free(t);
    }
    s->state = SSM_CLOSED;
    uv_timer_stop(&s->timer);
}

static void session_timer_closed(uv_handle_t *h);

/* The one place the session's memory starts going away. */
static void session_close_timer(struct ssm_session *s)
{
    if (s->timer_closing)
        return;
    s->timer_closing = 1;
    uv_close((uv_handle_t *)&s->timer, session_timer_closed);
}

static void session_timer_closed(uv_handle_t *h)
{
    struct ssm_session *s = h->data;
    free(s->ctrl);
    if (s->token != NULL) {
        OPENSSL_cleanse(s->token, strlen(s->token));
        free(s->token);
    }
    free(s);
}

static void session_unlink(struct ssm_session *s)
{
    struct ssm_session **pp = &s->b->sessions;
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->next;
    if (*pp == s)
        *pp = s->next;
}

static void session_free(struct ssm_session *s)
{
    session_unlink(s);
    session_release(s);
    session_close_timer(s);
}

static void session_linger_done(uv_timer_t *t)
{
    struct ssm_session *s = t->data;
    if (s->n_streams == 0)
        session_free(s);
}

/* Called when a stream left: free, or linger for the next connection. */
static void session_maybe_free(struct ssm_session *s)
{
    if (s->n_streams > 0)
        return;
    if (s->state == SSM_OPEN && s->mux && s->shareable) {
        uv_timer_start(&s->timer, session_linger_done, SSM_LINGER_MS, 0);
        return;
    }
    session_free(s);
}

/* The session broke: every stream hears it; the streams' close() ends it. */
static void session_fail(struct ssm_session *s, int err, const char *why)
{
    if (s->state == SSM_CLOSED)
        return;
    log_debug("ssm %llu: %s", (unsigned long long)s->id, why);
    session_unlink(s); /* nobody new joins a broken session */
    session_release(s);
    for (struct backend_stream *st = s->streams, *next; st != NULL; st = next) {
        next = st->next;
        stream_fail(st, st->reported ? GW_ECLOSED : err, why);
    }
    if (s->n_streams == 0)
        session_close_timer(s);
}

/* AWS error codes to what the SOCKS reply should say. */
static void fail_aws(struct ssm_session *s, const char *what, int status,
                     const struct aws_error *e)
{
    char why[1400], buf[1300];
    if (e != NULL && e->code[0] != '\0')
        snprintf(why, sizeof(why), "%s: %s: %s", what, e->code,
                 e->message[0] ? e->message : "(no message)");
    else
        snprintf(why, sizeof(why), "%s: %s", what,
                 e ? aws_error_str(e, buf, sizeof(buf)) : gw_strerror(status));
    session_fail(s, aws_ssm_error_to_gw(status, e), why);
}

/* ---- open ---- */

static void maybe_report_open(struct ssm_session *s)
{
    if (s->opened || !s->ready || s->push_pending || s->state == SSM_CLOSED)
        return;
    if (s->push_status != 0) {
        session_fail(s, s->push_status, s->push_error);
        return;
    }
    s->opened = 1;
    s->state = SSM_OPEN;
    session_open_streams(s);
}

static struct ssm_session *session_new(struct backend_ssm *b, uv_loop_t *loop,
                                       const struct tunnel_spec *spec);
static void keepalive_arm(struct backend_ssm *b);

/* A basic session carries one connection: connections that joined while
 * the mode was unknown get sessions of their own. Such a session is never
 * reused: after DisconnectToPort the agent redials only when the client
 * sends, which would hang protocols where the server speaks first (SSH,
 * MySQL). And when the destination closes first the agent says nothing
 * (it waits for client data to redial), so the local connection stays
 * open until the client ends it: a limit of the protocol. */
static void session_split_basic(struct ssm_session *s)
{
    struct backend_stream *first = s->streams;
    while (first != NULL && first->next != NULL)
        first = first->next; /* the list is newest first */
    for (struct backend_stream *st = s->streams, *next; st != NULL; st = next) {
        next = st->next;
        if (st == first || st->dead)
            continue;
        struct ssm_session *n = session_new(s->b, s->b->loop, &st->sess->spec);
        if (n == NULL) {
            stream_fail(st, GW_ENOMEM, "out of memory");
            continue;
        }
        struct backend_stream **pp = &s->streams;
        while (*pp != st)
            pp = &(*pp)->next;
        *pp = st->next;
        s->n_streams--;
        st->sess = n;
        st->next = NULL;
        n->streams = st;
        n->n_streams = 1;
        log_debug("ssm %llu: basic mode: connection moved to session %llu",
                  (unsigned long long)s->id, (unsigned long long)n->id);
    }
}

static void on_ready(void *arg, const struct dc_handshake_request *hs)
{
    struct ssm_session *s = arg;
    /* The agent runs smux when the session is LocalPortForwarding and our
     * ClientVersion is >= 1.1.70 (it is) and it is newer than 3.0.196.0;
     * older agents run basic port forwarding. */
    int port = strcmp(hs->properties_type, "LocalPortForwarding") == 0;
    s->mux = port && dc_version_cmp(hs->agent_version, "3.0.196.0") > 0;
    s->basic = port && !s->mux;
    /* Agents up to 3.1.1511.0 may run smux keepalive and drop a session
     * that sends no frame for 30 s: send NOPs as the plugin does. */
    s->keepalive =
        s->mux && dc_version_cmp(hs->agent_version, "3.1.1511.0") <= 0;
    snprintf(s->agent_version, sizeof(s->agent_version), "%s",
             hs->agent_version);
    log_debug("ssm %llu: handshake done: agent %s, %s mode%s",
              (unsigned long long)s->id, hs->agent_version,
              s->mux     ? "smux"
              : s->basic ? "basic"
                         : "stream",
              s->keepalive ? " with keepalive" : "");
    if (s->basic)
        session_split_basic(s);
    if (s->keepalive)
        keepalive_arm(s->b);
    s->ready = 1;
    maybe_report_open(s);
}

/* Feeds smux bytes from the agent; frames may span messages. */
static void smux_input(struct ssm_session *s, const uint8_t *p, size_t n)
{
    while (n > 0 && s->state != SSM_CLOSED) {
        if (s->smux_body_left > 0) {
            size_t k = GW_MIN(n, (size_t)s->smux_body_left);
            struct backend_stream *st =
                s->smux_cmd == 2 ? session_find_stream(s, s->smux_body_sid)
                                 : NULL;
            /* Data for a closed stream is read and dropped. */
            if (st != NULL)
                stream_data(st, p, k);
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
            session_fail(s, GW_EPROTO, "smux protocol error from the agent");
            return;
        }
        s->smux_cmd = cmd;
        s->smux_body_sid = sid;
        s->smux_body_left = len;
        if (cmd == 1) { /* FIN: the destination ended this stream */
            struct backend_stream *st = session_find_stream(s, sid);
            if (st != NULL)
                stream_eof(st);
        }
    }
}

static void on_data(void *arg, const uint8_t *p, size_t n)
{
    struct ssm_session *s = arg;
    if (s->mux) {
        smux_input(s, p, n);
        return;
    }
    if (s->streams != NULL)
        stream_data(s->streams, p, n);
}

static void on_flag(void *arg, uint32_t flag)
{
    struct ssm_session *s = arg;
    if (flag != DC_FLAG_CONNECT_TO_PORT_ERROR)
        return;
    /* The flag names no stream; the FIN that follows does. Fail the
     * newest stream still without data, which is the one the agent just
     * tried to dial. */
    const char *why = "the agent could not connect to the destination port";
    if (!s->mux) {
        session_fail(s, GW_EREFUSED, why);
        return;
    }
    log_warn("ssm %llu: %s", (unsigned long long)s->id, why);
    for (struct backend_stream *st = s->streams; st != NULL; st = st->next)
        if (!st->dead && st->sid == s->next_sid - 2) {
            stream_fail(st, GW_EREFUSED, why);
            break;
        }
}

static void on_writable(void *arg)
{
    struct ssm_session *s = arg;
    if (!session_live(s))
        return;
    if (s->mux && !smux_flush_ctrl(s)) {
        dc_channel_want_writable(s->ch);
        return;
    }
    for (struct backend_stream *st = s->streams, *next; st != NULL; st = next) {
        next = st->next;
        if (st->reported && !st->dead)
            st->cb->on_drain(st->arg);
    }
}

static void on_closed(void *arg, const char *reason)
{
    struct ssm_session *s = arg;
    if (s->state == SSM_OPEN && !s->mux &&
        strstr(reason, "closed the") != NULL) {
        /* The destination ended the session: an EOF, not an error. */
        log_debug("ssm %llu: %s", (unsigned long long)s->id, reason);
        if (s->streams != NULL)
            stream_eof(s->streams);
        return;
    }
    session_fail(s, s->opened ? GW_ECLOSED : GW_EUNREACHABLE, reason);
}

static void resume_now(struct ssm_session *s);

static void resume_timer_fired(uv_timer_t *t)
{
    resume_now(t->data);
}

static void resume_retry(struct ssm_session *s, const char *why)
{
    uint64_t now = uv_now(s->b->loop);
    uint64_t delay = 100ull << GW_MIN(s->resume_attempt, 6);
    if (delay > 5000)
        delay = 5000;
    if (now + delay >= s->resume_deadline) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "could not resume the session within %d ms: %s",
                 s->b->opts.resume_budget_ms, why);
        session_fail(s, GW_ECLOSED, msg);
        return;
    }
    s->resume_attempt++;
    uv_timer_start(&s->timer, resume_timer_fired, delay, 0);
}

static void on_lost(void *arg, const char *reason)
{
    struct ssm_session *s = arg;
    if (!s->opened) {
        session_fail(s, GW_EUNREACHABLE, reason);
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

static void on_reopened(void *arg)
{
    struct ssm_session *s = arg;
    if (s->state != SSM_RESUMING)
        return;
    log_info("ssm %llu: session %s resumed", (unsigned long long)s->id,
             s->session_id);
    s->state = SSM_OPEN;
}

static const struct dc_channel_cb channel_cb = {
    .on_reopened = on_reopened,
    .on_ready = on_ready,
    .on_data = on_data,
    .on_flag = on_flag,
    .on_writable = on_writable,
    .on_lost = on_lost,
    .on_closed = on_closed,
};

/* Signs the upgrade request (service ssmmessages) and (re)connects. */
static void on_signed(void *arg, int status,
                      const struct aws_ssm_stream_auth *auth,
                      const struct aws_error *err)
{
    struct ssm_session *s = arg;
    s->call = NULL;
    if (status != 0) {
        if (s->state == SSM_RESUMING)
            resume_retry(s, "no credentials");
        else
            fail_aws(s, "credentials", status, err);
        return;
    }
    snprintf(s->region, sizeof(s->region), "%s", auth->region);
    struct ws_header h[AWS_SSM_AUTH_MAX];
    size_t nh = 0;
    for (; nh < auth->n; nh++)
        h[nh] = (struct ws_header){auth->name[nh], auth->value[nh]};
    if (s->ch == NULL) {
        struct dc_channel_opts o = {s->b->opts.message_rate,
                                    s->b->opts.payload_size,
                                    s->b->opts.handshake_timeout_ms};
        if (dc_channel_new(s->b->loop, s->b->ws, &o, &channel_cb, s, &s->ch) !=
            0) {
            session_fail(s, GW_ENOMEM, "out of memory");
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
            session_fail(s, GW_EUNREACHABLE, "cannot open the data channel");
        return;
    }
    /* Still resuming until the socket is open (on_reopened): a connect
     * that fails must count against the budget and back off. */
}

static int take_session(struct ssm_session *s,
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
    struct ssm_session *s = arg;
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
        session_fail(s, GW_ECLOSED,
                     "the session timed out (ResumeSession "
                     "returned no token)");
        return;
    }
    take_session(s, sess);
    s->call = aws_ssm_sign_stream_url(s->b->aws, s->spec.profile, s->region,
                                      s->stream_url, on_signed, s);
}

static void resume_now(struct ssm_session *s)
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
    struct ssm_session *s = arg;
    s->call = NULL;
    if (status != 0) {
        fail_aws(s, "StartSession", status, err);
        return;
    }
    snprintf(s->session_id, sizeof(s->session_id), "%s", sess->session_id);
    if (take_session(s, sess) != 0) {
        session_fail(s, GW_ENOMEM, "out of memory");
        return;
    }
    log_debug("ssm %llu: session %s started", (unsigned long long)s->id,
              s->session_id);
    s->state = SSM_OPENING;
    s->call = aws_ssm_sign_stream_url(s->b->aws, s->spec.profile,
                                      s->spec.region, s->stream_url, on_signed,
                                      s);
}

static void on_pushed(void *arg, int status, const struct aws_error *err)
{
    struct ssm_session *s = arg;
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
        s->push_status = aws_ssm_error_to_gw(status, err);
        if (s->push_status == GW_EAWS)
            s->push_status = GW_EDENIED;
    }
    maybe_report_open(s);
}

static void start_session(struct ssm_session *s)
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
    snprintf(port, sizeof(port), "%u", s->spec.port);
    snprintf(reason, sizeof(reason), "%s via %s", b->reason_prefix,
             s->spec.label[0] ? s->spec.label : "SOCKS");
    struct aws_ssm_start req = {
        .target = s->instance,
        .document = tunnel_document(s->spec.kind),
        .port_number = port,
        .host = s->spec.kind == TUNNEL_SSM_REMOTE ? s->spec.host : NULL,
        .reason = reason,
    };
    s->call = aws_ssm_start_session(b->aws, s->spec.profile, s->spec.region,
                                    &req, on_started, s);
    if (s->call == NULL)
        session_fail(s, GW_ENOMEM, "cannot call StartSession");
}

static void on_resolved(void *arg, int status,
                        const struct aws_ssm_instance *list, size_t n,
                        const struct aws_error *err)
{
    struct ssm_session *s = arg;
    s->call = NULL;
    char why[512];
    if (status != 0) {
        fail_aws(s, "DescribeInstanceInformation", status, err);
        return;
    }
    if (n == 0) {
        snprintf(why, sizeof(why), "no managed instance is named %s",
                 s->spec.target);
        session_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    if (n > 1) {
        int o = snprintf(why, sizeof(why), "%zu instances are named %s:", n,
                         s->spec.target);
        for (size_t i = 0; i < n && o < (int)sizeof(why) - 40; i++)
            o += snprintf(why + o, sizeof(why) - (size_t)o, " %s",
                          list[i].instance_id);
        session_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    if (strcmp(list[0].ping_status, "Online") != 0) {
        snprintf(why, sizeof(why),
                 "%s (%s) is not online: its SSM Agent "
                 "ping status is %s",
                 s->spec.target, list[0].instance_id, list[0].ping_status);
        session_fail(s, GW_EUNREACHABLE, why);
        return;
    }
    snprintf(s->instance, sizeof(s->instance), "%s", list[0].instance_id);
    name_cache_put(s->b, &s->spec, s->instance);
    log_debug("ssm %llu: %s is %s", (unsigned long long)s->id, s->spec.target,
              s->instance);
    start_session(s);
}

static void open_deferred(uv_timer_t *t)
{
    struct ssm_session *s = t->data;
    const char *cached =
        s->spec.target_is_name ? name_cache_get(s->b, &s->spec) : NULL;
    if (cached != NULL) {
        snprintf(s->instance, sizeof(s->instance), "%s", cached);
        start_session(s);
        return;
    }
    if (s->spec.target_is_name) {
        s->state = SSM_RESOLVING;
        s->call =
            aws_ssm_find_by_name(s->b->aws, s->spec.profile, s->spec.region,
                                 s->spec.target, on_resolved, s);
        if (s->call == NULL)
            session_fail(s, GW_ENOMEM,
                         "cannot call DescribeInstanceInformation");
        return;
    }
    snprintf(s->instance, sizeof(s->instance), "%s", s->spec.target);
    start_session(s);
}

/* ---- backend ops ---- */

static int same_target(const struct tunnel_spec *a, const struct tunnel_spec *b)
{
    return a->kind == b->kind && a->port == b->port &&
           strcmp(a->target, b->target) == 0 && strcmp(a->host, b->host) == 0 &&
           strcmp(a->profile, b->profile) == 0 &&
           strcmp(a->region, b->region) == 0;
}

static struct ssm_session *session_new(struct backend_ssm *b, uv_loop_t *loop,
                                       const struct tunnel_spec *spec)
{
    struct ssm_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->b = b;
    s->id = ++b->next_id;
    s->spec = *spec;
    s->next_sid = 3; /* smux client streams: 3, 5, 7, ... */
    s->shareable =
        spec->kind == TUNNEL_SSM_PORT || spec->kind == TUNNEL_SSM_REMOTE;
    snprintf(s->region, sizeof(s->region), "%s", spec->region);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->next = b->sessions;
    b->sessions = s;
    /* on_open must never run inside open(): start from the loop. */
    uv_timer_start(&s->timer, open_deferred, 0, 0);
    return s;
}

static int ssm_open(void *ctx, uv_loop_t *loop, const struct tunnel_spec *spec,
                    const struct backend_cb *cb, void *arg,
                    struct backend_stream **out)
{
    struct backend_ssm *b = ctx;
    struct backend_stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return GW_ENOMEM;
    struct ssm_session *s = NULL;
    if (spec->kind == TUNNEL_SSM_PORT || spec->kind == TUNNEL_SSM_REMOTE)
        for (s = b->sessions; s != NULL; s = s->next)
            if (s->shareable && s->state != SSM_CLOSED &&
                same_target(&s->spec, spec) && (s->mux || !s->ready) &&
                s->next_sid < 0x7ffffff0u)
                break;
    int joined = s != NULL;
    if (s == NULL && (s = session_new(b, loop, spec)) == NULL) {
        free(st);
        return GW_ENOMEM;
    }
    st->sess = s;
    st->cb = cb;
    st->arg = arg;
    st->sid = s->next_sid;
    s->next_sid += 2;
    uv_timer_init(loop, &st->notify);
    st->notify.data = st;
    st->next = s->streams;
    s->streams = st;
    s->n_streams++;
    if (joined) {
        if (s->opened) {
            uv_timer_stop(&s->timer); /* no longer lingering */
            log_debug("ssm %llu: new smux stream %u on session %s",
                      (unsigned long long)s->id, st->sid, s->session_id);
            smux_send_ctrl(s, 0, st->sid);
            stream_report(st, 0, NULL);
        }
    }
    *out = st;
    return 0;
}

static ssize_t ssm_write(struct backend_stream *st, const uint8_t *p, size_t n)
{
    struct ssm_session *s = st->sess;
    if (st->dead || s->state == SSM_CLOSED)
        return GW_ECLOSED;
    if (s->ch == NULL)
        return 0;
    if (!s->mux)
        return dc_channel_write(s->ch, p, n);
    if (!smux_flush_ctrl(s)) {
        dc_channel_want_writable(s->ch);
        return 0;
    }
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
    frame[4] = (uint8_t)st->sid;
    frame[5] = (uint8_t)(st->sid >> 8);
    frame[6] = (uint8_t)(st->sid >> 16);
    frame[7] = (uint8_t)(st->sid >> 24);
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
    struct ssm_session *s = t->data;
    struct backend_stream *st = s->streams;
    if (!session_live(s) || s->ch == NULL || st == NULL)
        return;
    if (dc_channel_unacked(s->ch) > 0)
        return;
    uv_timer_stop(&s->timer);
    if (!st->eof_sent && !st->dead) {
        st->eof_sent = 1;
        st->cb->on_eof(st->arg);
    }
}

static int ssm_shutdown(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (s->ch == NULL || !session_live(s) || st->dead)
        return 0;
    if (s->mux) {
        if (!st->fin_sent) {
            st->fin_sent = 1;
            smux_send_ctrl(s, 1, st->sid); /* FIN */
        }
        return 0;
    }
    s->local_eof = 1;
    uv_timer_start(&s->timer, stream_drain_check, 0, 100);
    return 0;
}

/* smux v1 has no per-stream flow control: pausing one stream pauses the
 * session's reads, so every stream of it waits for the slowest reader. */
static void ssm_pause(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (st->paused)
        return;
    st->paused = 1;
    if (s->paused_streams++ == 0 && s->ch != NULL)
        dc_channel_pause_rx(s->ch, 1);
}

static void ssm_resume(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (!st->paused)
        return;
    st->paused = 0;
    if (--s->paused_streams == 0 && s->ch != NULL)
        dc_channel_pause_rx(s->ch, 0);
}

static void stream_notify_closed(uv_handle_t *h)
{
    struct backend_stream *st = h->data;
    free(st->early);
    free(st);
}

static void ssm_close(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (st->paused)
        ssm_resume(st);
    if (s->mux && session_live(s) && !st->fin_sent && st->reported)
        smux_send_ctrl(s, 1, st->sid);
    /* Basic mode: the local connection ended; the agent closes its
     * destination connection (as the plugin tells it). */
    if (s->basic && session_live(s) && st->reported && !st->dead) {
        int rc = dc_channel_send_flag(s->ch, DC_FLAG_DISCONNECT_TO_PORT);
        log_debug("ssm %llu: DisconnectToPort: %s", (unsigned long long)s->id,
                  rc == 0 ? "queued" : gw_strerror(rc));
    }
    struct backend_stream **pp = &s->streams;
    while (*pp != NULL && *pp != st)
        pp = &(*pp)->next;
    if (*pp == st)
        *pp = st->next;
    s->n_streams--;
    st->dead = 1;
    uv_close((uv_handle_t *)&st->notify, stream_notify_closed);
    if (s->state == SSM_CLOSED) {
        /* Failed earlier: the session waits for its last stream. */
        if (s->n_streams == 0)
            session_close_timer(s);
        return;
    }
    session_maybe_free(s);
}

static void keepalive_tick(uv_timer_t *t)
{
    struct backend_ssm *b = t->data;
    int any = 0;
    for (struct ssm_session *s = b->sessions; s != NULL; s = s->next) {
        if (!s->keepalive || s->state == SSM_CLOSED)
            continue;
        any = 1;
        if (s->state == SSM_OPEN)
            smux_send_ctrl(s, 3, 0); /* NOP */
    }
    if (!any)
        uv_timer_stop(t);
}

static void keepalive_closed(uv_handle_t *h)
{
    free(h);
}

static void keepalive_arm(struct backend_ssm *b)
{
    if (b->keepalive != NULL && !uv_is_active((uv_handle_t *)b->keepalive))
        uv_timer_start(b->keepalive, keepalive_tick, SMUX_NOP_MS, SMUX_NOP_MS);
}

static int ssm_shared_streams(const struct backend_stream *st)
{
    return st->sess->mux ? st->sess->n_streams : 0;
}

static const struct backend_ops ssm_ops = {
    .name = "ssm",
    .open = ssm_open,
    .write = ssm_write,
    .shutdown = ssm_shutdown,
    .pause = ssm_pause,
    .resume = ssm_resume,
    .close = ssm_close,
    .shared_streams = ssm_shared_streams,
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
    backend_ssm_set_opts(b, opts);
    b->be.ops = &ssm_ops;
    b->be.ctx = b;
    b->keepalive = malloc(sizeof(*b->keepalive));
    if (b->keepalive == NULL) {
        free(b);
        return GW_ENOMEM;
    }
    uv_timer_init(loop, b->keepalive);
    b->keepalive->data = b;
    *out = b;
    return 0;
}

void backend_ssm_set_opts(struct backend_ssm *b,
                          const struct backend_ssm_opts *opts)
{
    b->opts = *opts;
    snprintf(b->reason_prefix, sizeof(b->reason_prefix), "%s",
             opts->reason_prefix ? opts->reason_prefix : "ssmgate");
    b->opts.reason_prefix = NULL; /* the copy above is used */
}

const struct backend *backend_ssm_backend(struct backend_ssm *b)
{
    return &b->be;
}

void backend_ssm_close_idle(struct backend_ssm *b)
{
    for (struct ssm_session *s = b->sessions, *next; s != NULL; s = next) {
        next = s->next;
        if (s->n_streams == 0)
            session_free(s);
    }
}

int backend_ssm_terminating(const struct backend_ssm *b)
{
    int n = 0;
    for (const struct ssm_term *t = b ? b->terms : NULL; t; t = t->next)
        n++;
    return n;
}

void backend_ssm_free(struct backend_ssm *b)
{
    if (b == NULL)
        return;
    /* Lingering idle sessions: terminate them now. */
    while (b->sessions != NULL)
        session_free(b->sessions);
    uv_close((uv_handle_t *)b->keepalive, keepalive_closed);
    /* Sockets still flushing: their TerminateSession calls go now. */
    for (struct ssm_term *t = b->terms, *next; t != NULL; t = next) {
        next = t->next;
        term_call(b, t);
        t->b = NULL; /* term_after_flush frees it later */
    }
    free(b);
}
