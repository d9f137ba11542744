/*
 * test_aws_endpoint.c - endpoints per partition, FIPS, dual-stack, STS
 * global vs regional, and every override source in its order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "aws_endpoint.h"
#include "common.h"

static const char *fake_get(const char *name, void *arg)
{
    const char *const *kv = arg;
    for (; kv && kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NOENV    ((const char *const[]){NULL})

struct ep_case {
    const char *name;
    enum aws_service svc;
    const char *region;
    const char *const *env;
    const char *cfg;     /* config file text or NULL */
    const char *profile; /* NULL = "default" */
    int rc;
    const char *url;
    const char *signing_region;
    int overridden;
};

static const char SERVICES_CFG[] =
    "[default]\n"
    "services = local\n"
    "endpoint_url = http://profile-wide:1\n"
    "[services local]\n"
    "ssm =\n"
    "  endpoint_url = http://localhost:4566\n"
    "ec2_instance_connect =\n"
    "  endpoint_url = http://localhost:4567/path\n"
    "[profile ignoring]\n"
    "services = local\n"
    "ignore_configured_endpoint_urls = true\n"
    "[profile fips]\n"
    "use_fips_endpoint = true\n"
    "use_dualstack_endpoint = TRUE\n"
    "[profile legacy]\n"
    "sts_regional_endpoints = legacy\n"
    "[profile bad]\n"
    "endpoint_url = localhost:4566\n";

static const struct ep_case cases[] = {
    /* One case per line. */
    /* clang-format off */
    /* Standard names in each partition. */
    {"ssm aws", AWS_SVC_SSM, "us-east-1", NOENV, NULL, NULL, 0, "https://ssm.us-east-1.amazonaws.com", "us-east-1", 0},
    {"ec2ic eu", AWS_SVC_EC2IC, "eu-west-1", NOENV, NULL, NULL, 0, "https://ec2-instance-connect.eu-west-1.amazonaws.com", "eu-west-1", 0},
    {"ec2 cn", AWS_SVC_EC2, "cn-north-1", NOENV, NULL, NULL, 0, "https://ec2.cn-north-1.amazonaws.com.cn", "cn-north-1", 0},
    {"sso cn", AWS_SVC_SSO, "cn-north-1", NOENV, NULL, NULL, 0, "https://portal.sso.cn-north-1.amazonaws.com.cn", "cn-north-1", 0},
    {"sso aws", AWS_SVC_SSO, "eu-central-1", NOENV, NULL, NULL, 0, "https://portal.sso.eu-central-1.amazonaws.com", "eu-central-1", 0},
    {"oidc", AWS_SVC_SSO_OIDC, "us-west-2", NOENV, NULL, NULL, 0, "https://oidc.us-west-2.amazonaws.com", "us-west-2", 0},
    {"sts regional default", AWS_SVC_STS, "us-east-1", NOENV, NULL, NULL, 0, "https://sts.us-east-1.amazonaws.com", "us-east-1", 0},
    {"ssm gov", AWS_SVC_SSM, "us-gov-west-1", NOENV, NULL, NULL, 0, "https://ssm.us-gov-west-1.amazonaws.com", "us-gov-west-1", 0},
    {"ssm eusc", AWS_SVC_SSM, "eusc-de-east-1", NOENV, NULL, NULL, 0, "https://ssm.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1", 0},
    {"ssm iso", AWS_SVC_SSM, "us-iso-east-1", NOENV, NULL, NULL, 0, "https://ssm.us-iso-east-1.c2s.ic.gov", "us-iso-east-1", 0},
    {"ssm isob", AWS_SVC_SSM, "us-isob-east-1", NOENV, NULL, NULL, 0, "https://ssm.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1", 0},
    {"ssm isoe", AWS_SVC_SSM, "eu-isoe-west-1", NOENV, NULL, NULL, 0, "https://ssm.eu-isoe-west-1.cloud.adc-e.uk", "eu-isoe-west-1", 0},
    {"ssm isof", AWS_SVC_SSM, "us-isof-south-1", NOENV, NULL, NULL, 0, "https://ssm.us-isof-south-1.csp.hci.ic.gov", "us-isof-south-1", 0},
    {"unknown pattern is aws", AWS_SVC_SSM, "xx-new-1", NOENV, NULL, NULL, 0, "https://ssm.xx-new-1.amazonaws.com", "xx-new-1", 0},
    /* FIPS and dual-stack. */
    {"fips env", AWS_SVC_SSM, "us-east-1", ENV("AWS_USE_FIPS_ENDPOINT", "true"), NULL, NULL, 0, "https://ssm-fips.us-east-1.amazonaws.com", "us-east-1", 0},
    {"fips gov ssm = standard", AWS_SVC_SSM, "us-gov-west-1", ENV("AWS_USE_FIPS_ENDPOINT", "true"), NULL, NULL, 0, "https://ssm.us-gov-west-1.amazonaws.com", "us-gov-west-1", 0},
    {"fips gov ec2 = standard", AWS_SVC_EC2, "us-gov-east-1", ENV("AWS_USE_FIPS_ENDPOINT", "true"), NULL, NULL, 0, "https://ec2.us-gov-east-1.amazonaws.com", "us-gov-east-1", 0},
    {"fips gov sts = standard", AWS_SVC_STS, "us-gov-west-1", ENV("AWS_USE_FIPS_ENDPOINT", "true"), NULL, NULL, 0, "https://sts.us-gov-west-1.amazonaws.com", "us-gov-west-1", 0},
    {"fips gov ec2ic", AWS_SVC_EC2IC, "us-gov-west-1", ENV("AWS_USE_FIPS_ENDPOINT", "true"), NULL, NULL, 0, "https://ec2-instance-connect-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", 0},
    {"fips sso", AWS_SVC_SSO, "us-east-1", ENV("AWS_USE_FIPS_ENDPOINT", "TRUE"), NULL, NULL, 0, "https://portal.sso-fips.us-east-1.amazonaws.com", "us-east-1", 0},
    {"dual env", AWS_SVC_SSM, "eu-west-1", ENV("AWS_USE_DUALSTACK_ENDPOINT", "true"), NULL, NULL, 0, "https://ssm.eu-west-1.api.aws", "eu-west-1", 0},
    {"dual cn", AWS_SVC_EC2, "cn-northwest-1", ENV("AWS_USE_DUALSTACK_ENDPOINT", "true"), NULL, NULL, 0, "https://ec2.cn-northwest-1.api.amazonwebservices.com.cn", "cn-northwest-1", 0},
    {"fips+dual from profile", AWS_SVC_EC2IC, "us-east-2", NOENV, SERVICES_CFG, "fips", 0, "https://ec2-instance-connect-fips.us-east-2.api.aws", "us-east-2", 0},
    {"env false beats profile true", AWS_SVC_SSM, "us-east-2", ENV("AWS_USE_FIPS_ENDPOINT", "false", "AWS_USE_DUALSTACK_ENDPOINT", "false"), SERVICES_CFG, "fips", 0, "https://ssm.us-east-2.amazonaws.com", "us-east-2", 0},
    {"dual iso unsupported", AWS_SVC_SSM, "us-iso-east-1", ENV("AWS_USE_DUALSTACK_ENDPOINT", "true"), NULL, NULL, GW_EUNSUPPORTED, NULL, NULL, 0},
    /* STS legacy global. */
    {"sts legacy env", AWS_SVC_STS, "us-east-1", ENV("AWS_STS_REGIONAL_ENDPOINTS", "legacy"), NULL, NULL, 0, "https://sts.amazonaws.com", "us-east-1", 0},
    {"sts legacy profile eu-west-1", AWS_SVC_STS, "eu-west-1", NOENV, SERVICES_CFG, "legacy", 0, "https://sts.amazonaws.com", "us-east-1", 0},
    {"sts legacy newer region stays regional", AWS_SVC_STS, "ap-east-1", NOENV, SERVICES_CFG, "legacy", 0, "https://sts.ap-east-1.amazonaws.com", "ap-east-1", 0},
    {"sts env regional beats profile legacy", AWS_SVC_STS, "us-east-1", ENV("AWS_STS_REGIONAL_ENDPOINTS", "regional"), SERVICES_CFG, "legacy", 0, "https://sts.us-east-1.amazonaws.com", "us-east-1", 0},
    /* Overrides, in order. */
    {"service env first", AWS_SVC_SSM, "eu-west-1", ENV("AWS_ENDPOINT_URL_SSM", "http://svc-env:1", "AWS_ENDPOINT_URL", "http://global-env:2"), SERVICES_CFG, NULL, 0, "http://svc-env:1", "eu-west-1", 1},
    {"ec2ic env name", AWS_SVC_EC2IC, "eu-west-1", ENV("AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", "https://eic.local", "AWS_ENDPOINT_URL_SSM", "http://svc-env:1"), NULL, NULL, 0, "https://eic.local", "eu-west-1", 1},
    {"sso oidc env name", AWS_SVC_SSO_OIDC, "eu-west-1", ENV("AWS_ENDPOINT_URL_SSO_OIDC", "http://oidc.local"), NULL, NULL, 0, "http://oidc.local", "eu-west-1", 1},
    {"global env second", AWS_SVC_STS, "eu-west-1", ENV("AWS_ENDPOINT_URL", "http://global-env:2"), SERVICES_CFG, NULL, 0, "http://global-env:2", "eu-west-1", 1},
    {"services block third", AWS_SVC_SSM, "eu-west-1", NOENV, SERVICES_CFG, NULL, 0, "http://localhost:4566", "eu-west-1", 1},
    {"services block with path", AWS_SVC_EC2IC, "eu-west-1", NOENV, SERVICES_CFG, NULL, 0, "http://localhost:4567/path", "eu-west-1", 1},
    {"profile endpoint_url fourth", AWS_SVC_EC2, "eu-west-1", NOENV, SERVICES_CFG, NULL, 0, "http://profile-wide:1", "eu-west-1", 1},
    {"empty env ignored", AWS_SVC_SSM, "eu-west-1", ENV("AWS_ENDPOINT_URL_SSM", "", "AWS_ENDPOINT_URL", ""), SERVICES_CFG, NULL, 0, "http://localhost:4566", "eu-west-1", 1},
    {"ignore env", AWS_SVC_SSM, "eu-west-1", ENV("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", "AWS_ENDPOINT_URL_SSM", "http://svc-env:1"), SERVICES_CFG, NULL, 0, "https://ssm.eu-west-1.amazonaws.com", "eu-west-1", 0},
    {"ignore profile", AWS_SVC_SSM, "eu-west-1", ENV("AWS_ENDPOINT_URL", "http://global-env:2"), SERVICES_CFG, "ignoring", 0, "https://ssm.eu-west-1.amazonaws.com", "eu-west-1", 0},
    {"ignore env false beats profile", AWS_SVC_SSM, "eu-west-1", ENV("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false"), SERVICES_CFG, "ignoring", 0, "http://localhost:4566", "eu-west-1", 1},
    {"bad override", AWS_SVC_SSM, "eu-west-1", NOENV, SERVICES_CFG, "bad", GW_ECONFIG, NULL, NULL, 0},
    {"bad override scheme", AWS_SVC_SSM, "eu-west-1", ENV("AWS_ENDPOINT_URL", "ftp://x"), NULL, NULL, GW_ECONFIG, NULL, NULL, 0},
    {"override + fips", AWS_SVC_SSM, "eu-west-1", ENV("AWS_ENDPOINT_URL", "http://x", "AWS_USE_FIPS_ENDPOINT", "true"), NULL, NULL, GW_ECONFIG, NULL, NULL, 0},
    /* Bad regions. */
    {"no region", AWS_SVC_SSM, "", NOENV, NULL, NULL, GW_ENO_REGION, NULL, NULL, 0},
    {"null region", AWS_SVC_SSM, NULL, NOENV, NULL, NULL, GW_ENO_REGION, NULL, NULL, 0},
    {"region with dot", AWS_SVC_SSM, "evil.com/x", NOENV, NULL, NULL, GW_EINVAL, NULL, NULL, 0},
    {"region upper", AWS_SVC_SSM, "US-EAST-1", NOENV, NULL, NULL, GW_EINVAL, NULL, NULL, 0},
    /* clang-format on */
};

static void test_resolve(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct ep_case *c = &cases[i];
        struct aws_profiles *p = NULL;
        char err[128];
        print_message("%s\n", c->name);
        if (c->cfg)
            assert_int_equal(aws_profiles_load_mem(c->cfg, strlen(c->cfg), NULL,
                                                   0, &p, err, sizeof(err)),
                             0);
        struct aws_env env = {fake_get, (void *)c->env};
        struct aws_endpoint ep;
        int rc = aws_endpoint_resolve(c->svc, c->region, p,
                                      c->profile ? c->profile : "default", &env,
                                      &ep);
        assert_int_equal(rc, c->rc);
        if (rc == 0) {
            assert_string_equal(ep.url, c->url);
            assert_string_equal(ep.signing_region, c->signing_region);
            assert_int_equal(ep.overridden, c->overridden);
            assert_string_equal(ep.signing_name,
                                aws_service_signing_name(c->svc));
        }
        aws_profiles_free(p);
    }
}

static void test_partitions(void **state)
{
    (void)state;
    static const char *const pr[][2] = {
        {"us-east-1", "aws"},
        {"il-central-1", "aws"},
        {"mx-central-1", "aws"},
        {"cn-north-1", "aws-cn"},
        {"us-gov-west-1", "aws-us-gov"},
        {"eusc-de-east-1", "aws-eusc"},
        {"us-iso-east-1", "aws-iso"},
        {"us-isob-east-1", "aws-iso-b"},
        {"eu-isoe-west-1", "aws-iso-e"},
        {"us-isof-south-1", "aws-iso-f"},
        {"cn-north", "aws"},
        {"", "aws"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(pr); i++)
        assert_string_equal(aws_partition_of(pr[i][0]), pr[i][1]);
    assert_string_equal(aws_dns_suffix_of("cn-north-1"), "amazonaws.com.cn");
    assert_string_equal(aws_service_signing_name(AWS_SVC_EC2IC),
                        "ec2-instance-connect");
    assert_string_equal(aws_service_env_suffix(AWS_SVC_EC2IC),
                        "EC2_INSTANCE_CONNECT");
    assert_string_equal(aws_service_config_key(AWS_SVC_SSO_OIDC), "sso_oidc");
    assert_null(aws_service_signing_name(AWS_SVC_COUNT_));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
