/*
 * sshconfig.c - prints the ssh_config block users paste once.
 *
 * i-* hosts use the daemon's agent and only its key (IdentitiesOnly with
 * the .pub file the daemon keeps beside the agent socket, so ssh offers
 * exactly the key that was pushed and never trips MaxAuthTries with the
 * user's other keys). mi-* hosts get no key push from EC2 Instance
 * Connect, so they keep the user's own keys and agent.
 */
#include "sshconfig.h"

#include <string.h>

#include "config.h"

/* The SOCKS address ssh should dial: the first listener; a wildcard
 * address is reached through loopback. */
static void socks_endpoint(const struct config *cfg, char *out, size_t len)
{
    const char *listen = cfg->n_listen > 0 ? cfg->listen[0] : "127.0.0.1:1080";
    if (strncmp(listen, "0.0.0.0:", 8) == 0)
        snprintf(out, len, "127.0.0.1:%s", listen + 8);
    else if (strncmp(listen, "[::]:", 5) == 0)
        snprintf(out, len, "[::1]:%s", listen + 5);
    else
        snprintf(out, len, "%s", listen);
}

static void write_proxy(FILE *out, const char *self, const char *endpoint)
{
    if (self != NULL)
        fprintf(out, "    ProxyCommand %s proxy %%r@%%h %%p\n", self);
    else
        fprintf(out, "    ProxyCommand nc -X 5 -x %s %%r@%%h %%p\n", endpoint);
}

/* The lines that make ssh offer exactly the daemon's key, then the user
 * ("" = none). */
static void write_identity(FILE *out, const char *dir, const char *user)
{
    fprintf(out, "    IdentityAgent %s/%s\n", dir, RUNDIR_AGENT_SOCK);
    fprintf(out, "    IdentityFile %s/%s\n", dir, RUNDIR_PUBKEY);
    fprintf(out, "    IdentitiesOnly yes\n");
    if (user[0] != '\0')
        fprintf(out, "    User %s\n", user);
}

int sshconfig_write(FILE *out, const struct config *cfg, const char *self,
                    int named)
{
    char endpoint[CONFIG_ADDR_MAX + 16];
    socks_endpoint(cfg, endpoint, sizeof(endpoint));
    const char *dir = cfg->runtime_dir;

    fprintf(out, "# ssmgate: add to ~/.ssh/config (ssmgate must be running)\n");
    fprintf(out, "Host i-*\n");
    write_proxy(out, self, endpoint);
    write_identity(out, dir, cfg->default_user);
    fprintf(out, "\n# Hybrid nodes: no key push; your own keys apply.\n");
    fprintf(out, "Host mi-*\n");
    write_proxy(out, self, endpoint);

    if (named) {
        fprintf(out, "\n# Instances by Name tag: list the names you use.\n");
        fprintf(out, "Host web-1 db-1\n");
        write_proxy(out, self, endpoint);
        write_identity(out, dir, cfg->default_user);
        for (int i = 0; i < cfg->n_forwards; i++) {
            const struct config_forward *f = &cfg->forwards[i];
            const char *colon = strrchr(f->listen, ':');
            if (colon == NULL)
                continue;
            fprintf(out, "\n# [forward %s]\n", f->name);
            fprintf(out, "Host %s\n", f->name);
            fprintf(out, "    HostName %.*s\n", (int)(colon - f->listen),
                    f->listen);
            fprintf(out, "    Port %s\n", colon + 1);
            fprintf(out, "    HostKeyAlias %s\n", f->target);
            write_identity(out, dir, f->user);
        }
    }
    return ferror(out) ? -1 : 0;
}
