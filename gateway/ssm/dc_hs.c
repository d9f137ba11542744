/*
 * dc_hs.c - see dc_hs.h. The request names a session type and a list
 * of actions; the reason names the session type when that is not Port,
 * else the last action that is not SessionType.
 */
#include "dc_hs.h"

#include <stdio.h>
#include <string.h>

int dc_hs_is_port(const struct dc_handshake_request *hs)
{
    return strcmp(hs->session_type, "Port") == 0;
}

int dc_hs_refusal(const struct dc_handshake_request *hs, char *why, size_t n)
{
    const char *what = dc_hs_is_port(hs) ? NULL : hs->session_type;
    for (int i = 0; dc_hs_is_port(hs) && i < hs->n_actions; i++)
        if (strcmp(hs->action_types[i], "SessionType") != 0)
            what = hs->action_types[i];
    if (what == NULL)
        return 0;
    snprintf(why, n, "the agent asked for %s, which ssmgate does not support",
             what);
    return 1;
}
