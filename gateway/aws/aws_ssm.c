/*
 * aws_ssm.c - the SSM calls: request JSON (Parameters values are arrays
 * of strings) and response parsing into fixed-size structs. A value that
 * does not fit is an error, never truncated.
 */
#include "aws_ssm.h"

#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "aws_client_creds.h"
#include "aws_sigv4.h"
#include "common.h"
#include "log.h"
#include "secret.h"

#define SSM_MAX_INSTANCES 10000

struct ssm_req {
    aws_ssm_session_cb *session_done;
    aws_ssm_done_cb *done;
    aws_ssm_instances_cb *instances_done;
    void *arg;
    struct aws_call *call;
    json_t *input; /* for the next page */
    struct aws_ssm_instance *inst;
    size_t n, cap;
};

static void req_free(void *p)
{
    struct ssm_req *r = p;

    json_decref(r->input);
    free(r->inst);
    free(r);
}

static int copy_field(char *dst, size_t cap, json_t *obj, const char *key,
                      int required)
{
    json_t *v = json_object_get(obj, key);
    size_t len;

    dst[0] = '\0';
    if (!v || json_is_null(v))
        return required ? GW_EPROTO : 0;
    if (!json_is_string(v))
        return GW_EPROTO;
    len = json_string_length(v);
    if (len >= cap || memchr(json_string_value(v), 0, len))
        return GW_EPROTO;
    memcpy(dst, json_string_value(v), len + 1);
    return 0;
}

static void proto_error(struct aws_error *e, const char *what)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->message, sizeof(e->message), "%s", what);
}

static void session_done(void *arg, int status, json_t *resp,
                         const struct aws_error *err)
{
    struct ssm_req *r = arg;
    struct aws_ssm_session s;
    struct aws_error e;

    if (status < 0) {
        r->session_done(r->arg, status, NULL, err);
        goto out;
    }
    if (copy_field(s.session_id, sizeof(s.session_id), resp, "SessionId", 1) <
            0 ||
        copy_field(s.token, sizeof(s.token), resp, "TokenValue", 0) < 0 ||
        copy_field(s.stream_url, sizeof(s.stream_url), resp, "StreamUrl", 0) <
            0) {
        proto_error(&e, "malformed StartSession/ResumeSession response");
        r->session_done(r->arg, GW_EPROTO, NULL, &e);
        goto out;
    }
    r->session_done(r->arg, 0, &s, NULL);
    secret_wipe(s.token, sizeof(s.token));
out:
    req_free(r);
}

static struct aws_call *ssm_call(struct aws_client *c, const char *action,
                                 json_t *in, const char *profile,
                                 const char *region, struct ssm_req *r,
                                 aws_done_cb *cb)
{
    struct aws_call *call = NULL;

    if (in && r)
        call = aws_call_start(c, "ssm", action, in, profile, region, cb, r);
    json_decref(in);
    if (!call) {
        if (r)
            req_free(r);
        return NULL;
    }
    r->call = call;
    aws_call_set_cleanup(call, req_free);
    return call;
}

struct aws_call *aws_ssm_start_session(struct aws_client *c,
                                       const char *profile, const char *region,
                                       const struct aws_ssm_start *req,
                                       aws_ssm_session_cb *done, void *arg)
{
    struct ssm_req *r;
    json_t *in, *params;

    if (!req || !req->target || !done)
        return NULL;
    r = calloc(1, sizeof(*r));
    in = json_object();
    params = json_object();
    if (!r || !in || !params)
        goto fail;
    r->session_done = done;
    r->arg = arg;
    json_object_set_new(in, "Target", json_string(req->target));
    if (req->document)
        json_object_set_new(in, "DocumentName", json_string(req->document));
    if (req->reason)
        json_object_set_new(in, "Reason", json_string(req->reason));
    /* Every parameter value is an array of strings. */
    if (req->port_number)
        json_object_set_new(params, "portNumber",
                            json_pack("[s]", req->port_number));
    if (req->host)
        json_object_set_new(params, "host", json_pack("[s]", req->host));
    if (json_object_size(params))
        json_object_set(in, "Parameters", params);
    json_decref(params);
    return ssm_call(c, "StartSession", in, profile, region, r, session_done);
fail:
    free(r);
    json_decref(in);
    json_decref(params);
    return NULL;
}

struct aws_call *aws_ssm_resume_session(struct aws_client *c,
                                        const char *profile, const char *region,
                                        const char *session_id,
                                        aws_ssm_session_cb *done, void *arg)
{
    struct ssm_req *r;

    if (!session_id || !done || !(r = calloc(1, sizeof(*r))))
        return NULL;
    r->session_done = done;
    r->arg = arg;
    return ssm_call(c, "ResumeSession",
                    json_pack("{s:s}", "SessionId", session_id), profile,
                    region, r, session_done);
}

static void plain_done(void *arg, int status, json_t *resp,
                       const struct aws_error *err)
{
    struct ssm_req *r = arg;

    (void)resp;
    r->done(r->arg, status, err);
    req_free(r);
}

struct aws_call *aws_ssm_terminate_session(struct aws_client *c,
                                           const char *profile,
                                           const char *region,
                                           const char *session_id,
                                           aws_ssm_done_cb *done, void *arg)
{
    struct ssm_req *r;

    if (!session_id || !done || !(r = calloc(1, sizeof(*r))))
        return NULL;
    r->done = done;
    r->arg = arg;
    return ssm_call(c, "TerminateSession",
                    json_pack("{s:s}", "SessionId", session_id), profile,
                    region, r, plain_done);
}

static void instances_done(void *arg, int status, json_t *resp,
                           const struct aws_error *err)
{
    struct ssm_req *r = arg;
    json_t *list, *item, *next;
    struct aws_error e;
    size_t i;

    if (status < 0) {
        r->instances_done(r->arg, status, NULL, 0, err);
        goto done;
    }
    list = json_object_get(resp, "InstanceInformationList");
    json_array_foreach(list, i, item)
    {
        struct aws_ssm_instance *in;
        if (r->n >= SSM_MAX_INSTANCES)
            break;
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 8;
            struct aws_ssm_instance *ni = realloc(r->inst, cap * sizeof(*ni));
            if (!ni) {
                proto_error(&e, "out of memory");
                r->instances_done(r->arg, GW_ENOMEM, NULL, 0, &e);
                goto done;
            }
            r->inst = ni;
            r->cap = cap;
        }
        in = &r->inst[r->n];
        if (copy_field(in->instance_id, sizeof(in->instance_id), item,
                       "InstanceId", 1) < 0 ||
            copy_field(in->ping_status, sizeof(in->ping_status), item,
                       "PingStatus", 0) < 0 ||
            copy_field(in->agent_version, sizeof(in->agent_version), item,
                       "AgentVersion", 0) < 0 ||
            copy_field(in->platform_type, sizeof(in->platform_type), item,
                       "PlatformType", 0) < 0 ||
            copy_field(in->name, sizeof(in->name), item, "ComputerName", 0) <
                0 ||
            copy_field(in->ip_address, sizeof(in->ip_address), item,
                       "IPAddress", 0) < 0) {
            log_warn("aws: DescribeInstanceInformation: skipping a "
                     "malformed entry");
            continue;
        }
        r->n++;
    }
    next = json_object_get(resp, "NextToken");
    if (json_is_string(next) && json_string_length(next) > 0 &&
        r->n < SSM_MAX_INSTANCES) {
        json_object_set(r->input, "NextToken", next);
        if (aws_call_again(r->call, r->input) == 0)
            return; /* same call, next page; r lives on */
    }
    r->instances_done(r->arg, 0, r->inst, r->n, NULL);
done:
    req_free(r);
}

static struct aws_call *describe(struct aws_client *c, const char *profile,
                                 const char *region, const char *key,
                                 const char *value, aws_ssm_instances_cb *done,
                                 void *arg)
{
    struct ssm_req *r;
    json_t *in;

    if ((key && !value) || !done || !(r = calloc(1, sizeof(*r))))
        return NULL;
    r->instances_done = done;
    r->arg = arg;
    if (key)
        in = json_pack("{s:[{s:s, s:[s]}], s:i}", "Filters", "Key", key,
                       "Values", value, "MaxResults", 50);
    else
        in = json_pack("{s:i}", "MaxResults", 50);
    if (!in) {
        free(r);
        return NULL;
    }
    r->input = json_incref(in);
    return ssm_call(c, "DescribeInstanceInformation", in, profile, region, r,
                    instances_done);
}

struct aws_call *aws_ssm_find_by_name(struct aws_client *c, const char *profile,
                                      const char *region, const char *name,
                                      aws_ssm_instances_cb *done, void *arg)
{
    return describe(c, profile, region, "tag:Name", name, done, arg);
}

struct aws_call *aws_ssm_list_instances(struct aws_client *c,
                                        const char *profile, const char *region,
                                        aws_ssm_instances_cb *done, void *arg)
{
    return describe(c, profile, region, NULL, NULL, done, arg);
}

struct aws_call *
aws_ssm_describe_instance(struct aws_client *c, const char *profile,
                          const char *region, const char *instance_id,
                          aws_ssm_instances_cb *done, void *arg)
{
    return describe(c, profile, region, "InstanceIds", instance_id, done, arg);
}

/* ---- the WebSocket upgrade ---- */

struct ssm_sign {
    aws_ssm_sign_cb *done;
    void *arg;
    char *url;
};

static void sign_free(void *p)
{
    struct ssm_sign *g = p;

    free(g->url);
    free(g);
}

static void sign_on_creds(void *arg, int status,
                          const struct aws_sigv4_creds *creds,
                          const char *region, const struct aws_error *err)
{
    struct ssm_sign *g = arg;
    struct aws_sigv4_result sig;
    struct aws_ssm_stream_auth auth = {.region = region};

    if (status != 0) {
        g->done(g->arg, status, NULL, err);
        sign_free(g);
        return;
    }
    /* A presigned StreamUrl is used as is. */
    if (strstr(g->url, "X-Amz-") == NULL) {
        struct aws_sigv4_request req = {.method = "GET", .url = g->url};
        if (aws_sigv4_sign(&req, creds, region, "ssmmessages", time(NULL), &sig,
                           NULL, NULL) != 0) {
            g->done(g->arg, GW_EINVAL, NULL, NULL);
            sign_free(g);
            return;
        }
        auth.name[auth.n] = "Authorization";
        auth.value[auth.n++] = sig.authorization;
        auth.name[auth.n] = "X-Amz-Date";
        auth.value[auth.n++] = sig.amz_date;
        if (creds->session_token != NULL && creds->session_token[0]) {
            auth.name[auth.n] = "X-Amz-Security-Token";
            auth.value[auth.n++] = creds->session_token;
        }
    }
    g->done(g->arg, 0, &auth, NULL);
    secret_wipe(&sig, sizeof(sig));
    sign_free(g);
}

struct aws_call *aws_ssm_sign_stream_url(struct aws_client *c,
                                         const char *profile,
                                         const char *region, const char *url,
                                         aws_ssm_sign_cb *done, void *arg)
{
    struct ssm_sign *g = calloc(1, sizeof(*g));
    struct aws_call *call;

    if (g == NULL || (g->url = strdup(url)) == NULL) {
        free(g);
        return NULL;
    }
    g->done = done;
    g->arg = arg;
    call = aws_get_credentials(c, profile, region, sign_on_creds, g);
    if (call == NULL) {
        sign_free(g);
        return NULL;
    }
    aws_call_set_cleanup(call, sign_free);
    return call;
}

/* ---- errors ---- */

int aws_ssm_error_to_gw(int status, const struct aws_error *e)
{
    static const char *const unreachable[] = {
        "TargetNotConnected",
        "EC2InstanceNotFoundException",
        "EC2InstanceStateInvalidException",
        "EC2InstanceUnavailableException",
        "InvalidInstanceId",
    };
    static const char *const denied[] = {
        "AuthException",         "UnrecognizedClientException",
        "ExpiredTokenException", "InvalidSignatureException",
        "InvalidDocument",
    };
    size_t i;

    if (status != GW_EAWS || e == NULL)
        return status == GW_ENO_CREDS ? GW_EDENIED : status;
    for (i = 0; i < ARRAY_SIZE(unreachable); i++)
        if (strcmp(e->code, unreachable[i]) == 0)
            return GW_EUNREACHABLE;
    if (strncmp(e->code, "AccessDenied", 12) == 0)
        return GW_EDENIED;
    for (i = 0; i < ARRAY_SIZE(denied); i++)
        if (strcmp(e->code, denied[i]) == 0)
            return GW_EDENIED;
    return GW_EAWS;
}
