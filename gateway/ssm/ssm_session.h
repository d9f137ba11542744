/*
 * ssm_session.h - one Session Manager session and its streams.
 *
 * A session resolves its target (Name -> instance id), starts the session
 * (StartSession, and for SSH the key push alongside), opens the data
 * channel, and carries its streams: one raw byte stream, or smux v1
 * streams for port forwards (later connections join as new streams). It
 * resumes a dropped WebSocket and hands its TerminateSession to the owner
 * when it ends. The owner (backend_ssm.c) keeps the list of sessions,
 * decides who joins which, lingers idle sessions and runs the keepalive
 * timer; it talks to a session only through this header.
 */
#ifndef SSMGATE_SSM_SESSION_H
#define SSMGATE_SSM_SESSION_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "backend.h"
#include "list.h"
#include "ssm_opts.h"
#include "tunnel.h"

struct aws_client;
struct dc_channel;
struct keypush;
struct ssm_names;
struct ssm_session;
struct ws_ctx;

struct ssm_env { /* from the owner; outlives every session */
    uv_loop_t *loop;
    struct aws_client *aws;
    struct ws_ctx *ws;
    struct keypush *keys; /* NULL: no key push */
    const struct ssm_opts *opts;
    struct ssm_names *names;
    struct ssm_starts *starts; /* stopped instances started; NULL = none */
    struct list *sessions;     /* the owner's list; a session links itself */
    uint64_t *next_id;         /* the owner's session counter */
    /* The last stream left an unbroken session. */
    void (*on_idle)(struct ssm_session *s, void *arg);
    /* The session ended: TerminateSession is the owner's to call, after
     * flushing (non-NULL: hand it to dc_channel_free_after_flush). */
    void (*on_ended)(const char *session_id, const char *profile,
                     const char *region, struct dc_channel *flushing,
                     void *arg);
    /* AWS-StartPortForwardingSession was denied for an ssh session that
     * falls back: ssh with this profile and region should use
     * AWS-StartSSHSession from now on. why holds the AWS code and message. */
    void (*on_denied)(const char *profile, const char *region, const char *why,
                      void *arg);
    void *arg;
};

/* A new session on env->sessions; it starts from the loop. fallback: a
 * port forward carrying ssh that turns into AWS-StartSSHSession when its
 * StartSession is denied (ssh_document = auto). */
struct ssm_session *ssm_session_new(const struct ssm_env *env,
                                    const struct tunnel_spec *spec,
                                    int fallback);
/* Unlinks, ends the AWS side, and frees once its last stream closed. */
void ssm_session_free(struct ssm_session *s);
struct ssm_session *ssm_session_from_link(struct list *l);
const struct tunnel_spec *ssm_session_spec(const struct ssm_session *s);
/* Another connection may join: a port forward, not broken, smux or mode
 * not known yet, stream ids left. */
int ssm_session_joinable(const struct ssm_session *s);
int ssm_session_idle(const struct ssm_session *s);
/* Idle and worth keeping for the next connection (open smux). */
int ssm_session_lingers(const struct ssm_session *s);
/* Frees the session ms after it went idle (a resume on the way does not
 * restart the count) unless a stream joined by then. */
void ssm_session_linger(struct ssm_session *s, uint64_t ms);
/* Its streams that are busy (opening, or moving bytes): its load. */
int ssm_session_busy(const struct ssm_session *s);

/* What `ssmgate status` shows of a session. */
struct ssm_session_info {
    uint64_t id;
    const char *state;
    const char *document;
    const char *target;  /* the instance, else the target as asked */
    const char *profile; /* "" = the default chain */
    const char *region;
    const char *session_id; /* "" before StartSession answered */
    int streams;
    int busy;
    uint64_t idle_ms; /* 0 while it carries a connection */
};
void ssm_session_info(const struct ssm_session *s,
                      struct ssm_session_info *out);

/* A keepalive tick: sends a NOP if the session wants them and is open.
 * 0 when the session will never want one (the owner may stop its timer). */
int ssm_session_keepalive(struct ssm_session *s);

/* A new stream on s (joining, or the first); no_reply (a [forward]
 * port): its open is reported without waiting for the destination.
 * push_user (ssh; NULL = none): the OS user whose key is pushed with EC2
 * Instance Connect before the stream is reported open. */
int ssm_stream_new(struct ssm_session *s, int no_reply, const char *push_user,
                   const struct backend_cb *cb, void *arg,
                   struct backend_stream **out);
ssize_t ssm_stream_write(struct backend_stream *st, const uint8_t *p, size_t n);
int ssm_stream_shutdown(struct backend_stream *st);
void ssm_stream_pause(struct backend_stream *st);
void ssm_stream_resume(struct backend_stream *st);
void ssm_stream_close(struct backend_stream *st);
int ssm_stream_shared(const struct backend_stream *st);
void ssm_stream_describe(const struct backend_stream *st,
                         struct backend_stream_info *out);

#endif
