/* tunnel.c - names of the tunnel kinds and outcomes. */
#include "tunnel.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const char *tunnel_kind_name(enum tunnel_kind kind)
{
    switch (kind) {
    case TUNNEL_DIRECT:
        return "direct";
    case TUNNEL_SSM_SSH:
        return "ssh";
    case TUNNEL_SSM_PORT:
        return "port";
    case TUNNEL_SSM_REMOTE:
        return "remote-port";
    default:
        return "?";
    }
}

const char *tunnel_document(enum tunnel_kind kind)
{
    switch (kind) {
    case TUNNEL_SSM_SSH:
        return "AWS-StartSSHSession";
    case TUNNEL_SSM_PORT:
        return "AWS-StartPortForwardingSession";
    case TUNNEL_SSM_REMOTE:
        return "AWS-StartPortForwardingSessionToRemoteHost";
    default:
        return NULL;
    }
}

const char *tunnel_outcome_name(enum tunnel_outcome outcome)
{
    static const char *const names[] = {
        [TUNNEL_OK] = "ok",
        [TUNNEL_BROKEN] = "broken",
        [TUNNEL_REFUSED] = "refused",
        [TUNNEL_TIMEOUT] = "timeout",
        [TUNNEL_AUTH_FAILED] = "auth_failed",
        [TUNNEL_BAD_REQUEST] = "bad_request",
        [TUNNEL_ABORTED] = "aborted",
    };
    if ((unsigned)outcome < TUNNEL_OUTCOME_MAX_)
        return names[outcome];
    return "?";
}

void tunnel_reason_set(char **reason, const char *fmt, ...)
{
    char text[GW_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    char *copy = strdup(text);
    free(*reason);
    *reason = copy;
}
