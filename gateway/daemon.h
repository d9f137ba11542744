/*
 * daemon.h - `ssmgate run`: the composition root. It builds every wing
 * (runtime dir, key ring, agent, control socket, server, AWS client,
 * WebSocket context, key push, SSM backend), wires them together, runs
 * the loop, answers the signals and tears everything down again.
 */
#ifndef SSMGATE_DAEMON_H
#define SSMGATE_DAEMON_H

#include "config.h"

/*
 * Runs the gateway in the foreground until SIGINT/SIGTERM and the drain
 * that follows. cfg is borrowed (the daemon takes its own ref); SIGHUP
 * reloads config_path (NULL = the default path) with ov applied again.
 * Returns the process exit status.
 */
int daemon_run(struct config *cfg, const char *config_path,
               const struct config_overrides *ov);

#endif
