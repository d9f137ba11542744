/* Unit tests for target.c (instance name grammar) and route.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "config.h"
#include "route.h"
#include "target.h"

static const struct {
    const char *name;
    int rc;
    const char *user, *id, *region;
    int managed;
} cases[] = {
    {"i-0123456789abcdef0", 0, "", "i-0123456789abcdef0", "", 0},
    {"i-01234567", 0, "", "i-01234567", "", 0},
    {"ec2-user@i-0123456789abcdef0.eu-west-1", 0, "ec2-user",
     "i-0123456789abcdef0", "eu-west-1", 0},
    {"mi-0123456789abcdef0", 0, "", "mi-0123456789abcdef0", "", 1},
    {"admin@mi-0123456789abcdef0.us-gov-west-1", 0, "admin",
     "mi-0123456789abcdef0", "us-gov-west-1", 1},
    {"i-0123456789ABCDEF0", GW_ENOT_FOUND, "", "", "", 0},
    {"i-012345678", GW_ENOT_FOUND, "", "", "", 0},
    {"mi-01234567", GW_ENOT_FOUND, "", "", "", 0},
    {"i-0123456789abcdef0x", GW_ENOT_FOUND, "", "", "", 0},
    {"db.internal", GW_ENOT_FOUND, "", "", "", 0},
    {"web-1", GW_ENOT_FOUND, "", "", "", 0},
    {"i-0123456789abcdef0.", GW_EINVAL, "", "", "", 0},
    {"i-0123456789abcdef0.Europe", GW_EINVAL, "", "", "", 0},
    {"i-0123456789abcdef0.eu-west", GW_EINVAL, "", "", "", 0},
    {"1bad@i-0123456789abcdef0", GW_EINVAL, "", "", "", 0},
    {"@i-0123456789abcdef0", GW_EINVAL, "", "", "", 0},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@i-0123456789abcdef0", GW_EINVAL, "", "",
     "", 0},
};

static void test_grammar(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct target t;
        const char *reason;
        int rc =
            target_parse(cases[i].name, strlen(cases[i].name), &t, &reason);
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d, want %d", cases[i].name, rc, cases[i].rc);
        if (rc != 0)
            continue;
        assert_string_equal(t.user, cases[i].user);
        assert_string_equal(t.id, cases[i].id);
        assert_string_equal(t.region, cases[i].region);
        assert_int_equal(t.managed, cases[i].managed);
    }
    struct target t;
    const char *reason;
    assert_int_equal(target_parse("i-01234567\0x", 12, &t, &reason), GW_EINVAL);
}

static void test_users_and_regions(void **state)
{
    assert_true(target_user_valid("ec2-user", 8));
    assert_true(target_user_valid("_svc$", 5));
    assert_true(target_user_valid("a.b@c", 5));
    assert_false(target_user_valid("a$b", 3));
    assert_false(target_user_valid("-x", 2));
    assert_false(target_user_valid("", 0));
    assert_true(target_region_valid("cn-north-1", 10));
    assert_true(target_region_valid("us-isob-east-1", 14));
    assert_false(target_region_valid("eu-west", 7));
    assert_false(target_region_valid("EU-WEST-1", 9));
    assert_false(target_region_valid("eu--west-1", 10));
}

static struct config *cfg_of(const char *text)
{
    struct config *c = NULL;
    char err[256];
    assert_int_equal(
        config_load_string(text, strlen(text), "t", NULL, &c, err, sizeof(err)),
        0);
    return c;
}

static void test_routes(void **state)
{
    struct config *c =
        cfg_of("[gateway]\nprofile = dev\nregion = eu-west-1\n"
               "[route db]\nmatch = *.db.internal\nvia = i-0123456789abcdef0\n"
               "user = dbadmin\n"
               "[route web]\nmatch = *.web.internal\nvia = bastion-1\n"
               "[route local]\nmatch = LOCALHOST\nvia = direct\n");
    struct tunnel_spec s;
    const char *reason = NULL;
    assert_int_equal(route_resolve(c, "i-0123456789abcdef0", 22, &s, &reason),
                     0);
    assert_int_equal(s.kind, TUNNEL_SSM_SSH);
    assert_string_equal(s.user, "ec2-user");
    assert_string_equal(s.profile, "dev");
    assert_string_equal(s.region, "eu-west-1");
    assert_string_equal(tunnel_document(s.kind), "AWS-StartSSHSession");
    assert_int_equal(route_resolve(c, "ubuntu@i-0123456789abcdef0.us-east-1",
                                   8080, &s, &reason),
                     0);
    assert_int_equal(s.kind, TUNNEL_SSM_PORT);
    assert_string_equal(s.user, "ubuntu");
    assert_string_equal(s.region, "us-east-1");
    assert_int_equal(route_resolve(c, "pg.db.internal", 5432, &s, &reason), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_REMOTE);
    assert_string_equal(s.host, "pg.db.internal");
    assert_string_equal(s.target, "i-0123456789abcdef0");
    assert_false(s.target_is_name);
    assert_string_equal(s.user, "dbadmin");
    assert_string_equal(s.label, "route db");
    assert_int_equal(route_resolve(c, "a.web.internal", 80, &s, &reason), 0);
    assert_true(s.target_is_name);
    assert_int_equal(route_resolve(c, "localhost", 80, &s, &reason), 0);
    assert_int_equal(s.kind, TUNNEL_DIRECT);
    assert_int_equal(route_resolve(c, "web-1", 22, &s, &reason), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_SSH);
    assert_true(s.target_is_name);
    assert_string_equal(s.target, "web-1");
    assert_int_equal(route_resolve(c, "example.com", 443, &s, &reason),
                     GW_ENO_ROUTE);
    assert_non_null(reason);
    assert_int_equal(
        route_resolve(c, "1bad@i-0123456789abcdef0", 22, &s, &reason),
        GW_EINVAL);
    config_unref(c);
}

static void test_forwards(void **state)
{
    struct config *c = cfg_of(
        "[forward ssh]\nlisten = 127.0.0.1:2222\ntarget = i-0123456789abcdef0\n"
        "port = 22\nuser = admin\n"
        "[forward db]\nlisten = 127.0.0.1:5432\ntarget = web-1\n"
        "remote_host = db.internal\nport = 5432\n"
        "[forward local]\nlisten = 127.0.0.1:1\ntarget = direct\n"
        "remote_host = 127.0.0.1\nport = 7\n");
    struct tunnel_spec s;
    assert_int_equal(route_from_forward(c, &c->forwards[0], &s), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_SSH);
    assert_string_equal(s.user, "admin");
    assert_string_equal(s.label, "forward ssh");
    assert_int_equal(route_from_forward(c, &c->forwards[1], &s), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_REMOTE);
    assert_true(s.target_is_name);
    assert_string_equal(s.host, "db.internal");
    assert_int_equal(route_from_forward(c, &c->forwards[2], &s), 0);
    assert_int_equal(s.kind, TUNNEL_DIRECT);
    assert_int_equal(s.port, 7);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grammar),
        cmocka_unit_test(test_users_and_regions),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_forwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
