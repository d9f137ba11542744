/*
 * cli_aws.h - `ssmgate aws-call SERVICE ACTION [JSON]`: one call through
 * the AWS layer, for users debugging their set-up and for tests.
 */
#ifndef SSMGATE_CLI_AWS_H
#define SSMGATE_CLI_AWS_H

struct cli_aws_opts {
    const char *profile;
    const char *region;
    int repeat;      /* > 1: make the call this many times (a load test) */
    int concurrency; /* calls in flight at once when repeating */
};

/* argv: SERVICE ACTION [JSON]. Prints the response JSON on stdout (exit
 * 0); on an AWS error "CODE: message" on stderr (exit 1). With repeat it
 * prints latency figures instead. */
int cli_aws_call(int argc, char **argv, const struct cli_aws_opts *opts);

#endif
