/*
 * aws_provider.c - building a credential provider's request once and
 * handing it to the engine. The body may hold a secret (a web identity
 * token, an OIDC client secret): wiped after the engine copied it.
 */
#include "aws_provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_endpoint.h"
#include "aws_proto.h"
#include "common.h"
#include "secret.h"

struct aws_call *aws_provider_send(struct aws_call_ctx *x,
                                   const struct aws_profiles *p,
                                   const char *profile, const char *region,
                                   const struct aws_provider_req *pr,
                                   const struct aws_sigv4_creds *creds,
                                   aws_done_cb *done, void *arg)
{
    const struct aws_svc *svc = aws_svc_find(pr->service);
    char why[GW_REASON_MAX], base[AWS_ENDPOINT_URL_MAX + 8];
    char url[AWS_ENDPOINT_URL_MAX + 512];
    struct aws_endpoint ep;
    struct aws_call *call;
    struct aws_req r;
    char *body = NULL;
    size_t body_len = 0;
    int rc;

    if (!svc)
        return NULL;
    rc = aws_endpoint_resolve(svc->svc, region, p, profile, NULL, &ep);
    if (rc < 0) {
        snprintf(why, sizeof(why), "no endpoint for %s in %s: %s", svc->name,
                 region ? region : "", gw_strerror(rc));
        return aws_call_send_failed(x, rc, why, done, arg);
    }
    if (pr->input)
        rc = aws_proto_build_body(svc, pr->action, pr->input, &body, &body_len);
    if (rc == 0)
        rc = aws_proto_build_url(ep.url, base, sizeof(base));
    if (rc == 0 && (size_t)snprintf(url, sizeof(url), "%s%s", base,
                                    pr->path ? pr->path : "") >= sizeof(url))
        rc = GW_ETOO_BIG;
    if (rc < 0) {
        snprintf(why, sizeof(why), "cannot build the %s request: %s",
                 pr->action, gw_strerror(rc));
        call = aws_call_send_failed(x, rc, why, done, arg);
        goto out;
    }
    memset(&r, 0, sizeof(r));
    r.svc = svc;
    r.action = pr->action;
    r.method = pr->method;
    r.url = url;
    r.headers = pr->headers;
    r.body = body;
    r.body_len = body_len;
    r.signing_region = ep.signing_region;
    r.signing_name = ep.signing_name;
    r.ca_file = aws_profile_ca_bundle(p, profile);
    call = aws_call_send(x, &r, creds, done, arg);
out:
    secret_wipe(body, body_len);
    free(body);
    return call;
}
