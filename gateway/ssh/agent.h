/*
 * agent.h - the ssh-agent socket: a uv pipe server that answers
 * REQUEST_IDENTITIES and SIGN_REQUEST with the key ring's keys and
 * SSH_AGENT_FAILURE to everything else.
 *
 * Owns: the listening pipe, one struct agent_client per connected ssh
 * (its pipe, its input buffer, its queued replies). Borrows the key ring
 * (the owner keeps it alive and rotates it; the agent reads it on every
 * request). The socket file itself is created by bind() at a path the
 * caller chose (rundir_socket_path); the caller removes it.
 *
 * agent_parse_request() is the pure frame parser, separate from the I/O
 * (fuzzed by tests/fuzz/fuzz_agent.c).
 */
#ifndef SSMGATE_AGENT_H
#define SSMGATE_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "key.h"

/* Largest message body (after the uint32 length) accepted or sent; the
 * OpenSSH client's own limit. */
#define AGENT_MAX_MSG (256 * 1024)
/* A client that leaves a message incomplete this long is closed. */
#define AGENT_PARTIAL_TIMEOUT_MS 10000

/* Wire message numbers (RFC 9987). */
enum agent_msg {
    AGENT_FAILURE = 5,
    AGENT_SUCCESS = 6,
    AGENTC_REQUEST_IDENTITIES = 11,
    AGENT_IDENTITIES_ANSWER = 12,
    AGENTC_SIGN_REQUEST = 13,
    AGENT_SIGN_RESPONSE = 14,
    AGENTC_EXTENSION = 27,
};

/* One parsed request; pointers point into the parsed bytes. */
struct agent_request {
    uint8_t type;            /* the wire type byte */
    const uint8_t *key_blob; /* SIGN_REQUEST */
    size_t key_blob_len;
    const uint8_t *data; /* SIGN_REQUEST: bytes to sign */
    size_t data_len;
    uint32_t flags;          /* SIGN_REQUEST */
    const uint8_t *ext_name; /* EXTENSION: name (not NUL-terminated) */
    size_t ext_name_len;
};

/*
 * Parses one frame at the start of p/len. Returns 0 with *req filled and
 * *consumed = the frame's size; GW_ENEED_MORE when the frame is not all
 * there yet (*need, when not NULL, then holds the whole frame's size if
 * the header is known, else 0); GW_ETOO_BIG for a length above
 * AGENT_MAX_MSG; GW_EPROTO for an empty frame or a malformed body of a
 * message we implement. Unknown types parse fine (the caller answers
 * FAILURE).
 */
int agent_parse_request(const uint8_t *p, size_t len, struct agent_request *req,
                        size_t *consumed, size_t *need);

/*
 * Builds the reply frame to req into out (cap bytes) using the ring's
 * keys at now_ms; *outlen is its size. Never fails for a parsed request
 * except GW_ETOO_BIG (cap too small); a sign request for a key we do not
 * hold, or one that cannot be signed, gets SSH_AGENT_FAILURE.
 */
int agent_build_reply(const struct agent_request *req,
                      const struct key_ring *ring, const char *comment,
                      uint64_t now_ms, uint8_t *out, size_t cap,
                      size_t *outlen);

struct agent;

/*
 * Listens on the unix socket path (which must not exist; mode set to
 * 0600). ring is borrowed. comment names the keys in IDENTITIES_ANSWER.
 * Returns 0 or a libuv / gw error.
 */
int agent_start(uv_loop_t *loop, const char *path, const struct key_ring *ring,
                const char *comment, struct agent **out);
/*
 * Closes the listener and every client; the memory goes once the close
 * callbacks ran (keep the loop running). NULL is fine. Does not unlink
 * the socket file.
 */
void agent_stop(struct agent *a);
/* Changes AGENT_PARTIAL_TIMEOUT_MS (tests). */
void agent_set_partial_timeout(struct agent *a, uint64_t ms);
/* Clients connected right now (tests, status). */
size_t agent_client_count(const struct agent *a);

#endif
