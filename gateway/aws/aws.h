/*
 * aws.h - "call SERVICE.ACTION with this input for profile P in region R,
 * tell me the result or a typed error", on the libuv loop.
 *
 * struct aws_client owns the HTTP client, the credential cache (per
 * profile, refreshed ahead of expiry, one refresh shared by all waiters)
 * and the retry quota. Each call resolves the region and endpoint, gets
 * credentials, signs (SigV4), sends, retries as the SDKs' standard mode
 * and reports exactly once through its callback (never from inside the
 * function that started it).
 */
#ifndef SSMGATE_AWS_H
#define SSMGATE_AWS_H

#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "aws_sigv4.h"

struct aws_client;
struct aws_call;
struct http_client;

struct aws_client_opts {
    const char *default_profile; /* NULL/"" = AWS_PROFILE, then "default" */
    const char *default_region;  /* NULL/"" = env, then profile region */
};

/* A failed call. code/message come from the AWS error body; for transport
 * failures code is "" and transport holds a gw_err. */
struct aws_error {
    char code[128];     /* e.g. "AccessDeniedException" */
    char message[1024]; /* AWS's message; never holds a secret */
    char request_id[128];
    long http_status; /* 0 when no response */
    int transport;    /* 0 or gw_err (GW_ETIMEOUT, GW_EIO, ...) */
    int attempts;     /* how many attempts were made */
    int retryable;    /* would the SDKs retry it */
};

/* One line a person understands: "CODE: message (HTTP 400, 3 attempts)". */
const char *aws_error_str(const struct aws_error *err, char *buf, size_t len);

/*
 * The result of one call. status 0: response is the parsed JSON response
 * (for Query services, the Result element converted to a JSON object),
 * borrowed for the duration of the callback. status < 0: err says why
 * (GW_EAWS for an AWS error, GW_ENO_CREDS, GW_ENO_REGION, GW_ETIMEOUT,
 * GW_EIO, GW_ECANCELED never reaches a callback).
 */
typedef void aws_done_cb(void *arg, int status, json_t *response,
                         const struct aws_error *err);

struct aws_client *aws_client_new(uv_loop_t *loop,
                                  const struct aws_client_opts *opts);
/* Cancels pending calls (no callbacks) and frees once handles close. */
void aws_client_free(struct aws_client *c);

/*
 * Calls service ("ssm", "ec2-instance-connect", "sts", ...) action with
 * input (borrowed; JSON object; for Query services flattened to form
 * parameters). profile/region NULL or "" = defaults. Returns a handle for
 * aws_call_cancel, or NULL when the call could not even be queued (then
 * done is not called).
 */
struct aws_call *aws_call_start(struct aws_client *c, const char *service,
                                const char *action, json_t *input,
                                const char *profile, const char *region,
                                aws_done_cb *done, void *arg);
/* done will not run. */
void aws_call_cancel(struct aws_call *call);

/* Calls still pending (shutdown waits for TerminateSession). */
int aws_client_pending(const struct aws_client *c);

/* Resolved credentials for signing something else (the data channel's
 * WebSocket upgrade). Valid during the callback only; copy what you keep. */
typedef void aws_creds_cb(void *arg, int status,
                          const struct aws_sigv4_creds *creds,
                          const char *region, const struct aws_error *err);

/* Fresh (refreshed if near expiry) credentials and the resolved region for
 * profile/region. Returns a handle for aws_call_cancel or NULL. */
struct aws_call *aws_get_credentials(struct aws_client *c, const char *profile,
                                     const char *region, aws_creds_cb *done,
                                     void *arg);

/* The CA bundle (AWS_CA_BUNDLE / profile ca_bundle) for profile, or NULL,
 * so the WebSocket client trusts the same roots as the API client. */
const char *aws_ca_bundle(struct aws_client *c, const char *profile);

/*
 * For the credential providers (aws_sts.c, aws_sso.c): a call signed with
 * the given credentials (creds NULL = unsigned: AssumeRoleWithWebIdentity,
 * SSO) instead of the profile's chain. region must be set. Otherwise as
 * aws_call_start.
 */
struct aws_call *aws_call_start_with(struct aws_client *c, const char *service,
                                     const char *action, json_t *input,
                                     const char *profile, const char *region,
                                     const struct aws_sigv4_creds *creds,
                                     aws_done_cb *done, void *arg);

/* Runs cleanup(arg) when the call ends without its callback (cancelled),
 * so wrappers can free their per-call state. */
void aws_call_set_cleanup(struct aws_call *call, void (*cleanup)(void *arg));

/* From inside the call's own done callback only: run the same call again
 * (same handle, same callback) with new input, e.g. the next page.
 * Takes a reference to input. Returns 0 or GW_EINVAL. */
int aws_call_again(struct aws_call *call, json_t *input);

/* The loop and HTTP client of c (for the credential providers). */
uv_loop_t *aws_client_loop(struct aws_client *c);
struct http_client *aws_client_http(struct aws_client *c);

#endif
