/*
 * backend_ssm.h - the SSM backend: a tunnel_spec becomes a Session Manager
 * session (StartSession, the data channel, the handshake) whose byte
 * stream the pump drives through backend.h.
 */
#ifndef SSMGATE_BACKEND_SSM_H
#define SSMGATE_BACKEND_SSM_H

#include <uv.h>

#include "backend.h"
#include "ssm_opts.h"
#include "ssm_start.h"

struct aws_client;
struct keypush;
struct ws_ctx;

struct backend_ssm;

/* aws, ws and keys (may be NULL: no key push) are borrowed. */
int backend_ssm_new(uv_loop_t *loop, struct aws_client *aws, struct ws_ctx *ws,
                    struct keypush *keys, const struct ssm_opts *opts,
                    struct backend_ssm **out);
/* New options (SIGHUP): sessions started from now on use them; open
 * sessions keep the rate, payload size and timeouts they started with,
 * except the resume budget, which is read when a resume begins, the
 * half-close linger, read when a held client EOF is checked, and the
 * open confirmation wait, read when a stream opens. */
void backend_ssm_set_opts(struct backend_ssm *b, const struct ssm_opts *opts);
/* The struct backend to register with the server. */
const struct backend *backend_ssm_backend(struct backend_ssm *b);
/* Ends idle (lingering) sessions now, starting their TerminateSession
 * calls; call it when the server drained, then let those calls finish. */
void backend_ssm_close_idle(struct backend_ssm *b);
/* Call once no stream is open any more (after the server drained). */
void backend_ssm_free(struct backend_ssm *b);
/* Sessions on the list: starting, open, resuming or lingering idle. */
int backend_ssm_sessions(const struct backend_ssm *b);
/* Each session on the list, for `ssmgate status`. */
struct ssm_session_info;
typedef void backend_ssm_session_cb(const struct ssm_session_info *i,
                                    void *arg);
void backend_ssm_foreach_session(struct backend_ssm *b,
                                 backend_ssm_session_cb *cb, void *arg);
/* TerminateSession calls waiting for a session's last flags to go out. */
int backend_ssm_terminating(const struct backend_ssm *b);
/* Each stopped instance being started for a connection (status). */
void backend_ssm_foreach_start(const struct backend_ssm *b, ssm_start_fn *fn,
                               void *arg);

#endif
