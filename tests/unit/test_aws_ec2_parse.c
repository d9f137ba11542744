/* Unit tests for aws_ec2_parse (and aws_xml underneath): EC2's
 * DescribeInstances and StartInstances answers as EC2 writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_ec2_parse.h"
#include "aws_proto.h"
#include "aws_xml.h"
#include "common.h"

#define NS "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\""

static json_t *answer(const char *action, const char *xml)
{
    return aws_proto_query_result(aws_svc_find("ec2"), action, xml,
                                  strlen(xml));
}

#define INST(id, state, ip, tags)                                              \
    "<item><instanceId>" id "</instanceId><instanceState><code>16</code>"      \
    "<name>" state "</name></instanceState><privateIpAddress>" ip              \
    "</privateIpAddress><platformDetails>Linux/UNIX</platformDetails>"         \
    "<tagSet>" tags "</tagSet></item>"
#define TAG(k, v) "<item><key>" k "</key><value>" v "</value></item>"

static void test_describe_pages(void **state)
{
    /* Two reservations, one with two instances (an array), one with one
     * (an object); tags 0, 1 and 2; a nextToken. */
    const char *p1 =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<DescribeInstancesResponse " NS "><requestId>r</requestId>"
        "<reservationSet><item><reservationId>r-1</reservationId>"
        "<instancesSet>" INST("i-0a", "running", "10.0.0.1",
                              TAG("Name", "web &amp; db") TAG("env", "prod"))
            INST("i-0b", "stopped", "10.0.0.2",
                 "") "</instancesSet></item>"
                     "<item><instancesSet>" INST(
                         "i-0c", "pending", "10.0.0.3",
                         TAG("team", "x")) "</instancesSet></item>"
                                           "</reservationSet><nextToken>tok+/"
                                           "=</nextToken>"
                                           "</DescribeInstancesResponse>";
    const char *p2 = "<DescribeInstancesResponse " NS "><reservationSet>"
                     "\n  </reservationSet></DescribeInstancesResponse>";
    struct aws_ec2_list l;
    char next[64], why[128];
    size_t skipped = 0;
    json_t *j;

    (void)state;
    memset(&l, 0, sizeof(l));
    j = answer("DescribeInstances", p1);
    assert_non_null(j);
    assert_int_equal(aws_ec2_parse_describe(j, &l, next, sizeof(next), &skipped,
                                            why, sizeof(why)),
                     0);
    json_decref(j);
    assert_string_equal(next, "tok+/=");
    assert_int_equal(l.n, 3);
    assert_int_equal(skipped, 0);
    assert_string_equal(l.inst[0].instance_id, "i-0a");
    assert_string_equal(l.inst[0].name, "web & db");
    assert_string_equal(l.inst[0].state, "running");
    assert_string_equal(l.inst[0].private_ip, "10.0.0.1");
    assert_string_equal(l.inst[0].platform, "Linux/UNIX");
    assert_string_equal(aws_ec2_tag(&l.inst[0], "env"), "prod");
    assert_string_equal(l.inst[1].state, "stopped");
    assert_string_equal(l.inst[1].name, "");
    assert_int_equal(l.inst[1].n_tags, 0);
    assert_string_equal(l.inst[2].instance_id, "i-0c");
    assert_string_equal(aws_ec2_tag(&l.inst[2], "team"), "x");
    assert_null(aws_ec2_tag(&l.inst[2], "Name"));
    /* The second page appends nothing and ends the listing. */
    j = answer("DescribeInstances", p2);
    assert_int_equal(aws_ec2_parse_describe(j, &l, next, sizeof(next), &skipped,
                                            why, sizeof(why)),
                     0);
    json_decref(j);
    assert_string_equal(next, "");
    assert_int_equal(l.n, 3);
    aws_ec2_list_free(&l);
}

static void test_describe_hostile(void **state)
{
    struct aws_ec2_list l;
    char next[8], why[128];
    size_t skipped = 0;
    json_t *j;
    /* No id, a control character in a tag, a too long state: skipped. */
    const char *bad =
        "<DescribeInstancesResponse><reservationSet><item><instancesSet>"
        "<item><instanceState><name>running</name></instanceState></item>" INST(
            "i-1", "running", "1.2.3.4", TAG("Name", "a&#9;b"))
            INST("i-2", "runningrunningrunningrunning", "", "")
                INST("i-3", "running", "",
                     "") "</instancesSet></item></reservationSet>"
                         "<nextToken>0123456789</nextToken></"
                         "DescribeInstancesResponse>";

    (void)state;
    memset(&l, 0, sizeof(l));
    j = answer("DescribeInstances", bad);
    assert_int_equal(aws_ec2_parse_describe(j, &l, next, sizeof(next), &skipped,
                                            why, sizeof(why)),
                     GW_ETOO_BIG);
    assert_int_equal(skipped, 3);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.inst[0].instance_id, "i-3");
    json_decref(j);
    aws_ec2_list_free(&l);
    /* Not a DescribeInstances answer. */
    j = answer("DescribeInstances", "<DescribeInstancesResponse><x>1</x>"
                                    "</DescribeInstancesResponse>");
    assert_int_equal(aws_ec2_parse_describe(j, &l, next, sizeof(next), &skipped,
                                            why, sizeof(why)),
                     GW_EPROTO);
    json_decref(j);
    /* A DTD (entity expansion) is refused by the XML reader itself. */
    const char *dtd = "<!DOCTYPE a [<!ENTITY e \"xxxxxxxx\">]>"
                      "<DescribeInstancesResponse><reservationSet>&e;"
                      "</reservationSet></DescribeInstancesResponse>";
    assert_null(aws_xml_to_json(dtd, strlen(dtd)));
}

static void test_start(void **state)
{
    const char *ok =
        "<StartInstancesResponse " NS "><requestId>r</requestId>"
        "<instancesSet><item><instanceId>i-0a</instanceId><currentState>"
        "<code>0</code><name>pending</name></currentState><previousState>"
        "<code>80</code><name>stopped</name></previousState></item>"
        "</instancesSet></StartInstancesResponse>";
    char st[AWS_EC2_STATE_MAX];
    json_t *j = answer("StartInstances", ok);

    (void)state;
    assert_int_equal(aws_ec2_parse_start(j, "i-0a", st, sizeof(st)), 0);
    assert_string_equal(st, "pending");
    assert_int_equal(aws_ec2_parse_start(j, "i-0b", st, sizeof(st)), GW_EPROTO);
    json_decref(j);
    j = answer("StartInstances", "<StartInstancesResponse><instancesSet/>"
                                 "</StartInstancesResponse>");
    assert_int_equal(aws_ec2_parse_start(j, "i-0a", st, sizeof(st)), GW_EPROTO);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_pages),
        cmocka_unit_test(test_describe_hostile),
        cmocka_unit_test(test_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
