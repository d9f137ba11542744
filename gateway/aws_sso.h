/*
 * aws_sso.h - IAM Identity Center credentials: the SSO token cache
 * (~/.aws/sso/cache/<sha1>.json) and the unsigned portal call
 * GetRoleCredentials (bearer token, sso_region).
 */
#ifndef SSMGATE_AWS_SSO_H
#define SSMGATE_AWS_SSO_H

#include <stddef.h>
#include <time.h>

#include "aws.h"
#include "aws_sts.h"

/* Lower-case hex SHA-1 of key into out[41] (the cache file name). */
void aws_sso_cache_key(const char *key, char out[41]);

/*
 * Reads the cached token for key (the sso_session name, or the legacy
 * sso_start_url as written) from dir (NULL = ~/.aws/sso/cache).
 * *access_token is malloc'd. Returns 0, GW_ENOT_FOUND (no file),
 * GW_EPROTO (unreadable) with a reason in why.
 */
int aws_sso_load_token(const char *dir, const char *key, char **access_token,
                       time_t *expires_at, char *why, size_t why_len);

/* roleCredentials of a GetRoleCredentials response (expiration in ms). */
int aws_sso_parse_creds(json_t *resp, struct aws_creds_parsed *out);

struct aws_call *
aws_sso_get_role_credentials(struct aws_client *c, const char *profile,
                             const char *sso_region, const char *access_token,
                             const char *account_id, const char *role_name,
                             struct aws_sts_req *req);

#endif
