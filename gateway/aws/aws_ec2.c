/*
 * aws_ec2.c - DescribeInstances and StartInstances over aws_call_start.
 * The Query form flattens a JSON object {"1": v} under K as K.1, which is
 * how EC2 numbers its lists (InstanceId.1, Filter.1.Value.1).
 */
#include "aws_ec2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"

struct ec2_req {
    aws_ec2_instances_cb *done;
    aws_ec2_start_cb *start_done;
    void *arg;
    struct aws_call *call;
    json_t *input; /* for the next page */
    char instance_id[AWS_EC2_ID_MAX];
    struct aws_ec2_list list;
};

static void req_free(void *p)
{
    struct ec2_req *r = p;

    json_decref(r->input);
    aws_ec2_list_free(&r->list);
    free(r);
}

static void proto_error(struct aws_error *e, const char *why)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->message, sizeof(e->message), "%s", why);
}

/* {"1": a, "2": b, ...} */
static json_t *numbered(const char *const *v, size_t n)
{
    json_t *o = json_object();
    char k[24]; /* any size_t in decimal */

    for (size_t i = 0; o && i < n; i++) {
        snprintf(k, sizeof(k), "%zu", i + 1);
        if (!v[i] || json_object_set_new(o, k, json_string(v[i])) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static void describe_done(void *arg, int status, json_t *resp,
                          const struct aws_error *err)
{
    struct ec2_req *r = arg;
    char next[AWS_EC2_TOKEN_MAX], why[128] = "";
    size_t skipped = 0;
    struct aws_error e;

    if (status < 0) {
        r->done(r->arg, status, NULL, 0, err);
        goto done;
    }
    status = aws_ec2_parse_describe(resp, &r->list, next, sizeof(next),
                                    &skipped, why, sizeof(why));
    if (status < 0) {
        proto_error(&e, why[0] ? why : gw_strerror(status));
        r->done(r->arg, status, NULL, 0, &e);
        goto done;
    }
    if (skipped)
        log_warn("aws: DescribeInstances: skipped %zu malformed instance%s",
                 skipped, skipped == 1 ? "" : "s");
    if (next[0]) {
        json_object_set_new(r->input, "NextToken", json_string(next));
        if (aws_call_again(r->call, r->input) == 0)
            return; /* same call, next page; r lives on */
    }
    r->done(r->arg, 0, r->list.inst, r->list.n, NULL);
done:
    req_free(r);
}

static struct aws_call *ec2_call(struct aws_client *c, const char *action,
                                 json_t *in, const char *profile,
                                 const char *region, struct ec2_req *r,
                                 aws_done_cb *cb)
{
    struct aws_call *call = NULL;

    if (in)
        call = aws_call_start(c, "ec2", action, in, profile, region, cb, r);
    if (!call) {
        json_decref(in);
        req_free(r);
        return NULL;
    }
    r->input = in;
    r->call = call;
    aws_call_set_cleanup(call, req_free);
    return call;
}

struct aws_call *
aws_ec2_describe_instances(struct aws_client *c, const char *profile,
                           const char *region, const char *const *ids, size_t n,
                           int page_max, aws_ec2_instances_cb *done, void *arg)
{
    struct ec2_req *r;
    json_t *in, *vals;

    if (!ids || n == 0 || n > AWS_EC2_IDS_MAX || !done ||
        !(r = calloc(1, sizeof(*r))))
        return NULL;
    r->done = done;
    r->arg = arg;
    vals = numbered(ids, n);
    in = vals ? json_pack("{s:{s:{s:s, s:o}}, s:i}", "Filter", "1", "Name",
                          "instance-id", "Value", vals, "MaxResults",
                          GW_MAX(5, GW_MIN(page_max, 1000)))
              : NULL;
    return ec2_call(c, "DescribeInstances", in, profile, region, r,
                    describe_done);
}

static void start_done(void *arg, int status, json_t *resp,
                       const struct aws_error *err)
{
    struct ec2_req *r = arg;
    char state[AWS_EC2_STATE_MAX];
    struct aws_error e;

    if (status < 0) {
        r->start_done(r->arg, status, NULL, err);
    } else if (aws_ec2_parse_start(resp, r->instance_id, state, sizeof(state)) <
               0) {
        proto_error(&e, "StartInstances: no state for the instance");
        r->start_done(r->arg, GW_EPROTO, NULL, &e);
    } else {
        r->start_done(r->arg, 0, state, NULL);
    }
    req_free(r);
}

struct aws_call *aws_ec2_start_instance(struct aws_client *c,
                                        const char *profile, const char *region,
                                        const char *instance_id,
                                        aws_ec2_start_cb *done, void *arg)
{
    struct ec2_req *r;

    if (!instance_id || strlen(instance_id) >= AWS_EC2_ID_MAX || !done ||
        !(r = calloc(1, sizeof(*r))))
        return NULL;
    r->start_done = done;
    r->arg = arg;
    snprintf(r->instance_id, sizeof(r->instance_id), "%s", instance_id);
    return ec2_call(c, "StartInstances",
                    json_pack("{s:{s:s}}", "InstanceId", "1", instance_id),
                    profile, region, r, start_done);
}
