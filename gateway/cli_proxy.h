/*
 * cli_proxy.h - `ssmgate proxy HOST PORT`: a built-in ssh ProxyCommand.
 *
 * Connects to the running daemon's SOCKS listener, asks it for HOST:PORT
 * (SOCKS5, name unresolved) and then copies stdin to the tunnel and the
 * tunnel to stdout until both directions are done. No nc needed.
 */
#ifndef SSMGATE_CLI_PROXY_H
#define SSMGATE_CLI_PROXY_H

struct config;

/* argv: HOST PORT. Returns the process exit status. */
int cli_proxy(const struct config *cfg, int argc, char **argv);

#endif
