/* Unit tests for config.c: defaults, every key, errors naming file:line:key,
 * overrides, and the shipped example file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "config.h"

static struct config *load(const char *text, char *err, size_t errlen)
{
    struct config *cfg = NULL;
    int rc = config_load_string(text, strlen(text), "t.ini", NULL, &cfg, err,
                                errlen);
    return rc == 0 ? cfg : NULL;
}

static void test_defaults(void **state)
{
    char err[256];
    struct config *c = load("", err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0], "127.0.0.1:1080");
    assert_int_equal(c->log_level, LOG_INFO);
    assert_string_equal(c->default_user, "ec2-user");
    assert_int_equal(c->max_connections, 1024);
    assert_int_equal(c->ssh_port, 22);
    assert_int_equal(c->message_rate, 990);
    assert_int_equal(c->payload_size, 1024);
    assert_int_equal(c->half_close_linger_ms, 2000);
    assert_int_equal(c->key_file, 0);
    assert_true(c->runtime_dir[0] == '/');
    assert_string_equal(c->audit_log, ""); /* off */
    assert_string_equal(c->metrics_listen, "");
    config_unref(c);
}

static void test_every_key(void **state)
{
    char err[256];
    struct config *c = load(
        "[gateway]\nlisten = 127.0.0.1:0, [::1]:1081\nlisten = 0.0.0.0:9\n"
        "log_level = debug\nruntime_dir = /run/x\ndefault_user = ubuntu\n"
        "profile = dev\nregion = eu-west-1\nsocks_user = u\n"
        "socks_password = p w\nmax_connections = 7\n"
        "request_timeout_ms = 100\nconnect_timeout_ms = 200\n"
        "drain_timeout_ms = 0\nssh_port = 2022\nkey_file = yes\n"
        "key_rotation_s = 60\nresume_budget_ms = 5\nmessage_rate = 0\n"
        "payload_size = 4096\nhalf_close_linger_ms = 0\n"
        "https_proxy = http://u:p%40ss@proxy.corp:3128\n"
        "audit_log = /var/log/ssmgate/audit.log\n"
        "metrics_listen = [::1]:9108\n"
        "[forward web]\nlisten = 127.0.0.1:2222\ntarget = i-0123456789abcdef0\n"
        "port = 22\nuser = admin\nprofile = p\nregion = us-gov-west-1\n"
        "[forward db]\nlisten = 127.0.0.1:5432\ntarget = web-1\n"
        "remote_host = db.internal\nport = 5432\n"
        "[route internal]\nmatch = *.internal\nvia = i-0123456789abcdef0\n"
        "user = root\nprofile = q\nregion = cn-north-1\n",
        err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->n_listen, 3);
    assert_string_equal(c->listen[1], "[::1]:1081");
    assert_string_equal(c->listen[2], "0.0.0.0:9");
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_string_equal(c->runtime_dir, "/run/x");
    assert_string_equal(c->socks_password, "p w");
    assert_int_equal(c->ssh_port, 2022);
    assert_int_equal(c->key_file, 1);
    assert_int_equal(c->message_rate, 0);
    assert_int_equal(c->half_close_linger_ms, 0);
    assert_string_equal(c->https_proxy, "http://u:p%40ss@proxy.corp:3128");
    assert_string_equal(c->audit_log, "/var/log/ssmgate/audit.log");
    assert_string_equal(c->metrics_listen, "[::1]:9108");
    assert_int_equal(c->n_forwards, 2);
    assert_string_equal(c->forwards[0].name, "web");
    assert_int_equal(c->forwards[0].port, 22);
    assert_string_equal(c->forwards[1].remote_host, "db.internal");
    assert_non_null(config_find_forward(c, "db"));
    assert_null(config_find_forward(c, "nope"));
    assert_int_equal(c->n_routes, 1);
    assert_string_equal(c->routes[0].match, "*.internal");
    assert_string_equal(c->routes[0].region, "cn-north-1");
    config_unref(c);
}

static const struct {
    const char *text;
    const char *want;
} bad_configs[] = {
    {"[gateway]\nbogus = 1\n", "t.ini:2: [gateway] bogus: unknown key"},
    {"[gateway]\n\nlisten = nope\n", "t.ini:3: [gateway] listen: expected"},
    {"[gateway]\nlisten = 1.2.3.4:70000\n", "t.ini:2: [gateway] listen"},
    {"[gateway]\nlisten=\n", "t.ini:2: [gateway] listen: expected"},
    {"[gateway]\nlisten = , ,\n", "t.ini:2: [gateway] listen: expected"},
    {"[gateway]\nlog_level = loud\n", "t.ini:2: [gateway] log_level"},
    {"[gateway]\nmax_connections = 0\n", "max_connections: out of range"},
    {"[gateway]\nmax_connections = 12x\n", "not a whole number"},
    {"[gateway]\nkey_file = maybe\n", "key_file: expected yes or no"},
    {"[gateway]\ndefault_user = 1root\n", "default_user: not a valid OS user"},
    {"[gateway]\nregion = Europe\n", "region: not a region"},
    {"[gateway]\naudit_log = audit.log\n",
     "t.ini:2: [gateway] audit_log: expected an absolute path"},
    {"[gateway]\nmetrics_listen = 9108\n",
     "t.ini:2: [gateway] metrics_listen: expected ADDR:PORT"},
    {"[gateway]\nsocks_user = u\n", "socks_user and socks_password"},
    {"[gateway]\nhttps_proxy = socks5://p:1080\n",
     "t.ini:2: [gateway] https_proxy: only http:// proxies"},
    {"[gateway]\nhttps_proxy = http://p:99999\n",
     "https_proxy: bad proxy port"},
    {"[gatway]\nlisten = 1.2.3.4:1\n", "t.ini:2: [gatway]: unknown section"},
    {"[forward]\nlisten = 127.0.0.1:1\n", "bad or missing section name"},
    {"[forward a]\nlisten = 127.0.0.1:1\ntarget = i-0123456789abcdef0\n",
     "[forward a] port: required key is missing"},
    {"[forward a]\nlisten = 127.0.0.1:1\ntarget = i-0123456789abcdef0\nport = "
     "22\n[forward a]\nlisten = 127.0.0.1:2\n",
     "t.ini:6: [forward a]: duplicate forward name"},
    {"[forward a]\nlisten = x\n", "t.ini:2: [forward a] listen"},
    {"[forward a]\nport = 0\n", "[forward a] port: out of range"},
    {"[forward a]\nlisten = 127.0.0.1:1\ntarget = direct\nport = 1\n",
     "target = direct needs remote_host"},
    {"[route r]\nmatch = *.x\n", "[route r] via: required key is missing"},
    {"listen = 127.0.0.1:1\n", "t.ini:1: [] listen: key outside any section"},
    {"[gateway]\nthis is not ini\n", "t.ini:2: syntax error"},
    /* [account NAME]: profile required; suffix grammar; no clashes. */
    {"[account prod]\nregion = eu-west-1\n",
     "[account prod] profile: required key is missing"},
    {"[account prod]\nprofile = p\nsuffix = prod\n",
     "t.ini:3: [account prod] suffix: a suffix is '.'"},
    {"[account prod]\nprofile = p\nsuffix = .a..b\n", "empty label"},
    {"[account prod]\nprofile = p\nsuffix = .a*\n", "only letters"},
    {"[account prod]\nprofile = p\nsuffix = .prod.\n", "empty label"},
    {"[account usw]\nprofile = p\nsuffix = .us-west-2\n",
     "may not end in a region name"},
    {"[account a*b]\nprofile = p\n",
     "[account a*b] suffix: the name does not make a host-name suffix"},
    {"[account us-west-2]\nprofile = p\n", "does not make a host-name"},
    {"[account a]\nprofile = p\n[account b]\nprofile = q\nsuffix = .A\n",
     "[account b] suffix: another account has it"},
    {"[account a]\nprofile = p\n[account a]\nprofile = q\n",
     "t.ini:4: [account a]: duplicate account name"},
    {"[account a]\nprofile = p\nuser = 1x\n", "not a valid OS user"},
    {"[account a]\nprofile = p\nport = 22\n", "[account a] port: unknown"},
    {"[route r]\nmatch = *.x\nvia = web\naccount = nope\n",
     "[route r] account: no [account] section has this name"},
    {"[account a]\nprofile = p\n[route r]\nmatch = *.x\nvia = web\n"
     "account = a\nprofile = other\n",
     "[route r] profile: set account or profile, not both"},
    {"[forward f]\nlisten = 127.0.0.1:1\ntarget = web\nport = 22\n"
     "account = nope\n",
     "[forward f] account: no [account] section"},
};

static void test_errors_name_file_line_key(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_configs); i++) {
        char err[256] = "";
        struct config *c = load(bad_configs[i].text, err, sizeof(err));
        if (c != NULL || strstr(err, bad_configs[i].want) == NULL)
            fail_msg("case %zu: want '%s', got '%s'", i, bad_configs[i].want,
                     err);
    }
}

static void test_accounts(void **state)
{
    char err[256] = "";
    struct config *c = load("[account prod]\nprofile = prod-admin\n"
                            "region = eu-west-1\nuser = ubuntu\n"
                            "[account eu]\nprofile = p2\nsuffix = .eu.Prod\n"
                            "[route db]\nmatch = *.db\nvia = web\n"
                            "account = eu\nregion = us-east-2\n",
                            err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->n_accounts, 2);
    assert_string_equal(c->accounts[0].name, "prod");
    assert_string_equal(c->accounts[0].suffix, ".prod"); /* the default */
    assert_string_equal(c->accounts[0].profile, "prod-admin");
    assert_string_equal(c->accounts[0].region, "eu-west-1");
    assert_string_equal(c->accounts[0].user, "ubuntu");
    assert_string_equal(c->accounts[1].suffix, ".eu.Prod");
    assert_string_equal(c->accounts[1].region, "");
    assert_string_equal(c->routes[0].account, "eu");
    config_unref(c);
}

static void test_long_line_refused(void **state)
{
    char text[400], err[256];
    snprintf(text, sizeof(text), "[gateway]\nprofile = %0300d\n", 1);
    assert_null(load(text, err, sizeof(err)));
    assert_non_null(strstr(err, "t.ini:2"));
    assert_non_null(strstr(err, "line too long"));
}

static void test_overrides(void **state)
{
    struct config_overrides ov = {{"127.0.0.1:0"}, 1, "warn", "/tmp/rd"};
    struct config *c = NULL;
    char err[256];
    const char *text = "[gateway]\nlisten = 127.0.0.1:5\nlog_level = debug\n";
    assert_int_equal(
        config_load_string(text, strlen(text), "t", &ov, &c, err, sizeof(err)),
        0);
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0], "127.0.0.1:0");
    assert_int_equal(c->log_level, LOG_WARN);
    assert_string_equal(c->runtime_dir, "/tmp/rd");
    config_unref(c);
    ov.listen[0] = "bad";
    assert_int_equal(
        config_load_string(text, strlen(text), "t", &ov, &c, err, sizeof(err)),
        GW_ECONFIG);
    assert_non_null(strstr(err, "--listen bad"));
}

static void test_missing_files(void **state)
{
    struct config *c = NULL;
    char err[256];
    assert_int_equal(
        config_load("/nonexistent/x.ini", NULL, &c, err, sizeof(err)),
        GW_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/x.ini"));
    /* No file at the default path means defaults. */
    setenv("XDG_CONFIG_HOME", "/nonexistent-xdg", 1);
    assert_int_equal(config_load(NULL, NULL, &c, err, sizeof(err)), 0);
    assert_string_equal(c->path, "");
    config_unref(c);
}

static void test_example_file_is_the_defaults(void **state)
{
    const char *src = getenv("SSMGATE_SOURCE_DIR");
    char path[1024], err[256];
    snprintf(path, sizeof(path), "%s/config/example.ini", src ? src : "..");
    struct config *ex = NULL, *def = NULL;
    assert_int_equal(config_load(path, NULL, &ex, err, sizeof(err)), 0);
    def = load("", err, sizeof(err));
    assert_non_null(def);
    assert_int_equal(ex->n_listen, def->n_listen);
    assert_string_equal(ex->listen[0], def->listen[0]);
    assert_int_equal(ex->log_level, def->log_level);
    assert_string_equal(ex->default_user, def->default_user);
    assert_int_equal(ex->max_connections, def->max_connections);
    assert_int_equal(ex->request_timeout_ms, def->request_timeout_ms);
    assert_int_equal(ex->connect_timeout_ms, def->connect_timeout_ms);
    assert_int_equal(ex->drain_timeout_ms, def->drain_timeout_ms);
    assert_int_equal(ex->ssh_port, def->ssh_port);
    assert_int_equal(ex->key_file, def->key_file);
    assert_int_equal(ex->key_rotation_s, def->key_rotation_s);
    assert_int_equal(ex->resume_budget_ms, def->resume_budget_ms);
    assert_int_equal(ex->message_rate, def->message_rate);
    assert_int_equal(ex->payload_size, def->payload_size);
    assert_int_equal(ex->half_close_linger_ms, def->half_close_linger_ms);
    assert_int_equal(ex->session_linger_ms, def->session_linger_ms);
    assert_int_equal(ex->ssh_document, def->ssh_document);
    assert_int_equal(ex->sessions_per_target, def->sessions_per_target);
    assert_string_equal(ex->https_proxy, def->https_proxy);
    assert_string_equal(ex->audit_log, def->audit_log);
    assert_string_equal(ex->metrics_listen, def->metrics_listen);
    assert_int_equal(ex->n_forwards, 0);
    assert_int_equal(ex->n_routes, 0);
    config_unref(ex);
    config_unref(def);
}

static void test_warm_keys(void **state)
{
    char err[256];
    struct config *c = load("", err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->session_linger_ms, 300000);
    assert_int_equal(c->ssh_document, CONFIG_SSH_DOC_AUTO);
    assert_int_equal(c->sessions_per_target, 4);
    config_unref(c);
    c = load("[gateway]\nssh_document = ssh\nsessions_per_target = 1\n"
             "[forward f]\nlisten = 127.0.0.1:1\ntarget = i-0123456789abcdef0\n"
             "port = 22\nsessions_per_target = 2\n"
             "[route r]\nmatch = *.x\nvia = i-0123456789abcdef0\n"
             "sessions_per_target = 8\n",
             err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->ssh_document, CONFIG_SSH_DOC_SSH);
    assert_int_equal(c->sessions_per_target, 1);
    assert_int_equal(c->forwards[0].sessions_per_target, 2);
    assert_int_equal(c->routes[0].sessions_per_target, 8);
    config_unref(c);
    c = load("[gateway]\nssh_document = port-forward\n", err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->ssh_document, CONFIG_SSH_DOC_PORT_FORWARD);
    config_unref(c);
    assert_null(load("[gateway]\nssh_document = SSH\n", err, sizeof(err)));
    assert_non_null(strstr(err, "expected auto, ssh or port-forward"));
    assert_null(load("[gateway]\nsessions_per_target = 0\n", err, sizeof(err)));
    assert_null(load("[route r]\nmatch = *\nvia = direct\n"
                     "sessions_per_target = 65\n",
                     err, sizeof(err)));
}

static void test_diff_observe_keys(void **state)
{
    char err[256];
    struct config *a = load("[gateway]\naudit_log = /a\n", err, sizeof(err));
    struct config *b = load("[gateway]\naudit_log = /b\n", err, sizeof(err));
    struct config *m =
        load("[gateway]\naudit_log = /a\nmetrics_listen = 127.0.0.1:0\n", err,
             sizeof(err));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(m);
    /* Both reopen the file or rebind the port on SIGHUP: no restart. */
    assert_int_equal(config_diff(a, b, NULL, NULL),
                     CONFIG_APPLY_BIT(CONFIG_APPLY_OBSERVE));
    assert_int_equal(config_diff(a, m, NULL, NULL),
                     CONFIG_APPLY_BIT(CONFIG_APPLY_OBSERVE));
    assert_int_equal(config_diff(a, a, NULL, NULL), 0);
    config_unref(a);
    config_unref(b);
    config_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_errors_name_file_line_key),
        cmocka_unit_test(test_accounts),
        cmocka_unit_test(test_long_line_refused),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_example_file_is_the_defaults),
        cmocka_unit_test(test_warm_keys),
        cmocka_unit_test(test_diff_observe_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
