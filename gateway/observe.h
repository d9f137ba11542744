/*
 * observe.h - what the daemon tells about itself: the counters every wing
 * adds to (stats.h), the audit log (audit.h), the metrics endpoint
 * (metrics.h) and the status document of the control socket.
 *
 * daemon.c builds it first (the audit log must open, or the daemon does
 * not start), hands observe_stats() to the wings it builds, attaches it to
 * the server as the observer of every connection, and closes it last.
 */
#ifndef SSMGATE_OBSERVE_H
#define SSMGATE_OBSERVE_H

#include <jansson.h>
#include <uv.h>

struct aws_client;
struct backend_ssm;
struct config;
struct observe;
struct server;
struct stats;

/* Opens the audit log if cfg has one; an error is printed to stderr. */
int observe_new(uv_loop_t *loop, const struct config *cfg,
                struct observe **out);
struct stats *observe_stats(struct observe *o);
/* Every connection of s is seen from now on; s is borrowed. */
void observe_attach(struct observe *o, struct server *s);
/* What the metrics read besides the counters (NULL while not running). */
void observe_set_backends(struct observe *o, struct aws_client *aws,
                          struct backend_ssm *ssm);
/* Binds the metrics listener if cfg has one (after observe_new). */
int observe_listen(struct observe *o, const struct config *cfg);
/* SIGHUP, before anything else: the audit file again at its path (a
 * rotation renamed it), whatever the new configuration says. */
void observe_reopen(struct observe *o);
/* SIGHUP with a new configuration: a new audit path, a new metrics
 * address (the old one stays until the new one is bound). */
void observe_apply(struct observe *o, const struct config *cfg);
/* control_status_fn: fills the status document. */
void observe_status(void *arg, json_t *doc);
/* Closes the metrics listener (the loop still runs). */
void observe_stop(struct observe *o);
/* After the loop: the audit log and the memory. NULL is fine. */
void observe_free(struct observe *o);

#endif
