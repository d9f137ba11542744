/*
 * cli_proxy.h - `ssmgate proxy HOST PORT`: a built-in ssh ProxyCommand.
 *
 * Connects to the running daemon's SOCKS/HTTP port (the one it is bound to,
 * asked on its control socket: port 0 works), asks it for HOST:PORT with
 * HTTP CONNECT (with the config's socks_user credentials) and then copies
 * stdin to the tunnel and the tunnel to stdout until both directions are
 * done. No nc needed.
 */
#ifndef SSMGATE_CLI_PROXY_H
#define SSMGATE_CLI_PROXY_H

struct config;

/* argv: HOST PORT. ask_daemon: 0 when --listen on the command line says
 * where the daemon is (endpoint.h). Returns the process exit status. */
int cli_proxy(const struct config *cfg, int ask_daemon, int argc, char **argv);

#endif
