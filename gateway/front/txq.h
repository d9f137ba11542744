/*
 * txq.h - the write side of one libuv stream: bytes queued toward a socket
 * with at most one uv_write in flight.
 *
 * Writes first try uv_try_write (no copy at all when the kernel takes
 * everything, the common case); only the rest is copied into the fill
 * buffer. While a uv_write drains the other buffer, new bytes go to the
 * fill buffer; the two swap when the write completes, so bytes under a
 * pending write never move. Both buffers are allocated once.
 */
#ifndef SSMGATE_TXQ_H
#define SSMGATE_TXQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "defer.h"

struct txq;

/* A queued write finished (status 0) or failed (libuv error). */
typedef void txq_written_cb(struct txq *q, int status, void *arg);

struct txq {
    uv_stream_t *stream;
    struct buf bufs[2]; /* [flight] under uv_write, [1 - flight] filling */
    int flight;
    int writing; /* a uv_write of bufs[flight] is pending */
    uv_write_t req;
    txq_written_cb *written;
    void *arg;
    uint64_t bytes;     /* total accepted, for statistics */
    struct defer later; /* txq_queue's flush before the loop sleeps */
};

/* Two buffers of cap bytes each. Returns 0 or GW_ENOMEM. */
int txq_init(struct txq *q, uv_stream_t *stream, size_t cap,
             txq_written_cb *written, void *arg);
void txq_free(struct txq *q);

/* Bytes accepted but not yet handed to the kernel. */
size_t txq_pending(const struct txq *q);
/* Bytes that can still be accepted. */
size_t txq_room(const struct txq *q);

/*
 * Queues up to n bytes and returns how many were taken (n unless the fill
 * buffer is full), or a negative libuv error when the socket failed.
 */
ssize_t txq_write(struct txq *q, const uint8_t *p, size_t n);

/*
 * The same for a stream of small pieces (tunnel messages of 1 KiB): they
 * are copied into the fill buffer and written together just before the
 * loop next waits, one syscall per loop pass instead of one per piece.
 * Pieces of TXQ_COALESCE_MAX bytes or more take the txq_write path.
 */
#define TXQ_COALESCE_MAX (16 * 1024)
ssize_t txq_queue(struct txq *q, const uint8_t *p, size_t n);

#endif
