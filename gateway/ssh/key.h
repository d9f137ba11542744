/*
 * key.h - the daemon's ephemeral ed25519 key pairs (OpenSSL EVP) and their
 * OpenSSH encodings; the key ring that rotates them.
 *
 * Owns: the private key material, which lives only in memory (a struct
 * key) and is wiped with OPENSSL_cleanse when freed; the ssh wire
 * encodings (public key blob, signature blob), the OpenSSH public line,
 * the SHA256 fingerprint and the openssh-key-v1 private file text.
 *
 * Pure apart from the random number generator: no libuv, no files. Times
 * are passed in by the caller (milliseconds of any monotonic clock).
 */
#ifndef SSMGATE_KEY_H
#define SSMGATE_KEY_H

#include <stddef.h>
#include <stdint.h>

#define KEY_SEED_LEN     32
#define KEY_PUB_LEN      32
#define KEY_SIG_LEN      64
#define KEY_BLOB_LEN     51  /* string "ssh-ed25519" + string pub */
#define KEY_SIG_BLOB_LEN 83  /* string "ssh-ed25519" + string sig */
#define KEY_LINE_MAX     256 /* "ssh-ed25519 " + 68 base64 + " comment" */
#define KEY_FP_MAX       64  /* "SHA256:" + 43 base64 + NUL */
#define KEY_COMMENT_MAX  128

struct key;

/* A fresh random key pair. Returns 0, GW_ENOMEM or GW_ECRYPTO. */
int key_generate(struct key **out);
/* The pair whose RFC 8032 private seed is seed (tests, known answers). */
int key_from_seed(const uint8_t seed[KEY_SEED_LEN], struct key **out);
/* Wipes and frees; NULL is fine. */
void key_free(struct key *k);

/* The 51-byte public key blob (owned by k). */
const uint8_t *key_blob(const struct key *k);
/* The raw 32-byte public key (owned by k). */
const uint8_t *key_public(const struct key *k);
/* 1 when blob/len is exactly k's public key blob. */
int key_blob_matches(const struct key *k, const uint8_t *blob, size_t len);

/*
 * "ssh-ed25519 <base64> <comment>" (no comment part when comment is NULL
 * or ""), NUL-terminated. Returns 0 or GW_ETOO_BIG when len is short or
 * the comment is longer than KEY_COMMENT_MAX or holds a space/newline
 * (GW_EINVAL).
 */
int key_public_line(const struct key *k, const char *comment, char *out,
                    size_t len);
/* "SHA256:<unpadded base64>" as ssh-keygen -l prints it. */
int key_fingerprint(const struct key *k, char *out, size_t len);

/*
 * Pure Ed25519 over data; writes the 83-byte ssh signature blob.
 * Returns 0 or GW_ECRYPTO. The signature is a secret for logging.
 */
int key_sign(const struct key *k, const uint8_t *data, size_t datalen,
             uint8_t out[KEY_SIG_BLOB_LEN]);

/*
 * The OpenSSH private key file (openssh-key-v1, cipher none) as text,
 * base64 wrapped at 70 columns. checkint 0 picks a random one. *out is
 * malloc'd, NUL-terminated, *outlen excludes the NUL; release it with
 * key_private_file_free (it holds the private key).
 */
int key_private_file(const struct key *k, const char *comment,
                     uint32_t checkint, char **out, size_t *outlen);
void key_private_file_free(char *text, size_t len);

/*
 * The key ring: the current key plus, for a grace period after a
 * rotation, the previous one.
 *
 * Why a grace period: a login that started before a rotation already
 * pushed (EC2 Instance Connect) and was offered the old key; ssh asks the
 * agent to sign with it a moment later. The old key stays signable (and
 * listed after the current one) for grace_ms so such logins finish;
 * after that it is wiped. generation counts rotations (starts at 1) so
 * users of the key (the push cache) see that it changed.
 *
 * Wiring (main.c): one struct key_ring for the daemon's life; a uv timer
 * every key_rotation_s calls key_ring_rotate(kr, uv_now(loop)) and, with
 * key_file = yes, rewrites the file (key_private_file + rundir_write_key);
 * key_ring_expire() may run on any later tick to wipe the old key early
 * (the agent and key_ring_find already ignore it once its time is up).
 */
/* Grace for the previous key: a push is reused for up to 40 s and lives
 * 60 s on the instance; 120 s covers both with a margin. */
#define KEY_GRACE_MS_DEFAULT 120000
struct key_ring {
    struct key *current;
    struct key *previous; /* NULL, or signable until prev_until_ms */
    uint64_t prev_until_ms;
    uint64_t grace_ms;
    uint64_t generation;     /* 1 for the first key, +1 per rotation */
    char line[KEY_LINE_MAX]; /* current key's public line, comment */
    char comment[KEY_COMMENT_MAX];
};

/* Generates the first key. comment goes into the public line. */
int key_ring_init(struct key_ring *kr, const char *comment, uint64_t grace_ms);
/* Same with a given first key (ownership of k transferred, even on error). */
int key_ring_init_with(struct key_ring *kr, struct key *k, const char *comment,
                       uint64_t grace_ms);
void key_ring_free(struct key_ring *kr);
/*
 * Makes a fresh key current; the old current becomes previous until
 * now_ms + grace_ms (an older previous is wiped). Returns 0 or an error
 * (the ring is unchanged then).
 */
int key_ring_rotate(struct key_ring *kr, uint64_t now_ms);
/* Same with a given key (ownership transferred, even on error). */
int key_ring_rotate_to(struct key_ring *kr, struct key *k, uint64_t now_ms);
/* Wipes the previous key once its grace period is over. */
void key_ring_expire(struct key_ring *kr, uint64_t now_ms);
/*
 * The key whose blob is blob/len: the current one, or the previous one
 * while its grace period lasts; NULL otherwise.
 */
const struct key *key_ring_find(const struct key_ring *kr, const uint8_t *blob,
                                size_t len, uint64_t now_ms);
/* The previous key if still in its grace period, else NULL. */
const struct key *key_ring_previous(const struct key_ring *kr, uint64_t now_ms);

#endif
