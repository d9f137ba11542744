/*
 * smux.h - smux v1 framing (the agent's port-forward multiplexer), pure.
 *
 * A frame is an 8-byte header (version 1, cmd, little-endian length and
 * stream id) and, for PSH and UPD, a body. The decoder is fed whatever
 * bytes arrive, in pieces of any size, and hands back events; it touches
 * no socket (nghttp2's mem_recv model). The control queue holds SYN, FIN
 * and NOP frames that found no window room, in order, so a stream's data
 * never overtakes its SYN.
 */
#ifndef SSMGATE_SMUX_H
#define SSMGATE_SMUX_H

#include <stddef.h>
#include <stdint.h>

#define SMUX_HDR_LEN 8
#define SMUX_MAX_PSH 32768
#define SMUX_STOPPED 1 /* smux_rx_feed: a callback asked to stop */

enum smux_cmd {
    SMUX_SYN = 0,
    SMUX_FIN = 1,
    SMUX_PSH = 2,
    SMUX_NOP = 3,
    SMUX_UPD = 4
};

void smux_put_hdr(uint8_t out[SMUX_HDR_LEN], enum smux_cmd cmd, uint32_t sid,
                  uint16_t len);
/* 0, or GW_EPROTO for a version, cmd or length smux v1 does not allow. */
int smux_get_hdr(const uint8_t in[SMUX_HDR_LEN], uint8_t *cmd, uint32_t *sid,
                 uint16_t *len);

/* Receive state: a partial header or the rest of a body. Zero it to start. */
struct smux_rx {
    uint8_t hdr[SMUX_HDR_LEN];
    size_t hdr_len;
    uint32_t left, sid;
    uint8_t cmd;
};

struct smux_rx_cb { /* a nonzero return stops the feed */
    /* Body bytes of a PSH frame; one frame may come in several calls. */
    int (*on_psh)(void *arg, uint32_t sid, const uint8_t *p, size_t n);
    /* A FIN frame: the far end closed sid. */
    int (*on_fin)(void *arg, uint32_t sid);
};

/* Feeds n bytes. SYN and NOP frames are read and ignored, as are UPD
 * bodies. Returns 0 (all consumed), SMUX_STOPPED, or GW_EPROTO (the
 * stream is broken; feed no more). */
int smux_rx_feed(struct smux_rx *rx, const uint8_t *p, size_t n,
                 const struct smux_rx_cb *cb, void *arg);

/* The control-frame ring; zero it to start, grows as needed. */
struct smux_ctrl {
    uint8_t (*ctrl)[SMUX_HDR_LEN];
    size_t ctrl_head, ctrl_len, ctrl_cap;
};

/* Appends one header-only frame: 0 or GW_ENOMEM. */
int smux_ctrl_push(struct smux_ctrl *q, enum smux_cmd cmd, uint32_t sid);
/* The oldest frame, or NULL when empty. */
const uint8_t *smux_ctrl_peek(const struct smux_ctrl *q);
void smux_ctrl_pop(struct smux_ctrl *q);
void smux_ctrl_free(struct smux_ctrl *q);

#endif
