/*
 * aws_ssm.c - request bodies and response parsing for the SSM calls.
 * Parameters are maps of string to ARRAYS of strings ({"portNumber":
 * ["22"]}), numbers included.
 */
#include "aws_ssm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct ssm_ctx {
    struct aws_client *client;
    char profile[128], region[64], name[256];
    aws_ssm_session_cb *session_done;
    aws_ssm_done_cb *done;
    aws_ssm_instances_cb *instances_done;
    void *arg;
    struct aws_ssm_instance *list;
    size_t n, cap;
    struct aws_call *call; /* the page under way (describe) */
    struct aws_call **handle_slot;
};

static void copy_str(char *dst, size_t len, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, len, "%s", s ? s : "");
}

static void on_session(void *arg, int status, json_t *resp,
                       const struct aws_error *err)
{
    struct ssm_ctx *x = arg;
    struct aws_ssm_session s;
    memset(&s, 0, sizeof(s));
    if (status == 0) {
        copy_str(s.session_id, sizeof(s.session_id),
                 json_object_get(resp, "SessionId"));
        copy_str(s.token, sizeof(s.token), json_object_get(resp, "TokenValue"));
        copy_str(s.stream_url, sizeof(s.stream_url),
                 json_object_get(resp, "StreamUrl"));
        if (s.session_id[0] == '\0')
            status = GW_EPROTO;
    }
    x->session_done(x->arg, status, status == 0 ? &s : NULL, err);
    memset(s.token, 0, sizeof(s.token));
    free(x);
}

static struct aws_call *start(struct aws_client *c, const char *profile,
                              const char *region, const char *action,
                              json_t *in, struct ssm_ctx *x, aws_done_cb *cb)
{
    struct aws_call *call = NULL;
    if (in != NULL)
        call = aws_call_start(c, "ssm", action, in, profile, region, cb, x);
    json_decref(in);
    if (call == NULL)
        free(x);
    aws_call_own(call, x);
    return call;
}

struct aws_call *aws_ssm_start_session(struct aws_client *c,
                                       const char *profile, const char *region,
                                       const struct aws_ssm_start *req,
                                       aws_ssm_session_cb *done, void *arg)
{
    struct ssm_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->session_done = done;
    x->arg = arg;
    json_t *params = json_object();
    if (req->port_number != NULL)
        json_object_set_new(params, "portNumber",
                            json_pack("[s]", req->port_number));
    if (req->host != NULL)
        json_object_set_new(params, "host", json_pack("[s]", req->host));
    if (req->host != NULL || strcmp(req->document, "AWS-StartSSHSession") != 0)
        json_object_set_new(params, "localPortNumber", json_pack("[s]", "0"));
    json_t *in = json_pack("{s:s, s:s, s:o}", "Target", req->target,
                           "DocumentName", req->document, "Parameters", params);
    if (in != NULL && req->reason != NULL && req->reason[0] != '\0')
        json_object_set_new(in, "Reason", json_string(req->reason));
    return start(c, profile, region, "StartSession", in, x, on_session);
}

struct aws_call *aws_ssm_resume_session(struct aws_client *c,
                                        const char *profile, const char *region,
                                        const char *session_id,
                                        aws_ssm_session_cb *done, void *arg)
{
    struct ssm_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->session_done = done;
    x->arg = arg;
    return start(c, profile, region, "ResumeSession",
                 json_pack("{s:s}", "SessionId", session_id), x, on_session);
}

static void on_done(void *arg, int status, json_t *resp,
                    const struct aws_error *err)
{
    struct ssm_ctx *x = arg;
    x->done(x->arg, status, err);
    free(x);
}

struct aws_call *aws_ssm_terminate_session(struct aws_client *c,
                                           const char *profile,
                                           const char *region,
                                           const char *session_id,
                                           aws_ssm_done_cb *done, void *arg)
{
    struct ssm_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->done = done;
    x->arg = arg;
    return start(c, profile, region, "TerminateSession",
                 json_pack("{s:s}", "SessionId", session_id), x, on_done);
}

static void on_instances(void *arg, int status, json_t *resp,
                         const struct aws_error *err);

/* One page of DescribeInstanceInformation; later pages follow NextToken. */
static struct aws_call *describe_page(struct ssm_ctx *x, const char *key,
                                      const char *value, const char *next)
{
    json_t *in = json_pack("{s:[{s:s, s:[s]}], s:i}", "Filters", "Key", key,
                           "Values", value, "MaxResults", 50);
    if (in != NULL && next != NULL)
        json_object_set_new(in, "NextToken", json_string(next));
    struct aws_call *call = NULL;
    if (in != NULL)
        call = aws_call_start(x->client, "ssm", "DescribeInstanceInformation",
                              in, x->profile, x->region, on_instances, x);
    json_decref(in);
    aws_call_own(call, x);
    return call;
}

static void on_instances(void *arg, int status, json_t *resp,
                         const struct aws_error *err)
{
    struct ssm_ctx *x = arg;
    if (status == 0) {
        json_t *list = json_object_get(resp, "InstanceInformationList");
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item)
        {
            if (x->n == x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 8;
                struct aws_ssm_instance *l = realloc(x->list, cap * sizeof(*l));
                if (l == NULL) {
                    status = GW_ENOMEM;
                    break;
                }
                x->list = l;
                x->cap = cap;
            }
            struct aws_ssm_instance *o = &x->list[x->n++];
            memset(o, 0, sizeof(*o));
            copy_str(o->instance_id, sizeof(o->instance_id),
                     json_object_get(item, "InstanceId"));
            copy_str(o->ping_status, sizeof(o->ping_status),
                     json_object_get(item, "PingStatus"));
            copy_str(o->agent_version, sizeof(o->agent_version),
                     json_object_get(item, "AgentVersion"));
            copy_str(o->platform_type, sizeof(o->platform_type),
                     json_object_get(item, "PlatformType"));
            copy_str(o->name, sizeof(o->name),
                     json_object_get(item, "ComputerName"));
        }
        const char *next =
            json_string_value(json_object_get(resp, "NextToken"));
        if (status == 0 && next != NULL && next[0] != '\0' && x->n < 1000) {
            const char *key = strncmp(x->name, "i-", 2) == 0 ||
                                      strncmp(x->name, "mi-", 3) == 0
                                  ? "InstanceIds"
                                  : "tag:Name";
            if (describe_page(x, key, x->name, next) != NULL)
                return;
            status = GW_ENOMEM;
        }
    }
    x->instances_done(x->arg, status, x->list, x->n, err);
    free(x->list);
    free(x);
}

static struct aws_call *describe(struct aws_client *c, const char *profile,
                                 const char *region, const char *key,
                                 const char *value, aws_ssm_instances_cb *done,
                                 void *arg)
{
    struct ssm_ctx *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->client = c;
    snprintf(x->profile, sizeof(x->profile), "%s", profile ? profile : "");
    snprintf(x->region, sizeof(x->region), "%s", region ? region : "");
    snprintf(x->name, sizeof(x->name), "%s", value);
    x->instances_done = done;
    x->arg = arg;
    struct aws_call *call = describe_page(x, key, value, NULL);
    if (call == NULL) {
        free(x);
        return NULL;
    }
    return call;
}

struct aws_call *aws_ssm_find_by_name(struct aws_client *c, const char *profile,
                                      const char *region, const char *name,
                                      aws_ssm_instances_cb *done, void *arg)
{
    return describe(c, profile, region, "tag:Name", name, done, arg);
}

struct aws_call *
aws_ssm_describe_instance(struct aws_client *c, const char *profile,
                          const char *region, const char *instance_id,
                          aws_ssm_instances_cb *done, void *arg)
{
    return describe(c, profile, region, "InstanceIds", instance_id, done, arg);
}
