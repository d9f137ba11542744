/*
 * aws_creds.h - the credential provider chain (AWS CLI v2 order) and the
 * per-profile credential cache.
 *
 * Owns: one cache entry per profile name, refresh ahead of expiry
 * (advisory under 15 min: one refresh in the background, the old keys
 * still served; mandatory under 10 min: callers wait), one in-flight
 * refresh per profile shared by every waiter; the providers: environment,
 * assume role (source_profile / credential_source, chained), web
 * identity, SSO, shared credentials keys, credential_process, config
 * keys, container, IMDSv2, and `aws configure export-credentials`.
 */
#ifndef SSMGATE_AWS_CREDS_H
#define SSMGATE_AWS_CREDS_H

#include <time.h>

#include "aws_parse.h"
#include "aws_profile.h"

struct aws_call_ctx;
struct http_client;

struct aws_creds {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when none */
    time_t expiration;   /* 0 = never */
    const char *source;  /* provider name, for logs */
};

struct aws_creds_cache;
struct aws_creds_wait;

/* creds valid during the callback only; why is a one-line reason when
 * status < 0 (GW_ENO_CREDS, GW_EAWS, GW_ETIMEOUT, ...). */
typedef void aws_creds_ready_cb(void *arg, int status,
                                const struct aws_creds *creds, const char *why);

/* The providers' STS / SSO calls go through x, the container and IMDS
 * requests through http (both borrowed, as is p). */
struct aws_creds_cache *aws_creds_cache_new(struct aws_call_ctx *x,
                                            struct http_client *http,
                                            const struct aws_profiles *p);
/* Cancels pending waits (no callbacks) and in-flight providers. */
void aws_creds_cache_free(struct aws_creds_cache *cc);

/*
 * Credentials for profile. explicit_profile: the name was given (not
 * from AWS_PROFILE), so environment keys are skipped. When the cached
 * credentials are fresh, returns 0 with *now set and no callback.
 * Otherwise returns 0 with *wait set: cb runs later. force: ignore the
 * cache (after ExpiredToken). Returns < 0 when nothing could be started.
 */
int aws_creds_get(struct aws_creds_cache *cc, const char *profile,
                  int explicit_profile, int force, const struct aws_creds **now,
                  struct aws_creds_wait **wait, aws_creds_ready_cb *cb,
                  void *arg, char *why, size_t why_len);
/* cb will not run. */
void aws_creds_wait_cancel(struct aws_creds_wait *w);

#endif
