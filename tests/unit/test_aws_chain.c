/*
 * test_aws_chain.c - which credential provider a profile and the
 * environment select (AWS CLI v2 order), and where the chain goes after
 * a step: one table row per case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "aws_chain.h"
#include "common.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *fake_get(const char *name, void *arg)
{
    const char *const *kv = arg;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static const char cfg[] =
    "[default]\nregion = eu-west-1\n"
    "[profile keys]\naws_access_key_id = AK\naws_secret_access_key = SK\n"
    "[profile role]\nrole_arn = arn:r\nsource_profile = keys\n"
    "[profile rolekeys]\nrole_arn = arn:r\nsource_profile = rolekeys\n"
    "aws_access_key_id = AK\n"
    "[profile webid]\nrole_arn = arn:r\nweb_identity_token_file = /t\n"
    "[profile sso]\nsso_session = s\nsso_account_id = 1\n"
    "[profile proc]\ncredential_process = /bin/true\n"
    "[profile empty]\nregion = us-east-1\n";

#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL, NULL})
#define NOENV    ((const char *const[]){NULL, NULL})

struct row {
    const char *profile;
    const char *const *env;
    int explicit_profile, source_mode, forced, depth;
    enum aws_chain_step from, want;
};

static const struct row rows[] = {
    /* Environment keys win unless the profile was named. */
    {"default", ENV("AWS_ACCESS_KEY_ID", "A"), 0, 0, 0, 0, AWS_CHAIN_ENV,
     AWS_CHAIN_ENV},
    {"keys", ENV("AWS_ACCESS_KEY_ID", "A"), 1, 0, 0, 0, AWS_CHAIN_ENV,
     AWS_CHAIN_STATIC},
    {"default", ENV("AWS_ACCESS_KEY_ID", ""), 0, 0, 0, 0, AWS_CHAIN_ENV,
     AWS_CHAIN_IMDS},
    /* Assume role before static keys; a source with keys uses them. */
    {"role", NOENV, 1, 0, 0, 0, AWS_CHAIN_ENV, AWS_CHAIN_ASSUME_ROLE},
    {"rolekeys", NOENV, 1, 1, 0, 1, AWS_CHAIN_ENV, AWS_CHAIN_STATIC},
    {"rolekeys", NOENV, 1, 0, 0, 0, AWS_CHAIN_ENV, AWS_CHAIN_ASSUME_ROLE},
    /* role_arn with a token file is web identity, not assume role. */
    {"webid", NOENV, 1, 0, 0, 0, AWS_CHAIN_ENV, AWS_CHAIN_WEB_IDENTITY},
    {"default", ENV("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), 0, 0, 0, 0,
     AWS_CHAIN_ENV, AWS_CHAIN_WEB_IDENTITY},
    {"empty", ENV("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), 1, 0, 0, 0,
     AWS_CHAIN_ENV, AWS_CHAIN_IMDS},
    {"sso", NOENV, 1, 0, 0, 0, AWS_CHAIN_ENV, AWS_CHAIN_SSO},
    {"proc", NOENV, 1, 0, 0, 0, AWS_CHAIN_ENV, AWS_CHAIN_PROCESS},
    {"empty", ENV("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/c"), 1, 0, 0, 0,
     AWS_CHAIN_ENV, AWS_CHAIN_CONTAINER},
    {"empty", ENV("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://x"), 1, 0, 0,
     0, AWS_CHAIN_ENV, AWS_CHAIN_CONTAINER},
    /* IMDS unless disabled; then the CLI for a profile that exists. */
    {"empty", ENV("AWS_EC2_METADATA_DISABLED", "true"), 1, 0, 0, 0,
     AWS_CHAIN_ENV, AWS_CHAIN_CLI},
    {"nosuch", ENV("AWS_EC2_METADATA_DISABLED", "TRUE"), 1, 0, 0, 0,
     AWS_CHAIN_ENV, AWS_CHAIN_END},
    {"empty", ENV("AWS_EC2_METADATA_DISABLED", "true"), 1, 0, 0, 1,
     AWS_CHAIN_ENV, AWS_CHAIN_END},
    {"empty", NOENV, 1, 0, 0, 0, AWS_CHAIN_CLI, AWS_CHAIN_CLI},
    {"empty", NOENV, 1, 0, 0, 0, AWS_CHAIN_END, AWS_CHAIN_END},
    /* Going on after a step that took over but was not configured. */
    {"proc", NOENV, 1, 0, 0, 0, AWS_CHAIN_PROCESS + 1, AWS_CHAIN_IMDS},
    /* credential_source: only environment, container and IMDS. */
    {"keys", NOENV, 0, 0, 1, 1, AWS_CHAIN_ENV, AWS_CHAIN_END},
    {"keys", ENV("AWS_ACCESS_KEY_ID", "A"), 0, 0, 1, 1, AWS_CHAIN_ENV,
     AWS_CHAIN_ENV},
    {"keys", NOENV, 1, 0, 1, 1, AWS_CHAIN_IMDS, AWS_CHAIN_IMDS},
    {"keys", ENV("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/c"), 1, 0, 1, 1,
     AWS_CHAIN_CONTAINER, AWS_CHAIN_CONTAINER},
    {"keys", ENV("AWS_EC2_METADATA_DISABLED", "true"), 1, 0, 1, 1,
     AWS_CHAIN_IMDS, AWS_CHAIN_END},
};

static void test_select(void **state)
{
    struct aws_profiles *p = NULL;
    char err[256];

    (void)state;
    assert_int_equal(
        aws_profiles_load_mem(cfg, strlen(cfg), NULL, 0, &p, err, sizeof(err)),
        0);
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        const struct row *r = &rows[i];
        struct aws_env env = {fake_get, (void *)r->env};
        struct aws_chain_view v = {
            .p = p,
            .profile = r->profile,
            .env = &env,
            .explicit_profile = r->explicit_profile,
            .source_mode = r->source_mode,
            .forced = r->forced,
            .depth = r->depth,
        };
        enum aws_chain_step got = aws_chain_next(&v, r->from);
        if (got != r->want)
            print_message("row %zu (%s): got %s, want %s\n", i, r->profile,
                          aws_chain_step_name(got),
                          aws_chain_step_name(r->want));
        assert_int_equal(got, r->want);
    }
    aws_profiles_free(p);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(aws_chain_step_name(AWS_CHAIN_ENV), "environment");
    assert_string_equal(aws_chain_step_name(AWS_CHAIN_CLI),
                        "aws configure export-credentials");
    assert_string_equal(aws_chain_step_name(AWS_CHAIN_END), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
