/*
 * test_aws_sigv4.c - SigV4 known answers (aws-and-local-protocols.md 1.3,
 * 1.7, 1.8), canonicalisation cases, and, when SIGV4_VECTORS names a JSON
 * file written by tests/e2e/test_sigv4_botocore.py, every vector in it
 * must give botocore's Authorization value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "aws_sigv4.h"
#include "common.h"

#define AKID   "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T0     ((time_t)1440938160) /* 20150830T123600Z */

/* The SigV4 signing key of secret for 20150830 us-east-1 service, in hex. */
static const char *signing_key_hex(const char *secret, const char *service,
                                   char hex[65])
{
    unsigned char k[32];
    assert_int_equal(
        aws_sigv4_signing_key(secret, "20150830", "us-east-1", service, k), 0);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", k[i]);
    return hex;
}

static void test_signing_key(void **state)
{
    (void)state;
    char hex[65];
    const char *ssm =
        "1b014a52e2c4682dbb4f9c057f77de175576bae388238bec84a63594a1c63358";
    assert_string_equal(
        signing_key_hex(SECRET, "iam", hex),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
    assert_string_equal(signing_key_hex(SECRET, "ssm", hex), ssm);
    /* Cached path gives the same; another secret does not hit the cache. */
    assert_string_equal(signing_key_hex(SECRET, "ssm", hex), ssm);
    assert_string_not_equal(signing_key_hex("other", "ssm", hex), ssm);
}

static const char *sig_of(const char *auth)
{
    const char *s = strstr(auth, "Signature=");
    return s ? s + 10 : "";
}

static void test_get_vanilla(void **state)
{
    (void)state;
    struct aws_sigv4_request req = {.method = "GET",
                                    .url = "https://example.amazonaws.com/"};
    struct aws_sigv4_creds c = {AKID, SECRET, NULL};
    struct aws_sigv4_result r;
    char *creq = NULL, *sts = NULL;
    assert_int_equal(
        aws_sigv4_sign(&req, &c, "us-east-1", "service", T0, &r, &creq, &sts),
        0);
    assert_string_equal(r.amz_date, "20150830T123600Z");
    assert_string_equal(creq, "GET\n/\n\nhost:example.amazonaws.com\n"
                              "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c"
                              "a495991b7852b855");
    assert_string_equal(
        r.authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
        "aws4_request, SignedHeaders=host;x-amz-date, "
        "Signature="
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    assert_non_null(strstr(sts, "\n20150830/us-east-1/service/aws4_request\n"));
    free(creq);
    free(sts);
}

struct kat {
    const char *name;
    const char *url;
    const char *region;
    const char *service;
    const char *target; /* x-amz-target or NULL */
    const char *ctype;
    const char *body;
    const char *token;
    const char *signed_headers;
    const char *payload_hash;
    const char *creq_hash;
    const char *signature;
};

static const struct kat kats[] = {
    {"V1 StartSession", "https://ssm.us-east-1.amazonaws.com/", "us-east-1",
     "ssm", "AmazonSSM.StartSession", "application/x-amz-json-1.1",
     "{\"Target\":\"i-0123456789abcdef0\",\"DocumentName\":\"AWS-"
     "StartSSHSession\",\"Parameters\":{\"portNumber\":[\"22\"]}}",
     NULL, "content-type;host;x-amz-date;x-amz-target",
     "520aa003b60e980e9e1f2b9e2cf33247d58ce72318c6cf8e7608199d9f327541",
     "7baee12c5b38392d1720ee3a807e30604b9ec1b78beef81825226d39ac2bfed9",
     "3974e03254abd4b6ba54e1f0e7b5b45d76c1189c1579a7789598cef8e06b0ddd"},
    {"V1 with session token", "https://ssm.us-east-1.amazonaws.com/",
     "us-east-1", "ssm", "AmazonSSM.StartSession", "application/x-amz-json-1.1",
     "{\"Target\":\"i-0123456789abcdef0\",\"DocumentName\":\"AWS-"
     "StartSSHSession\",\"Parameters\":{\"portNumber\":[\"22\"]}}",
     "EXAMPLESESSIONTOKEN",
     "content-type;host;x-amz-date;x-amz-security-token;x-amz-target",
     "520aa003b60e980e9e1f2b9e2cf33247d58ce72318c6cf8e7608199d9f327541",
     "a1753ad95fb2e7e1663a7cc760401274e199f78c8ae03ad6e56c5bcbb5804a40",
     "bc1dea99e04d7a356e44c5b99ed62a4087f344efcbcd0c32cff8d04e880bb6eb"},
    {"V2 SendSSHPublicKey",
     "https://ec2-instance-connect.eu-west-1.amazonaws.com/", "eu-west-1",
     "ec2-instance-connect", "AWSEC2InstanceConnectService.SendSSHPublicKey",
     "application/x-amz-json-1.1",
     "{\"InstanceId\":\"i-0123456789abcdef0\",\"InstanceOSUser\":\"ec2-user\","
     "\"SSHPublicKey\":\"ssh-ed25519 "
     "AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea "
     "ssmgate\"}",
     NULL, "content-type;host;x-amz-date;x-amz-target",
     "266377d4a301de8c2083054a4c74e501a7d45af387a1ab61f072edd9d6453a7b",
     "be1ceb838a938fdce07a525b76f3ddd572c1de24ea000cbdad2ee9f545f98e5a",
     "4c527255216cbf2217cccf8dce2305a452c3a2fbc825c98c0bfd14803f6f3c0f"},
    {"V3 DescribeInstances", "https://ec2.us-east-1.amazonaws.com/",
     "us-east-1", "ec2", NULL,
     "application/x-www-form-urlencoded; charset=utf-8",
     "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&"
     "Filter.1.Value.1=web&Filter.2.Name=instance-state-name&Filter.2.Value."
     "1=running",
     NULL, "content-type;host;x-amz-date",
     "2f209aaab68e00427cb7f5da054516445351d7500806429e2e906e0f9d85a8e4",
     "a722de5d232126b12304a0f3ca0394357d063310d9e3b75ad76be168a783fc29",
     "1ddeaf81e84fb7021d8a98bf0345dcbad328d41075d8b9e2ee02e323c99971a2"},
};

static void test_kats(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(kats); i++) {
        const struct kat *k = &kats[i];
        struct aws_sigv4_header h[2];
        size_t nh = 0;
        h[nh++] = (struct aws_sigv4_header){"Content-Type", k->ctype};
        if (k->target)
            h[nh++] = (struct aws_sigv4_header){"X-Amz-Target", k->target};
        struct aws_sigv4_request req = {.method = "POST",
                                        .url = k->url,
                                        .headers = h,
                                        .n_headers = nh,
                                        .body = k->body,
                                        .body_len = strlen(k->body)};
        struct aws_sigv4_creds c = {AKID, SECRET, k->token};
        struct aws_sigv4_result r;
        char *creq = NULL, *sts = NULL, hash[65];
        print_message("%s\n", k->name);
        assert_int_equal(aws_sigv4_sign(&req, &c, k->region, k->service, T0, &r,
                                        &creq, &sts),
                         0);
        aws_sha256_hex(creq, strlen(creq), hash);
        assert_string_equal(hash, k->creq_hash);
        const char *nl = strrchr(creq, '\n');
        assert_string_equal(nl + 1, k->payload_hash);
        assert_string_equal(sig_of(r.authorization), k->signature);
        assert_non_null(strstr(r.authorization, k->signed_headers));
        free(creq);
        free(sts);
    }
}

/* Canonical URI + query line (lines 2 and 3) for a GET of url. */
static void canon_lines(const char *url, const char *service,
                        enum aws_sigv4_path_mode mode, char *out, size_t outlen)
{
    struct aws_sigv4_request req = {
        .method = "GET", .url = url, .path_mode = mode};
    struct aws_sigv4_creds c = {AKID, SECRET, NULL};
    struct aws_sigv4_result r;
    char *creq = NULL;
    assert_int_equal(
        aws_sigv4_sign(&req, &c, "us-east-1", service, T0, &r, &creq, NULL), 0);
    char *a = strchr(creq, '\n') + 1;
    char *b = strchr(a, '\n') + 1;
    char *e = strchr(b, '\n');
    snprintf(out, outlen, "%.*s", (int)(e - a), a);
    free(creq);
}

struct canon_case {
    const char *url;
    const char *service;
    enum aws_sigv4_path_mode mode;
    const char *want; /* "path\nquery" */
};

static const struct canon_case canon_cases[] = {
    /* StreamUrl: raw base64 '+', '/', '=' in the query; Go signer rules. */
    {"wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/"
     "user-0abc?role=publish_subscribe&cell-number=AAE+b/c==",
     "ssmmessages", AWS_SIGV4_PATH_AUTO,
     "/v1/data-channel/user-0abc\ncell-number=AAE%20b%2Fc%3D%3D&role=publish_"
     "subscribe"},
    /* '@' in a session id is encoded only in the canonical string. */
    {"wss://ssmmessages.us-east-1.amazonaws.com/v1/data-channel/"
     "botocore-session-1@x?role=publish_subscribe",
     "ssmmessages", AWS_SIGV4_PATH_AUTO,
     "/v1/data-channel/botocore-session-1%40x\nrole=publish_subscribe"},
    /* ssmmessages keeps dot segments and "//" (Go); others normalise. */
    {"https://h/a//b/./c/../d/", "ssmmessages", AWS_SIGV4_PATH_AUTO,
     "/a//b/./c/../d/\n"},
    {"https://h/a//b/./c/../d/", "ssm", AWS_SIGV4_PATH_AUTO, "/a/b/d/\n"},
    {"https://h/a//b/./c/../d/", "ssmmessages", AWS_SIGV4_PATH_NORMALIZE,
     "/a/b/d/\n"},
    {"https://h/a//b/./c/../d/", "ssm", AWS_SIGV4_PATH_AS_IS,
     "/a//b/./c/../d/\n"},
    {"https://h/../..", "ssm", AWS_SIGV4_PATH_AUTO, "/\n"},
    {"https://h", "ssm", AWS_SIGV4_PATH_AUTO, "/\n"},
    {"https://h?b=2&a=1", "ssm", AWS_SIGV4_PATH_AUTO, "/\na=1&b=2"},
    /* Double encoding of an existing escape, space, UTF-8. */
    {"https://h/a%2Fb c/\xe1\x88\xb4", "ssm", AWS_SIGV4_PATH_AUTO,
     "/a%252Fb%20c/%E1%88%B4\n"},
    /* Repeated keys sorted by value, empty values, bare names, '&&'. */
    {"https://h/?z=&a=2&a=1&&b&a=10#frag", "ssm", AWS_SIGV4_PATH_AUTO,
     "/\na=1&a=10&a=2&b=&z="},
    /* '+' is a space, bad escapes stay literal, '~' unreserved. */
    {"https://h/?k=a+b%zz%4&t=~%7e", "ssm", AWS_SIGV4_PATH_AUTO,
     "/\nk=a%20b%25zz%254&t=~~"},
};

static void test_canonical(void **state)
{
    (void)state;
    char got[512];
    for (size_t i = 0; i < ARRAY_SIZE(canon_cases); i++) {
        const struct canon_case *cc = &canon_cases[i];
        canon_lines(cc->url, cc->service, cc->mode, got, sizeof(got));
        print_message("%s\n", cc->url);
        assert_string_equal(got, cc->want);
    }
}

static void test_host_and_headers(void **state)
{
    (void)state;
    struct aws_sigv4_header h[] = {
        {"X-B", "  two   words\t here "}, {"x-a", "1"}, {"X-A", " 2 "}};
    struct aws_sigv4_request req = {.method = "POST",
                                    .url = "http://user:pw@LocalHost:4566/",
                                    .headers = h,
                                    .n_headers = ARRAY_SIZE(h)};
    struct aws_sigv4_creds c = {AKID, SECRET, ""};
    struct aws_sigv4_result r;
    char *creq = NULL;
    assert_int_equal(
        aws_sigv4_sign(&req, &c, "us-east-1", "ssm", T0, &r, &creq, NULL), 0);
    assert_non_null(strstr(creq, "\nhost:localhost:4566\n"));
    assert_non_null(strstr(creq, "\nx-a:1,2\nx-amz-date:20150830T123600Z\n"
                                 "x-b:two words here\n\n"
                                 "host;x-a;x-amz-date;x-b\n"));
    assert_null(strstr(r.authorization, "security-token"));
    free(creq);

    /* Default ports are not signed. */
    const char *urls[] = {"https://H.example:443/", "http://h.example:80/",
                          "wss://h.example:443/x"};
    for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
        struct aws_sigv4_request q = {.method = "GET", .url = urls[i]};
        assert_int_equal(
            aws_sigv4_sign(&q, &c, "us-east-1", "ssm", T0, &r, &creq, NULL), 0);
        assert_non_null(strstr(creq, "\nhost:h.example\n"));
        free(creq);
    }
}

static void test_bad_input(void **state)
{
    (void)state;
    struct aws_sigv4_creds c = {AKID, SECRET, NULL};
    struct aws_sigv4_result r;
    const char *bad[] = {"",
                         "ssm.amazonaws.com/",
                         "ftp://h/",
                         "https:///",
                         "https://h:99999/",
                         "https://h:x/",
                         "https://h:/",
                         "https://[::1/"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct aws_sigv4_request q = {.method = "GET", .url = bad[i]};
        assert_int_equal(
            aws_sigv4_sign(&q, &c, "us-east-1", "ssm", T0, &r, NULL, NULL),
            GW_EINVAL);
    }
    struct aws_sigv4_header h[] = {{"Host", "x"}};
    struct aws_sigv4_request q = {
        .method = "GET", .url = "https://h/", .headers = h, .n_headers = 1};
    assert_int_equal(
        aws_sigv4_sign(&q, &c, "us-east-1", "ssm", T0, &r, NULL, NULL),
        GW_EINVAL);
    h[0].name = "bad name";
    assert_int_equal(
        aws_sigv4_sign(&q, &c, "us-east-1", "ssm", T0, &r, NULL, NULL),
        GW_EINVAL);
    /* An Authorization that cannot fit is refused, not truncated. */
    char big[1100];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct aws_sigv4_creds cb = {big, SECRET, NULL};
    struct aws_sigv4_request g = {.method = "GET", .url = "https://h/"};
    assert_int_equal(
        aws_sigv4_sign(&g, &cb, "us-east-1", "ssm", T0, &r, NULL, NULL),
        GW_ETOO_BIG);
}

static void test_uri_encode(void **state)
{
    (void)state;
    char *e = aws_uri_encode("a b/~%+=\xff", 9, 0);
    assert_string_equal(e, "a%20b%2F~%25%2B%3D%FF");
    free(e);
    e = aws_uri_encode("a/b", 3, 1);
    assert_string_equal(e, "a/b");
    free(e);
    e = aws_uri_encode("", 0, 1);
    assert_string_equal(e, "");
    free(e);
}

static void test_presigned(void **state)
{
    (void)state;
    assert_false(aws_sigv4_url_is_presigned(
        "wss://h/v1/data-channel/s?role=publish_subscribe&cell-number=a+b=="));
    assert_true(aws_sigv4_url_is_presigned(
        "wss://h/v1/data-channel/s?role=x&X-Amz-Signature=abc"));
    assert_true(aws_sigv4_url_is_presigned("wss://h/?X-Amz-Date"));
    assert_true(
        aws_sigv4_url_is_presigned("wss://h/?a=1&X-Amz-Security-Token=t&b"));
    assert_false(aws_sigv4_url_is_presigned("wss://h/?X-Amz-Target=1"));
    assert_false(aws_sigv4_url_is_presigned("wss://h/x#?X-Amz-Date=1"));
    assert_false(aws_sigv4_url_is_presigned("wss://h/x"));
    assert_false(aws_sigv4_url_is_presigned(NULL));
}

static int hexbytes(const char *hex, unsigned char **out, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2)
        return -1;
    *out = malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        (*out)[i] = (unsigned char)v;
    }
    *len = n / 2;
    return 0;
}

/* The botocore cross-check: every vector must match exactly. */
static void test_vectors_file(void **state)
{
    (void)state;
    const char *path = getenv("SIGV4_VECTORS");
    if (!path || !*path) {
        print_message("SIGV4_VECTORS not set: skipping the vectors file\n");
        return;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    assert_non_null(root);
    assert_true(json_is_array(root));
    size_t i, bad = 0;
    json_t *v;
    json_array_foreach(root, i, v)
    {
        json_t *jh = json_object_get(v, "headers");
        size_t nh = json_array_size(jh);
        struct aws_sigv4_header *h = calloc(nh + 1, sizeof(*h));
        for (size_t k = 0; k < nh; k++) {
            h[k].name =
                json_string_value(json_array_get(json_array_get(jh, k), 0));
            h[k].value =
                json_string_value(json_array_get(json_array_get(jh, k), 1));
        }
        unsigned char *body = NULL;
        size_t body_len = 0;
        assert_int_equal(
            hexbytes(json_string_value(json_object_get(v, "body_hex")), &body,
                     &body_len),
            0);
        const char *mode = json_string_value(json_object_get(v, "path_mode"));
        struct aws_sigv4_request req = {
            .method = json_string_value(json_object_get(v, "method")),
            .url = json_string_value(json_object_get(v, "url")),
            .headers = h,
            .n_headers = nh,
            .body = body,
            .body_len = body_len,
            .path_mode = !mode || !strcmp(mode, "auto") ? AWS_SIGV4_PATH_AUTO
                         : !strcmp(mode, "as_is")       ? AWS_SIGV4_PATH_AS_IS
                                                  : AWS_SIGV4_PATH_NORMALIZE};
        struct aws_sigv4_creds c = {
            json_string_value(json_object_get(v, "access_key")),
            json_string_value(json_object_get(v, "secret_key")),
            json_string_value(json_object_get(v, "token"))};
        struct aws_sigv4_result r;
        char *creq = NULL;
        int rc = aws_sigv4_sign(
            &req, &c, json_string_value(json_object_get(v, "region")),
            json_string_value(json_object_get(v, "service")),
            (time_t)json_integer_value(json_object_get(v, "time")), &r, &creq,
            NULL);
        const char *want =
            json_string_value(json_object_get(v, "authorization"));
        const char *want_creq =
            json_string_value(json_object_get(v, "canonical_request"));
        if (rc != 0 || strcmp(r.authorization, want) != 0) {
            bad++;
            print_error("vector %zu (%s): rc %d\n got  %s\n want %s\n"
                        "canonical got:\n%s\ncanonical want:\n%s\n",
                        i, req.url, rc, rc ? "" : r.authorization, want,
                        creq ? creq : "", want_creq ? want_creq : "");
        }
        free(creq);
        free(body);
        free(h);
    }
    print_message("checked %zu botocore vectors, %zu mismatches\n",
                  json_array_size(root), bad);
    assert_true(json_array_size(root) > 0);
    assert_int_equal(bad, 0);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_get_vanilla),
        cmocka_unit_test(test_kats),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_host_and_headers),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_presigned),
        cmocka_unit_test(test_vectors_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
