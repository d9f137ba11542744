/*
 * ws.h - WebSocket client connections over libwebsockets on the daemon's
 * libuv loop (the only file that includes libwebsockets.h).
 *
 * One struct ws_ctx per process (one lws_context, a foreign loop); one
 * struct ws per connection. Sends are copied into a bounded queue of
 * frame slots with LWS_PRE headroom and written several per WRITEABLE
 * callback, their TLS records gathered into one send(); a full queue
 * answers GW_EAGAIN and on_writable fires once there is room. Received
 * messages are reassembled from fragments (up to a cap) and delivered
 * whole; sockets that just received are read on after the poll phase
 * while they yield whole messages.
 */
#ifndef SSMGATE_WS_H
#define SSMGATE_WS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proxy.h"

struct ws_ctx;
struct ws;

struct ws_cb {
    void (*on_open)(void *arg);
    void (*on_message)(void *arg, const uint8_t *data, size_t len, int binary);
    void (*on_writable)(void *arg);
    /* The connection failed or closed; reason is one sentence. The ws is
     * gone after this returns (do not call ws_close). */
    void (*on_close)(void *arg, const char *reason);
};

struct ws_header {
    const char *name; /* "Authorization" */
    const char *value;
};

/* ca_file: PEM bundle replacing the system roots (NULL = system). proxy
 * (NULL = none): the HTTPS proxy for hosts NO_PROXY does not name, as
 * core/proxy.h decided it for the API calls too. On an error after the
 * context was made, *out still holds it: free it as usual. */
int ws_ctx_new(uv_loop_t *loop, const char *ca_file, const struct proxy *proxy,
               struct ws_ctx **out);
/* Starts destroying the context: libwebsockets closes its handles while
 * the loop keeps running; call ws_ctx_finish once the loop has stopped. */
void ws_ctx_free(struct ws_ctx *ctx);
/* Completes the destruction after the loop ran (frees everything). */
void ws_ctx_finish(struct ws_ctx *ctx);

/*
 * Connects to url (wss:// or ws://; path and query sent verbatim) with
 * the extra upgrade headers (copied). Events arrive through cb. Returns 0
 * with *out, or an error (no callbacks then).
 */
int ws_connect(struct ws_ctx *ctx, const char *url,
               const struct ws_header *headers, size_t n_headers,
               const struct ws_cb *cb, void *arg, struct ws **out);
/* Queues one message (copied). 0, GW_EAGAIN (queue full; wait for
 * on_writable), or GW_ECLOSED. */
int ws_send(struct ws *w, const void *data, size_t len, int binary);
/* Room for more messages in the send queue? */
int ws_can_send(const struct ws *w);
/* Messages queued and not yet written; past `max` the caller hears of
 * room again through on_writable (returns 1: wait). */
int ws_backlogged(struct ws *w, unsigned max);
/* Pause / resume reading (backpressure toward the remote). */
void ws_rx_pause(struct ws *w, int paused);
/* Closes the connection; no callbacks after this returns. */
void ws_close(struct ws *w);

#endif
