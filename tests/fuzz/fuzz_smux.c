/* Fuzzes the smux v1 receive decoder. The first input byte picks where
 * the rest is cut into pieces (a different cut every 1 + b % 17 bytes),
 * so frames arrive split as they do across data channel messages. Checks:
 * every body byte handed out lies inside the input and in the order
 * given; the decoder never hands out more than the frames announced; an
 * error or a stop ends the feed; the same input fed whole gives the same
 * bytes to the same streams. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "smux.h"

struct seen {
    const uint8_t *lo, *hi; /* the piece being fed */
    const uint8_t *last;    /* end of the previous body byte handed out */
    uint64_t sum;           /* of sid * byte, to compare the two feeds */
    size_t bytes, fins;
};

static int on_psh(void *arg, uint32_t sid, const uint8_t *p, size_t n)
{
    struct seen *s = arg;
    CHECK(n > 0 && n <= 0xffff);
    CHECK(p >= s->lo && p + n <= s->hi);
    CHECK(s->last == NULL || p >= s->last);
    s->last = p + n;
    for (size_t i = 0; i < n; i++)
        s->sum += (uint64_t)sid * p[i];
    s->bytes += n;
    /* Stop now and then, as a session that broke would. */
    return sid == 0xdeadbeefu;
}

static int on_fin(void *arg, uint32_t sid)
{
    struct seen *s = arg;
    s->fins++;
    return sid == 0xdeadbeefu;
}

static const struct smux_rx_cb cb = {on_psh, on_fin};

static int feed(struct smux_rx *rx, struct seen *s, const uint8_t *p, size_t n)
{
    s->lo = p;
    s->hi = p + n;
    int rc = smux_rx_feed(rx, p, n, &cb, s);
    CHECK(rc == 0 || rc == SMUX_STOPPED || rc == GW_EPROTO);
    CHECK(rx->hdr_len < SMUX_HDR_LEN);
    CHECK(rx->left <= 0xffff);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = 1 + data[0] % 17;
    data++;
    size--;
    struct smux_rx rx = {0};
    struct seen split = {0};
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += step)
        rc = feed(&rx, &split, data + off, GW_MIN(step, size - off));
    struct smux_rx whole_rx = {0};
    struct seen whole = {0};
    int rc2 = feed(&whole_rx, &whole, data, size);
    CHECK(rc == rc2);
    if (rc == 0) {
        CHECK(split.bytes == whole.bytes && split.sum == whole.sum);
        CHECK(split.fins == whole.fins);
        CHECK(rx.hdr_len == whole_rx.hdr_len && rx.left == whole_rx.left);
        CHECK(memcmp(rx.hdr, whole_rx.hdr, rx.hdr_len) == 0);
    }
    return 0;
}
