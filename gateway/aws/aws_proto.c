/*
 * aws_proto.c - request bodies and response envelopes per AWS protocol.
 *
 * Pure: JSON in, bytes out (and back). Query flattening covers scalars,
 * lists (K.member.N) and maps of scalars (K.N.key), all STS and EC2 need
 * here.
 */
#include "aws_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_sigv4.h"
#include "aws_xml.h"
#include "common.h"

static const struct aws_svc services[] = {
    {"ssm", AWS_SVC_SSM, AWS_PROTO_JSON, "AmazonSSM", NULL},
    {"ec2-instance-connect", AWS_SVC_EC2IC, AWS_PROTO_JSON,
     "AWSEC2InstanceConnectService", NULL},
    {"sts", AWS_SVC_STS, AWS_PROTO_QUERY, NULL, "2011-06-15"},
    {"ec2", AWS_SVC_EC2, AWS_PROTO_QUERY, NULL, "2016-11-15"},
    {"sso", AWS_SVC_SSO, AWS_PROTO_REST_JSON, NULL, NULL},
    {"sso-oidc", AWS_SVC_SSO_OIDC, AWS_PROTO_REST_JSON, NULL, NULL},
};

const struct aws_svc *aws_svc_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(services); i++)
        if (strcmp(services[i].name, name) == 0)
            return &services[i];
    return NULL;
}

static int form_append(char **buf, size_t *len, const char *k, const char *v)
{
    char *ek = aws_uri_encode(k, strlen(k), 0);
    char *ev = aws_uri_encode(v, strlen(v), 0);
    size_t need;
    char *nb;
    int rc = GW_ENOMEM;

    if (!ek || !ev)
        goto out;
    need = *len + strlen(ek) + strlen(ev) + 3;
    nb = realloc(*buf, need);
    if (!nb)
        goto out;
    *buf = nb;
    *len += (size_t)snprintf(nb + *len, need - *len, "%s%s=%s", *len ? "&" : "",
                             ek, ev);
    rc = 0; /* success */
out:
    free(ek);
    free(ev);
    return rc;
}

static int form_value(char **buf, size_t *len, const char *key, json_t *v);

/* Each element of a list or map under key: "%s.member.%zu" / "%s.%s". */
static int form_sub(char **buf, size_t *len, const char *key, const char *sep,
                    const char *name, json_t *e)
{
    char sub[GW_REASON_MAX];

    if (snprintf(sub, sizeof(sub), "%s%s%s", key, sep, name) >=
        (int)sizeof(sub))
        return GW_ETOO_BIG;
    return form_value(buf, len, sub, e);
}

static int form_value(char **buf, size_t *len, const char *key, json_t *v)
{
    char num[64];
    const char *k;
    json_t *e;
    size_t i;
    int rc;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return form_append(buf, len, key, json_string_value(v));
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return form_append(buf, len, key, num);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        return form_append(buf, len, key, num);
    case JSON_TRUE:
        return form_append(buf, len, key, "true");
    case JSON_FALSE:
        return form_append(buf, len, key, "false");
    case JSON_ARRAY:
        json_array_foreach(v, i, e)
        {
            snprintf(num, sizeof(num), "%zu", i + 1);
            if ((rc = form_sub(buf, len, key, ".member.", num, e)) < 0)
                return rc;
        }
        return 0;
    case JSON_OBJECT:
        json_object_foreach(v, k, e)
        {
            if ((rc = form_sub(buf, len, key, ".", k, e)) < 0)
                return rc;
        }
        return 0;
    default:
        return 0; /* null: omitted */
    }
}

static int json_body(json_t *input, char **body, size_t *len)
{
    *body = json_dumps(input, JSON_COMPACT);
    if (!*body)
        return GW_ENOMEM;
    *len = strlen(*body);
    return 0;
}

int aws_proto_build_body(const struct aws_svc *svc, const char *action,
                         json_t *input, char **body, size_t *len)
{
    const char *k;
    json_t *v;
    int rc;

    *body = NULL;
    *len = 0;
    switch (svc->proto) {
    case AWS_PROTO_JSON:
        return json_body(input, body, len);
    case AWS_PROTO_QUERY:
        if ((rc = form_append(body, len, "Action", action)) ||
            (rc = form_append(body, len, "Version", svc->version)))
            return rc;
        json_object_foreach(input, k, v)
        {
            if ((rc = form_value(body, len, k, v)) < 0)
                return rc;
        }
        return 0;
    case AWS_PROTO_REST_JSON:
        if (svc->svc != AWS_SVC_SSO_OIDC)
            return 0; /* SSO portal GET: no body */
        return json_body(input, body, len);
    default:
        return GW_EINVAL;
    }
}

int aws_proto_build_url(const char *base, char *out, size_t cap)
{
    size_t bl = strlen(base);
    int trail = bl && base[bl - 1] == '/';

    if ((size_t)snprintf(out, cap, "%s%s", base, trail ? "" : "/") >= cap)
        return GW_ETOO_BIG;
    return 0;
}

json_t *aws_proto_query_result(const struct aws_svc *svc, const char *action,
                               const char *body, size_t len)
{
    json_t *doc = aws_xml_to_json(body, len), *res = NULL;
    char rname[96], sname[96];
    json_t *root;

    if (!doc)
        return NULL;
    snprintf(rname, sizeof(rname), "%sResponse", action);
    snprintf(sname, sizeof(sname), "%sResult", action);
    root = json_object_get(doc, rname);
    if (json_is_object(root)) {
        res = json_object_get(root, sname);
        if (json_is_string(res) && json_string_length(res) == 0)
            res = NULL; /* <XResult/> */
        if (!res && svc->svc == AWS_SVC_EC2)
            res = root; /* EC2 has no Result wrapper */
    }
    if (res && !json_is_object(res))
        res = NULL;
    res = res ? json_incref(res) : (root ? json_object() : NULL);
    json_decref(doc);
    return res;
}
