/*
 * audit.h - the audit log: one JSON object per line for every client
 * connection, written when it ends (the outcome, who, from where, to
 * what, through which SSM session, how many bytes, for how long, why it
 * ended).
 *
 * The file is opened O_APPEND (0600 when created) and each line goes out
 * in one write(): lines from this process never interleave or tear, and
 * a reader (a log shipper) sees whole lines. A local file append is
 * synchronous on the loop: microseconds on a local disk. A failed write
 * is one warning (then quiet until a write succeeds again), never a
 * stop. audit_reopen after a rename is how logrotate rotates it.
 */
#ifndef SSMGATE_AUDIT_H
#define SSMGATE_AUDIT_H

#include "conn.h"

struct audit;

/* Who the gateway is, for every line. */
struct audit_who {
    const char *gateway_user;    /* the user the daemon runs as */
    const char *default_profile; /* a tunnel with no profile of its own */
};

/* Opens (creates 0600) path for appending. 0 or a negative errno. */
int audit_open(const char *path, struct audit **out);
/* Opens path (NULL = the current one) again: the new file replaces the
 * old one once it opened; on failure the old one stays (and the error is
 * returned). */
int audit_reopen(struct audit *a, const char *path);
const char *audit_path(const struct audit *a);
void audit_close(struct audit *a);

/* Appends t's line. */
void audit_write(struct audit *a, const struct conn_info *t,
                 const struct audit_who *who);

/* The line for t, ending in a newline (malloc'd; NULL when out of
 * memory). local_user: the name of t->client_uid, or NULL. */
char *audit_line(const struct conn_info *t, const struct audit_who *who,
                 const char *local_user);

#endif
