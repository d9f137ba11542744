/*
 * aws_sts.c - AssumeRole (signed with the source credentials) and
 * AssumeRoleWithWebIdentity (unsigned) through the engine: form parameters
 * in, the Credentials element of the Result out.
 */
#include "aws_sts.h"

#include <stdlib.h>
#include <string.h>

#include "aws_provider.h"
#include "common.h"

int aws_sts_parse_creds(json_t *result, struct aws_creds_parsed *out)
{
    json_t *cr = json_object_get(result, "Credentials");
    const char *ak = json_string_value(json_object_get(cr, "AccessKeyId"));
    const char *sk = json_string_value(json_object_get(cr, "SecretAccessKey"));
    const char *tk = json_string_value(json_object_get(cr, "SessionToken"));
    json_t *exp = json_object_get(cr, "Expiration");

    memset(out, 0, sizeof(*out));
    if (!ak || !ak[0] || !sk || !sk[0] || !tk || !tk[0])
        return GW_EPROTO;
    if (exp && aws_parse_json_time(exp, 0, &out->expiration) < 0)
        return GW_EPROTO;
    return aws_creds_parsed_set(out, ak, sk, tk);
}

static void sts_done(void *arg, int status, json_t *resp,
                     const struct aws_error *err)
{
    struct aws_sts_req *r = arg;
    struct aws_creds_parsed pc;

    if (status == GW_EEXPIRED)
        status = GW_EAWS; /* the source's token: nothing to refresh here */
    if (status == 0) {
        status = aws_sts_parse_creds(resp, &pc);
        if (status == 0) {
            r->done(r->arg, 0, &pc, NULL);
            aws_creds_parsed_clear(&pc);
        } else {
            struct aws_error e;
            memset(&e, 0, sizeof(e));
            snprintf(e.message, sizeof(e.message),
                     "STS response without credentials");
            r->done(r->arg, status, NULL, &e);
        }
    } else {
        r->done(r->arg, status, NULL, err);
    }
}

static json_t *role_params(const struct aws_sts_role *role)
{
    json_t *in = json_object();

    if (!in)
        return NULL;
    json_object_set_new(in, "RoleArn", json_string(role->role_arn));
    json_object_set_new(in, "RoleSessionName", json_string(role->session_name));
    if (role->external_id && role->external_id[0])
        json_object_set_new(in, "ExternalId", json_string(role->external_id));
    if (role->duration_seconds > 0)
        json_object_set_new(in, "DurationSeconds",
                            json_integer(role->duration_seconds));
    return in;
}

static struct aws_call *sts_start(struct aws_call_ctx *x,
                                  const struct aws_profiles *p,
                                  const char *action, json_t *in,
                                  const char *profile, const char *region,
                                  const struct aws_sigv4_creds *source,
                                  struct aws_sts_req *r)
{
    struct aws_provider_req pr = {
        .service = "sts", .action = action, .input = in};
    struct aws_call *call = NULL;

    if (in)
        call =
            aws_provider_send(x, p, profile, region, &pr, source, sts_done, r);
    json_decref(in);
    return call;
}

struct aws_call *aws_sts_assume_role(struct aws_call_ctx *x,
                                     const struct aws_profiles *p,
                                     const char *profile, const char *region,
                                     const struct aws_sigv4_creds *source,
                                     const struct aws_sts_role *role,
                                     struct aws_sts_req *req)
{
    if (!source)
        return NULL;
    return sts_start(x, p, "AssumeRole", role_params(role), profile, region,
                     source, req);
}

struct aws_call *aws_sts_assume_role_web_identity(
    struct aws_call_ctx *x, const struct aws_profiles *p, const char *profile,
    const char *region, const struct aws_sts_role *role, const char *token,
    struct aws_sts_req *req)
{
    json_t *in = role_params(role);

    if (in)
        json_object_set_new(in, "WebIdentityToken", json_string(token));
    return sts_start(x, p, "AssumeRoleWithWebIdentity", in, profile, region,
                     NULL, req);
}
