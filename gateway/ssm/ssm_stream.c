/*
 * ssm_stream.c - the streams of an SSM session and the bytes they carry.
 *
 * A stream is reported open (or failed) from the loop, never inside a
 * call: its defer runs on_open, then hands over what the agent sent in the
 * meantime (early data, an early EOF). Port-forward sessions frame every
 * write as one smux PSH that fits the window whole; SYN, FIN and NOP that
 * find no room wait in the session's control queue and go first when the
 * window opens, so a stream's data never overtakes its SYN.
 *
 * smux v1 has no half-close, and the agent (like amazon-ssm-agent) closes
 * the destination both ways when a stream's FIN arrives, dropping what it
 * still had to say. So a client's EOF is held while the destination
 * talks: the FIN goes when the destination ended (its FIN arrives first,
 * and the stream closes) or when it was quiet for half_close_linger_ms.
 * Basic mode holds its DisconnectToPort the same way.
 *
 * The open report is held too (open_confirm_ms): the agent dials the
 * destination only when the SYN arrives and answers a refusal with a
 * ConnectToPortError flag and a FIN (a session that ends, with one
 * connection per session), within about a round trip. So a new stream is
 * reported open on the destination's first byte, or once the agent
 * acknowledged the SYN (one round trip, measured, whatever queueing or
 * resends it took) and open_confirm_ms more passed with no refusal; a
 * FIN before any byte is a refusal, reported as such. A server that
 * speaks first (sshd) pays nothing; a client that speaks first pays the
 * round trip and the grace. SSM_HOLD_CAP_MS bounds a SYN whose ack does
 * not come (a resume): the report goes then, the old way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dc_channel.h"
#include "keypush.h"
#include "log.h"
#include "ssm_stream.h"

#define SSM_HOLD_CAP_MS 2000
/* A stream that moved this much in the last second or two is busy: well
 * under what one session carries (~1 MB/s), well over an idle shell. */
#define SSM_BUSY_BYTES (16 * 1024)
/* A stream this young is busy too: what it will carry is not known yet,
 * and connections started together (parallel downloads) must not all
 * land on one session before any of them moved a byte. */
#define SSM_YOUNG_MS 250

/* Counts n bytes either way in the stream's two one-second windows. */
static void stream_count(struct backend_stream *st, size_t n)
{
    uint64_t now = uv_now(st->sess->env->loop);
    if (now - st->win_start >= 1000) {
        st->prev_bytes = now - st->win_start < 2000 ? st->win_bytes : 0;
        st->win_bytes = 0;
        st->win_start = now;
    }
    st->win_bytes += n;
}

int ssm_stream_busy(const struct backend_stream *st, uint64_t now)
{
    if (st->dead)
        return 0;
    if (!st->reported || now - st->born < SSM_YOUNG_MS) /* opening, new */
        return 1;
    uint64_t age = now - st->win_start;
    size_t recent = age >= 2000   ? 0
                    : age >= 1000 ? st->win_bytes
                                  : st->win_bytes + st->prev_bytes;
    return recent >= SSM_BUSY_BYTES;
}

static void stream_free(struct backend_stream *st)
{
    defer_cancel(&st->notify);
    if (st->push != NULL)
        keypush_cancel(st->push);
    free(st->early);
    free(st->notify_why);
    free(st);
}

static void stream_notify(struct defer *d)
{
    struct backend_stream *st = CONTAINER_OF(d, struct backend_stream, notify);
    if (st->dead || st->reported)
        return;
    st->reported = 1;
    if (st->notify_status != 0)
        st->dead = 1;
    st->in_notify = 1;
    st->cb->on_open(st->arg, st->notify_status,
                    st->notify_status ? st->notify_why : NULL);
    /* on_open may have closed the stream: then it is freed here. */
    if (!st->dead && st->early_len > 0)
        st->cb->on_data(st->arg, st->early, st->early_len);
    free(st->early);
    st->early = NULL;
    st->early_len = 0;
    if (!st->dead && st->early_eof && !st->eof_sent) {
        st->eof_sent = 1;
        st->cb->on_eof(st->arg);
    }
    st->in_notify = 0;
    if (st->closed)
        stream_free(st);
}

/* Bytes from the agent for one stream: to the owner, or held until it
 * hears that the stream is open. */
static void stream_data(struct backend_stream *st, const uint8_t *p, size_t n)
{
    st->quiet_since = uv_now(st->sess->env->loop);
    st->heard = 1;
    stream_count(st, n);
    if (st->dead)
        return;
    if (st->holding) /* the destination is there: it spoke */
        ssm_stream_report(st, 0, NULL);
    if (st->reported) {
        st->cb->on_data(st->arg, p, n);
        return;
    }
    uint8_t *e = st->early_len + n <= SSM_EARLY_MAX
                     ? realloc(st->early, st->early_len + n)
                     : NULL;
    if (e == NULL) {
        ssm_stream_fail(st, GW_ETOO_BIG,
                        "too much data before the tunnel opened");
        return;
    }
    memcpy(e + st->early_len, p, n);
    st->early = e;
    st->early_len += n;
}

void ssm_stream_eof(struct backend_stream *st)
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

void ssm_stream_report(struct backend_stream *st, int status, const char *why)
{
    if (st->holding) {
        st->holding = 0;
        st->sess->n_holding--;
    }
    if (st->reported || st->dead)
        return;
    if (status == 0 && st->push_pending) { /* open once the key is there */
        st->open_waits = 1;
        return;
    }
    if (status == 0 && st->push_status != 0) { /* notify_why says why */
        st->notify_status = st->push_status;
        defer_queue(st->sess->env->loop, &st->notify);
        return;
    }
    st->notify_status = status;
    if (why != NULL)
        tunnel_reason_set(&st->notify_why, "%s", why);
    defer_queue(st->sess->env->loop, &st->notify);
}

/* A broken stream: on_open error before open, on_error after. */
void ssm_stream_fail(struct backend_stream *st, int err, const char *why)
{
    if (st->dead)
        return;
    if (!st->reported) {
        ssm_stream_report(st, err, why);
        return;
    }
    st->dead = 1;
    st->cb->on_error(st->arg, err, why);
}

static struct backend_stream *session_find_stream(struct ssm_session *s,
                                                  uint32_t sid)
{
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    if (st->sid == sid)
        return st;
    return NULL;
}

/* A control frame went into the channel: a SYN's message is the one
 * whose ack starts the refusal wait. */
static void ctrl_written(struct ssm_session *s, const uint8_t *f)
{
    uint8_t cmd;
    uint32_t sid;
    uint16_t len;
    if (smux_get_hdr(f, &cmd, &sid, &len) != 0 || cmd != SMUX_SYN)
        return;
    struct backend_stream *st = session_find_stream(s, sid);
    if (st != NULL)
        st->syn_seq = dc_channel_last_seq(s->ch);
}

/* Writes queued control frames while the window has room; 1 when the
 * queue is empty. */
static int session_flush_ctrl(struct ssm_session *s)
{
    const uint8_t *f;
    while (s->ch != NULL && (f = smux_ctrl_peek(&s->ctrl)) != NULL) {
        if (dc_channel_room(s->ch) < SMUX_HDR_LEN)
            return 0;
        dc_channel_write(s->ch, f, SMUX_HDR_LEN);
        ctrl_written(s, f);
        smux_ctrl_pop(&s->ctrl);
    }
    return s->ctrl.ctrl_len == 0;
}

void ssm_session_send_ctrl(struct ssm_session *s, enum smux_cmd cmd,
                           uint32_t sid)
{
    if (s->ch == NULL)
        return;
    if (s->ctrl.ctrl_len == 0 && dc_channel_room(s->ch) >= SMUX_HDR_LEN) {
        uint8_t f[SMUX_HDR_LEN];
        smux_put_hdr(f, cmd, sid, 0);
        dc_channel_write(s->ch, f, sizeof(f));
        ctrl_written(s, f);
        return;
    }
    if (smux_ctrl_push(&s->ctrl, cmd, sid) != 0) {
        ssm_session_fail(s, GW_ENOMEM, "out of memory");
        return;
    }
    dc_channel_want_writable(s->ch);
}

void ssm_session_open_streams(struct ssm_session *s)
{
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    {
        if (st->reported || st->dead)
            continue;
        if (s->mode.mux) {
            st->syn_sent = 1;
            ssm_session_send_ctrl(s, SMUX_SYN, st->sid);
        } else if (s->n_streams > 1) {
            ssm_stream_fail(st, GW_EUNSUPPORTED,
                            "the agent does not multiplex this session");
            continue;
        }
        ssm_stream_opened(st);
    }
}

void ssm_session_dest(const struct ssm_session *s, char *out, size_t cap)
{
    const char *via = s->instance[0] ? s->instance : s->spec.target;
    if (s->spec.kind == TUNNEL_SSM_REMOTE)
        snprintf(out, cap, "destination %s:%u (via %s)", s->spec.host,
                 s->spec.port, via);
    else
        snprintf(out, cap, "destination port %u on %s", s->spec.port, via);
}

/* ---- the held open report ---- */

static void hold_timer_fired(uv_timer_t *t)
{
    ssm_session_hold_check(t->data);
}

void ssm_stream_opened(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    int grace = s->env->opts->open_confirm_ms;
    if (grace <= 0 || st->no_hold || st->reported || st->dead || st->holding ||
        s->ch == NULL) {
        ssm_stream_report(st, 0, NULL);
        return;
    }
    uint64_t now = uv_now(s->env->loop);
    st->holding = 1;
    s->n_holding++;
    st->hold_cap = now + SSM_HOLD_CAP_MS + (uint64_t)grace;
    /* One connection per session: the agent dialed when the handshake
     * ended, and a refusal ends the session, which reaches us about a
     * round trip later. */
    if (!s->mode.mux)
        st->confirm_at =
            now + (uint64_t)dc_channel_srtt(s->ch) + (uint64_t)grace;
    ssm_session_hold_check(s);
}

void ssm_session_hold_check(struct ssm_session *s)
{
    if (s->n_holding <= 0 || s->timer_closing) {
        uv_timer_stop(&s->hold_timer);
        return;
    }
    uint64_t now = uv_now(s->env->loop);
    uint64_t grace = (uint64_t)GW_MAX(s->env->opts->open_confirm_ms, 0);
    uint64_t next = UINT64_MAX;
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    {
        if (!st->holding)
            continue;
        if (st->confirm_at == 0 && st->syn_seq >= 0 && s->ch != NULL &&
            dc_channel_acked(s->ch, st->syn_seq))
            st->confirm_at = now + grace;
        uint64_t end = st->confirm_at ? GW_MIN(st->confirm_at, st->hold_cap)
                                      : st->hold_cap;
        if (now >= end) {
            log_debug("ssm %llu: stream %u: no refusal%s, open",
                      (unsigned long long)s->id, st->sid,
                      st->confirm_at ? "" : " and no ack of the SYN yet");
            ssm_stream_report(st, 0, NULL);
            continue;
        }
        next = GW_MIN(next, end - now);
    }
    if (next == UINT64_MAX)
        uv_timer_stop(&s->hold_timer);
    else
        uv_timer_start(&s->hold_timer, hold_timer_fired, next, 0);
}

/* smux events; a session that broke inside a callback stops the feed. */
static int rx_psh(void *arg, uint32_t sid, const uint8_t *p, size_t n)
{
    struct ssm_session *s = arg;
    struct backend_stream *st = session_find_stream(s, sid);
    /* Data for a closed stream is read and dropped. */
    if (st != NULL)
        stream_data(st, p, n);
    return s->state == SSM_CLOSED;
}

static int rx_fin(void *arg, uint32_t sid)
{
    struct ssm_session *s = arg;
    struct backend_stream *st = session_find_stream(s, sid);
    if (st == NULL)
        return s->state == SSM_CLOSED;
    /* A ConnectToPortError names no stream: the FIN of a stream that
     * never heard from its destination is the one it meant. */
    int port_error = !st->heard && s->port_errors > 0;
    if (port_error)
        s->port_errors--;
    if (st->holding || port_error) {
        char dest[TUNNEL_HOST_MAX + TUNNEL_TARGET_MAX + 64];
        char why[GW_REASON_MAX];
        ssm_session_dest(s, dest, sizeof(dest));
        if (port_error)
            snprintf(why, sizeof(why),
                     "%s refused the connection (ConnectToPortError from "
                     "the agent)",
                     dest);
        else
            snprintf(why, sizeof(why),
                     "%s closed the connection before sending anything "
                     "(the agent ended the stream)",
                     dest);
        ssm_stream_fail(st, GW_EREFUSED, why);
    } else { /* the destination ended this stream */
        ssm_stream_eof(st);
    }
    return s->state == SSM_CLOSED;
}

static const struct smux_rx_cb rx_cb = {.on_psh = rx_psh, .on_fin = rx_fin};

void ssm_session_input(struct ssm_session *s, const uint8_t *p, size_t n)
{
    if (!s->mode.mux) {
        if (!list_empty(&s->streams))
            stream_data(
                CONTAINER_OF(s->streams.next, struct backend_stream, link), p,
                n);
        return;
    }
    if (s->state == SSM_CLOSED)
        return;
    if (smux_rx_feed(&s->rx, p, n, &rx_cb, s) == GW_EPROTO)
        ssm_session_fail(s, GW_EPROTO, "smux protocol error from the agent");
}

void ssm_session_writable(struct ssm_session *s)
{
    if (!ssm_session_live(s))
        return;
    if (s->mode.mux && !session_flush_ctrl(s)) {
        dc_channel_want_writable(s->ch);
        return;
    }
    /* Room goes to whoever writes first, and a bulk stream takes all of
     * it: who goes first turns with each wake, or the streams at the
     * front of the list starve the rest (a soak upload waited 150 s
     * behind newer connections). */
    if (s->mode.mux && s->streams.next != s->streams.prev) {
        struct list *first = s->streams.next;
        list_remove(first);
        list_insert_tail(&s->streams, first);
    }
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    if (st->reported && !st->dead)
        st->cb->on_drain(st->arg);
}

int ssm_stream_new(struct ssm_session *s, int no_reply, const char *push_user,
                   const struct backend_cb *cb, void *arg,
                   struct backend_stream **out)
{
    struct backend_stream *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return GW_ENOMEM;
    *st = (struct backend_stream){.sess = s,
                                  .cb = cb,
                                  .arg = arg,
                                  .sid = s->next_sid,
                                  .syn_seq = -1,
                                  .last_seq = -1,
                                  .no_hold = no_reply,
                                  .resumes_at_join = s->resumes,
                                  .joined = s->n_streams > 0 || s->opened};
    st->notify.cb = stream_notify;
    st->born = uv_now(s->env->loop);
    if (push_user != NULL)
        snprintf(st->user, sizeof(st->user), "%s", push_user);
    s->next_sid += 2;
    list_insert_head(&s->streams, &st->link);
    s->n_streams++;
    s->linger_until = 0;
    if (s->state == SSM_WAKING &&
        cb->on_wait != NULL) /* joined a session waiting for a start */
        cb->on_wait(arg, (uint64_t)s->spec.start_timeout_ms,
                    "its instance is starting");
    s->idle_since = 0;
    /* A session past its lookup knows the instance: the push starts now,
     * beside the SYN; a new one starts it beside StartSession, a waking
     * one once its instance is up. */
    if (s->state != SSM_RESOLVING && s->state != SSM_WAKING)
        ssm_stream_push_key(st);
    if (s->opened) {              /* joined an open session */
        uv_timer_stop(&s->timer); /* no longer lingering */
        log_debug("ssm %llu: new smux stream %u on session %s",
                  (unsigned long long)s->id, st->sid, s->session_id);
        st->syn_sent = 1;
        ssm_session_send_ctrl(s, SMUX_SYN, st->sid);
        ssm_stream_opened(st);
    }
    *out = st;
    return 0;
}

ssize_t ssm_stream_write(struct backend_stream *st, const uint8_t *p, size_t n)
{
    struct ssm_session *s = st->sess;
    if (st->dead || s->state == SSM_CLOSED)
        return GW_ECLOSED;
    if (s->ch == NULL)
        return 0;
    st->wrote |= n > 0;
    if (!s->mode.mux) {
        ssize_t w = dc_channel_write(s->ch, p, n);
        if (w > 0)
            stream_count(st, (size_t)w);
        return w;
    }
    if (!session_flush_ctrl(s)) {
        dc_channel_want_writable(s->ch);
        return 0;
    }
    /* One PSH frame that fits the window whole, so frames never split
     * between what was taken and what was not. */
    size_t room = dc_channel_room(s->ch);
    if (room <= SMUX_HDR_LEN) {
        dc_channel_want_writable(s->ch);
        return 0;
    }
    size_t k = GW_MIN(GW_MIN(n, room - SMUX_HDR_LEN), (size_t)SMUX_MAX_PSH);
    uint8_t frame[SMUX_HDR_LEN + SMUX_MAX_PSH];
    smux_put_hdr(frame, SMUX_PSH, st->sid, (uint16_t)k);
    memcpy(frame + SMUX_HDR_LEN, p, k);
    ssize_t taken = dc_channel_write(s->ch, frame, SMUX_HDR_LEN + k);
    if (taken < 0)
        return taken;
    CHECK((size_t)taken == SMUX_HDR_LEN + k);
    st->last_seq = dc_channel_last_seq(s->ch);
    stream_count(st, k);
    return (ssize_t)k;
}

/* Stream mode has no half-close: once the client is done and the agent
 * acknowledged every byte, the session has nothing left to carry, so end
 * it rather than wait on a remote that may never speak again. */
void ssm_session_drain_check(uv_timer_t *t)
{
    struct ssm_session *s = t->data;
    if (!ssm_session_live(s) || s->ch == NULL || list_empty(&s->streams))
        return;
    if (dc_channel_unacked(s->ch) > 0)
        return;
    struct backend_stream *st =
        CONTAINER_OF(s->streams.next, struct backend_stream, link);
    /* Basic mode: the agent drops the destination on DisconnectToPort,
     * and a destination that closed is not heard of; wait for quiet. */
    if (s->mode.basic && st->paused)
        st->quiet_since = uv_now(s->env->loop);
    if (s->mode.basic && uv_now(s->env->loop) - st->quiet_since <
                             (uint64_t)s->env->opts->half_close_linger_ms)
        return;
    uv_timer_stop(&s->timer);
    if (!st->eof_sent && !st->dead) {
        st->eof_sent = 1;
        st->cb->on_eof(st->arg);
    }
}

static void session_fin_timer(uv_timer_t *t)
{
    ssm_session_fin_check(t->data);
}

void ssm_session_fin_check(struct ssm_session *s)
{
    uint64_t now = uv_now(s->env->loop);
    uint64_t linger = (uint64_t)s->env->opts->half_close_linger_ms;
    uint64_t next = UINT64_MAX;
    struct backend_stream *st, *tmp;
    SSM_STREAM_FOREACH(st, tmp, s)
    {
        if (!st->fin_held || st->dead)
            continue;
        /* Reads paused for a slow client: the destination is not quiet,
         * it is waiting for us. Nor is it before the agent has the
         * client's every byte: a SYN or request still unacknowledged (a
         * resume on the way) has not reached it, so it had no chance to
         * answer yet. */
        if (s->paused_streams > 0 || st->syn_seq < 0 || s->ch == NULL ||
            !dc_channel_acked(s->ch, GW_MAX(st->syn_seq, st->last_seq)))
            st->quiet_since = now;
        uint64_t quiet = now - st->quiet_since;
        if (quiet < linger) {
            next = GW_MIN(next, linger - quiet);
            continue;
        }
        log_debug("ssm %llu: stream %u: destination quiet %llu ms, FIN",
                  (unsigned long long)s->id, st->sid,
                  (unsigned long long)quiet);
        st->fin_held = 0;
        st->fin_sent = 1;
        ssm_session_send_ctrl(s, SMUX_FIN, st->sid);
    }
    if (next == UINT64_MAX)
        uv_timer_stop(&s->fin_timer);
    else
        uv_timer_start(&s->fin_timer, session_fin_timer, next, 0);
}

int ssm_stream_shutdown(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (s->ch == NULL || !ssm_session_live(s) || st->dead)
        return 0;
    uint64_t now = uv_now(s->env->loop);
    st->quiet_since = GW_MAX(st->quiet_since, now);
    if (s->mode.mux) {
        /* ssh never half-closes (its client's EOF is its end, and sshd
         * waits for it before it closes): the FIN goes at once. */
        if (!st->fin_sent && !st->fin_held && st->user[0] != '\0') {
            st->fin_sent = 1;
            ssm_session_send_ctrl(s, SMUX_FIN, st->sid);
        } else if (!st->fin_sent && !st->fin_held) {
            st->fin_held = 1;
            ssm_session_fin_check(s);
        }
        return 0;
    }
    s->local_eof = 1;
    uv_timer_start(&s->timer, ssm_session_drain_check, 0, 100);
    return 0;
}

/* smux v1 has no per-stream flow control: pausing one stream pauses the
 * session's reads, so every stream of it waits for the slowest reader. */
void ssm_stream_pause(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (st->paused)
        return;
    st->paused = 1;
    log_debug("ssm %llu: stream %u: client slow, reads paused (%d)",
              (unsigned long long)s->id, st->sid, s->paused_streams + 1);
    if (s->paused_streams++ == 0 && s->ch != NULL)
        dc_channel_pause_rx(s->ch, 1);
}

void ssm_stream_resume(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (!st->paused)
        return;
    st->paused = 0;
    log_debug("ssm %llu: stream %u: client drained (%d paused)",
              (unsigned long long)s->id, st->sid, s->paused_streams - 1);
    if (--s->paused_streams == 0 && s->ch != NULL)
        dc_channel_pause_rx(s->ch, 0);
}

void ssm_stream_close(struct backend_stream *st)
{
    struct ssm_session *s = st->sess;
    if (st->paused)
        ssm_stream_resume(st);
    if (st->holding) { /* the client left before the report */
        st->holding = 0;
        s->n_holding--;
    }
    /* A stream the agent knows of ends with a FIN, reported or not. */
    if (s->mode.mux && ssm_session_live(s) && !st->fin_sent && st->syn_sent)
        ssm_session_send_ctrl(s, SMUX_FIN, st->sid);
    /* Basic mode: the local connection ended; the agent closes its
     * destination connection (as the plugin tells it). */
    if (s->mode.basic && ssm_session_live(s) && st->reported && !st->dead) {
        int rc = dc_channel_send_flag(s->ch, DC_FLAG_DISCONNECT_TO_PORT);
        log_debug("ssm %llu: DisconnectToPort: %s", (unsigned long long)s->id,
                  rc == 0 ? "queued" : gw_strerror(rc));
    }
    list_remove(&st->link);
    s->n_streams--;
    st->dead = 1;
    st->closed = 1;
    if (!st->in_notify)
        stream_free(st);
    if (s->state == SSM_CLOSED) {
        /* Failed earlier: the session waits for its last stream. */
        if (s->n_streams == 0)
            ssm_session_close_timer(s);
        return;
    }
    if (s->n_streams == 0) {
        s->idle_since = uv_now(s->env->loop);
        s->env->on_idle(s, s->env->arg);
    }
}

int ssm_stream_shared(const struct backend_stream *st)
{
    return st->sess->mode.mux ? st->sess->n_streams : 0;
}

void ssm_stream_describe(const struct backend_stream *st,
                         struct backend_stream_info *out)
{
    const struct ssm_session *s = st->sess;
    snprintf(out->session_id, sizeof(out->session_id), "%s", s->started_id);
    snprintf(out->instance, sizeof(out->instance), "%s", s->instance);
    snprintf(out->region, sizeof(out->region), "%s", s->region);
    out->resumes = GW_MAX(s->resumes - st->resumes_at_join, 0);
    out->joined = st->joined;
    snprintf(out->document, sizeof(out->document), "%s",
             tunnel_document(s->spec.kind));
}
