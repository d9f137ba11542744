/*
 * Unit tests for agent.c: the pure parser and reply builder (known-answer
 * frames), the socket server on a real uv loop with hostile and partial
 * clients, and real OpenSSH clients against it: ssh-add -L, ssh-keygen
 * -Y sign/verify, and a login to a loopback sshd with no key file.
 *
 * The loop (and the agent) runs in the main thread; each client scenario
 * runs in a second thread with blocking sockets or child processes and
 * wakes the loop through a uv_async when it is done.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <uv.h>

#include "agent.h"
#include "buf.h"
#include "common.h"
#include "key.h"
#include "rundir.h"
#include "testutil.h"

static const char SEED_HEX[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char IDS_HEX[] =
    "000000470c00000001000000330000000b7373682d6564323535313900000020d75a98"
    "0182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a0000000773736d"
    "67617465";
static const char SIGN_HEX[] =
    "000000580e000000530000000b7373682d6564323535313900000040e5564300c360ac"
    "729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e"
    "39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
#define LINE                                                                   \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8C" \
    "Gmj3B1Ea"

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    CHECK(n <= cap);
    for (size_t i = 0; i < n; i++)
        CHECK(sscanf(hex + 2 * i, "%2hhx", &out[i]) == 1);
    return n;
}

static struct key *vector_key(void)
{
    uint8_t seed[KEY_SEED_LEN];
    struct key *k = NULL;
    unhex(SEED_HEX, seed, sizeof(seed));
    CHECK(key_from_seed(seed, &k) == 0);
    return k;
}

/* Frame builders for requests. */
static size_t frame_identities(uint8_t *out)
{
    memcpy(out, "\0\0\0\1\x0b", 5);
    return 5;
}

static size_t frame_sign(uint8_t *out, size_t cap, const uint8_t *blob,
                         size_t bloblen, const void *data, size_t datalen,
                         uint32_t flags)
{
    struct buf b;
    buf_wrap(&b, out, cap);
    CHECK(buf_put_u32(&b, 0) == 0);
    CHECK(buf_put_u8(&b, AGENTC_SIGN_REQUEST) == 0);
    CHECK(buf_put_string(&b, blob, bloblen) == 0);
    CHECK(buf_put_string(&b, data, datalen) == 0);
    CHECK(buf_put_u32(&b, flags) == 0);
    buf_store_u32(out, (uint32_t)(buf_len(&b) - 4));
    return buf_len(&b);
}

/* What ssh sends first (contents shortened: we never read them). */
static size_t frame_session_bind(uint8_t *out, size_t cap)
{
    struct buf b;
    buf_wrap(&b, out, cap);
    CHECK(buf_put_u32(&b, 0) == 0);
    CHECK(buf_put_u8(&b, AGENTC_EXTENSION) == 0);
    CHECK(buf_put_string(&b, "session-bind@openssh.com", 24) == 0);
    CHECK(buf_put_string(&b, "hostkey", 7) == 0);
    CHECK(buf_put_string(&b, "sessid", 6) == 0);
    CHECK(buf_put_string(&b, "sig", 3) == 0);
    CHECK(buf_put_u8(&b, 0) == 0);
    buf_store_u32(out, (uint32_t)(buf_len(&b) - 4));
    return buf_len(&b);
}

/* ---- parser ---- */

static void test_parse_good(void **state)
{
    uint8_t f[512];
    struct agent_request req;
    size_t used = 0, need = 0;
    struct key *k = vector_key();

    size_t n = frame_identities(f);
    assert_int_equal(agent_parse_request(f, n, &req, &used, &need), 0);
    assert_int_equal(req.type, AGENTC_REQUEST_IDENTITIES);
    assert_int_equal(used, 5);

    n = frame_sign(f, sizeof(f), key_blob(k), KEY_BLOB_LEN, "hello", 5, 4);
    assert_int_equal(agent_parse_request(f, n, &req, &used, &need), 0);
    assert_int_equal(req.type, AGENTC_SIGN_REQUEST);
    assert_int_equal(used, n);
    assert_int_equal(req.key_blob_len, KEY_BLOB_LEN);
    assert_memory_equal(req.key_blob, key_blob(k), KEY_BLOB_LEN);
    assert_int_equal(req.data_len, 5);
    assert_memory_equal(req.data, "hello", 5);
    assert_int_equal(req.flags, 4);

    /* Two frames back to back: the first one only is consumed. */
    size_t m = frame_identities(f + n);
    assert_int_equal(agent_parse_request(f, n + m, &req, &used, &need), 0);
    assert_int_equal(used, n);

    n = frame_session_bind(f, sizeof(f));
    assert_int_equal(agent_parse_request(f, n, &req, &used, &need), 0);
    assert_int_equal(req.type, AGENTC_EXTENSION);
    assert_int_equal(req.ext_name_len, 24);
    assert_memory_equal(req.ext_name, "session-bind@openssh.com", 24);

    /* Unknown types parse: the caller answers FAILURE. */
    uint8_t lock[] = {0, 0, 0, 5, 22, 0, 0, 0, 0};
    assert_int_equal(
        agent_parse_request(lock, sizeof(lock), &req, &used, &need), 0);
    assert_int_equal(req.type, 22);
    key_free(k);
}

static void test_parse_truncated(void **state)
{
    uint8_t f[512];
    struct agent_request req;
    size_t used = 0, need = 0;
    struct key *k = vector_key();
    size_t n = frame_sign(f, sizeof(f), key_blob(k), KEY_BLOB_LEN, "x", 1, 0);

    /* Every prefix is "need more"; once the header is in, need = n. */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(agent_parse_request(f, i, &req, &used, &need),
                         GW_ENEED_MORE);
        assert_int_equal(need, i < 4 ? 0 : n);
    }
    assert_int_equal(agent_parse_request(f, n, &req, &used, NULL), 0);
    key_free(k);
}

static void test_parse_hostile(void **state)
{
    struct agent_request req;
    size_t used = 0, need = 0;
    uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 11};
    uint8_t over[8], at_cap[8], zero[] = {0, 0, 0, 0, 11};

    assert_int_equal(
        agent_parse_request(huge, sizeof(huge), &req, &used, &need),
        GW_ETOO_BIG);
    buf_store_u32(over, AGENT_MAX_MSG + 1);
    over[4] = 13;
    assert_int_equal(agent_parse_request(over, 5, &req, &used, &need),
                     GW_ETOO_BIG);
    buf_store_u32(at_cap, AGENT_MAX_MSG);
    at_cap[4] = 13;
    assert_int_equal(agent_parse_request(at_cap, 5, &req, &used, &need),
                     GW_ENEED_MORE);
    assert_int_equal(need, AGENT_MAX_MSG + 4);
    assert_int_equal(
        agent_parse_request(zero, sizeof(zero), &req, &used, &need), GW_EPROTO);

    /* SIGN_REQUEST bodies that lie about their inner lengths. */
    static const struct {
        const char *name;
        uint8_t bytes[32];
        size_t len;
    } bad[] = {
        {"no key blob", {0, 0, 0, 1, 13}, 5},
        {"blob longer than frame", {0, 0, 0, 5, 13, 0, 0, 0, 9}, 9},
        {"blob len huge", {0, 0, 0, 5, 13, 0xff, 0xff, 0xff, 0xff}, 9},
        {"no data", {0, 0, 0, 6, 13, 0, 0, 0, 1, 'k'}, 10},
        {"no flags", {0, 0, 0, 14, 13, 0, 0, 0, 1, 'k', 0, 0, 0, 1, 'd'}, 18},
        {"short flags",
         {0, 0, 0, 16, 13, 0, 0, 0, 1, 'k', 0, 0, 0, 1, 'd', 0, 0},
         20},
        {"trailing byte",
         {0, 0, 0, 19, 13, 0, 0, 0, 1, 'k', 0, 0, 0, 1, 'd', 0, 0, 0, 0, 9},
         23},
        {"extension without name", {0, 0, 0, 3, 27, 0, 0}, 7},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int rc =
            agent_parse_request(bad[i].bytes, bad[i].len, &req, &used, &need);
        if (rc != GW_EPROTO)
            fail_msg("%s: got %d", bad[i].name, rc);
    }
}

/* ---- replies ---- */

/* Parses the request frame f/n and answers it at now_ms into out (cap
 * bytes); returns the reply's length. */
static size_t reply_to(const uint8_t *f, size_t n, const struct key_ring *kr,
                       uint64_t now_ms, uint8_t *out, size_t cap)
{
    struct agent_request req;
    size_t used, outlen;
    assert_int_equal(agent_parse_request(f, n, &req, &used, NULL), 0);
    assert_int_equal(
        agent_build_reply(&req, kr, "ssmgate", now_ms, out, cap, &outlen), 0);
    return outlen;
}

static void test_reply_known_answers(void **state)
{
    struct key_ring kr;
    uint8_t f[512], out[1024], want[128];
    struct agent_request req;
    size_t used, outlen, n;

    assert_int_equal(key_ring_init_with(&kr, vector_key(), "ssmgate", 1000), 0);
    n = frame_identities(f);
    assert_int_equal(reply_to(f, n, &kr, 0, out, sizeof(out)), 75);
    assert_int_equal(unhex(IDS_HEX, want, sizeof(want)), 75);
    assert_memory_equal(out, want, 75);

    n = frame_sign(f, sizeof(f), key_blob(kr.current), KEY_BLOB_LEN, "", 0, 0);
    assert_int_equal(reply_to(f, n, &kr, 0, out, sizeof(out)), 92);
    assert_int_equal(unhex(SIGN_HEX, want, sizeof(want)), 92);
    assert_memory_equal(out, want, 92);

    /* RSA flags mean nothing to ed25519: the same signature. */
    n = frame_sign(f, sizeof(f), key_blob(kr.current), KEY_BLOB_LEN, "", 0,
                   0x06);
    reply_to(f, n, &kr, 0, out, sizeof(out));
    assert_memory_equal(out, want, 92);

    /* A key we do not hold, a truncated blob: FAILURE. */
    uint8_t other[KEY_BLOB_LEN];
    memcpy(other, key_blob(kr.current), KEY_BLOB_LEN);
    other[50] ^= 1;
    n = frame_sign(f, sizeof(f), other, KEY_BLOB_LEN, "x", 1, 0);
    assert_int_equal(reply_to(f, n, &kr, 0, out, sizeof(out)), 5);
    assert_memory_equal(out, "\0\0\0\1\5", 5);
    n = frame_sign(f, sizeof(f), key_blob(kr.current), 50, "x", 1, 0);
    reply_to(f, n, &kr, 0, out, sizeof(out));
    assert_memory_equal(out, "\0\0\0\1\5", 5);

    /* session-bind and everything else: FAILURE. */
    n = frame_session_bind(f, sizeof(f));
    reply_to(f, n, &kr, 0, out, sizeof(out));
    assert_memory_equal(out, "\0\0\0\1\5", 5);

    /* Too small an output buffer is an error, never an overflow. */
    n = frame_identities(f);
    assert_int_equal(agent_parse_request(f, n, &req, &used, NULL), 0);
    assert_int_equal(
        agent_build_reply(&req, &kr, "ssmgate", 0, out, 74, &outlen),
        GW_ETOO_BIG);
    key_ring_free(&kr);
}

static void test_reply_rotation(void **state)
{
    struct key_ring kr;
    uint8_t f[512], out[1024], old_blob[KEY_BLOB_LEN];
    size_t n;

    assert_int_equal(key_ring_init_with(&kr, vector_key(), "ssmgate", 1000), 0);
    memcpy(old_blob, key_blob(kr.current), KEY_BLOB_LEN);
    assert_int_equal(key_ring_rotate(&kr, 100), 0);

    /* During the grace period: both keys, the new one first. */
    n = frame_identities(f);
    assert_int_equal(reply_to(f, n, &kr, 500, out, sizeof(out)),
                     4 + 1 + 4 + 2 * (4 + 51 + 4 + 7));
    assert_int_equal(buf_load_u32(out + 5), 2);
    assert_memory_equal(out + 13, key_blob(kr.current), KEY_BLOB_LEN);
    assert_memory_equal(out + 13 + 51 + 4 + 7 + 4, old_blob, KEY_BLOB_LEN);
    n = frame_sign(f, sizeof(f), old_blob, KEY_BLOB_LEN, "", 0, 0);
    reply_to(f, n, &kr, 500, out, sizeof(out));
    assert_int_equal(out[4], AGENT_SIGN_RESPONSE);

    /* After it: the old key is gone from both answers. */
    reply_to(f, n, &kr, 1100, out, sizeof(out));
    assert_memory_equal(out, "\0\0\0\1\5", 5);
    n = frame_identities(f);
    assert_int_equal(reply_to(f, n, &kr, 1100, out, sizeof(out)), 75);
    key_ring_free(&kr);
}

/* ---- the socket server on a loop ---- */

struct env {
    char tmp[64];
    struct rundir rd;
    char sock[256];
    uv_loop_t loop;
    uv_async_t done_async;
    uv_timer_t guard;
    struct key_ring kr;
    struct agent *agent;
    void (*fn)(struct env *);
    int finished;
    int timed_out;
};

static void env_done_cb(uv_async_t *a)
{
    struct env *e = CONTAINER_OF(a, struct env, done_async);
    e->finished = 1;
}

static void env_guard_cb(uv_timer_t *t)
{
    struct env *e = CONTAINER_OF(t, struct env, guard);
    e->timed_out = 1;
}

static void *env_thread(void *arg)
{
    struct env *e = arg;
    e->fn(e);
    uv_async_send(&e->done_async);
    return NULL;
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char err[256];
    snprintf(e->tmp, sizeof(e->tmp), "/tmp/ssmgate-agent-XXXXXX");
    CHECK(mkdtemp(e->tmp) != NULL);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/run", e->tmp);
    CHECK(rundir_open(&e->rd, dir, err, sizeof(err)) == 0);
    CHECK(rundir_socket_path(&e->rd, "agent.sock", e->sock, sizeof(e->sock)) ==
          0);
    CHECK(uv_loop_init(&e->loop) == 0);
    CHECK(key_ring_init_with(&e->kr, vector_key(), "ssmgate", 60000) == 0);
    CHECK(agent_start(&e->loop, e->sock, &e->kr, "ssmgate", &e->agent) == 0);
    *state = e;
    return 0;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        fprintf(stderr, "handle type %d left open\n", (int)h->type);
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    char cmd[128];
    agent_stop(e->agent);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_walk(&e->loop, close_walk_cb, NULL);
    CHECK(uv_loop_close(&e->loop) == 0);
    key_ring_free(&e->kr);
    rundir_close(&e->rd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->tmp);
    CHECK(system(cmd) == 0);
    free(e);
    return 0;
}

/* Runs fn in a thread while the loop serves the agent. */
static void env_run(struct env *e, void (*fn)(struct env *), int timeout_ms)
{
    pthread_t th;
    e->fn = fn;
    e->finished = 0;
    e->timed_out = 0;
    CHECK(uv_async_init(&e->loop, &e->done_async, env_done_cb) == 0);
    CHECK(uv_timer_init(&e->loop, &e->guard) == 0);
    uv_timer_start(&e->guard, env_guard_cb, (uint64_t)timeout_ms, 0);
    CHECK(pthread_create(&th, NULL, env_thread, e) == 0);
    while (!e->finished && !e->timed_out)
        uv_run(&e->loop, UV_RUN_ONCE);
    if (e->timed_out)
        fail_msg("client scenario timed out");
    pthread_join(th, NULL);
    uv_close((uv_handle_t *)&e->done_async, NULL);
    uv_close((uv_handle_t *)&e->guard, NULL);
    /* Let the agent see the clients' EOFs. */
    for (int i = 0; i < 20 && agent_client_count(e->agent) > 0; i++)
        uv_run(&e->loop, UV_RUN_NOWAIT), usleep(5000);
    uv_run(&e->loop, UV_RUN_NOWAIT);
}

/* Blocking client helpers (used in the scenario thread). */
static int cl_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void cl_send(int fd, const void *p, size_t n)
{
    CHECK(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n);
}

/* Reads one reply frame into out; returns its size, or 0 on EOF. */
static size_t cl_recv_frame(int fd, uint8_t *out, size_t cap)
{
    size_t got = 0, want = 4;
    while (got < want) {
        ssize_t n = recv(fd, out + got, want - got, 0);
        if (n <= 0)
            return 0;
        got += (size_t)n;
        if (got == 4) {
            want = 4 + buf_load_u32(out);
            CHECK(want <= cap);
        }
    }
    return got;
}

static int cl_is_closed(int fd)
{
    uint8_t b;
    return recv(fd, &b, 1, 0) == 0;
}

static struct env *g_env; /* scenario results are checked in the thread */
static int g_failures;
#define SCEN_CHECK(x)                                                          \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "%s:%d: scenario check failed: %s\n", __FILE__,    \
                    __LINE__, #x);                                             \
            g_failures++;                                                      \
        }                                                                      \
    } while (0)

/* What ssh does: session-bind, identities, sign; all in one connection. */
static void scen_ssh_like(struct env *e)
{
    uint8_t f[512], r[1024], want[128];
    int fd = cl_connect(e->sock);
    size_t n = frame_session_bind(f, sizeof(f));
    cl_send(fd, f, n);
    SCEN_CHECK(cl_recv_frame(fd, r, sizeof(r)) == 5 && r[4] == AGENT_FAILURE);
    cl_send(fd, f, frame_identities(f));
    SCEN_CHECK(cl_recv_frame(fd, r, sizeof(r)) == 75);
    unhex(IDS_HEX, want, sizeof(want));
    SCEN_CHECK(memcmp(r, want, 75) == 0);
    n = frame_sign(f, sizeof(f), key_blob(e->kr.current), KEY_BLOB_LEN, "", 0,
                   0);
    cl_send(fd, f, n);
    SCEN_CHECK(cl_recv_frame(fd, r, sizeof(r)) == 92);
    unhex(SIGN_HEX, want, sizeof(want));
    SCEN_CHECK(memcmp(r, want, 92) == 0);
    close(fd);
}

/* Byte-at-a-time and many requests in one write. */
static void scen_partial_and_pipelined(struct env *e)
{
    uint8_t f[2048], r[1024];
    int fd = cl_connect(e->sock);
    size_t n = frame_sign(f, sizeof(f), key_blob(e->kr.current), KEY_BLOB_LEN,
                          "partial", 7, 0);
    for (size_t i = 0; i < n; i++) {
        cl_send(fd, f + i, 1);
        usleep(200);
    }
    SCEN_CHECK(cl_recv_frame(fd, r, sizeof(r)) == 92 &&
               r[4] == AGENT_SIGN_RESPONSE);

    size_t total = 0;
    for (int i = 0; i < 20; i++)
        total += frame_identities(f + total);
    cl_send(fd, f, total);
    for (int i = 0; i < 20; i++)
        SCEN_CHECK(cl_recv_frame(fd, r, sizeof(r)) == 75);

    /* A big (but allowed) sign request: data of 200 KiB. */
    size_t big = 200 * 1024;
    uint8_t *bf = malloc(big + 256);
    uint8_t *data = calloc(1, big);
    n = frame_sign(bf, big + 256, key_blob(e->kr.current), KEY_BLOB_LEN, data,
                   big, 0);
    cl_send(fd, bf, n);
    SCEN_CHECK(cl_recv_frame(fd, r, sizeof(r)) == 92 &&
               r[4] == AGENT_SIGN_RESPONSE);
    free(bf);
    free(data);
    close(fd);
}

/* Hostile clients are closed; a good client beside them is unaffected. */
static void scen_hostile(struct env *e)
{
    uint8_t f[512], r[1024];
    int good = cl_connect(e->sock);
    cl_send(good, f, frame_identities(f));
    SCEN_CHECK(cl_recv_frame(good, r, sizeof(r)) == 75);

    int huge = cl_connect(e->sock);
    cl_send(huge, "\xff\xff\xff\xff\x0b", 5);
    SCEN_CHECK(cl_is_closed(huge));
    close(huge);

    int over = cl_connect(e->sock);
    uint8_t hdr[5];
    buf_store_u32(hdr, AGENT_MAX_MSG + 1);
    hdr[4] = 13;
    cl_send(over, hdr, 5);
    SCEN_CHECK(cl_is_closed(over));
    close(over);

    int zero = cl_connect(e->sock);
    cl_send(zero, "\0\0\0\0", 4);
    SCEN_CHECK(cl_is_closed(zero));
    close(zero);

    int lying = cl_connect(e->sock);
    cl_send(lying, "\0\0\0\x05\x0d\xff\xff\xff\xff", 9);
    SCEN_CHECK(cl_is_closed(lying));
    close(lying);

    /* Unknown types and a sign request for someone else's key: FAILURE,
     * and the connection stays usable. */
    int odd = cl_connect(e->sock);
    cl_send(odd, "\0\0\0\x01\x11", 5); /* ADD_IDENTITY with nothing */
    SCEN_CHECK(cl_recv_frame(odd, r, sizeof(r)) == 5 && r[4] == 5);
    cl_send(odd, "\0\0\0\x01\xc8", 5); /* type 200 */
    SCEN_CHECK(cl_recv_frame(odd, r, sizeof(r)) == 5 && r[4] == 5);
    uint8_t other[KEY_BLOB_LEN];
    memcpy(other, key_blob(e->kr.current), KEY_BLOB_LEN);
    other[40] ^= 0x80;
    cl_send(odd, f, frame_sign(f, sizeof(f), other, KEY_BLOB_LEN, "d", 1, 0));
    SCEN_CHECK(cl_recv_frame(odd, r, sizeof(r)) == 5 && r[4] == 5);
    cl_send(odd, f, frame_identities(f));
    SCEN_CHECK(cl_recv_frame(odd, r, sizeof(r)) == 75);
    close(odd);

    /* A half-sent frame then a hang-up: nothing to answer, no leak. */
    int half = cl_connect(e->sock);
    cl_send(half, "\0\0\0\x40\x0d\0\0", 7);
    close(half);

    cl_send(good, f, frame_identities(f));
    SCEN_CHECK(cl_recv_frame(good, r, sizeof(r)) == 75);
    close(good);
}

/* Many clients at once, interleaved. */
static void scen_many(struct env *e)
{
    enum { N = 50 };
    int fds[N];
    uint8_t f[512], r[1024];
    size_t n = frame_sign(f, sizeof(f), key_blob(e->kr.current), KEY_BLOB_LEN,
                          "many", 4, 0);
    for (int i = 0; i < N; i++) {
        fds[i] = cl_connect(e->sock);
        cl_send(fds[i], f, 3); /* partial */
    }
    for (int i = 0; i < N; i++)
        cl_send(fds[i], f + 3, n - 3);
    for (int i = N - 1; i >= 0; i--) {
        SCEN_CHECK(cl_recv_frame(fds[i], r, sizeof(r)) == 92);
        close(fds[i]);
    }
}

/* A client that never reads its replies: paused, not a memory sink. */
static void scen_no_reader(struct env *e)
{
    uint8_t f[64 * 5], r[1024];
    int fd = cl_connect(e->sock);
    int sz = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    size_t n = 0;
    for (int i = 0; i < 64; i++)
        n += frame_identities(f + n);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t sent = 0;
    for (int round = 0; round < 200000; round++) {
        ssize_t w = send(fd, f, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {fd, POLLOUT, 0};
            if (poll(&p, 1, 300) == 0)
                break; /* the agent stopped reading: good */
            continue;
        }
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    /* Sent far less than a gigabyte: backpressure held. Now drain. */
    SCEN_CHECK(sent < 100u * 1024 * 1024);
    fcntl(fd, F_SETFL, 0);
    SCEN_CHECK(cl_recv_frame(fd, r, sizeof(r)) == 75);
    close(fd);
}

/* A peer that stops in the middle of a frame is closed after the
 * timeout; one that keeps its frames whole stays. */
static void scen_slow_partial(struct env *e)
{
    uint8_t f[64], r[1024];
    int idle = cl_connect(e->sock);
    int slow = cl_connect(e->sock);
    cl_send(slow, "\0\0", 2);
    usleep(100 * 1000);
    cl_send(slow, "\0", 1);
    SCEN_CHECK(cl_is_closed(slow)); /* within the 5 s receive timeout */
    close(slow);
    cl_send(idle, f, frame_identities(f));
    SCEN_CHECK(cl_recv_frame(idle, r, sizeof(r)) == 75);
    close(idle);
}

static void run_scenario(void **state, void (*fn)(struct env *))
{
    struct env *e = *state;
    g_env = e;
    g_failures = 0;
    env_run(e, fn, 30000);
    assert_int_equal(g_failures, 0);
    assert_int_equal(agent_client_count(e->agent), 0);
}

static void test_io_ssh_like(void **state)
{
    run_scenario(state, scen_ssh_like);
}
static void test_io_partial(void **state)
{
    run_scenario(state, scen_partial_and_pipelined);
}
static void test_io_hostile(void **state)
{
    run_scenario(state, scen_hostile);
}
static void test_io_many(void **state)
{
    run_scenario(state, scen_many);
}
static void test_io_no_reader(void **state)
{
    run_scenario(state, scen_no_reader);
}

static void test_io_slow_partial(void **state)
{
    struct env *e = *state;
    agent_set_partial_timeout(e->agent, 300);
    run_scenario(state, scen_slow_partial);
}

static void test_socket_mode(void **state)
{
    struct env *e = *state;
    struct stat st;
    assert_int_equal(lstat(e->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(lstat(e->rd.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

/* ---- real OpenSSH clients ---- */

static int run_cmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_cmd(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st != 0)
        fprintf(stderr, "(exit status %d) %s\n", st, cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void scen_ssh_add(struct env *e)
{
    char out[512];
    snprintf(out, sizeof(out), "%s/ssh-add.out", e->tmp);
    SCEN_CHECK(run_cmd("SSH_AUTH_SOCK=%s ssh-add -L > %s", e->sock, out) == 0);
    SCEN_CHECK(testutil_file_equals(out, LINE " ssmgate\n"));
    snprintf(out, sizeof(out), "%s/ssh-add-l.out", e->tmp);
    SCEN_CHECK(run_cmd("SSH_AUTH_SOCK=%s ssh-add -l > %s", e->sock, out) == 0);
    SCEN_CHECK(testutil_file_equals(
        out, "256 SHA256:bbXpuKG6zhzdmnxq256TlqzFBzRl2f6OOg722cYNbU8 ssmgate "
             "(ED25519)\n"));
    /* Removing or adding keys is refused, and the agent keeps going. */
    SCEN_CHECK(
        run_cmd("SSH_AUTH_SOCK=%s ssh-add -D >/dev/null 2>&1", e->sock) != 0);
    SCEN_CHECK(run_cmd("SSH_AUTH_SOCK=%s ssh-add -L >/dev/null", e->sock) == 0);
}

static void test_real_ssh_add(void **state)
{
    run_scenario(state, scen_ssh_add);
}

static void scen_keygen_sign(struct env *e)
{
    const char *t = e->tmp;
    SCEN_CHECK(run_cmd("echo '%s ssmgate' > %s/key.pub && "
                       "echo 'signed by the agent' > %s/data && "
                       "echo 'me@test %s' > %s/allowed",
                       LINE, t, t, LINE, t) == 0);
    SCEN_CHECK(run_cmd("SSH_AUTH_SOCK=%s ssh-keygen -q -Y sign -f %s/key.pub "
                       "-n file %s/data",
                       e->sock, t, t) == 0);
    SCEN_CHECK(run_cmd("ssh-keygen -q -Y verify -f %s/allowed -I me@test "
                       "-n file -s %s/data.sig < %s/data >/dev/null",
                       t, t, t) == 0);
    /* And the check can fail: other data does not verify. */
    SCEN_CHECK(run_cmd("echo tampered | ssh-keygen -q -Y verify -f "
                       "%s/allowed -I me@test -n file -s %s/data.sig "
                       ">/dev/null 2>&1",
                       t, t) != 0);
}

static void test_real_keygen_sign(void **state)
{
    run_scenario(state, scen_keygen_sign);
}

/* A loopback sshd of our own. Returns its pid; *port set. */
static pid_t sshd_start(const char *dir, const char *authorized, int *port)
{
    char cfg[512], hostkey[512], line[512];
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    int fd, pfd[2];

    /* A free port from the OS (sshd cannot report one it picked). */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &salen) == 0);
    *port = ntohs(sa.sin_port);
    close(fd);

    snprintf(hostkey, sizeof(hostkey), "%s/hostkey", dir);
    snprintf(cfg, sizeof(cfg), "%s/sshd_config", dir);
    CHECK(run_cmd("ssh-keygen -q -t ed25519 -N '' -f %s", hostkey) == 0);
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL);
    fprintf(f,
            "ListenAddress 127.0.0.1:%d\nHostKey %s\nAuthorizedKeysFile %s\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPidFile none\nLogLevel VERBOSE\n"
            "PermitRootLogin %s\n",
            *port, hostkey, authorized, geteuid() == 0 ? "yes" : "no");
    fclose(f);
    mkdir("/run/sshd", 0755); /* privilege separation dir */

    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", cfg,
              (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    /* Ready once it says it listens; its log goes on to our stderr. */
    FILE *errf = fdopen(pfd[0], "r");
    int ready = 0;
    while (fgets(line, sizeof(line), errf) != NULL) {
        fputs(line, stderr);
        if (strstr(line, "Server listening on") != NULL) {
            ready = 1;
            break;
        }
    }
    if (!ready)
        fprintf(stderr, "sshd did not start\n");
    /* Keep draining its log in the background (a child of ours). */
    if (fork() == 0) {
        while (fgets(line, sizeof(line), errf) != NULL)
            fputs(line, stderr);
        _exit(0);
    }
    fclose(errf);
    return ready ? pid : -1;
}

static void sshd_stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

static const char *user_name(void)
{
    static char name[64];
    FILE *p = popen("id -un", "r");
    CHECK(p != NULL && fgets(name, sizeof(name), p) != NULL);
    pclose(p);
    name[strcspn(name, "\n")] = '\0';
    return name;
}

#define SSH_OPTS                                                               \
    "-F /dev/null -o StrictHostKeyChecking=no -o "                             \
    "UserKnownHostsFile=/dev/null "                                            \
    "-o BatchMode=yes -o ConnectTimeout=10"

static void scen_sshd_login(struct env *e)
{
    char auth[256], keyfile[256], log[256];
    int port = 0;
    snprintf(auth, sizeof(auth), "%s/authorized_keys", e->tmp);
    snprintf(log, sizeof(log), "%s/ssh.log", e->tmp);
    SCEN_CHECK(run_cmd("echo '%s' > %s", e->kr.line, auth) == 0);
    pid_t sshd = sshd_start(e->tmp, auth, &port);
    SCEN_CHECK(sshd > 0);
    if (sshd <= 0)
        return;

    /* Through the agent, no key file anywhere. */
    SCEN_CHECK(run_cmd("ssh -v " SSH_OPTS " -o IdentityAgent=%s "
                       "-o IdentitiesOnly=no -p %d %s@127.0.0.1 true 2>%s",
                       e->sock, port, user_name(), log) == 0);
    /* ssh says which key worked: the agent's. */
    SCEN_CHECK(run_cmd("grep -q 'Server accepts key: ssmgate ED25519 "
                       "SHA256:bbXpuKG6zhzdmnxq256TlqzFBzRl2f6OOg722cYNbU8 "
                       "agent' %s",
                       log) == 0);
    /* With the agent off and no key, the same login fails (the test can
     * fail). */
    SCEN_CHECK(run_cmd("ssh " SSH_OPTS " -o IdentityAgent=none "
                       "-o IdentityFile=/nonexistent -p %d %s@127.0.0.1 "
                       "true 2>/dev/null",
                       port, user_name()) != 0);

    /* What `ssmgate ssh-config` prints: IdentitiesOnly yes with the
     * .pub in the runtime dir, the private half in the agent only. */
    char pubfile[RUNDIR_PATH_MAX + 64];
    SCEN_CHECK(rundir_write_pubkey(&e->rd, e->kr.line) == 0);
    snprintf(pubfile, sizeof(pubfile), "%s/%s", e->rd.path, RUNDIR_PUBKEY);
    SCEN_CHECK(run_cmd("ssh " SSH_OPTS " -o IdentityAgent=%s "
                       "-o IdentitiesOnly=yes -o IdentityFile=%s "
                       "-p %d %s@127.0.0.1 true",
                       e->sock, pubfile, port, user_name()) == 0);
    rundir_remove(&e->rd, RUNDIR_PUBKEY);

    /* The optional key file: -i, agent off. */
    char *text = NULL;
    size_t len = 0;
    SCEN_CHECK(key_private_file(e->kr.current, "ssmgate", 0, &text, &len) == 0);
    SCEN_CHECK(rundir_write_key(&e->rd, text, len, e->kr.line, keyfile,
                                sizeof(keyfile)) == 0);
    key_private_file_free(text, len);
    SCEN_CHECK(run_cmd("test \"$(stat -c %%a %s)\" = 600", keyfile) == 0);
    SCEN_CHECK(run_cmd("test \"$(ssh-keygen -y -f %s)\" = '%s ssmgate'",
                       keyfile, LINE) == 0);
    SCEN_CHECK(run_cmd("ssh " SSH_OPTS " -o IdentityAgent=none "
                       "-o IdentitiesOnly=yes -i %s -p %d %s@127.0.0.1 true",
                       keyfile, port, user_name()) == 0);
    rundir_remove(&e->rd, RUNDIR_KEYFILE);
    sshd_stop(sshd);
}

static void test_real_sshd_login(void **state)
{
    run_scenario(state, scen_sshd_login);
}

/* Rotation seen by real clients: logins started with the old key finish
 * during the grace period; afterwards only the new key works. */
static char g_old_line[KEY_LINE_MAX];
static int g_expect_keys;
static int g_expect_old_ok;

static void scen_rotation(struct env *e)
{
    char auth[256], out[256];
    int port = 0;
    snprintf(auth, sizeof(auth), "%s/authorized_keys", e->tmp);
    snprintf(out, sizeof(out), "%s/ssh-add.out", e->tmp);
    SCEN_CHECK(run_cmd("SSH_AUTH_SOCK=%s ssh-add -L > %s", e->sock, out) == 0);
    SCEN_CHECK(run_cmd("test $(wc -l < %s) = %d", out, g_expect_keys) == 0);
    SCEN_CHECK(run_cmd("head -1 %s | grep -qF '%s'", out, e->kr.line) == 0);

    /* Old key only on the server (a push made before the rotation). */
    SCEN_CHECK(run_cmd("echo '%s' > %s", g_old_line, auth) == 0);
    pid_t sshd = sshd_start(e->tmp, auth, &port);
    SCEN_CHECK(sshd > 0);
    int rc = run_cmd("ssh " SSH_OPTS " -o IdentityAgent=%s -p %d "
                     "%s@127.0.0.1 true 2>/dev/null",
                     e->sock, port, user_name());
    SCEN_CHECK((rc == 0) == g_expect_old_ok);
    /* New key on the server. */
    SCEN_CHECK(run_cmd("echo '%s' > %s", e->kr.line, auth) == 0);
    SCEN_CHECK(run_cmd("ssh " SSH_OPTS " -o IdentityAgent=%s -p %d "
                       "%s@127.0.0.1 true",
                       e->sock, port, user_name()) == 0);
    sshd_stop(sshd);
    unlink(auth);
    char hk[256];
    snprintf(hk, sizeof(hk), "%s/hostkey", e->tmp);
    unlink(hk);
    snprintf(hk, sizeof(hk), "%s/hostkey.pub", e->tmp);
    unlink(hk);
}

static void test_real_rotation(void **state)
{
    struct env *e = *state;
    snprintf(g_old_line, sizeof(g_old_line), "%s", e->kr.line);
    assert_int_equal(key_ring_rotate(&e->kr, uv_now(&e->loop)), 0);
    g_expect_keys = 2;
    g_expect_old_ok = 1;
    run_scenario(state, scen_rotation);

    key_ring_expire(&e->kr, UINT64_MAX);
    g_expect_keys = 1;
    g_expect_old_ok = 0;
    run_scenario(state, scen_rotation);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_truncated),
        cmocka_unit_test(test_parse_hostile),
        cmocka_unit_test(test_reply_known_answers),
        cmocka_unit_test(test_reply_rotation),
        cmocka_unit_test_setup_teardown(test_socket_mode, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_io_ssh_like, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_io_partial, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_io_hostile, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_io_many, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_io_no_reader, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_io_slow_partial, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_real_ssh_add, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_real_keygen_sign, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_real_sshd_login, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_real_rotation, env_setup,
                                        env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
