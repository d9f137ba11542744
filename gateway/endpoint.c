/*
 * endpoint.c - the daemon's address for its clients. The daemon's answer
 * comes from a socket in a 0700 directory, but it is still checked: it
 * ends up in a ProxyCommand line and a connect(), so only a numeric
 * "ADDR:PORT" with a real port is taken.
 */
#include "endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "control.h"
#include "rundir.h"

unsigned endpoint_port(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    char *end;
    if (colon == NULL || colon[1] == '\0')
        return 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    return *end == '\0' && port <= 65535 ? (unsigned)port : 0;
}

void endpoint_loopback(const char *addr, char *out, size_t len)
{
    if (strncmp(addr, "0.0.0.0:", 8) == 0)
        snprintf(out, len, "127.0.0.1:%s", addr + 8);
    else if (strncmp(addr, "[::]:", 5) == 0)
        snprintf(out, len, "[::1]:%s", addr + 5);
    else
        snprintf(out, len, "%s", addr);
}

/* A bound address as the daemon prints it: numeric IPv4 or [IPv6], and a
 * port the OS chose (never 0). */
static int bound_valid(const char *a, size_t cap)
{
    size_t n = strlen(a);
    if (n < 3 || n >= cap || endpoint_port(a) == 0)
        return 0;
    return strspn(a, "0123456789abcdefABCDEF.:[]") == n;
}

int endpoint_pick(const json_t *answer, const char *forward, char *out,
                  size_t len)
{
    const json_t *list = json_object_get(answer, "listeners");
    size_t i;
    const json_t *l;
    json_array_foreach(list, i, l)
    {
        const char *kind = json_string_value(json_object_get(l, "kind"));
        const char *name = json_string_value(json_object_get(l, "name"));
        const char *addr = json_string_value(json_object_get(l, "address"));
        if (kind == NULL || name == NULL || addr == NULL)
            continue;
        int want = forward == NULL ? strcmp(kind, "socks") == 0
                                   : strcmp(kind, "forward") == 0 &&
                                         strcmp(name, forward) == 0;
        if (want && bound_valid(addr, len)) {
            endpoint_loopback(addr, out, len);
            return 0;
        }
    }
    return GW_ENOT_FOUND;
}

int endpoint_resolve(const struct config *cfg, const char *forward,
                     int ask_daemon, char *out, size_t len, char *err,
                     size_t errlen, int *from_daemon)
{
    const char *listen = cfg->n_listen > 0 ? cfg->listen[0] : "127.0.0.1:1080";
    if (forward != NULL) {
        const struct config_forward *f = config_find_forward(cfg, forward);
        listen = f != NULL ? f->listen : "";
    }
    if (from_daemon != NULL)
        *from_daemon = 0;
    if (ask_daemon) {
        json_t *answer = control_query(cfg->runtime_dir, "listeners");
        int rc = answer != NULL ? endpoint_pick(answer, forward, out, len)
                                : GW_ENOT_FOUND;
        json_decref(answer);
        if (rc == 0) {
            if (from_daemon != NULL)
                *from_daemon = 1;
            return 0;
        }
    }
    if (listen[0] == '\0' || endpoint_port(listen) == 0) {
        snprintf(err, errlen,
                 "%s%s%s listens on %s, a port the OS chooses, and no "
                 "daemon answers at %s/%s: start ssmgate (with the same "
                 "--config and --runtime-dir) first",
                 forward ? "[forward " : "the SOCKS/HTTP port",
                 forward ? forward : "", forward ? "]" : "",
                 listen[0] ? listen : "(not configured)", cfg->runtime_dir,
                 RUNDIR_CONTROL_SOCK);
        return GW_EUNREACHABLE;
    }
    endpoint_loopback(listen, out, len);
    return 0;
}
