/*
 * aws_sso.c - SSO token cache reading and GetRoleCredentials.
 *
 * Uses OpenSSL's SHA-1 for the cache file name (botocore's key); the file
 * is small and local, so it is read synchronously.
 */
#include "aws_sso.h"

#include <errno.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_profile.h"
#include "common.h"

#define SSO_CACHE_MAX (256 * 1024)

void aws_sso_cache_key(const char *key, char out[41])
{
    unsigned char md[SHA_DIGEST_LENGTH];

    SHA1((const unsigned char *)key, strlen(key), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int aws_sso_load_token(const char *dir, const char *key, char **access_token,
                       time_t *expires_at, char *why, size_t why_len)
{
    char hex[41], path[1024], base[900];
    json_t *doc = NULL;
    json_error_t jerr;
    const char *tok;
    FILE *f;
    int rc;

    *access_token = NULL;
    aws_sso_cache_key(key, hex);
    if (!dir) {
        if (aws_expand_path(NULL, "~/.aws/sso/cache", base, sizeof(base)) < 0)
            return GW_ETOO_BIG;
        dir = base;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.json", dir, hex) >=
        sizeof(path))
        return GW_ETOO_BIG;
    f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_len, "no SSO token cache file %s", path);
        return errno == ENOENT ? GW_ENOT_FOUND : GW_EIO;
    }
    {
        char *buf = malloc(SSO_CACHE_MAX + 1);
        size_t n = buf ? fread(buf, 1, SSO_CACHE_MAX + 1, f) : 0;
        fclose(f);
        if (!buf)
            return GW_ENOMEM;
        if (n > SSO_CACHE_MAX) {
            free(buf);
            snprintf(why, why_len, "SSO token cache file %s too big", path);
            return GW_ETOO_BIG;
        }
        doc = json_loadb(buf, n, 0, &jerr);
        free(buf);
    }
    rc = GW_EPROTO;
    tok = json_string_value(json_object_get(doc, "accessToken"));
    if (!tok || !tok[0] ||
        aws_parse_json_time(json_object_get(doc, "expiresAt"), 0, expires_at) <
            0) {
        snprintf(why, why_len,
                 "SSO token cache file %s lacks accessToken/expiresAt", path);
        goto out;
    }
    *access_token = strdup(tok);
    rc = *access_token ? 0 : GW_ENOMEM;
out:
    json_decref(doc);
    return rc;
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
    out->access_key_id = strdup(ak);
    out->secret_access_key = strdup(sk);
    if (tk && tk[0])
        out->session_token = strdup(tk);
    if (!out->access_key_id || !out->secret_access_key ||
        (tk && tk[0] && !out->session_token)) {
        aws_creds_parsed_clear(out);
        return GW_ENOMEM;
    }
    return 0;
}

static void sso_done(void *arg, int status, json_t *resp,
                     const struct aws_error *err)
{
    struct aws_sts_req *r = arg;
    struct aws_creds_parsed pc;

    if (status < 0) {
        r->done(r->arg, status, NULL, err);
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

struct aws_call *
aws_sso_get_role_credentials(struct aws_client *c, const char *profile,
                             const char *sso_region, const char *access_token,
                             const char *account_id, const char *role_name,
                             struct aws_sts_req *req)
{
    json_t *in =
        json_pack("{s:s, s:s, s:s}", "roleName", role_name, "accountId",
                  account_id, "accessToken", access_token);
    struct aws_call *call;

    if (!in)
        return NULL;
    call = aws_call_start_with(c, "sso", "GetRoleCredentials", in, profile,
                               sso_region, NULL, sso_done, req);
    json_decref(in);
    return call;
}
