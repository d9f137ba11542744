/*
 * aws_profile_env.c - the environment side of the shared-file settings:
 * struct aws_env lookups, path expansion as botocore does it
 * (os.path.expandvars, then expanduser), and the profile-name, region
 * and CA-bundle resolution order (explicit, environment, profile). Pure.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws_profile.h"
#include "common.h"

const char *aws_env_get(const struct aws_env *env, const char *name)
{
    if (env && env->get)
        return env->get(name, env->arg);
    return getenv(name);
}

int aws_env_is_true(const char *value)
{
    return value && strcasecmp(value, "true") == 0;
}

/* os.path.expandvars: $VAR and ${VAR}; unset variables stay as written. */
static int expand_vars(const struct aws_env *env, const char *p, char *out,
                       size_t outlen)
{
    size_t o = 0;
    while (*p) {
        const char *put = p;
        size_t n = 1;
        if (*p == '$') {
            const char *nm = p + 1;
            int brace = *nm == '{';
            if (brace)
                nm++;
            size_t nl = 0;
            while (isalnum((unsigned char)nm[nl]) || nm[nl] == '_')
                nl++;
            if (nl && (!brace || nm[nl] == '}') && nl < 128) {
                char var[128];
                memcpy(var, nm, nl);
                var[nl] = '\0';
                const char *v = aws_env_get(env, var);
                if (v) {
                    put = v;
                    n = strlen(v);
                    p = nm + nl + (brace ? 1 : 0) - 1;
                }
            }
        }
        if (o + n >= outlen)
            return GW_ETOO_BIG;
        memcpy(out + o, put, n);
        o += n;
        p++;
    }
    out[o] = '\0';
    return 0;
}

int aws_expand_path(const struct aws_env *env, const char *in, char *out,
                    size_t outlen)
{
    /* botocore: expandvars first, then expanduser. */
    char tmp[4096];
    int rc = expand_vars(env, in, tmp, sizeof(tmp));
    if (rc < 0)
        return rc;
    const char *home = aws_env_get(env, "HOME");
    const char *rest = tmp;
    if (home && tmp[0] == '~' && (tmp[1] == '/' || tmp[1] == '\0'))
        rest = tmp + 1;
    else
        home = "";
    if ((size_t)snprintf(out, outlen, "%s%s", home, rest) >= outlen)
        return GW_ETOO_BIG;
    return 0;
}

const char *aws_resolve_profile_name(const struct aws_env *env,
                                     const char *explicit_name)
{
    const char *v;
    if (explicit_name && *explicit_name)
        return explicit_name;
    if ((v = aws_env_get(env, "AWS_PROFILE")) && *v)
        return v;
    if ((v = aws_env_get(env, "AWS_DEFAULT_PROFILE")) && *v)
        return v;
    return "default";
}

int aws_resolve_region(const struct aws_env *env, const char *explicit_region,
                       const struct aws_profiles *p, const char *profile,
                       char *out, size_t outlen)
{
    const char *v = NULL;
    if (explicit_region && *explicit_region)
        v = explicit_region;
    else if ((v = aws_env_get(env, "AWS_REGION")) && *v)
        ;
    else if ((v = aws_env_get(env, "AWS_DEFAULT_REGION")) && *v)
        ;
    else
        v = aws_profile_get(p, profile, "region");
    if (!v || !*v)
        return GW_ENO_REGION;
    if (strlen(v) >= outlen)
        return GW_ETOO_BIG;
    strcpy(out, v);
    return 0;
}

const char *aws_profile_ca_bundle(const struct aws_profiles *p,
                                  const char *profile)
{
    const char *v = aws_env_get(NULL, "AWS_CA_BUNDLE");

    if (v && v[0])
        return v;
    v = aws_profile_get(p, profile, "ca_bundle");
    return v && v[0] ? v : NULL;
}
