/*
 * ssm_opts.h - the SSM backend's settings, as the daemon gives them
 * (start-up and SIGHUP) and as every session reads them when used: rate,
 * payload size and handshake timeout when a channel starts, the budget
 * when a resume does, the linger when a client half-closes.
 */
#ifndef SSMGATE_SSM_OPTS_H
#define SSMGATE_SSM_OPTS_H

struct stats;

/* Which document carries ssh (config's ssh_document, same order). */
enum ssm_ssh_doc {
    SSM_SSH_DOC_AUTO,         /* port forward, AWS-StartSSHSession when
                                 that is denied (remembered) */
    SSM_SSH_DOC_SSH,          /* AWS-StartSSHSession: one per connection */
    SSM_SSH_DOC_PORT_FORWARD, /* AWS-StartPortForwardingSession only */
};

struct ssm_opts {
    int message_rate;
    int payload_size;
    int resume_budget_ms;
    int handshake_timeout_ms;
    int half_close_linger_ms;  /* quiet far end before a client EOF goes */
    int open_confirm_ms;       /* refusal wait after the SYN's ack; 0 = off */
    int session_linger_ms;     /* an idle session waits for the next conn */
    int ssh_document;          /* enum ssm_ssh_doc */
    int sessions_per_target;   /* sessions one target's conns spread over */
    const char *reason_prefix; /* "ssmgate: alice" for StartSession Reason */
    struct stats *stats;       /* resumes, warm hits; NULL = not counted */
};

#endif
