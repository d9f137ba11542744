/* Unit tests for smux.c: header codec, the receive decoder fed in pieces
 * of every size, protocol errors, stopping from a callback, and the
 * control-frame ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "smux.h"

/* What the callbacks saw, as text: "P3:abc F5 ". */
static struct {
    char log[512];
    size_t len;
    int stop_after; /* stop on this event (1-based); 0 never */
    int events;
} R;

static void rec(char kind, uint32_t sid, const uint8_t *p, size_t n)
{
    R.len += (size_t)snprintf(R.log + R.len, sizeof(R.log) - R.len,
                              kind == 'P' ? "P%u:%.*s " : "F%u%.*s ",
                              (unsigned)sid, (int)n, (const char *)p);
}

static int on_psh(void *arg, uint32_t sid, const uint8_t *p, size_t n)
{
    (void)arg;
    rec('P', sid, p, n);
    return ++R.events == R.stop_after;
}

static int on_fin(void *arg, uint32_t sid)
{
    (void)arg;
    rec('F', sid, (const uint8_t *)"", 0);
    return ++R.events == R.stop_after;
}

static const struct smux_rx_cb cb = {on_psh, on_fin};

static void reset(void)
{
    memset(&R, 0, sizeof(R));
}

/* Appends one frame to out. */
static size_t frame(uint8_t *out, enum smux_cmd cmd, uint32_t sid,
                    const char *body)
{
    size_t n = body ? strlen(body) : 0;
    smux_put_hdr(out, cmd, sid, (uint16_t)n);
    if (n > 0)
        memcpy(out + SMUX_HDR_LEN, body, n);
    return SMUX_HDR_LEN + n;
}

/* SYN 3, PSH 3 "hello", NOP, PSH 5 "", UPD 3 "xyzw", PSH 5 "ab", FIN 3. */
static size_t sample(uint8_t *b)
{
    size_t n = 0;
    n += frame(b + n, SMUX_SYN, 3, NULL);
    n += frame(b + n, SMUX_PSH, 3, "hello");
    n += frame(b + n, SMUX_NOP, 0, NULL);
    n += frame(b + n, SMUX_PSH, 5, "");
    n += frame(b + n, SMUX_UPD, 3, "xyzw");
    n += frame(b + n, SMUX_PSH, 5, "ab");
    n += frame(b + n, SMUX_FIN, 3, NULL);
    return n;
}

static void test_header_round_trip(void **state)
{
    (void)state;
    static const uint32_t sids[] = {0, 3, 0x7fffffffu, 0xffffffffu};
    static const uint16_t lens[] = {0, 1, 0x1234, 0xffff};
    uint8_t h[SMUX_HDR_LEN];
    smux_put_hdr(h, SMUX_PSH, 0x04030201u, 0x0605);
    const uint8_t want[] = {1, 2, 5, 6, 1, 2, 3, 4};
    assert_memory_equal(h, want, sizeof(want));
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++) {
            uint8_t cmd;
            uint32_t sid;
            uint16_t len;
            smux_put_hdr(h, SMUX_UPD, sids[i], lens[j]);
            assert_int_equal(smux_get_hdr(h, &cmd, &sid, &len), 0);
            assert_int_equal(cmd, SMUX_UPD);
            assert_int_equal(sid, sids[i]);
            assert_int_equal(len, lens[j]);
        }
}

static const char WANT[] = "P3:hello P5:ab F3 ";

/* A fresh decoder and record, and the sample in b; returns its length. */
static size_t fresh(struct smux_rx *rx, uint8_t *b)
{
    memset(rx, 0, sizeof(*rx));
    reset();
    return sample(b);
}

static void test_one_feed(void **state)
{
    (void)state;
    uint8_t b[256];
    struct smux_rx rx;
    size_t n = fresh(&rx, b);
    assert_int_equal(smux_rx_feed(&rx, b, n, &cb, NULL), 0);
    assert_string_equal(R.log, WANT);
    assert_int_equal(rx.hdr_len, 0);
    assert_int_equal(rx.left, 0);
}

/* Split in two at every byte, then fed one byte at a time: a body may
 * arrive in pieces, so the log joins them. */
static void test_split_everywhere(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = sample(b);
    for (size_t cut = 0; cut <= n; cut++) {
        struct smux_rx rx = {0};
        reset();
        assert_int_equal(smux_rx_feed(&rx, b, cut, &cb, NULL), 0);
        assert_int_equal(smux_rx_feed(&rx, b + cut, n - cut, &cb, NULL), 0);
        /* Join body pieces of one stream: "P3:hel P3:lo " -> "P3:hello ". */
        char joined[512] = "";
        const char *p = R.log;
        char last[16] = "";
        while (*p) {
            const char *sp = strchr(p, ' ');
            const char *colon = memchr(p, ':', (size_t)(sp - p));
            if (colon && strncmp(last, p, (size_t)(colon - p + 1)) == 0) {
                joined[strlen(joined) - 1] = '\0'; /* drop the space */
                strncat(joined, colon + 1, (size_t)(sp - colon));
            } else {
                strncat(joined, p, (size_t)(sp - p + 1));
            }
            snprintf(last, sizeof(last), "%.*s",
                     colon ? (int)(colon - p + 1) : 0, p);
            p = sp + 1;
        }
        assert_string_equal(joined, WANT);
    }
    struct smux_rx rx = {0};
    reset();
    for (size_t i = 0; i < n; i++)
        assert_int_equal(smux_rx_feed(&rx, b + i, 1, &cb, NULL), 0);
    assert_string_equal(R.log, "P3:h P3:e P3:l P3:l P3:o P5:a P5:b F3 ");
}

static void test_bad_frames(void **state)
{
    (void)state;
    uint8_t h[SMUX_HDR_LEN];
    struct smux_rx rx = {0};
    reset();
    smux_put_hdr(h, SMUX_PSH, 3, 0);
    h[0] = 2; /* version */
    assert_int_equal(smux_rx_feed(&rx, h, sizeof(h), &cb, NULL), GW_EPROTO);
    memset(&rx, 0, sizeof(rx));
    smux_put_hdr(h, (enum smux_cmd)5, 3, 0); /* unknown cmd */
    assert_int_equal(smux_rx_feed(&rx, h, sizeof(h), &cb, NULL), GW_EPROTO);
    memset(&rx, 0, sizeof(rx));
    smux_put_hdr(h, (enum smux_cmd)0xff, 3, 0);
    assert_int_equal(smux_rx_feed(&rx, h, sizeof(h), &cb, NULL), GW_EPROTO);
    /* A body on a frame that has none. */
    for (int c = SMUX_SYN; c <= SMUX_NOP; c += 1) {
        if (c == SMUX_PSH)
            continue;
        memset(&rx, 0, sizeof(rx));
        smux_put_hdr(h, (enum smux_cmd)c, 3, 1);
        assert_int_equal(smux_rx_feed(&rx, h, sizeof(h), &cb, NULL), GW_EPROTO);
    }
    assert_int_equal(R.events, 0);
    /* The largest length is a body to wait for, not an error. */
    memset(&rx, 0, sizeof(rx));
    smux_put_hdr(h, SMUX_PSH, 7, 0xffff);
    assert_int_equal(smux_rx_feed(&rx, h, sizeof(h), &cb, NULL), 0);
    assert_int_equal(rx.left, 0xffff);
    assert_int_equal(rx.sid, 7);
}

static void test_stop(void **state)
{
    (void)state;
    uint8_t b[256];
    struct smux_rx rx;
    size_t n = fresh(&rx, b);
    R.stop_after = 1; /* stop on "P3:hello" */
    assert_int_equal(smux_rx_feed(&rx, b, n, &cb, NULL), SMUX_STOPPED);
    assert_string_equal(R.log, "P3:hello ");
    /* The decoder stopped between frames: the rest decodes. */
    size_t used = 2 * SMUX_HDR_LEN + 5;
    R.stop_after = 0;
    assert_int_equal(smux_rx_feed(&rx, b + used, n - used, &cb, NULL), 0);
    assert_string_equal(R.log, WANT);
    memset(&rx, 0, sizeof(rx));
    reset();
    R.stop_after = 3; /* on the FIN */
    assert_int_equal(smux_rx_feed(&rx, b, n, &cb, NULL), SMUX_STOPPED);
    assert_string_equal(R.log, WANT);
}

/* Takes the oldest queued frame: checks it is a header-only frame for
 * sid, and returns its cmd. */
static int ctrl_take(struct smux_ctrl *q, uint32_t sid)
{
    uint8_t cmd;
    uint32_t got;
    uint16_t len;
    const uint8_t *f = smux_ctrl_peek(q);
    assert_non_null(f);
    assert_int_equal(smux_get_hdr(f, &cmd, &got, &len), 0);
    assert_int_equal(got, sid);
    assert_int_equal(len, 0);
    smux_ctrl_pop(q);
    return cmd;
}

static void test_ctrl_queue(void **state)
{
    (void)state;
    struct smux_ctrl q = {0};
    uint32_t next_in = 1, next_out = 1;
    assert_null(smux_ctrl_peek(&q));
    smux_ctrl_pop(&q); /* empty: nothing happens */
    /* Fill the first ring, drain part of it, wrap, then grow while
     * wrapped: the order survives. */
    for (int i = 0; i < 64; i++)
        assert_int_equal(smux_ctrl_push(&q, SMUX_SYN, next_in++), 0);
    assert_int_equal(q.ctrl_cap, 64);
    for (int i = 0; i < 40; i++)
        assert_int_equal(ctrl_take(&q, next_out++), SMUX_SYN);
    for (int i = 0; i < 40; i++) /* 24 + 40 = 64: full, wrapped */
        assert_int_equal(smux_ctrl_push(&q, SMUX_FIN, next_in++), 0);
    assert_int_equal(q.ctrl_cap, 64);
    assert_int_equal(q.ctrl_len, 64);
    assert_int_equal(smux_ctrl_push(&q, SMUX_NOP, next_in++), 0);
    assert_int_equal(q.ctrl_cap, 128);
    while (smux_ctrl_peek(&q) != NULL) {
        int want = next_out <= 64    ? SMUX_SYN
                   : next_out <= 104 ? SMUX_FIN
                                     : SMUX_NOP;
        assert_int_equal(ctrl_take(&q, next_out++), want);
    }
    assert_int_equal(next_out, next_in);
    smux_ctrl_free(&q);
    assert_null(q.ctrl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_one_feed),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_ctrl_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
