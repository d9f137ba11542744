/*
 * keypush.h - EC2 Instance Connect key pushes, shared and cached.
 *
 * For each connection to an SSH port of an EC2 instance the current public
 * key must be on the instance (SendSSHPublicKey: valid 60 s, per
 * (instance, OS user)). keypush:
 *   - reuses a push that is still fresh (younger than reuse_ms, default
 *     40 s, and made with the current key generation);
 *   - lets concurrent connects for the same (profile, region, instance,
 *     user) share ONE in-flight push (a waiters list; each waiter can
 *     cancel on its own);
 *   - skips "mi-" targets (no EIC for managed nodes) and reports success;
 *   - caps pushes in flight (default 8; AWS throttles bursts of ~25) and
 *     queues the rest in arrival order;
 *   - re-pushes when the key rotated while a push was in flight.
 * Every result is delivered asynchronously (never from inside
 * keypush_start), errors with the struct aws_error of the failed call.
 *
 * Owns: the cache entries, the waiters, the pending API calls, one timer
 * for asynchronous completions. Borrows the key ring and the API.
 */
#ifndef SSMGATE_KEYPUSH_H
#define SSMGATE_KEYPUSH_H

#include <stdint.h>
#include <uv.h>

#include "aws_ec2ic.h"
#include "key.h"

#define KEYPUSH_REUSE_MS     40000
#define KEYPUSH_MAX_INFLIGHT 8

/*
 * The API call, injected so tests can drive keypush with a fake. send has
 * the shape of aws_ec2ic_send_ssh_public_key with ctx in front; it must
 * call done exactly once, never from inside send, unless cancel was
 * called first; NULL return = could not start (GW_EIO reported).
 * daemon.c wires the real one (aws_ec2ic_send_ssh_public_key).
 */
struct keypush_api {
    struct aws_call *(*send)(void *ctx, const char *profile, const char *region,
                             const char *instance_id, const char *os_user,
                             const char *public_key, aws_ec2ic_done_cb *done,
                             void *arg);
    void (*cancel)(void *ctx, struct aws_call *call);
    void *ctx;
};

struct stats;

struct keypush_opts {
    uint64_t reuse_ms;   /* 0 = KEYPUSH_REUSE_MS */
    int max_inflight;    /* 0 = KEYPUSH_MAX_INFLIGHT */
    struct stats *stats; /* pushes made, failed, reused; NULL = none */
};

struct keypush;
struct keypush_wait;

/*
 * status 0: the current key is on the instance for the user (or the
 * target needs no push). Otherwise a gw error; err (may be NULL) is the
 * failed call's error, borrowed for the callback. After this call the
 * wait handle is gone.
 */
typedef void keypush_done_cb(void *arg, int status,
                             const struct aws_error *err);

/* opts may be NULL. ring and api (copied) are borrowed. */
int keypush_new(uv_loop_t *loop, const struct key_ring *ring,
                const struct keypush_api *api, const struct keypush_opts *opts,
                struct keypush **out);
/* Cancels pending calls; no further callbacks (also when called from
 * inside one). Frees once the timer closed (keep the loop running). NULL
 * is fine. */
void keypush_free(struct keypush *kp);

/*
 * Makes sure the current key is pushed for (profile, region, instance,
 * user); profile/region may be NULL or "" (the API's defaults). Returns 0
 * with a handle in *out (may be NULL if the caller never cancels) and
 * done called later exactly once unless cancelled; or GW_ENOMEM /
 * GW_EINVAL (no callback then).
 */
int keypush_start(struct keypush *kp, const char *profile, const char *region,
                  const char *instance_id, const char *os_user,
                  keypush_done_cb *done, void *arg, struct keypush_wait **out);
/* done will not run for w. The shared push goes on for the others. */
void keypush_cancel(struct keypush_wait *w);

/* Calls to the API made so far and pushes in flight (tests, status). */
uint64_t keypush_calls(const struct keypush *kp);
int keypush_inflight(const struct keypush *kp);

#endif
