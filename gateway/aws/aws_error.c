/*
 * aws_error.c - one line for a struct aws_error. Pure.
 */
#include "aws_error.h"

#include <stdio.h>

#include "common.h"

const char *aws_error_str(const struct aws_error *err, char *buf, size_t len)
{
    if (err->code[0]) {
        snprintf(buf, len, "%s: %s (HTTP %ld, %d attempt%s%s%s)", err->code,
                 err->message[0] ? err->message : "(no message)",
                 err->http_status, err->attempts, err->attempts == 1 ? "" : "s",
                 err->request_id[0] ? ", request id " : "", err->request_id);
    } else if (err->transport && err->attempts > 0) {
        snprintf(buf, len, "%s%s%s (%d attempt%s)", gw_strerror(err->transport),
                 err->message[0] ? ": " : "", err->message, err->attempts,
                 err->attempts == 1 ? "" : "s");
    } else if (err->transport) {
        snprintf(buf, len, "%s%s%s", gw_strerror(err->transport),
                 err->message[0] ? ": " : "", err->message);
    } else {
        snprintf(buf, len, "%s", err->message[0] ? err->message : "error");
    }
    return buf;
}
