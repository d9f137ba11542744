/* Unit tests for dc_msg.c: the reference's byte-for-byte vector (section
 * 4.6), UUID order, digests, every validation, and the JSON payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "dc_msg.h"

static const uint8_t vector[125] = {
    0x00, 0x00, 0x00, 0x74, 0x69, 0x6e, 0x70, 0x75, 0x74, 0x5f, 0x73, 0x74,
    0x72, 0x65, 0x61, 0x6d, 0x5f, 0x64, 0x61, 0x74, 0x61, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xa5, 0x08, 0xb5, 0xf0, 0x73, 0xf3, 0x1b, 0x16,
    0xdd, 0x01, 0xe5, 0x6b, 0xff, 0x48, 0x48, 0x3e, 0x2c, 0xf2, 0x4d, 0xba,
    0x5f, 0xb0, 0xa3, 0x0e, 0x26, 0xe8, 0x3b, 0x2a, 0xc5, 0xb9, 0xe2, 0x9e,
    0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7, 0x42, 0x5e, 0x73, 0x04, 0x33, 0x62,
    0x93, 0x8b, 0x98, 0x24, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05,
    0x68, 0x65, 0x6c, 0x6c, 0x6f};

static void test_reference_vector(void **state)
{
    uint8_t id[16], out[200];
    assert_int_equal(dc_uuid_parse("dd01e56b-ff48-483e-a508-b5f073f31b16", id),
                     0);
    size_t n = dc_msg_encode(out, DC_TYPE_INPUT, 7, 0, id, 1700000000123ull,
                             DC_PT_OUTPUT, (const uint8_t *)"hello", 5);
    assert_int_equal(n, sizeof(vector));
    assert_memory_equal(out, vector, sizeof(vector));
    struct dc_msg m;
    const char *why;
    assert_int_equal(dc_msg_decode(vector, sizeof(vector), &m, &why), 0);
    assert_string_equal(m.type, "input_stream_data");
    assert_int_equal(m.seq, 7);
    assert_true(m.created_ms == 1700000000123ull);
    assert_int_equal(m.payload_type, 1);
    assert_int_equal(m.payload_len, 5);
    assert_memory_equal(m.payload, "hello", 5);
    char s[37];
    dc_uuid_str(m.id, s);
    assert_string_equal(s, "dd01e56b-ff48-483e-a508-b5f073f31b16");
}

static void test_payload_in_place_and_empty(void **state)
{
    uint8_t id[16] = {1}, out[200];
    memcpy(out + DC_MSG_OVERHEAD, "hello", 5);
    assert_int_equal(dc_msg_encode(out, DC_TYPE_INPUT, 7, 0, id, 5, 1,
                                   out + DC_MSG_OVERHEAD, 5),
                     125);
    struct dc_msg m;
    const char *why;
    assert_int_equal(dc_msg_decode(out, 125, &m, &why), 0);
    assert_int_equal(dc_msg_encode(out, DC_TYPE_ACK, 0, 3, id, 5, 0, NULL, 0),
                     120);
    assert_int_equal(dc_msg_decode(out, 120, &m, &why), 0);
    assert_int_equal(m.payload_len, 0);
}

static void test_hostile_frames(void **state)
{
    uint8_t f[sizeof(vector)];
    struct dc_msg m;
    const char *why;
    for (size_t cut = 0; cut < sizeof(vector); cut++)
        assert_int_equal(dc_msg_decode(vector, cut, &m, &why), GW_EPROTO);
    memcpy(f, vector, sizeof(f));
    f[124] ^= 1; /* payload changed: digest mismatch */
    assert_int_equal(dc_msg_decode(f, sizeof(f), &m, &why), GW_EPROTO);
    memcpy(f, vector, sizeof(f));
    f[119] = 6; /* PayloadLength larger than the bytes present */
    assert_int_equal(dc_msg_decode(f, sizeof(f), &m, &why), GW_EPROTO);
    memcpy(f, vector, sizeof(f));
    f[3] = 0xff; /* HeaderLength beyond the frame */
    assert_int_equal(dc_msg_decode(f, sizeof(f), &m, &why), GW_EPROTO);
    memcpy(f, vector, sizeof(f));
    memset(f + 40, 0, 8); /* CreatedDate 0 */
    assert_int_equal(dc_msg_decode(f, sizeof(f), &m, &why), GW_EPROTO);
    memcpy(f, vector, sizeof(f));
    memset(f + 4, ' ', 32); /* empty type */
    assert_int_equal(dc_msg_decode(f, sizeof(f), &m, &why), GW_EPROTO);
    /* NUL padding is accepted. */
    memcpy(f, vector, sizeof(f));
    memset(f + 4 + 17, 0, 15);
    assert_int_equal(dc_msg_decode(f, sizeof(f), &m, &why), 0);
    assert_string_equal(m.type, "input_stream_data");
    /* pause_publication with zero fields is not rejected. */
    uint8_t pub[120];
    memset(pub, 0, sizeof(pub));
    memcpy(pub + 4, DC_TYPE_PAUSE_PUB, strlen(DC_TYPE_PAUSE_PUB));
    assert_int_equal(dc_msg_decode(pub, sizeof(pub), &m, &why), 0);
}

static void test_json_payloads(void **state)
{
    uint8_t id[16];
    dc_uuid_parse("dd01e56b-ff48-483e-a508-b5f073f31b16", id);
    char buf[256];
    size_t n = dc_ack_format(buf, sizeof(buf), "input_stream_data", id, 7);
    const char *want =
        "{\"AcknowledgedMessageType\":\"input_stream_data\","
        "\"AcknowledgedMessageId\":\"dd01e56b-ff48-483e-a508-b5f073f31b16\","
        "\"AcknowledgedMessageSequenceNumber\":7,\"IsSequentialMessage\":true}";
    assert_int_equal(n, strlen(want));
    assert_string_equal(buf, want);
    char *j = dc_ack_json("input_stream_data", id, 7);
    assert_string_equal(j, want);
    free(j);
    int64_t seq;
    assert_int_equal(dc_ack_parse((const uint8_t *)want, strlen(want), &seq),
                     0);
    assert_int_equal(seq, 7);
    assert_int_equal(dc_ack_parse((const uint8_t *)"{\"x\":1}", 7, &seq),
                     GW_EPROTO);
    assert_int_equal(dc_ack_format(buf, 10, "input_stream_data", id, 7), 0);
    /* The fast path reads the agent's shape; every other spelling gets
     * the JSON parser's answer. */
    static const struct {
        const char *json;
        int rc;
        int64_t seq;
    } acks[] = {
        {"{\"AcknowledgedMessageType\":\"output_stream_data\","
         "\"AcknowledgedMessageId\":\"DD01E56B-ff48-483e-a508-b5f073f31b16\","
         "\"AcknowledgedMessageSequenceNumber\":123456789012345678,"
         "\"IsSequentialMessage\":false}",
         0, 123456789012345678LL},
        {"{\"AcknowledgedMessageType\":\"x\",\"AcknowledgedMessageId\":\"1\","
         "\"AcknowledgedMessageSequenceNumber\":-0,\"IsSequentialMessage\":"
         "true}",
         0, 0},
        {"{ \"AcknowledgedMessageSequenceNumber\" : 42 }", 0, 42},
        {"{\"AcknowledgedMessageType\":\"x\",\"AcknowledgedMessageId\":\"1\","
         "\"AcknowledgedMessageSequenceNumber\":1234567890123456789,"
         "\"IsSequentialMessage\":true}",
         0, 1234567890123456789LL},
        {"{\"AcknowledgedMessageType\":\"x\",\"AcknowledgedMessageId\":\"1\","
         "\"AcknowledgedMessageSequenceNumber\":07,\"IsSequentialMessage\":"
         "true}",
         GW_EPROTO, 0},
        {"{\"AcknowledgedMessageType\":\"x\",\"AcknowledgedMessageId\":\"1\","
         "\"AcknowledgedMessageSequenceNumber\":7,\"IsSequentialMessage\":true}"
         "x",
         GW_EPROTO, 0},
        {"{\"AcknowledgedMessageType\":\"x\",\"AcknowledgedMessageId\":\"1\","
         "\"AcknowledgedMessageSequenceNumber\":\"7\",\"IsSequentialMessage\":"
         "true}",
         GW_EPROTO, 0},
    };
    for (size_t i = 0; i < sizeof(acks) / sizeof(acks[0]); i++) {
        int64_t fast = -1, slow = -1;
        size_t len = strlen(acks[i].json);
        int rf = dc_ack_parse((const uint8_t *)acks[i].json, len, &fast);
        int rs = dc_ack_parse_json((const uint8_t *)acks[i].json, len, &slow);
        assert_int_equal(rf, acks[i].rc);
        assert_int_equal(rs, acks[i].rc);
        if (rf == 0) {
            assert_true(fast == acks[i].seq);
            assert_true(slow == acks[i].seq);
        }
    }
    assert_int_equal(
        dc_ack_format(buf, sizeof(buf), "input_stream_data", id, -12345),
        strlen(want) + 5);
    assert_non_null(
        strstr(buf, "\"AcknowledgedMessageSequenceNumber\":-12345,"));

    const char *hs =
        "{\"AgentVersion\":\"3.3.987.0\",\"RequestedClientActions\":"
        "[{\"ActionType\":\"SessionType\",\"ActionParameters\":"
        "{\"SessionType\":\"Port\",\"Properties\":{\"portNumber\":"
        "\"80\",\"type\":\"LocalPortForwarding\"}}},{\"ActionType\":"
        "\"KMSEncryption\",\"ActionParameters\":{\"KMSKeyId\":"
        "\"k\"}}]}";
    struct dc_handshake_request req;
    const char *why;
    assert_int_equal(
        dc_handshake_request_parse((const uint8_t *)hs, strlen(hs), &req, &why),
        0);
    assert_string_equal(req.agent_version, "3.3.987.0");
    assert_string_equal(req.session_type, "Port");
    assert_string_equal(req.properties_type, "LocalPortForwarding");
    assert_int_equal(req.n_actions, 2);
    char *resp = dc_handshake_response_json(&req, "1.2.779.0", 1);
    assert_non_null(strstr(resp, "\"ActionType\":\"SessionType\","
                                 "\"ActionStatus\":1"));
    assert_non_null(strstr(resp, "\"ActionType\":\"KMSEncryption\","
                                 "\"ActionStatus\":3"));
    free(resp);
    assert_int_equal(
        dc_handshake_request_parse((const uint8_t *)"[1]", 3, &req, &why),
        GW_EPROTO);
    char *open = dc_open_json("tok", "client", "1.2.779.0");
    assert_non_null(strstr(open, "\"MessageSchemaVersion\":\"1.0\""));
    assert_non_null(strstr(open, "\"TokenValue\":\"tok\""));
    assert_null(strstr(open, "ClientInstanceId"));
    free(open);
}

static void test_versions(void **state)
{
    assert_true(dc_version_cmp("3.1.1511.0", "3.0.196.0") > 0);
    assert_true(dc_version_cmp("3.0.196.0", "3.0.196.0") == 0);
    assert_true(dc_version_cmp("2.3.722.0", "3.0.196.0") < 0);
    assert_true(dc_version_cmp("bad", "1.0") < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vector),
        cmocka_unit_test(test_payload_in_place_and_empty),
        cmocka_unit_test(test_hostile_frames),
        cmocka_unit_test(test_json_payloads),
        cmocka_unit_test(test_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
