/*
 * aws_error.h - what a failed AWS call says: the error body's code and
 * message, or the transport's gw_err, and how many attempts were made.
 * Shared by the engine (aws_call), the parsers (aws_parse) and every
 * caller's callback.
 */
#ifndef SSMGATE_AWS_ERROR_H
#define SSMGATE_AWS_ERROR_H

#include <stddef.h>

#include "common.h"

/* Room for an AWS message: a reason (GW_REASON_MAX) holds it whole with
 * its code and our prefixes. A longer message is cut here, at the source,
 * and nowhere after. */
#define AWS_ERROR_MESSAGE_MAX (GW_REASON_MAX - 512)

/* A failed call. code/message come from the AWS error body; for transport
 * failures code is "" and transport holds a gw_err. */
struct aws_error {
    char code[128];                      /* e.g. "AccessDeniedException" */
    char message[AWS_ERROR_MESSAGE_MAX]; /* never holds a secret */
    char request_id[128];
    long http_status; /* 0 when no response */
    int transport;    /* 0 or gw_err (GW_ETIMEOUT, GW_EIO, ...) */
    int attempts;     /* how many attempts were made */
    int retryable;    /* would the SDKs retry it */
};

/* One line a person understands: "CODE: message (HTTP 400, 3 attempts)". */
const char *aws_error_str(const struct aws_error *err, char *buf, size_t len);

#endif
