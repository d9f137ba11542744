/*
 * dc_msg.c - see dc_msg.h. The decoder trusts nothing: every offset is
 * checked against the frame length before use, and the payload bounds
 * come from HeaderLength and PayloadLength, which must agree.
 */
#include "dc_msg.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "common.h"

/*
 * SHA-256 of every payload, both ways. OpenSSL 3's one-shot SHA256()
 * fetches the algorithm (a locked lookup) and allocates a context on
 * every call; one fetched digest and one context, reused, avoid both.
 * The daemon runs one thread, so one context serves all channels.
 */
static void dc_sha256(const uint8_t *p, size_t n, uint8_t out[32])
{
    static EVP_MD *md;
    static EVP_MD_CTX *ctx;
    if (ctx == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        ctx = EVP_MD_CTX_new();
        if (md == NULL || ctx == NULL)
            abort(); /* no SHA-256: nothing can be sent or checked */
    }
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
        EVP_DigestUpdate(ctx, p, n) != 1 ||
        EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        abort();
}

int dc_msg_decode(const uint8_t *f, size_t len, struct dc_msg *m,
                  const char **why)
{
    memset(m, 0, sizeof(*m));
    if (len < DC_MSG_OVERHEAD) {
        *why = "frame shorter than a message header";
        return GW_EPROTO;
    }
    uint32_t hl = buf_load_u32(f);
    /* The type: strip NULs and spaces at both ends. */
    size_t a = 0, b = DC_MSG_TYPE_LEN;
    while (a < b && (f[4 + a] == 0 || f[4 + a] == ' '))
        a++;
    while (b > a && (f[4 + b - 1] == 0 || f[4 + b - 1] == ' '))
        b--;
    memcpy(m->type, f + 4 + a, b - a);
    m->schema_version = buf_load_u32(f + 36);
    m->created_ms = buf_load_u64(f + 40);
    m->seq = (int64_t)buf_load_u64(f + 48);
    m->flags = buf_load_u64(f + 56);
    memcpy(m->id, f + 72, 8); /* the wire holds U[8..15] then U[0..7] */
    memcpy(m->id + 8, f + 64, 8);
    m->payload_type = buf_load_u32(f + 112);
    int publication = strcmp(m->type, DC_TYPE_START_PUB) == 0 ||
                      strcmp(m->type, DC_TYPE_PAUSE_PUB) == 0;
    if (hl != DC_MSG_HEADER_LEN && !(publication && hl == 0)) {
        if (hl == 0 || (size_t)hl + 4 > len) {
            *why = "HeaderLength out of range";
            return GW_EPROTO;
        }
    }
    size_t payload_at = (hl ? hl : DC_MSG_HEADER_LEN) + 4;
    uint32_t plen = buf_load_u32(f + payload_at - 4);
    if (payload_at > len || plen != len - payload_at) {
        *why = "PayloadLength does not match the frame";
        return GW_EPROTO;
    }
    m->payload = f + payload_at;
    m->payload_len = plen;
    if (publication)
        return 0;
    if (m->type[0] == '\0') {
        *why = "empty MessageType";
        return GW_EPROTO;
    }
    if (m->created_ms == 0) {
        *why = "CreatedDate is zero";
        return GW_EPROTO;
    }
    if (plen > 0) {
        uint8_t digest[SHA256_DIGEST_LENGTH];
        dc_sha256(m->payload, plen, digest);
        if (memcmp(digest, f + 80, sizeof(digest)) != 0) {
            *why = "payload digest mismatch";
            return GW_EPROTO;
        }
    }
    return 0;
}

size_t dc_msg_encode(uint8_t *out, const char *type, int64_t seq,
                     uint64_t flags, const uint8_t id[16], uint64_t created_ms,
                     uint32_t payload_type, const uint8_t *payload,
                     uint32_t payload_len)
{
    buf_store_u32(out, DC_MSG_HEADER_LEN);
    size_t tlen = strlen(type);
    memset(out + 4, ' ', DC_MSG_TYPE_LEN);
    memcpy(out + 4, type, GW_MIN(tlen, (size_t)DC_MSG_TYPE_LEN));
    buf_store_u32(out + 36, 1);
    buf_store_u64(out + 40, created_ms);
    buf_store_u64(out + 48, (uint64_t)seq);
    buf_store_u64(out + 56, flags);
    memcpy(out + 64, id + 8, 8);
    memcpy(out + 72, id, 8);
    uint8_t *dst = out + DC_MSG_OVERHEAD;
    if (payload_len > 0 && payload != dst)
        memmove(dst, payload, payload_len);
    dc_sha256(dst, payload_len, out + 80);
    buf_store_u32(out + 112, payload_type);
    buf_store_u32(out + 116, payload_len);
    return DC_MSG_OVERHEAD + payload_len;
}

void dc_uuid_new(uint8_t id[16])
{
    if (RAND_bytes(id, 16) != 1)
        abort(); /* no randomness: nothing safe to do */
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
}

void dc_ids_init(struct dc_ids *g)
{
    dc_uuid_new(g->base);
    g->next = 0;
}

void dc_ids_next(struct dc_ids *g, uint8_t id[16])
{
    if (g->next >> 48 != 0)
        dc_ids_init(g); /* 2^48 messages later: a fresh base */
    memcpy(id, g->base, 16);
    uint64_t n = g->next++;
    for (int i = 15; i >= 10; i--, n >>= 8)
        id[i] ^= (uint8_t)n;
}

void dc_uuid_str(const uint8_t u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[u[i] >> 4];
        *o++ = hex[u[i] & 15];
    }
    *o = '\0';
}

int dc_uuid_parse(const char *s, uint8_t id[16])
{
    int n = 0;
    for (size_t i = 0; s[i] != '\0' && n < 32; i++) {
        if (s[i] == '-')
            continue;
        int hi = s[i];
        int v = hi >= '0' && hi <= '9'   ? hi - '0'
                : hi >= 'a' && hi <= 'f' ? hi - 'a' + 10
                : hi >= 'A' && hi <= 'F' ? hi - 'A' + 10
                                         : -1;
        if (v < 0)
            return GW_EINVAL;
        if (n % 2 == 0)
            id[n / 2] = (uint8_t)(v << 4);
        else
            id[n / 2] |= (uint8_t)v;
        n++;
    }
    return n == 32 ? 0 : GW_EINVAL;
}

char *dc_ack_json(const char *acked_type, const uint8_t id[16], int64_t seq)
{
    char ids[37];
    dc_uuid_str(id, ids);
    json_t *o = json_pack("{s:s, s:s, s:I, s:b}", "AcknowledgedMessageType",
                          acked_type, "AcknowledgedMessageId", ids,
                          "AcknowledgedMessageSequenceNumber", (json_int_t)seq,
                          "IsSequentialMessage", 1);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

/* Appends s to *o if it fits before end; 0, or -1 when it does not. */
static int put_str(char **o, const char *end, const char *s, size_t n)
{
    if ((size_t)(end - *o) < n)
        return -1;
    memcpy(*o, s, n);
    *o += n;
    return 0;
}

#define PUT_LIT(o, end, lit) put_str(o, end, lit, sizeof(lit) - 1)

/* An ack goes out for every message received: built by copying its fixed
 * parts, not by a printf per message. */
size_t dc_ack_format(char *out, size_t len, const char *acked_type,
                     const uint8_t id[16], int64_t seq)
{
    char ids[37], num[24];
    dc_uuid_str(id, ids);
    /* Digits backwards from the end of num. */
    char *d = num + sizeof(num);
    uint64_t v = seq < 0 ? 0 - (uint64_t)seq : (uint64_t)seq;
    do {
        *--d = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (seq < 0)
        *--d = '-';
    char *o = out, *end = out + (len > 0 ? len - 1 : 0); /* room for NUL */
    /* The type is one of our fixed strings, never outside input. */
    if (len == 0 || PUT_LIT(&o, end, "{\"AcknowledgedMessageType\":\"") ||
        put_str(&o, end, acked_type, strlen(acked_type)) ||
        PUT_LIT(&o, end, "\",\"AcknowledgedMessageId\":\"") ||
        put_str(&o, end, ids, 36) ||
        PUT_LIT(&o, end, "\",\"AcknowledgedMessageSequenceNumber\":") ||
        put_str(&o, end, d, (size_t)(num + sizeof(num) - d)) ||
        PUT_LIT(&o, end, ",\"IsSequentialMessage\":true}"))
        return 0;
    *o = '\0';
    return (size_t)(o - out);
}

/*
 * jansson allocates a dozen small blocks for each parsed ack, and an ack
 * comes back for every message sent. The parse runs on a bump arena
 * instead (blocks that do not fit come from malloc); the daemon has one
 * thread, so no other parse ever sees the switched allocator.
 */
static _Alignas(16) uint8_t ack_arena[16384];
static size_t ack_arena_used;

static void *ack_alloc(size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n || need > sizeof(ack_arena) - ack_arena_used)
        return malloc(n);
    void *p = ack_arena + ack_arena_used;
    ack_arena_used += need;
    return p;
}

static void ack_free(void *p)
{
    if ((uint8_t *)p < ack_arena ||
        (uint8_t *)p >= ack_arena + sizeof(ack_arena))
        free(p); /* the arena itself is reset per parse */
}

/* Skips lit at *q; 0, or -1 when the bytes there differ. */
static int skip_lit(const uint8_t **q, const uint8_t *end, const char *lit,
                    size_t n)
{
    if ((size_t)(end - *q) < n || memcmp(*q, lit, n) != 0)
        return -1;
    *q += n;
    return 0;
}

#define SKIP_LIT(q, end, lit) skip_lit(q, end, lit, sizeof(lit) - 1)

/* Skips a run of max at most bytes that ok() accepts, at least one. */
static int skip_run(const uint8_t **q, const uint8_t *end, size_t max,
                    int (*ok)(int c))
{
    const uint8_t *s = *q;
    while (*q < end && (size_t)(*q - s) < max && ok(**q))
        (*q)++;
    return *q > s ? 0 : -1;
}

static int ack_type_char(int c)
{
    return (c >= 'a' && c <= 'z') || c == '_';
}

static int ack_id_char(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F') || c == '-';
}

/*
 * The agent's acks all have one shape, its encoder's: the four fields in
 * order, no blanks, a type of lower-case letters, an id of hex digits and
 * dashes, a plain integer. A payload of exactly that shape is read here,
 * with no JSON tree (an ack comes back for every message sent); anything
 * else -- other spacing, escapes, a leading zero, 19 digits -- goes to
 * jansson, so the answer is always the JSON parser's.
 */
static int ack_parse_exact(const uint8_t *p, size_t len, int64_t *seq)
{
    const uint8_t *q = p, *end = p + len;
    if (SKIP_LIT(&q, end, "{\"AcknowledgedMessageType\":\"") ||
        skip_run(&q, end, 64, ack_type_char) ||
        SKIP_LIT(&q, end, "\",\"AcknowledgedMessageId\":\"") ||
        skip_run(&q, end, 64, ack_id_char) ||
        SKIP_LIT(&q, end, "\",\"AcknowledgedMessageSequenceNumber\":"))
        return -1;
    int neg = q < end && *q == '-';
    q += neg;
    const uint8_t *digits = q;
    int64_t v = 0;
    while (q < end && *q >= '0' && *q <= '9' && q - digits < 18)
        v = v * 10 + (*q++ - '0');
    size_t nd = (size_t)(q - digits);
    if (nd == 0 || (nd > 1 && digits[0] == '0') ||
        (q < end && *q >= '0' && *q <= '9'))
        return -1;
    if (SKIP_LIT(&q, end, ",\"IsSequentialMessage\":"))
        return -1;
    if (SKIP_LIT(&q, end, "true}") != 0 && SKIP_LIT(&q, end, "false}") != 0)
        return -1;
    if (q != end)
        return -1;
    *seq = neg ? -v : v;
    return 0;
}

int dc_ack_parse(const uint8_t *p, size_t len, int64_t *seq)
{
    if (ack_parse_exact(p, len, seq) == 0)
        return 0;
    return dc_ack_parse_json(p, len, seq);
}

int dc_ack_parse_json(const uint8_t *p, size_t len, int64_t *seq)
{
    json_malloc_t saved_alloc;
    json_free_t saved_free;
    json_get_alloc_funcs(&saved_alloc, &saved_free);
    json_set_alloc_funcs(ack_alloc, ack_free);
    ack_arena_used = 0;
    json_error_t err;
    json_t *o = json_loadb((const char *)p, len, 0, &err);
    json_t *v = json_object_get(o, "AcknowledgedMessageSequenceNumber");
    int rc = json_is_integer(v) ? 0 : GW_EPROTO;
    if (rc == 0)
        *seq = (int64_t)json_integer_value(v);
    json_decref(o);
    json_set_alloc_funcs(saved_alloc, saved_free);
    return rc;
}

char *dc_open_json(const char *token, const char *client_id,
                   const char *client_version)
{
    uint8_t rid[16];
    char rids[37];
    dc_uuid_new(rid);
    dc_uuid_str(rid, rids);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "MessageSchemaVersion", "1.0",
                  "RequestId", rids, "TokenValue", token, "ClientId", client_id,
                  "ClientVersion", client_version);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

static void copy_json_str(char *dst, size_t len, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, len, "%s", s ? s : "");
}

int dc_handshake_request_parse(const uint8_t *p, size_t len,
                               struct dc_handshake_request *out,
                               const char **why)
{
    memset(out, 0, sizeof(*out));
    json_error_t err;
    json_t *o = json_loadb((const char *)p, len, 0, &err);
    json_t *actions = json_object_get(o, "RequestedClientActions");
    int rc = GW_EPROTO;
    if (!json_is_object(o) || !json_is_array(actions)) {
        *why = "HandshakeRequest is not the expected JSON";
        goto out;
    }
    copy_json_str(out->agent_version, sizeof(out->agent_version),
                  json_object_get(o, "AgentVersion"));
    size_t i;
    json_t *a;
    json_array_foreach(actions, i, a)
    {
        if (out->n_actions == DC_MAX_ACTIONS) {
            *why = "too many requested actions";
            goto out;
        }
        copy_json_str(out->action_types[out->n_actions],
                      sizeof(out->action_types[0]),
                      json_object_get(a, "ActionType"));
        if (strcmp(out->action_types[out->n_actions], "SessionType") == 0) {
            json_t *params = json_object_get(a, "ActionParameters");
            copy_json_str(out->session_type, sizeof(out->session_type),
                          json_object_get(params, "SessionType"));
            copy_json_str(
                out->properties_type, sizeof(out->properties_type),
                json_object_get(json_object_get(params, "Properties"), "type"));
        }
        out->n_actions++;
    }
    rc = 0; /* success */
out:
    json_decref(o);
    return rc;
}

char *dc_handshake_response_json(const struct dc_handshake_request *req,
                                 const char *client_version,
                                 int session_type_ok)
{
    json_t *actions = json_array();
    json_t *errors = json_array();
    for (int i = 0; i < req->n_actions; i++) {
        const char *type = req->action_types[i];
        int is_session = strcmp(type, "SessionType") == 0;
        int ok = is_session && session_type_ok;
        char msg[160] = "";
        if (!ok) {
            snprintf(msg, sizeof(msg),
                     is_session ? "ssmgate does not support session type %s"
                                : "ssmgate does not support %s",
                     is_session ? req->session_type : type);
            json_array_append_new(errors, json_string(msg));
        }
        json_array_append_new(
            actions, json_pack("{s:s, s:i, s:n, s:s}", "ActionType", type,
                               "ActionStatus", ok ? 1 : (is_session ? 2 : 3),
                               "ActionResult", "Error", msg));
    }
    json_t *o = json_pack("{s:s, s:o, s:o}", "ClientVersion", client_version,
                          "ProcessedClientActions", actions, "Errors",
                          json_array_size(errors) ? errors : json_null());
    if (json_array_size(errors) == 0)
        json_decref(errors);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

int dc_handshake_complete_parse(const uint8_t *p, size_t len, char *message,
                                size_t msglen)
{
    json_error_t err;
    json_t *o = json_loadb((const char *)p, len, 0, &err);
    message[0] = '\0';
    if (!json_is_object(o)) {
        json_decref(o);
        return GW_EPROTO;
    }
    copy_json_str(message, msglen, json_object_get(o, "CustomerMessage"));
    json_decref(o);
    return 0;
}

void dc_channel_closed_parse(const uint8_t *p, size_t len, char *out,
                             size_t outlen)
{
    json_error_t err;
    json_t *o = json_loadb((const char *)p, len, 0, &err);
    copy_json_str(out, outlen, json_object_get(o, "Output"));
    json_decref(o);
}

int dc_version_cmp(const char *a, const char *b)
{
    while (*a != '\0' || *b != '\0') {
        char *ea, *eb;
        unsigned long x = strtoul(a, &ea, 10), y = strtoul(b, &eb, 10);
        if (ea == a && *a != '\0')
            return -1;
        if (x != y)
            return x < y ? -1 : 1;
        a = *ea == '.' ? ea + 1 : ea;
        b = *eb == '.' ? eb + 1 : eb;
    }
    return 0;
}
