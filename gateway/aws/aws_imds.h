/*
 * aws_imds.h - credentials from the metadata endpoints over http.c: EC2
 * IMDSv2 (token PUT, role name, role credentials) and the ECS / EKS
 * container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI,
 * optional authorization token or token file).
 */
#ifndef SSMGATE_AWS_IMDS_H
#define SSMGATE_AWS_IMDS_H

#include "aws_parse.h"

struct aws_imds;
struct http_client;

/* status 0: pc (the callee's; valid during the call). GW_ENOT_FOUND: no
 * instance metadata here (not reachable, no role): the chain goes on.
 * Else why says what failed. The request is freed after the call. */
typedef void aws_imds_done_cb(void *arg, int status,
                              struct aws_creds_parsed *pc, const char *why);

/* IMDSv2 at AWS_EC2_METADATA_SERVICE_ENDPOINT (else 169.254.169.254).
 * Returns NULL when the first request could not be started. */
struct aws_imds *aws_imds_start(struct http_client *http,
                                aws_imds_done_cb *done, void *arg);

/* The container endpoint: rel (relative to 169.254.170.2) or full (https,
 * or http to loopback / the ECS and EKS link-local addresses). Returns 0
 * and *out, GW_EDENIED (full not allowed), GW_EINVAL (a token with a line
 * break) or GW_ENOMEM. */
int aws_imds_container_start(struct http_client *http, const char *rel,
                             const char *full, aws_imds_done_cb *done,
                             void *arg, struct aws_imds **out);

/* done will not run. */
void aws_imds_cancel(struct aws_imds *m);

#endif
