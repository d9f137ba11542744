/*
 * stats.h - what the gateway did since it started, counted where it
 * happens: the numbers behind the metrics page and `ssmgate status`.
 *
 * One struct stats, owned by the daemon, is handed to the wings that
 * count (the AWS request engine, the key push, the SSM backend) in their
 * options; a NULL pointer counts nothing, so a wing built without one
 * (unit tests, aws-call) needs no change. The loop is single-threaded:
 * plain integers, no atomics. Counters only go up.
 */
#ifndef SSMGATE_STATS_H
#define SSMGATE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "tunnel.h"

/* Plain event counters. */
#define STATS_COUNTER_MAP(X)                                                   \
    X(RESUMES_OK)      /* a dropped data channel resumed */                    \
    X(RESUMES_FAILED)  /* a resume gave up: the session ended */               \
    X(KEY_PUSH_OK)     /* SendSSHPublicKey succeeded */                        \
    X(KEY_PUSH_FAILED) /* SendSSHPublicKey failed or could not start */        \
    X(KEY_PUSH_REUSED) /* a fresh push served a connect: no API call */        \
    X(WARM_HITS)       /* a connection joined a session already started */

enum stats_counter {
#define STATS_ENUM(name) STATS_##name,
    STATS_COUNTER_MAP(STATS_ENUM)
#undef STATS_ENUM
        STATS_COUNTER_MAX_
};

/* API calls by (action, code): the action is ours, the code the
 * service's. The table is bounded whatever the service answers: a code
 * that is not a plain identifier, and every pair past the last row,
 * counts as "other". */
#define STATS_API_ROWS  96
#define STATS_LABEL_MAX 64
#define STATS_OTHER     "other"

struct stats_api_row {
    char action[STATS_LABEL_MAX];
    char code[STATS_LABEL_MAX];
    uint64_t n;
};

/* How long a tunnel took to open, from accept to the reply: upper bounds
 * in ms of the histogram's buckets (a last one, +Inf, is implied). */
#define STATS_OPEN_BOUNDS_MS                                                   \
    {                                                                          \
        50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000                      \
    }
#define STATS_OPEN_BUCKETS 10

struct stats {
    uint64_t counter[STATS_COUNTER_MAX_];
    uint64_t tunnels[TUNNEL_OUTCOME_MAX_]; /* ended, by outcome */
    uint64_t bytes_up, bytes_down;         /* of ended tunnels */
    struct stats_api_row api[STATS_API_ROWS];
    size_t n_api;
    uint64_t open_bucket[STATS_OPEN_BUCKETS]; /* not cumulative */
    uint64_t open_count, open_ms_sum;
    /* The most data messages one channel sent in any one second, by its
     * own send times: the service's limit as the gateway keeps it. */
    uint64_t dc_max_per_second;
};

void stats_count(struct stats *st, enum stats_counter c);
/* One answered (or failed to be answered) API request. code: "ok", the
 * service's error code, or one of ours for answers without one. */
void stats_dc_rate(struct stats *st, uint64_t per_second);
void stats_api_call(struct stats *st, const char *action, const char *code);
void stats_tunnel_opened(struct stats *st, uint64_t ms);
void stats_tunnel_ended(struct stats *st, enum tunnel_outcome outcome,
                        uint64_t bytes_up, uint64_t bytes_down);
/* The histogram's bucket bounds in ms, STATS_OPEN_BUCKETS - 1 of them. */
const uint64_t *stats_open_bounds(void);

#endif
