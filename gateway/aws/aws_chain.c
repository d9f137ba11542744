/*
 * aws_chain.c - the provider chain's selection rules (AWS CLI v2 order).
 *
 * Each step has one predicate: "is this provider configured here". The
 * first that is takes over; a configured provider that then fails ends
 * the chain (aws_creds.c), so the order below is the whole policy:
 * environment keys (unless a profile was named), assume role (unless a
 * role's source has its own keys: botocore's rule 2), web identity, SSO,
 * static keys, credential_process, container, IMDS, the CLI fallback.
 */
#include "aws_chain.h"

#include <stddef.h>

#include "common.h"

static const char *vget(const struct aws_chain_view *v, const char *key)
{
    const char *s = aws_profile_get(v->p, v->profile, key);
    return s && s[0] ? s : NULL;
}

static const char *venv(const struct aws_chain_view *v, const char *name)
{
    const char *s = aws_env_get(v->env, name);
    return s && s[0] ? s : NULL;
}

static int has_keys(const struct aws_chain_view *v)
{
    return vget(v, "aws_access_key_id") != NULL;
}

static int step_applies(const struct aws_chain_view *v, enum aws_chain_step s)
{
    switch (s) {
    case AWS_CHAIN_ENV:
        return !v->explicit_profile && venv(v, "AWS_ACCESS_KEY_ID");
    case AWS_CHAIN_ASSUME_ROLE:
        if (v->source_mode && has_keys(v))
            return 0;
        return vget(v, "role_arn") && !vget(v, "web_identity_token_file");
    case AWS_CHAIN_WEB_IDENTITY:
        return (!v->explicit_profile &&
                venv(v, "AWS_WEB_IDENTITY_TOKEN_FILE")) ||
               vget(v, "web_identity_token_file");
    case AWS_CHAIN_SSO:
        if (v->source_mode && has_keys(v))
            return 0;
        return vget(v, "sso_account_id") || vget(v, "sso_role_name") ||
               vget(v, "sso_session") || vget(v, "sso_start_url");
    case AWS_CHAIN_STATIC:
        return has_keys(v);
    case AWS_CHAIN_PROCESS:
        return vget(v, "credential_process") != NULL;
    case AWS_CHAIN_CONTAINER:
        return venv(v, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
               venv(v, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    case AWS_CHAIN_IMDS:
        return !aws_env_is_true(
            aws_env_get(v->env, "AWS_EC2_METADATA_DISABLED"));
    case AWS_CHAIN_CLI:
        /* Never from inside a role chain: the CLI resolves the whole
         * profile itself. */
        return !v->source_mode && v->depth == 0 &&
               aws_profile_exists(v->p, v->profile);
    default:
        return 0;
    }
}

enum aws_chain_step aws_chain_next(const struct aws_chain_view *v,
                                   enum aws_chain_step from)
{
    for (enum aws_chain_step s = from; s < AWS_CHAIN_END; s++) {
        if (v->forced && s != AWS_CHAIN_ENV && s != AWS_CHAIN_IMDS &&
            s != AWS_CHAIN_CONTAINER)
            return AWS_CHAIN_END;
        if (step_applies(v, s))
            return s;
    }
    return AWS_CHAIN_END;
}

const char *aws_chain_step_name(enum aws_chain_step s)
{
    static const char *const names[] = {
        "environment", "assume role",       "web identity",
        "SSO",         "shared files",      "credential_process",
        "container",   "instance metadata", "aws configure export-credentials",
    };

    return (size_t)s < ARRAY_SIZE(names) ? names[s] : "?";
}
