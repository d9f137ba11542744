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

#define S(n) AWS_CHAIN_##n

/* profile, one "NAME=value" variable (or NULL), flags (x explicit
 * profile, s a role's source, f credential_source, d inside a role
 * chain), the step to start from, the step wanted. */
struct row {
    const char *profile, *env, *flags;
    enum aws_chain_step from, want;
};

static const struct row rows[] = {
    /* Environment keys win unless the profile was named. */
    {"default", "AWS_ACCESS_KEY_ID=A", "", S(ENV), S(ENV)},
    {"keys", "AWS_ACCESS_KEY_ID=A", "x", S(ENV), S(STATIC)},
    {"default", "AWS_ACCESS_KEY_ID=", "", S(ENV), S(IMDS)},
    /* Assume role before static keys; a source with keys uses them. */
    {"role", NULL, "x", S(ENV), S(ASSUME_ROLE)},
    {"rolekeys", NULL, "xsd", S(ENV), S(STATIC)},
    {"rolekeys", NULL, "x", S(ENV), S(ASSUME_ROLE)},
    /* role_arn with a token file is web identity, not assume role. */
    {"webid", NULL, "x", S(ENV), S(WEB_IDENTITY)},
    {"default", "AWS_WEB_IDENTITY_TOKEN_FILE=/t", "", S(ENV), S(WEB_IDENTITY)},
    {"empty", "AWS_WEB_IDENTITY_TOKEN_FILE=/t", "x", S(ENV), S(IMDS)},
    {"sso", NULL, "x", S(ENV), S(SSO)},
    {"proc", NULL, "x", S(ENV), S(PROCESS)},
    {"empty", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/c", "x", S(ENV),
     S(CONTAINER)},
    {"empty", "AWS_CONTAINER_CREDENTIALS_FULL_URI=https://x", "x", S(ENV),
     S(CONTAINER)},
    /* IMDS unless disabled; then the CLI for a profile that exists. */
    {"empty", "AWS_EC2_METADATA_DISABLED=true", "x", S(ENV), S(CLI)},
    {"nosuch", "AWS_EC2_METADATA_DISABLED=TRUE", "x", S(ENV), S(END)},
    {"empty", "AWS_EC2_METADATA_DISABLED=true", "xd", S(ENV), S(END)},
    {"empty", NULL, "x", S(CLI), S(CLI)},
    {"empty", NULL, "x", S(END), S(END)},
    /* Going on after a step that took over but was not configured. */
    {"proc", NULL, "x", S(PROCESS) + 1, S(IMDS)},
    /* credential_source: only environment, container and IMDS. */
    {"keys", NULL, "fd", S(ENV), S(END)},
    {"keys", "AWS_ACCESS_KEY_ID=A", "fd", S(ENV), S(ENV)},
    {"keys", NULL, "xfd", S(IMDS), S(IMDS)},
    {"keys", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/c", "xfd", S(CONTAINER),
     S(CONTAINER)},
    {"keys", "AWS_EC2_METADATA_DISABLED=true", "xfd", S(IMDS), S(END)},
};

/* The row's one variable. */
static const char *row_get(const char *name, void *arg)
{
    const char *kv = arg;
    size_t n = strlen(name);

    if (kv && strncmp(kv, name, n) == 0 && kv[n] == '=')
        return kv + n + 1;
    return NULL;
}

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
        struct aws_env env = {row_get, (void *)r->env};
        struct aws_chain_view v = {
            .p = p,
            .profile = r->profile,
            .env = &env,
            .explicit_profile = strchr(r->flags, 'x') != NULL,
            .source_mode = strchr(r->flags, 's') != NULL,
            .forced = strchr(r->flags, 'f') != NULL,
            .depth = strchr(r->flags, 'd') != NULL,
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
