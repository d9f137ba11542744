/*
 * test_aws_profile.c - the AWS shared files parsed as botocore parses
 * them: section forms, comments, whitespace, long lines, line endings,
 * credentials-over-config, services blocks, and profile / region
 * resolution order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "aws_profile.h"
#include "common.h"

/* A fake environment: NULL-terminated name/value pairs. */
static const char *fake_get(const char *name, void *arg)
{
    const char **kv = arg;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static struct aws_profiles *load(const char *cfg, const char *creds)
{
    struct aws_profiles *p = NULL;
    char err[256];
    int rc =
        aws_profiles_load_mem(cfg, cfg ? strlen(cfg) : 0, creds,
                              creds ? strlen(creds) : 0, &p, err, sizeof(err));
    if (rc != 0)
        print_error("load: %d %s\n", rc, err);
    assert_int_equal(rc, 0);
    return p;
}

struct get_case {
    const char *name;
    const char *cfg;
    const char *creds;
    const char *profile;
    const char *key;
    const char *want; /* NULL = absent */
};

static const struct get_case get_cases[] = {
    /* One case per line. */
    /* clang-format off */
    {"default section", "[default]\nregion = eu-west-1\n", NULL, "default", "region", "eu-west-1"},
    {"profile default beats earlier default", "[default]\nregion = a\n[profile default]\nregion = b\n", NULL, "default", "region", "b"},
    {"profile x", "[profile dev]\nregion=us-west-2\n", NULL, "dev", "region", "us-west-2"},
    {"profile quoted", "[profile \"a b\"]\nregion = x\n", NULL, "a b", "region", "x"},
    {"profile extra spaces", "[profile    sp  ]\nregion = x\n", NULL, "sp", "region", "x"},
    {"config [x] is not a profile", "[dev]\nregion = x\n", NULL, "dev", "region", NULL},
    {"three words ignored", "[profile a b]\nregion = x\n", NULL, "a", "region", NULL},
    {"unbalanced quote ignored", "[profile \"a]\nregion = x\n", NULL, "\"a", "region", NULL},
    {"creds [x]", NULL, "[dev]\naws_access_key_id = AKID\n", "dev", "aws_access_key_id", "AKID"},
    {"creds [profile x] is literal", NULL, "[profile dev]\nk = v\n", "profile dev", "k", "v"},
    {"creds override config", "[profile dev]\nk = config\nr = c\n", "[dev]\nk = creds\n", "dev", "k", "creds"},
    {"config kept when creds lack it", "[profile dev]\nk = config\nr = c\n", "[dev]\nk = creds\n", "dev", "r", "c"},
    {"keys lower-cased", "[default]\nRegion = x\n", NULL, "default", "region", "x"},
    {"colon delimiter", "[default]\nregion: x\n", NULL, "default", "region", "x"},
    {"first delimiter wins", "[default]\nk = a=b:c\n", NULL, "default", "k", "a=b:c"},
    {"inline ; kept", "[default]\nk = v ; not a comment\n", NULL, "default", "k", "v ; not a comment"},
    {"inline # kept", "[default]\nk = v # nope\n", NULL, "default", "k", "v # nope"},
    {"full-line comments", "# c\n; c\n[default]\n  # c\nk = v\n", NULL, "default", "k", "v"},
    {"section ; kept", "[profile a;b]\nk = v\n", NULL, "a;b", "k", "v"},
    {"tabs and spaces", "[default]\n\tk\t=\t v \t\n", NULL, "default", "k", "v"},
    {"empty value", "[default]\nk =\n", NULL, "default", "k", ""},
    {"continuation", "[default]\nk = a\n  b\n\tc\n", NULL, "default", "k", "a\nb\nc"},
    {"same indent is a new key", "[default]\n  k = a\n  j = b\n", NULL, "default", "k", "a"},
    {"same indent is a new key 2", "[default]\n  k = a\n  j = b\n", NULL, "default", "j", "b"},
    {"CRLF", "[default]\r\nk = v\r\nj = w\r\n", NULL, "default", "j", "w"},
    {"lone CR", "[default]\rk = v\rj = w", NULL, "default", "k", "v"},
    {"no trailing newline", "[default]\nk = v", NULL, "default", "k", "v"},
    {"BOM", "\xef\xbb\xbf[default]\nk = v\n", NULL, "default", "k", "v"},
    {"later duplicate wins", "[default]\nk = a\nk = b\n", NULL, "default", "k", "b"},
    {"long section name", "[profile " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]" "\nk = v\n", NULL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "k", "v"},
    {"unknown profile", "[default]\nk = v\n", NULL, "nope", "k", NULL},
    {"DEFAULT shows through", "[DEFAULT]\nregion = d\n[profile a]\nk = v\n", NULL, "a", "region", "d"},
    {"DEFAULT loses to own key", "[DEFAULT]\nk = d\n[profile a]\nk = v\n", NULL, "a", "k", "v"},
    {"DEFAULT is not a profile", "[DEFAULT]\nregion = d\n", NULL, "DEFAULT", "region", NULL},
    {"blank lines inside a continuation", "[default]\nk = a\n\n  b\n# c\n\nj = c\n", NULL, "default", "k", "a\n\nb"},
    {"ignored section swallows its continuation", "[other]\nk = a\n  b = c\n[default]\nk = v\n", NULL, "default", "k", "v"},
    /* clang-format on */
};

static void test_get(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(get_cases); i++) {
        const struct get_case *c = &get_cases[i];
        print_message("%s\n", c->name);
        struct aws_profiles *p = load(c->cfg, c->creds);
        const char *v = aws_profile_get(p, c->profile, c->key);
        if (c->want) {
            assert_non_null(v);
            assert_string_equal(v, c->want);
        } else {
            assert_null(v);
        }
        aws_profiles_free(p);
    }
}

static const char *const bad_files[] = {
    "k = v\n",                /* key before any section */
    "[default]\nno delim\n",  /* no = or : */
    "[default]\n= v\n",       /* empty name */
    "[default\nk = v\n",      /* no ] */
    "[default]\nk = v\n[]\n", /* empty header */
};

static void test_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(bad_files); i++) {
        struct aws_profiles *p = NULL;
        char err[256] = "";
        int rc = aws_profiles_load_mem(bad_files[i], strlen(bad_files[i]), NULL,
                                       0, &p, err, sizeof(err));
        print_message("%s -> %s\n", bad_files[i], err);
        assert_int_equal(rc, GW_ECONFIG);
        assert_null(p);
        assert_non_null(strstr(err, "line"));
    }
    /* Embedded NUL, and the error names the credentials file. */
    struct aws_profiles *p = NULL;
    char err[256] = "";
    const char nul[] = "[x]\nk = a\0b\n";
    assert_int_equal(aws_profiles_load_mem(NULL, 0, nul, sizeof(nul) - 1, &p,
                                           err, sizeof(err)),
                     GW_ECONFIG);
    assert_non_null(strstr(err, "credentials"));
}

/* Long values: a 2 KB session token, a 5 KB value, CRLF, no newline. */
static void test_long_lines(void **state)
{
    (void)state;
    size_t tl = 2048, vl = 5000;
    char *tok = malloc(tl + 1), *big = malloc(vl + 1);
    for (size_t i = 0; i < tl; i++)
        tok[i] = "AZaz09+/= ;#"[i % 12];
    tok[0] = 'I';
    tok[tl - 1] = 'Q';
    tok[tl] = '\0';
    for (size_t i = 0; i < vl; i++)
        big[i] = (char)('a' + i % 26);
    big[vl] = '\0';
    size_t fl = tl + vl + 256;
    char *file = malloc(fl);
    snprintf(file, fl,
             "[dev]\r\naws_session_token = %s\r\n"
             "aws_secret_access_key=s\r\n[other]\r\nbig =%s",
             tok, big);
    struct aws_profiles *p = load(NULL, file);
    assert_string_equal(aws_profile_get(p, "dev", "aws_session_token"), tok);
    assert_string_equal(aws_profile_get(p, "dev", "aws_secret_access_key"),
                        "s");
    assert_string_equal(aws_profile_get(p, "other", "big"), big);
    aws_profiles_free(p);

    /* A long continuation line and a long key line in a services block. */
    snprintf(file, fl,
             "[services s]\nssm =\n  endpoint_url = http://%s\n"
             "[profile p]\nservices = s\n",
             big);
    p = load(file, NULL);
    const char *u = aws_services_get(p, "s", "ssm", "endpoint_url");
    assert_non_null(u);
    assert_int_equal(strlen(u), vl + 7);
    assert_memory_equal(u + 7, big, vl);
    aws_profiles_free(p);
    free(tok);
    free(big);
    free(file);
}

static void test_services(void **state)
{
    (void)state;
    const char *cfg = "[profile dev]\n"
                      "services = local\n"
                      "[services local]\n"
                      "ssm =\n"
                      "  endpoint_url = http://localhost:4566\n"
                      "  other = x ; y\n"
                      "ec2_instance_connect =\n"
                      "\tendpoint_url=http://localhost:4567\n"
                      "sts = flat\n";
    struct aws_profiles *p = load(cfg, NULL);
    assert_string_equal(aws_profile_get(p, "dev", "services"), "local");
    assert_string_equal(aws_services_get(p, "local", "ssm", "endpoint_url"),
                        "http://localhost:4566");
    assert_string_equal(aws_services_get(p, "local", "ssm", "other"), "x ; y");
    assert_string_equal(
        aws_services_get(p, "local", "ec2_instance_connect", "endpoint_url"),
        "http://localhost:4567");
    assert_null(aws_services_get(p, "local", "sts", "endpoint_url"));
    assert_null(aws_services_get(p, "local", "ec2", "endpoint_url"));
    assert_null(aws_services_get(p, "nope", "ssm", "endpoint_url"));
    /* A services block is not a profile. */
    assert_false(aws_profile_exists(p, "local"));
    assert_true(aws_profile_exists(p, "dev"));
    aws_profiles_free(p);
}

static void test_sso_session(void **state)
{
    (void)state;
    struct aws_profiles *p =
        load("[profile s]\nsso_session = corp\nsso_account_id = 1\n"
             "[sso-session corp]\nsso_start_url = https://x/start\n"
             "sso_region = eu-west-1\n",
             NULL);
    assert_string_equal(aws_profile_get(p, "s", "sso_session"), "corp");
    assert_string_equal(aws_sso_session_get(p, "corp", "sso_region"),
                        "eu-west-1");
    assert_null(aws_sso_session_get(p, "corp", "region"));
    assert_false(aws_profile_exists(p, "corp"));
    aws_profiles_free(p);
}

static void test_profile_name(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    const char *both[] = {"AWS_PROFILE", "a", "AWS_DEFAULT_PROFILE", "b", NULL};
    const char *dflt[] = {"AWS_DEFAULT_PROFILE", "b", NULL};
    const char *empty[] = {"AWS_PROFILE", "", "AWS_DEFAULT_PROFILE", "b", NULL};
    struct aws_env e0 = {fake_get, none}, e1 = {fake_get, both},
                   e2 = {fake_get, dflt}, e3 = {fake_get, empty};
    assert_string_equal(aws_resolve_profile_name(&e1, "x"), "x");
    assert_string_equal(aws_resolve_profile_name(&e1, ""), "a");
    assert_string_equal(aws_resolve_profile_name(&e2, NULL), "b");
    assert_string_equal(aws_resolve_profile_name(&e3, NULL), "b");
    assert_string_equal(aws_resolve_profile_name(&e0, NULL), "default");
}

static void test_region(void **state)
{
    (void)state;
    struct aws_profiles *p = load(
        "[default]\nregion = r-default\n[profile x]\nregion = r-x\n", NULL);
    const char *none[] = {NULL};
    const char *both[] = {"AWS_REGION", "r-env", "AWS_DEFAULT_REGION", "r-denv",
                          NULL};
    const char *dflt[] = {"AWS_DEFAULT_REGION", "r-denv", NULL};
    struct aws_env e0 = {fake_get, none}, e1 = {fake_get, both},
                   e2 = {fake_get, dflt};
    char out[64];
    assert_int_equal(aws_resolve_region(&e1, "r-exp", p, "x", out, sizeof(out)),
                     0);
    assert_string_equal(out, "r-exp");
    assert_int_equal(aws_resolve_region(&e1, "", p, "x", out, sizeof(out)), 0);
    assert_string_equal(out, "r-env");
    assert_int_equal(aws_resolve_region(&e2, NULL, p, "x", out, sizeof(out)),
                     0);
    assert_string_equal(out, "r-denv");
    assert_int_equal(aws_resolve_region(&e0, NULL, p, "x", out, sizeof(out)),
                     0);
    assert_string_equal(out, "r-x");
    assert_int_equal(
        aws_resolve_region(&e0, NULL, p, "default", out, sizeof(out)), 0);
    assert_string_equal(out, "r-default");
    assert_int_equal(aws_resolve_region(&e0, NULL, p, "nope", out, sizeof(out)),
                     GW_ENO_REGION);
    assert_int_equal(aws_resolve_region(&e0, NULL, NULL, "x", out, sizeof(out)),
                     GW_ENO_REGION);
    assert_int_equal(aws_resolve_region(&e1, NULL, p, "x", out, 3),
                     GW_ETOO_BIG);
    aws_profiles_free(p);
}

static void test_expand_path(void **state)
{
    (void)state;
    const char *env[] = {"HOME", "/home/u", "D", "dir", "T", "~/t", NULL};
    struct aws_env e = {fake_get, env};
    char out[256];
    assert_int_equal(aws_expand_path(&e, "~/.aws/config", out, sizeof(out)), 0);
    assert_string_equal(out, "/home/u/.aws/config");
    assert_int_equal(aws_expand_path(&e, "/x/$D/${D}/$NOPE/~", out, 256), 0);
    assert_string_equal(out, "/x/dir/dir/$NOPE/~");
    /* Variables first, then "~" (os.path.expandvars, then expanduser). */
    assert_int_equal(aws_expand_path(&e, "$T/c", out, sizeof(out)), 0);
    assert_string_equal(out, "/home/u/t/c");
    assert_int_equal(aws_expand_path(&e, "~/.aws/config", out, 8), GW_ETOO_BIG);
}

/* Real files through AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE. */
static void test_load_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_aws_profile.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cfg[256], cred[256];
    snprintf(cfg, sizeof(cfg), "%s/config", dir);
    snprintf(cred, sizeof(cred), "%s/credentials", dir);
    FILE *f = fopen(cfg, "w");
    fputs("[profile dev]\nregion = eu-north-1\n", f);
    fclose(f);
    const char *env[] = {"AWS_CONFIG_FILE",
                         "$T/config",
                         "AWS_SHARED_CREDENTIALS_FILE",
                         "${T}/credentials",
                         "T",
                         dir,
                         NULL};
    struct aws_env e = {fake_get, env};
    struct aws_profiles *p = NULL;
    char err[256];
    /* The credentials file is missing: fine. */
    assert_int_equal(aws_profiles_load(&e, &p, err, sizeof(err)), 0);
    assert_string_equal(aws_profile_get(p, "dev", "region"), "eu-north-1");
    aws_profiles_free(p);
    f = fopen(cred, "w");
    fputs("[dev]\nregion = from-creds\nbroken line\n", f);
    fclose(f);
    assert_int_equal(aws_profiles_load(&e, &p, err, sizeof(err)), GW_ECONFIG);
    print_message("%s\n", err);
    assert_non_null(strstr(err, cred));
    assert_non_null(strstr(err, "line 3"));
    unlink(cred);
    unlink(cfg);
    rmdir(dir);
}

static int same(const char *got, json_t *want)
{
    if (json_is_null(want))
        return got == NULL;
    return got && strcmp(got, json_string_value(want)) == 0;
}

/*
 * The botocore cross-check: AWS_PROFILE_VECTORS names a JSON file written
 * by tests/e2e/test_aws_profile_botocore.py; each vector is a config and a
 * credentials text plus the lookups botocore answered for them.
 */
static void test_vectors_file(void **state)
{
    (void)state;
    const char *path = getenv("AWS_PROFILE_VECTORS");
    if (!path || !*path) {
        print_message("AWS_PROFILE_VECTORS not set: skipping\n");
        return;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    assert_non_null(root);
    size_t i, bad = 0, checks = 0;
    json_t *v;
    json_array_foreach(root, i, v)
    {
        const char *cfg = json_string_value(json_object_get(v, "config"));
        const char *cred = json_string_value(json_object_get(v, "credentials"));
        struct aws_profiles *p = NULL;
        char err[256];
        int rc = aws_profiles_load_mem(cfg, strlen(cfg), cred, strlen(cred), &p,
                                       err, sizeof(err));
        if (rc != 0) {
            bad++;
            print_error("vector %zu: load failed: %s\n", i, err);
            continue;
        }
        size_t k;
        json_t *q;
        json_array_foreach(json_object_get(v, "queries"), k, q)
        {
            const char *kind = json_string_value(json_array_get(q, 0));
            const char *a = json_string_value(json_array_get(q, 1));
            const char *b = json_string_value(json_array_get(q, 2));
            const char *c = json_string_value(json_array_get(q, 3));
            json_t *want = json_array_get(q, 4);
            const char *got = NULL;
            int ok;
            if (strcmp(kind, "exists") == 0) {
                ok = aws_profile_exists(p, a) == json_is_true(want);
            } else {
                got = strcmp(kind, "profile") == 0 ? aws_profile_get(p, a, b)
                      : strcmp(kind, "sso") == 0 ? aws_sso_session_get(p, a, b)
                                                 : aws_services_get(p, a, b, c);
                ok = same(got, want);
            }
            checks++;
            if (!ok) {
                bad++;
                print_error("vector %zu: %s [%s] %s %s: got %s, want %s\n", i,
                            kind, a, b, c ? c : "", got ? got : "(null)",
                            json_is_string(want) ? json_string_value(want)
                                                 : "(null/bool)");
            }
        }
        aws_profiles_free(p);
    }
    print_message("checked %zu botocore profile vectors, %zu lookups, %zu "
                  "mismatches\n",
                  json_array_size(root), checks, bad);
    assert_true(checks > 0);
    assert_int_equal(bad, 0);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),         cmocka_unit_test(test_bad),
        cmocka_unit_test(test_long_lines),  cmocka_unit_test(test_services),
        cmocka_unit_test(test_sso_session), cmocka_unit_test(test_profile_name),
        cmocka_unit_test(test_region),      cmocka_unit_test(test_expand_path),
        cmocka_unit_test(test_load_files),  cmocka_unit_test(test_vectors_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
