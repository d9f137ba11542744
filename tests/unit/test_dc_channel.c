/*
 * Unit tests for dc_channel.c, the reliability layer: handshake answers,
 * acks, ordering, duplicates, the window, retransmission, pacing, the
 * closing flags and resume. The WebSocket is a scripted fake (below): this
 * file defines the ws_* functions dc_channel.c calls, so the linker never
 * takes ws.o from the library. What the "agent" sends is built here by
 * hand from the reference layout, not with dc_msg_encode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/sha.h>

#include "buf.h"
#include "common.h"
#include "dc_ackq.h"
#include "dc_channel.h"
#include "dc_msg.h"
#include "defer.h"
#include "stats.h"
#include "ws.h"

/* ---- the fake WebSocket ---- */

#define SENT_MAX 8192

struct ws {
    const struct ws_cb *cb;
    void *arg;
    int closed, paused;
};

static struct {
    struct ws ws[4];
    int n_ws;
    char url[256];
    uint8_t *sent[SENT_MAX];
    size_t sent_len[SENT_MAX];
    int sent_binary[SENT_MAX];
    int n_sent;
    int full;    /* ws_send answers GW_EAGAIN */
    int backlog; /* messages "queued" in the socket, for ws_backlogged */
} F;

int ws_connect(struct ws_ctx *ctx, const char *url,
               const struct ws_header *headers, size_t n_headers,
               const struct ws_cb *cb, void *arg, struct ws **out)
{
    (void)ctx;
    (void)headers;
    (void)n_headers;
    struct ws *w = &F.ws[F.n_ws++];
    memset(w, 0, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    snprintf(F.url, sizeof(F.url), "%s", url);
    *out = w;
    return 0;
}

int ws_send(struct ws *w, const void *data, size_t len, int binary)
{
    if (w->closed)
        return GW_ECLOSED;
    if (F.full)
        return GW_EAGAIN;
    assert_true(F.n_sent < SENT_MAX);
    F.sent[F.n_sent] = malloc(len);
    memcpy(F.sent[F.n_sent], data, len);
    F.sent_len[F.n_sent] = len;
    F.sent_binary[F.n_sent++] = binary;
    return 0;
}

void ws_close(struct ws *w)
{
    w->closed = 1;
}

void ws_rx_pause(struct ws *w, int paused)
{
    w->paused = paused;
}

int ws_backlogged(struct ws *w, unsigned max)
{
    (void)w;
    return F.backlog >= (int)max;
}

static struct ws *cur(void)
{
    return &F.ws[F.n_ws - 1];
}

static void sent_clear(void)
{
    for (int i = 0; i < F.n_sent; i++)
        free(F.sent[i]);
    F.n_sent = 0;
}

/* ---- the agent's side, by hand ---- */

/* An agent message: 116-byte header, PayloadLength, payload. */
static size_t agent_msg(uint8_t *m, const char *type, int64_t seq,
                        uint32_t ptype, const void *p, size_t n)
{
    memset(m, 0, 120);
    buf_store_u32(m, 116);
    memset(m + 4, ' ', 32);
    memcpy(m + 4, type, strlen(type));
    buf_store_u32(m + 36, 1);
    buf_store_u64(m + 40, 1700000000000ull);
    buf_store_u64(m + 48, (uint64_t)seq);
    for (int i = 0; i < 16; i++)
        m[64 + i] = (uint8_t)(seq * 7 + i + 1); /* some non-zero id */
    SHA256(p, n, m + 80);
    buf_store_u32(m + 112, ptype);
    buf_store_u32(m + 116, (uint32_t)n);
    memcpy(m + 120, p, n);
    return 120 + n;
}

static void deliver(const char *type, int64_t seq, uint32_t ptype,
                    const void *p, size_t n)
{
    uint8_t m[4096];
    size_t len = agent_msg(m, type, seq, ptype, p, n);
    cur()->cb->on_message(cur()->arg, m, len, 1);
}

static void deliver_output(int64_t seq, uint32_t ptype, const char *s)
{
    deliver(DC_TYPE_OUTPUT, seq, ptype, s, strlen(s));
}

static void deliver_ack(int64_t seq)
{
    char j[256];
    int n =
        snprintf(j, sizeof(j),
                 "{\"AcknowledgedMessageType\":\"input_stream_data\","
                 "\"AcknowledgedMessageId\":\"00000000-0000-4000-8000-"
                 "000000000000\",\"AcknowledgedMessageSequenceNumber\":%lld,"
                 "\"IsSequentialMessage\":true}",
                 (long long)seq);
    deliver(DC_TYPE_ACK, 0, 0, j, (size_t)n);
}

/* Sent message i, decoded (fails the test when it does not decode). */
static struct dc_msg sent_msg(int i)
{
    struct dc_msg m;
    const char *why = NULL;
    assert_true(i < F.n_sent);
    assert_true(F.sent_binary[i]);
    assert_int_equal(dc_msg_decode(F.sent[i], F.sent_len[i], &m, &why), 0);
    return m;
}

/* How many sent messages are acks of seq / data messages with seq. */
static int count_acks(int64_t seq)
{
    int n = 0;
    for (int i = 0; i < F.n_sent; i++) {
        if (!F.sent_binary[i])
            continue;
        struct dc_msg m = sent_msg(i);
        char want[64];
        snprintf(want, sizeof(want),
                 "\"AcknowledgedMessageSequenceNumber\":%lld,", (long long)seq);
        if (strcmp(m.type, DC_TYPE_ACK) == 0 &&
            memmem(m.payload, m.payload_len, want, strlen(want)) != NULL)
            n++;
    }
    return n;
}

static int count_data(int64_t seq)
{
    int n = 0;
    for (int i = 0; i < F.n_sent; i++) {
        if (!F.sent_binary[i])
            continue;
        struct dc_msg m = sent_msg(i);
        if (strcmp(m.type, DC_TYPE_INPUT) == 0 && m.seq == seq)
            n++;
    }
    return n;
}

/* ---- the owner's callbacks ---- */

static struct {
    int ready, lost, closed, writable, acked, flags[4];
    char reason[600];
    uint8_t data[1 << 20];
    size_t data_len;
    char agent_version[32];
} O;

static void on_ready(void *arg, const struct dc_handshake_request *hs)
{
    (void)arg;
    O.ready++;
    snprintf(O.agent_version, sizeof(O.agent_version), "%s", hs->agent_version);
}

static void on_data(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    memcpy(O.data + O.data_len, p, n);
    O.data_len += n;
}

static void on_flag(void *arg, uint32_t flag)
{
    (void)arg;
    if (flag < 4)
        O.flags[flag]++;
}

static void on_writable(void *arg)
{
    (void)arg;
    O.writable++;
}

static void on_lost(void *arg, const char *reason)
{
    (void)arg;
    O.lost++;
    snprintf(O.reason, sizeof(O.reason), "%s", reason);
}

static void on_closed(void *arg, const char *reason)
{
    (void)arg;
    O.closed++;
    snprintf(O.reason, sizeof(O.reason), "%s", reason);
}

static void on_acked(void *arg)
{
    (void)arg;
    O.acked++;
}

static const struct dc_channel_cb owner = {
    .on_ready = on_ready,
    .on_data = on_data,
    .on_flag = on_flag,
    .on_writable = on_writable,
    .on_lost = on_lost,
    .on_closed = on_closed,
    .on_acked = on_acked,
};

/* ---- fixtures ---- */

static uv_loop_t loop;
static struct dc_channel *ch;
static struct stats S; /* the counters the channel reports to */

static const char *hs_port =
    "{\"AgentVersion\":\"3.3.987.0\",\"RequestedClientActions\":[{"
    "\"ActionType\":\"SessionType\",\"ActionParameters\":{\"SessionType\":"
    "\"Port\",\"Properties\":{\"portNumber\":\"22\"}}}]}";

static void open_channel(int rate)
{
    memset(&O, 0, sizeof(O));
    sent_clear();
    F.n_ws = 0;
    F.full = 0;
    F.backlog = 0;
    memset(&S, 0, sizeof(S));
    uv_loop_init(&loop);
    struct dc_channel_opts opts = {.message_rate = rate,
                                   .payload_size = 1024,
                                   .handshake_timeout_ms = 200,
                                   .stats = &S};
    assert_int_equal(dc_channel_new(&loop, NULL, &opts, &owner, NULL, &ch), 0);
    assert_int_equal(dc_channel_connect(ch,
                                        "wss://mgs.example/v1/data-channel/"
                                        "s-1?role=publish_subscribe",
                                        NULL, 0, "secret-token"),
                     0);
    cur()->cb->on_open(cur()->arg);
}

/* Open plus a complete handshake; sent messages cleared. */
static void ready_channel(int rate)
{
    open_channel(rate);
    deliver_output(0, DC_PT_HANDSHAKE_REQUEST, hs_port);
    deliver_output(1, DC_PT_HANDSHAKE_COMPLETE,
                   "{\"HandshakeTimeToComplete\":1000,\"CustomerMessage\":"
                   "\"\"}");
    assert_int_equal(O.ready, 1);
    sent_clear();
}

static void close_channel(void)
{
    dc_channel_free(ch);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    sent_clear();
}

static void run_for_ms(uint64_t ms)
{
    uv_update_time(&loop);
    uint64_t until = uv_now(&loop) + ms;
    while (uv_now(&loop) < until) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&loop);
    }
}

/* ---- tests ---- */

static void test_open_sends_the_token_then_answers_the_handshake(void **st)
{
    (void)st;
    open_channel(0);
    assert_int_equal(F.n_sent, 1);
    assert_false(F.sent_binary[0]); /* OpenDataChannel is a text frame */
    assert_non_null(memmem(F.sent[0], F.sent_len[0], "secret-token", 12));
    assert_non_null(memmem(F.sent[0], F.sent_len[0], DC_CLIENT_VERSION, 9));
    deliver_output(0, DC_PT_HANDSHAKE_REQUEST, hs_port);
    assert_int_equal(count_acks(0), 1); /* acked before it is processed */
    int found = 0;
    for (int i = 1; i < F.n_sent; i++) {
        struct dc_msg m = sent_msg(i);
        if (m.payload_type != DC_PT_HANDSHAKE_RESPONSE)
            continue;
        found = 1;
        assert_string_equal(m.type, DC_TYPE_INPUT);
        assert_int_equal(m.seq, 0);
        assert_non_null(
            memmem(m.payload, m.payload_len, "\"ActionStatus\":1", 16));
        assert_non_null(memmem(m.payload, m.payload_len, DC_CLIENT_VERSION,
                               strlen(DC_CLIENT_VERSION)));
    }
    assert_true(found);
    assert_int_equal(O.ready, 0);
    deliver_output(
        1, DC_PT_HANDSHAKE_COMPLETE,
        "{\"HandshakeTimeToComplete\":1,\"CustomerMessage\":\"hi\"}");
    assert_int_equal(O.ready, 1);
    assert_string_equal(O.agent_version, "3.3.987.0");
    close_channel();
}

static void test_kms_request_is_refused_and_named(void **st)
{
    (void)st;
    open_channel(0);
    deliver_output(
        0, DC_PT_HANDSHAKE_REQUEST,
        "{\"AgentVersion\":\"3.3.987.0\",\"RequestedClientActions\":[{"
        "\"ActionType\":\"SessionType\",\"ActionParameters\":{"
        "\"SessionType\":\"Port\",\"Properties\":{}}},{\"ActionType\":"
        "\"KMSEncryption\",\"ActionParameters\":{\"KMSKeyId\":\"k\"}}]}");
    int refused = 0;
    for (int i = 1; i < F.n_sent; i++) {
        struct dc_msg m = sent_msg(i);
        if (m.payload_type == DC_PT_HANDSHAKE_RESPONSE &&
            memmem(m.payload, m.payload_len, "KMSEncryption", 13) &&
            memmem(m.payload, m.payload_len, "\"ActionStatus\":3", 16))
            refused = 1;
    }
    assert_true(refused);
    assert_int_equal(O.closed, 1);
    assert_non_null(strstr(O.reason, "KMSEncryption"));
    close_channel();
}

static void test_handshake_wait_is_bounded(void **st)
{
    (void)st;
    open_channel(0);
    run_for_ms(350); /* the fixture's bound is 200 ms */
    assert_int_equal(O.closed, 1);
    assert_non_null(strstr(O.reason, "handshake"));
    close_channel();
}

static void test_data_is_chunked_numbered_and_delivered_in_order(void **st)
{
    (void)st;
    ready_channel(0);
    uint8_t buf[3000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 31);
    assert_int_equal(dc_channel_write(ch, buf, sizeof(buf)), sizeof(buf));
    assert_int_equal(F.n_sent, 3);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        struct dc_msg m = sent_msg(i);
        assert_string_equal(m.type, DC_TYPE_INPUT);
        assert_int_equal(m.seq, i + 1); /* 0 was the handshake answer */
        assert_int_equal(m.payload_type, DC_PT_OUTPUT);
        assert_true(m.payload_len <= 1024);
        assert_memory_equal(m.payload, buf + off, m.payload_len);
        off += m.payload_len;
    }
    assert_int_equal(off, sizeof(buf));
    assert_int_equal(dc_channel_unacked(ch), 4);
    for (int64_t s = 0; s <= 3; s++)
        deliver_ack(s);
    assert_int_equal(dc_channel_unacked(ch), 0);
    /* incoming: out of order, with a duplicate */
    sent_clear();
    deliver_output(3, DC_PT_OUTPUT, "cc");
    assert_int_equal(O.data_len, 0);
    deliver_output(2, DC_PT_OUTPUT, "bb");
    deliver_output(2, DC_PT_OUTPUT, "bb");
    deliver_output(4, DC_PT_OUTPUT, "dd");
    assert_int_equal(O.data_len, 6);
    assert_memory_equal(O.data, "bbccdd", 6);
    assert_int_equal(count_acks(3), 1);
    assert_int_equal(count_acks(2), 2); /* the duplicate is acked again */
    assert_int_equal(count_acks(4), 1);
    close_channel();
}

static void test_bad_digest_is_dropped_unacked(void **st)
{
    (void)st;
    ready_channel(0);
    uint8_t m[300];
    size_t n = agent_msg(m, DC_TYPE_OUTPUT, 2, DC_PT_OUTPUT, "evil", 4);
    m[120] ^= 1; /* payload no longer matches its digest */
    cur()->cb->on_message(cur()->arg, m, n, 1);
    cur()->cb->on_message(cur()->arg, m, 50, 1); /* truncated */
    assert_int_equal(O.data_len, 0);
    assert_int_equal(F.n_sent, 0);
    deliver_output(2, DC_PT_OUTPUT, "good");
    assert_int_equal(O.data_len, 4);
    close_channel();
}

static void test_full_window_is_backpressure_then_writable(void **st)
{
    (void)st;
    ready_channel(0);
    static uint8_t big[1024 * 300];
    ssize_t took = dc_channel_write(ch, big, sizeof(big));
    assert_true(took > 0 && (size_t)took < sizeof(big));
    assert_int_equal(dc_channel_room(ch), 0);
    assert_int_equal(O.writable, 0);
    int64_t last = 0;
    for (int i = 0; i < F.n_sent; i++)
        last = sent_msg(i).seq;
    deliver_ack(1); /* the window slides only from its oldest end */
    assert_int_equal(O.writable, 0);
    deliver_ack(0);
    assert_int_equal(O.writable, 1);
    assert_true(dc_channel_room(ch) >= 1024);
    assert_true(last >= 200);
    close_channel();
}

/* What the held open report waits for: the message that carried a SYN,
 * acknowledged (an ack further ahead does not count until the window's
 * oldest end moves past it). */
static void test_acked_says_when_a_message_got_through(void **st)
{
    (void)st;
    ready_channel(0);
    int64_t hs = dc_channel_last_seq(ch); /* the HandshakeResponse */
    assert_int_equal(hs, 0);
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"a", 1), 1);
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"b", 1), 1);
    int64_t syn = dc_channel_last_seq(ch);
    assert_int_equal(syn, 2);
    assert_false(dc_channel_acked(ch, syn));
    deliver_ack(2);
    assert_false(dc_channel_acked(ch, syn));
    assert_int_equal(O.acked, 0);
    deliver_ack(0);
    assert_int_equal(O.acked, 1);
    assert_false(dc_channel_acked(ch, syn));
    deliver_ack(1);
    assert_int_equal(O.acked, 2);
    assert_true(dc_channel_acked(ch, syn));
    assert_false(dc_channel_acked(ch, syn + 1));
    deliver_ack(1); /* a duplicate moves nothing */
    assert_int_equal(O.acked, 2);
    assert_true(dc_channel_srtt(ch) > 0);
    close_channel();
}

static void test_oldest_unacked_is_resent_after_the_rto(void **st)
{
    (void)st;
    ready_channel(0);
    deliver_ack(0);
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"abc", 3), 3);
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"def", 3), 3);
    assert_int_equal(count_data(1), 1);
    run_for_ms(150);
    assert_int_equal(count_data(1), 1); /* RTO starts at 200 ms */
    run_for_ms(300);
    assert_true(count_data(1) >= 2);
    assert_int_equal(count_data(2), 1); /* only the oldest is resent */
    deliver_ack(1);
    deliver_ack(2);
    int before = F.n_sent;
    run_for_ms(400);
    assert_int_equal(F.n_sent, before); /* nothing left to resend */
    struct dc_channel_stats stats;
    dc_channel_stats(ch, &stats);
    assert_true(stats.resends >= 1);
    close_channel();
}

/* Acks are selective: unacked messages below a newer acked one were lost
 * and go again in the same tick as the oldest, not one tick each. */
static void test_lost_ones_below_an_acked_one_go_together(void **st)
{
    (void)st;
    ready_channel(0);
    deliver_ack(0);
    for (int i = 1; i <= 12; i++)
        assert_int_equal(dc_channel_write(ch, (const uint8_t *)"abc", 3), 3);
    for (int i = 1; i <= 12; i++)
        if (i != 3 && i != 7 && i != 12)
            deliver_ack(i);
    run_for_ms(350);
    assert_true(count_data(3) >= 2);
    assert_true(count_data(7) >= 2);     /* lost: 8..11 were acked */
    assert_int_equal(count_data(12), 1); /* maybe only slow: nothing newer */
    assert_int_equal(count_data(5), 1);
    deliver_ack(3);
    deliver_ack(7);
    deliver_ack(12);
    int before = F.n_sent;
    run_for_ms(400);
    assert_int_equal(F.n_sent, before);
    close_channel();
}

static void test_acks_wait_for_room_and_go_first(void **st)
{
    (void)st;
    ready_channel(0);
    F.full = 1;
    deliver_output(2, DC_PT_OUTPUT, "x");
    deliver_output(3, DC_PT_OUTPUT, "y");
    assert_int_equal(F.n_sent, 0);
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"z", 1), 1);
    F.full = 0;
    cur()->cb->on_writable(cur()->arg);
    assert_int_equal(F.n_sent, 3);
    assert_string_equal(sent_msg(0).type, DC_TYPE_ACK);
    assert_string_equal(sent_msg(1).type, DC_TYPE_ACK);
    assert_string_equal(sent_msg(2).type, DC_TYPE_INPUT);
    close_channel();
}

static void test_pacing_holds_the_rate_but_never_acks(void **st)
{
    (void)st;
    ready_channel(200); /* 200 messages/s, burst 1 */
    static uint8_t buf[1024 * 100];
    assert_int_equal(dc_channel_write(ch, buf, sizeof(buf)), sizeof(buf));
    int first = F.n_sent;
    assert_true(first <= 2);
    deliver_output(2, DC_PT_OUTPUT, "x"); /* its ack goes at once */
    assert_int_equal(count_acks(2), 1);
    run_for_ms(250);
    int data = 0;
    for (int i = 0; i < F.n_sent; i++)
        data += strcmp(sent_msg(i).type, DC_TYPE_INPUT) == 0;
    /* 250 ms at 200/s is 50 messages, plus the burst */
    assert_true(data >= 40);
    assert_true(data <= 53);
    /* the counters' high mark is the channel's own: every data message
     * (and the handshake answer) went within this quarter second */
    struct dc_channel_stats stats;
    dc_channel_stats(ch, &stats);
    assert_int_equal(stats.max_per_second, data + 1);
    assert_int_equal(S.dc_max_per_second, (uint64_t)data + 1);
    close_channel();
}

static int count_type(const char *type)
{
    int n = 0;
    for (int i = 0; i < F.n_sent; i++)
        n += F.sent_binary[i] && strcmp(sent_msg(i).type, type) == 0;
    return n;
}

static void test_pause_holds_sends_and_resends_but_not_acks(void **st)
{
    (void)st;
    ready_channel(0);
    deliver_ack(0);
    uint8_t buf[3000] = {0};
    assert_int_equal(dc_channel_write(ch, buf, sizeof(buf)), sizeof(buf));
    assert_int_equal(count_type(DC_TYPE_INPUT), 3);
    deliver(DC_TYPE_PAUSE_PUB, 0, 0, "", 0);
    assert_int_equal(dc_channel_room(ch), 0);
    assert_int_equal(dc_channel_write(ch, buf, sizeof(buf)), 0);
    assert_int_equal(dc_channel_send_flag(ch, 1), 0); /* queued, held */
    run_for_ms(500);                       /* the RTO passed: still no resend */
    deliver_output(2, DC_PT_OUTPUT, "in"); /* receiving and acking go on */
    assert_int_equal(O.data_len, 2);
    assert_int_equal(count_acks(2), 1);
    assert_int_equal(count_type(DC_TYPE_INPUT), 3);
    assert_int_equal(O.writable, 0);
    deliver(DC_TYPE_START_PUB, 0, 0, "", 0);
    assert_int_equal(O.writable, 1);
    assert_int_equal(count_type(DC_TYPE_INPUT), 4); /* the flag */
    assert_true(dc_channel_room(ch) > 0);
    run_for_ms(300);
    assert_true(count_data(1) >= 2); /* the overdue resend went */
    struct dc_channel_stats stats;
    dc_channel_stats(ch, &stats);
    assert_int_equal(stats.pauses, 1);
    close_channel();
}

static void test_a_loss_of_2000_recovers_with_one_resend(void **st)
{
    (void)st;
    ready_channel(0);
    /* seq 2 was lost; 2,500 later ones arrive and are all kept and acked */
    for (int64_t seq = 3; seq <= 2502; seq++)
        deliver_output(seq, DC_PT_OUTPUT, "x");
    assert_int_equal(O.data_len, 0);
    assert_int_equal(count_type(DC_TYPE_ACK), 2500);
    deliver_output(2 + 10000, DC_PT_OUTPUT, "y"); /* beyond the buffer */
    assert_int_equal(count_type(DC_TYPE_ACK), 2500);
    deliver_output(2, DC_PT_OUTPUT, "x"); /* the one resend */
    assert_int_equal(O.data_len, 2501);
    sent_clear();
    deliver_output(2503, DC_PT_OUTPUT, "z");
    assert_int_equal(O.data_len, 2502);
    assert_int_equal(count_acks(2503), 1);
    close_channel();
}

static void test_flags_and_channel_closed_reach_the_owner(void **st)
{
    (void)st;
    ready_channel(0);
    uint8_t f[4] = {0, 0, 0, DC_FLAG_CONNECT_TO_PORT_ERROR};
    deliver(DC_TYPE_OUTPUT, 2, DC_PT_FLAG, f, 4);
    assert_int_equal(O.flags[DC_FLAG_CONNECT_TO_PORT_ERROR], 1);
    assert_int_equal(dc_channel_send_flag(ch, DC_FLAG_TERMINATE_SESSION), 0);
    struct dc_msg m = sent_msg(F.n_sent - 1);
    assert_int_equal(m.payload_type, DC_PT_FLAG);
    assert_int_equal(m.payload_len, 4);
    assert_int_equal(m.payload[3], DC_FLAG_TERMINATE_SESSION);
    const char *closed =
        "{\"Output\":\"Session timed out\",\"SessionId\":\"s-1\"}";
    deliver(DC_TYPE_CLOSED, 0, 0, closed, strlen(closed));
    assert_int_equal(O.closed, 1);
    assert_non_null(strstr(O.reason, "Session timed out"));
    close_channel();
}

static void test_resume_replays_unacked_with_the_same_numbers(void **st)
{
    (void)st;
    ready_channel(0);
    deliver_ack(0);
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"one", 3), 3);
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"two", 3), 3);
    deliver_ack(1);
    cur()->cb->on_close(cur()->arg, "the network dropped");
    assert_int_equal(O.lost, 1);
    /* writes while the socket is away are kept */
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"three", 5), 5);
    sent_clear();
    assert_int_equal(
        dc_channel_connect(ch, "wss://mgs.example/v1/x", NULL, 0, "new-token"),
        0);
    cur()->cb->on_open(cur()->arg);
    assert_false(F.sent_binary[0]);
    assert_non_null(memmem(F.sent[0], F.sent_len[0], "new-token", 9));
    assert_int_equal(count_data(1), 0); /* acked before the drop */
    assert_int_equal(count_data(2), 1);
    assert_int_equal(count_data(3), 1);
    assert_int_equal(O.ready, 1); /* no second on_ready */
    close_channel();
}

static void test_acks_handed_to_a_closed_socket_go_again(void **st)
{
    (void)st;
    ready_channel(0);
    for (int64_t seq = 2; seq <= 6; seq++)
        deliver_output(seq, DC_PT_OUTPUT, "x");
    assert_int_equal(count_acks(4), 1);
    /* The socket closes with those acks perhaps still in its queue. */
    cur()->cb->on_close(cur()->arg, "Bye");
    deliver_output(7, DC_PT_OUTPUT, "x"); /* read before the close */
    sent_clear();
    assert_int_equal(
        dc_channel_connect(ch, "wss://mgs.example/v1/x", NULL, 0, "new-token"),
        0);
    cur()->cb->on_open(cur()->arg);
    /* Each again on the new socket (the agent resends only its oldest
     * unacked message per 100 ms: a lost ack costs a tick), in order. */
    for (int64_t seq = 2; seq <= 7; seq++)
        assert_int_equal(count_acks(seq), 1);
    assert_int_equal(count_acks(1), 1); /* the handshake's, handed too */
    close_channel();
}

static void test_a_short_hold_leaves_the_socket_read(void **st)
{
    (void)st;
    ready_channel(0);
    dc_channel_pause_rx(ch, 1);
    /* The owner takes nothing; the socket is still read and acked. */
    int64_t seq = 2;
    for (; seq < 2 + 1000; seq++)
        deliver_output(seq, DC_PT_OUTPUT, "x");
    assert_int_equal(O.data_len, 0);
    assert_false(cur()->paused);
    assert_int_equal(count_type(DC_TYPE_ACK), 1000);
    deliver_ack(0); /* our sends keep hearing back */
    /* A longer stall: the socket pauses once the hold is full. */
    for (; seq < 2 + 1100; seq++)
        deliver_output(seq, DC_PT_OUTPUT, "x");
    assert_true(cur()->paused);
    dc_channel_pause_rx(ch, 0);
    assert_false(cur()->paused);
    run_for_ms(5);
    assert_int_equal(O.data_len, 1100);
    defer_shutdown();
    close_channel();
}

static void test_data_waits_in_the_ring_not_the_socket_queue(void **st)
{
    (void)st;
    ready_channel(0);
    deliver_ack(0);
    sent_clear();
    F.backlog = 1000; /* the socket blocked with its queue full */
    assert_int_equal(dc_channel_write(ch, (const uint8_t *)"one", 3), 3);
    assert_int_equal(count_data(1), 0);
    deliver_output(2, DC_PT_OUTPUT, "x");
    assert_int_equal(count_acks(2), 1); /* acks never wait */
    F.backlog = 0;
    cur()->cb->on_writable(cur()->arg);
    assert_int_equal(count_data(1), 1);
    close_channel();
}

static void test_acks_behind_a_full_socket_stop_reading_not_get_lost(void **st)
{
    (void)st;
    ready_channel(0);
    F.full = 1; /* the socket takes nothing */
    int64_t seq = 2;
    while (!cur()->paused && seq < 2 + 3000)
        deliver_output(seq++, DC_PT_OUTPUT, "x");
    assert_true(cur()->paused);
    assert_int_equal(seq - 2, DC_ACKQ_HOLD);
    /* What the socket had read already still gets its ack. */
    for (int i = 0; i < 100; i++)
        deliver_output(seq++, DC_PT_OUTPUT, "x");
    F.full = 0;
    cur()->cb->on_writable(cur()->arg);
    assert_false(cur()->paused);
    for (int64_t s = 2; s < seq; s++)
        assert_int_equal(count_acks(s), 1);
    close_channel();
}

static void done_cb(void *arg)
{
    (*(int *)arg)++;
}

static void test_free_after_flush_waits_for_the_last_ack(void **st)
{
    (void)st;
    ready_channel(0);
    deliver_ack(0);
    assert_int_equal(dc_channel_send_flag(ch, DC_FLAG_TERMINATE_SESSION), 0);
    int done = 0;
    dc_channel_free_after_flush(ch, done_cb, &done);
    assert_int_equal(done, 0);
    assert_false(cur()->closed);
    deliver_output(2, DC_PT_OUTPUT, "ignored");
    assert_int_equal(O.data_len, 0); /* the owner is gone: silent */
    deliver_ack(1);
    assert_int_equal(done, 1);
    assert_true(cur()->closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    sent_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_sends_the_token_then_answers_the_handshake),
        cmocka_unit_test(test_kms_request_is_refused_and_named),
        cmocka_unit_test(test_handshake_wait_is_bounded),
        cmocka_unit_test(test_data_is_chunked_numbered_and_delivered_in_order),
        cmocka_unit_test(test_bad_digest_is_dropped_unacked),
        cmocka_unit_test(test_full_window_is_backpressure_then_writable),
        cmocka_unit_test(test_acked_says_when_a_message_got_through),
        cmocka_unit_test(test_oldest_unacked_is_resent_after_the_rto),
        cmocka_unit_test(test_lost_ones_below_an_acked_one_go_together),
        cmocka_unit_test(test_acks_wait_for_room_and_go_first),
        cmocka_unit_test(test_pacing_holds_the_rate_but_never_acks),
        cmocka_unit_test(test_pause_holds_sends_and_resends_but_not_acks),
        cmocka_unit_test(test_a_loss_of_2000_recovers_with_one_resend),
        cmocka_unit_test(test_flags_and_channel_closed_reach_the_owner),
        cmocka_unit_test(test_resume_replays_unacked_with_the_same_numbers),
        cmocka_unit_test(test_free_after_flush_waits_for_the_last_ack),
        cmocka_unit_test(test_acks_handed_to_a_closed_socket_go_again),
        cmocka_unit_test(test_a_short_hold_leaves_the_socket_read),
        cmocka_unit_test(test_data_waits_in_the_ring_not_the_socket_queue),
        cmocka_unit_test(
            test_acks_behind_a_full_socket_stop_reading_not_get_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
