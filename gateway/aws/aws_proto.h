/*
 * aws_proto.h - the wire shape of each AWS protocol, pure: which services
 * exist and how they speak (JSON 1.1 with X-Amz-Target, Query forms with
 * XML answers, REST-JSON), the request body built from a JSON input, the
 * generic request URL and the Result element of a Query answer.
 */
#ifndef SSMGATE_AWS_PROTO_H
#define SSMGATE_AWS_PROTO_H

#include <jansson.h>
#include <stddef.h>

#include "aws_endpoint.h"
#include "aws_parse.h"

struct aws_svc {
    const char *name; /* as callers say it */
    enum aws_service svc;
    enum aws_proto proto;
    const char *target_prefix; /* JSON: X-Amz-Target prefix */
    const char *version;       /* Query: Version= */
};

/* The service called name ("ssm", "sts", ...), or NULL. */
const struct aws_svc *aws_svc_find(const char *name);

/* The body of action with input (JSON object) as svc speaks it: compact
 * JSON, or the Query form (Action, Version, flattened input); none for
 * the SSO portal's GET. *body is malloc'd (may stay NULL when empty).
 * Returns 0, GW_ENOMEM, GW_ETOO_BIG or GW_EINVAL. */
int aws_proto_build_body(const struct aws_svc *svc, const char *action,
                         json_t *input, char **body, size_t *len);

/* base with exactly one '/' after it, into out. Returns 0 or GW_ETOO_BIG. */
int aws_proto_build_url(const char *base, char *out, size_t cap);

/* The Result element of a Query response (AssumeRoleResult inside
 * AssumeRoleResponse) as a new reference, or NULL when unreadable. */
json_t *aws_proto_query_result(const struct aws_svc *svc, const char *action,
                               const char *body, size_t len);

#endif
