/*
 * backend.h - what a tunnel backend offers the local front end.
 *
 * A backend turns a struct tunnel_spec into a byte stream to the remote end
 * (a plain TCP connection for "direct", an SSM session stream for the SSM
 * documents). conn.c and pump.c drive it only through this table, so a new
 * backend plugs in without touching them (dropbear's struct ChanType).
 *
 * Life of a stream: open() -> exactly one on_open(status) -> on_data /
 * on_eof / on_drain / on_error while open -> close(). After close() returns
 * no callback fires again and the stream memory belongs to the backend
 * (it frees it when its own handles are closed).
 */
#ifndef SSMGATE_BACKEND_H
#define SSMGATE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "tunnel.h"

struct backend_stream;

#define BACKEND_SESSION_ID_MAX 128

/* What a stream rides on, for the audit log and `ssmgate status`; every
 * field may be empty (a direct stream, a session not started yet). */
struct backend_stream_info {
    char session_id[BACKEND_SESSION_ID_MAX]; /* the SSM SessionId */
    char instance[TUNNEL_TARGET_MAX]; /* the instance a Name resolved to */
    char region[64];                  /* the region the session is in */
    int resumes; /* resumes of its session while this stream was on it */
    int joined;  /* joined a session already started: no API call */
    /* The document the session was started with (ssh may ride a port
     * forward); "" = the spec's. */
    char document[48];
};

struct backend_cb {
    /*
     * The stream is ready (status 0) or failed (negative gw_err: GW_EREFUSED,
     * GW_EUNREACHABLE, GW_EDENIED, GW_ETIMEOUT, GW_ENO_ROUTE, ...). reason is
     * one human sentence for the log (never a secret); may be NULL. After a
     * failure the owner still calls close().
     */
    void (*on_open)(void *arg, int status, const char *reason);
    /*
     * Remote bytes. The callee takes them all (copy or write) before
     * returning; it calls pause() when its own queue passes its high-water
     * mark and resume() once drained.
     */
    void (*on_data)(void *arg, const uint8_t *p, size_t n);
    /* The remote side finished sending (half-close). */
    void (*on_eof)(void *arg);
    /* write() returned less than asked earlier; now there is room again. */
    void (*on_drain)(void *arg);
    /* The stream ended other than by on_eof; the owner should close().
     * err GW_ECLOSED: the remote side ended the whole tunnel in its
     * ordinary way (a session of one connection the service closed);
     * GW_EREFUSED: the destination refused it; anything else: it broke.
     * reason as in on_open. */
    void (*on_error)(void *arg, int err, const char *reason);
    /* Optional, before on_open: the open waits for something slow (a
     * stopped instance starting) for up to ms more; the owner's own
     * open timeout starts again from now with ms added. */
    void (*on_wait)(void *arg, uint64_t ms, const char *why);
};

struct backend_ops {
    const char *name;
    /*
     * Starts opening a stream for spec. ctx is the backend's own state
     * (struct backend.ctx). On 0, *out is valid and on_open will be called
     * later (never from inside open()). On error nothing was created.
     */
    int (*open)(void *ctx, uv_loop_t *loop, const struct tunnel_spec *spec,
                const struct backend_cb *cb, void *arg,
                struct backend_stream **out);
    /*
     * Queues bytes toward the remote. Returns how many bytes were taken
     * (the caller may reuse its memory at once); fewer than n means the
     * backend is full and will call on_drain. Negative = gw_err.
     */
    ssize_t (*write)(struct backend_stream *s, const uint8_t *p, size_t n);
    /* No more bytes toward the remote (half-close once queued bytes left). */
    int (*shutdown)(struct backend_stream *s);
    /* Stop / restart on_data delivery (backpressure from the local side). */
    void (*pause)(struct backend_stream *s);
    void (*resume)(struct backend_stream *s);
    /* Ends the stream; no callbacks after this returns. */
    void (*close)(struct backend_stream *s);
    /* Optional: streams sharing this stream's session (smux), else 0. */
    int (*shared_streams)(const struct backend_stream *s);
    /* Optional: fills *out (zeroed by the caller); valid from open()
     * until close(), also after a failure. */
    void (*describe)(const struct backend_stream *s,
                     struct backend_stream_info *out);
};

/* A backend instance: its table plus its own state. */
struct backend {
    const struct backend_ops *ops;
    void *ctx;
};

#endif
