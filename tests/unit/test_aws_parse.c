/* Unit tests for aws_parse: error bodies, XML, retries, quota, time,
 * credential JSON and shell words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "aws_parse.h"
#include "aws_xml.h"
#include "common.h"

static void parse(enum aws_proto proto, long status, const char *body,
                  const char *rid, const char *etype, struct aws_error *e)
{
    memset(e, 0, sizeof(*e));
    aws_parse_error(proto, status, body, strlen(body), rid, etype, e);
}

static void test_json_errors(void **state)
{
    static const struct {
        const char *body, *code, *msg;
    } cases[] = {
        {"{\"__type\":\"com.amazonaws.ssm#InvalidDocument\",\"message\":"
         "\"no doc\"}",
         "InvalidDocument", "no doc"},
        {"{\"__type\":\"ThrottlingException:http://internal\",\"Message\":"
         "\"slow\"}",
         "ThrottlingException", "slow"},
        {"{\"__type\":\"a#b:c\"}", "b", ""},
        {"{\"message\":\"no type\"}", "400", "no type"},
        {"not json at all", "400", "not json at all"},
        {"", "400", ""},
        {"[1,2]", "400", "[1,2]"},
        {"{\"__type\":5,\"message\":7}", "400", ""},
        {"{\"__type\":\"X\",\"message\":\"line1\\nline2\"}", "X",
         "line1 line2"},
    };
    struct aws_error e;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        parse(AWS_PROTO_JSON, 400, cases[i].body, "rid-1", "", &e);
        assert_string_equal(e.code, cases[i].code);
        assert_string_equal(e.message, cases[i].msg);
        assert_string_equal(e.request_id, "rid-1");
        assert_int_equal(e.http_status, 400);
    }
}

static void test_query_errors(void **state)
{
    struct aws_error e;

    (void)state;
    parse(AWS_PROTO_QUERY, 403,
          "<?xml version=\"1.0\"?>\n<ErrorResponse "
          "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n"
          "    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n"
          "    <Message>User: a &amp; b &lt;x&gt; &#65;&#x42;</Message>\n"
          "  </Error>\n  <RequestId>req-9</RequestId>\n</ErrorResponse>\n",
          "", NULL, &e);
    assert_string_equal(e.code, "AccessDenied");
    assert_string_equal(e.message, "User: a & b <x> AB");
    assert_string_equal(e.request_id, "req-9");
    /* EC2 shape. */
    parse(AWS_PROTO_QUERY, 400,
          "<Response><Errors><Error><Code>AuthFailure</Code><Message>m"
          "</Message></Error></Errors><RequestID>r2</RequestID></Response>",
          NULL, NULL, &e);
    assert_string_equal(e.code, "AuthFailure");
    assert_string_equal(e.request_id, "r2");
    /* Garbage: status as code, body as message. */
    parse(AWS_PROTO_QUERY, 503, "<html>Service Unavailable", NULL, NULL, &e);
    assert_string_equal(e.code, "503");
    assert_string_equal(e.message, "<html>Service Unavailable");
}

static void test_rest_json_errors(void **state)
{
    struct aws_error e;

    (void)state;
    parse(AWS_PROTO_REST_JSON, 401, "{\"message\":\"Session token not found\"}",
          "r", "UnauthorizedException:http://internal.amazon.com/coral/x/", &e);
    assert_string_equal(e.code, "UnauthorizedException");
    assert_string_equal(e.message, "Session token not found");
    parse(AWS_PROTO_REST_JSON, 400,
          "{\"error\":\"invalid_grant\",\"error_description\":\"bad\"}", "", "",
          &e);
    assert_string_equal(e.code, "invalid_grant");
    assert_string_equal(e.message, "bad");
}

static void test_xml_to_json(void **state)
{
    const char *ok =
        "<?xml version=\"1.0\"?><!-- c --><AssumeRoleResponse a='x>y'>"
        "<AssumeRoleResult><Credentials><AccessKeyId>ASIA</AccessKeyId>"
        "<Expiration>2026-01-01T00:00:00Z</Expiration></Credentials>"
        "<Empty/><L><member>1</member><member>2</member></L>"
        "</AssumeRoleResult></AssumeRoleResponse>";
    static const char *bad[] = {
        "",
        "<a>",
        "<a></b>",
        "<a><b></a></b>",
        "<a>&bogus;</a>",
        "<a>&#0;</a>",
        "<a x='unterminated></a>",
        "<!-- open",
        "<a>&#x110000;</a>",
    };
    json_t *j;
    char deep[64 * 8 + 200];
    size_t o = 0;

    (void)state;
    j = aws_xml_to_json(ok, strlen(ok));
    assert_non_null(j);
    json_t *r = json_object_get(json_object_get(j, "AssumeRoleResponse"),
                                "AssumeRoleResult");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(r, "Credentials"), "AccessKeyId")),
                        "ASIA");
    assert_string_equal(json_string_value(json_object_get(r, "Empty")), "");
    assert_int_equal(
        json_array_size(json_object_get(json_object_get(r, "L"), "member")), 2);
    json_decref(j);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_null(aws_xml_to_json(bad[i], strlen(bad[i])));
    /* 70 levels: refused, no stack blow-up. */
    for (int i = 0; i < 70; i++)
        o += (size_t)snprintf(deep + o, sizeof(deep) - o, "<a>");
    assert_null(aws_xml_to_json(deep, o));
}

static void test_retry_classify(void **state)
{
    static const struct {
        long status;
        const char *code;
        int transport;
        enum aws_retry_kind want;
    } cases[] = {
        {400, "ThrottlingException", 0, AWS_RETRY_THROTTLE},
        {400, "Throttling", 0, AWS_RETRY_THROTTLE},
        {429, "TooManyRequestsException", 0, AWS_RETRY_THROTTLE},
        {503, "RequestLimitExceeded", 0, AWS_RETRY_THROTTLE},
        {500, "InternalServerError", 0, AWS_RETRY_TRANSIENT},
        {502, "502", 0, AWS_RETRY_TRANSIENT},
        {504, "", 0, AWS_RETRY_TRANSIENT},
        {400, "IDPCommunicationError", 0, AWS_RETRY_TRANSIENT},
        {400, "RequestTimeout", 0, AWS_RETRY_TRANSIENT},
        {0, "", GW_ETIMEOUT, AWS_RETRY_TIMEOUT},
        {0, "", GW_EREFUSED, AWS_RETRY_TRANSIENT},
        {0, "", GW_ECRYPTO, AWS_RETRY_NO},
        {0, "", GW_ETOO_BIG, AWS_RETRY_NO},
        {400, "AccessDeniedException", 0, AWS_RETRY_NO},
        {400, "TargetNotConnected", 0, AWS_RETRY_NO},
        {400, "ExpiredTokenException", 0, AWS_RETRY_NO},
        {501, "", 0, AWS_RETRY_NO},
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        enum aws_retry_kind got = aws_retry_classify(
            cases[i].status, cases[i].code, cases[i].transport);
        if (got != cases[i].want)
            print_message("case %zu: %ld %s\n", i, cases[i].status,
                          cases[i].code);
        assert_int_equal(got, cases[i].want);
    }
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    for (int n = 1; n <= 40; n++) {
        long cap = n >= 6 ? 20000 : 1000L << (n - 1);
        assert_int_equal(aws_retry_delay_ms(n, AWS_RETRY_THROTTLE, 0, 0.0), 0);
        long hi = aws_retry_delay_ms(n, AWS_RETRY_TRANSIENT, 0, 0.9999999);
        assert_true(hi <= cap && hi >= cap - 1);
        assert_true(aws_retry_delay_ms(n, AWS_RETRY_TRANSIENT, 0, 0.5) <=
                    cap / 2);
    }
    assert_true(aws_retry_delay_ms(1, AWS_RETRY_TRANSIENT, 1, 0.999) < 50);
    assert_true(aws_retry_delay_ms(1, AWS_RETRY_THROTTLE, 1, 0.999) > 990);
    /* Out-of-range randomness is clamped, never negative or huge. */
    assert_int_equal(aws_retry_delay_ms(3, AWS_RETRY_TRANSIENT, 0, 7.0), 0);
    assert_int_equal(aws_retry_delay_ms(0, AWS_RETRY_TRANSIENT, 0, -1), 0);
}

static void test_quota(void **state)
{
    int q = AWS_RETRY_QUOTA_MAX, n = 0;

    (void)state;
    while (aws_retry_quota_take(&q, AWS_RETRY_THROTTLE, 0))
        n++;
    assert_int_equal(n, 100); /* 500 / 5 */
    assert_int_equal(q, 0);
    aws_retry_quota_release(&q, 0);
    assert_int_equal(q, 1);
    aws_retry_quota_release(&q, 10);
    assert_int_equal(q, 11);
    assert_int_equal(aws_retry_quota_take(&q, AWS_RETRY_TIMEOUT, 0), 10);
    assert_int_equal(q, 1);
    assert_int_equal(aws_retry_quota_take(&q, AWS_RETRY_TRANSIENT, 0), 0);
    assert_int_equal(q, 1);
    q = AWS_RETRY_QUOTA_MAX;
    aws_retry_quota_release(&q, 5);
    assert_int_equal(q, AWS_RETRY_QUOTA_MAX);
    assert_int_equal(aws_retry_quota_take(&q, AWS_RETRY_TRANSIENT, 1), 14);
    assert_int_equal(aws_retry_quota_take(&q, AWS_RETRY_NO, 0), 0);
}

static void test_timestamps(void **state)
{
    static const struct {
        const char *s;
        long long t;
    } ok[] = {
        {"2026-01-01T12:00:00Z", 1767268800},
        {"2026-01-01T12:00:00.123Z", 1767268800},
        {"2026-01-01T12:00:00+00:00", 1767268800},
        {"2026-01-01T12:00:00UTC", 1767268800},
        {"2026-01-01T14:00:00+02:00", 1767268800},
        {"2026-01-01T11:30:00-0030", 1767268800},
        {"2026-01-01 12:00:00Z", 1767268800},
    };
    static const char *bad[] = {
        "",
        "2026",
        "2026-01-01",
        "2026-13-01T00:00:00Z",
        "2026-01-01T12:00:00",
        "2026-01-01T12:00:00+",
        "2026-01-01T12:00:00Zx",
        "2026-01-01T12:00:00.Z",
        "x026-01-01T12:00:00Z",
    };
    time_t t;
    json_t *v;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        assert_int_equal(aws_parse_iso8601(ok[i].s, &t), 0);
        assert_int_equal((long long)t, ok[i].t);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(aws_parse_iso8601(bad[i], &t), GW_EINVAL);
    v = json_real(1.7E9);
    assert_int_equal(aws_parse_json_time(v, 0, &t), 0);
    assert_int_equal((long long)t, 1700000000);
    json_decref(v);
    v = json_loads("[1.7e9, 1700000000123, \"2026-01-01T12:00:00Z\", -5, "
                   "1e300, null]",
                   0, NULL);
    assert_int_equal(aws_parse_json_time(json_array_get(v, 0), 0, &t), 0);
    assert_int_equal((long long)t, 1700000000);
    assert_int_equal(aws_parse_json_time(json_array_get(v, 1), 1, &t), 0);
    assert_int_equal((long long)t, 1700000000); /* SSO milliseconds */
    assert_int_equal(aws_parse_json_time(json_array_get(v, 2), 0, &t), 0);
    assert_int_equal((long long)t, 1767268800);
    assert_int_equal(aws_parse_json_time(json_array_get(v, 3), 0, &t),
                     GW_EINVAL);
    assert_int_equal(aws_parse_json_time(json_array_get(v, 4), 0, &t),
                     GW_EINVAL);
    assert_int_equal(aws_parse_json_time(json_array_get(v, 5), 0, &t),
                     GW_EINVAL);
    json_decref(v);
}

static void test_skew(void **state)
{
    struct aws_error e;
    time_t t;

    (void)state;
    assert_int_equal(aws_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t),
                     0);
    assert_int_equal((long long)t, 784111777);
    assert_int_equal(aws_parse_http_date("Sun, 06 Nov 1994 08:49:37", &t),
                     GW_EINVAL);
    assert_int_equal(aws_parse_http_date("", &t), GW_EINVAL);
    assert_int_equal(aws_parse_http_date(NULL, &t), GW_EINVAL);
    assert_int_equal(aws_parse_http_date("yesterday", &t), GW_EINVAL);
    memset(&e, 0, sizeof(e));
    strcpy(e.code, "InvalidSignatureException");
    strcpy(e.message, "Signature expired: 20260101T000000Z is now earlier "
                      "than 20260101T000500Z");
    assert_true(aws_is_skew_error(&e));
    strcpy(e.message, "The request signature we calculated does not match");
    assert_false(aws_is_skew_error(&e));
    strcpy(e.code, "RequestTimeTooSkewed");
    assert_true(aws_is_skew_error(&e));
}

static void test_process_json(void **state)
{
    static const struct {
        const char *in;
        int rc;
    } cases[] = {
        {"{\"Version\":1,\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SK\"}",
         0},
        {"{\"Version\":1,\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SK\","
         "\"SessionToken\":\"T\",\"Expiration\":\"2026-01-01T12:00:00+00:00\"}",
         0},
        {"{\"Version\":2,\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SK\"}",
         GW_EPROTO},
        {"{\"Version\":\"1\",\"AccessKeyId\":\"AK\",\"SecretAccessKey\":"
         "\"SK\"}",
         GW_EPROTO},
        {"{\"Version\":1,\"AccessKeyId\":\"AK\"}", GW_EPROTO},
        {"{\"Version\":1,\"AccessKeyId\":\"\",\"SecretAccessKey\":\"SK\"}",
         GW_EPROTO},
        {"{\"Version\":1,\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SK\","
         "\"Expiration\":\"soon\"}",
         GW_EPROTO},
        {"", GW_EPROTO},
        {"[]", GW_EPROTO},
        {"{\"Version\":1,\"AccessKeyId\":\"AK\",\"SecretAccessKey\":\"SK\"} "
         "trailing",
         GW_EPROTO},
    };
    struct aws_creds_parsed pc;
    char why[128];

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int rc = aws_parse_process_creds(cases[i].in, strlen(cases[i].in), &pc,
                                         why, sizeof(why));
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_string_equal(pc.access_key_id, "AK");
            assert_string_equal(pc.secret_access_key, "SK");
            if (i == 1) {
                assert_string_equal(pc.session_token, "T");
                assert_int_equal((long long)pc.expiration, 1767268800);
            } else {
                assert_null(pc.session_token);
                assert_int_equal(pc.expiration, 0);
            }
            aws_creds_parsed_clear(&pc);
        } else {
            assert_true(why[0] != 0);
        }
    }
    const char *imds = "{\"Code\":\"Success\",\"AccessKeyId\":\"A\","
                       "\"SecretAccessKey\":\"S\",\"Token\":\"T\","
                       "\"Expiration\":\"2026-01-01T12:00:00Z\"}";
    assert_int_equal(
        aws_parse_metadata_creds(imds, strlen(imds), &pc, why, sizeof(why)), 0);
    assert_string_equal(pc.session_token, "T");
    aws_creds_parsed_clear(&pc);
    const char *fail = "{\"Code\":\"AssumeRoleUnauthorizedAccess\"}";
    assert_int_equal(
        aws_parse_metadata_creds(fail, strlen(fail), &pc, why, sizeof(why)),
        GW_EPROTO);
}

static void test_shell_split(void **state)
{
    static const struct {
        const char *in;
        const char *out[5];
    } ok[] = {
        {"a b  c", {"a", "b", "c"}},
        {"  /usr/bin/x  ", {"/usr/bin/x"}},
        {"'a b' \"c d\"", {"a b", "c d"}},
        {"a\\ b", {"a b"}},
        {"\"x\\\"y\\\\z\\n\"", {"x\"y\\z\\n"}},
        {"'it'\\''s'", {"it's"}},
        {"''", {""}},
        {"p\"q r\"s", {"pq rs"}},
        {"$HOME `x` *", {"$HOME", "`x`", "*"}},
    };
    static const char *bad[] = {"", "   ", "'open", "\"open", "a 'b"};
    char **argv;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        size_t n = 0;
        assert_int_equal(aws_shell_split(ok[i].in, &argv), 0);
        for (; ok[i].out[n]; n++)
            assert_string_equal(argv[n], ok[i].out[n]);
        assert_null(argv[n]);
        aws_shell_free(argv);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(aws_shell_split(bad[i], &argv), GW_EINVAL);
        assert_null(argv);
    }
    /* Many words: the array grows. */
    {
        char line[2000] = "";
        for (int i = 0; i < 300; i++)
            strcat(line, "w ");
        assert_int_equal(aws_shell_split(line, &argv), 0);
        assert_string_equal(argv[299], "w");
        assert_null(argv[300]);
        aws_shell_free(argv);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_query_errors),
        cmocka_unit_test(test_rest_json_errors),
        cmocka_unit_test(test_xml_to_json),
        cmocka_unit_test(test_retry_classify),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_skew),
        cmocka_unit_test(test_process_json),
        cmocka_unit_test(test_shell_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
