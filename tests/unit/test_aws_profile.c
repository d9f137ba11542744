/* Unit tests for aws_profile.c: section forms, precedence, inline ';',
 * long lines past Debian inih's 200 bytes, nested [services], regions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "aws_profile.h"
#include "common.h"

static struct aws_profiles *load(const char *config, const char *creds)
{
    char err[256];
    struct aws_profiles *p =
        aws_profiles_load_mem(config, config ? strlen(config) : 0, creds,
                              creds ? strlen(creds) : 0, err, sizeof(err));
    assert_non_null(p);
    return p;
}

static void test_sections_and_precedence(void **state)
{
    struct aws_profiles *p = load(
        "[default]\nregion = us-east-1\n"
        "[profile dev]\nregion=eu-west-1\nRole_Arn = arn:aws:iam::1:role/x\n"
        "aws_access_key_id = FROMCONFIG\n"
        "[profile \"a b\"]\nregion = ap-south-1\n"
        "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
        "sso_region = us-east-1\n"
        "[services local]\nssm =\n  endpoint_url = http://localhost:4566\n"
        "ec2_instance_connect =\n  endpoint_url = http://localhost:4567\n",
        "[dev]\naws_access_key_id = FROMCREDS\n"
        "aws_secret_access_key = s;ecret ; not a comment\n"
        "[profile x]\naws_access_key_id = LITERAL\n");
    assert_string_equal(aws_profile_get(p, "default", "region"), "us-east-1");
    assert_string_equal(aws_profile_get(p, "dev", "region"), "eu-west-1");
    assert_string_equal(aws_profile_get(p, "dev", "role_arn"),
                        "arn:aws:iam::1:role/x");
    assert_string_equal(aws_profile_get(p, "dev", "aws_access_key_id"),
                        "FROMCREDS");
    assert_string_equal(aws_profile_get(p, "dev", "aws_secret_access_key"),
                        "s;ecret ; not a comment");
    assert_string_equal(aws_profile_get(p, "a b", "region"), "ap-south-1");
    /* [profile x] in the credentials file is a profile named "profile x". */
    assert_null(aws_profile_get(p, "x", "aws_access_key_id"));
    assert_string_equal(aws_profile_get(p, "profile x", "aws_access_key_id"),
                        "LITERAL");
    assert_true(aws_profile_exists(p, "dev"));
    assert_false(aws_profile_exists(p, "nope"));
    assert_string_equal(aws_sso_session_get(p, "corp", "sso_region"),
                        "us-east-1");
    assert_string_equal(aws_services_get(p, "local", "ssm", "endpoint_url"),
                        "http://localhost:4566");
    assert_string_equal(
        aws_services_get(p, "local", "ec2_instance_connect", "endpoint_url"),
        "http://localhost:4567");
    assert_null(aws_services_get(p, "local", "sts", "endpoint_url"));
    aws_profiles_free(p);
}

static void test_long_lines(void **state)
{
    size_t sizes[] = {199, 200, 201, 2048, 5000};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        char *token = malloc(sizes[i] + 1);
        for (size_t k = 0; k < sizes[i]; k++)
            token[k] = "AbC+/= ;x9"[k % 10];
        token[sizes[i]] = '\0';
        /* No trailing space: botocore strips the value's ends too. */
        if (token[sizes[i] - 1] == ' ')
            token[sizes[i] - 1] = 'z';
        char *creds = malloc(sizes[i] + 200);
        snprintf(creds, sizes[i] + 200,
                 "\xEF\xBB\xBF[default]\r\naws_access_key_id = AKID\r\n"
                 "aws_session_token = %s\r\nregion = eu-west-1",
                 token);
        struct aws_profiles *p = load(NULL, creds);
        const char *got = aws_profile_get(p, "default", "aws_session_token");
        assert_non_null(got);
        if (strcmp(got, token) != 0)
            fail_msg("size %zu: token changed (got %zu bytes)", sizes[i],
                     strlen(got));
        assert_string_equal(aws_profile_get(p, "default", "region"),
                            "eu-west-1");
        assert_string_equal(aws_profile_get(p, "default", "aws_access_key_id"),
                            "AKID");
        aws_profiles_free(p);
        free(token);
        free(creds);
    }
}

static void test_region_and_profile_resolution(void **state)
{
    struct aws_profiles *p = load(
        "[profile dev]\nregion = eu-west-1\n[default]\nregion = x-y-1\n", NULL);
    char out[64];
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_DEFAULT_PROFILE");
    assert_string_equal(aws_resolve_profile_name(NULL), "default");
    setenv("AWS_DEFAULT_PROFILE", "b", 1);
    assert_string_equal(aws_resolve_profile_name(""), "b");
    setenv("AWS_PROFILE", "a", 1);
    assert_string_equal(aws_resolve_profile_name(NULL), "a");
    assert_string_equal(aws_resolve_profile_name("c"), "c");
    assert_int_equal(aws_resolve_region(NULL, p, "dev", out, sizeof(out)), 0);
    assert_string_equal(out, "eu-west-1");
    setenv("AWS_DEFAULT_REGION", "us-west-2", 1);
    assert_int_equal(aws_resolve_region(NULL, p, "dev", out, sizeof(out)), 0);
    assert_string_equal(out, "us-west-2");
    setenv("AWS_REGION", "ap-east-1", 1);
    assert_int_equal(aws_resolve_region(NULL, p, "dev", out, sizeof(out)), 0);
    assert_string_equal(out, "ap-east-1");
    assert_int_equal(
        aws_resolve_region("sa-east-1", p, "dev", out, sizeof(out)), 0);
    assert_string_equal(out, "sa-east-1");
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    assert_int_equal(aws_resolve_region(NULL, p, "none", out, sizeof(out)),
                     GW_ENO_REGION);
    aws_profiles_free(p);
}

static void test_hostile(void **state)
{
    static const char junk[] =
        "[unterminated\n= no key\n[profile]\nk\n\0\x01\x02"
        "\x03 = v\n[profile p]\nkey = \x01\x02\n";
    char err[64];
    struct aws_profiles *p = aws_profiles_load_mem(
        junk, sizeof(junk) - 1, junk, sizeof(junk) - 1, err, sizeof(err));
    assert_non_null(p);
    aws_profiles_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sections_and_precedence),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_region_and_profile_resolution),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
