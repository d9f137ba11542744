/*
 * sshconfig.c - prints the ssh_config block users paste once.
 *
 * i-* hosts use the daemon's agent and only its key (IdentitiesOnly with
 * the .pub file the daemon keeps beside the agent socket, so ssh offers
 * exactly the key that was pushed and never trips MaxAuthTries with the
 * user's other keys). mi-* hosts get no key push from EC2 Instance
 * Connect, so they keep the user's own keys and agent.
 *
 * ssh takes each option from the first Host block that sets it, so the
 * most specific patterns come first: the accounts' (longest suffix first,
 * mi- before the rest, which excludes it with !mi-*SUFFIX), then i-*, mi-*.
 */
#include "sshconfig.h"

#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "config.h"
#include "endpoint.h"
#include "route.h"

/* One ProxyCommand word for /bin/sh, with ssh's '%' escaped as "%%". */
static void write_word(FILE *out, const char *w)
{
    int plain = w[0] != '\0' &&
                strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789_/.,:=+-@") == strlen(w);
    fputc(' ', out);
    if (!plain)
        fputc('\'', out);
    for (const char *p = w; *p; p++) {
        if (*p == '%')
            fputs("%%", out);
        else if (*p == '\'')
            fputs("'\\''", out);
        else
            fputc(*p, out);
    }
    if (!plain)
        fputc('\'', out);
}

/* A path as an ssh_config argument: quoted if it has a space, '%' as
 * "%%" (ssh expands tokens in IdentityAgent and IdentityFile). */
static void write_path_arg(FILE *out, const char *dir, const char *file)
{
    int quote = strchr(dir, ' ') != NULL;
    fputs(quote ? " \"" : " ", out);
    for (const char *p = dir; *p; p++)
        fputs(*p == '%' ? "%%" : (char[]){*p, '\0'}, out);
    fprintf(out, "/%s%s\n", file, quote ? "\"" : "");
}

struct proxy_line {
    const struct sshconfig_opts *o;
    char socks[ENDPOINT_MAX]; /* "" = none known */
    int use_ssmgate;          /* ssmgate proxy rather than nc */
};

static void write_ssmgate_proxy(FILE *out, const struct proxy_line *p)
{
    write_word(out, p->o->self);
    if (p->o->config_path != NULL) {
        write_word(out, "--config");
        write_word(out, p->o->config_path);
    }
    if (p->o->runtime_dir != NULL) {
        write_word(out, "--runtime-dir");
        write_word(out, p->o->runtime_dir);
    }
    if (p->o->listen != NULL) {
        write_word(out, "--listen");
        write_word(out, p->o->listen);
    }
    fputs(" proxy %r@%h %p\n", out);
}

static void write_proxy(FILE *out, const struct proxy_line *p)
{
    fputs("    ProxyCommand", out);
    if (p->use_ssmgate)
        write_ssmgate_proxy(out, p);
    else
        fprintf(out, " nc -X 5 -x %s %%r@%%h %%p\n", p->socks);
}

/* The lines that make ssh offer exactly the daemon's key, then the user
 * ("" = none). */
static void write_identity(FILE *out, const char *dir, const char *user)
{
    fputs("    IdentityAgent", out);
    write_path_arg(out, dir, RUNDIR_AGENT_SOCK);
    fputs("    IdentityFile", out);
    write_path_arg(out, dir, RUNDIR_PUBKEY);
    fputs("    IdentitiesOnly yes\n", out);
    if (user[0] != '\0')
        fprintf(out, "    User %s\n", user);
}

static int by_suffix_length(const void *a, const void *b)
{
    const struct config_account *x = *(const struct config_account *const *)a;
    const struct config_account *y = *(const struct config_account *const *)b;
    return (int)strlen(y->suffix) - (int)strlen(x->suffix);
}

static int write_accounts(FILE *out, const struct config *cfg,
                          const struct proxy_line *p)
{
    const struct config_account **sorted =
        calloc((size_t)cfg->n_accounts + 1, sizeof(*sorted));
    if (sorted == NULL)
        return -1;
    for (int i = 0; i < cfg->n_accounts; i++)
        sorted[i] = &cfg->accounts[i];
    qsort(sorted, (size_t)cfg->n_accounts, sizeof(*sorted), by_suffix_length);
    for (int i = 0; i < cfg->n_accounts; i++) {
        const struct config_account *a = sorted[i];
        fprintf(out,
                "\n# [account %s]: profile %s%s%s; NAME%s, i-...%s, "
                "i-....REGION%s\n",
                a->name, a->profile, a->region[0] ? ", region " : "", a->region,
                a->suffix, a->suffix, a->suffix);
        fprintf(out, "Host mi-*%s\n", a->suffix);
        write_proxy(out, p);
        fprintf(out, "Host *%s !mi-*%s\n", a->suffix, a->suffix);
        write_proxy(out, p);
        write_identity(out, cfg->runtime_dir,
                       a->user[0] ? a->user : cfg->default_user);
    }
    free(sorted);
    return 0;
}

/* One Host block per [forward] that carries ssh (its port is ssh_port). */
static int write_forwards(FILE *out, const struct config *cfg,
                          const struct sshconfig_opts *o)
{
    for (int i = 0; i < cfg->n_forwards; i++) {
        const struct config_forward *f = &cfg->forwards[i];
        struct tunnel_spec spec;
        char addr[ENDPOINT_MAX], err[CONFIG_PATH_MAX + 256];
        if (route_from_forward(cfg, f, &spec) != 0 ||
            (spec.kind != TUNNEL_SSM_SSH &&
             !(spec.kind == TUNNEL_SSM_REMOTE && f->port == cfg->ssh_port))) {
            fprintf(out, "\n# [forward %s]: port %u, not ssh: no Host block\n",
                    f->name, f->port);
            continue;
        }
        if (endpoint_resolve(cfg, f->name, o->listen == NULL, addr,
                             sizeof(addr), err, sizeof(err), NULL) != 0) {
            fprintf(stderr, "ssmgate ssh-config: %s\n", err);
            return -1;
        }
        const char *colon = strrchr(addr, ':');
        const struct config_account *a = config_find_account(cfg, f->account);
        fprintf(out, "\n# [forward %s]: ssh %s\n", f->name, f->name);
        fprintf(out, "Host %s\n", f->name);
        fprintf(out, "    HostName %.*s\n", (int)(colon - addr), addr);
        fprintf(out, "    Port %s\n", colon + 1);
        /* One known_hosts entry per instance, not per local port. */
        fprintf(out, "    HostKeyAlias %s%s\n",
                f->remote_host[0] ? f->remote_host : f->target,
                a != NULL ? a->suffix : "");
        if (spec.kind == TUNNEL_SSM_SSH && strncmp(spec.target, "mi-", 3) != 0)
            write_identity(out, cfg->runtime_dir, spec.user);
        else if (spec.user[0] != '\0')
            fprintf(out, "    User %s\n", spec.user);
    }
    return 0;
}

int sshconfig_write(FILE *out, const struct config *cfg,
                    const struct sshconfig_opts *o)
{
    struct proxy_line p = {o, "", 0};
    char err[CONFIG_PATH_MAX + 256];
    int from_daemon = 0;
    int port0 = o->listen == NULL && cfg->n_listen > 0 &&
                endpoint_port(cfg->listen[0]) == 0;
    if (endpoint_resolve(cfg, NULL, o->listen == NULL, p.socks, sizeof(p.socks),
                         err, sizeof(err), &from_daemon) != 0) {
        if (o->self == NULL) {
            fprintf(stderr, "ssmgate ssh-config: %s\n", err);
            return -1;
        }
        p.socks[0] = '\0';
    }
    /* nc knows no SOCKS5 password and would dial a port 0 daemon's old
     * port after a restart: ssmgate proxy asks the daemon at each
     * connect and sends the credentials. */
    p.use_ssmgate = o->self != NULL &&
                    (cfg->socks_user[0] != '\0' || port0 || p.socks[0] == '\0');

    fprintf(out, "# ssmgate: add to ~/.ssh/config (ssmgate must be running)\n");
    if (p.socks[0] != '\0')
        fprintf(out, "# The daemon's SOCKS/HTTP port: %s (%s)\n", p.socks,
                from_daemon ? "asked of the running daemon"
                            : "from the config");
    if (port0)
        fprintf(out,
                "# listen = %s: the OS picks the port at each start, so "
                "ssmgate proxy asks the daemon at each connect\n",
                cfg->listen[0]);
    if (write_accounts(out, cfg, &p) != 0)
        return -1;
    fprintf(out, "\n# Instances by id (Name tags: see [account] and the "
                 "README)\n");
    fprintf(out, "Host i-*\n");
    write_proxy(out, &p);
    write_identity(out, cfg->runtime_dir, cfg->default_user);
    fprintf(out, "\n# Hybrid nodes: no key push; your own keys apply.\n");
    fprintf(out, "Host mi-*\n");
    write_proxy(out, &p);
    if (o->named && write_forwards(out, cfg, o) != 0)
        return -1;
    if (!p.use_ssmgate && o->self != NULL) {
        fprintf(out, "\n# Without nc: replace the ProxyCommand lines with\n"
                     "#   ProxyCommand");
        write_ssmgate_proxy(out, &p);
    }
    return ferror(out) ? -1 : 0;
}
