/*
 * key.c - ephemeral ed25519 keys over OpenSSL EVP and their OpenSSH
 * encodings (RFC 8709 blobs, openssh-key-v1 files), plus the key ring.
 *
 * Model: a struct key holds the EVP_PKEY (which owns the private half)
 * and a copy of the seed for the private file; both are wiped on free.
 * The public blob is computed once at creation since every agent reply
 * and every push needs it.
 */
#include "key.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "buf.h"
#include "common.h"
#include "secret.h"

static const char KEY_TYPE[] = "ssh-ed25519";
#define KEY_TYPE_LEN (sizeof(KEY_TYPE) - 1)

/* Owner: whoever created it (the key ring in the daemon). */
struct key {
    EVP_PKEY *pkey;
    uint8_t seed[KEY_SEED_LEN];
    uint8_t pub[KEY_PUB_LEN];
    uint8_t blob[KEY_BLOB_LEN];
};

int key_from_seed(const uint8_t seed[KEY_SEED_LEN], struct key **out)
{
    int rc = GW_ECRYPTO;
    struct key *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return GW_ENOMEM;
    k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
                                           KEY_SEED_LEN);
    if (k->pkey == NULL)
        goto out;
    size_t publen = KEY_PUB_LEN;
    if (EVP_PKEY_get_raw_public_key(k->pkey, k->pub, &publen) != 1 ||
        publen != KEY_PUB_LEN)
        goto out;
    memcpy(k->seed, seed, KEY_SEED_LEN);

    struct buf b;
    buf_wrap(&b, k->blob, sizeof(k->blob));
    CHECK(buf_put_string(&b, KEY_TYPE, KEY_TYPE_LEN) == 0);
    CHECK(buf_put_string(&b, k->pub, KEY_PUB_LEN) == 0);
    CHECK(buf_len(&b) == KEY_BLOB_LEN);

    *out = k;
    k = NULL; /* transferred */
    rc = 0;   /* success */
out:
    key_free(k);
    return rc;
}

int key_generate(struct key **out)
{
    uint8_t seed[KEY_SEED_LEN];
    if (RAND_priv_bytes(seed, sizeof(seed)) != 1)
        return GW_ECRYPTO;
    int rc = key_from_seed(seed, out);
    secret_wipe(seed, sizeof(seed));
    return rc;
}

void key_free(struct key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    secret_wipe(k, sizeof(*k));
    free(k);
}

const uint8_t *key_blob(const struct key *k)
{
    return k->blob;
}

const uint8_t *key_public(const struct key *k)
{
    return k->pub;
}

int key_blob_matches(const struct key *k, const uint8_t *blob, size_t len)
{
    return len == KEY_BLOB_LEN && CRYPTO_memcmp(blob, k->blob, len) == 0;
}

/* A comment goes after a space on one line: no whitespace, no control. */
static int comment_ok(const char *c)
{
    if (strlen(c) > KEY_COMMENT_MAX)
        return 0;
    for (; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return 0;
    return 1;
}

int key_public_line(const struct key *k, const char *comment, char *out,
                    size_t len)
{
    char b64[4 * ((KEY_BLOB_LEN + 2) / 3) + 1];
    if (comment == NULL)
        comment = "";
    if (!comment_ok(comment))
        return GW_EINVAL;
    EVP_EncodeBlock((unsigned char *)b64, k->blob, KEY_BLOB_LEN);
    int n = snprintf(out, len, "%s %s%s%s", KEY_TYPE, b64,
                     comment[0] ? " " : "", comment);
    if (n < 0 || (size_t)n >= len)
        return GW_ETOO_BIG;
    return 0;
}

int key_fingerprint(const struct key *k, char *out, size_t len)
{
    uint8_t md[32];
    char b64[4 * ((sizeof(md) + 2) / 3) + 1];
    unsigned int mdlen = 0;
    if (EVP_Digest(k->blob, KEY_BLOB_LEN, md, &mdlen, EVP_sha256(), NULL) !=
            1 ||
        mdlen != sizeof(md))
        return GW_ECRYPTO;
    int n = EVP_EncodeBlock((unsigned char *)b64, md, sizeof(md));
    while (n > 0 && b64[n - 1] == '=')
        b64[--n] = '\0';
    n = snprintf(out, len, "SHA256:%s", b64);
    if (n < 0 || (size_t)n >= len)
        return GW_ETOO_BIG;
    return 0;
}

int key_sign(const struct key *k, const uint8_t *data, size_t datalen,
             uint8_t out[KEY_SIG_BLOB_LEN])
{
    int rc = GW_ECRYPTO;
    uint8_t sig[KEY_SIG_LEN];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return GW_ENOMEM;
    /* Ed25519 is "pure": no digest, the whole message in one call. */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1)
        goto out;
    if (EVP_DigestSign(ctx, sig, &siglen, data, datalen) != 1 ||
        siglen != KEY_SIG_LEN)
        goto out;

    struct buf b;
    buf_wrap(&b, out, KEY_SIG_BLOB_LEN);
    CHECK(buf_put_string(&b, KEY_TYPE, KEY_TYPE_LEN) == 0);
    CHECK(buf_put_string(&b, sig, KEY_SIG_LEN) == 0);
    rc = 0; /* success */
out:
    secret_wipe(sig, sizeof(sig));
    EVP_MD_CTX_free(ctx);
    return rc;
}

#define PRIV_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----\n"
#define PRIV_END   "-----END OPENSSH PRIVATE KEY-----\n"
#define PRIV_WRAP  70
#define PRIV_BIN_MAX                                                           \
    (15 + 3 * 8 + 4 + 4 + KEY_BLOB_LEN + 4 + 8 + 4 + KEY_TYPE_LEN + 4 +        \
     KEY_PUB_LEN + 4 + 64 + 4 + KEY_COMMENT_MAX + 8)

/*
 * The openssh-key-v1 binary (PROTOCOL.key): magic, cipher/kdf "none",
 * one public blob, then the private section padded to 8 bytes.
 */
static int private_binary(const struct key *k, const char *comment,
                          uint32_t checkint, struct buf *b)
{
    uint8_t priv[64];
    uint8_t section[8 + 4 + KEY_TYPE_LEN + 4 + KEY_PUB_LEN + 4 + 64 + 4 +
                    KEY_COMMENT_MAX + 8];
    struct buf s;
    int rc = GW_ETOO_BIG;

    buf_wrap(&s, section, sizeof(section));
    memcpy(priv, k->seed, KEY_SEED_LEN);
    memcpy(priv + KEY_SEED_LEN, k->pub, KEY_PUB_LEN);
    if (buf_put_u32(&s, checkint) || buf_put_u32(&s, checkint) ||
        buf_put_string(&s, KEY_TYPE, KEY_TYPE_LEN) ||
        buf_put_string(&s, k->pub, KEY_PUB_LEN) ||
        buf_put_string(&s, priv, sizeof(priv)) ||
        buf_put_string(&s, comment, strlen(comment)))
        goto out;
    for (uint8_t pad = 1; buf_len(&s) % 8 != 0; pad++)
        if (buf_put_u8(&s, pad))
            goto out;

    if (buf_put(b, "openssh-key-v1", 15) || /* with its NUL */
        buf_put_string(b, "none", 4) || buf_put_string(b, "none", 4) ||
        buf_put_string(b, "", 0) || buf_put_u32(b, 1) ||
        buf_put_string(b, k->blob, KEY_BLOB_LEN) ||
        buf_put_string(b, buf_rptr(&s), buf_len(&s)))
        goto out;
    rc = 0; /* success */
out:
    secret_wipe(priv, sizeof(priv));
    secret_wipe(section, sizeof(section));
    return rc;
}

int key_private_file(const struct key *k, const char *comment,
                     uint32_t checkint, char **out, size_t *outlen)
{
    uint8_t bin[PRIV_BIN_MAX];
    char b64[4 * ((PRIV_BIN_MAX + 2) / 3) + 1];
    char *text = NULL;
    size_t cap = 0;
    struct buf b;
    int rc;

    if (comment == NULL)
        comment = "";
    if (!comment_ok(comment))
        return GW_EINVAL;
    while (checkint == 0)
        if (RAND_bytes((uint8_t *)&checkint, sizeof(checkint)) != 1)
            return GW_ECRYPTO;

    buf_wrap(&b, bin, sizeof(bin));
    rc = private_binary(k, comment, checkint, &b);
    if (rc != 0)
        goto out;
    size_t n = (size_t)EVP_EncodeBlock((unsigned char *)b64, buf_rptr(&b),
                                       (int)buf_len(&b));

    cap = strlen(PRIV_BEGIN) + n + n / PRIV_WRAP + 1 + strlen(PRIV_END) + 1;
    text = malloc(cap);
    if (text == NULL) {
        rc = GW_ENOMEM;
        goto out;
    }
    size_t pos = 0;
    memcpy(text, PRIV_BEGIN, strlen(PRIV_BEGIN));
    pos += strlen(PRIV_BEGIN);
    for (size_t i = 0; i < n; i += PRIV_WRAP) {
        size_t chunk = GW_MIN((size_t)PRIV_WRAP, n - i);
        memcpy(text + pos, b64 + i, chunk);
        pos += chunk;
        text[pos++] = '\n';
    }
    memcpy(text + pos, PRIV_END, strlen(PRIV_END));
    pos += strlen(PRIV_END);
    CHECK(pos < cap);
    text[pos] = '\0';

    *out = text;
    *outlen = pos;
    text = NULL; /* transferred */
    rc = 0;      /* success */
out:
    secret_wipe(bin, sizeof(bin));
    secret_wipe(b64, sizeof(b64));
    secret_wipe(text, cap);
    free(text);
    return rc;
}

void key_private_file_free(char *text, size_t len)
{
    secret_wipe(text, len);
    free(text);
}

/* Points the ring's cached public line at the current key. */
static int ring_update_line(struct key_ring *kr)
{
    return key_public_line(kr->current, kr->comment, kr->line,
                           sizeof(kr->line));
}

int key_ring_init_with(struct key_ring *kr, struct key *k, const char *comment,
                       uint64_t grace_ms)
{
    memset(kr, 0, sizeof(*kr));
    if (comment == NULL)
        comment = "";
    if (!comment_ok(comment) || strlen(comment) >= sizeof(kr->comment)) {
        key_free(k);
        return GW_EINVAL;
    }
    snprintf(kr->comment, sizeof(kr->comment), "%s", comment);
    kr->current = k; /* transferred */
    kr->grace_ms = grace_ms;
    kr->generation = 1;
    int rc = ring_update_line(kr);
    if (rc != 0)
        key_ring_free(kr);
    return rc;
}

int key_ring_init(struct key_ring *kr, const char *comment, uint64_t grace_ms)
{
    struct key *k = NULL;
    int rc = key_generate(&k);
    if (rc != 0) {
        memset(kr, 0, sizeof(*kr));
        return rc;
    }
    return key_ring_init_with(kr, k, comment, grace_ms);
}

void key_ring_free(struct key_ring *kr)
{
    key_free(kr->current);
    key_free(kr->previous);
    memset(kr, 0, sizeof(*kr));
}

int key_ring_rotate_to(struct key_ring *kr, struct key *k, uint64_t now_ms)
{
    char line[KEY_LINE_MAX];
    int rc = key_public_line(k, kr->comment, line, sizeof(line));
    if (rc != 0) {
        key_free(k);
        return rc;
    }
    key_free(kr->previous);
    kr->previous = kr->current;
    kr->prev_until_ms = now_ms + kr->grace_ms;
    kr->current = k; /* transferred */
    kr->generation++;
    memcpy(kr->line, line, sizeof(line));
    return 0;
}

int key_ring_rotate(struct key_ring *kr, uint64_t now_ms)
{
    struct key *k = NULL;
    int rc = key_generate(&k);
    if (rc != 0)
        return rc;
    return key_ring_rotate_to(kr, k, now_ms);
}

void key_ring_expire(struct key_ring *kr, uint64_t now_ms)
{
    if (kr->previous != NULL && now_ms >= kr->prev_until_ms) {
        key_free(kr->previous);
        kr->previous = NULL;
    }
}

const struct key *key_ring_previous(const struct key_ring *kr, uint64_t now_ms)
{
    if (kr->previous != NULL && now_ms < kr->prev_until_ms)
        return kr->previous;
    return NULL;
}

const struct key *key_ring_find(const struct key_ring *kr, const uint8_t *blob,
                                size_t len, uint64_t now_ms)
{
    if (kr->current != NULL && key_blob_matches(kr->current, blob, len))
        return kr->current;
    const struct key *prev = key_ring_previous(kr, now_ms);
    if (prev != NULL && key_blob_matches(prev, blob, len))
        return prev;
    return NULL;
}
