/*
 * aws_endpoint.c - endpoint URL, signing region and signing name per
 * service (aws-and-local-protocols.md section 3).
 *
 * Model: override lookup first (3.3, first hit wins), else a host name
 * built from the partition of the region (3.1) and the FIPS / dual-stack
 * switches (3.2). Everything comes in through arguments; the environment
 * through struct aws_env.
 */
#include "aws_endpoint.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

struct partition {
    const char *id;
    const char *prefix; /* region = prefix + \w+ '-' \d+ */
    const char *dns;
    const char *dual; /* NULL: no dual-stack suffix known */
};

/* Order matters: the specific patterns before the generic "aws" ones. */
static const struct partition partitions[] = {
    {"aws-us-gov", "us-gov-", "amazonaws.com", "api.aws"},
    {"aws-iso-b", "us-isob-", "sc2s.sgov.gov", NULL},
    {"aws-iso-f", "us-isof-", "csp.hci.ic.gov", NULL},
    {"aws-iso", "us-iso-", "c2s.ic.gov", NULL},
    {"aws-iso-e", "eu-isoe-", "cloud.adc-e.uk", NULL},
    {"aws-cn", "cn-", "amazonaws.com.cn", "api.amazonwebservices.com.cn"},
    {"aws-eusc", "eusc-de-", "amazonaws.eu", "api.amazonwebservices.eu"},
    {"aws", "us-", "amazonaws.com", "api.aws"},
    {"aws", "eu-", "amazonaws.com", "api.aws"},
    {"aws", "ap-", "amazonaws.com", "api.aws"},
    {"aws", "sa-", "amazonaws.com", "api.aws"},
    {"aws", "ca-", "amazonaws.com", "api.aws"},
    {"aws", "me-", "amazonaws.com", "api.aws"},
    {"aws", "af-", "amazonaws.com", "api.aws"},
    {"aws", "il-", "amazonaws.com", "api.aws"},
    {"aws", "mx-", "amazonaws.com", "api.aws"},
};
/* Unknown patterns resolve in "aws", as botocore's rule sets do. */
static const struct partition default_partition = {"aws", "", "amazonaws.com",
                                                   "api.aws"};

struct service_info {
    const char *signing_name;
    const char *env_suffix;
    const char *config_key;
    const char *host;      /* standard host prefix */
    const char *fips_host; /* FIPS host prefix */
    int gov_fips_is_std;   /* GovCloud FIPS = the standard name */
};

static const struct service_info services[AWS_SVC_COUNT_] = {
    [AWS_SVC_SSM] = {"ssm", "SSM", "ssm", "ssm", "ssm-fips", 1},
    [AWS_SVC_EC2IC] = {"ec2-instance-connect", "EC2_INSTANCE_CONNECT",
                       "ec2_instance_connect", "ec2-instance-connect",
                       "ec2-instance-connect-fips", 0},
    [AWS_SVC_STS] = {"sts", "STS", "sts", "sts", "sts-fips", 1},
    [AWS_SVC_EC2] = {"ec2", "EC2", "ec2", "ec2", "ec2-fips", 1},
    [AWS_SVC_SSO] = {"awsssoportal", "SSO", "sso", "portal.sso",
                     "portal.sso-fips", 0},
    [AWS_SVC_SSO_OIDC] = {"sso-oauth", "SSO_OIDC", "sso_oidc", "oidc",
                          "oidc-fips", 0},
};

/* Regions where legacy STS mode uses the global host (botocore
 * LEGACY_GLOBAL_STS_REGIONS). */
static const char *const sts_legacy_global[] = {
    "ap-northeast-1", "ap-south-1",   "ap-southeast-1", "ap-southeast-2",
    "aws-global",     "ca-central-1", "eu-central-1",   "eu-north-1",
    "eu-west-1",      "eu-west-2",    "eu-west-3",      "sa-east-1",
    "us-east-1",      "us-east-2",    "us-west-1",      "us-west-2",
};

/* rest matches \w+-\d+ exactly. */
static int match_word_digits(const char *rest)
{
    const char *dash = strrchr(rest, '-');
    if (!dash || dash == rest || !dash[1])
        return 0;
    for (const char *p = rest; p < dash; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 0;
    for (const char *p = dash + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

static const struct partition *partition_find(const char *region)
{
    for (size_t i = 0; i < ARRAY_SIZE(partitions); i++) {
        size_t n = strlen(partitions[i].prefix);
        if (strncmp(region, partitions[i].prefix, n) == 0 &&
            match_word_digits(region + n))
            return &partitions[i];
    }
    return &default_partition;
}

const char *aws_partition_of(const char *region)
{
    return partition_find(region ? region : "")->id;
}

const char *aws_dns_suffix_of(const char *region)
{
    return partition_find(region ? region : "")->dns;
}

const char *aws_service_signing_name(enum aws_service svc)
{
    return (unsigned)svc < AWS_SVC_COUNT_ ? services[svc].signing_name : NULL;
}

const char *aws_service_env_suffix(enum aws_service svc)
{
    return (unsigned)svc < AWS_SVC_COUNT_ ? services[svc].env_suffix : NULL;
}

const char *aws_service_config_key(enum aws_service svc)
{
    return (unsigned)svc < AWS_SVC_COUNT_ ? services[svc].config_key : NULL;
}

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

/* A boolean setting: the environment when set, else the profile key. */
static int setting_true(const struct aws_env *env, const char *var,
                        const struct aws_profiles *p, const char *profile,
                        const char *key)
{
    const char *v = nonempty(aws_env_get(env, var));
    if (!v)
        v = aws_profile_get(p, profile, key);
    return aws_env_is_true(v);
}

/* Overrides of 3.3; NULL when none applies. */
static const char *find_override(enum aws_service svc,
                                 const struct aws_profiles *p,
                                 const char *profile, const struct aws_env *env)
{
    const char *v;
    char var[64];
    if (setting_true(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", p, profile,
                     "ignore_configured_endpoint_urls"))
        return NULL;
    snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s", services[svc].env_suffix);
    if ((v = nonempty(aws_env_get(env, var))))
        return v;
    if ((v = nonempty(aws_env_get(env, "AWS_ENDPOINT_URL"))))
        return v;
    const char *block = nonempty(aws_profile_get(p, profile, "services"));
    if (block && (v = nonempty(aws_services_get(
                      p, block, services[svc].config_key, "endpoint_url"))))
        return v;
    return nonempty(aws_profile_get(p, profile, "endpoint_url"));
}

/* http(s)://host... with a non-empty host and no whitespace. */
static int valid_url(const char *u)
{
    const char *h;
    if (strncasecmp(u, "https://", 8) == 0)
        h = u + 8;
    else if (strncasecmp(u, "http://", 7) == 0)
        h = u + 7;
    else
        return 0;
    if (!*h || *h == '/' || *h == ':' || *h == '?' || *h == '#')
        return 0;
    for (const char *c = u; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c == 0x7f)
            return 0;
    return 1;
}

static int valid_region(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n >= AWS_ENDPOINT_REGION_MAX || r[0] == '-' ||
        r[n - 1] == '-')
        return 0;
    for (; *r; r++)
        if (!(islower((unsigned char)*r) || isdigit((unsigned char)*r) ||
              *r == '-'))
            return 0;
    return 1;
}

static int sts_global(const char *region, const struct aws_profiles *p,
                      const char *profile, const struct aws_env *env)
{
    const char *v = nonempty(aws_env_get(env, "AWS_STS_REGIONAL_ENDPOINTS"));
    if (!v)
        v = aws_profile_get(p, profile, "sts_regional_endpoints");
    if (!v || strcasecmp(v, "legacy") != 0)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(sts_legacy_global); i++)
        if (strcmp(region, sts_legacy_global[i]) == 0)
            return 1;
    return 0;
}

int aws_endpoint_resolve(enum aws_service svc, const char *region,
                         const struct aws_profiles *p, const char *profile,
                         const struct aws_env *env, struct aws_endpoint *out)
{
    if ((unsigned)svc >= AWS_SVC_COUNT_ || !out)
        return GW_EINVAL;
    memset(out, 0, sizeof(*out));
    if (!region || !*region)
        return GW_ENO_REGION;
    if (!valid_region(region))
        return GW_EINVAL;
    const struct service_info *si = &services[svc];
    const struct partition *part = partition_find(region);
    int fips = setting_true(env, "AWS_USE_FIPS_ENDPOINT", p, profile,
                            "use_fips_endpoint");
    int dual = setting_true(env, "AWS_USE_DUALSTACK_ENDPOINT", p, profile,
                            "use_dualstack_endpoint");
    int n;

    out->signing_name = si->signing_name;
    out->partition = part->id;
    snprintf(out->signing_region, sizeof(out->signing_region), "%s", region);

    const char *ov = find_override(svc, p, profile, env);
    if (ov) {
        if (!valid_url(ov) || fips || dual)
            return GW_ECONFIG;
        n = snprintf(out->url, sizeof(out->url), "%s", ov);
        if (n < 0 || (size_t)n >= sizeof(out->url))
            return GW_ETOO_BIG;
        out->overridden = 1;
        return 0;
    }

    if (svc == AWS_SVC_STS && !fips && !dual &&
        sts_global(region, p, profile, env)) {
        snprintf(out->url, sizeof(out->url), "https://sts.amazonaws.com");
        snprintf(out->signing_region, sizeof(out->signing_region), "us-east-1");
        return 0;
    }

    const char *host = si->host;
    if (fips && !(si->gov_fips_is_std && strcmp(part->id, "aws-us-gov") == 0))
        host = si->fips_host;
    const char *suffix = part->dns;
    if (dual) {
        if (!part->dual)
            return GW_EUNSUPPORTED;
        suffix = part->dual;
    }
    n = snprintf(out->url, sizeof(out->url), "https://%s.%s.%s", host, region,
                 suffix);
    if (n < 0 || (size_t)n >= sizeof(out->url))
        return GW_ETOO_BIG;
    return 0;
}
