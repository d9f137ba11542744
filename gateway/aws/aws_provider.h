/*
 * aws_provider.h - a credential provider's request (STS, SSO): the
 * endpoint of (profile, region), the body, the URL and the CA bundle,
 * handed to the engine with explicit credentials or none. Below the
 * credential chain, above the engine: no aws.h, no aws_creds.h.
 */
#ifndef SSMGATE_AWS_PROVIDER_H
#define SSMGATE_AWS_PROVIDER_H

#include <jansson.h>

#include "aws_call.h"
#include "aws_profile.h"

struct aws_provider_req {
    const char *service; /* "sts", "sso", "sso-oidc" */
    const char *action;
    json_t *input;              /* body (borrowed); none for a GET */
    const char *method;         /* NULL = POST */
    const char *path;           /* after the endpoint's '/'; NULL = "" */
    const char *const *headers; /* extra lines, NULL-terminated */
};

/* Sends pr for profile (endpoint overrides, CA bundle) in region, signed
 * with creds (NULL = unsigned). A request that cannot be built is
 * reported through done. Returns NULL when nothing could be queued. */
struct aws_call *aws_provider_send(struct aws_call_ctx *x,
                                   const struct aws_profiles *p,
                                   const char *profile, const char *region,
                                   const struct aws_provider_req *pr,
                                   const struct aws_sigv4_creds *creds,
                                   aws_done_cb *done, void *arg);

#endif
