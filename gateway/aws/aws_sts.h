/*
 * aws_sts.h - STS calls that are credential sources: AssumeRole (signed
 * with the source credentials) and AssumeRoleWithWebIdentity (unsigned).
 */
#ifndef SSMGATE_AWS_STS_H
#define SSMGATE_AWS_STS_H

#include "aws_call.h"
#include "aws_parse.h"
#include "aws_profile.h"

/* creds (owned by the callee; valid during the callback) on status 0. */
typedef void aws_sts_creds_cb(void *arg, int status,
                              const struct aws_creds_parsed *creds,
                              const struct aws_error *err);

/* Caller-owned; must live until done runs or the call is cancelled. */
struct aws_sts_req {
    aws_sts_creds_cb *done;
    void *arg;
};

struct aws_sts_role {
    const char *role_arn;
    const char *session_name;
    const char *external_id; /* NULL = omit */
    int duration_seconds;    /* 0 = omit */
};

/* profile (in p) selects endpoint overrides and the CA bundle; region
 * the STS regional endpoint. */
struct aws_call *aws_sts_assume_role(struct aws_call_ctx *x,
                                     const struct aws_profiles *p,
                                     const char *profile, const char *region,
                                     const struct aws_sigv4_creds *source,
                                     const struct aws_sts_role *role,
                                     struct aws_sts_req *req);
struct aws_call *aws_sts_assume_role_web_identity(
    struct aws_call_ctx *x, const struct aws_profiles *p, const char *profile,
    const char *region, const struct aws_sts_role *role, const char *token,
    struct aws_sts_req *req);

/* Credentials element of an AssumeRole* result (JSON from the XML). */
int aws_sts_parse_creds(json_t *result, struct aws_creds_parsed *out);

#endif
