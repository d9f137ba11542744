/* tunnel.c - names of the tunnel kinds. */
#include "tunnel.h"

#include <stddef.h>

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
