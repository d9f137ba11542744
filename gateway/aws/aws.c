/*
 * aws.c - one AWS API call, start to typed result, on the loop.
 *
 * A call goes:  BEGIN (deferred to the loop, so the callback never runs
 * inside aws_call_start) -> resolve profile, region, endpoint, build the
 * body once -> CREDS (cache hit, or wait for the shared refresh) -> SEND
 * (sign the exact body with a fresh X-Amz-Date, http_request) -> DONE:
 * success, or classify the error: retry after a full-jitter backoff when
 * the standard mode says so and the client's retry quota allows,
 * refresh credentials once on ExpiredToken, correct the clock once on a
 * skew error, else report. Every path ends in call_finish(), which runs
 * the callback once and then closes the call's timer; the call is freed
 * in the close callback.
 */
#include "aws.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aws_creds.h"
#include "aws_endpoint.h"
#include "aws_parse.h"
#include "aws_profile.h"
#include "common.h"
#include "http.h"
#include "log.h"

#define AWS_CALL_DEADLINE_MS   60000
#define AWS_ATTEMPT_TIMEOUT_MS 30000
#define AWS_CONNECT_TIMEOUT_MS 10000

struct svc_info {
    const char *name; /* as callers say it */
    enum aws_service svc;
    enum aws_proto proto;
    const char *target_prefix; /* JSON: X-Amz-Target prefix */
    const char *version;       /* Query: Version= */
};

static const struct svc_info services[] = {
    {"ssm", AWS_SVC_SSM, AWS_PROTO_JSON, "AmazonSSM", NULL},
    {"ec2-instance-connect", AWS_SVC_EC2IC, AWS_PROTO_JSON,
     "AWSEC2InstanceConnectService", NULL},
    {"sts", AWS_SVC_STS, AWS_PROTO_QUERY, NULL, "2011-06-15"},
    {"ec2", AWS_SVC_EC2, AWS_PROTO_QUERY, NULL, "2016-11-15"},
    {"sso", AWS_SVC_SSO, AWS_PROTO_REST_JSON, NULL, NULL},
    {"sso-oidc", AWS_SVC_SSO_OIDC, AWS_PROTO_REST_JSON, NULL, NULL},
};

struct aws_client {
    uv_loop_t *loop;
    struct http_client *http;
    struct aws_creds_cache *creds;
    struct aws_profiles *profiles;
    char *default_profile;
    char *default_region;
    struct aws_call *calls; /* live calls (doubly linked) */
    int quota;              /* retry tokens (standard mode) */
    long skew;              /* seconds to add to our clock */
    int max_attempts;
    int new_retries;
    int open_timers;
    int busy; /* inside a callback we run: defer the free */
    int free_requested;
};

enum call_kind { CALL_API, CALL_CREDS };

struct aws_call {
    struct aws_client *c;
    struct aws_call *prev, *next;
    enum call_kind kind;
    const struct svc_info *svc;
    char action[64];
    json_t *input;
    char profile_arg[128]; /* "" = default */
    char region_arg[64];
    char profile[128];
    char region[AWS_ENDPOINT_REGION_MAX];
    int explicit_profile;
    struct aws_endpoint ep;
    /* aws_call_start_with: own copy of the keys, or unsigned. */
    int fixed_creds;
    int unsigned_call;
    struct aws_creds fixed;
    aws_done_cb *done;
    aws_creds_cb *creds_done;
    void *arg;
    uv_timer_t timer;
    struct http_req *req;
    struct aws_creds_wait *wait;
    char *body;
    size_t body_len;
    char url[AWS_ENDPOINT_URL_MAX + 512];
    char invocation_id[40];
    int attempt;
    int last_cost; /* quota taken by the latest retry */
    int refreshed; /* ExpiredToken refresh done */
    int skew_fixed;
    int force_refresh;
    uint64_t deadline;
    int finished;
    int in_callback;
    json_t *again; /* aws_call_again: next input */
    void (*cleanup)(void *arg);
    struct aws_error err;
};

static void call_begin(uv_timer_t *t);
static void call_destroy(struct aws_call *call);
static void call_retry_timer(uv_timer_t *t);
static int build_body(struct aws_call *call);
static void call_get_creds(struct aws_call *call);
static void call_finish(struct aws_call *call, int status, json_t *resp);
static void client_destroy(struct aws_client *c);

const char *aws_error_str(const struct aws_error *err, char *buf, size_t len)
{
    if (err->code[0]) {
        snprintf(buf, len, "%s: %s (HTTP %ld, %d attempt%s%s%s)", err->code,
                 err->message[0] ? err->message : "(no message)",
                 err->http_status, err->attempts, err->attempts == 1 ? "" : "s",
                 err->request_id[0] ? ", request id " : "", err->request_id);
    } else if (err->transport && err->attempts > 0) {
        snprintf(buf, len, "%s%s%s (%d attempt%s)", gw_strerror(err->transport),
                 err->message[0] ? ": " : "", err->message, err->attempts,
                 err->attempts == 1 ? "" : "s");
    } else if (err->transport) {
        snprintf(buf, len, "%s%s%s", gw_strerror(err->transport),
                 err->message[0] ? ": " : "", err->message);
    } else {
        snprintf(buf, len, "%s", err->message[0] ? err->message : "error");
    }
    return buf;
}

static const struct svc_info *svc_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(services); i++)
        if (strcmp(services[i].name, name) == 0)
            return &services[i];
    return NULL;
}

static void set_msg(struct aws_error *err, const char *fmt, ...)
    LOG_PRINTF(2, 3);
static void set_msg(struct aws_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* ---- client ---------------------------------------------------------------
 */

struct aws_client *aws_client_new(uv_loop_t *loop,
                                  const struct aws_client_opts *opts)
{
    struct aws_client *c = calloc(1, sizeof(*c));
    char err[512];
    const char *v;
    int rc;

    if (!c)
        return NULL;
    c->loop = loop;
    c->quota = AWS_RETRY_QUOTA_MAX;
    c->max_attempts = 3;
    v = aws_env_get(NULL, "AWS_MAX_ATTEMPTS");
    if (v && atoi(v) >= 1 && atoi(v) <= 10)
        c->max_attempts = atoi(v);
    c->new_retries = aws_env_is_true(aws_env_get(NULL, "AWS_NEW_RETRIES_2026"));
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
    c->http = http_client_new(loop);
    if (!c->http)
        goto fail;
    c->creds = aws_creds_cache_new(c, c->profiles);
    if (!c->creds)
        goto fail;
    return c;
fail:
    client_destroy(c);
    return NULL;
}

uv_loop_t *aws_client_loop(struct aws_client *c)
{
    return c->loop;
}

struct http_client *aws_client_http(struct aws_client *c)
{
    return c->http;
}

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
    if (c->free_requested && c->busy == 0 && c->open_timers == 0 && !c->calls)
        client_destroy(c);
}

void aws_client_free(struct aws_client *c)
{
    if (!c || c->free_requested)
        return;
    c->free_requested = 1;
    /* Calls first (they cancel their credential waits), then the cache
     * (its providers' own calls are already stopped by then). */
    for (struct aws_call *call = c->calls, *next; call; call = next) {
        next = call->next;
        /* A call inside its own callback is destroyed when it returns. */
        if (!call->in_callback && !call->finished)
            call_destroy(call);
    }
    aws_creds_cache_free(c->creds);
    c->creds = NULL;
    client_maybe_free(c);
}

const char *aws_ca_bundle(struct aws_client *c, const char *profile)
{
    const char *v = aws_env_get(NULL, "AWS_CA_BUNDLE");

    if (v && v[0])
        return v;
    if (!profile || !profile[0])
        profile = aws_resolve_profile_name(NULL, c->default_profile);
    v = aws_profile_get(c->profiles, profile, "ca_bundle");
    return v && v[0] ? v : NULL;
}

/* ---- call lifecycle -------------------------------------------------------
 */

static void call_closed(uv_handle_t *h)
{
    struct aws_call *call = CONTAINER_OF(h, struct aws_call, timer);
    struct aws_client *c = call->c;

    json_decref(call->input);
    free(call->body);
    if (call->fixed.secret_access_key)
        memset(call->fixed.secret_access_key, 0,
               strlen(call->fixed.secret_access_key));
    free(call->fixed.access_key_id);
    free(call->fixed.secret_access_key);
    free(call->fixed.session_token);
    free(call);
    c->open_timers--;
    client_maybe_free(c);
}

/* Stops everything the call has in flight and frees it from the loop. */
static void call_destroy(struct aws_call *call)
{
    struct aws_client *c = call->c;

    if (!call->finished && call->cleanup)
        call->cleanup(call->arg);
    call->finished = 1;
    if (call->req) {
        http_cancel(call->req);
        call->req = NULL;
    }
    if (call->wait) {
        aws_creds_wait_cancel(call->wait);
        call->wait = NULL;
    }
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    uv_timer_stop(&call->timer);
    uv_close((uv_handle_t *)&call->timer, call_closed);
}

void aws_call_cancel(struct aws_call *call)
{
    if (!call)
        return;
    if (call->in_callback) {
        /* Cancelling from its own callback: just forget a pending
         * aws_call_again. */
        json_decref(call->again);
        call->again = NULL;
        return;
    }
    if (call->finished)
        return;
    call_destroy(call);
}

void aws_call_set_cleanup(struct aws_call *call, void (*cleanup)(void *arg))
{
    call->cleanup = cleanup;
}

int aws_call_again(struct aws_call *call, json_t *input)
{
    if (!call->in_callback || call->kind != CALL_API || !json_is_object(input))
        return GW_EINVAL;
    json_decref(call->again);
    call->again = json_incref(input);
    return 0;
}

static void make_uuid(char out[40])
{
    unsigned char b[16];

    if (uv_random(NULL, NULL, b, sizeof(b), 0, NULL) != 0)
        memset(b, 0x5a, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(
        out, 40,
        "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
        b[11], b[12], b[13], b[14], b[15]);
}

static double rand01(void)
{
    uint32_t r;

    if (uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) != 0)
        r = (uint32_t)rand();
    return (double)r / 4294967296.0;
}

static struct aws_call *call_new(struct aws_client *c, enum call_kind kind,
                                 const char *profile, const char *region,
                                 void *arg)
{
    struct aws_call *call;

    if (!c || c->free_requested)
        return NULL;
    call = calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->c = c;
    call->kind = kind;
    call->arg = arg;
    if (profile && profile[0]) {
        snprintf(call->profile_arg, sizeof(call->profile_arg), "%s", profile);
    } else if (c->default_profile) {
        snprintf(call->profile_arg, sizeof(call->profile_arg), "%s",
                 c->default_profile);
    }
    if (region && region[0])
        snprintf(call->region_arg, sizeof(call->region_arg), "%s", region);
    else if (c->default_region)
        snprintf(call->region_arg, sizeof(call->region_arg), "%s",
                 c->default_region);
    make_uuid(call->invocation_id);
    call->deadline = uv_now(c->loop) + AWS_CALL_DEADLINE_MS;
    CHECK(uv_timer_init(c->loop, &call->timer) == 0);
    c->open_timers++;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    /* BEGIN runs from the loop: the callback never runs inside start. */
    uv_timer_start(&call->timer, call_begin, 0, 0);
    return call;
}

struct aws_call *aws_call_start(struct aws_client *c, const char *service,
                                const char *action, json_t *input,
                                const char *profile, const char *region,
                                aws_done_cb *done, void *arg)
{
    return aws_call_start_with(c, service, action, input, profile, region, NULL,
                               done, arg) /* chain creds */;
}

static struct aws_call *start_api(struct aws_client *c, const char *service,
                                  const char *action, json_t *input,
                                  const char *profile, const char *region,
                                  aws_done_cb *done, void *arg)
{
    const struct svc_info *svc = svc_find(service ? service : "");
    struct aws_call *call;

    if (!svc || !action || strlen(action) >= 64 || !done ||
        (input && !json_is_object(input)))
        return NULL;
    call = call_new(c, CALL_API, profile, region, arg);
    if (!call)
        return NULL;
    call->svc = svc;
    snprintf(call->action, sizeof(call->action), "%s", action);
    call->input = input ? json_incref(input) : json_object();
    call->done = done;
    return call;
}

struct aws_call *aws_call_start_with(struct aws_client *c, const char *service,
                                     const char *action, json_t *input,
                                     const char *profile, const char *region,
                                     const struct aws_sigv4_creds *creds,
                                     aws_done_cb *done, void *arg)
{
    struct aws_call *call =
        start_api(c, service, action, input, profile, region, done, arg);

    if (!call)
        return NULL;
    /* Called through aws_call_start: creds come from the chain. SSO and
     * web identity are always unsigned. */
    if (done &&
        (strcmp(service, "sso") == 0 || strcmp(service, "sso-oidc") == 0 ||
         strcmp(action, "AssumeRoleWithWebIdentity") == 0)) {
        call->fixed_creds = 1;
        call->unsigned_call = 1;
    }
    if (creds) {
        call->fixed_creds = 1;
        call->fixed.access_key_id = strdup(creds->access_key_id);
        call->fixed.secret_access_key = strdup(creds->secret_access_key);
        if (creds->session_token && creds->session_token[0])
            call->fixed.session_token = strdup(creds->session_token);
        if (!call->fixed.access_key_id || !call->fixed.secret_access_key ||
            (creds->session_token && creds->session_token[0] &&
             !call->fixed.session_token)) {
            call_destroy(call);
            return NULL;
        }
    }
    return call;
}

struct aws_call *aws_get_credentials(struct aws_client *c, const char *profile,
                                     const char *region, aws_creds_cb *done,
                                     void *arg)
{
    struct aws_call *call;

    if (!done)
        return NULL;
    call = call_new(c, CALL_CREDS, profile, region, arg);
    if (call)
        call->creds_done = done;
    return call;
}

/* ---- request building ------------------------------------------------------
 */

static int form_append(char **buf, size_t *len, const char *k, const char *v)
{
    char *ek = aws_uri_encode(k, strlen(k), 0);
    char *ev = aws_uri_encode(v, strlen(v), 0);
    size_t need;
    char *nb;
    int rc = GW_ENOMEM;

    if (!ek || !ev)
        goto out;
    need = *len + strlen(ek) + strlen(ev) + 3;
    nb = realloc(*buf, need);
    if (!nb)
        goto out;
    *buf = nb;
    *len += (size_t)snprintf(nb + *len, need - *len, "%s%s=%s", *len ? "&" : "",
                             ek, ev);
    rc = 0; /* success */
out:
    free(ek);
    free(ev);
    return rc;
}

/* Query flattening of scalars, lists (K.member.N) and maps of scalars
 * (K.N.key) is all STS and EC2 need here. */
static int form_value(char **buf, size_t *len, const char *key, json_t *v)
{
    char num[64];

    switch (json_typeof(v)) {
    case JSON_STRING:
        return form_append(buf, len, key, json_string_value(v));
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return form_append(buf, len, key, num);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%.17g", json_real_value(v));
        return form_append(buf, len, key, num);
    case JSON_TRUE:
        return form_append(buf, len, key, "true");
    case JSON_FALSE:
        return form_append(buf, len, key, "false");
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            char sub[512];
            if (snprintf(sub, sizeof(sub), "%s.member.%zu", key, i + 1) >=
                (int)sizeof(sub))
                return GW_ETOO_BIG;
            int rc = form_value(buf, len, sub, e);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            char sub[512];
            if (snprintf(sub, sizeof(sub), "%s.%s", key, k) >= (int)sizeof(sub))
                return GW_ETOO_BIG;
            int rc = form_value(buf, len, sub, e);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    default:
        return 0; /* null: omitted */
    }
}

static int build_body(struct aws_call *call)
{
    const char *k;
    json_t *v;
    size_t len = 0;
    int rc;

    switch (call->svc->proto) {
    case AWS_PROTO_JSON:
        call->body = json_dumps(call->input, JSON_COMPACT);
        if (!call->body)
            return GW_ENOMEM;
        call->body_len = strlen(call->body);
        return 0;
    case AWS_PROTO_QUERY:
        if ((rc = form_append(&call->body, &len, "Action", call->action)) ||
            (rc =
                 form_append(&call->body, &len, "Version", call->svc->version)))
            return rc;
        json_object_foreach(call->input, k, v)
        {
            if ((rc = form_value(&call->body, &len, k, v)) < 0)
                return rc;
        }
        call->body_len = len;
        return 0;
    case AWS_PROTO_REST_JSON:
        if (call->svc->svc != AWS_SVC_SSO_OIDC)
            return 0; /* SSO portal GET: no body */
        call->body = json_dumps(call->input, JSON_COMPACT);
        if (!call->body)
            return GW_ENOMEM;
        call->body_len = strlen(call->body);
        return 0;
    default:
        return GW_EINVAL;
    }
}

static int build_url(struct aws_call *call)
{
    const char *base = call->ep.url;
    size_t bl = strlen(base);
    int trail = bl && base[bl - 1] == '/';

    if (call->svc->svc == AWS_SVC_SSO_OIDC) {
        /* SSO OIDC CreateToken: POST /token. */
        if (strcmp(call->action, "CreateToken") != 0)
            return GW_EINVAL;
        if ((size_t)snprintf(call->url, sizeof(call->url), "%s%stoken", base,
                             trail ? "" : "/") >= sizeof(call->url))
            return GW_ETOO_BIG;
        return 0;
    }
    if (call->svc->proto == AWS_PROTO_REST_JSON) {
        /* SSO GetRoleCredentials: the only portal call made here. */
        const char *role =
            json_string_value(json_object_get(call->input, "roleName"));
        const char *acct =
            json_string_value(json_object_get(call->input, "accountId"));
        char *er, *ea;
        int n;
        if (strcmp(call->action, "GetRoleCredentials") != 0 || !role || !acct)
            return GW_EINVAL;
        er = aws_uri_encode(role, strlen(role), 0);
        ea = aws_uri_encode(acct, strlen(acct), 0);
        n = er && ea ? snprintf(call->url, sizeof(call->url),
                                "%s%sfederation/credentials?role_name=%s&"
                                "account_id=%s",
                                base, trail ? "" : "/", er, ea)
                     : -1;
        free(er);
        free(ea);
        if (n < 0)
            return GW_ENOMEM;
        return (size_t)n < sizeof(call->url) ? 0 : GW_ETOO_BIG;
    }
    if ((size_t)snprintf(call->url, sizeof(call->url), "%s%s", base,
                         trail ? "" : "/") >= sizeof(call->url))
        return GW_ETOO_BIG;
    return 0;
}

/* Resolves what does not change between attempts. Returns 0 or a status
 * for call_finish. */
static int call_prepare(struct aws_call *call)
{
    struct aws_client *c = call->c;
    const char *pname;
    int rc;

    call->explicit_profile = call->profile_arg[0] != 0;
    pname = aws_resolve_profile_name(NULL, call->profile_arg);
    snprintf(call->profile, sizeof(call->profile), "%s", pname);
    rc = aws_resolve_region(NULL, call->region_arg, c->profiles, call->profile,
                            call->region, sizeof(call->region));
    if (rc < 0) {
        set_msg(&call->err,
                "no region for profile %s (set AWS_REGION or region in "
                "the profile)",
                call->profile);
        return GW_ENO_REGION;
    }
    if (call->kind == CALL_CREDS)
        return 0;
    rc = aws_endpoint_resolve(call->svc->svc, call->region, c->profiles,
                              call->profile, NULL, &call->ep);
    if (rc < 0) {
        set_msg(&call->err, "no endpoint for %s in %s: %s", call->svc->name,
                call->region, gw_strerror(rc));
        return rc;
    }
    if ((rc = build_body(call)) < 0 || (rc = build_url(call)) < 0) {
        set_msg(&call->err, "cannot build the %s request: %s", call->action,
                gw_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- sending ---------------------------------------------------------------
 */

static void call_http_done(struct http_req *req,
                           const struct http_response *resp, void *arg);

static int call_send(struct aws_call *call, const struct aws_creds *cr)
{
    struct aws_client *c = call->c;
    struct aws_sigv4_header sh[2];
    struct aws_sigv4_result sig;
    char h_target[160], h_date[64], h_auth[AWS_SIGV4_AUTH_MAX + 32];
    char h_req[64], h_inv[80];
    char *h_token = NULL, *h_bearer = NULL;
    const char *headers[12];
    const char *ctype = NULL;
    size_t nh = 0, nsh = 0;
    struct http_request_opts o;
    uint64_t now = uv_now(c->loop), left;
    int rc;

    memset(&o, 0, sizeof(o));
    call->attempt++;
    snprintf(h_inv, sizeof(h_inv), "amz-sdk-invocation-id: %s",
             call->invocation_id);
    snprintf(h_req, sizeof(h_req), "amz-sdk-request: attempt=%d; max=%d",
             call->attempt, c->max_attempts);
    headers[nh++] = h_inv;
    headers[nh++] = h_req;
    if (call->svc->proto == AWS_PROTO_JSON) {
        ctype = "application/x-amz-json-1.1";
        snprintf(h_target, sizeof(h_target), "X-Amz-Target: %s.%s",
                 call->svc->target_prefix, call->action);
        headers[nh++] = "Content-Type: application/x-amz-json-1.1";
        headers[nh++] = h_target;
        sh[nsh].name = "x-amz-target";
        sh[nsh++].value = h_target + strlen("X-Amz-Target: ");
    } else if (call->svc->proto == AWS_PROTO_QUERY) {
        ctype = "application/x-www-form-urlencoded; charset=utf-8";
        headers[nh++] =
            "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
    }
    if (ctype) {
        sh[nsh].name = "content-type";
        sh[nsh++].value = ctype;
    }
    if (call->svc->svc == AWS_SVC_SSO_OIDC)
        headers[nh++] = "Content-Type: application/json";
    if (call->svc->svc == AWS_SVC_SSO) {
        const char *tok =
            json_string_value(json_object_get(call->input, "accessToken"));
        if (!tok ||
            asprintf(&h_bearer, "x-amz-sso_bearer_token: %s", tok) < 0) {
            h_bearer = NULL;
            rc = GW_EINVAL;
            goto out;
        }
        headers[nh++] = h_bearer;
    }
    if (cr) {
        struct aws_sigv4_creds sc = {cr->access_key_id, cr->secret_access_key,
                                     cr->session_token};
        struct aws_sigv4_request sr;
        memset(&sr, 0, sizeof(sr));
        sr.method = call->svc->svc == AWS_SVC_SSO ? "GET" : "POST";
        sr.url = call->url;
        sr.headers = sh;
        sr.n_headers = nsh;
        sr.body = call->body;
        sr.body_len = call->body_len;
        rc = aws_sigv4_sign(&sr, &sc, call->ep.signing_region,
                            call->ep.signing_name, time(NULL) + c->skew, &sig,
                            NULL, NULL);
        if (rc < 0)
            goto out;
        snprintf(h_date, sizeof(h_date), "X-Amz-Date: %s", sig.amz_date);
        snprintf(h_auth, sizeof(h_auth), "Authorization: %s",
                 sig.authorization);
        headers[nh++] = h_date;
        headers[nh++] = h_auth;
        if (cr->session_token && cr->session_token[0]) {
            if (asprintf(&h_token, "X-Amz-Security-Token: %s",
                         cr->session_token) < 0) {
                h_token = NULL;
                rc = GW_ENOMEM;
                goto out;
            }
            headers[nh++] = h_token;
        }
    }
    headers[nh] = NULL;
    left = call->deadline > now ? call->deadline - now : 1;
    o.method = call->svc->svc == AWS_SVC_SSO ? "GET" : "POST";
    o.url = call->url;
    o.headers = headers;
    o.body = call->body;
    o.body_len = call->body_len;
    o.timeout_ms = (long)GW_MIN(left, (uint64_t)AWS_ATTEMPT_TIMEOUT_MS);
    o.connect_timeout_ms = AWS_CONNECT_TIMEOUT_MS;
    o.ca_file = aws_ca_bundle(c, call->profile);
    call->req = http_request(c->http, &o, call_http_done, call);
    rc = call->req ? 0 : GW_ENOMEM;
out:
    if (h_token) {
        memset(h_token, 0, strlen(h_token));
        free(h_token);
    }
    if (h_bearer) {
        memset(h_bearer, 0, strlen(h_bearer));
        free(h_bearer);
    }
    memset(h_auth, 0, sizeof(h_auth));
    return rc;
}

static void call_send_or_fail(struct aws_call *call, const struct aws_creds *cr)
{
    int rc = call_send(call, cr);

    if (rc < 0) {
        set_msg(&call->err, "cannot send %s: %s", call->action,
                gw_strerror(rc));
        call_finish(call, rc, NULL);
    }
}

static void call_creds_ready(void *arg, int status,
                             const struct aws_creds *creds, const char *why)
{
    struct aws_call *call = arg;

    call->wait = NULL;
    if (status < 0) {
        set_msg(&call->err, "%s", why && why[0] ? why : gw_strerror(status));
        call_finish(call,
                    status == GW_ENO_CREDS || status == GW_EAWS ||
                            status == GW_ETIMEOUT
                        ? GW_ENO_CREDS
                        : status,
                    NULL);
        return;
    }
    if (call->kind == CALL_CREDS) {
        struct aws_sigv4_creds sc = {creds->access_key_id,
                                     creds->secret_access_key,
                                     creds->session_token};
        call->finished = 1;
        call->c->busy++;
        call->creds_done(call->arg, 0, &sc, call->region, NULL);
        call->c->busy--;
        call_destroy(call);
        return;
    }
    call_send_or_fail(call, creds);
}

static void call_get_creds(struct aws_call *call)
{
    const struct aws_creds *now = NULL;
    char why[700] = "";
    int rc;

    if (call->fixed_creds) {
        call_send_or_fail(call, call->unsigned_call ? NULL : &call->fixed);
        return;
    }
    if (!call->c->creds) {
        call_finish(call, GW_ENO_CREDS, NULL);
        return;
    }
    rc = aws_creds_get(call->c->creds, call->profile, call->explicit_profile,
                       call->force_refresh, &now, &call->wait, call_creds_ready,
                       call, why, sizeof(why));
    call->force_refresh = 0;
    if (rc < 0) {
        set_msg(&call->err, "%s",
                why[0] ? why : "no credentials for this profile");
        call_finish(call, GW_ENO_CREDS, NULL);
        return;
    }
    if (now)
        call_creds_ready(call, 0, now, NULL);
}

static void call_begin(uv_timer_t *t)
{
    struct aws_call *call = CONTAINER_OF(t, struct aws_call, timer);
    int rc;

    if (!call->ep.url[0] && !call->region[0]) {
        rc = call_prepare(call);
        if (rc < 0) {
            call_finish(call, rc, NULL);
            return;
        }
    }
    call_get_creds(call);
}

/* The Result element of a Query response (AssumeRoleResult inside
 * AssumeRoleResponse), as a new reference. */
static json_t *query_result(const struct aws_call *call, const char *body,
                            size_t len)
{
    json_t *doc = aws_xml_to_json(body, len), *res = NULL;
    char rname[96], sname[96];
    json_t *root;

    if (!doc)
        return NULL;
    snprintf(rname, sizeof(rname), "%sResponse", call->action);
    snprintf(sname, sizeof(sname), "%sResult", call->action);
    root = json_object_get(doc, rname);
    if (json_is_object(root)) {
        res = json_object_get(root, sname);
        if (json_is_string(res) && json_string_length(res) == 0)
            res = NULL; /* <XResult/> */
        if (!res && call->svc->svc == AWS_SVC_EC2)
            res = root; /* EC2 has no Result wrapper */
    }
    if (res && !json_is_object(res))
        res = NULL;
    res = res ? json_incref(res) : (root ? json_object() : NULL);
    json_decref(doc);
    return res;
}

static void call_retry_timer(uv_timer_t *t)
{
    call_get_creds(CONTAINER_OF(t, struct aws_call, timer));
}

static void call_http_done(struct http_req *req,
                           const struct http_response *resp, void *arg)
{
    struct aws_call *call = arg;
    struct aws_client *c = call->c;
    enum aws_retry_kind kind;
    json_t *out = NULL;
    long skew;
    time_t server_now;
    int cost;

    (void)req;
    call->req = NULL;
    call->err.attempts = call->attempt;
    if (!resp->transport_error && resp->status >= 200 && resp->status < 300) {
        if (call->svc->proto == AWS_PROTO_QUERY)
            out = query_result(call, resp->body, resp->body_len);
        else if (resp->body_len == 0)
            out = json_object();
        else
            out = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (!json_is_object(out)) {
            json_decref(out);
            call->err.http_status = resp->status;
            snprintf(call->err.request_id, sizeof(call->err.request_id), "%s",
                     resp->request_id);
            set_msg(&call->err, "%s: unreadable %s response", call->action,
                    call->svc->proto == AWS_PROTO_QUERY ? "XML" : "JSON");
            call_finish(call, GW_EPROTO, NULL);
            return;
        }
        /* Quota: +1 for a first-try success, else give back the retry. */
        aws_retry_quota_release(&c->quota, call->last_cost);
        call_finish(call, 0, out);
        json_decref(out);
        return;
    }
    if (resp->transport_error) {
        memset(call->err.code, 0, sizeof(call->err.code));
        call->err.transport = resp->transport_error;
        call->err.http_status = 0;
        set_msg(&call->err, "%s %s: %s", call->action, call->ep.url,
                resp->error_text ? resp->error_text : "");
    } else {
        call->err.transport = 0;
        aws_parse_error(call->svc->proto, resp->status, resp->body,
                        resp->body_len, resp->request_id, resp->error_type,
                        &call->err);
    }
    kind =
        aws_retry_classify(resp->status, call->err.code, resp->transport_error);
    call->err.retryable = kind != AWS_RETRY_NO;

    if (!call->fixed_creds && !call->refreshed &&
        (strcmp(call->err.code, "ExpiredToken") == 0 ||
         strcmp(call->err.code, "ExpiredTokenException") == 0)) {
        log_info("aws: %s: session token expired; refreshing credentials "
                 "for profile %s",
                 call->action, call->profile);
        call->refreshed = 1;
        call->force_refresh = 1;
        call_get_creds(call);
        return;
    }
    if (!call->skew_fixed && aws_is_skew_error(&call->err) &&
        aws_parse_http_date(resp->date, &server_now) == 0) {
        skew = (long)(server_now - time(NULL));
        log_warn("aws: clock differs from %s by %ld s; correcting",
                 call->ep.url, skew);
        c->skew = skew;
        call->skew_fixed = 1;
        call_get_creds(call);
        return;
    }
    if (kind != AWS_RETRY_NO && call->attempt < c->max_attempts) {
        long delay;
        delay =
            aws_retry_delay_ms(call->attempt, kind, c->new_retries, rand01());
        if (c->new_retries && resp->retry_after && resp->retry_after[0]) {
            long ra = atol(resp->retry_after);
            if (ra >= 0 && ra <= delay + 5000)
                delay = ra;
        }
        if (uv_now(c->loop) + (uint64_t)delay >= call->deadline) {
            log_debug("aws: %s: no time left to retry", call->action);
        } else if (!(cost = aws_retry_quota_take(&c->quota, kind,
                                                 c->new_retries))) {
            log_warn("aws: %s: retry quota exhausted", call->action);
        } else {
            call->last_cost = cost;
            log_debug("aws: %s attempt %d failed (%s); retry in %ld ms",
                      call->action, call->attempt,
                      call->err.code[0] ? call->err.code
                                        : gw_strerror(call->err.transport),
                      delay);
            uv_timer_start(&call->timer, call_retry_timer, (uint64_t)delay, 0);
            return;
        }
    }
    call_finish(call, resp->transport_error ? resp->transport_error : GW_EAWS,
                NULL);
}

static void call_finish(struct aws_call *call, int status, json_t *resp)
{
    struct aws_client *c = call->c;

    if (call->finished)
        return;
    call->finished = 1;
    call->err.attempts = call->attempt;
    if (status < 0 && !call->err.code[0] && !call->err.transport &&
        status != GW_EAWS)
        call->err.transport = status;
    c->busy++;
    call->in_callback = 1;
    if (call->kind == CALL_CREDS)
        call->creds_done(call->arg, status, NULL, call->region,
                         status < 0 ? &call->err : NULL);
    else
        call->done(call->arg, status, status < 0 ? NULL : resp,
                   status < 0 ? &call->err : NULL);
    call->in_callback = 0;
    c->busy--;
    if (call->again && !c->free_requested) {
        json_decref(call->input);
        call->input = call->again;
        call->again = NULL;
        free(call->body);
        call->body = NULL;
        call->body_len = 0;
        call->attempt = 0;
        call->last_cost = 0;
        call->refreshed = 0;
        call->finished = 0;
        memset(&call->err, 0, sizeof(call->err));
        call->deadline = uv_now(c->loop) + AWS_CALL_DEADLINE_MS;
        make_uuid(call->invocation_id);
        if (build_body(call) < 0) {
            set_msg(&call->err, "cannot build the next %s request",
                    call->action);
            call_finish(call, GW_ENOMEM, NULL);
            return;
        }
        uv_timer_start(&call->timer, call_retry_timer, 0, 0);
        return;
    }
    json_decref(call->again);
    call->again = NULL;
    call_destroy(call);
}

int aws_client_pending(const struct aws_client *c)
{
    int n = 0;
    for (const struct aws_call *k = c->calls; k != NULL; k = k->next)
        n++;
    return n;
}
