/*
 * aws_call.h - one AWS request, start to typed result, on the loop: the
 * engine under the facade (aws.c) and the credential providers.
 *
 * A call is built once (struct aws_req, copied), signed with the
 * credentials it is handed (a private copy, so a clock-skew retry can
 * re-sign by itself; NULL = unsigned), sent over http.c, retried as the
 * SDKs' standard mode with the context's retry quota, and reported once
 * through its callback, never from inside the function that started it.
 * It knows no profile and no credential chain: an ExpiredToken answer is
 * reported as GW_EEXPIRED, for the owner to act on.
 *
 * struct aws_call_ctx owns the loop's HTTP client handle (borrowed), the
 * clock skew, the retry quota and the list of live calls.
 */
#ifndef SSMGATE_AWS_CALL_H
#define SSMGATE_AWS_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "aws_error.h"
#include "aws_proto.h"
#include "aws_sigv4.h"

struct aws_call;
struct aws_call_ctx;
struct http_client;
struct stats;

/*
 * The result of one call. status 0: response is the parsed JSON response
 * (for Query services, the Result element converted to a JSON object),
 * borrowed for the duration of the callback. status < 0: err says why.
 */
typedef void aws_done_cb(void *arg, int status, json_t *response,
                         const struct aws_error *err);

struct aws_req {
    const struct aws_svc *svc;  /* protocol, target, version */
    const char *action;         /* < 64 bytes */
    const char *method;         /* NULL = POST */
    const char *url;            /* whole request URL */
    const char *const *headers; /* extra lines, NULL-terminated */
    const char *body;           /* signed exactly as sent */
    size_t body_len;
    const char *signing_region, *signing_name;
    const char *ca_file; /* NULL = system trust store */
    /* What the service counts the action's rate by besides the region
     * (the facade: the profile, which stands for one account), so a
     * throttle line outlives a key refresh; NULL = the access key. */
    const char *rate_scope;
};

/* What an owner (the facade) adds to a call: all optional. */
struct aws_call_hooks {
    /* A held call (aws_call_new) runs this from the loop. */
    void (*begin)(struct aws_call *call, void *owner);
    /* Sees every result before the callback; may rewrite *status. Return
     * 1 to keep the call (it waits for aws_call_resume or aws_call_fail
     * and may be gone when this returns), 0 to report. */
    int (*answer)(struct aws_call *call, void *owner, int *status);
    /* Before an attempt that waited (a retry, a throttle line): fresher
     * credentials at hand now, or NULL to keep the call's copy. Must not
     * wait: keys about to expire are the answer hook's business. */
    const struct aws_sigv4_creds *(*refresh)(struct aws_call *call,
                                             void *owner);
    /* Reports instead of the call's done callback (for a call that is
     * not an API call, e.g. a credentials request). */
    void (*report)(struct aws_call *call, void *owner, int status,
                   const struct aws_error *err);
    /* The call is going away (after its report, or cancelled). */
    void (*release)(void *owner);
};

struct aws_call_ctx *aws_call_ctx_new(uv_loop_t *loop,
                                      struct http_client *http);
/* Cancels every call (no callbacks) and frees the context once their
 * handles are closed; then idle(arg) runs (see aws_call_ctx_set_idle). */
void aws_call_ctx_free(struct aws_call_ctx *x);
/* idle(arg) runs whenever the last call's handle closed. */
void aws_call_ctx_set_idle(struct aws_call_ctx *x, void (*idle)(void *arg),
                           void *arg);
/* Calls not yet ended (reported or cancelled), and whether one of their
 * callbacks is running. */
int aws_call_ctx_pending(const struct aws_call_ctx *x);
int aws_call_ctx_busy(const struct aws_call_ctx *x);
uv_loop_t *aws_call_ctx_loop(const struct aws_call_ctx *x);
/* The retry settings of the default profile (retry_mode, max_attempts;
 * NULL = unset); AWS_RETRY_MODE and AWS_MAX_ATTEMPTS win over them.
 * retry_mode adaptive queues every signed call behind its limiter;
 * otherwise only the throttle-prone ones (StartSession, ResumeSession,
 * SendSSHPublicKey) are, whose bursts ssmgate itself makes. */
void aws_call_ctx_set_retry(struct aws_call_ctx *x, const char *mode,
                            const char *max_attempts);
/* A call waiting in a throttle line fails (GW_ETIMEOUT, naming the
 * throttle) once ms passed since it started, if its own deadline is not
 * sooner. */
void aws_call_ctx_set_queue_deadline(struct aws_call_ctx *x, int ms);
struct http_client *aws_call_ctx_http(const struct aws_call_ctx *x);
/* Counts every request sent by (action, code) in st (borrowed; NULL =
 * not counted): "ok", the service's error code, "http_NNN" for an error
 * answer without one, "timeout" or "network" when no answer came. */
void aws_call_ctx_set_stats(struct aws_call_ctx *x, struct stats *st);

/* Starts r signed with creds (copied; NULL = unsigned). Returns the call
 * for aws_call_cancel, or NULL when it could not be queued (done is then
 * not called). */
struct aws_call *aws_call_send(struct aws_call_ctx *x, const struct aws_req *r,
                               const struct aws_sigv4_creds *creds,
                               aws_done_cb *done, void *arg);

/* A call that reports status (< 0) with message from the loop: a request
 * that could not be built still answers through its callback. */
struct aws_call *aws_call_send_failed(struct aws_call_ctx *x, int status,
                                      const char *message, aws_done_cb *done,
                                      void *arg);

/* A held call: hooks->begin runs from the loop; the owner then calls
 * aws_call_resume or aws_call_fail. done/arg as for aws_call_send. */
struct aws_call *aws_call_new(struct aws_call_ctx *x,
                              const struct aws_call_hooks *hooks, void *owner,
                              aws_done_cb *done, void *arg);
/* Sends the next attempt of a held call: r (copied) the first time, NULL
 * afterwards to keep it; creds replace the call's copy. Failures are
 * reported through the call. */
void aws_call_resume(struct aws_call *call, const struct aws_req *r,
                     const struct aws_sigv4_creds *creds);
/* Reports status (< 0 with message, or 0 for a hooks->report call). */
void aws_call_fail(struct aws_call *call, int status, const char *message);

/* done will not run. */
void aws_call_cancel(struct aws_call *call);
/* Runs cleanup(arg) when the call ends without its callback (cancelled),
 * so wrappers can free their per-call state. */
void aws_call_set_cleanup(struct aws_call *call, void (*cleanup)(void *arg));
/* From inside the call's own done callback only: run the same call again
 * (same handle, same callback) with new input, e.g. the next page.
 * Takes a reference to input. Returns 0 or GW_EINVAL. */
int aws_call_again(struct aws_call *call, json_t *input);

#endif
