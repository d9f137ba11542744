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

/* Two accounts whose suffixes overlap, one with a region and a user, and
 * routes that apply after the suffix is taken off (one names an account). */
static const char acct_conf[] =
    "[gateway]\nprofile = dev\ndefault_user = ops\n"
    "[account prod]\nprofile = prod-p\nregion = eu-west-1\nuser = ubuntu\n"
    "[account eu]\nprofile = eu-p\nsuffix = .eu.prod\n"
    "[account staging]\nprofile = stg-p\nsuffix = .stg\n"
    "[route db]\nmatch = *.internal\nvia = bastion\n"
    "[route shared]\nmatch = *.shared\nvia = hub\naccount = staging\n"
    "region = us-east-2\n";

static const struct rcase acct_cases[] = {
    /* Name and id in an account: its profile, region and user. */
    {"web-1.prod", 22, 0, TUNNEL_SSM_SSH, "web-1", "", "ubuntu", "prod-p",
     "eu-west-1", "account prod", 1},
    {"web-1.stg", 22, 0, TUNNEL_SSM_SSH, "web-1", "", "ops", "stg-p", "",
     "account staging", 1},
    {"me@i-0123456789abcdef0.prod", 22, 0, TUNNEL_SSM_SSH,
     "i-0123456789abcdef0", "", "me", "prod-p", "eu-west-1", "account prod", 0},
    /* Letters compare without case, as DNS does. */
    {"WEB-1.PROD", 80, 0, TUNNEL_SSM_PORT, "WEB-1", "", "ubuntu", "prod-p",
     "eu-west-1", "account prod", 1},
    /* The longest suffix wins. */
    {"web-1.eu.prod", 22, 0, TUNNEL_SSM_SSH, "web-1", "", "ops", "eu-p", "",
     "account eu", 1},
    /* A region goes before the suffix and beats the account's. */
    {"i-01234567.us-west-2.prod", 22, 0, TUNNEL_SSM_SSH, "i-01234567", "",
     "ubuntu", "prod-p", "us-west-2", "account prod", 0},
    {"web-1.us-west-2.stg", 443, 0, TUNNEL_SSM_PORT, "web-1", "", "ops",
     "stg-p", "us-west-2", "account staging", 1},
    /* Routes match what is left; the account applies to via. */
    {"db.internal.prod", 5432, 0, TUNNEL_SSM_REMOTE, "bastion", "db.internal",
     "ubuntu", "prod-p", "eu-west-1", "route db, account prod", 1},
    {"db.internal.stg", 5432, 0, TUNNEL_SSM_REMOTE, "bastion", "db.internal",
     "ops", "stg-p", "", "route db, account staging", 1},
    /* A route's own account beats the suffix's; its region beats both. */
    {"x.shared.prod", 80, 0, TUNNEL_SSM_REMOTE, "hub", "x.shared", "ops",
     "stg-p", "us-east-2", "route shared, account prod", 1},
    {"x.shared", 80, 0, TUNNEL_SSM_REMOTE, "hub", "x.shared", "ops", "stg-p",
     "us-east-2", "route shared", 1},
    /* No suffix: today's rules, the [gateway] profile. */
    {"web-1", 22, 0, TUNNEL_SSM_SSH, "web-1", "", "ops", "dev", "", "", 1},
    {"web-1.eu-west-3", 22, 0, TUNNEL_SSM_SSH, "web-1", "", "ops", "dev",
     "eu-west-3", "", 1},
    {"db.internal", 5432, 0, TUNNEL_SSM_REMOTE, "bastion", "db.internal", "ops",
     "dev", "", "route db", 1},
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

static void check_cases(const struct config *c, const struct rcase *tab,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct rcase *w = &tab[i];
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
}

static void test_resolve_table(void **state)
{
    struct config *c = cfg_of(conf);
    check_cases(c, cases, ARRAY_SIZE(cases));
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

/* A [forward] entry as the config would hold it: name, target, port. */
static void forward_of(struct config_forward *f, const char *name,
                       const char *target, uint16_t port)
{
    memset(f, 0, sizeof(*f));
    strcpy(f->name, name);
    strcpy(f->target, target);
    f->port = port;
}

static void test_from_forward(void **state)
{
    struct config *c = cfg_of(conf);
    struct config_forward f;
    struct tunnel_spec s;

    forward_of(&f, "pg", "mi-0123456789abcdef0", 5432);
    strcpy(f.remote_host, "db.internal");
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
    forward_of(&f, "box", "bastion-1", 2022);
    strcpy(f.user, "admin");
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_SSH);
    assert_true(s.target_is_name);
    assert_string_equal(s.user, "admin");
    assert_string_equal(s.profile, "dev");
    f.port = 22;
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.kind, TUNNEL_SSM_PORT);

    /* direct needs a remote_host (config validation says so too). */
    forward_of(&f, "x", "direct", 7);
    assert_int_equal(route_from_forward(c, &f, &s), GW_EINVAL);
    strcpy(f.remote_host, "127.0.0.1");
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.kind, TUNNEL_DIRECT);
    assert_string_equal(s.host, "127.0.0.1");
    assert_string_equal(s.target, "");
    config_unref(c);
}

static void test_accounts(void **state)
{
    struct config *c = cfg_of(acct_conf);
    check_cases(c, acct_cases, ARRAY_SIZE(acct_cases));
    /* Refused, with a reason that says what is wrong (the SOCKS reply and
     * the log line carry it). An unknown suffix falls through to today's
     * rules; a known one needs a valid name before it, and comes last. */
    static const struct {
        const char *host;
        int rc;
        const char *reason;
    } refused[] = {
        {"web-1.qa", GW_ENO_ROUTE, "no [route] matches"},
        {"web-1.xprod", GW_ENO_ROUTE, "no [route] matches"},
        {".prod", GW_EINVAL, "nothing before the account suffix"},
        {"me@.prod", GW_EINVAL, "nothing before the account suffix"},
        {"a.b.c.prod", GW_ENO_ROUTE, "match before the account suffix"},
        {"i-01234567.Europe.prod", GW_EINVAL, "bad region after the instance"},
        {"web-1.prod.us-west-2", GW_ENO_ROUTE, "NAME.REGION.SUFFIX"},
        {"i-01234567.prod.us-west-2", GW_EINVAL, "NAME.REGION.SUFFIX"},
        {"a@b@web-1.prod", GW_EINVAL, "more than one '@'"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
        struct tunnel_spec s;
        const char *reason = NULL;
        int rc = route_resolve(c, refused[i].host, 22, &s, &reason);
        if (rc != refused[i].rc || reason == NULL ||
            strstr(reason, refused[i].reason) == NULL)
            fail_msg("%s: rc %d reason '%s', want %d '%s'", refused[i].host, rc,
                     reason ? reason : "(none)", refused[i].rc,
                     refused[i].reason);
    }
    /* A [forward] may name an account too. */
    struct config_forward f;
    struct tunnel_spec s;
    forward_of(&f, "ide", "web-1", 22);
    strcpy(f.account, "prod");
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_string_equal(s.profile, "prod-p");
    assert_string_equal(s.region, "eu-west-1");
    assert_string_equal(s.user, "ubuntu");
    config_unref(c);
}

/* start_stopped: [gateway]'s, unless the account, route or forward of the
 * tunnel says otherwise (the nearest wins); start_timeout_ms is global. */
static void test_start_stopped(void **state)
{
    static const char text[] =
        "[gateway]\nstart_stopped = yes\nstart_timeout_ms = 5000\n"
        "[account prod]\nprofile = p\nstart_stopped = no\n"
        "[account dev]\nprofile = d\n"
        "[route a]\nmatch = *.a\nvia = i-01234567\nstart_stopped = no\n"
        "[route b]\nmatch = *.b\nvia = i-01234567\naccount = prod\n"
        "[route c]\nmatch = *.c\nvia = i-01234567\naccount = prod\n"
        "start_stopped = yes\n";
    static const struct {
        const char *host;
        int want;
    } want[] = {
        {"i-01234567", 1},
        {"i-01234567.prod", 0},
        {"i-01234567.dev", 1},
        {"x.a", 0},
        {"x.b", 0},
        {"x.c", 1},
    };
    struct config *c = cfg_of(text);
    struct tunnel_spec s;
    const char *reason = NULL;
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        assert_int_equal(route_resolve(c, want[i].host, 22, &s, &reason), 0);
        if (s.start_stopped != want[i].want)
            fail_msg("%s: start_stopped %d, want %d", want[i].host,
                     s.start_stopped, want[i].want);
        assert_int_equal(s.start_timeout_ms, 5000);
    }
    struct config_forward f;
    forward_of(&f, "ide", "i-01234567", 22);
    f.start_stopped = CONFIG_NO;
    assert_int_equal(route_from_forward(c, &f, &s), 0);
    assert_int_equal(s.start_stopped, 0);
    config_unref(c);
    /* The default: off, five minutes. */
    c = cfg_of("[gateway]\n");
    assert_int_equal(route_resolve(c, "i-01234567", 22, &s, &reason), 0);
    assert_int_equal(s.start_stopped, 0);
    assert_int_equal(s.start_timeout_ms, 300000);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_stopped),
        cmocka_unit_test(test_resolve_table),
        cmocka_unit_test(test_from_forward),
        cmocka_unit_test(test_accounts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
