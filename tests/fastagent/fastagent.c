/*
 * fastagent.c - a fast stand-in for MGS + the SSM Agent's Port plugin, for
 * benchmarks: the Python fake (tests/fake) tops out near 15 MB/s, so the
 * gateway would never be the side that saturates.
 *
 * Written from the reference (ssm-data-channel.md), independently of the
 * gateway's code: its own WebSocket server framing, message codec and
 * smux server, so a misunderstanding in the gateway cannot pass here.
 *
 * One thread per WebSocket session, blocking TLS and a poll() loop over
 * the TLS socket and the destination sockets. Like the real service it
 * sends one TLS record per message, but it collects the records of one
 * loop pass in a memory BIO and writes them with one syscall, so the
 * agent side stays cheap. It assumes a lossless loopback link: it
 * acknowledges, reorders and deduplicates what it receives, but never
 * retransmits (the gateway never loses a message it was sent).
 *
 * Session parameters come from the StreamUrl query string, which the
 * Python fake fills in when started with --external-agent:
 *   fa-session-type  (HandshakeRequest SessionType, default Port)
 *   fa-port-type     ("" or LocalPortForwarding)
 *   fa-dest          (127.0.0.1:PORT, the destination to dial)
 *   fa-agent-version (default 3.3.987.0; <= 3.0.196.0 selects basic mode)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN      116
#define MSG_OVERHEAD 120
#define RX_CAP       (1 << 20) /* one WebSocket message at most */
#define REORDER      1024
#define WINDOW       4096      /* unacked messages before dest reads stop */
#define DEST_HIGH    (1 << 20) /* pending bytes to a destination: stop rx */
#define MAX_STREAMS  256
#define PT_OUTPUT    1
#define PT_HS_REQ    5
#define PT_HS_RESP   6
#define PT_HS_DONE   7
#define PT_FLAG      10

static int opt_pace_ms, opt_payload = 1024;
static SSL_CTX *ssl_ctx;
static atomic_ullong st_sessions, st_msgs_in, st_msgs_out, st_bytes_in,
    st_bytes_out;

/* ---- small helpers ---- */

struct bytes {
    uint8_t *p;
    size_t len, cap;
};

static int bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void bytes_drop(struct bytes *b, size_t n)
{
    if (n == 0)
        return;
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* -1, 0, 1 on dotted numeric versions. */
static int version_cmp(const char *a, const char *b)
{
    while (*a || *b) {
        long x = strtol(a, (char **)&a, 10), y = strtol(b, (char **)&b, 10);
        if (x != y)
            return x < y ? -1 : 1;
        if (*a == '.')
            a++;
        if (*b == '.')
            b++;
        if (!*a && !*b)
            break;
    }
    return 0;
}

/* ---- one session ---- */

struct stream {
    uint32_t sid;
    int fd; /* -1: closed */
    int fin_sent, rd_eof;
    struct bytes out; /* to the destination */
};

struct session {
    int fd;
    SSL *ssl;
    BIO *wmem; /* records of this pass, written in one go */
    EVP_MD_CTX *md;
    char id[64];
    char session_type[32], port_type[32], dest[64], agent_version[32];
    int mux, basic, ready, ending;
    /* WebSocket receive */
    uint8_t *rx;
    size_t rx_len;
    struct bytes frag; /* a fragmented message */
    int frag_op;
    /* data channel */
    int64_t out_seq, in_expected, acked_through;
    uint64_t unacked;
    uint8_t *reorder[REORDER];
    size_t reorder_len[REORDER];
    int64_t reorder_seq[REORDER];
    uint8_t reorder_acked[REORDER];
    uint64_t id_counter;
    uint8_t id_base[16];
    uint64_t next_read_us; /* pacing: one destination read per pace */
    int rr; /* the stream read first next time: paced streams take turns */
    /* destinations: stream/basic mode uses streams[0] with sid 0 */
    struct stream streams[MAX_STREAMS];
    int n_streams;
    int need_redial; /* basic mode after DisconnectToPort */
    /* smux in */
    uint8_t smux_hdr[8];
    size_t smux_hdr_len;
    uint32_t smux_left, smux_sid;
    int smux_cmd;
    /* smux out: chunked into payload-size messages like the real agent */
    struct bytes smux_out;
};

static void say(struct session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fastagent: %s: ", s ? s->id : "-");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Reads the records out (BIO_reset would zero the whole buffer, as big as
 * the largest burst ever, on every flush). */
static int flush_wmem(struct session *s)
{
    uint8_t buf[64 * 1024];
    int n;
    while ((n = BIO_read(s->wmem, buf, sizeof(buf))) > 0) {
        for (int off = 0; off < n;) {
            ssize_t k = send(s->fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (k > 0)
                off += (int)k;
            else if (k == 0 || errno != EINTR)
                return -1;
        }
    }
    return 0;
}

/* SHA-256 with the session's context: the one-shot SHA256() fetches the
 * algorithm and allocates a context on every call. */
static void sha256(struct session *s, const uint8_t *p, size_t n,
                   uint8_t out[32])
{
    if (s->md == NULL && (s->md = EVP_MD_CTX_new()) == NULL) {
        SHA256(p, n, out);
        return;
    }
    if (EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(s->md, p, n) != 1 ||
        EVP_DigestFinal_ex(s->md, out, NULL) != 1)
        SHA256(p, n, out);
}

/* One WebSocket frame from the server: never masked. */
static int ws_send(struct session *s, int opcode, const uint8_t *p, size_t n)
{
    uint8_t stackbuf[MSG_OVERHEAD + 2048 + 10];
    uint8_t *f = n + 10 <= sizeof(stackbuf) ? stackbuf : malloc(n + 10);
    if (f == NULL)
        return -1;
    size_t h = 2;
    f[0] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        f[1] = (uint8_t)n;
    } else if (n < 65536) {
        f[1] = 126;
        f[2] = (uint8_t)(n >> 8);
        f[3] = (uint8_t)n;
        h = 4;
    } else {
        f[1] = 127;
        put64(f + 2, n);
        h = 10;
    }
    memcpy(f + h, p, n);
    int rc = SSL_write(s->ssl, f, (int)(h + n)) == (int)(h + n) ? 0 : -1;
    if (f != stackbuf)
        free(f);
    return rc;
}

static void next_id(struct session *s, uint8_t id[16])
{
    memcpy(id, s->id_base, 16);
    uint64_t c = ++s->id_counter;
    for (int i = 15; i >= 8 && c; i--, c >>= 8)
        id[i] ^= (uint8_t)c;
}

/* An agent message: header fields as the reference lays them out. */
static int send_msg(struct session *s, const char *type, int64_t seq,
                    uint64_t flags, uint32_t ptype, const uint8_t *p, size_t n)
{
    uint8_t stackbuf[MSG_OVERHEAD + 2048];
    uint8_t *m = MSG_OVERHEAD + n <= sizeof(stackbuf)
                     ? stackbuf
                     : malloc(MSG_OVERHEAD + n);
    if (m == NULL)
        return -1;
    uint8_t id[16];
    next_id(s, id);
    put32(m, HDR_LEN);
    memset(m + 4, ' ', 32);
    memcpy(m + 4, type, strlen(type));
    put32(m + 36, 1);
    put64(m + 40, now_ms());
    put64(m + 48, (uint64_t)seq);
    put64(m + 56, flags);
    memcpy(m + 64, id + 8, 8); /* UUID halves swapped on the wire */
    memcpy(m + 72, id, 8);
    sha256(s, p, n, m + 80);
    put32(m + 112, ptype);
    put32(m + 116, (uint32_t)n);
    memcpy(m + MSG_OVERHEAD, p, n);
    int rc = ws_send(s, 2, m, MSG_OVERHEAD + n);
    if (m != stackbuf)
        free(m);
    atomic_fetch_add(&st_msgs_out, 1);
    return rc;
}

static int send_stream(struct session *s, uint32_t ptype, const void *p,
                       size_t n)
{
    int64_t seq = s->out_seq++;
    s->unacked++;
    if (ptype == PT_OUTPUT)
        atomic_fetch_add(&st_bytes_out, n);
    return send_msg(s, "output_stream_data", seq, seq == 0 ? 1 : 0, ptype, p,
                    n);
}

static int send_ack(struct session *s, const uint8_t *wire_id, int64_t seq)
{
    char ids[40], body[256];
    uint8_t u[16];
    memcpy(u, wire_id + 8, 8);
    memcpy(u + 8, wire_id, 8);
    snprintf(ids, sizeof(ids),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
    int n = snprintf(body, sizeof(body),
                     "{\"AcknowledgedMessageType\":\"input_stream_data\","
                     "\"AcknowledgedMessageId\":\"%s\","
                     "\"AcknowledgedMessageSequenceNumber\":%lld,"
                     "\"IsSequentialMessage\":true}",
                     ids, (long long)seq);
    return send_msg(s, "acknowledge", 0, 3, 0, (const uint8_t *)body,
                    (size_t)n);
}

static int send_flag(struct session *s, uint32_t flag)
{
    uint8_t p[4];
    put32(p, flag);
    return send_stream(s, PT_FLAG, p, 4);
}

static int channel_closed(struct session *s, const char *output)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s}", "SessionId", s->id,
                          "MessageType", "channel_closed", "DestinationId",
                          "fastagent", "SchemaVersion", 1, "Output", output);
    char *j = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int rc = -1;
    if (j != NULL) {
        rc = send_msg(s, "channel_closed", 0, 0, 0, (const uint8_t *)j,
                      strlen(j));
        free(j);
    }
    s->ending = 1;
    return rc;
}

/* ---- destinations ---- */

static int dial_dest(struct session *s)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", s->dest);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(colon + 1))};
    /* Loopback only, ever. */
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        (ntohl(a.sin_addr.s_addr) >> 24) != 127)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static struct stream *stream_find(struct session *s, uint32_t sid)
{
    for (int i = 0; i < s->n_streams; i++)
        if (s->streams[i].sid == sid && s->streams[i].fd >= 0)
            return &s->streams[i];
    return NULL;
}

static struct stream *stream_add(struct session *s, uint32_t sid, int fd)
{
    for (int i = 0; i < s->n_streams; i++) {
        if (s->streams[i].fd < 0 && s->streams[i].out.len == 0) {
            free(s->streams[i].out.p);
            memset(&s->streams[i], 0, sizeof(s->streams[i]));
            s->streams[i].sid = sid;
            s->streams[i].fd = fd;
            return &s->streams[i];
        }
    }
    if (s->n_streams == MAX_STREAMS)
        return NULL;
    struct stream *st = &s->streams[s->n_streams++];
    memset(st, 0, sizeof(*st));
    st->sid = sid;
    st->fd = fd;
    return st;
}

static void stream_close(struct stream *st)
{
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    st->out.len = 0;
}

static void smux_emit(struct session *s, int cmd, uint32_t sid,
                      const uint8_t *p, size_t n)
{
    uint8_t h[8] = {1,
                    (uint8_t)cmd,
                    (uint8_t)n,
                    (uint8_t)(n >> 8),
                    (uint8_t)sid,
                    (uint8_t)(sid >> 8),
                    (uint8_t)(sid >> 16),
                    (uint8_t)(sid >> 24)};
    bytes_add(&s->smux_out, h, 8);
    if (n > 0)
        bytes_add(&s->smux_out, p, n);
}

/* Sends the smux byte stream as payload-size messages; a short tail goes
 * only when flushing at the end of a pass. */
static int smux_flush(struct session *s, int all)
{
    size_t off = 0;
    while (s->smux_out.len - off >= (size_t)opt_payload ||
           (all && off < s->smux_out.len)) {
        size_t n = s->smux_out.len - off;
        if (n > (size_t)opt_payload)
            n = (size_t)opt_payload;
        if (send_stream(s, PT_OUTPUT, s->smux_out.p + off, n) != 0)
            return -1;
        off += n;
    }
    bytes_drop(&s->smux_out, off);
    return 0;
}

static void smux_input(struct session *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (s->smux_left > 0) {
            size_t k = n < s->smux_left ? n : s->smux_left;
            struct stream *st = stream_find(s, s->smux_sid);
            if (s->smux_cmd == 2 && st != NULL)
                bytes_add(&st->out, p, k);
            s->smux_left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = 8 - s->smux_hdr_len;
        if (k > n)
            k = n;
        memcpy(s->smux_hdr + s->smux_hdr_len, p, k);
        s->smux_hdr_len += k;
        p += k;
        n -= k;
        if (s->smux_hdr_len < 8)
            return;
        s->smux_hdr_len = 0;
        const uint8_t *h = s->smux_hdr;
        uint32_t len = (uint32_t)h[2] | (uint32_t)h[3] << 8;
        uint32_t sid = (uint32_t)h[4] | (uint32_t)h[5] << 8 |
                       (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
        if (h[0] != 1 || h[1] > 4) {
            say(s, "smux protocol error (ver %d cmd %d)", h[0], h[1]);
            channel_closed(s, "smux protocol error");
            return;
        }
        s->smux_cmd = h[1];
        s->smux_sid = sid;
        s->smux_left = h[1] == 2 || h[1] == 4 ? len : 0;
        if (h[1] == 0) { /* SYN: dial for this stream */
            int fd = dial_dest(s);
            if (fd < 0 || stream_add(s, sid, fd) == NULL) {
                if (fd >= 0)
                    close(fd);
                send_flag(s, 3); /* ConnectToPortError, then FIN */
                smux_emit(s, 1, sid, NULL, 0);
            }
        } else if (h[1] == 1) { /* FIN: the client is done */
            struct stream *st = stream_find(s, sid);
            if (st != NULL)
                st->fin_sent |= 2; /* write_dests shuts after the queue */
        }
    }
}

/* ---- messages from the client ---- */

static void start_plugin(struct session *s)
{
    if (s->mux) {
        s->ready = 1;
        return;
    }
    int fd = dial_dest(s);
    if (fd < 0) {
        say(s, "cannot dial %s", s->dest);
        channel_closed(s, "Unable to start port, dial failed");
        return;
    }
    stream_add(s, 0, fd);
    s->ready = 1;
}

static void on_payload(struct session *s, uint32_t ptype, const uint8_t *p,
                       size_t n)
{
    if (ptype == PT_HS_RESP) {
        json_error_t e;
        json_t *o = json_loadb((const char *)p, n, 0, &e);
        const char *cv = json_string_value(json_object_get(o, "ClientVersion"));
        json_t *pca = json_object_get(o, "ProcessedClientActions");
        int ok = cv != NULL && json_is_array(pca) && json_array_size(pca) > 0;
        for (size_t i = 0; ok && i < json_array_size(pca); i++)
            ok = json_integer_value(json_object_get(json_array_get(pca, i),
                                                    "ActionStatus")) == 1;
        if (!ok) {
            json_decref(o);
            say(s, "bad HandshakeResponse");
            channel_closed(s, "Handshake failed");
            return;
        }
        int port = strcmp(s->port_type, "LocalPortForwarding") == 0;
        s->mux = port && version_cmp(cv, "1.1.70") >= 0 &&
                 version_cmp(s->agent_version, "3.0.196.0") > 0;
        s->basic = port && !s->mux;
        json_decref(o);
        const char *done = "{\"HandshakeTimeToComplete\":1000000,"
                           "\"CustomerMessage\":\"\"}";
        send_stream(s, PT_HS_DONE, done, strlen(done));
        start_plugin(s);
        return;
    }
    if (ptype == PT_FLAG && n == 4) {
        uint32_t flag = get32(p);
        if (flag == 2) {
            channel_closed(s, "Session terminated by the client.");
        } else if (flag == 1 && s->basic && s->n_streams > 0) {
            stream_close(&s->streams[0]); /* redial on the next data */
            s->need_redial = 1;
        }
        return;
    }
    if (ptype != PT_OUTPUT || !s->ready)
        return;
    atomic_fetch_add(&st_bytes_in, n);
    if (s->mux) {
        smux_input(s, p, n);
        return;
    }
    if (s->need_redial) {
        int fd = dial_dest(s);
        if (fd < 0) {
            channel_closed(s, "Unable to redial the port");
            return;
        }
        s->n_streams = 0;
        stream_add(s, 0, fd);
        s->need_redial = 0;
    }
    if (s->n_streams > 0 && s->streams[0].fd >= 0)
        bytes_add(&s->streams[0].out, p, n);
}

static size_t dest_backlog(struct session *s);

/* Processes stored messages that are next in order, while the
 * destinations keep up. */
static int drain_held(struct session *s)
{
    while (!s->ending && dest_backlog(s) < DEST_HIGH) {
        int i = (int)(s->in_expected % REORDER);
        if (s->reorder_seq[i] != s->in_expected || s->reorder[i] == NULL)
            break;
        uint8_t *f = s->reorder[i];
        s->reorder[i] = NULL;
        s->reorder_seq[i] = -1;
        if (!s->reorder_acked[i] && send_ack(s, f + 64, s->in_expected) != 0) {
            free(f);
            return -1;
        }
        s->in_expected++;
        on_payload(s, get32(f + 112), f + MSG_OVERHEAD,
                   s->reorder_len[i] - MSG_OVERHEAD);
        free(f);
    }
    return 0;
}

/* One data-channel message (a binary WebSocket message). */
static int on_message(struct session *s, const uint8_t *m, size_t n)
{
    if (n < MSG_OVERHEAD || get32(m) != HDR_LEN ||
        get32(m + 116) != n - MSG_OVERHEAD) {
        say(s, "malformed message of %zu bytes", n);
        return -1;
    }
    uint8_t digest[32];
    sha256(s, m + MSG_OVERHEAD, n - MSG_OVERHEAD, digest);
    if (memcmp(digest, m + 80, 32) != 0) {
        say(s, "payload digest mismatch");
        return -1;
    }
    char type[33];
    memcpy(type, m + 4, 32);
    type[32] = '\0';
    for (int i = 31; i >= 0 && (type[i] == ' ' || type[i] == '\0'); i--)
        type[i] = '\0';
    int64_t seq = (int64_t)get64(m + 48);
    atomic_fetch_add(&st_msgs_in, 1);
    if (strcmp(type, "acknowledge") == 0) {
        json_error_t e;
        json_t *o =
            json_loadb((const char *)m + MSG_OVERHEAD, n - MSG_OVERHEAD, 0, &e);
        if (json_is_integer(
                json_object_get(o, "AcknowledgedMessageSequenceNumber")) &&
            s->unacked > 0)
            s->unacked--;
        json_decref(o);
        return 0;
    }
    if (strcmp(type, "input_stream_data") != 0)
        return 0;
    if (seq < s->in_expected)
        return send_ack(s, m + 64, seq); /* a duplicate: our ack was lost */
    /* A destination that does not keep up holds messages unacknowledged,
     * as the real agent's blocked writes do; acks keep flowing. */
    int hold = dest_backlog(s) >= DEST_HIGH;
    if (seq > s->in_expected || hold) {
        if (seq - s->in_expected >= REORDER)
            return 0;
        if (!hold && send_ack(s, m + 64, seq) != 0)
            return -1;
        int i = (int)(seq % REORDER);
        if (s->reorder_seq[i] != seq) {
            free(s->reorder[i]);
            s->reorder[i] = malloc(n);
            if (s->reorder[i] == NULL)
                return -1;
            memcpy(s->reorder[i], m, n);
            s->reorder_len[i] = n;
            s->reorder_seq[i] = seq;
            s->reorder_acked[i] = !hold;
        }
        return 0;
    }
    if (send_ack(s, m + 64, seq) != 0)
        return -1;
    s->in_expected++;
    on_payload(s, get32(m + 112), m + MSG_OVERHEAD, n - MSG_OVERHEAD);
    return drain_held(s);
}

/* Parses whole frames out of s->rx; returns -1 when the session ends. */
static int on_frames(struct session *s)
{
    size_t off = 0;
    while (s->rx_len - off >= 2) {
        uint8_t *f = s->rx + off;
        size_t avail = s->rx_len - off, h = 2;
        uint64_t len = f[1] & 0x7f;
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = get64(f + 2);
            h = 10;
        }
        if (!(f[1] & 0x80) || len > RX_CAP - 14) {
            say(s, "bad WebSocket frame (unmasked or %llu bytes)",
                (unsigned long long)len);
            return -1;
        }
        if (avail < h + 4 + len)
            break;
        uint8_t *mask = f + h, *p = f + h + 4;
        for (uint64_t i = 0; i < len; i++)
            p[i] ^= mask[i & 3];
        int op = f[0] & 0x0f, fin = f[0] & 0x80;
        off += h + 4 + len;
        if (op == 8) {
            say(s, "close frame from the client");
            return -1;
        }
        if (op == 9) {
            ws_send(s, 10, p, len);
            continue;
        }
        if (op == 10)
            continue;
        if (op != 0 && !fin)
            s->frag_op = op;
        if (op == 0 || !fin) {
            if (bytes_add(&s->frag, p, len) != 0 || s->frag.len > RX_CAP)
                return -1;
            if (!fin)
                continue;
            p = s->frag.p;
            len = s->frag.len;
        }
        if (op != 0)
            s->frag_op = op;
        int rc = 0;
        if (s->frag_op == 1) {
            /* OpenDataChannel: JSON with the token; any token is fine. */
            json_error_t e;
            json_t *o = json_loadb((const char *)p, len, 0, &e);
            if (!json_is_string(json_object_get(o, "TokenValue")) ||
                !json_is_string(json_object_get(o, "RequestId"))) {
                say(s, "bad OpenDataChannel: %.*s", (int)len, p);
                rc = -1;
            }
            json_decref(o);
            if (rc == 0 && s->out_seq == 0) {
                char hs[512];
                char props[128];
                if (s->port_type[0])
                    snprintf(props, sizeof(props),
                             "{\"portNumber\":\"0\",\"type\":\"%s\"}",
                             s->port_type);
                else
                    snprintf(props, sizeof(props), "{\"portNumber\":\"22\"}");
                int k = snprintf(
                    hs, sizeof(hs),
                    "{\"AgentVersion\":\"%s\",\"RequestedClientActions\":"
                    "[{\"ActionType\":\"SessionType\",\"ActionParameters\":"
                    "{\"SessionType\":\"%s\",\"Properties\":%s}}]}",
                    s->agent_version, s->session_type, props);
                rc = send_stream(s, PT_HS_REQ, hs, (size_t)k);
            }
        } else {
            rc = on_message(s, p, len);
        }
        s->frag.len = 0;
        if (rc != 0 || s->ending)
            return -1;
    }
    memmove(s->rx, s->rx + off, s->rx_len - off);
    s->rx_len -= off;
    return 0;
}

/* ---- the HTTP upgrade ---- */

static void query_get(const char *q, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *p = q; p && *p;
         p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=')
            continue;
        const char *v = p + kl + 1;
        size_t o = 0;
        while (*v && *v != '&' && *v != ' ' && o + 1 < len) {
            if (*v == '%' && v[1] && v[2]) {
                char hex[3] = {v[1], v[2], 0};
                out[o++] = (char)strtol(hex, NULL, 16);
                v += 3;
            } else {
                out[o++] = *v == '+' ? ' ' : *v;
                v++;
            }
        }
        out[o] = '\0';
        return;
    }
}

static int ws_accept(struct session *s)
{
    char req[8192];
    size_t n = 0;
    char *end = NULL;
    while (end == NULL) {
        if (n + 1 >= sizeof(req))
            return -1;
        int k = SSL_read(s->ssl, req + n, (int)(sizeof(req) - 1 - n));
        if (k <= 0)
            return -1;
        n += (size_t)k;
        req[n] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    size_t head = (size_t)(end + 4 - req);
    char path[4096] = "";
    if (sscanf(req, "GET %4095s HTTP/1.1", path) != 1)
        return -1;
    const char *q = strchr(path, '?');
    snprintf(s->session_type, sizeof(s->session_type), "Port");
    snprintf(s->agent_version, sizeof(s->agent_version), "3.3.987.0");
    query_get(q ? q + 1 : "", "fa-session-type", s->session_type,
              sizeof(s->session_type));
    query_get(q ? q + 1 : "", "fa-port-type", s->port_type,
              sizeof(s->port_type));
    query_get(q ? q + 1 : "", "fa-dest", s->dest, sizeof(s->dest));
    query_get(q ? q + 1 : "", "fa-agent-version", s->agent_version,
              sizeof(s->agent_version));
    const char *dc = strstr(path, "/data-channel/");
    snprintf(s->id, sizeof(s->id), "%.*s",
             (int)strcspn(dc ? dc + 14 : "?", "?"), dc ? dc + 14 : "?");
    char key[64] = "";
    for (char *line = strstr(req, "\r\n"); line && line < end;
         line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Sec-WebSocket-Key:", 18) == 0) {
            sscanf(line + 20, " %63s", key);
            break;
        }
    }
    if (!key[0] || !s->dest[0])
        return -1;
    char cat[128];
    uint8_t sha[20];
    unsigned char b64[64];
    snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    SHA1((unsigned char *)cat, strlen(cat), sha);
    EVP_EncodeBlock(b64, sha, 20);
    char resp[256];
    int k =
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 b64);
    if (SSL_write(s->ssl, resp, k) != k)
        return -1;
    memcpy(s->rx, req + head, n - head);
    s->rx_len = n - head;
    return 0;
}

/* ---- the session loop ---- */

static int read_tls(struct session *s)
{
    do {
        if (s->rx_len == RX_CAP)
            return -1;
        int k = SSL_read(s->ssl, s->rx + s->rx_len, (int)(RX_CAP - s->rx_len));
        if (k <= 0) {
            if (SSL_get_error(s->ssl, k) != SSL_ERROR_ZERO_RETURN &&
                errno != ECONNRESET && errno != 0)
                say(s, "TLS read failed (errno %d)", errno);
            return -1;
        }
        s->rx_len += (size_t)k;
    } while (SSL_pending(s->ssl) > 0);
    return on_frames(s);
}

static size_t dest_backlog(struct session *s)
{
    size_t n = 0;
    for (int i = 0; i < s->n_streams; i++)
        n += s->streams[i].out.len;
    return n;
}

/* Reads what the destinations have, as window and pacing allow. */
static int read_dests(struct session *s, struct pollfd *pfd, int *idx,
                      int polled)
{
    uint8_t buf[65536];
    /* Streams added since the poll (a SYN just now) wait for the next.
     * The first to read turns, as the agent's per-stream readers share a
     * paced session: else the first stream would take every paced read. */
    int lim = polled < s->n_streams ? polled : s->n_streams;
    for (int j = 0; j < lim; j++) {
        int i = (j + s->rr) % lim;
        struct stream *st = &s->streams[i];
        if (idx[i] < 0 || !(pfd[idx[i]].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        size_t chunk = (size_t)opt_payload - (s->mux ? 8 : 0);
        for (int reads = 0; reads < 64 && st->fd >= 0; reads++) {
            if (s->unacked >= WINDOW ||
                (opt_pace_ms > 0 && mono_us() < s->next_read_us))
                break;
            ssize_t k = read(st->fd, buf, chunk);
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (k <= 0) {
                st->rd_eof = 1;
                if (s->mux) {
                    smux_emit(s, 1, st->sid, NULL, 0);
                    stream_close(st);
                } else if (s->basic) {
                    stream_close(st); /* the agent waits for data to redial */
                    s->need_redial = 1;
                } else {
                    /* Stream mode: the session ends when the destination
                     * does, once what we sent is acknowledged. */
                    stream_close(st);
                    return 1;
                }
                break;
            }
            if (s->mux) {
                smux_emit(s, 2, st->sid, buf, (size_t)k);
                if (smux_flush(s, 0) != 0)
                    return -1;
            } else if (send_stream(s, PT_OUTPUT, buf, (size_t)k) != 0) {
                return -1;
            }
            s->rr = i + 1;
            if (opt_pace_ms > 0) {
                /* A fixed schedule, one read per pace while data keeps
                 * coming: the allowance is exactly payload / pace. */
                uint64_t now = mono_us(), pace = (uint64_t)opt_pace_ms * 1000;
                /* Oversleeping a little is caught up (up to 20 paces);
                 * after a longer pause (no data) the schedule restarts. */
                s->next_read_us = s->next_read_us + 20 * pace > now
                                      ? s->next_read_us + pace
                                      : now + pace;
            }
        }
    }
    return s->mux ? smux_flush(s, 1) : 0;
}

static void write_dests(struct session *s)
{
    for (int i = 0; i < s->n_streams; i++) {
        struct stream *st = &s->streams[i];
        while (st->fd >= 0 && st->out.len > 0) {
            ssize_t k = send(st->fd, st->out.p, st->out.len, MSG_NOSIGNAL);
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                break;
            if (k <= 0) {
                if (s->mux)
                    smux_emit(s, 1, st->sid, NULL, 0);
                stream_close(st);
                break;
            }
            bytes_drop(&st->out, (size_t)k);
        }
        /* The client's FIN closes the destination both ways, as the
         * agent's smux port plugin does (a half-close would leave a
         * destination that keeps talking taking the session's pace). */
        if (st->fd >= 0 && st->out.len == 0 && (st->fin_sent & 2)) {
            st->fin_sent &= ~2;
            smux_emit(s, 1, st->sid, NULL, 0);
            stream_close(st);
        }
    }
}

static void session_run(struct session *s)
{
    struct pollfd pfd[MAX_STREAMS + 1];
    int idx[MAX_STREAMS];
    uint64_t finish_at = 0;
    for (;;) {
        int n = 0;
        pfd[n++] = (struct pollfd){s->fd, POLLIN, 0};
        int64_t timeout_us = -1;
        for (int i = 0; i < s->n_streams; i++) {
            struct stream *st = &s->streams[i];
            idx[i] = -1;
            if (st->fd < 0)
                continue;
            short ev = st->out.len ? POLLOUT : 0;
            if (s->ready && !finish_at && s->unacked < WINDOW) {
                uint64_t now = mono_us();
                if (opt_pace_ms > 0 && now < s->next_read_us)
                    timeout_us = (int64_t)(s->next_read_us - now);
                else
                    ev |= POLLIN;
            }
            idx[i] = n;
            pfd[n++] = (struct pollfd){st->fd, ev, 0};
        }
        if (finish_at)
            timeout_us = 50000;
        if (SSL_has_pending(s->ssl))
            timeout_us = 0;
        int polled = s->n_streams;
        struct timespec ts = {(time_t)(timeout_us / 1000000),
                              (long)(timeout_us % 1000000) * 1000};
        int r = ppoll(pfd, (nfds_t)n, timeout_us < 0 ? NULL : &ts, NULL);
        if (r < 0 && errno != EINTR)
            break;
        if (r >= 0 && ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) ||
                       SSL_has_pending(s->ssl))) {
            if (read_tls(s) != 0)
                break;
        }
        write_dests(s);
        if (drain_held(s) != 0)
            break;
        int rc = read_dests(s, pfd, idx, polled);
        if (rc < 0 || flush_wmem(s) != 0)
            break;
        if (rc == 1 && !finish_at)
            finish_at = mono_ms() + 2000;
        if (finish_at && (s->unacked == 0 || mono_ms() >= finish_at)) {
            channel_closed(s, "Exiting session.");
            break;
        }
    }
    flush_wmem(s); /* a channel_closed of the last pass */
}

static void *session_thread(void *arg)
{
    struct session *s = arg;
    s->rx = malloc(RX_CAP);
    s->ssl = SSL_new(ssl_ctx);
    for (int i = 0; i < REORDER; i++)
        s->reorder_seq[i] = -1;
    RAND_bytes(s->id_base, 16);
    s->id_base[6] = (s->id_base[6] & 0x0f) | 0x40;
    s->id_base[8] = (s->id_base[8] & 0x3f) | 0x80;
    snprintf(s->id, sizeof(s->id), "?");
    if (s->rx == NULL || s->ssl == NULL)
        goto out;
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_read_ahead(s->ssl, 1);
    if (SSL_accept(s->ssl) != 1) {
        say(s, "TLS accept failed: %s",
            ERR_reason_error_string(ERR_get_error()));
        goto out;
    }
    if (ws_accept(s) != 0) {
        say(s, "bad WebSocket upgrade");
        goto out;
    }
    /* From here on, records of one pass leave in one write. */
    s->wmem = BIO_new(BIO_s_mem());
    if (s->wmem == NULL)
        goto out;
    SSL_set0_wbio(s->ssl, s->wmem);
    atomic_fetch_add(&st_sessions, 1);
    if (s->rx_len > 0 && on_frames(s) == 0)
        flush_wmem(s);
    session_run(s);
out:
    for (int i = 0; i < s->n_streams; i++) {
        stream_close(&s->streams[i]);
        free(s->streams[i].out.p);
    }
    for (int i = 0; i < REORDER; i++)
        free(s->reorder[i]);
    free(s->frag.p);
    free(s->smux_out.p);
    SSL_free(s->ssl);
    EVP_MD_CTX_free(s->md);
    close(s->fd);
    free(s->rx);
    free(s);
    return NULL;
}

/* ---- process ---- */

static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    sigwait(set, &sig);
    fprintf(stderr,
            "fastagent: stats sessions=%llu msgs_in=%llu msgs_out=%llu "
            "bytes_in=%llu bytes_out=%llu resends=0\n",
            atomic_load(&st_sessions), atomic_load(&st_msgs_in),
            atomic_load(&st_msgs_out), atomic_load(&st_bytes_in),
            atomic_load(&st_bytes_out));
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--cert") == 0)
            cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--pace-ms") == 0)
            opt_pace_ms = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--payload-size") == 0)
            opt_payload = atoi(argv[i + 1]);
        else
            break;
    }
    if (cert == NULL || key == NULL || opt_payload < 16 ||
        opt_payload > 65536) {
        fprintf(stderr, "usage: ssmgate-fastagent --cert FILE --key FILE "
                        "[--port 0] [--pace-ms 0] [--payload-size 1024]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t sig_t;
    pthread_create(&sig_t, NULL, signal_thread, &set);

    ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (ssl_ctx == NULL ||
        SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "fastagent: cannot load %s / %s\n", cert, key);
        return 1;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(lfd, 1024) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        perror("fastagent: listen");
        return 1;
    }
    fprintf(stderr, "fastagent: ws wss://127.0.0.1:%d\nfastagent: ready\n",
            ntohs(a.sin_port));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                usleep(10000);
                continue;
            }
            perror("fastagent: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct session *s = calloc(1, sizeof(*s));
        pthread_t t;
        if (s == NULL) {
            close(fd);
            continue;
        }
        s->fd = fd;
        if (pthread_create(&t, &attr, session_thread, s) != 0) {
            close(fd);
            free(s);
        }
    }
}
