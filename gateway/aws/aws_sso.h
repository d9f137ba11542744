/*
 * aws_sso.h - IAM Identity Center credentials: the SSO token cache
 * (~/.aws/sso/cache/<sha1>.json) and the unsigned portal call
 * GetRoleCredentials (bearer token, sso_region).
 */
#ifndef SSMGATE_AWS_SSO_H
#define SSMGATE_AWS_SSO_H

#include <stddef.h>
#include <time.h>

#include "aws_call.h"
#include "aws_profile.h"
#include "aws_sts.h"

/* A cached SSO token (the whole cache file kept for write-back). */
struct aws_sso_token {
    char *access_token; /* malloc'd */
    time_t expires_at;
    json_t *doc;
    char path[1024];
};
void aws_sso_token_clear(struct aws_sso_token *t);

/*
 * Reads the cached token for key (the sso_session name, or the legacy
 * sso_start_url as written) from dir (NULL = ~/.aws/sso/cache).
 * Returns 0, GW_ENOT_FOUND (no file), GW_EPROTO (unreadable) with a
 * reason in why.
 */
int aws_sso_load_token(const char *dir, const char *key,
                       struct aws_sso_token *out, char *why, size_t why_len);

/* The file has refreshToken, clientId, clientSecret and a registration
 * that has not expired. */
int aws_sso_token_refreshable(const struct aws_sso_token *t);

typedef void aws_sso_refresh_cb(void *arg, int status,
                                const struct aws_error *err);
struct aws_sso_refresh_req { /* caller-owned, lives until done/cancel */
    aws_sso_refresh_cb *done;
    void *arg;
    struct aws_sso_token *token; /* updated and written back on success */
};

/* SSO OIDC CreateToken (grant refresh_token) at oidc.<sso_region>; on
 * success the new token replaces the old in req->token and in the cache
 * file (temp file + rename). */
struct aws_call *aws_sso_refresh_token(struct aws_call_ctx *x,
                                       const struct aws_profiles *p,
                                       const char *profile,
                                       const char *sso_region,
                                       struct aws_sso_refresh_req *req);

/* roleCredentials of a GetRoleCredentials response (expiration in ms). */
int aws_sso_parse_creds(json_t *resp, struct aws_creds_parsed *out);

struct aws_call *aws_sso_get_role_credentials(
    struct aws_call_ctx *x, const struct aws_profiles *p, const char *profile,
    const char *sso_region, const char *access_token, const char *account_id,
    const char *role_name, struct aws_sts_req *req);

#endif
