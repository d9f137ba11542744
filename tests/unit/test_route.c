/* Unit tests for route.c: what each requested host:port becomes, one
 * table row per case, against one config with every kind of [route]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "config.h"
#include "route.h"

static const char conf[] =
    "[gateway]\nprofile = dev\nregion = eu-west-1\nssh_port = 2022\n"
    "default_user = ops\n"
    "[route db]\nmatch = *.db.internal\nvia = i-0123456789abcdef0\n"
    "user = dbadmin\nprofile = prod\nregion = us-east-2\n"
    "[route db-shadow]\nmatch = pg.db.internal\nvia = direct\n"
    "[route web]\nmatch = web?.corp\nvia = bastion-1\n"
    "[route hybrid]\nmatch = *.onprem\nvia = mi-0123456789abcdef0\n"
    "[route local]\nmatch = LOCAL*\nvia = direct\n";

/* want.rc != 0: only the return code (and a reason) is checked. */
static const struct rcase {
    const char *host;
    uint16_t port;
    int rc;
    enum tunnel_kind kind;
    const char *target, *host_out, *user, *profile, *region, *label;
    int is_name;
} cases[] = {
    /* Instance ids: 8 and 17 hex, i- and mi-; ssh_port picks the SSH kind. */
    {"i-01234567", 2022, 0, TUNNEL_SSM_SSH, "i-01234567", "", "ops", "dev",
     "eu-west-1", "", 0},
    {"i-0123456789abcdef0", 22, 0, TUNNEL_SSM_PORT, "i-0123456789abcdef0", "",
     "ops", "dev", "eu-west-1", "", 0},
    {"mi-0123456789abcdef0", 2022, 0, TUNNEL_SSM_SSH, "mi-0123456789abcdef0",
     "", "ops", "dev", "eu-west-1", "", 0},
    /* user@ and .region override the defaults. */
    {"admin@i-01234567.ap-south-1", 2022, 0, TUNNEL_SSM_SSH, "i-01234567", "",
     "admin", "dev", "ap-south-1", "", 0},
    {"i-0123456789abcdef0.us-gov-west-1", 443, 0, TUNNEL_SSM_PORT,
     "i-0123456789abcdef0", "", "ops", "dev", "us-gov-west-1", "", 0},
    /* [route] globs: the first match wins; its user/profile/region apply. */
    {"pg.db.internal", 5432, 0, TUNNEL_SSM_REMOTE, "i-0123456789abcdef0",
     "pg.db.internal", "dbadmin", "prod", "us-east-2", "route db", 0},
    {"me@a.db.internal", 5432, 0, TUNNEL_SSM_REMOTE, "i-0123456789abcdef0",
     "a.db.internal", "me", "prod", "us-east-2", "route db", 0},
    {"web1.corp", 80, 0, TUNNEL_SSM_REMOTE, "bastion-1", "web1.corp", "ops",
     "dev", "eu-west-1", "route web", 1},
    {"x.onprem", 22, 0, TUNNEL_SSM_REMOTE, "mi-0123456789abcdef0", "x.onprem",
     "ops", "dev", "eu-west-1", "route hybrid", 0},
    /* via = direct; globs ignore case. */
    {"localhost", 8080, 0, TUNNEL_DIRECT, "", "localhost", "ops", "dev",
     "eu-west-1", "route local", 0},
    /* A bare label is a Name tag. */
    {"web-1", 2022, 0, TUNNEL_SSM_SSH, "web-1", "", "ops", "dev", "eu-west-1",
     "", 1},
    {"root@db_2", 3306, 0, TUNNEL_SSM_PORT, "db_2", "", "root", "dev",
     "eu-west-1", "", 1},
    /* Refused: nothing unmatched goes out. */
    {.host = "example.com", .port = 443, .rc = GW_ENO_ROUTE},
    {.host = "web12.corp", .port = 80, .rc = GW_ENO_ROUTE},
    {.host = "I-0123456789ABCDEF0.x", .port = 22, .rc = GW_ENO_ROUTE},
    /* Malformed. */
    {.host = "", .port = 22, .rc = GW_EINVAL},
    {.host = "i-01234567.Europe", .port = 22, .rc = GW_EINVAL},
    {.host = "1bad@i-01234567", .port = 22, .rc = GW_EINVAL},
    {.host = "bad user@web1.corp", .port = 80, .rc = GW_EINVAL},
};

static struct config *cfg_of(const char *text)
{
    struct config *c = NULL;
    char err[256];
    int rc =
        config_load_string(text, strlen(text), "t", NULL, &c, err, sizeof(err));
    if (rc != 0)
        fail_msg("config: %s", err);
    return c;
}

static void test_resolve_table(void **state)
{
    struct config *c = cfg_of(conf);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct rcase *w = &cases[i];
        struct tunnel_spec s;
        const char *reason = NULL;
        int rc = route_resolve(c, w->host, w->port, &s, &reason);
        if (rc != w->rc)
            fail_msg("%s: rc %d, want %d", w->host, rc, w->rc);
        if (rc != 0) {
            assert_non_null(reason);
            continue;
        }
        assert_int_equal(s.kind, w->kind);
        assert_int_equal(s.port, w->port);
        assert_string_equal(s.target, w->target);
        assert_int_equal(s.target_is_name, w->is_name);
        assert_string_equal(s.host, w->host_out);
        assert_string_equal(s.user, w->user);
        assert_string_equal(s.profile, w->profile);
        assert_string_equal(s.region, w->region);
        assert_string_equal(s.label, w->label);
    }
    /* Longer than any tunnel_spec field can hold: malformed. */
    char host[TUNNEL_HOST_MAX + 8];
    memset(host, 'a', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    struct tunnel_spec s;
    const char *reason = NULL;
    assert_int_equal(route_resolve(c, host, 22, &s, &reason), GW_EINVAL);
    assert_non_null(reason);
    config_unref(c);
}

static void test_from_forward(void **state)
{
    struct config *c = cfg_of(conf);
    struct config_forward f;
    struct tunnel_spec s;

    memset(&f, 0, sizeof(f));
    strcpy(f.name, "pg");
    strcpy(f.target, "mi-0123456789abcdef0");
    strcpy(f.remote_host, "db.internal");
    f.port = 5432;
    strcpy(f.profile, "prod");
    strcpy(f.region, "us-east-2");
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_REMOTE);
    assert_string_equal(s.target, "mi-0123456789abcdef0");
    assert_false(s.target_is_name);
    assert_string_equal(s.host, "db.internal");
    assert_string_equal(s.user, "ops");
    assert_string_equal(s.profile, "prod");
    assert_string_equal(s.region, "us-east-2");
    assert_string_equal(s.label, "forward pg");

    /* The configured ssh_port makes an SSH tunnel with the key push. */
    memset(&f, 0, sizeof(f));
    strcpy(f.name, "box");
    strcpy(f.target, "bastion-1");
    strcpy(f.user, "admin");
    f.port = 2022;
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_SSH);
    assert_true(s.target_is_name);
    assert_string_equal(s.user, "admin");
    assert_string_equal(s.profile, "dev");
    f.port = 22;
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_PORT);

    /* direct needs a remote_host (config validation says so too). */
    memset(&f, 0, sizeof(f));
    strcpy(f.name, "x");
    strcpy(f.target, "direct");
    f.port = 7;
    assert_int_equal(route_from_forward(c, &f, &s), GW_EINVAL);
    strcpy(f.remote_host, "127.0.0.1");
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.kind, TUNNEL_DIRECT);
    assert_string_equal(s.host, "127.0.0.1");
    assert_string_equal(s.target, "");
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_table),
        cmocka_unit_test(test_from_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
