/*
 * aws.c - one call = resolve region and endpoint, get credentials, sign,
 * send, read the answer, retry as the SDKs' standard mode, report once.
 *
 * A call's steps run from callbacks (credentials ready, HTTP done, backoff
 * timer); results always reach the caller from the loop, never from inside
 * aws_call_start. Each attempt is signed afresh (new X-Amz-Date).
 */
#include "aws.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws_creds.h"
#include "aws_endpoint.h"
#include "aws_profile.h"
#include "common.h"
#include "http.h"
#include "log.h"

#define AWS_QUOTA_MAX      500
#define AWS_RETRY_COST     5
#define AWS_TIMEOUT_COST   10
#define AWS_ATTEMPT_MS     20000
#define AWS_CALL_DEADLINE  60000
#define AWS_BACKOFF_CAP_MS 20000

struct aws_client {
    uv_loop_t *loop;
    struct http_client *http;
    struct aws_creds_cache *creds;
    struct aws_profiles *profiles;
    char default_profile[128];
    char default_region[64];
    int quota;
    struct aws_call *calls;
};

struct aws_call {
    struct aws_call *next, *prev;
    struct aws_client *c;
    char service[32];
    char action[64];
    char profile[128];
    int explicit_profile;
    char region[64];
    struct aws_endpoint ep;
    char *body;
    aws_done_cb *done;
    aws_creds_cb *creds_done; /* aws_get_credentials mode */
    void *arg;
    uv_timer_t timer;
    struct http_req *req;
    struct aws_creds_wait *cw;
    int attempt, max_attempts;
    int cost;      /* quota taken by the retry under way */
    int refreshed; /* already retried once after ExpiredToken */
    uint64_t deadline;
    char invocation_id[37];
    struct aws_error err;
    int status; /* final, for the delivery timer */
    int finished;
    void *owned; /* the caller's context, freed if done never runs */
};

const char *aws_error_str(const struct aws_error *err, char *buf, size_t len)
{
    if (err->code[0] != '\0')
        snprintf(buf, len, "%s: %s (HTTP %ld, %d attempt%s)", err->code,
                 err->message[0] ? err->message : "no message",
                 err->http_status, err->attempts,
                 err->attempts == 1 ? "" : "s");
    else
        snprintf(buf, len, "%s (%d attempt%s)",
                 err->message[0] ? err->message : gw_strerror(err->transport),
                 err->attempts, err->attempts == 1 ? "" : "s");
    return buf;
}

static void call_unlink(struct aws_call *k)
{
    struct aws_client *c = k->c;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else if (c->calls == k)
        c->calls = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    k->next = k->prev = NULL;
}

static void call_timer_closed(uv_handle_t *h)
{
    struct aws_call *k = h->data;
    free(k->owned);
    free(k->body);
    free(k);
}

static void call_free(struct aws_call *k)
{
    call_unlink(k);
    if (k->req != NULL)
        http_cancel(k->req);
    if (k->cw != NULL)
        aws_creds_cancel(k->cw);
    k->req = NULL;
    k->cw = NULL;
    uv_close((uv_handle_t *)&k->timer, call_timer_closed);
}

/* ---- finishing ---- */

static void call_deliver(uv_timer_t *t)
{
    struct aws_call *k = t->data;
    k->err.attempts = k->attempt;
    call_unlink(k);
    k->owned = NULL; /* the callback frees it */
    if (k->status != 0 && k->done != NULL)
        k->done(k->arg, k->status, NULL, &k->err);
    else if (k->status != 0 && k->creds_done != NULL)
        k->creds_done(k->arg, k->status, NULL, NULL, &k->err);
    call_free(k);
}

/* Reports a failure from the loop. */
static void call_fail(struct aws_call *k, int status)
{
    k->status = status;
    k->finished = 1;
    uv_timer_start(&k->timer, call_deliver, 0, 0);
}

static void call_fail_msg(struct aws_call *k, int status, const char *msg)
{
    snprintf(k->err.message, sizeof(k->err.message), "%s", msg);
    k->err.transport = status;
    call_fail(k, status);
}

/* ---- error classification ---- */

static const char *const throttle_codes[] = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "EC2ThrottledException",
};

static const char *const transient_codes[] = {
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "IDPCommunicationError",
};

static int in_list(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return 1;
    return 0;
}

/* Would the standard retry mode retry this failure? */
static int aws_error_retryable(const struct aws_error *e)
{
    if (e->transport != 0)
        return e->transport != GW_ETOO_BIG;
    if (in_list(e->code, throttle_codes, ARRAY_SIZE(throttle_codes)) ||
        in_list(e->code, transient_codes, ARRAY_SIZE(transient_codes)))
        return 1;
    return e->http_status == 500 || e->http_status == 502 ||
           e->http_status == 503 || e->http_status == 504;
}

/* The code from "__type" / x-amzn-ErrorType: after the last '#', before
 * the first ':'. */
static void clean_code(const char *raw, char *out, size_t len)
{
    const char *hash = strrchr(raw, '#');
    const char *start = hash ? hash + 1 : raw;
    size_t n = strcspn(start, ":");
    snprintf(out, len, "%.*s", (int)n, start);
}

/* XML <Code> / <Message> of Query and EC2 errors. */
static void xml_field(const char *body, const char *tag, char *out, size_t len)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(body, open);
    const char *b = a ? strstr(a, close) : NULL;
    if (a == NULL || b == NULL)
        return;
    a += strlen(open);
    snprintf(out, len, "%.*s", (int)(b - a), a);
}

static void parse_error(const struct http_response *r, struct aws_error *e)
{
    e->http_status = r->status;
    snprintf(e->request_id, sizeof(e->request_id), "%s", r->request_id);
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &jerr);
    const char *type = json_string_value(json_object_get(doc, "__type"));
    const char *msg = json_string_value(json_object_get(doc, "message"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(doc, "Message"));
    if (type == NULL)
        type = json_string_value(json_object_get(doc, "code"));
    if (r->error_type[0] != '\0' && type == NULL)
        type = r->error_type;
    if (type != NULL)
        clean_code(type, e->code, sizeof(e->code));
    if (msg != NULL)
        snprintf(e->message, sizeof(e->message), "%s", msg);
    if (doc == NULL && r->body_len > 0) {
        xml_field(r->body, "Code", e->code, sizeof(e->code));
        xml_field(r->body, "Message", e->message, sizeof(e->message));
        if (e->code[0] == '\0')
            snprintf(e->message, sizeof(e->message), "%.200s", r->body);
    }
    if (e->code[0] == '\0')
        snprintf(e->code, sizeof(e->code), "%ld", r->status);
    json_decref(doc);
    e->retryable = aws_error_retryable(e);
}

/* ---- attempts ---- */

static void call_attempt(struct aws_call *k);

static void call_backoff_fired(uv_timer_t *t)
{
    call_attempt(t->data);
}

/* Full jitter: random [0, min(2^(n-1) s, 20 s)). */
static uint64_t backoff_ms(int attempt)
{
    uint64_t cap = 1000ull << (attempt - 1 > 5 ? 5 : attempt - 1);
    if (cap > AWS_BACKOFF_CAP_MS)
        cap = AWS_BACKOFF_CAP_MS;
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof(r));
    return (uint64_t)((double)r / 4294967296.0 * (double)cap);
}

/* Decides whether to try again; 1 if a retry was scheduled. */
static int call_maybe_retry(struct aws_call *k)
{
    if (!k->err.retryable || k->attempt >= k->max_attempts)
        return 0;
    int cost =
        k->err.transport == GW_ETIMEOUT ? AWS_TIMEOUT_COST : AWS_RETRY_COST;
    if (k->c->quota < cost) {
        log_debug("aws %s.%s: retry quota exhausted", k->service, k->action);
        return 0;
    }
    uint64_t delay = backoff_ms(k->attempt);
    if (uv_now(k->c->loop) + delay >= k->deadline)
        return 0;
    k->c->quota -= cost;
    k->cost = cost;
    log_debug("aws %s.%s: attempt %d failed (%s); retrying in %llu ms",
              k->service, k->action, k->attempt,
              k->err.code[0] ? k->err.code : gw_strerror(k->err.transport),
              (unsigned long long)delay);
    uv_timer_start(&k->timer, call_backoff_fired, delay, 0);
    return 1;
}

static void call_http_done(struct http_req *req, const struct http_response *r,
                           void *arg)
{
    struct aws_call *k = arg;
    k->req = NULL;
    memset(&k->err, 0, sizeof(k->err));
    if (r->transport_error != 0) {
        k->err.transport = r->transport_error;
        k->err.retryable = aws_error_retryable(&k->err);
        snprintf(k->err.message, sizeof(k->err.message), "%s: %s", k->ep.url,
                 r->error_text ? r->error_text : "transport error");
        if (!call_maybe_retry(k))
            call_fail(k, r->transport_error);
        return;
    }
    if (r->status >= 200 && r->status < 300) {
        json_error_t jerr;
        json_t *doc = r->body_len > 0
                          ? json_loadb(r->body, r->body_len, 0, &jerr)
                          : json_object();
        if (doc == NULL) {
            snprintf(k->err.message, sizeof(k->err.message),
                     "%s.%s: response is not JSON", k->service, k->action);
            k->err.http_status = r->status;
            call_fail(k, GW_EPROTO);
            return;
        }
        /* A success returns what its retries took; a first try adds one. */
        k->c->quota += k->attempt == 1 ? 1 : k->cost;
        if (k->c->quota > AWS_QUOTA_MAX)
            k->c->quota = AWS_QUOTA_MAX;
        k->err.attempts = k->attempt;
        k->finished = 1;
        /* Off the client's list first: the callback may free the client. */
        call_unlink(k);
        k->owned = NULL;
        k->done(k->arg, 0, doc, NULL);
        json_decref(doc);
        call_free(k);
        return;
    }
    parse_error(r, &k->err);
    if (!k->refreshed && (strcmp(k->err.code, "ExpiredTokenException") == 0 ||
                          strcmp(k->err.code, "ExpiredToken") == 0)) {
        k->refreshed = 1;
        aws_creds_invalidate(k->c->creds, k->profile);
        call_attempt(k);
        return;
    }
    if (!call_maybe_retry(k))
        call_fail(k, GW_EAWS);
}

static const char *json_target_prefix(const char *service)
{
    if (strcmp(service, "ssm") == 0)
        return "AmazonSSM";
    if (strcmp(service, "ec2-instance-connect") == 0)
        return "AWSEC2InstanceConnectService";
    return NULL;
}

static void call_creds_ready(void *arg, int status,
                             const struct aws_sigv4_creds *creds,
                             const char *why)
{
    struct aws_call *k = arg;
    k->cw = NULL;
    if (status != 0) {
        call_fail_msg(k, GW_ENO_CREDS, why ? why : "no credentials");
        return;
    }
    if (k->creds_done != NULL) {
        k->finished = 1;
        call_unlink(k);
        k->owned = NULL;
        k->creds_done(k->arg, 0, creds, k->region, NULL);
        call_free(k);
        return;
    }
    const char *prefix = json_target_prefix(k->service);
    char target[160], date_hdr[64], auth_hdr[AWS_SIGV4_AUTH_MAX + 32], inv[96],
        attempt_hdr[64];
    snprintf(target, sizeof(target), "%s.%s", prefix, k->action);
    struct aws_sigv4_header sh[] = {
        {"Content-Type", "application/x-amz-json-1.1"},
        {"X-Amz-Target", target},
    };
    char url[sizeof(k->ep.url) + 2];
    snprintf(url, sizeof(url), "%s/", k->ep.url);
    struct aws_sigv4_request sreq = {"POST", url,     sh,
                                     2,      k->body, strlen(k->body)};
    struct aws_sigv4_result sig;
    int rc = aws_sigv4_sign(&sreq, creds, k->ep.signing_region,
                            k->ep.signing_name, time(NULL), &sig, NULL, NULL);
    if (rc != 0) {
        call_fail_msg(k, rc, "cannot sign the request (bad endpoint URL?)");
        return;
    }
    char *token_hdr = NULL;
    if (creds->session_token != NULL && creds->session_token[0] != '\0') {
        size_t n = strlen(creds->session_token) + 32;
        token_hdr = malloc(n);
        if (token_hdr == NULL) {
            call_fail_msg(k, GW_ENOMEM, "out of memory");
            return;
        }
        snprintf(token_hdr, n, "X-Amz-Security-Token: %s",
                 creds->session_token);
    }
    char ctype[64], xtarget[192];
    snprintf(ctype, sizeof(ctype), "Content-Type: %s", sh[0].value);
    snprintf(xtarget, sizeof(xtarget), "X-Amz-Target: %s", target);
    snprintf(date_hdr, sizeof(date_hdr), "X-Amz-Date: %s", sig.amz_date);
    snprintf(auth_hdr, sizeof(auth_hdr), "Authorization: %s",
             sig.authorization);
    snprintf(inv, sizeof(inv), "amz-sdk-invocation-id: %s", k->invocation_id);
    snprintf(attempt_hdr, sizeof(attempt_hdr),
             "amz-sdk-request: attempt=%d; max=%d", k->attempt,
             k->max_attempts);
    const char *headers[] = {ctype,
                             xtarget,
                             date_hdr,
                             auth_hdr,
                             inv,
                             attempt_hdr,
                             "User-Agent: ssmgate/" SSMGATE_VERSION,
                             token_hdr,
                             NULL};
    uint64_t left = k->deadline - uv_now(k->c->loop);
    struct http_request_opts o = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = k->body,
        .body_len = strlen(k->body),
        .timeout_ms = (long)GW_MIN(left, (uint64_t)AWS_ATTEMPT_MS),
        .connect_timeout_ms = 5000,
        .ca_file = aws_ca_bundle(k->c, k->profile),
    };
    k->req = http_request(k->c->http, &o, call_http_done, k);
    if (token_hdr != NULL) {
        OPENSSL_cleanse(token_hdr, strlen(token_hdr));
        free(token_hdr);
    }
    if (k->req == NULL)
        call_fail_msg(k, GW_ENOMEM, "cannot start the HTTP request");
}

static void call_attempt(struct aws_call *k)
{
    k->attempt++;
    if (uv_now(k->c->loop) >= k->deadline) {
        call_fail_msg(k, GW_ETIMEOUT, "call deadline passed");
        return;
    }
    int rc = aws_creds_get(k->c->creds, k->c->profiles, k->profile,
                           k->explicit_profile, call_creds_ready, k, &k->cw);
    if (rc != 0)
        call_fail_msg(k, rc, "out of memory");
}

/* ---- client ---- */

struct aws_client *aws_client_new(uv_loop_t *loop,
                                  const struct aws_client_opts *opts)
{
    struct aws_client *c = calloc(1, sizeof(*c));
    char err[256];
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->quota = AWS_QUOTA_MAX;
    c->http = http_client_new(loop);
    c->creds = aws_creds_cache_new(loop);
    c->profiles = aws_profiles_load(err, sizeof(err));
    if (c->profiles == NULL) {
        log_warn("AWS shared files: %s", err);
        c->profiles = aws_profiles_load_mem(NULL, 0, NULL, 0, err, sizeof(err));
    }
    if (opts != NULL && opts->default_profile != NULL)
        snprintf(c->default_profile, sizeof(c->default_profile), "%s",
                 opts->default_profile);
    if (opts != NULL && opts->default_region != NULL)
        snprintf(c->default_region, sizeof(c->default_region), "%s",
                 opts->default_region);
    if (c->http == NULL || c->creds == NULL || c->profiles == NULL) {
        aws_client_free(c);
        return NULL;
    }
    return c;
}

void aws_client_free(struct aws_client *c)
{
    if (c == NULL)
        return;
    while (c->calls != NULL)
        call_free(c->calls);
    http_client_free(c->http);
    aws_creds_cache_free(c->creds);
    aws_profiles_free(c->profiles);
    free(c);
}

static int max_attempts_for(struct aws_client *c, const char *profile)
{
    const char *v = getenv("AWS_MAX_ATTEMPTS");
    if (v == NULL || v[0] == '\0')
        v = aws_profile_get(c->profiles, profile, "max_attempts");
    int n = v != NULL ? atoi(v) : 3;
    return n >= 1 && n <= 20 ? n : 3;
}

static struct aws_call *call_new(struct aws_client *c, const char *service,
                                 const char *action, const char *profile,
                                 const char *region)
{
    struct aws_call *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->c = c;
    snprintf(k->service, sizeof(k->service), "%s", service);
    snprintf(k->action, sizeof(k->action), "%s", action ? action : "");
    k->explicit_profile = (profile != NULL && profile[0] != '\0') ||
                          c->default_profile[0] != '\0';
    snprintf(k->profile, sizeof(k->profile), "%s",
             aws_resolve_profile_name(
                 profile != NULL && profile[0] ? profile : c->default_profile));
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    k->deadline = uv_now(c->loop) + AWS_CALL_DEADLINE;
    k->max_attempts = max_attempts_for(c, k->profile);
    unsigned char u[16];
    RAND_bytes(u, sizeof(u));
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    snprintf(k->invocation_id, sizeof(k->invocation_id),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
             u[11], u[12], u[13], u[14], u[15]);
    k->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = k;
    c->calls = k;
    int rc = aws_resolve_region(
        region != NULL && region[0]
            ? region
            : (c->default_region[0] ? c->default_region : NULL),
        c->profiles, k->profile, k->region, sizeof(k->region));
    if (rc != 0) {
        call_fail_msg(k, GW_ENO_REGION,
                      "no region: set --region, AWS_REGION or the profile's "
                      "region");
        return k;
    }
    rc = aws_endpoint_resolve(service, k->region, c->profiles, k->profile,
                              &k->ep);
    if (rc != 0)
        call_fail_msg(k, rc, "no endpoint for this service and region");
    return k;
}

struct aws_call *aws_call_start(struct aws_client *c, const char *service,
                                const char *action, json_t *input,
                                const char *profile, const char *region,
                                aws_done_cb *done, void *arg)
{
    if (json_target_prefix(service) == NULL)
        return NULL; /* only JSON 1.1 services go through here */
    struct aws_call *k = call_new(c, service, action, profile, region);
    if (k == NULL)
        return NULL;
    k->done = done;
    k->arg = arg;
    if (k->finished)
        return k;
    k->body = input != NULL ? json_dumps(input, JSON_COMPACT) : strdup("{}");
    if (k->body == NULL) {
        call_fail_msg(k, GW_ENOMEM, "out of memory");
        return k;
    }
    call_attempt(k);
    return k;
}

struct aws_call *aws_get_credentials(struct aws_client *c, const char *profile,
                                     const char *region, aws_creds_cb *done,
                                     void *arg)
{
    /* The ssm endpoint stands in: only the region and profile matter. */
    struct aws_call *k = call_new(c, "ssm", "", profile, region);
    if (k == NULL)
        return NULL;
    k->creds_done = done;
    k->arg = arg;
    if (!k->finished)
        call_attempt(k);
    return k;
}

void aws_call_cancel(struct aws_call *call)
{
    if (call != NULL)
        call_free(call);
}

void aws_call_own(struct aws_call *call, void *ptr)
{
    if (call != NULL)
        call->owned = ptr;
}

int aws_client_pending(const struct aws_client *c)
{
    int n = 0;
    for (const struct aws_call *k = c->calls; k != NULL; k = k->next)
        n++;
    return n;
}

const char *aws_ca_bundle(struct aws_client *c, const char *profile)
{
    const char *v = getenv("AWS_CA_BUNDLE");
    if (v != NULL && v[0] != '\0')
        return v;
    return aws_profile_get(c->profiles,
                           aws_resolve_profile_name(profile && profile[0]
                                                        ? profile
                                                        : c->default_profile),
                           "ca_bundle");
}
