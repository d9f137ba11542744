/*
 * ssm_stream.h - private to ssm_session.c and ssm_stream.c: the session
 * and stream structs and what the two halves call of each other.
 * ssm_session.c owns the session's life (AWS calls, channel, resume,
 * end); ssm_stream.c owns the streams and the bytes (smux framing, early
 * data, the open report).
 */
#ifndef SSMGATE_SSM_STREAM_H
#define SSMGATE_SSM_STREAM_H

#include "aws_ssm.h"
#include "defer.h"
#include "list.h"
#include "smux.h"
#include "ssm_mode.h"
#include "ssm_session.h"

#define SSM_EARLY_MAX (256 * 1024) /* bytes held for a stream not reported */

enum ssm_state {
    SSM_RESOLVING, /* Name -> instance id, DescribeInstanceInformation */
    SSM_STARTING,  /* StartSession, and for SSH the key push, in parallel */
    SSM_WAKING, /* TargetNotConnected: is it stopped? start, wait (ssm_start) */
    SSM_OPENING,  /* signed WebSocket upgrade, handshake */
    SSM_OPEN,     /* bytes flow: stream mode raw, port mode over smux v1 */
    SSM_RESUMING, /* the WebSocket dropped: ResumeSession, reopen, replay */
    SSM_CLOSED,
};

/* One local connection; owned by its conn until close(). */
struct backend_stream {
    struct list link; /* in sess->streams, newest first */
    struct ssm_session *sess;
    uint32_t sid; /* smux stream id (odd, from 3) */
    const struct backend_cb *cb;
    void *arg;
    struct defer notify; /* reports open/failure from the loop */
    int notify_status;
    char *notify_why; /* tunnel_reason_set; NULL: none */
    int reported;     /* on_open was called */
    int in_notify;    /* inside on_open: close() leaves the free to notify */
    int closed;       /* close() ran */
    /* What the agent sent before on_open ran (the report waits for a
     * loop pass; a server that speaks first, like sshd, is quicker). */
    uint8_t *early;
    size_t early_len;
    int early_eof;
    int eof_sent;
    int fin_sent;
    /* The client's EOF, held: smux v1 has no half-close and the agent
     * closes the destination both ways on a FIN (basic mode: on
     * DisconnectToPort), so it goes once the destination ended or was
     * quiet for the linger. */
    int fin_held;
    uint64_t quiet_since; /* uv_now of the last destination bytes */
    /* The open report, held until the destination is known to be there
     * (open_confirm_ms): its first byte, or the wait after the agent
     * acknowledged the SYN (smux) or the handshake (one connection per
     * session) passed with no refusal (ConnectToPortError, a FIN, the
     * session's end). */
    int holding;
    int heard;   /* the destination sent a byte */
    int no_hold; /* a [forward] port: nobody waits for the report */
    int wrote;   /* the client sent a byte */
    int syn_sent;
    int64_t syn_seq;     /* the data-channel message with the SYN; -1 */
    int64_t last_seq;    /* the one with the client's last byte; -1 */
    uint64_t confirm_at; /* uv_now the wait ends; 0: SYN not acked yet */
    uint64_t hold_cap;   /* uv_now it ends whatever the acks do */
    int paused;
    int dead;            /* failed; waiting for close() */
    int resumes_at_join; /* the session's resumes when this stream came */
    int joined;          /* came to a session already started */
    /* ssh: the key push for this OS user ("" = none), run once the
     * session knows its instance; the open report waits for it. */
    char user[TUNNEL_USER_MAX];
    struct keypush_wait *push;
    int push_started;
    int push_pending;
    int push_status; /* its failure (notify_why has the reason), or 0 */
    int open_waits;  /* open, reported once the push is done */
    /* Bytes either way in this second and the one before: its load. */
    uint64_t born; /* uv_now at ssm_stream_new */
    uint64_t win_start;
    size_t win_bytes;
    size_t prev_bytes;
};

/* One SSM session; on the owner's list, freed when its last stream left
 * and it was terminated. */
struct ssm_session {
    struct list link; /* in env->sessions, newest first */
    const struct ssm_env *env;
    uint64_t id;
    struct tunnel_spec spec; /* of the first stream */
    enum ssm_state state;
    char instance[TUNNEL_TARGET_MAX];
    char region[64];
    struct aws_call *call;
    struct ssm_start_wait *wake; /* waiting on a stopped instance's start */
    int woken;                   /* asked once: a second miss is final */
    char
        *wake_why; /* StartSession's own error, meanwhile (tunnel_reason_set) */
    int fallback;  /* ssh on a port forward: AWS-StartSSHSession if denied */
    char session_id[AWS_SSM_SESSION_ID_MAX]; /* "" once ended */
    char started_id[AWS_SSM_SESSION_ID_MAX]; /* kept for describe */
    int resumes;                             /* resumed data channels */
    char stream_url[AWS_SSM_URL_MAX];
    char *token;
    struct dc_channel *ch;
    int ready;
    int opened;
    struct ssm_mode mode;
    int shareable; /* a port-forward session other connections may join */
    struct list streams;
    int n_streams;
    uint32_t next_sid;
    int paused_streams;
    int local_eof; /* stream mode: the client finished sending */
    struct smux_rx rx;
    struct smux_ctrl ctrl; /* SYN/FIN/NOP waiting for window room */
    struct defer start;    /* the first step, from the loop */
    uv_timer_t timer;      /* resume back-off, drain check, linger */
    uv_timer_t fin_timer;  /* held client EOFs (smux) */
    uv_timer_t hold_timer; /* held open reports */
    int handles_open;      /* the three timers: freed when all closed */
    int n_holding;         /* streams whose open report is held */
    int port_errors;       /* ConnectToPortError flags not matched yet */
    int by_service;        /* ended by channel_closed */
    uint64_t resume_deadline;
    uint64_t linger_until; /* idle: ends then, recycles or not; 0 = in use */
    uint64_t idle_since;   /* uv_now the last stream left; 0 = in use */
    int resume_attempt;
    int timer_closing; /* the session is on its way out */
};

/* Open, or between sockets: the channel keeps queueing what is written,
 * and a resume delivers it. */
int ssm_session_live(const struct ssm_session *s);
void ssm_session_fail(struct ssm_session *s, int err, const char *why);
/* The timer is closed and the memory freed from its close callback. */
void ssm_session_close_timer(struct ssm_session *s);

#define SSM_STREAM_FOREACH(st, tmp, s)                                         \
    for ((st) = CONTAINER_OF((s)->streams.next, struct backend_stream, link),  \
        (tmp) = CONTAINER_OF((st)->link.next, struct backend_stream, link);    \
         &(st)->link != &(s)->streams; (st) = (tmp),                           \
        (tmp) = CONTAINER_OF((st)->link.next, struct backend_stream, link))

void ssm_stream_report(struct backend_stream *st, int status, const char *why);
/* Starts the stream's key push if it wants one and the session knows its
 * instance (ssm_session.c). */
void ssm_stream_push_key(struct backend_stream *st);
/* Forgets a push that raced StartSession to a stopped instance: the next
 * StartSession starts it again. */
void ssm_stream_push_reset(struct backend_stream *st);
/* A stream opening or younger than SSM_YOUNG_MS, or one that moved
 * SSM_BUSY_BYTES in the last second or two: what spreading counts as
 * load. */
int ssm_stream_busy(const struct backend_stream *st, uint64_t now);
/* The stream is open on the agent's side (SYN sent, or the session's one
 * connection): report it now or hold the report (open_confirm_ms). */
void ssm_stream_opened(struct backend_stream *st);
/* Ends the holds whose wait is over and rearms hold_timer (also on every
 * ack while a report is held). */
void ssm_session_hold_check(struct ssm_session *s);
/* "destination HOST:PORT (via TARGET)" for the reasons. */
void ssm_session_dest(const struct ssm_session *s, char *out, size_t cap);
void ssm_stream_fail(struct backend_stream *st, int err, const char *why);
void ssm_stream_eof(struct backend_stream *st);
/* Queues or writes a header-only smux frame. */
void ssm_session_send_ctrl(struct ssm_session *s, enum smux_cmd cmd,
                           uint32_t sid);
/* The session is up: open every waiting stream. */
void ssm_session_open_streams(struct ssm_session *s);
/* Bytes from the agent (smux or raw). */
void ssm_session_input(struct ssm_session *s, const uint8_t *p, size_t n);
/* Window room again: queued control frames, then every stream's drain. */
void ssm_session_writable(struct ssm_session *s);
/* Stream mode: the client is done; end once the agent acked everything. */
void ssm_session_drain_check(uv_timer_t *t);
/* smux: sends the held FINs whose destination was quiet for the linger,
 * and rearms fin_timer for the rest. */
void ssm_session_fin_check(struct ssm_session *s);

#endif
