/*
 * cli_aws.h - `ssmgate aws-call SERVICE ACTION [JSON] [--profile P]
 * [--region R] [--repeat N] [--concurrency C]`: one call (or N, C at a
 * time, for load tests) through the AWS layer on a fresh loop.
 */
#ifndef SSMGATE_CLI_AWS_H
#define SSMGATE_CLI_AWS_H

#include <uv.h>

/* What main.c parsed from the command line. */
struct cli_aws_opts {
    const char *service, *action, *json; /* json NULL = "{}" */
    const char *profile, *region;        /* NULL = the default chain's */
    long repeat, concurrency;            /* >= 1 */
};

struct aws_client;

/* The end of a command's own loop: frees client (may be NULL), lets its
 * handles close, runs what was deferred and closes loop. */
void cli_aws_loop_end(struct aws_client *client, uv_loop_t *loop);

/* One call (or repeat of them); the log level is the caller's. Returns the
 * process exit code. */
int cli_aws_call(const struct cli_aws_opts *o);

#endif
