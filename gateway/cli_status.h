/*
 * cli_status.h - `ssmgate status`: the daemon's live tunnels and totals,
 * once (a table, or the JSON document) or as a live view (--watch).
 */
#ifndef SSMGATE_CLI_STATUS_H
#define SSMGATE_CLI_STATUS_H

struct config;

#define STATUS_INTERVAL_DEFAULT 1.0
#define STATUS_INTERVAL_MIN     0.1
#define STATUS_INTERVAL_MAX     3600.0

struct status_opts {
    int json;          /* the daemon's JSON document (one line per frame) */
    int watch;         /* a frame every interval_s until SIGINT or q */
    double interval_s; /* STATUS_INTERVAL_DEFAULT */
    long count;        /* --watch: stop after this many frames; 0 = never */
};

/* Exit status: 0; 1 when the daemon cannot be reached (once only: the
 * live view keeps retrying). */
int cli_status(const struct config *cfg, const struct status_opts *o);

#endif
