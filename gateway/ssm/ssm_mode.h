/*
 * ssm_mode.h - what the agent's handshake means for a session, pure.
 *
 * Port forwards run smux for current agents, smux with our keepalive NOPs
 * for agents up to 3.1.1511.0, and basic port forwarding (one connection
 * a session) for agents up to 3.0.196.0. Sessions of other kinds (SSH,
 * interactive) are a plain byte stream.
 */
#ifndef SSMGATE_SSM_MODE_H
#define SSMGATE_SSM_MODE_H

struct ssm_mode {
    int mux;            /* smux v1 streams */
    int basic;          /* basic port forwarding: one connection, then end */
    int keepalive;      /* send smux NOPs every SSM_MODE_NOP_MS */
    int terminate_flag; /* the agent understands the TerminateSession flag */
};

#define SSM_MODE_NOP_MS 10000 /* the plugin's keepalive interval */

/* Before the handshake: a stream, and the flag is sent. */
#define SSM_MODE_INIT                                                          \
    {                                                                          \
        0, 0, 0, 1                                                             \
    }

/* From the handshake's PropertiesType and AgentVersion. */
void ssm_mode_for(const char *properties_type, const char *agent_version,
                  struct ssm_mode *out);
/* "smux", "basic" or "stream", for logs. */
const char *ssm_mode_name(const struct ssm_mode *m);

#endif
