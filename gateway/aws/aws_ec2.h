/*
 * aws_ec2.h - the EC2 calls ssmgate makes (Query protocol, XML answers
 * read by aws_ec2_parse): DescribeInstances by instance id, all pages, and
 * StartInstances. IAM: ec2:DescribeInstances, ec2:StartInstances.
 */
#ifndef SSMGATE_AWS_EC2_H
#define SSMGATE_AWS_EC2_H

#include "aws.h"
#include "aws_ec2_parse.h"

/* DescribeInstances takes up to this many ids in one instance-id filter. */
#define AWS_EC2_IDS_MAX 200

/* instances valid during the callback only; n may be 0. */
typedef void aws_ec2_instances_cb(void *arg, int status,
                                  const struct aws_ec2_instance *instances,
                                  size_t n, const struct aws_error *err);

/* DescribeInstances with an instance-id filter of ids (1 to
 * AWS_EC2_IDS_MAX; ids EC2 does not know are left out, not an error),
 * following nextToken over pages of page_max (5-1000). */
struct aws_call *
aws_ec2_describe_instances(struct aws_client *c, const char *profile,
                           const char *region, const char *const *ids, size_t n,
                           int page_max, aws_ec2_instances_cb *done, void *arg);

/* state: the instance's currentState after the call (pending, ...). */
typedef void aws_ec2_start_cb(void *arg, int status, const char *state,
                              const struct aws_error *err);

struct aws_call *aws_ec2_start_instance(struct aws_client *c,
                                        const char *profile, const char *region,
                                        const char *instance_id,
                                        aws_ec2_start_cb *done, void *arg);

#endif
