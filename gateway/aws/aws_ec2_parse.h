/*
 * aws_ec2_parse.h - what ssmgate reads from EC2's DescribeInstances and
 * StartInstances answers, pure: the Query answer as aws_proto_query_result
 * hands it (libxml2's tree as JSON, aws_xml.h) in, plain structs out.
 */
#ifndef SSMGATE_AWS_EC2_PARSE_H
#define SSMGATE_AWS_EC2_PARSE_H

#include <jansson.h>
#include <stddef.h>

#define AWS_EC2_ID_MAX    32
#define AWS_EC2_STATE_MAX 24
#define AWS_EC2_TOKEN_MAX 2048

struct aws_ec2_tag {
    char *key, *value;
};

struct aws_ec2_instance {
    char instance_id[AWS_EC2_ID_MAX];
    char state[AWS_EC2_STATE_MAX]; /* pending, running, stopping, stopped,
                                      shutting-down, terminated */
    char private_ip[48];           /* "" when none */
    char platform[64];             /* platformDetails: Linux/UNIX, Windows */
    const char *name; /* the Name tag's value (its own allocation, so the
                         array may move), or "" */
    struct aws_ec2_tag *tags; /* malloc'd, n_tags of them */
    size_t n_tags;
};

/* Instances gathered over pages; aws_ec2_list_free frees what they own. */
struct aws_ec2_list {
    struct aws_ec2_instance *inst;
    size_t n, cap;
};

void aws_ec2_list_free(struct aws_ec2_list *l);

/*
 * Appends the instances of one DescribeInstances answer (the
 * DescribeInstancesResponse element) to l and copies its nextToken into
 * next ("" = last page). An instance without an id, or with a field too
 * long for its buffer, is skipped and counted in *skipped. Returns 0,
 * GW_EPROTO (not a DescribeInstances answer: why says what is wrong),
 * GW_ETOO_BIG (token) or GW_ENOMEM.
 */
int aws_ec2_parse_describe(json_t *resp, struct aws_ec2_list *l, char *next,
                           size_t next_cap, size_t *skipped, char *why,
                           size_t why_len);

/* The state StartInstances reports for instance_id (currentState/name)
 * into state. Returns 0 or GW_EPROTO (absent or malformed). */
int aws_ec2_parse_start(json_t *resp, const char *instance_id, char *state,
                        size_t state_cap);

/* The value of tag key on in, or NULL. */
const char *aws_ec2_tag(const struct aws_ec2_instance *in, const char *key);

#endif
