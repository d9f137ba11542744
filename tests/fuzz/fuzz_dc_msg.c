/* Fuzzes the data channel message decoder and the JSON payload parsers it
 * feeds; checks that a decoded payload stays inside the frame. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "dc_msg.h"

/* The ack fast path must agree with the JSON parser on every input. */
static void ack_agrees(const uint8_t *p, size_t n)
{
    int64_t fast = 0, slow = 0;
    int rf = dc_ack_parse(p, n, &fast);
    int rs = dc_ack_parse_json(p, n, &slow);
    CHECK(rf == rs);
    CHECK(rf != 0 || fast == slow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dc_msg m;
    const char *why;
    ack_agrees(data, size);
    if (dc_msg_decode(data, size, &m, &why) != 0)
        return 0;
    CHECK(m.payload >= data && m.payload + m.payload_len <= data + size);
    int64_t seq;
    dc_ack_parse(m.payload, m.payload_len, &seq);
    struct dc_handshake_request hs;
    if (dc_handshake_request_parse(m.payload, m.payload_len, &hs, &why) == 0)
        CHECK(hs.n_actions <= DC_MAX_ACTIONS);
    char text[256];
    dc_channel_closed_parse(m.payload, m.payload_len, text, sizeof(text));
    dc_handshake_complete_parse(m.payload, m.payload_len, text, sizeof(text));
    return 0;
}
