/*
 * ssm_mode.c - agent version thresholds (from the session-manager-plugin).
 *
 * The agent runs smux when the session is LocalPortForwarding, our
 * ClientVersion is >= 1.1.70 (it is) and the agent is newer than
 * 3.0.196.0; older agents run basic port forwarding. Agents up to
 * 3.1.1511.0 may run smux keepalive and drop a session that sends no frame
 * for 30 s. Basic-mode agents up to 2.3.722.0 do not know the
 * TerminateSession flag (the API call, always made, ends those).
 */
#include "ssm_mode.h"

#include <string.h>

#include "dc_msg.h"

void ssm_mode_for(const char *properties_type, const char *agent_version,
                  struct ssm_mode *out)
{
    int port = strcmp(properties_type, "LocalPortForwarding") == 0;
    out->mux = port && dc_version_cmp(agent_version, "3.0.196.0") > 0;
    out->basic = port && !out->mux;
    out->keepalive =
        out->mux && dc_version_cmp(agent_version, "3.1.1511.0") <= 0;
    out->terminate_flag =
        !(out->basic && dc_version_cmp(agent_version, "2.3.722.0") <= 0);
}

const char *ssm_mode_name(const struct ssm_mode *m)
{
    return m->mux ? "smux" : m->basic ? "basic" : "stream";
}
