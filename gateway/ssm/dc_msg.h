/*
 * dc_msg.h - the Session Manager data channel's binary message (the
 * plugin's ClientMessage, the agent's AgentMessage) and its JSON control
 * payloads. Pure: bytes in, views out; the encoder writes into memory the
 * caller provides (so the hot path encodes straight into a WebSocket
 * buffer).
 *
 * Layout (all integers big-endian): HeaderLength u32 (=116) | MessageType
 * 32 bytes space-padded | SchemaVersion u32 | CreatedDate u64 ms |
 * SequenceNumber i64 | Flags u64 | MessageId 16 bytes (UUID halves
 * swapped) | PayloadDigest 32 bytes SHA-256(payload) | PayloadType u32 |
 * PayloadLength u32 | Payload.
 */
#ifndef SSMGATE_DC_MSG_H
#define SSMGATE_DC_MSG_H

#include <stddef.h>
#include <stdint.h>

#define DC_MSG_HEADER_LEN 116
#define DC_MSG_OVERHEAD   120 /* header + the PayloadLength field */
#define DC_MSG_TYPE_LEN   32

#define DC_TYPE_INPUT     "input_stream_data"
#define DC_TYPE_OUTPUT    "output_stream_data"
#define DC_TYPE_ACK       "acknowledge"
#define DC_TYPE_CLOSED    "channel_closed"
#define DC_TYPE_START_PUB "start_publication"
#define DC_TYPE_PAUSE_PUB "pause_publication"

enum dc_payload_type {
    DC_PT_OUTPUT = 1,
    DC_PT_ERROR = 2,
    DC_PT_SIZE = 3,
    DC_PT_PARAMETER = 4,
    DC_PT_HANDSHAKE_REQUEST = 5,
    DC_PT_HANDSHAKE_RESPONSE = 6,
    DC_PT_HANDSHAKE_COMPLETE = 7,
    DC_PT_ENC_CHALLENGE_REQUEST = 8,
    DC_PT_ENC_CHALLENGE_RESPONSE = 9,
    DC_PT_FLAG = 10,
    DC_PT_STDERR = 11,
    DC_PT_EXIT_CODE = 12,
};

enum dc_flag {
    DC_FLAG_DISCONNECT_TO_PORT = 1,
    DC_FLAG_TERMINATE_SESSION = 2,
    DC_FLAG_CONNECT_TO_PORT_ERROR = 3,
};

/* A decoded message: views into the frame it came from. */
struct dc_msg {
    char type[DC_MSG_TYPE_LEN + 1]; /* trimmed of spaces and NULs */
    uint32_t schema_version;
    uint64_t created_ms;
    int64_t seq;
    uint64_t flags;
    uint8_t id[16]; /* canonical RFC 4122 byte order */
    uint32_t payload_type;
    const uint8_t *payload;
    uint32_t payload_len;
};

/*
 * Decodes and validates one frame: length bounds, HeaderLength, a
 * non-empty type, CreatedDate non-zero, PayloadLength equal to the bytes
 * present, and the SHA-256 digest (publication messages are exempt from
 * the field checks, as the real client exempts them). Returns 0 or
 * GW_EPROTO with *why set.
 */
int dc_msg_decode(const uint8_t *frame, size_t len, struct dc_msg *out,
                  const char **why);

/*
 * Encodes a message into out (at least DC_MSG_OVERHEAD + payload_len
 * bytes); the payload may already sit at out + DC_MSG_OVERHEAD (then pass
 * that pointer: no copy is made). Returns the frame length.
 */
size_t dc_msg_encode(uint8_t *out, const char *type, int64_t seq,
                     uint64_t flags, const uint8_t id[16], uint64_t created_ms,
                     uint32_t payload_type, const uint8_t *payload,
                     uint32_t payload_len);

/* A random v4 UUID (canonical order) and its lower-case text form. */
void dc_uuid_new(uint8_t id[16]);
void dc_uuid_str(const uint8_t id[16], char out[37]);

/* MessageIds for one channel: a random v4 UUID whose last 48 bits are
 * XORed with a counter. Unique per channel and unguessable across
 * channels, without a CSPRNG call (and its fork check) per message. */
struct dc_ids {
    uint8_t base[16];
    uint64_t next;
};
void dc_ids_init(struct dc_ids *g);
void dc_ids_next(struct dc_ids *g, uint8_t id[16]);
int dc_uuid_parse(const char *s, uint8_t id[16]);

/* ---- JSON payloads (malloc'd strings; free with free()) ---- */

/* The acknowledge payload for (type, id, seq). */
char *dc_ack_json(const char *acked_type, const uint8_t id[16], int64_t seq);
/* The same into out (no allocation: acks are sent for every message).
 * Returns the length, or 0 when out is too small. */
size_t dc_ack_format(char *out, size_t len, const char *acked_type,
                     const uint8_t id[16], int64_t seq);
/* AcknowledgedMessageSequenceNumber from an acknowledge payload: 0 or
 * GW_EPROTO. dc_ack_parse_json is the same through the JSON parser alone
 * (dc_ack_parse reads the agent's usual shape without it). */
int dc_ack_parse(const uint8_t *p, size_t len, int64_t *seq);
int dc_ack_parse_json(const uint8_t *p, size_t len, int64_t *seq);

/* The OpenDataChannel text frame. */
char *dc_open_json(const char *token, const char *client_id,
                   const char *client_version);

#define DC_MAX_ACTIONS 8
struct dc_handshake_request {
    char agent_version[32];
    char session_type[32];    /* from the SessionType action */
    char properties_type[40]; /* Properties.type ("LocalPortForwarding") */
    int n_actions;
    char action_types[DC_MAX_ACTIONS][32];
};
int dc_handshake_request_parse(const uint8_t *p, size_t len,
                               struct dc_handshake_request *out,
                               const char **why);
/* The HandshakeResponse: SessionType answered with status 1 when
 * supported, every other action with 3 (unsupported) and an error. */
char *dc_handshake_response_json(const struct dc_handshake_request *req,
                                 const char *client_version,
                                 int session_type_ok);
/* CustomerMessage of a HandshakeComplete ("" when absent). */
int dc_handshake_complete_parse(const uint8_t *p, size_t len, char *message,
                                size_t msglen);
/* Output text of channel_closed ("" when absent). */
void dc_channel_closed_parse(const uint8_t *p, size_t len, char *out,
                             size_t outlen);

/* -1, 0, 1 comparing dotted numeric versions ("3.1.1511.0"); a
 * malformed one compares low. */
int dc_version_cmp(const char *a, const char *b);

#endif
