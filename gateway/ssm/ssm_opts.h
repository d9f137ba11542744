/*
 * ssm_opts.h - the SSM backend's settings, as the daemon gives them
 * (start-up and SIGHUP) and as every session reads them when used: rate,
 * payload size and handshake timeout when a channel starts, the budget
 * when a resume does, the linger when a client half-closes.
 */
#ifndef SSMGATE_SSM_OPTS_H
#define SSMGATE_SSM_OPTS_H

struct stats;

struct ssm_opts {
    int message_rate;
    int payload_size;
    int resume_budget_ms;
    int handshake_timeout_ms;
    int half_close_linger_ms;  /* quiet far end before a client EOF goes */
    int open_confirm_ms;       /* refusal wait after the SYN's ack; 0 = off */
    int session_linger_ms;     /* an idle session waits for the next conn */
    const char *reason_prefix; /* "ssmgate: alice" for StartSession Reason */
    struct stats *stats;       /* resumes, warm hits; NULL = not counted */
};

#endif
