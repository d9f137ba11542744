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

struct config;
struct config_forward;

enum tunnel_kind {
    TUNNEL_DIRECT,     /* plain TCP to host:port ("via = direct") */
    TUNNEL_SSM_SSH,    /* AWS-StartSSHSession to target, with key push */
    TUNNEL_SSM_PORT,   /* AWS-StartPortForwardingSession to target:port */
    TUNNEL_SSM_REMOTE, /* ...ToRemoteHost: host:port through target */
};

#define TUNNEL_TARGET_MAX  256 /* instance id or Name */
#define TUNNEL_HOST_MAX    256
#define TUNNEL_USER_MAX    33 /* EIC InstanceOSUser is 1-32 chars */
#define TUNNEL_PROFILE_MAX 128
#define TUNNEL_REGION_MAX  32
#define TUNNEL_LABEL_MAX   96

struct tunnel_spec {
    enum tunnel_kind kind;
    /* i-..., mi-... or, when target_is_name, a Name tag to resolve. */
    char target[TUNNEL_TARGET_MAX];
    int target_is_name;
    /* DIRECT: host to dial. SSM_REMOTE: remote_host seen from target. */
    char host[TUNNEL_HOST_MAX];
    uint16_t port;              /* on host (DIRECT, SSM_REMOTE) or on target */
    char user[TUNNEL_USER_MAX]; /* OS user for the key push; may be "" */
    char profile[TUNNEL_PROFILE_MAX]; /* "" = default chain */
    char region[TUNNEL_REGION_MAX];   /* "" = profile/env default */
    char label[TUNNEL_LABEL_MAX];     /* [forward]/[route] name for logs */
};

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

const char *tunnel_kind_name(enum tunnel_kind kind);
/* The SSM document for an SSM kind; NULL for DIRECT. */
const char *tunnel_document(enum tunnel_kind kind);

#endif
