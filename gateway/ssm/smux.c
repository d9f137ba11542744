/*
 * smux.c - smux v1 header codec, receive decoder and control queue.
 *
 * The decoder is a two-state machine: collecting a header (hdr_len < 8)
 * or passing a body through (left > 0). It moves its own cursors before
 * each callback, so a callback that stops the feed leaves a consistent
 * state behind.
 */
#include "smux.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

void smux_put_hdr(uint8_t out[SMUX_HDR_LEN], enum smux_cmd cmd, uint32_t sid,
                  uint16_t len)
{
    out[0] = 1;
    out[1] = (uint8_t)cmd;
    out[2] = (uint8_t)len;
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)sid;
    out[5] = (uint8_t)(sid >> 8);
    out[6] = (uint8_t)(sid >> 16);
    out[7] = (uint8_t)(sid >> 24);
}

int smux_get_hdr(const uint8_t in[SMUX_HDR_LEN], uint8_t *cmd, uint32_t *sid,
                 uint16_t *len)
{
    *cmd = in[1];
    *len = (uint16_t)(in[2] | in[3] << 8);
    *sid = (uint32_t)in[4] | (uint32_t)in[5] << 8 | (uint32_t)in[6] << 16 |
           (uint32_t)in[7] << 24;
    /* Only PSH and UPD carry a body. */
    if (in[0] != 1 || *cmd > SMUX_UPD ||
        (*cmd != SMUX_PSH && *cmd != SMUX_UPD && *len != 0))
        return GW_EPROTO;
    return 0;
}

int smux_rx_feed(struct smux_rx *rx, const uint8_t *p, size_t n,
                 const struct smux_rx_cb *cb, void *arg)
{
    while (n > 0) {
        if (rx->left > 0) {
            size_t k = GW_MIN(n, (size_t)rx->left);
            const uint8_t *body = p;
            rx->left -= (uint32_t)k;
            p += k;
            n -= k;
            /* UPD bodies are read and dropped. */
            if (rx->cmd == SMUX_PSH && cb->on_psh(arg, rx->sid, body, k) != 0)
                return SMUX_STOPPED;
            continue;
        }
        size_t k = GW_MIN(n, sizeof(rx->hdr) - rx->hdr_len);
        memcpy(rx->hdr + rx->hdr_len, p, k);
        rx->hdr_len += k;
        p += k;
        n -= k;
        if (rx->hdr_len < sizeof(rx->hdr))
            return 0;
        rx->hdr_len = 0;
        uint16_t len;
        if (smux_get_hdr(rx->hdr, &rx->cmd, &rx->sid, &len) != 0)
            return GW_EPROTO;
        rx->left = len;
        if (rx->cmd == SMUX_FIN && cb->on_fin(arg, rx->sid) != 0)
            return SMUX_STOPPED;
    }
    return 0;
}

int smux_ctrl_push(struct smux_ctrl *q, enum smux_cmd cmd, uint32_t sid)
{
    if (q->ctrl_len == q->ctrl_cap) {
        size_t cap = q->ctrl_cap ? q->ctrl_cap * 2 : 64;
        uint8_t(*nq)[SMUX_HDR_LEN] = malloc(cap * sizeof(*nq));
        if (nq == NULL)
            return GW_ENOMEM;
        for (size_t i = 0; i < q->ctrl_len; i++)
            memcpy(nq[i], q->ctrl[(q->ctrl_head + i) % q->ctrl_cap],
                   SMUX_HDR_LEN);
        free(q->ctrl);
        q->ctrl = nq;
        q->ctrl_cap = cap;
        q->ctrl_head = 0;
    }
    smux_put_hdr(q->ctrl[(q->ctrl_head + q->ctrl_len) % q->ctrl_cap], cmd, sid,
                 0);
    q->ctrl_len++;
    return 0;
}

const uint8_t *smux_ctrl_peek(const struct smux_ctrl *q)
{
    return q->ctrl_len > 0 ? q->ctrl[q->ctrl_head] : NULL;
}

void smux_ctrl_pop(struct smux_ctrl *q)
{
    if (q->ctrl_len == 0)
        return;
    q->ctrl_head = (q->ctrl_head + 1) % q->ctrl_cap;
    q->ctrl_len--;
}

void smux_ctrl_free(struct smux_ctrl *q)
{
    free(q->ctrl);
    memset(q, 0, sizeof(*q));
}
