/*
 * aws_endpoint.h - where to send a call: partitions, FIPS / dual-stack,
 * and the SDK-standard endpoint overrides. Pure apart from getenv.
 */
#ifndef SSMGATE_AWS_ENDPOINT_H
#define SSMGATE_AWS_ENDPOINT_H

#include <stddef.h>

struct aws_profiles;

struct aws_endpoint {
    char url[512];           /* scheme://host[:port][/path], no trailing / */
    char signing_region[64];
    char signing_name[64];
    int overridden;          /* came from AWS_ENDPOINT_URL* or the config */
};

/*
 * service: "ssm", "ec2-instance-connect", "sts", "ec2", "sso" (portal),
 * "sso-oidc". Order: AWS_ENDPOINT_URL_<SERVICE>, AWS_ENDPOINT_URL, the
 * profile's services section, the profile's endpoint_url (unless
 * AWS_IGNORE_CONFIGURED_ENDPOINT_URLS / ignore_configured_endpoint_urls),
 * else the standard host for the region's partition with FIPS/dual-stack.
 * Returns 0, GW_EINVAL (unknown service) or GW_ENO_REGION.
 */
int aws_endpoint_resolve(const char *service, const char *region,
                         const struct aws_profiles *p, const char *profile,
                         struct aws_endpoint *out);

#endif
