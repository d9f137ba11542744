/* Unit tests for audit.c: the line (every field, null where it does not
 * apply, hostile strings escaped, one line per record) and the file
 * (0600, appended, reopened after a rename, a failing disk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"

static const struct audit_who who = {"alice", "dev"};

static struct conn_info ssm_info(void)
{
    struct conn_info t = {.id = 42,
                          .client = "127.0.0.1:50000",
                          .client_uid = 1000,
                          .listener = "socks",
                          .protocol = "socks5",
                          .proxy_user = "bob",
                          .request = "ec2-user@web-1",
                          .request_port = 22,
                          .target = "web-1",
                          .host = "",
                          .port = 22,
                          .user = "ec2-user",
                          .document = "AWS-StartSSHSession",
                          .kind = "ssh",
                          .label = "",
                          .profile = "",
                          .region = "eu-west-1",
                          .stream = {.session_id = "alice-0123456789abcdef0",
                                     .instance = "i-0123456789abcdef0",
                                     .resumes = 2},
                          .started_wall_ms = 1700000000123ull,
                          .open_ms = 250,
                          .duration_ms = 5000,
                          .bytes_up = 1234,
                          .bytes_down = 56789,
                          .outcome = TUNNEL_OK,
                          .reason = "both sides closed"};
    return t;
}

static json_t *parse_line(const char *line)
{
    size_t n = strlen(line);
    assert_true(n > 2);
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1)); /* one line, whatever it holds */
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    assert_non_null(o);
    return o;
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void test_ssm_line(void **state)
{
    struct conn_info t = ssm_info();
    char *line = audit_line(&t, &who, "carol");
    json_t *o = parse_line(line);
    assert_string_equal(str(o, "event"), "tunnel");
    assert_int_equal(json_integer_value(json_object_get(o, "conn")), 42);
    assert_string_equal(str(o, "outcome"), "ok");
    assert_string_equal(str(o, "reason"), "both sides closed");
    assert_string_equal(str(o, "start"), "2023-11-14T22:13:20.123Z");
    assert_non_null(str(o, "time"));
    assert_int_equal(json_integer_value(json_object_get(o, "duration_ms")),
                     5000);
    assert_int_equal(json_integer_value(json_object_get(o, "open_ms")), 250);
    assert_string_equal(str(o, "gateway_user"), "alice");
    assert_int_equal(json_integer_value(json_object_get(o, "local_uid")), 1000);
    assert_string_equal(str(o, "local_user"), "carol");
    assert_string_equal(str(o, "client"), "127.0.0.1:50000");
    assert_string_equal(str(o, "proxy_user"), "bob");
    assert_string_equal(str(o, "request"), "ec2-user@web-1:22");
    assert_string_equal(str(o, "target"), "web-1");
    assert_string_equal(str(o, "instance"), "i-0123456789abcdef0");
    assert_string_equal(str(o, "os_user"), "ec2-user");
    assert_string_equal(str(o, "document"), "AWS-StartSSHSession");
    assert_string_equal(str(o, "profile"), "dev"); /* the default */
    assert_string_equal(str(o, "region"), "eu-west-1");
    assert_string_equal(str(o, "session_id"), "alice-0123456789abcdef0");
    assert_int_equal(json_integer_value(json_object_get(o, "resumes")), 2);
    assert_true(json_is_false(json_object_get(o, "joined_session")));
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_up")), 1234);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_down")),
                     56789);
    assert_true(json_is_null(json_object_get(o, "host")));
    assert_true(json_is_null(json_object_get(o, "route")));
    /* Nothing that could be a secret has a key. */
    assert_null(strstr(line, "password"));
    json_decref(o);
    free(line);
}

static void test_refused_line_has_every_key(void **state)
{
    struct conn_info t;
    memset(&t, 0, sizeof(t));
    t.id = 1;
    t.client = "127.0.0.1:1";
    t.client_uid = -1;
    t.listener = "socks";
    t.protocol = "http";
    t.proxy_user = t.request = t.target = t.host = t.user = "";
    t.document = t.kind = t.label = t.profile = t.region = "";
    t.outcome = TUNNEL_AUTH_FAILED;
    t.reason = "proxy authentication required";
    char *line = audit_line(&t, &who, NULL);
    json_t *o = parse_line(line);
    struct conn_info full = ssm_info();
    char *full_line = audit_line(&full, &who, "carol");
    json_t *f = parse_line(full_line);
    /* The same keys in the same order on every line. */
    assert_int_equal(json_object_size(o), json_object_size(f));
    const char *key;
    json_t *v;
    json_object_foreach(f, key, v) assert_non_null(json_object_get(o, key));
    assert_string_equal(str(o, "outcome"), "auth_failed");
    assert_true(json_is_null(json_object_get(o, "open_ms")));
    assert_true(json_is_null(json_object_get(o, "local_uid")));
    assert_true(json_is_null(json_object_get(o, "session_id")));
    assert_true(json_is_null(json_object_get(o, "profile")));
    assert_true(json_is_null(json_object_get(o, "resumes")));
    json_decref(o);
    json_decref(f);
    free(line);
    free(full_line);
}

static void test_hostile_strings(void **state)
{
    struct conn_info t = ssm_info();
    t.request = "evil\"}\n{\"outcome\":\"ok\"\r\x01\xff\xfe";
    t.reason = "AccessDenied: \"quoted\"\nsecond line \\ \xc3\xa9";
    char *line = audit_line(&t, &who, NULL);
    json_t *o = parse_line(line);
    /* Not UTF-8: written as \xNN text, the rest as it was. */
    assert_string_equal(str(o, "request"),
                        "evil\"}\n{\"outcome\":\"ok\"\r\x01\\xff\\xfe:22");
    assert_string_equal(str(o, "reason"),
                        "AccessDenied: \"quoted\"\nsecond line \\ \xc3\xa9");
    assert_string_equal(str(o, "outcome"), "ok");
    json_decref(o);
    free(line);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    if (f == NULL)
        return -1;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void test_file_append_and_rotation(void **state)
{
    char dir[] = "/tmp/ssmgate-audit-XXXXXX", path[256], rotated[300];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    /* Lines already there stay: the file is appended to. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_int_equal(write(fd, "{\"old\":1}\n", 10), 10);
    close(fd);
    struct audit *a = NULL;
    assert_int_equal(audit_open(path, &a), 0);
    struct conn_info t = ssm_info();
    audit_write(a, &t, &who);
    audit_write(a, &t, &who);
    assert_int_equal(count_lines(path), 3);
    /* logrotate: rename, then SIGHUP (audit_reopen). */
    assert_int_equal(rename(path, rotated), 0);
    audit_write(a, &t, &who); /* still the renamed file until the reopen */
    assert_int_equal(audit_reopen(a, NULL), 0);
    audit_write(a, &t, &who);
    assert_int_equal(count_lines(rotated), 4);
    assert_int_equal(count_lines(path), 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* made by us: 0600 */
    /* A path that cannot open keeps the file open before. */
    assert_true(audit_reopen(a, "/nonexistent/dir/audit.log") < 0);
    assert_string_equal(audit_path(a), path);
    audit_write(a, &t, &who);
    assert_int_equal(count_lines(path), 2);
    audit_close(a);
    unlink(path);
    unlink(rotated);
    rmdir(dir);
}

static void test_write_failure_is_not_fatal(void **state)
{
    struct audit *a = NULL;
    /* Every write to /dev/full fails with ENOSPC. */
    assert_int_equal(audit_open("/dev/full", &a), 0);
    struct conn_info t = ssm_info();
    audit_write(a, &t, &who);
    audit_write(a, &t, &who);
    audit_close(a);
    assert_true(audit_open("/nonexistent/dir/x", &a) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssm_line),
        cmocka_unit_test(test_refused_line_has_every_key),
        cmocka_unit_test(test_hostile_strings),
        cmocka_unit_test(test_file_append_and_rotation),
        cmocka_unit_test(test_write_failure_is_not_fatal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
