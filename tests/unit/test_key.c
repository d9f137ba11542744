/* Unit tests for key.c: RFC 8032 / OpenSSH known answers, rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "common.h"
#include "key.h"

static const char SEED_HEX[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char PUB_HEX[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
#define LINE                                                                   \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8C" \
    "Gmj3B1Ea"
static const char FP[] = "SHA256:bbXpuKG6zhzdmnxq256TlqzFBzRl2f6OOg722cYNbU8";
static const char SIG_HEX[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb882"
    "1590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
static const char PRIV_FILE[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGgAAAJABAgMEAQID\n"
    "BAAAAAtzc2gtZWQyNTUxOQAAACDXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg\n"
    "AAAECdYbGd7/1aYLqESvSS7CzEREnFaXsyaRlwO6wDHK5/YNdamAGCsQq31Uv+08lkBzoO\n"
    "4XLz2qYjJa8CGmj3B1EaAAAADHNzbWdhdGUtdGVzdAE=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK(sscanf(hex + 2 * i, "%2hhx", &out[i]) == 1);
}

static struct key *vector_key(void)
{
    uint8_t seed[KEY_SEED_LEN];
    struct key *k = NULL;
    unhex(SEED_HEX, seed, sizeof(seed));
    assert_int_equal(key_from_seed(seed, &k), 0);
    return k;
}

static void test_public_encodings(void **state)
{
    struct key *k = vector_key();
    uint8_t pub[32];
    char line[KEY_LINE_MAX], fp[KEY_FP_MAX];

    unhex(PUB_HEX, pub, sizeof(pub));
    assert_memory_equal(key_public(k), pub, 32);
    const uint8_t *blob = key_blob(k);
    assert_memory_equal(blob, "\0\0\0\x0bssh-ed25519\0\0\0\x20", 19);
    assert_memory_equal(blob + 19, pub, 32);
    assert_true(key_blob_matches(k, blob, KEY_BLOB_LEN));
    assert_false(key_blob_matches(k, blob, KEY_BLOB_LEN - 1));

    assert_int_equal(key_public_line(k, NULL, line, sizeof(line)), 0);
    assert_string_equal(line, LINE);
    assert_int_equal(strlen(line), 80);
    assert_int_equal(key_public_line(k, "ssmgate", line, sizeof(line)), 0);
    assert_string_equal(line + 80, " ssmgate");
    /* Exactly fitting, one short, and comments that break the line. */
    assert_int_equal(key_public_line(k, "ssmgate", line, 89), 0);
    assert_int_equal(key_public_line(k, "ssmgate", line, 88), GW_ETOO_BIG);
    assert_int_equal(key_public_line(k, "a b", line, sizeof(line)), GW_EINVAL);
    assert_int_equal(key_public_line(k, "a\nb", line, sizeof(line)), GW_EINVAL);

    assert_int_equal(key_fingerprint(k, fp, sizeof(fp)), 0);
    assert_string_equal(fp, FP);
    assert_int_equal(key_fingerprint(k, fp, 10), GW_ETOO_BIG);
    key_free(k);
}

static void test_sign_vector(void **state)
{
    struct key *k = vector_key();
    uint8_t blob[KEY_SIG_BLOB_LEN], sig[64];
    unhex(SIG_HEX, sig, sizeof(sig));
    assert_int_equal(key_sign(k, (const uint8_t *)"", 0, blob), 0);
    assert_memory_equal(blob, "\0\0\0\x0bssh-ed25519\0\0\0\x40", 19);
    assert_memory_equal(blob + 19, sig, 64);
    key_free(k);
}

/* A signature over arbitrary data verifies with OpenSSL's verifier. */
static void test_sign_verify(void **state)
{
    struct key *k = NULL;
    uint8_t data[1000], blob[KEY_SIG_BLOB_LEN];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    assert_int_equal(key_generate(&k), 0);
    assert_int_equal(key_sign(k, data, sizeof(data), blob), 0);

    EVP_PKEY *pk =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key_public(k), 32);
    assert_non_null(pk);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk), 1);
    assert_int_equal(EVP_DigestVerify(ctx, blob + 19, 64, data, sizeof(data)),
                     1);
    data[0] ^= 1;
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk), 1);
    assert_int_not_equal(
        EVP_DigestVerify(ctx, blob + 19, 64, data, sizeof(data)), 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    key_free(k);
}

static void test_private_file_vector(void **state)
{
    struct key *k = vector_key();
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(
        key_private_file(k, "ssmgate-test", 0x01020304, &text, &len), 0);
    assert_int_equal(len, strlen(PRIV_FILE));
    assert_string_equal(text, PRIV_FILE);
    key_private_file_free(text, len);

    /* Random checkint: same shape, different text, comment lengths that
     * need 0..7 padding bytes all come out as whole base64. */
    for (int c = 0; c < 9; c++) {
        char comment[16];
        memset(comment, 'x', (size_t)c);
        comment[c] = '\0';
        assert_int_equal(key_private_file(k, comment, 0, &text, &len), 0);
        assert_non_null(strstr(text, "-----END OPENSSH PRIVATE KEY-----\n"));
        assert_int_equal(text[len], '\0');
        key_private_file_free(text, len);
    }
    assert_int_equal(key_private_file(k, "bad comment", 1, &text, &len),
                     GW_EINVAL);
    key_free(k);
}

static void test_generate_distinct(void **state)
{
    struct key *a = NULL, *b = NULL;
    assert_int_equal(key_generate(&a), 0);
    assert_int_equal(key_generate(&b), 0);
    assert_memory_not_equal(key_blob(a), key_blob(b), KEY_BLOB_LEN);
    key_free(a);
    key_free(b);
    key_free(NULL);
}

static void test_ring_rotation(void **state)
{
    struct key_ring kr;
    assert_int_equal(key_ring_init_with(&kr, vector_key(), "ssmgate", 1000), 0);
    assert_int_equal(kr.generation, 1);
    assert_string_equal(kr.line, LINE " ssmgate");
    uint8_t old_blob[KEY_BLOB_LEN];
    memcpy(old_blob, key_blob(kr.current), KEY_BLOB_LEN);
    assert_ptr_equal(key_ring_find(&kr, old_blob, KEY_BLOB_LEN, 0), kr.current);
    assert_null(key_ring_previous(&kr, 0));

    assert_int_equal(key_ring_rotate(&kr, 5000), 0);
    assert_int_equal(kr.generation, 2);
    assert_string_not_equal(kr.line, LINE " ssmgate");
    assert_memory_not_equal(key_blob(kr.current), old_blob, KEY_BLOB_LEN);
    /* The old key is signable during the grace period only. */
    assert_ptr_equal(key_ring_find(&kr, old_blob, KEY_BLOB_LEN, 5999),
                     kr.previous);
    assert_ptr_equal(key_ring_previous(&kr, 5999), kr.previous);
    assert_null(key_ring_find(&kr, old_blob, KEY_BLOB_LEN, 6000));
    assert_null(key_ring_previous(&kr, 6000));
    key_ring_expire(&kr, 5999);
    assert_non_null(kr.previous);
    key_ring_expire(&kr, 6000);
    assert_null(kr.previous);

    /* Two quick rotations: only the last previous stays. */
    assert_int_equal(key_ring_rotate(&kr, 7000), 0);
    assert_int_equal(key_ring_rotate(&kr, 7001), 0);
    assert_int_equal(kr.generation, 4);
    assert_null(key_ring_find(&kr, old_blob, KEY_BLOB_LEN, 7002));
    assert_null(key_ring_find(&kr, old_blob, 3, 7002));
    key_ring_free(&kr);

    assert_int_equal(key_ring_init(&kr, "bad comment", 1), GW_EINVAL);
    assert_int_equal(key_ring_init(&kr, "ok", 1), 0);
    key_ring_free(&kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_encodings),
        cmocka_unit_test(test_sign_vector),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_private_file_vector),
        cmocka_unit_test(test_generate_distinct),
        cmocka_unit_test(test_ring_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
