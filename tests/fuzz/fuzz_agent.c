/*
 * Fuzz target for agent_parse_request and agent_build_reply: parses every
 * frame in the input the way the socket server does and builds each reply
 * with a fixed key ring. Invariants: a parsed frame lies inside the input,
 * its strings lie inside the frame, and every reply is a well-formed frame
 * (FAILURE, IDENTITIES_ANSWER or SIGN_RESPONSE).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "buf.h"
#include "common.h"
#include "key.h"

static struct key_ring ring;

static void ring_once(void)
{
    static int done;
    uint8_t seed[KEY_SEED_LEN];
    struct key *k = NULL;
    if (done)
        return;
    for (size_t i = 0; i < sizeof(seed); i++)
        seed[i] = (uint8_t)i;
    CHECK(key_from_seed(seed, &k) == 0);
    CHECK(key_ring_init_with(&ring, k, "ssmgate", 1000) == 0);
    done = 1;
}

static int inside(const uint8_t *p, size_t n, const uint8_t *lo, size_t len)
{
    return n == 0 || (p >= lo && p + n <= lo + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[1024];
    size_t pos = 0;

    ring_once();
    while (pos < size) {
        struct agent_request req;
        size_t used = 0, need = 0, outlen = 0;
        int rc =
            agent_parse_request(data + pos, size - pos, &req, &used, &need);
        if (rc == GW_ENEED_MORE) {
            CHECK(need == 0 || (need > size - pos && need >= 5 &&
                                need <= 4 + AGENT_MAX_MSG));
            break;
        }
        if (rc != 0) {
            CHECK(rc == GW_ETOO_BIG || rc == GW_EPROTO);
            break;
        }
        CHECK(used >= 5 && used <= size - pos);
        const uint8_t *frame = data + pos;
        CHECK(inside(req.key_blob, req.key_blob_len, frame, used));
        CHECK(inside(req.data, req.data_len, frame, used));
        CHECK(inside(req.ext_name, req.ext_name_len, frame, used));

        CHECK(agent_build_reply(&req, &ring, "ssmgate", 0, out, sizeof(out),
                                &outlen) == 0);
        CHECK(outlen >= 5 && buf_load_u32(out) == outlen - 4);
        CHECK(out[4] == AGENT_FAILURE || out[4] == AGENT_IDENTITIES_ANSWER ||
              out[4] == AGENT_SIGN_RESPONSE);
        if (out[4] == AGENT_SIGN_RESPONSE)
            CHECK(req.type == AGENTC_SIGN_REQUEST && outlen == 92);
        if (out[4] == AGENT_IDENTITIES_ANSWER)
            CHECK(req.type == AGENTC_REQUEST_IDENTITIES && outlen == 75);
        pos += used;
    }
    return 0;
}
