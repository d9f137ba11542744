/*
 * aws_imds.c - the metadata credential endpoints.
 *
 * IMDSv2 is three requests, one at a time: PUT /latest/api/token (a 403,
 * 404 or 405 answer means IMDSv1 only: go on without a token), GET the
 * role name, GET the role's credentials. A 401 to a GET made with a
 * token (it expired or was revoked meanwhile) fetches a new token once
 * and repeats that GET. Short timeouts and no proxy:
 * off EC2 the first request fails fast and the chain moves on. The
 * container endpoint is one GET. The session token is wiped when the
 * request object is freed.
 */
#include "aws_imds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws_profile.h"
#include "common.h"
#include "http.h"
#include "log.h"
#include "secret.h"

#define IMDS_TIMEOUT_MS 1000
#define ECS_TIMEOUT_MS  2000

struct aws_imds {
    struct http_client *http;
    struct http_req *req;
    int stage;  /* IMDS: 0 token, 1 role name, 2 credentials */
    int resume; /* the GET to repeat after a new token, or 0 */
    int retokened;
    char token[256];
    char role_name[256];
    aws_imds_done_cb *done;
    void *arg;
};

static const char *penv(const char *name)
{
    const char *v = aws_env_get(NULL, name);
    return v && v[0] ? v : NULL;
}

static void imds_free(struct aws_imds *m)
{
    secret_wipe(m->token, sizeof(m->token));
    free(m);
}

void aws_imds_cancel(struct aws_imds *m)
{
    if (!m)
        return;
    if (m->req)
        http_cancel(m->req);
    imds_free(m);
}

static void imds_finish(struct aws_imds *m, int status,
                        struct aws_creds_parsed *pc, const char *why)
{
    m->done(m->arg, status, pc, why);
    imds_free(m);
}

static void metadata_creds_done(struct aws_imds *m,
                                const struct http_response *resp,
                                const char *what)
{
    struct aws_creds_parsed pc;
    char why[GW_REASON_MAX], pwhy[200];

    if (resp->transport_error || resp->status != 200) {
        if (resp->transport_error)
            snprintf(why, sizeof(why), "%s credentials: %s", what,
                     resp->error_text);
        else
            snprintf(why, sizeof(why), "%s credentials: HTTP %ld", what,
                     resp->status);
        imds_finish(m, GW_ENO_CREDS, NULL, why);
        return;
    }
    if (aws_parse_metadata_creds(resp->body, resp->body_len, &pc, pwhy,
                                 sizeof(pwhy)) < 0) {
        snprintf(why, sizeof(why), "%s credentials: %s", what, pwhy);
        imds_finish(m, GW_ENO_CREDS, NULL, why);
        return;
    }
    m->done(m->arg, 0, &pc, NULL);
    aws_creds_parsed_clear(&pc);
    imds_free(m);
}

/* ---- container ------------------------------------------------------------
 */

static void container_done(struct http_req *req,
                           const struct http_response *resp, void *arg)
{
    struct aws_imds *m = arg;

    (void)req;
    m->req = NULL;
    metadata_creds_done(m, resp, "container");
}

/* botocore's rule: https to any host; plain http only to loopback and
 * the ECS / EKS link-local addresses. */
static int container_url_allowed(const char *url)
{
    static const char *const hosts[] = {
        "127.0.0.1",     "localhost",      "[::1]",
        "169.254.170.2", "169.254.170.23", "[fd00:ec2::23]",
    };
    const char *h, *end;
    size_t hl;

    if (strncasecmp(url, "https://", 8) == 0)
        return 1;
    if (strncasecmp(url, "http://", 7) != 0)
        return 0;
    h = url + 7;
    if (*h == '[')
        end = strchr(h, ']') ? strchr(h, ']') + 1 : h;
    else
        end = h + strcspn(h, ":/?#");
    hl = (size_t)(end - h);
    if (hl >= 4 && strncmp(h, "127.", 4) == 0)
        return 1;
    for (size_t i = 0; i < ARRAY_SIZE(hosts); i++)
        if (strlen(hosts[i]) == hl && strncasecmp(h, hosts[i], hl) == 0)
            return 1;
    return 0;
}

/* The authorization token from its file or variable ("" when neither). */
static void container_token(char *tok, size_t cap)
{
    const char *tfile = penv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tval = penv("AWS_CONTAINER_AUTHORIZATION_TOKEN");

    tok[0] = '\0';
    if (tfile) {
        FILE *f = fopen(tfile, "rb");
        size_t n = f ? fread(tok, 1, cap - 1, f) : 0;
        if (f)
            fclose(f);
        tok[n] = '\0';
        while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
            tok[--n] = '\0';
    } else if (tval) {
        snprintf(tok, cap, "%s", tval);
    }
}

int aws_imds_container_start(struct http_client *http, const char *rel,
                             const char *full, aws_imds_done_cb *done,
                             void *arg, struct aws_imds **out)
{
    char url[1024], auth[2100], tok[2048];
    const char *headers[3] = {"Accept: application/json", NULL, NULL};
    struct http_request_opts o;
    struct aws_imds *m;
    int rc = 0;

    *out = NULL;
    if (rel)
        snprintf(url, sizeof(url), "http://169.254.170.2%s", rel);
    else if (container_url_allowed(full))
        snprintf(url, sizeof(url), "%s", full);
    else
        return GW_EDENIED;
    container_token(tok, sizeof(tok));
    if (strpbrk(tok, "\r\n")) {
        rc = GW_EINVAL;
        goto out;
    }
    if (tok[0]) {
        snprintf(auth, sizeof(auth), "Authorization: %s", tok);
        headers[1] = auth;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        rc = GW_ENOMEM;
        goto out;
    }
    m->http = http;
    m->done = done;
    m->arg = arg;
    memset(&o, 0, sizeof(o));
    o.method = "GET";
    o.url = url;
    o.headers = headers;
    o.timeout_ms = ECS_TIMEOUT_MS;
    o.no_proxy = 1;
    m->req = http_request(http, &o, container_done, m);
    if (!m->req) {
        imds_free(m);
        rc = GW_ENOMEM;
        goto out;
    }
    *out = m;
out:
    secret_wipe(auth, sizeof(auth));
    secret_wipe(tok, sizeof(tok));
    return rc;
}

/* ---- IMDSv2 ---------------------------------------------------------------
 */

static int imds_step(struct aws_imds *m);

static void imds_done(struct http_req *req, const struct http_response *resp,
                      void *arg)
{
    struct aws_imds *m = arg;

    (void)req;
    m->req = NULL;
    if (m->stage > 0 && resp->status == 401 && m->token[0] && !m->retokened) {
        log_info("aws: IMDS refused its session token (401); fetching a new "
                 "one");
        m->retokened = 1;
        m->resume = m->stage;
        secret_wipe(m->token, sizeof(m->token));
        m->stage = 0;
        if (imds_step(m) < 0)
            imds_finish(m, GW_ENOMEM, NULL, "out of memory");
        return;
    }
    switch (m->stage) {
    case 0: /* token PUT */
        if (resp->status == 200 && resp->body_len > 0 &&
            resp->body_len < sizeof(m->token)) {
            memcpy(m->token, resp->body, resp->body_len);
            m->token[resp->body_len] = '\0';
        } else if (resp->transport_error ||
                   !(resp->status == 403 || resp->status == 404 ||
                     resp->status == 405)) {
            /* No IMDS here (timeout, refused): the chain goes on. */
            log_debug("aws: IMDS not reachable: %s",
                      resp->transport_error ? resp->error_text : "status");
            imds_finish(m, GW_ENOT_FOUND, NULL, NULL);
            return;
        }
        break;
    case 1: /* role name */
        if (resp->status != 200 || resp->body_len == 0 ||
            resp->body_len >= sizeof(m->role_name)) {
            imds_finish(m, GW_ENOT_FOUND, NULL, NULL);
            return;
        }
        memcpy(m->role_name, resp->body, resp->body_len);
        m->role_name[resp->body_len] = '\0';
        m->role_name[strcspn(m->role_name, "\r\n")] = '\0';
        break;
    default:
        metadata_creds_done(m, resp, "instance metadata");
        return;
    }
    m->stage = m->stage == 0 && m->resume ? m->resume : m->stage + 1;
    if (imds_step(m) < 0)
        imds_finish(m, GW_ENOMEM, NULL, "out of memory");
}

static int imds_step(struct aws_imds *m)
{
    const char *base = penv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char url[1024], tokh[300];
    const char *headers[2] = {NULL, NULL};
    struct http_request_opts o;
    size_t bl;

    if (!base)
        base = "http://169.254.169.254";
    bl = strlen(base);
    if (bl && base[bl - 1] == '/')
        bl--;
    memset(&o, 0, sizeof(o));
    o.no_proxy = 1;
    o.timeout_ms = IMDS_TIMEOUT_MS;
    o.headers = headers;
    if (m->stage == 0) {
        snprintf(url, sizeof(url), "%.*s/latest/api/token", (int)bl, base);
        o.method = "PUT";
        headers[0] = "X-aws-ec2-metadata-token-ttl-seconds: 21600";
    } else {
        if (m->stage == 1)
            snprintf(url, sizeof(url),
                     "%.*s/latest/meta-data/iam/security-credentials/", (int)bl,
                     base);
        else
            snprintf(url, sizeof(url),
                     "%.*s/latest/meta-data/iam/security-credentials/%s",
                     (int)bl, base, m->role_name);
        o.method = "GET";
        if (m->token[0]) {
            snprintf(tokh, sizeof(tokh), "X-aws-ec2-metadata-token: %s",
                     m->token);
            headers[0] = tokh;
        }
    }
    o.url = url;
    m->req = http_request(m->http, &o, imds_done, m);
    secret_wipe(tokh, sizeof(tokh));
    return m->req ? 0 : GW_ENOMEM;
}

struct aws_imds *aws_imds_start(struct http_client *http,
                                aws_imds_done_cb *done, void *arg)
{
    struct aws_imds *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->http = http;
    m->done = done;
    m->arg = arg;
    if (imds_step(m) < 0) {
        imds_free(m);
        return NULL;
    }
    return m;
}
