/*
 * aws.c - the client facade: the only file that knows both the credential
 * chain (aws_creds) and the request engine (aws_call).
 *
 * A call is an engine call held by the facade: BEGIN (from the loop) ->
 * prepare (profile, region, endpoint, body, URL) -> CREDS (cache hit, or
 * wait for the shared refresh) -> the engine sends, retries and reports.
 * The facade sees every result first (answer hook): on GW_EEXPIRED it
 * forces one credential refresh and resumes the same call; a second one
 * is reported as the AWS error it is (GW_EAWS).
 */
#include "aws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_client_creds.h"
#include "aws_creds.h"
#include "aws_endpoint.h"
#include "aws_profile.h"
#include "aws_proto.h"
#include "common.h"
#include "http.h"
#include "log.h"

struct aws_client {
    uv_loop_t *loop;
    struct http_client *http;
    struct aws_call_ctx *x;
    struct aws_creds_cache *creds;
    struct aws_profiles *profiles;
    char *default_profile;
    char *default_region;
    int free_requested;
    int ctx_gone; /* the engine freed its context */
};

enum api_kind { API_CALL, API_CREDS };

/* The facade's half of one call; owned by the engine call (release). */
struct api {
    struct aws_client *c;
    struct aws_call *call;
    enum api_kind kind;
    const struct aws_svc *svc;
    char action[64];
    json_t *input;
    char profile_arg[128]; /* "" = default */
    char region_arg[64];
    char profile[128];
    char region[AWS_ENDPOINT_REGION_MAX];
    int explicit_profile;
    int sent; /* the engine has the request */
    struct aws_endpoint ep;
    char url[AWS_ENDPOINT_URL_MAX + 512];
    char *body;
    size_t body_len;
    int refreshed; /* ExpiredToken refresh done */
    int force_refresh;
    struct aws_creds_wait *wait;
    aws_creds_cb *creds_done;
    void *creds_arg;
    const struct aws_creds *creds_now; /* API_CREDS: for the report */
    struct aws_sigv4_creds fresh;      /* api_refresh's answer */
};

static void api_get_creds(struct api *a);

/* ---- client ---------------------------------------------------------------
 */

static void client_destroy(struct aws_client *c)
{
    aws_creds_cache_free(c->creds);
    http_client_free(c->http);
    aws_profiles_free(c->profiles);
    free(c->default_profile);
    free(c->default_region);
    free(c);
}

static void client_maybe_free(struct aws_client *c)
{
    if (c->free_requested && c->ctx_gone && !c->creds)
        client_destroy(c);
}

static void client_idle(void *arg)
{
    struct aws_client *c = arg;

    c->ctx_gone = 1;
    c->x = NULL;
    client_maybe_free(c);
}

struct aws_client *aws_client_new(uv_loop_t *loop,
                                  const struct aws_client_opts *opts)
{
    struct aws_client *c = calloc(1, sizeof(*c));
    char err[GW_REASON_MAX];
    const char *prof;
    int rc;

    if (!c)
        return NULL;
    c->loop = loop;
    if (opts && opts->default_profile && opts->default_profile[0])
        c->default_profile = strdup(opts->default_profile);
    if (opts && opts->default_region && opts->default_region[0])
        c->default_region = strdup(opts->default_region);
    rc = aws_profiles_load(NULL, &c->profiles, err, sizeof(err));
    if (rc < 0) {
        /* A broken file must not stop env / IMDS credentials working. */
        log_error("aws: %s", err);
        c->profiles = NULL;
    }
    if (!c->profiles && aws_profiles_load_mem(NULL, 0, NULL, 0, &c->profiles,
                                              err, sizeof(err)) < 0)
        goto fail;
    c->http = http_client_new(loop, opts ? opts->proxy : NULL);
    if (!c->http)
        goto fail;
    c->x = aws_call_ctx_new(loop, c->http);
    if (!c->x)
        goto fail;
    aws_call_ctx_set_idle(c->x, client_idle, c);
    if (opts)
        aws_call_ctx_set_stats(c->x, opts->stats);
    /* One engine for every profile: the default profile's retry settings. */
    prof = aws_resolve_profile_name(NULL, c->default_profile);
    if (opts && opts->queue_deadline_ms > 0)
        aws_call_ctx_set_queue_deadline(c->x, opts->queue_deadline_ms);
    aws_call_ctx_set_retry(c->x,
                           aws_profile_get(c->profiles, prof, "retry_mode"),
                           aws_profile_get(c->profiles, prof, "max_attempts"));
    c->creds = aws_creds_cache_new(c->x, c->http, c->profiles);
    if (!c->creds)
        goto fail;
    return c;
fail:
    if (c->x) {
        aws_call_ctx_set_idle(c->x, NULL, NULL);
        aws_call_ctx_free(c->x); /* no calls yet: freed at once */
    }
    client_destroy(c);
    return NULL;
}

void aws_client_free(struct aws_client *c)
{
    if (!c || c->free_requested)
        return;
    c->free_requested = 1;
    /* Calls first (they cancel their credential waits), then the cache
     * (its providers' own calls are already stopped by then). */
    aws_call_ctx_free(c->x);
    aws_creds_cache_free(c->creds);
    c->creds = NULL;
    client_maybe_free(c);
}

int aws_client_pending(const struct aws_client *c)
{
    return c->x ? aws_call_ctx_pending(c->x) : 0;
}

const char *aws_ca_bundle(struct aws_client *c, const char *profile)
{
    if (!profile || !profile[0])
        profile = aws_resolve_profile_name(NULL, c->default_profile);
    return aws_profile_ca_bundle(c->profiles, profile);
}

/* ---- preparing -------------------------------------------------------------
 */

/* Resolves what does not change between attempts. Returns 0 or a status
 * with the reason in why. */
static int api_prepare(struct api *a, char *why, size_t why_len)
{
    struct aws_client *c = a->c;
    int rc;

    a->explicit_profile = a->profile_arg[0] != 0;
    snprintf(a->profile, sizeof(a->profile), "%s",
             aws_resolve_profile_name(NULL, a->profile_arg));
    rc = aws_resolve_region(NULL, a->region_arg, c->profiles, a->profile,
                            a->region, sizeof(a->region));
    if (rc < 0) {
        snprintf(why, why_len,
                 "no region for profile %s (set AWS_REGION or region in "
                 "the profile)",
                 a->profile);
        return GW_ENO_REGION;
    }
    if (a->kind == API_CREDS)
        return 0;
    rc = aws_endpoint_resolve(a->svc->svc, a->region, c->profiles, a->profile,
                              NULL, &a->ep);
    if (rc < 0) {
        snprintf(why, why_len, "no endpoint for %s in %s: %s", a->svc->name,
                 a->region, gw_strerror(rc));
        return rc;
    }
    /* The SSO calls go through their providers (aws_sso.c), which know
     * their URLs and headers. */
    if (a->svc->proto == AWS_PROTO_REST_JSON)
        rc = GW_EINVAL;
    else if ((rc = aws_proto_build_body(a->svc, a->action, a->input, &a->body,
                                        &a->body_len)) == 0)
        rc = aws_proto_build_url(a->ep.url, a->url, sizeof(a->url));
    if (rc < 0) {
        snprintf(why, why_len, "cannot build the %s request: %s", a->action,
                 gw_strerror(rc));
        return rc;
    }
    return 0;
}

static void api_begin(struct aws_call *call, void *owner)
{
    struct api *a = owner;
    char why[GW_REASON_MAX];
    int rc;

    (void)call;
    rc = api_prepare(a, why, sizeof(why));
    if (rc < 0) {
        aws_call_fail(a->call, rc, why);
        return;
    }
    api_get_creds(a);
}

/* ---- credentials -----------------------------------------------------------
 */

static void api_creds_ready(void *arg, int status,
                            const struct aws_creds *creds, const char *why)
{
    struct api *a = arg;
    struct aws_sigv4_creds sc;
    struct aws_req r;

    a->wait = NULL;
    if (status < 0) {
        aws_call_fail(a->call,
                      status == GW_ENO_CREDS || status == GW_EAWS ||
                              status == GW_ETIMEOUT
                          ? GW_ENO_CREDS
                          : status,
                      why && why[0] ? why : gw_strerror(status));
        return;
    }
    if (a->kind == API_CREDS) {
        a->creds_now = creds;
        aws_call_fail(a->call, 0, NULL); /* reports through api_report */
        return;
    }
    sc.access_key_id = creds->access_key_id;
    sc.secret_access_key = creds->secret_access_key;
    sc.session_token = creds->session_token;
    if (a->sent) {
        aws_call_resume(a->call, NULL, &sc);
        return;
    }
    memset(&r, 0, sizeof(r));
    r.svc = a->svc;
    r.action = a->action;
    r.url = a->url;
    r.body = a->body;
    r.body_len = a->body_len;
    r.signing_region = a->ep.signing_region;
    r.signing_name = a->ep.signing_name;
    r.ca_file = aws_ca_bundle(a->c, a->profile);
    r.rate_scope = a->profile;
    a->sent = 1;
    aws_call_resume(a->call, &r, &sc);
}

static void api_get_creds(struct api *a)
{
    const struct aws_creds *now = NULL;
    char why[GW_REASON_MAX] = "";
    int rc;

    if (!a->c->creds) {
        aws_call_fail(a->call, GW_ENO_CREDS, NULL);
        return;
    }
    rc = aws_creds_get(a->c->creds, a->profile, a->explicit_profile,
                       a->force_refresh, &now, &a->wait, api_creds_ready, a,
                       why, sizeof(why));
    a->force_refresh = 0;
    if (rc < 0) {
        aws_call_fail(a->call, GW_ENO_CREDS,
                      why[0] ? why : "no credentials for this profile");
        return;
    }
    if (now)
        api_creds_ready(a, 0, now, NULL);
}

/* ---- the engine's hooks ----------------------------------------------------
 */

static int api_answer(struct aws_call *call, void *owner, int *status)
{
    struct api *a = owner;

    (void)call;
    if (*status == 0)
        a->refreshed = 0; /* a next page (aws_call_again) may refresh */
    if (*status != GW_EEXPIRED)
        return 0;
    if (a->refreshed) {
        *status = GW_EAWS;
        return 0;
    }
    log_info("aws: %s: session token expired; refreshing credentials "
             "for profile %s",
             a->action, a->profile);
    a->refreshed = 1;
    a->force_refresh = 1;
    api_get_creds(a); /* a may be gone after this */
    return 1;
}

static void api_refresh_unused(void *arg, int status,
                               const struct aws_creds *creds, const char *why)
{
    (void)arg, (void)status, (void)creds, (void)why;
}

/* The cache's keys now, if it has them without waiting; asking also
 * starts the background refresh of keys in their advisory window. */
static const struct aws_sigv4_creds *api_refresh(struct aws_call *call,
                                                 void *owner)
{
    struct api *a = owner;
    const struct aws_creds *now = NULL;
    struct aws_creds_wait *wait = NULL;
    char why[GW_REASON_MAX];

    (void)call;
    if (!a->c->creds || a->wait)
        return NULL;
    if (aws_creds_get(a->c->creds, a->profile, a->explicit_profile, 0, &now,
                      &wait, api_refresh_unused, NULL, why, sizeof(why)) < 0)
        return NULL;
    aws_creds_wait_cancel(wait); /* the refresh goes on without us */
    if (!now)
        return NULL;
    a->fresh.access_key_id = now->access_key_id;
    a->fresh.secret_access_key = now->secret_access_key;
    a->fresh.session_token = now->session_token;
    return &a->fresh;
}

static void api_report(struct aws_call *call, void *owner, int status,
                       const struct aws_error *err)
{
    struct api *a = owner;
    struct aws_sigv4_creds sc;

    (void)call;
    if (status < 0) {
        a->creds_done(a->creds_arg, status, NULL, a->region, err);
        return;
    }
    sc.access_key_id = a->creds_now->access_key_id;
    sc.secret_access_key = a->creds_now->secret_access_key;
    sc.session_token = a->creds_now->session_token;
    a->creds_done(a->creds_arg, 0, &sc, a->region, NULL);
}

static void api_release(void *owner)
{
    struct api *a = owner;

    aws_creds_wait_cancel(a->wait);
    json_decref(a->input);
    free(a->body);
    free(a);
}

static const struct aws_call_hooks api_hooks = {
    .begin = api_begin,
    .answer = api_answer,
    .refresh = api_refresh,
    .release = api_release,
};

static const struct aws_call_hooks creds_hooks = {
    .begin = api_begin,
    .report = api_report,
    .release = api_release,
};

/* ---- starting --------------------------------------------------------------
 */

static struct api *api_new(struct aws_client *c, enum api_kind kind,
                           const char *profile, const char *region)
{
    struct api *a = c && !c->free_requested ? calloc(1, sizeof(*a)) : NULL;

    if (!a)
        return NULL;
    a->c = c;
    a->kind = kind;
    if (profile && profile[0])
        snprintf(a->profile_arg, sizeof(a->profile_arg), "%s", profile);
    else if (c->default_profile)
        snprintf(a->profile_arg, sizeof(a->profile_arg), "%s",
                 c->default_profile);
    if (region && region[0])
        snprintf(a->region_arg, sizeof(a->region_arg), "%s", region);
    else if (c->default_region)
        snprintf(a->region_arg, sizeof(a->region_arg), "%s", c->default_region);
    return a;
}

int aws_client_where(struct aws_client *c, const char *profile,
                     const char *region, char *profile_out, size_t pcap,
                     char *region_out, size_t rcap)
{
    struct api *a = api_new(c, API_CALL, profile, region);
    int rc;

    region_out[0] = '\0';
    if (!a)
        return GW_ENOMEM;
    snprintf(profile_out, pcap, "%s",
             aws_resolve_profile_name(NULL, a->profile_arg));
    rc = aws_resolve_region(NULL, a->region_arg, c->profiles, profile_out,
                            region_out, rcap);
    free(a);
    if (rc < 0)
        region_out[0] = '\0';
    return rc < 0 ? GW_ENO_REGION : 0;
}

static struct aws_call *api_start(struct api *a,
                                  const struct aws_call_hooks *hooks,
                                  aws_done_cb *done, void *arg)
{
    a->call = aws_call_new(a->c->x, hooks, a, done, arg);
    if (!a->call) {
        json_decref(a->input);
        free(a);
        return NULL;
    }
    return a->call;
}

struct aws_call *aws_call_start(struct aws_client *c, const char *service,
                                const char *action, json_t *input,
                                const char *profile, const char *region,
                                aws_done_cb *done, void *arg)
{
    const struct aws_svc *svc = aws_svc_find(service ? service : "");
    struct api *a;

    if (!svc || !action || strlen(action) >= 64 || !done ||
        (input && !json_is_object(input)))
        return NULL;
    a = api_new(c, API_CALL, profile, region);
    if (!a)
        return NULL;
    a->svc = svc;
    snprintf(a->action, sizeof(a->action), "%s", action);
    a->input = input ? json_incref(input) : json_object();
    return api_start(a, &api_hooks, done, arg);
}

struct aws_call *aws_get_credentials(struct aws_client *c, const char *profile,
                                     const char *region, aws_creds_cb *done,
                                     void *arg)
{
    struct api *a;

    if (!done)
        return NULL;
    a = api_new(c, API_CREDS, profile, region);
    if (!a)
        return NULL;
    a->creds_done = done;
    a->creds_arg = arg;
    return api_start(a, &creds_hooks, NULL, arg);
}
