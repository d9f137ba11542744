/*
 * aws_sso.c - SSO token cache reading, CreateToken and GetRoleCredentials.
 *
 * Both calls are unsigned and REST-JSON: the OIDC token is POST /token
 * with a JSON body; the portal call is GET federation/credentials with
 * the bearer token in x-amz-sso_bearer_token (wiped after the engine
 * copied it).
 *
 * The cache file (named and read as aws_cli_cache.h does for both of the
 * CLI's caches) is small and local, so it is read synchronously.
 */
#include "aws_sso.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_cli_cache.h"
#include "aws_profile.h"
#include "aws_provider.h"
#include "aws_sigv4.h"
#include "common.h"
#include "log.h"
#include "secret.h"

#define SSO_CACHE_MAX (256 * 1024)

void aws_sso_token_clear(struct aws_sso_token *t)
{
    secret_free_str(t->access_token);
    json_decref(t->doc);
    memset(t, 0, sizeof(*t));
}

int aws_sso_load_token(const char *dir, const char *key,
                       struct aws_sso_token *out, char *why, size_t why_len)
{
    char hex[AWS_CLI_CACHE_KEY_MAX], base[900];
    const char *tok;
    int rc;

    memset(out, 0, sizeof(*out));
    aws_cli_cache_sha1_hex(key, hex);
    if (!dir) {
        if (aws_expand_path(NULL, "~/.aws/sso/cache", base, sizeof(base)) < 0)
            return GW_ETOO_BIG;
        dir = base;
    }
    if ((size_t)snprintf(out->path, sizeof(out->path), "%s/%s.json", dir,
                         hex) >= sizeof(out->path))
        return GW_ETOO_BIG;
    rc = aws_cli_cache_load(out->path, SSO_CACHE_MAX, &out->doc);
    if (rc == GW_ENOT_FOUND || rc == GW_EIO)
        snprintf(why, why_len, "no SSO token cache file %s", out->path);
    else if (rc == GW_ETOO_BIG)
        snprintf(why, why_len, "SSO token cache file %s too big", out->path);
    if (rc < 0)
        return rc;
    rc = GW_EPROTO;
    tok = json_string_value(json_object_get(out->doc, "accessToken"));
    if (!json_is_object(out->doc) || !tok || !tok[0] ||
        aws_parse_json_time(json_object_get(out->doc, "expiresAt"), 0,
                            &out->expires_at) < 0) {
        snprintf(why, why_len,
                 "SSO token cache file %s lacks accessToken/expiresAt",
                 out->path);
        goto out;
    }
    out->access_token = strdup(tok);
    rc = out->access_token ? 0 : GW_ENOMEM;
out:
    if (rc < 0) {
        json_decref(out->doc);
        out->doc = NULL;
    }
    return rc;
}

static const char *doc_str(const struct aws_sso_token *t, const char *k)
{
    const char *v = json_string_value(json_object_get(t->doc, k));
    return v && v[0] ? v : NULL;
}

int aws_sso_token_refreshable(const struct aws_sso_token *t)
{
    json_t *reg = json_object_get(t->doc, "registrationExpiresAt");
    time_t r;

    if (!doc_str(t, "refreshToken") || !doc_str(t, "clientId") ||
        !doc_str(t, "clientSecret"))
        return 0;
    if (reg && (aws_parse_json_time(reg, 0, &r) < 0 || r <= time(NULL)))
        return 0;
    return 1;
}

/* Writes the token document back as the CLI does (sorted, indented). */
static int write_cache(const struct aws_sso_token *t)
{
    char *text = json_dumps(t->doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc;

    if (!text)
        return GW_ENOMEM;
    rc = aws_cli_cache_replace(t->path, text);
    secret_free_str(text);
    return rc;
}

static void refresh_done(void *arg, int status, json_t *resp,
                         const struct aws_error *err)
{
    struct aws_sso_refresh_req *r = arg;
    struct aws_sso_token *t = r->token;
    const char *tok, *rt;
    json_t *ein;
    struct aws_error e;
    time_t now = time(NULL);
    char exp[32];
    struct tm tm;

    if (status < 0) {
        r->done(r->arg, status == GW_EEXPIRED ? GW_EAWS : status, err);
        return;
    }
    tok = json_string_value(json_object_get(resp, "accessToken"));
    rt = json_string_value(json_object_get(resp, "refreshToken"));
    ein = json_object_get(resp, "expiresIn");
    if (!tok || !tok[0] || !json_is_integer(ein) ||
        json_integer_value(ein) <= 0) {
        memset(&e, 0, sizeof(e));
        snprintf(e.message, sizeof(e.message),
                 "CreateToken response without accessToken/expiresIn");
        r->done(r->arg, GW_EPROTO, &e);
        return;
    }
    free(t->access_token);
    t->access_token = strdup(tok);
    t->expires_at = now + (time_t)json_integer_value(ein);
    gmtime_r(&t->expires_at, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(t->doc, "accessToken", json_string(tok));
    json_object_set_new(t->doc, "expiresAt", json_string(exp));
    if (rt && rt[0])
        json_object_set_new(t->doc, "refreshToken", json_string(rt));
    if (!t->access_token) {
        r->done(r->arg, GW_ENOMEM, NULL);
        return;
    }
    if (write_cache(t) < 0)
        /* The new token still works for this process. */
        log_warn("aws: cannot write the SSO token cache %s", t->path);
    r->done(r->arg, 0, NULL);
}

struct aws_call *aws_sso_refresh_token(struct aws_call_ctx *x,
                                       const struct aws_profiles *p,
                                       const char *profile,
                                       const char *sso_region,
                                       struct aws_sso_refresh_req *req)
{
    static const char *const headers[] = {"Content-Type: application/json",
                                          NULL};
    struct aws_provider_req pr = {.service = "sso-oidc",
                                  .action = "CreateToken",
                                  .path = "token",
                                  .headers = headers};
    const struct aws_sso_token *t = req->token;
    json_t *in;
    struct aws_call *call;

    if (!aws_sso_token_refreshable(t))
        return NULL;
    in = json_pack("{s:s, s:s, s:s, s:s}", "clientId", doc_str(t, "clientId"),
                   "clientSecret", doc_str(t, "clientSecret"), "grantType",
                   "refresh_token", "refreshToken", doc_str(t, "refreshToken"));
    if (!in)
        return NULL;
    pr.input = in;
    call = aws_provider_send(x, p, profile, sso_region, &pr, NULL, refresh_done,
                             req);
    json_decref(in);
    return call;
}

int aws_sso_parse_creds(json_t *resp, struct aws_creds_parsed *out)
{
    json_t *rc = json_object_get(resp, "roleCredentials");
    const char *ak = json_string_value(json_object_get(rc, "accessKeyId"));
    const char *sk = json_string_value(json_object_get(rc, "secretAccessKey"));
    const char *tk = json_string_value(json_object_get(rc, "sessionToken"));

    memset(out, 0, sizeof(*out));
    if (!ak || !ak[0] || !sk || !sk[0])
        return GW_EPROTO;
    if (aws_parse_json_time(json_object_get(rc, "expiration"), 1,
                            &out->expiration) < 0)
        return GW_EPROTO;
    return aws_creds_parsed_set(out, ak, sk, tk);
}

static void sso_done(void *arg, int status, json_t *resp,
                     const struct aws_error *err)
{
    struct aws_sts_req *r = arg;
    struct aws_creds_parsed pc;

    if (status < 0) {
        r->done(r->arg, status == GW_EEXPIRED ? GW_EAWS : status, NULL, err);
        return;
    }
    status = aws_sso_parse_creds(resp, &pc);
    if (status < 0) {
        struct aws_error e;
        memset(&e, 0, sizeof(e));
        snprintf(e.message, sizeof(e.message),
                 "GetRoleCredentials response without roleCredentials");
        r->done(r->arg, status, NULL, &e);
        return;
    }
    r->done(r->arg, 0, &pc, NULL);
    aws_creds_parsed_clear(&pc);
}

struct aws_call *aws_sso_get_role_credentials(
    struct aws_call_ctx *x, const struct aws_profiles *p, const char *profile,
    const char *sso_region, const char *access_token, const char *account_id,
    const char *role_name, struct aws_sts_req *req)
{
    struct aws_provider_req pr = {
        .service = "sso", .action = "GetRoleCredentials", .method = "GET"};
    const char *headers[2] = {NULL, NULL};
    char *er = aws_uri_encode(role_name, strlen(role_name), 0);
    char *ea = aws_uri_encode(account_id, strlen(account_id), 0);
    char *path = NULL, *bearer = NULL;
    struct aws_call *call = NULL;

    if (!er || !ea ||
        asprintf(&path, "federation/credentials?role_name=%s&account_id=%s", er,
                 ea) < 0)
        path = NULL;
    if (asprintf(&bearer, "x-amz-sso_bearer_token: %s", access_token) < 0)
        bearer = NULL;
    if (path && bearer) {
        headers[0] = bearer;
        pr.path = path;
        pr.headers = headers;
        call = aws_provider_send(x, p, profile, sso_region, &pr, NULL, sso_done,
                                 req);
    }
    free(er);
    free(ea);
    free(path);
    secret_free_str(bearer);
    return call;
}
