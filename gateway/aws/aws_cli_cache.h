/*
 * aws_cli_cache.h - the AWS CLI's credential cache, shared with it:
 * ~/.aws/cli/cache/<key>.json, where the CLI (v1 and v2, botocore's
 * JSONFileCache) keeps the AssumeRole answers of its role profiles. The
 * key is botocore's AssumeRoleCredentialFetcher._create_cache_key: the
 * SHA-1 hex of json.dumps(assume-role arguments, sort_keys=True), the
 * session name left out when it is botocore's generated one. The file is
 * the STS answer, of which both tools read Credentials.{AccessKeyId,
 * SecretAccessKey, SessionToken, Expiration}.
 */
#ifndef SSMGATE_AWS_CLI_CACHE_H
#define SSMGATE_AWS_CLI_CACHE_H

#include <jansson.h>
#include <stddef.h>

#include "aws_parse.h"

#define AWS_CLI_CACHE_KEY_MAX 41 /* 40 hex + NUL */

/* What both of the CLI's caches (cli/cache and sso/cache) are made of. */

/* The SHA-1 hex of s: botocore's cache file name of a key string. */
void aws_cli_cache_sha1_hex(const char *s, char out[AWS_CLI_CACHE_KEY_MAX]);

/* The JSON document of the cache file path, read whole (at most max
 * bytes; the buffer is wiped). Returns 0 (*doc NULL when the text is not
 * JSON), GW_ENOT_FOUND, GW_EIO, GW_ENOMEM or GW_ETOO_BIG. */
int aws_cli_cache_load(const char *path, size_t max, json_t **doc);

/* Replaces path with text atomically: a 0600 temp file in the same
 * directory, synced, then renamed over it. */
int aws_cli_cache_replace(const char *path, const char *text);

/* A role profile's AssumeRole arguments (NULL / 0 = not set). */
struct aws_cli_role_args {
    const char *role_arn;
    const char *session_name; /* role_session_name; NULL = generated */
    const char *external_id;
    const char *mfa_serial;
    int duration_seconds;
};

/* botocore's cache key of a. Returns 0, GW_EINVAL or GW_ENOMEM. */
int aws_cli_cache_role_key(const struct aws_cli_role_args *a,
                           char key[AWS_CLI_CACHE_KEY_MAX]);

/* The cached credentials of key when they stay valid for min_valid_s
 * more seconds (botocore's expiry window is 15 minutes). dir NULL =
 * ~/.aws/cli/cache. Returns 0 (*out filled, clear it with
 * aws_creds_parsed_clear), GW_ENOT_FOUND, GW_EEXPIRED, GW_EPROTO (not a
 * cache entry) or GW_EIO / GW_ETOO_BIG. */
int aws_cli_cache_read(const char *dir, const char *key, long min_valid_s,
                       struct aws_creds_parsed *out);

/* Writes pc (with its expiration) as key's entry, mode 0600, replacing
 * the file atomically; creates the directory (0700) when missing. */
int aws_cli_cache_write(const char *dir, const char *key,
                        const struct aws_creds_parsed *pc);

#endif
