/*
 * aws_profile.h - the AWS shared files (~/.aws/config, ~/.aws/credentials)
 * read the way botocore / AWS CLI v2 read them, plus profile-name and
 * region resolution.
 *
 * Owns: loading both files once into an immutable struct aws_profiles,
 * lookups by profile / sso-session / services block, and the environment
 * indirection (struct aws_env) the AWS layer uses so tests can inject
 * variables. Pure apart from reading the two files in aws_profiles_load.
 *
 * Syntax follows Python's configparser as botocore uses it: keys are
 * lower-cased, values are stripped, inline comments are NOT stripped
 * ("key = v ; x" is "v ; x"), an indented line continues the previous
 * value ("\n" + line), lines have no length limit, CRLF / lone CR / BOM
 * accepted. Config sections: [default], [profile x], [profile "a b"],
 * [sso-session x], [services x]; credentials sections: [x] literally.
 * For one profile, credentials-file keys override config-file keys.
 */
#ifndef SSMGATE_AWS_PROFILE_H
#define SSMGATE_AWS_PROFILE_H

#include <stddef.h>

/* Largest file accepted (bigger = GW_ETOO_BIG). */
#define AWS_PROFILE_FILE_MAX (4u << 20)

/*
 * Environment lookup. A NULL struct aws_env * (everywhere in the AWS
 * layer) means the process environment (getenv). Returns NULL when unset.
 */
typedef const char *aws_getenv_fn(const char *name, void *arg);
struct aws_env {
    aws_getenv_fn *get;
    void *arg;
};
/* env->get(name) or getenv(name) when env is NULL. */
const char *aws_env_get(const struct aws_env *env, const char *name);
/* Value is "true" (any case), like botocore's boolean settings. */
int aws_env_is_true(const char *value);

struct aws_profiles; /* opaque, immutable once loaded */

/*
 * Loads AWS_CONFIG_FILE (else ~/.aws/config) and
 * AWS_SHARED_CREDENTIALS_FILE (else ~/.aws/credentials), "~" and $VARS
 * expanded. A missing file is fine (empty). Returns 0 and *out, or
 * GW_ENOMEM / GW_EIO (unreadable) / GW_ETOO_BIG / GW_ECONFIG (syntax
 * error) with a message naming file and line in err.
 */
int aws_profiles_load(const struct aws_env *env, struct aws_profiles **out,
                      char *err, size_t errlen);
/* Same from explicit paths (NULL = no such file). */
int aws_profiles_load_files(const char *config_path, const char *creds_path,
                            struct aws_profiles **out, char *err,
                            size_t errlen);
/* Same from memory (NULL/0 = empty file); used by tests and the fuzzer. */
int aws_profiles_load_mem(const char *config, size_t config_len,
                          const char *creds, size_t creds_len,
                          struct aws_profiles **out, char *err, size_t errlen);
void aws_profiles_free(struct aws_profiles *p);

/* Profile defined in either file (config [default] / [profile x], or
 * credentials [x]). */
int aws_profile_exists(const struct aws_profiles *p, const char *profile);
/* Key (lower-case) of a profile: credentials file first, then config.
 * NULL when absent. The string lives as long as p. */
const char *aws_profile_get(const struct aws_profiles *p, const char *profile,
                            const char *key);

/* The CA bundle for profile: AWS_CA_BUNDLE, else the profile's ca_bundle;
 * NULL when neither is set. */
const char *aws_profile_ca_bundle(const struct aws_profiles *p,
                                  const char *profile);
/* Key of [sso-session name]; NULL when absent. */
const char *aws_sso_session_get(const struct aws_profiles *p,
                                const char *session, const char *key);
/*
 * Nested key of a [services name] block:
 *   [services name]
 *   service_key =
 *     key = value
 * e.g. aws_services_get(p, "local", "ssm", "endpoint_url"). NULL when
 * absent. The string lives as long as p.
 */
const char *aws_services_get(const struct aws_profiles *p, const char *services,
                             const char *service_key, const char *key);

/* Profile name: explicit (non-empty) > AWS_PROFILE > AWS_DEFAULT_PROFILE >
 * "default". Never NULL; points into explicit, the environment or a
 * literal. */
const char *aws_resolve_profile_name(const struct aws_env *env,
                                     const char *explicit_name);
/*
 * Region: explicit (non-empty) > AWS_REGION > AWS_DEFAULT_REGION > the
 * profile's "region" (p may be NULL). Copies into out; returns 0,
 * GW_ENO_REGION when none is set, GW_ETOO_BIG when it does not fit.
 */
int aws_resolve_region(const struct aws_env *env, const char *explicit_region,
                       const struct aws_profiles *p, const char *profile,
                       char *out, size_t outlen);

/* "~" and $VAR / ${VAR} expansion of a path (like os.path.expanduser +
 * expandvars). Returns 0 or GW_ETOO_BIG. */
int aws_expand_path(const struct aws_env *env, const char *in, char *out,
                    size_t outlen);

#endif
