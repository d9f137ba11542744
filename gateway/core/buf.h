/*
 * buf.h - the one bounded byte buffer, and read-only views for parsers.
 *
 * struct buf owns (or wraps) cap bytes of storage: bytes [rpos, wpos) are
 * readable, [wpos, cap) writable. It never grows past cap: a writer that
 * does not fit gets GW_ETOO_BIG and must apply backpressure instead.
 *
 * struct buf_view is a cursor over bytes someone else owns. Parsers read
 * incomplete input through a view and get GW_ENEED_MORE without consuming
 * anything; the caller consumes from the buf only once a whole message
 * parsed. Multi-byte getters are big-endian unless named _le.
 */
#ifndef SSMGATE_BUF_H
#define SSMGATE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t cap;
    size_t rpos; /* first unread byte */
    size_t wpos; /* first free byte */
    int owned;   /* data was allocated by buf_init */
};

/* A buf of cap bytes, allocated when first written to. Returns 0. */
int buf_init(struct buf *b, size_t cap);
/* Gives an empty buf's storage back (it comes again with the next write). */
void buf_trim(struct buf *b);
/* Uses caller-owned storage; buf_free then leaves it alone. */
void buf_wrap(struct buf *b, void *mem, size_t cap);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
    return b->wpos - b->rpos;
}
static inline const uint8_t *buf_rptr(const struct buf *b)
{
    return b->data != NULL ? b->data + b->rpos : (const uint8_t *)"";
}
/* Bytes that can still be added (after compaction). */
static inline size_t buf_room(const struct buf *b)
{
    return b->cap - buf_len(b);
}

/*
 * Makes n contiguous writable bytes at the end (moving unread bytes to the
 * front when that is needed) and points *out at them. Returns 0 or
 * GW_ETOO_BIG when n > buf_room().
 */
int buf_reserve(struct buf *b, size_t n, uint8_t **out);
/* Same, but gives all contiguous free space: *out and its size (0 and
 * NULL when the storage cannot be allocated). */
size_t buf_reserve_all(struct buf *b, uint8_t **out);
/* Marks n bytes written after a reserve. */
void buf_commit(struct buf *b, size_t n);
/* Drops n unread bytes from the front. */
void buf_consume(struct buf *b, size_t n);

/* Appenders: 0 or GW_ETOO_BIG (nothing written then). */
int buf_put(struct buf *b, const void *p, size_t n);
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u16(struct buf *b, uint16_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
int buf_put_u16_le(struct buf *b, uint16_t v);
int buf_put_u32_le(struct buf *b, uint32_t v);
/* SSH wire string: uint32 length + bytes. */
int buf_put_string(struct buf *b, const void *p, size_t n);

/* Big-endian stores into raw memory (for fixed headers). */
void buf_store_u16(uint8_t *p, uint16_t v);
void buf_store_u32(uint8_t *p, uint32_t v);
void buf_store_u64(uint8_t *p, uint64_t v);
uint16_t buf_load_u16(const uint8_t *p);
uint32_t buf_load_u32(const uint8_t *p);
uint64_t buf_load_u64(const uint8_t *p);

struct buf_view {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static inline struct buf_view buf_view_of(const void *p, size_t len)
{
    struct buf_view v = {(const uint8_t *)p, len, 0};
    return v;
}
/* A view of b's unread bytes. */
static inline struct buf_view buf_peek(const struct buf *b)
{
    return buf_view_of(buf_rptr(b), buf_len(b));
}
static inline size_t buf_view_left(const struct buf_view *v)
{
    return v->len - v->pos;
}

/* Getters: 0, or GW_ENEED_MORE with the cursor unchanged. */
int buf_get_u8(struct buf_view *v, uint8_t *out);
int buf_get_u16(struct buf_view *v, uint16_t *out);
int buf_get_u32(struct buf_view *v, uint32_t *out);
int buf_get_u64(struct buf_view *v, uint64_t *out);
int buf_get_u16_le(struct buf_view *v, uint16_t *out);
int buf_get_u32_le(struct buf_view *v, uint32_t *out);
/* Points *out at the next n bytes (no copy) and skips them. */
int buf_get_bytes(struct buf_view *v, size_t n, const uint8_t **out);
/*
 * SSH wire string: uint32 length + bytes. A length above max gives
 * GW_ETOO_BIG (checked before waiting for the bytes).
 */
int buf_get_string(struct buf_view *v, size_t max, const uint8_t **out,
                   size_t *outlen);
/* A child view over the next n bytes; the parent skips them. */
int buf_get_view(struct buf_view *v, size_t n, struct buf_view *child);

#endif
