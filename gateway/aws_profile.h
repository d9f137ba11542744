/*
 * aws_profile.h - the AWS shared `config` and `credentials` files, read
 * with inih the way botocore reads them, plus profile and region
 * resolution.
 *
 * Sections: [default], [profile NAME] and [sso-session NAME] and
 * [services NAME] (config); [NAME] (credentials). Keys are lower-cased;
 * credentials keys beat config keys for the same profile; values keep
 * inline ';' text as botocore does; lines of any length work.
 */
#ifndef SSMGATE_AWS_PROFILE_H
#define SSMGATE_AWS_PROFILE_H

#include <stddef.h>

struct aws_profiles;

/* Loads AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE (default
 * ~/.aws/config, ~/.aws/credentials). Missing files are empty. NULL on
 * failure with err filled. */
struct aws_profiles *aws_profiles_load(char *err, size_t errlen);
/* The same from memory (tests, fuzzing); either text may be NULL. */
struct aws_profiles *aws_profiles_load_mem(const char *config, size_t clen,
                                           const char *creds, size_t crlen,
                                           char *err, size_t errlen);
void aws_profiles_free(struct aws_profiles *p);

/* The value of key for profile (credentials file first), or NULL. */
const char *aws_profile_get(const struct aws_profiles *p, const char *profile,
                            const char *key);
int aws_profile_exists(const struct aws_profiles *p, const char *profile);
/* A key of an [sso-session NAME] section, or NULL. */
const char *aws_sso_session_get(const struct aws_profiles *p,
                                const char *session, const char *key);
/* [services NAME] -> service_key = (nested) key, e.g. ("local", "ssm",
 * "endpoint_url"), or NULL. */
const char *aws_services_get(const struct aws_profiles *p, const char *name,
                             const char *service_key, const char *key);

/* explicit > AWS_PROFILE > AWS_DEFAULT_PROFILE > "default". */
const char *aws_resolve_profile_name(const char *explicit_profile);
/* explicit > AWS_REGION > AWS_DEFAULT_REGION > profile region; 0 or
 * GW_ENO_REGION. */
int aws_resolve_region(const char *explicit_region,
                       const struct aws_profiles *p, const char *profile,
                       char *out, size_t outlen);

#endif
