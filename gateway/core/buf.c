/*
 * buf.c - bounded buffers and views. The only file that does pointer
 * arithmetic on raw byte storage for the rest of the daemon.
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Storage comes with the first byte written, not with the buf: a tunnel's
 * buffers sized for bulk transfers cost an idle one nothing (the pages a
 * large allocation's header touches included). */
int buf_init(struct buf *b, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->cap = cap;
    b->owned = 1;
    return 0;
}

static int buf_alloc(struct buf *b)
{
    if (b->data != NULL)
        return 0;
    b->data = malloc(b->cap ? b->cap : 1);
    return b->data != NULL ? 0 : GW_ENOMEM;
}

void buf_trim(struct buf *b)
{
    if (!b->owned || b->data == NULL || buf_len(b) > 0)
        return;
    free(b->data);
    b->data = NULL;
    b->rpos = b->wpos = 0;
}

void buf_wrap(struct buf *b, void *mem, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->data = mem;
    b->cap = cap;
}

void buf_free(struct buf *b)
{
    if (b->owned)
        free(b->data);
    memset(b, 0, sizeof(*b));
}

void buf_reset(struct buf *b)
{
    b->rpos = b->wpos = 0;
}

static void buf_compact(struct buf *b)
{
    size_t len = buf_len(b);
    if (b->rpos == 0)
        return;
    if (len > 0)
        memmove(b->data, b->data + b->rpos, len);
    b->rpos = 0;
    b->wpos = len;
}

int buf_reserve(struct buf *b, size_t n, uint8_t **out)
{
    if (n > buf_room(b))
        return GW_ETOO_BIG;
    if (buf_alloc(b) != 0)
        return GW_ENOMEM;
    if (b->cap - b->wpos < n)
        buf_compact(b);
    *out = b->data + b->wpos;
    return 0;
}

size_t buf_reserve_all(struct buf *b, uint8_t **out)
{
    if (buf_alloc(b) != 0) {
        *out = NULL;
        return 0;
    }
    if (buf_len(b) == 0)
        b->rpos = b->wpos = 0;
    else if (b->cap - b->wpos < buf_room(b) / 2)
        buf_compact(b);
    *out = b->data + b->wpos;
    return b->cap - b->wpos;
}

void buf_commit(struct buf *b, size_t n)
{
    CHECK(n <= b->cap - b->wpos);
    b->wpos += n;
}

void buf_consume(struct buf *b, size_t n)
{
    CHECK(n <= buf_len(b));
    b->rpos += n;
    if (b->rpos == b->wpos)
        b->rpos = b->wpos = 0;
}

int buf_put(struct buf *b, const void *p, size_t n)
{
    uint8_t *dst;
    int rc = buf_reserve(b, n, &dst);
    if (rc != 0)
        return rc;
    if (n > 0)
        memcpy(dst, p, n);
    b->wpos += n;
    return 0;
}

void buf_store_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void buf_store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void buf_store_u64(uint8_t *p, uint64_t v)
{
    buf_store_u32(p, (uint32_t)(v >> 32));
    buf_store_u32(p + 4, (uint32_t)v);
}

uint16_t buf_load_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t buf_load_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

uint64_t buf_load_u64(const uint8_t *p)
{
    return ((uint64_t)buf_load_u32(p) << 32) | buf_load_u32(p + 4);
}

int buf_put_u8(struct buf *b, uint8_t v)
{
    return buf_put(b, &v, 1);
}

int buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t tmp[2];
    buf_store_u16(tmp, v);
    return buf_put(b, tmp, sizeof(tmp));
}

int buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t tmp[4];
    buf_store_u32(tmp, v);
    return buf_put(b, tmp, sizeof(tmp));
}

int buf_put_u64(struct buf *b, uint64_t v)
{
    uint8_t tmp[8];
    buf_store_u64(tmp, v);
    return buf_put(b, tmp, sizeof(tmp));
}

int buf_put_u16_le(struct buf *b, uint16_t v)
{
    uint8_t tmp[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return buf_put(b, tmp, sizeof(tmp));
}

int buf_put_u32_le(struct buf *b, uint32_t v)
{
    uint8_t tmp[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                      (uint8_t)(v >> 24)};
    return buf_put(b, tmp, sizeof(tmp));
}

int buf_put_string(struct buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX || 4 + n > buf_room(b))
        return GW_ETOO_BIG;
    buf_put_u32(b, (uint32_t)n);
    return buf_put(b, p, n);
}

int buf_get_bytes(struct buf_view *v, size_t n, const uint8_t **out)
{
    if (buf_view_left(v) < n)
        return GW_ENEED_MORE;
    *out = v->p + v->pos;
    v->pos += n;
    return 0;
}

int buf_get_u8(struct buf_view *v, uint8_t *out)
{
    const uint8_t *p;
    int rc = buf_get_bytes(v, 1, &p);
    if (rc == 0)
        *out = p[0];
    return rc;
}

int buf_get_u16(struct buf_view *v, uint16_t *out)
{
    const uint8_t *p;
    int rc = buf_get_bytes(v, 2, &p);
    if (rc == 0)
        *out = buf_load_u16(p);
    return rc;
}

int buf_get_u32(struct buf_view *v, uint32_t *out)
{
    const uint8_t *p;
    int rc = buf_get_bytes(v, 4, &p);
    if (rc == 0)
        *out = buf_load_u32(p);
    return rc;
}

int buf_get_u64(struct buf_view *v, uint64_t *out)
{
    const uint8_t *p;
    int rc = buf_get_bytes(v, 8, &p);
    if (rc == 0)
        *out = buf_load_u64(p);
    return rc;
}

int buf_get_u16_le(struct buf_view *v, uint16_t *out)
{
    const uint8_t *p;
    int rc = buf_get_bytes(v, 2, &p);
    if (rc == 0)
        *out = (uint16_t)(p[0] | (p[1] << 8));
    return rc;
}

int buf_get_u32_le(struct buf_view *v, uint32_t *out)
{
    const uint8_t *p;
    int rc = buf_get_bytes(v, 4, &p);
    if (rc == 0)
        *out = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
               ((uint32_t)p[3] << 24);
    return rc;
}

int buf_get_string(struct buf_view *v, size_t max, const uint8_t **out,
                   size_t *outlen)
{
    struct buf_view tmp = *v;
    uint32_t n;
    int rc = buf_get_u32(&tmp, &n);
    if (rc != 0)
        return rc;
    if (n > max)
        return GW_ETOO_BIG;
    rc = buf_get_bytes(&tmp, n, out);
    if (rc != 0)
        return rc;
    *outlen = n;
    *v = tmp;
    return 0;
}

int buf_get_view(struct buf_view *v, size_t n, struct buf_view *child)
{
    const uint8_t *p;
    int rc = buf_get_bytes(v, n, &p);
    if (rc == 0)
        *child = buf_view_of(p, n);
    return rc;
}
