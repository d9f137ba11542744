/*
 * aws_client_creds.h - the facade's credentials for signing something
 * else (the data channel's WebSocket upgrade, aws_ssm_sign_stream_url).
 * For aws/ and its tests only: credentials do not leave the AWS layer.
 */
#ifndef SSMGATE_AWS_CLIENT_CREDS_H
#define SSMGATE_AWS_CLIENT_CREDS_H

#include "aws.h"

/* Resolved credentials, valid during the callback only; copy what you
 * keep. */
typedef void aws_creds_cb(void *arg, int status,
                          const struct aws_sigv4_creds *creds,
                          const char *region, const struct aws_error *err);

/* Fresh (refreshed if near expiry) credentials and the resolved region for
 * profile/region. Returns a handle for aws_call_cancel or NULL. */
struct aws_call *aws_get_credentials(struct aws_client *c, const char *profile,
                                     const char *region, aws_creds_cb *done,
                                     void *arg);

#endif
