/*
 * aws_endpoint.h - where each AWS call goes and how it is signed.
 *
 * Owns: partitions by region pattern (aws, aws-cn, aws-us-gov, aws-eusc,
 * aws-iso*), standard / FIPS / dual-stack host names, STS regional vs
 * global, and the SDK-standard overrides, first hit wins:
 *   AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the profile's
 *   services = <name> -> [services <name>] <key> -> endpoint_url, the
 *   profile's endpoint_url;
 * all four off with AWS_IGNORE_CONFIGURED_ENDPOINT_URLS /
 * ignore_configured_endpoint_urls. FIPS and dual-stack from
 * AWS_USE_FIPS_ENDPOINT / use_fips_endpoint and AWS_USE_DUALSTACK_ENDPOINT
 * / use_dualstack_endpoint (env beats profile). Pure: the environment
 * comes through struct aws_env (NULL = getenv).
 */
#ifndef SSMGATE_AWS_ENDPOINT_H
#define SSMGATE_AWS_ENDPOINT_H

#include <stddef.h>

#include "aws_profile.h"

enum aws_service {
    AWS_SVC_SSM = 0,  /* ssm, env SSM, key ssm */
    AWS_SVC_EC2IC,    /* ec2-instance-connect, EC2_INSTANCE_CONNECT */
    AWS_SVC_STS,      /* sts */
    AWS_SVC_EC2,      /* ec2 */
    AWS_SVC_SSO,      /* SSO portal: portal.sso.<r>, env SSO, key sso */
    AWS_SVC_SSO_OIDC, /* oidc.<r>, env SSO_OIDC, key sso_oidc */
    AWS_SVC_COUNT_
};

#define AWS_ENDPOINT_URL_MAX    512
#define AWS_ENDPOINT_REGION_MAX 64

struct aws_endpoint {
    /* scheme://host[:port][/path], no trailing '/' added or removed. */
    char url[AWS_ENDPOINT_URL_MAX];
    /* Region for the SigV4 scope (us-east-1 for global STS). */
    char signing_region[AWS_ENDPOINT_REGION_MAX];
    /* SigV4 service name ("ssm", "ec2-instance-connect", ...). */
    const char *signing_name;
    /* 1 when the URL came from an override (env or config). */
    int overridden;
    /* Partition id ("aws", "aws-cn", "aws-us-gov", ...). */
    const char *partition;
};

/*
 * Resolves svc for region (the resolved Region, required) with profile
 * settings from p / profile (p may be NULL). Returns 0, GW_ENO_REGION
 * (region NULL/empty), GW_EINVAL (region not a lower-case host label),
 * GW_ECONFIG (an override that is not an http(s) URL with a host, or FIPS
 * / dual-stack switched on together with an override, which the SDK rule
 * sets refuse too), GW_EUNSUPPORTED (dual-stack in a partition without a
 * dual-stack suffix: the iso partitions) or GW_ETOO_BIG.
 */
int aws_endpoint_resolve(enum aws_service svc, const char *region,
                         const struct aws_profiles *p, const char *profile,
                         const struct aws_env *env, struct aws_endpoint *out);

/* Partition id for a region ("aws" for unknown patterns, like botocore). */
const char *aws_partition_of(const char *region);
/* DNS suffix of the partition of region ("amazonaws.com", ...). */
const char *aws_dns_suffix_of(const char *region);

/* Signing name, env suffix and config key of a service. */
const char *aws_service_signing_name(enum aws_service svc);
const char *aws_service_env_suffix(enum aws_service svc);
const char *aws_service_config_key(enum aws_service svc);

#endif
