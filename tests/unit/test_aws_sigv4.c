/*
 * Unit tests for aws_sigv4.c: the known answers of the reference (section
 * 1.7/1.8), and, when SIGV4_VECTORS names a JSON file written by
 * tests/e2e/test_sigv4_botocore.py, every request in it signed the same as
 * botocore signed it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "aws_sigv4.h"
#include "common.h"

#define T_20150830 1440938160 /* 20150830T123600Z */

static const struct aws_sigv4_creds example_creds = {
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};

static const char *signature_of(const char *authz)
{
    const char *p = strstr(authz, "Signature=");
    return p ? p + 10 : "";
}

static void test_get_vanilla(void **state)
{
    struct aws_sigv4_request req = {
        "GET", "https://example.amazonaws.com/", NULL, 0, NULL, 0};
    struct aws_sigv4_result res;
    assert_int_equal(aws_sigv4_sign(&req, &example_creds, "us-east-1",
                                    "service", T_20150830, &res, NULL, NULL),
                     0);
    assert_string_equal(res.amz_date, "20150830T123600Z");
    assert_string_equal(
        signature_of(res.authorization),
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    assert_non_null(strstr(res.authorization,
                           "Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                           "aws4_request, SignedHeaders=host;x-amz-date, "));
}

static void sign_json(const char *host, const char *target, const char *body,
                      const char *region, const char *service,
                      const char *token, const char *want_creq_hash,
                      const char *want_sig)
{
    char url[256];
    snprintf(url, sizeof(url), "https://%s/", host);
    struct aws_sigv4_header h[] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"X-Amz-Target", target},
    };
    struct aws_sigv4_request req = {"POST", url, h, 2, body, strlen(body)};
    struct aws_sigv4_creds creds = example_creds;
    creds.session_token = token;
    struct aws_sigv4_result res;
    char *creq = NULL, *sts = NULL;
    assert_int_equal(aws_sigv4_sign(&req, &creds, region, service, T_20150830,
                                    &res, &creq, &sts),
                     0);
    char hash[65];
    aws_sha256_hex(creq, strlen(creq), hash);
    assert_string_equal(hash, want_creq_hash);
    assert_string_equal(signature_of(res.authorization), want_sig);
    free(creq);
    free(sts);
}

static void test_v1_start_session(void **state)
{
    const char *body = "{\"Target\":\"i-0123456789abcdef0\",\"DocumentName\":"
                       "\"AWS-StartSSHSession\",\"Parameters\":{\"portNumber\":"
                       "[\"22\"]}}";
    assert_int_equal(strlen(body), 104);
    sign_json(
        "ssm.us-east-1.amazonaws.com", "AmazonSSM.StartSession", body,
        "us-east-1", "ssm", NULL,
        "7baee12c5b38392d1720ee3a807e30604b9ec1b78beef81825226d39ac2bfed9",
        "3974e03254abd4b6ba54e1f0e7b5b45d76c1189c1579a7789598cef8e06b0ddd");
    sign_json(
        "ssm.us-east-1.amazonaws.com", "AmazonSSM.StartSession", body,
        "us-east-1", "ssm", "EXAMPLESESSIONTOKEN",
        "a1753ad95fb2e7e1663a7cc760401274e199f78c8ae03ad6e56c5bcbb5804a40",
        "bc1dea99e04d7a356e44c5b99ed62a4087f344efcbcd0c32cff8d04e880bb6eb");
}

static void test_v2_send_ssh_public_key(void **state)
{
    const char *body =
        "{\"InstanceId\":\"i-0123456789abcdef0\",\"InstanceOSUser\":\"ec2-"
        "user\",\"SSHPublicKey\":\"ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea "
        "ssmgate\"}";
    assert_int_equal(strlen(body), 170);
    sign_json(
        "ec2-instance-connect.eu-west-1.amazonaws.com",
        "AWSEC2InstanceConnectService.SendSSHPublicKey", body, "eu-west-1",
        "ec2-instance-connect", NULL,
        "be1ceb838a938fdce07a525b76f3ddd572c1de24ea000cbdad2ee9f545f98e5a",
        "4c527255216cbf2217cccf8dce2305a452c3a2fbc825c98c0bfd14803f6f3c0f");
}

static void test_v3_form_post(void **state)
{
    const char *body = "Action=DescribeInstances&Version=2016-11-15&Filter.1."
                       "Name=tag%3AName&Filter.1.Value.1=web&Filter.2.Name="
                       "instance-state-name&Filter.2.Value.1=running";
    struct aws_sigv4_header h[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
    };
    struct aws_sigv4_request req = {
        "POST",      "https://ec2.us-east-1.amazonaws.com/", h, 1, body,
        strlen(body)};
    struct aws_sigv4_result res;
    char *creq = NULL;
    assert_int_equal(aws_sigv4_sign(&req, &example_creds, "us-east-1", "ec2",
                                    T_20150830, &res, &creq, NULL),
                     0);
    char hash[65];
    aws_sha256_hex(creq, strlen(creq), hash);
    assert_string_equal(
        hash,
        "a722de5d232126b12304a0f3ca0394357d063310d9e3b75ad76be168a783fc29");
    assert_string_equal(
        signature_of(res.authorization),
        "1ddeaf81e84fb7021d8a98bf0345dcbad328d41075d8b9e2ee02e323c99971a2");
    free(creq);
}

static void test_stream_url_canonical_query(void **state)
{
    /* Raw '+', '/', '=' in cell-number are form-decoded then re-encoded:
     * '+' becomes %20 (a space), as the Go signer of the plugin does. */
    struct aws_sigv4_request req = {
        "GET",
        "wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/"
        "user@example.com-01dc4c3150f53f6d3?role=publish_subscribe&cell-"
        "number=AAEAAf+x/yz=",
        NULL,
        0,
        NULL,
        0};
    struct aws_sigv4_result res;
    char *creq = NULL;
    assert_int_equal(aws_sigv4_sign(&req, &example_creds, "eu-west-1",
                                    "ssmmessages", T_20150830, &res, &creq,
                                    NULL),
                     0);
    assert_non_null(strstr(creq, "GET\n/v1/data-channel/"
                                 "user%40example.com-01dc4c3150f53f6d3\n"
                                 "cell-number=AAEAAf%20x%2Fyz%3D&role=publish_"
                                 "subscribe\nhost:ssmmessages.eu-west-1."
                                 "amazonaws.com\n"));
    free(creq);
}

static void test_paths_and_errors(void **state)
{
    struct aws_sigv4_request req = {
        "GET", "https://example.amazonaws.com/a/./b/../c//d/", NULL, 0, NULL,
        0};
    struct aws_sigv4_result res;
    char *creq = NULL;
    assert_int_equal(aws_sigv4_sign(&req, &example_creds, "us-east-1",
                                    "service", T_20150830, &res, &creq, NULL),
                     0);
    assert_memory_equal(creq, "GET\n/a/c/d/\n\n", 13);
    free(creq);
    req.url = "not a url";
    assert_int_equal(aws_sigv4_sign(&req, &example_creds, "us-east-1",
                                    "service", T_20150830, &res, NULL, NULL),
                     GW_EINVAL);
    /* A non-default port is part of the signed host. */
    req.url = "http://localhost:4566/";
    assert_int_equal(aws_sigv4_sign(&req, &example_creds, "us-east-1", "ssm",
                                    T_20150830, &res, &creq, NULL),
                     0);
    assert_non_null(strstr(creq, "host:localhost:4566\n"));
    free(creq);
}

/* Every case of the botocore-written vectors file, when there is one. */
static void test_botocore_vectors(void **state)
{
    const char *path = getenv("SIGV4_VECTORS");
    if (path == NULL)
        skip();
    json_error_t err;
    json_t *doc = json_load_file(path, 0, &err);
    assert_non_null(doc);
    size_t i, mismatches = 0;
    json_t *v;
    json_array_foreach(doc, i, v)
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
        const char *body = json_string_value(json_object_get(v, "body"));
        struct aws_sigv4_request req = {
            json_string_value(json_object_get(v, "method")),
            json_string_value(json_object_get(v, "url")),
            h,
            nh,
            body,
            body ? strlen(body) : 0};
        struct aws_sigv4_creds creds = {
            json_string_value(json_object_get(v, "access_key")),
            json_string_value(json_object_get(v, "secret_key")),
            json_string_value(json_object_get(v, "token"))};
        struct aws_sigv4_result res;
        char *creq = NULL;
        int rc = aws_sigv4_sign(
            &req, &creds, json_string_value(json_object_get(v, "region")),
            json_string_value(json_object_get(v, "service")),
            (time_t)json_integer_value(json_object_get(v, "time")), &res, &creq,
            NULL);
        const char *want =
            json_string_value(json_object_get(v, "authorization"));
        if (rc != 0 || strcmp(res.authorization, want) != 0) {
            mismatches++;
            print_message("case %zu (%s %s): rc %d\n ours: %s\n want: %s\n"
                          "canonical:\n%s\n",
                          i, req.method, req.url, rc,
                          rc == 0 ? res.authorization : "-", want,
                          creq ? creq : "-");
        }
        free(creq);
        free(h);
    }
    print_message("%zu botocore vectors, %zu mismatches\n",
                  json_array_size(doc), mismatches);
    assert_int_equal(mismatches, 0);
    assert_true(json_array_size(doc) >= 300);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_vanilla),
        cmocka_unit_test(test_v1_start_session),
        cmocka_unit_test(test_v2_send_ssh_public_key),
        cmocka_unit_test(test_v3_form_post),
        cmocka_unit_test(test_stream_url_canonical_query),
        cmocka_unit_test(test_paths_and_errors),
        cmocka_unit_test(test_botocore_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
