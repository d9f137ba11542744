/*
 * aws_endpoint.c - endpoint resolution as the SDKs' rule sets produce it
 * for the services ssmgate calls (aws-and-local-protocols.md section 3).
 */
#include "aws_endpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws_profile.h"
#include "common.h"

struct service_info {
    const char *id;        /* our name */
    const char *prefix;    /* host prefix */
    const char *env;       /* AWS_ENDPOINT_URL_<env> */
    const char *cfg_key;   /* [services] key */
    const char *sign_name; /* SigV4 service name */
    int gov_fips_is_std;   /* GovCloud FIPS host = the standard host */
};

static const struct service_info services[] = {
    {"ssm", "ssm", "SSM", "ssm", "ssm", 1},
    {"ec2-instance-connect", "ec2-instance-connect", "EC2_INSTANCE_CONNECT",
     "ec2_instance_connect", "ec2-instance-connect", 0},
    {"sts", "sts", "STS", "sts", "sts", 1},
    {"ec2", "ec2", "EC2", "ec2", "ec2", 1},
    {"sso", "portal.sso", "SSO", "sso", "awsssoportal", 0},
    {"sso-oidc", "oidc", "SSO_OIDC", "sso_oidc", "sso-oauth", 0},
};

struct partition {
    const char *prefix; /* region prefix */
    const char *dns;
    const char *dualstack;
};

/* Checked in order: the more specific prefixes first. */
static const struct partition partitions[] = {
    {"cn-", "amazonaws.com.cn", "api.amazonwebservices.com.cn"},
    {"us-gov-", "amazonaws.com", "api.aws"},
    {"us-isob-", "sc2s.sgov.gov", "sc2s.sgov.gov"},
    {"us-isof-", "csp.hci.ic.gov", "csp.hci.ic.gov"},
    {"us-iso-", "c2s.ic.gov", "c2s.ic.gov"},
    {"eu-isoe-", "cloud.adc-e.uk", "cloud.adc-e.uk"},
    {"eusc-", "amazonaws.eu", "api.amazonwebservices.eu"},
    {"", "amazonaws.com", "api.aws"},
};

static int env_true(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && strcasecmp(v, "true") == 0;
}

static int flag(const char *env, const struct aws_profiles *p,
                const char *profile, const char *key)
{
    const char *v = getenv(env);
    if (v == NULL || v[0] == '\0')
        v = aws_profile_get(p, profile, key);
    return v != NULL && strcasecmp(v, "true") == 0;
}

static void strip_slash(char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
}

int aws_endpoint_resolve(const char *service, const char *region,
                         const struct aws_profiles *p, const char *profile,
                         struct aws_endpoint *out)
{
    const struct service_info *svc = NULL;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < ARRAY_SIZE(services); i++)
        if (strcmp(services[i].id, service) == 0)
            svc = &services[i];
    if (svc == NULL)
        return GW_EINVAL;
    if (region == NULL || region[0] == '\0')
        return GW_ENO_REGION;
    snprintf(out->signing_region, sizeof(out->signing_region), "%s", region);
    snprintf(out->signing_name, sizeof(out->signing_name), "%s",
             svc->sign_name);

    int ignore = env_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (!ignore) {
        const char *v =
            aws_profile_get(p, profile, "ignore_configured_endpoint_urls");
        ignore = v != NULL && strcasecmp(v, "true") == 0;
    }
    if (!ignore) {
        char name[64];
        snprintf(name, sizeof(name), "AWS_ENDPOINT_URL_%s", svc->env);
        const char *v = getenv(name);
        if (v == NULL || v[0] == '\0')
            v = getenv("AWS_ENDPOINT_URL");
        if (v == NULL || v[0] == '\0') {
            const char *svcs = aws_profile_get(p, profile, "services");
            if (svcs != NULL)
                v = aws_services_get(p, svcs, svc->cfg_key, "endpoint_url");
        }
        if (v == NULL || v[0] == '\0')
            v = aws_profile_get(p, profile, "endpoint_url");
        if (v != NULL && v[0] != '\0') {
            snprintf(out->url, sizeof(out->url), "%s", v);
            strip_slash(out->url);
            out->overridden = 1;
            return 0;
        }
    }

    const struct partition *part = &partitions[ARRAY_SIZE(partitions) - 1];
    for (size_t i = 0; i < ARRAY_SIZE(partitions); i++)
        if (strncmp(region, partitions[i].prefix,
                    strlen(partitions[i].prefix)) == 0) {
            part = &partitions[i];
            break;
        }
    int fips = flag("AWS_USE_FIPS_ENDPOINT", p, profile, "use_fips_endpoint");
    int dual = flag("AWS_USE_DUALSTACK_ENDPOINT", p, profile,
                    "use_dualstack_endpoint");
    if (fips && svc->gov_fips_is_std && strncmp(region, "us-gov-", 7) == 0)
        fips = 0; /* GovCloud's standard host is already FIPS */
    const char *suffix = dual ? part->dualstack : part->dns;
    if (strcmp(svc->id, "sso") == 0 && fips)
        snprintf(out->url, sizeof(out->url), "https://portal.sso-fips.%s.%s",
                 region, suffix);
    else
        snprintf(out->url, sizeof(out->url), "https://%s%s.%s.%s", svc->prefix,
                 fips ? "-fips" : "", region, suffix);
    return 0;
}
