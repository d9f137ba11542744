/* Unit tests for core/proxy.c: proxy URLs, where the setting comes from,
 * and NO_PROXY matched as curl 7.88 matches it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "proxy.h"

static const char *const *fake_env;

static const char *env(const char *name)
{
    for (const char *const *e = fake_env; e && *e; e += 2)
        if (strcmp(e[0], name) == 0)
            return e[1];
    return NULL;
}

static void test_parse(void **state)
{
    struct proxy p;
    const char *why;
    assert_int_equal(proxy_parse("http://proxy.corp:3128", &p, &why), 0);
    assert_true(p.set);
    assert_string_equal(p.host, "proxy.corp");
    assert_int_equal(p.port, 3128);
    assert_string_equal(p.user, "");
    /* No scheme is http://, no port is curl's 1080; credentials are
     * percent-decoded, the last '@' ends them. */
    assert_int_equal(proxy_parse("u%40corp:p%3Ass@w@10.0.0.1/", &p, &why), 0);
    assert_string_equal(p.user, "u@corp");
    assert_string_equal(p.pass, "p:ss@w");
    assert_string_equal(p.host, "10.0.0.1");
    assert_int_equal(p.port, 1080);
    assert_int_equal(proxy_parse("HTTP://[::1]:8080", &p, &why), 0);
    assert_string_equal(p.host, "::1");
    char name[64];
    proxy_display(&p, name, sizeof(name));
    assert_string_equal(name, "http://[::1]:8080");
    static const char *const bad[] = {
        "https://proxy:443",  "socks5://proxy:1080", "http://",
        "http://proxy:0",     "http://proxy:65536",  "http://proxy:80/path",
        "http://:pass@proxy", "http://pro xy:80",    "http://[::1",
        "http://u:%zz@proxy",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        if (proxy_parse(bad[i], &p, &why) != GW_EINVAL)
            fail_msg("%s: accepted", bad[i]);
        assert_string_equal(p.pass, "");
    }
}

static void test_resolve(void **state)
{
    struct proxy p;
    char err[256];
    static const char *const e1[] = {
        "HTTPS_PROXY", "http://env:1",          "https_proxy", "http://lower:2",
        "NO_PROXY",    "a.example, .b.example", NULL};
    fake_env = e1;
    /* The config beats the environment; lower case beats upper (curl). */
    assert_int_equal(proxy_resolve("http://cfg:3", env, &p, err, sizeof(err)),
                     0);
    assert_string_equal(p.host, "cfg");
    assert_string_equal(p.source, "https_proxy in [gateway]");
    assert_string_equal(p.no_proxy, "a.example, .b.example");
    assert_int_equal(proxy_resolve(NULL, env, &p, err, sizeof(err)), 0);
    assert_string_equal(p.host, "lower");
    assert_string_equal(p.source, "https_proxy");
    assert_int_equal(proxy_resolve("none", env, &p, err, sizeof(err)), 0);
    assert_false(p.set);
    assert_true(proxy_bypass(&p, "ssm.us-east-1.amazonaws.com"));
    static const char *const e2[] = {"ALL_PROXY", "socks5://s:1", NULL};
    fake_env = e2;
    assert_int_equal(proxy_resolve("", env, &p, err, sizeof(err)), GW_EINVAL);
    assert_non_null(strstr(err, "ALL_PROXY"));
    /* An error names the setting, never the credentials. */
    assert_int_equal(
        proxy_resolve("http://user:hunter2@h:0", env, &p, err, sizeof(err)),
        GW_EINVAL);
    assert_null(strstr(err, "hunter2"));
    fake_env = NULL;
    assert_int_equal(proxy_resolve(NULL, env, &p, err, sizeof(err)), 0);
    assert_false(p.set);
}

static void test_no_proxy(void **state)
{
    struct proxy p;
    const char *why;
    assert_int_equal(proxy_parse("http://proxy:3128", &p, &why), 0);
    snprintf(p.no_proxy, sizeof(p.no_proxy), "%s",
             "localhost, .internal.corp ,amazonaws.com.cn 10.0.0.0/8,"
             "192.168.1.7,fd00::/8,::1");
    static const char *const direct[] = {
        "localhost",
        "LOCALHOST.",
        "internal.corp",
        "a.b.internal.corp",
        "ssm.cn-north-1.amazonaws.com.cn",
        "10.1.2.3",
        "192.168.1.7",
        "[fd12::1]",
        "::1",
    };
    static const char *const proxied[] = {
        "xinternal.corp", "ssm.us-east-1.amazonaws.com",
        "11.1.2.3",       "192.168.1.8",
        "fe80::1",        "127.0.0.1",
    };
    for (size_t i = 0; i < ARRAY_SIZE(direct); i++)
        if (!proxy_bypass(&p, direct[i]))
            fail_msg("%s: not direct", direct[i]);
    for (size_t i = 0; i < ARRAY_SIZE(proxied); i++)
        if (proxy_bypass(&p, proxied[i]))
            fail_msg("%s: direct", proxied[i]);
    snprintf(p.no_proxy, sizeof(p.no_proxy), "*");
    assert_true(proxy_bypass(&p, "ssm.us-east-1.amazonaws.com"));
    p.no_proxy[0] = '\0';
    assert_false(proxy_bypass(&p, "localhost"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_no_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
