/* Unit tests for ssm_names.c: the Name -> instance cache with the clock
 * handed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ssm_names.h"

static struct ssm_names C;

static const char *get(const char *name, const char *profile,
                       const char *region, uint64_t now)
{
    return ssm_names_get(&C, name, profile, region, now);
}

static void test_hit_and_expiry(void **state)
{
    (void)state;
    memset(&C, 0, sizeof(C));
    assert_null(get("web", "", "", 0));
    ssm_names_put(&C, "web", "", "", "i-0123456789abcdef0", 1000);
    assert_string_equal(get("web", "", "", 1000), "i-0123456789abcdef0");
    assert_string_equal(get("web", "", "", 1000 + SSM_NAMES_TTL_MS - 1),
                        "i-0123456789abcdef0");
    assert_null(get("web", "", "", 1000 + SSM_NAMES_TTL_MS));
    assert_null(get("web", "", "", 1000 + SSM_NAMES_TTL_MS + 1));
    assert_null(get("we", "", "", 1000));
    assert_null(get("web2", "", "", 1000));
    /* A newer answer for the same name wins (it is found... either way
     * the fresh one answers once the old expired). */
    ssm_names_put(&C, "web", "", "", "i-1111111111111111f", 20000);
    assert_string_equal(get("web", "", "", 1000 + SSM_NAMES_TTL_MS),
                        "i-1111111111111111f");
}

static void test_key(void **state)
{
    (void)state;
    memset(&C, 0, sizeof(C));
    ssm_names_put(&C, "db", "prod", "eu-west-1", "i-a", 0);
    ssm_names_put(&C, "db", "prod", "us-east-1", "i-b", 0);
    ssm_names_put(&C, "db", "dev", "eu-west-1", "i-c", 0);
    ssm_names_put(&C, "db", "", "", "i-d", 0);
    assert_string_equal(get("db", "prod", "eu-west-1", 5), "i-a");
    assert_string_equal(get("db", "prod", "us-east-1", 5), "i-b");
    assert_string_equal(get("db", "dev", "eu-west-1", 5), "i-c");
    assert_string_equal(get("db", "", "", 5), "i-d");
    assert_null(get("db", "dev", "us-east-1", 5));
    assert_null(get("db", "prod", "", 5));
}

static void test_eviction(void **state)
{
    (void)state;
    memset(&C, 0, sizeof(C));
    char name[32], inst[32];
    for (int i = 0; i < SSM_NAMES_N; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        snprintf(inst, sizeof(inst), "i-%d", i);
        ssm_names_put(&C, name, "", "", inst, 0);
    }
    for (int i = 0; i < SSM_NAMES_N; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        snprintf(inst, sizeof(inst), "i-%d", i);
        assert_string_equal(get(name, "", "", 1), inst);
    }
    /* One more: the oldest put goes, the rest stay. */
    ssm_names_put(&C, "extra", "", "", "i-x", 0);
    assert_null(get("n0", "", "", 1));
    assert_string_equal(get("n1", "", "", 1), "i-1");
    assert_string_equal(get("extra", "", "", 1), "i-x");
}

static void test_forget(void **state)
{
    (void)state;
    memset(&C, 0, sizeof(C));
    ssm_names_put(&C, "db", "prod", "eu-west-1", "i-a", 0);
    ssm_names_put(&C, "db", "prod", "eu-west-1", "i-a", 10); /* twice */
    ssm_names_put(&C, "db", "dev", "eu-west-1", "i-c", 0);
    ssm_names_forget(&C, "db", "prod", "eu-west-1");
    assert_null(get("db", "prod", "eu-west-1", 20));
    /* Only that key: another profile keeps its answer. */
    assert_string_equal(get("db", "dev", "eu-west-1", 20), "i-c");
    ssm_names_forget(&C, "nothing", "", ""); /* unknown: no effect */
    assert_string_equal(get("db", "dev", "eu-west-1", 20), "i-c");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_expiry),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_forget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
