/*
 * sshconfig.h - `ssmgate ssh-config`: a ready ~/.ssh/config block for the
 * running configuration (listener, agent socket, public key file).
 */
#ifndef SSMGATE_SSHCONFIG_H
#define SSMGATE_SSHCONFIG_H

#include <stdio.h>

#include "rundir.h" /* RUNDIR_AGENT_SOCK, RUNDIR_PUBKEY, ... */

struct config;

struct sshconfig_opts {
    /* The ssmgate binary for `ProxyCommand ssmgate proxy` (NULL: unknown,
     * nc lines only), and the options to repeat in it so the proxy reads
     * the same config and runtime directory (NULL: not given). */
    const char *self, *config_path, *runtime_dir;
    /* --listen on this command line (NULL: not given) says where the
     * daemon listens: the daemon is not asked (endpoint.h), and the
     * ProxyCommand repeats it. */
    const char *listen;
    /* Host blocks for each [forward] that carries ssh. */
    int named;
};

/*
 * Writes the block to out: per [account] the Host patterns *SUFFIX (and
 * mi-*SUFFIX), then i-* and mi-*; with named, one Host per ssh [forward].
 * The ProxyCommand is `nc -X 5 -x ADDR` with the daemon's address, or
 * `ssmgate proxy` when nc cannot do it (socks_user set) or the port is
 * the OS's choice (listen = ...:0, new at every start). Returns 0, or -1
 * with the reason on stderr (a port 0 no running daemon can tell).
 */
int sshconfig_write(FILE *out, const struct config *cfg,
                    const struct sshconfig_opts *o);

#endif
