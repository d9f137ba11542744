/*
 * aws.h - "call SERVICE.ACTION with this input for profile P in region R,
 * tell me the result or a typed error", on the libuv loop.
 *
 * struct aws_client owns the HTTP client, the credential cache (per
 * profile, refreshed ahead of expiry, one refresh shared by all waiters)
 * and the request engine (aws_call.h: retry quota, clock skew). Each call
 * resolves the region and endpoint, gets credentials, and hands both to
 * the engine, which signs (SigV4), sends, retries as the SDKs' standard
 * mode and reports exactly once through its callback (never from inside
 * the function that started it). The handle is the engine's struct
 * aws_call: aws_call_cancel, aws_call_set_cleanup and aws_call_again come
 * from aws_call.h.
 */
#ifndef SSMGATE_AWS_H
#define SSMGATE_AWS_H

#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "aws_call.h"
#include "aws_error.h"

struct aws_client;
struct aws_call;
struct http_client;

struct proxy;

struct aws_client_opts {
    const char *default_profile; /* NULL/"" = AWS_PROFILE, then "default" */
    const char *default_region;  /* NULL/"" = env, then profile region */
    /* How long a call may wait in a throttle line, from its start (the
     * caller's own deadline, e.g. connect_timeout_ms); 0 = the call's. */
    int queue_deadline_ms;
    /* The HTTPS proxy decision (core/proxy.h), copied; NULL = curl's own
     * environment rules. */
    const struct proxy *proxy;
    /* Every request sent is counted here (aws_call_ctx_set_stats);
     * borrowed, NULL = not counted. */
    struct stats *stats;
};

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

/* The profile and region a call with these arguments goes to (the rules
 * of aws_call_start), for a person to read; region "" when none resolves.
 * Returns 0 or GW_ENO_REGION. */
int aws_client_where(struct aws_client *c, const char *profile,
                     const char *region, char *profile_out, size_t pcap,
                     char *region_out, size_t rcap);

/* Calls still pending (shutdown waits for TerminateSession). */
int aws_client_pending(const struct aws_client *c);

/* The CA bundle (AWS_CA_BUNDLE / profile ca_bundle) for profile, or NULL,
 * so the WebSocket client trusts the same roots as the API client. */
const char *aws_ca_bundle(struct aws_client *c, const char *profile);

#endif
