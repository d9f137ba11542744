/*
 * cli_aws.h - `ssmgate aws-call SERVICE ACTION [JSON] [--profile P]
 * [--region R] [--repeat N] [--concurrency C]`: one call (or N, C at a
 * time, for load tests) through the AWS layer on a fresh loop.
 */
#ifndef SSMGATE_CLI_AWS_H
#define SSMGATE_CLI_AWS_H

/* argv[0] is "aws-call". Returns the process exit code. */
int cli_aws_call(int argc, char **argv);

#endif
