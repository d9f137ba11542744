/*
 * route.c - what a requested host:port means.
 *
 * Order: an instance id (with optional user@ and .region); else the first
 * [route] whose glob matches; else a single-label name that can be an EC2
 * Name tag; else refused. Nothing unmatched ever goes to the internet.
 */
#include "route.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "target.h"

/* Config values were validated to fit; cut rather than overflow anyway. */
static void copy(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n >= len)
        n = len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int is_instance_id(const char *s)
{
    struct target t;
    const char *reason;
    return target_parse(s, strlen(s), &t, &reason) == 0 && t.user[0] == '\0' &&
           t.region[0] == '\0';
}

/* A plausible EC2 Name tag used as a bare host: one DNS-like label. */
static int is_name_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return 0;
    return strcasecmp(s, "localhost") != 0;
}

static void base_spec(const struct config *cfg, struct tunnel_spec *out)
{
    memset(out, 0, sizeof(*out));
    copy(out->user, sizeof(out->user), cfg->default_user);
    copy(out->profile, sizeof(out->profile), cfg->profile);
    copy(out->region, sizeof(out->region), cfg->region);
}

/* A [route] or [forward] entry's own user (NULL = keep), profile and
 * region override the defaults when set. */
static void overlay(struct tunnel_spec *out, const char *user,
                    const char *profile, const char *region)
{
    if (user != NULL && user[0] != '\0')
        copy(out->user, sizeof(out->user), user);
    if (profile[0] != '\0')
        copy(out->profile, sizeof(out->profile), profile);
    if (region[0] != '\0')
        copy(out->region, sizeof(out->region), region);
}

static enum tunnel_kind kind_for_port(const struct config *cfg, uint16_t port)
{
    return port == cfg->ssh_port ? TUNNEL_SSM_SSH : TUNNEL_SSM_PORT;
}

int route_resolve(const struct config *cfg, const char *host, uint16_t port,
                  struct tunnel_spec *out, const char **reason)
{
    struct target t;
    size_t len = strlen(host);
    base_spec(cfg, out);
    out->port = port;
    if (len == 0 || len >= TUNNEL_HOST_MAX) {
        *reason = "empty or overlong host name";
        return GW_EINVAL;
    }
    int rc = target_parse(host, len, &t, reason);
    if (rc == GW_EINVAL)
        return rc;
    if (rc == 0) {
        out->kind = kind_for_port(cfg, port);
        copy(out->target, sizeof(out->target), t.id);
        if (t.user[0] != '\0')
            copy(out->user, sizeof(out->user), t.user);
        if (t.region[0] != '\0')
            copy(out->region, sizeof(out->region), t.region);
        return 0;
    }
    /* A user@ prefix on a routed host sets the user and is not matched. */
    const char *at = strchr(host, '@');
    const char *bare = host;
    if (at != NULL) {
        size_t ulen = (size_t)(at - host);
        if (!target_user_valid(host, ulen)) {
            *reason = "bad user name before '@'";
            return GW_EINVAL;
        }
        snprintf(out->user, sizeof(out->user), "%.*s", (int)ulen, host);
        bare = at + 1;
    }
    for (int i = 0; i < cfg->n_routes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (fnmatch(r->match, bare, FNM_CASEFOLD) != 0)
            continue;
        snprintf(out->label, sizeof(out->label), "route %s", r->name);
        copy(out->host, sizeof(out->host), bare);
        /* A user@ prefix beats the route's user. */
        overlay(out, at == NULL ? r->user : NULL, r->profile, r->region);
        if (strcmp(r->via, "direct") == 0) {
            out->kind = TUNNEL_DIRECT;
            return 0;
        }
        out->kind = TUNNEL_SSM_REMOTE;
        copy(out->target, sizeof(out->target), r->via);
        out->target_is_name = !is_instance_id(r->via);
        return 0;
    }
    if (is_name_label(bare)) {
        out->kind = kind_for_port(cfg, port);
        copy(out->target, sizeof(out->target), bare);
        out->target_is_name = 1;
        return 0;
    }
    *reason = "not an instance id or Name and no [route] matches";
    return GW_ENO_ROUTE;
}

int route_from_forward(const struct config *cfg,
                       const struct config_forward *fwd,
                       struct tunnel_spec *out)
{
    base_spec(cfg, out);
    snprintf(out->label, sizeof(out->label), "forward %s", fwd->name);
    out->no_reply = 1;
    out->port = fwd->port;
    overlay(out, fwd->user, fwd->profile, fwd->region);
    if (strcmp(fwd->target, "direct") == 0) {
        if (fwd->remote_host[0] == '\0')
            return GW_EINVAL;
        out->kind = TUNNEL_DIRECT;
        copy(out->host, sizeof(out->host), fwd->remote_host);
        return 0;
    }
    copy(out->target, sizeof(out->target), fwd->target);
    out->target_is_name = !is_instance_id(fwd->target);
    if (fwd->remote_host[0] != '\0') {
        out->kind = TUNNEL_SSM_REMOTE;
        copy(out->host, sizeof(out->host), fwd->remote_host);
    } else {
        out->kind = kind_for_port(cfg, fwd->port);
    }
    return 0;
}
