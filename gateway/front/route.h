/*
 * route.h - from what a client asked for to what tunnel to build.
 *
 * Pure: a hostname (SOCKS / HTTP CONNECT) plus port and the loaded config
 * give a struct tunnel_spec or a refusal with a reason; a [forward] entry
 * gives its fixed spec. Nothing here does I/O.
 */
#ifndef SSMGATE_ROUTE_H
#define SSMGATE_ROUTE_H

#include <stdint.h>

#include "tunnel.h"

struct config;
struct config_forward;

/*
 * Decides the tunnel for a requested host:port. host is what the client
 * sent: "i-0123...", "user@i-....eu-west-1", "mi-...", or a name that the
 * [route] rules may match. Returns 0 with *out filled, or GW_ENO_ROUTE with
 * *reason pointing at a static sentence, or GW_EINVAL for a malformed name.
 */
int route_resolve(const struct config *cfg, const char *host, uint16_t port,
                  struct tunnel_spec *out, const char **reason);

/* The fixed spec of a [forward] entry. */
int route_from_forward(const struct config *cfg,
                       const struct config_forward *fwd,
                       struct tunnel_spec *out);

#endif
