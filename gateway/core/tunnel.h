/*
 * tunnel.h - what a tunnel is, as the front end and the backends share it.
 *
 * The front end decides a struct tunnel_spec (route.c) and a backend builds
 * it; both sides include only this header, never each other.
 */
#ifndef SSMGATE_TUNNEL_H
#define SSMGATE_TUNNEL_H

#include <stdint.h>

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
    /* A [forward] port: no reply waits for the open, so a backend need
     * not hold its report to learn whether the destination is there. */
    int no_reply;
    /* A stopped target instance is started (StartInstances) and waited
     * for, up to start_timeout_ms; else the client hears it is stopped. */
    int start_stopped;
    int start_timeout_ms;
    /* Sessions this target's connections may spread over ([forward] or
     * [route] sessions_per_target); 0 = the backend's default. */
    int sessions_max;
};

/* How a client connection ended: the audit log's outcome and the metrics'
 * ssmgate_tunnels_total label. */
enum tunnel_outcome {
    TUNNEL_OK,          /* opened; ended by either side */
    TUNNEL_BROKEN,      /* opened; the session broke under it */
    TUNNEL_REFUSED,     /* a request the route, AWS or destination refused */
    TUNNEL_TIMEOUT,     /* not open within connect_timeout_ms */
    TUNNEL_AUTH_FAILED, /* proxy authentication missing or wrong */
    TUNNEL_BAD_REQUEST, /* malformed, unsupported, too large or unfinished */
    TUNNEL_ABORTED,     /* the client left, or the gateway stopped, first */
    TUNNEL_OUTCOME_MAX_
};

const char *tunnel_kind_name(enum tunnel_kind kind);
/* "ok", "broken", "refused", "timeout", "auth_failed", "bad_request",
 * "aborted". */
const char *tunnel_outcome_name(enum tunnel_outcome outcome);
/* The SSM document for an SSM kind; NULL for DIRECT. */
const char *tunnel_document(enum tunnel_kind kind);

/*
 * Why a tunnel failed or closed: text on the heap only once there is one,
 * so an idle tunnel carries no GW_REASON_MAX buffers. Formats (truncated
 * to GW_REASON_MAX) before it replaces, so the old text may be an
 * argument; with no memory the reason is NULL and readers print their
 * default.
 */
void tunnel_reason_set(char **reason, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
