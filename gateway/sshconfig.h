/*
 * sshconfig.h - `ssmgate ssh-config`: a ready ~/.ssh/config block for the
 * running configuration (listener, agent socket, public key file).
 */
#ifndef SSMGATE_SSHCONFIG_H
#define SSMGATE_SSHCONFIG_H

#include <stdio.h>

#include "rundir.h" /* RUNDIR_AGENT_SOCK, RUNDIR_PUBKEY, ... */

struct config;

/*
 * Writes the block to out. self is the path of the ssmgate binary for the
 * built-in ProxyCommand (NULL = use `nc -X 5`). named adds a variant for
 * hosts named in [forward]/[route] sections and for Name tags.
 */
int sshconfig_write(FILE *out, const struct config *cfg, const char *self,
                    int named);

#endif
