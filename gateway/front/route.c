/*
 * route.c - what a requested host:port means.
 *
 * First the [account] whose suffix ends the name (the longest), which
 * sets profile, region and user and is taken off. Then, on what is left:
 * an instance id (with optional .region); else the first [route] whose
 * glob matches; else a single label, optionally with .region, that can be
 * an EC2 Name tag; else refused. Nothing unmatched goes to the internet.
 */
#include "route.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "account.h"
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

/* Who a tunnel runs as when nothing names an account: [gateway]'s. */
static void base_who(const struct config *cfg, struct tunnel_spec *out)
{
    copy(out->user, sizeof(out->user), cfg->default_user);
    copy(out->profile, sizeof(out->profile), cfg->profile);
    copy(out->region, sizeof(out->region), cfg->region);
    out->start_stopped = cfg->start_stopped;
    out->start_timeout_ms = cfg->start_timeout_ms;
}

static void base_spec(const struct config *cfg, struct tunnel_spec *out)
{
    memset(out, 0, sizeof(*out));
    base_who(cfg, out);
}

/* A [route] or [forward] entry's own user (NULL = keep), profile and
 * region override the defaults when set. */
static void overlay(struct tunnel_spec *out, const char *user,
                    const char *profile, const char *region, int start_stopped)
{
    if (start_stopped != CONFIG_UNSET)
        out->start_stopped = start_stopped == CONFIG_YES;
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

/* An [account]'s user, profile and region (a = NULL: none). */
static void overlay_account(struct tunnel_spec *out,
                            const struct config_account *a)
{
    if (a != NULL)
        overlay(out, a->user, a->profile, a->region, a->start_stopped);
}

/* "web-1" or "web-1.eu-west-1": a Name tag, with a region when given. */
static int name_with_region(const char *s, struct tunnel_spec *out)
{
    const char *dot = strchr(s, '.');
    size_t n = dot != NULL ? (size_t)(dot - s) : strlen(s);
    char label[64];
    if (n >= sizeof(label) ||
        (dot != NULL && !target_region_valid(dot + 1, strlen(dot + 1))))
        return 0;
    memcpy(label, s, n);
    label[n] = '\0';
    if (!is_name_label(label))
        return 0;
    copy(out->target, sizeof(out->target), label);
    if (dot != NULL)
        copy(out->region, sizeof(out->region), dot + 1);
    return 1;
}

/*
 * Today's rules for a name without user@: an instance id with optional
 * .region; else the first [route] whose glob matches (its account, then
 * its own keys, apply); else a Name tag with optional .region.
 */
static int resolve_plain(const struct config *cfg, const char *name,
                         uint16_t port, struct tunnel_spec *out,
                         const char **reason)
{
    struct target t;
    int rc = target_parse(name, strlen(name), &t, reason);
    if (rc == GW_EINVAL)
        return rc;
    if (rc == 0) {
        out->kind = kind_for_port(cfg, port);
        copy(out->target, sizeof(out->target), t.id);
        if (t.region[0] != '\0')
            copy(out->region, sizeof(out->region), t.region);
        return 0;
    }
    for (int i = 0; i < cfg->n_routes; i++) {
        const struct config_route *r = &cfg->routes[i];
        if (fnmatch(r->match, name, FNM_CASEFOLD) != 0)
            continue;
        char label[TUNNEL_LABEL_MAX];
        snprintf(label, sizeof(label), "%s", out->label);
        snprintf(out->label, sizeof(out->label), "route %.40s%s%.46s", r->name,
                 label[0] ? ", " : "", label);
        copy(out->host, sizeof(out->host), name);
        /* The route's own account replaces the suffix's whole. */
        const struct config_account *a = config_find_account(cfg, r->account);
        if (a != NULL) {
            base_who(cfg, out);
            overlay_account(out, a);
        }
        overlay(out, r->user, r->profile, r->region, r->start_stopped);
        out->sessions_max = r->sessions_per_target;
        if (strcmp(r->via, "direct") == 0) {
            out->kind = TUNNEL_DIRECT;
            return 0;
        }
        out->kind = TUNNEL_SSM_REMOTE;
        copy(out->target, sizeof(out->target), r->via);
        out->target_is_name = !is_instance_id(r->via);
        return 0;
    }
    if (name_with_region(name, out)) {
        out->kind = kind_for_port(cfg, port);
        out->target_is_name = 1;
        return 0;
    }
    *reason = "not an instance id or Name and no [route] matches";
    return GW_ENO_ROUTE;
}

/* name ends in an account suffix and then ".REGION": the region was put
 * last, where it hides the suffix. */
static int region_after_suffix(const struct config *cfg, const char *name)
{
    const char *dot = strrchr(name, '.');
    size_t rest;
    return dot != NULL && target_region_valid(dot + 1, strlen(dot + 1)) &&
           account_match(cfg, name, (size_t)(dot - name), &rest) != NULL &&
           rest > 0;
}

int route_resolve(const struct config *cfg, const char *host, uint16_t port,
                  struct tunnel_spec *out, const char **reason)
{
    char name[TUNNEL_HOST_MAX];
    size_t len = strlen(host), rest;
    base_spec(cfg, out);
    out->port = port;
    *reason = NULL;
    if (len == 0 || len >= TUNNEL_HOST_MAX) {
        *reason = "empty or overlong host name";
        return GW_EINVAL;
    }
    /* A user@ prefix sets the user (over any route's or account's) and is
     * not part of the name. */
    const char *at = strchr(host, '@');
    const char *bare = at != NULL ? at + 1 : host;
    if (at != NULL && !target_user_valid(host, (size_t)(at - host))) {
        *reason = "bad user name before '@'";
        return GW_EINVAL;
    }
    if (strchr(bare, '@') != NULL) {
        *reason = "more than one '@' in the host name";
        return GW_EINVAL;
    }
    snprintf(name, sizeof(name), "%s", bare);
    const struct config_account *acct =
        account_match(cfg, name, strlen(name), &rest);
    if (acct != NULL) {
        if (rest == 0) {
            *reason = "nothing before the account suffix";
            return GW_EINVAL;
        }
        name[rest] = '\0';
        snprintf(out->label, sizeof(out->label), "account %s", acct->name);
        overlay_account(out, acct);
    }
    int rc = resolve_plain(cfg, name, port, out, reason);
    if (rc == 0 && at != NULL)
        snprintf(out->user, sizeof(out->user), "%.*s", (int)(at - host), host);
    if (rc == GW_ENO_ROUTE && acct != NULL)
        *reason = "not an instance id, Name or [route] match before the "
                  "account suffix";
    else if (rc != 0 && region_after_suffix(cfg, name))
        *reason = "the account suffix goes last: NAME.REGION.SUFFIX";
    return rc;
}

int route_from_forward(const struct config *cfg,
                       const struct config_forward *fwd,
                       struct tunnel_spec *out)
{
    base_spec(cfg, out);
    snprintf(out->label, sizeof(out->label), "forward %s", fwd->name);
    out->no_reply = 1;
    out->port = fwd->port;
    overlay_account(out, config_find_account(cfg, fwd->account));
    overlay(out, fwd->user, fwd->profile, fwd->region, fwd->start_stopped);
    out->sessions_max = fwd->sessions_per_target;
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
