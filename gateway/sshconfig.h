/*
 * sshconfig.h - `ssmgate ssh-config`: a ready ~/.ssh/config block for the
 * running configuration (listener, agent socket, public key file).
 */
#ifndef SSMGATE_SSHCONFIG_H
#define SSMGATE_SSHCONFIG_H

#include <stdio.h>

struct config;

/* File names inside the runtime directory, shared by every module. */
#define RUNDIR_AGENT_SOCK   "agent.sock"
#define RUNDIR_CONTROL_SOCK "control.sock"
#define RUNDIR_PUBKEY       "id_ed25519.pub"
#define RUNDIR_KEYFILE      "id_ed25519"

/*
 * Writes the block to out. self is the path of the ssmgate binary for the
 * built-in ProxyCommand (NULL = use `nc -X 5`). named adds a variant for
 * hosts named in [forward]/[route] sections and for Name tags.
 */
int sshconfig_write(FILE *out, const struct config *cfg, const char *self,
                    int named);

#endif
