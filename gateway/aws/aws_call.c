/*
 * aws_call.c - the request engine: one AWS request, sent, retried,
 * reported once.
 *
 * A call goes:  QUEUED (deferred to the loop, so the callback never runs
 * inside the function that started it; a held call asks its owner's
 * begin hook instead) -> SEND (sign the exact body with a fresh
 * X-Amz-Date and the call's own copy of the credentials, http_request)
 * -> DONE: success, or classify the error: retry after a full-jitter
 * backoff when the standard mode says so and the context's retry quota
 * allows, correct the clock once on a skew error and re-sign, else
 * report. The throttle-prone actions (every signed call in the adaptive
 * retry mode) take a token from their key's adaptive limiter before each
 * attempt, waiting in its FIFO line (aws_throttle.c) while the service
 * throttles; the wait is bounded by the call's deadline, the attempts by
 * max_attempts. ExpiredToken is reported as GW_EEXPIRED: refreshing credentials
 * is the owner's business (its answer hook may hold the call and resume
 * it). Every path ends in call_finish(), which runs the callback once and
 * then closes the call's timer; the call is freed in the close callback.
 */
#include "aws_call.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws_call_int.h"
#include "aws_profile.h"
#include "aws_throttle.h"
#include "common.h"
#include "defer.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "secret.h"
#include "stats.h"

#define AWS_ATTEMPT_TIMEOUT_MS 30000
#define AWS_CONNECT_TIMEOUT_MS 10000

static void call_finish(struct aws_call *call, int status, json_t *resp);

static void set_msg(struct aws_error *err, const char *fmt, ...)
    LOG_PRINTF(2, 3);
static void set_msg(struct aws_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* ---- context ---------------------------------------------------------------
 */

struct aws_call_ctx *aws_call_ctx_new(uv_loop_t *loop, struct http_client *http)
{
    struct aws_call_ctx *x = calloc(1, sizeof(*x));

    if (!x)
        return NULL;
    x->loop = loop;
    x->http = http;
    list_init(&x->calls);
    x->quota = AWS_RETRY_QUOTA_MAX;
    x->max_attempts = 3;
    x->new_retries = aws_env_is_true(aws_env_get(NULL, "AWS_NEW_RETRIES_2026"));
    aws_call_ctx_set_retry(x, NULL, NULL);
    x->throttle = aws_throttle_new(&aws_call_throttle_ops);
    return x;
}

static void ctx_maybe_free(struct aws_call_ctx *x)
{
    if (!x->free_requested || x->busy || x->n_calls)
        return;
    if (x->idle)
        x->idle(x->idle_arg);
    aws_throttle_free(x->throttle);
    free(x);
}

static void call_destroy(struct aws_call *call);

void aws_call_ctx_free(struct aws_call_ctx *x)
{
    struct list *e, *tmp;

    if (!x || x->free_requested)
        return;
    x->free_requested = 1;
    LIST_FOREACH_SAFE (e, tmp, &x->calls) {
        struct aws_call *call = CONTAINER_OF(e, struct aws_call, node);
        /* A call inside its own callback is destroyed when it returns. */
        if (!call->in_callback && !call->finished)
            call_destroy(call);
    }
    ctx_maybe_free(x);
}

void aws_call_ctx_set_idle(struct aws_call_ctx *x, void (*idle)(void *arg),
                           void *arg)
{
    x->idle = idle;
    x->idle_arg = arg;
}

int aws_call_ctx_pending(const struct aws_call_ctx *x)
{
    return x->n_live;
}

int aws_call_ctx_busy(const struct aws_call_ctx *x)
{
    return x->busy;
}

uv_loop_t *aws_call_ctx_loop(const struct aws_call_ctx *x)
{
    return x->loop;
}

struct http_client *aws_call_ctx_http(const struct aws_call_ctx *x)
{
    return x->http;
}

void aws_call_ctx_set_stats(struct aws_call_ctx *x, struct stats *st)
{
    x->stats = st;
}

/* ---- call lifecycle -------------------------------------------------------
 */

static void creds_wipe(struct aws_sigv4_creds *c)
{
    free((char *)c->access_key_id);
    secret_free_str((char *)c->secret_access_key);
    secret_free_str((char *)c->session_token);
    memset(c, 0, sizeof(*c));
}

static void headers_free(char **h)
{
    for (size_t i = 0; h && h[i]; i++)
        secret_free_str(h[i]);
    free(h);
}

static void call_closed(uv_handle_t *h)
{
    struct aws_call *call = CONTAINER_OF(h, struct aws_call, timer);
    struct aws_call_ctx *x = call->x;

    json_decref(call->again);
    secret_wipe(call->body, call->body_len); /* tokens, client secrets */
    free(call->body);
    free(call->method);
    free(call->url);
    free(call->signing_region);
    free(call->signing_name);
    free(call->ca_file);
    free(call->rate_scope);
    headers_free(call->headers);
    creds_wipe(&call->creds);
    free(call);
    x->n_calls--;
    ctx_maybe_free(x);
}

/* Stops everything the call has in flight and frees it from the loop. */
static void call_destroy(struct aws_call *call)
{
    const struct aws_call_hooks *hooks = call->hooks;

    if (!call->finished && call->cleanup)
        call->cleanup(call->arg);
    call->finished = 1;
    if (call->req) {
        http_cancel(call->req);
        call->req = NULL;
    }
    list_remove(&call->node);
    aws_throttle_leave(&call->tw, uv_now(call->x->loop));
    call->x->n_live--;
    defer_cancel(&call->soon);
    uv_timer_stop(&call->timer);
    uv_close((uv_handle_t *)&call->timer, call_closed);
    call->hooks = NULL;
    if (hooks && hooks->release)
        hooks->release(call->owner);
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
    if (!call->in_callback || !call->have_req || call->hooks->report ||
        !json_is_object(input))
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

static void call_begin(struct aws_call *call)
{
    if (call->early)
        call_finish(call, call->early, NULL);
    else if (call->have_req)
        aws_call_send_limited(call);
    else if (call->hooks && call->hooks->begin)
        call->hooks->begin(call, call->owner);
    else
        aws_call_fail(call, GW_EINVAL, "no request");
}

static void call_soon_run(struct defer *d)
{
    call_begin(CONTAINER_OF(d, struct aws_call, soon));
}

/* BEGIN (or the next page) from the loop, never inside the caller. */
static void call_soon(struct aws_call *call)
{
    call->soon.cb = call_soon_run;
    defer_queue(call->x->loop, &call->soon);
}

static const struct aws_call_hooks no_hooks;

struct aws_call *aws_call_new(struct aws_call_ctx *x,
                              const struct aws_call_hooks *hooks, void *owner,
                              aws_done_cb *done, void *arg)
{
    struct aws_call *call;

    if (!x || x->free_requested)
        return NULL;
    call = calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->x = x;
    call->hooks = hooks ? hooks : &no_hooks;
    call->owner = owner;
    call->done = done;
    call->arg = arg;
    make_uuid(call->invocation_id);
    call->deadline = uv_now(x->loop) + AWS_CALL_DEADLINE_MS;
    call->tw.order = ++x->seq;
    CHECK(uv_timer_init(x->loop, &call->timer) == 0);
    x->n_calls++;
    x->n_live++;
    list_insert_head(&x->calls, &call->node);
    /* BEGIN runs from the loop: the callback never runs inside start. */
    call_soon(call);
    return call;
}

static char *dup_or_null(const char *s, int *bad)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *bad = 1;
    return d;
}

static int call_set_creds(struct aws_call *call,
                          const struct aws_sigv4_creds *cr)
{
    int bad = 0;

    creds_wipe(&call->creds);
    if (!cr)
        return 0;
    call->creds.access_key_id = dup_or_null(cr->access_key_id, &bad);
    call->creds.secret_access_key = dup_or_null(cr->secret_access_key, &bad);
    if (cr->session_token && cr->session_token[0])
        call->creds.session_token = dup_or_null(cr->session_token, &bad);
    if (bad || !call->creds.access_key_id || !call->creds.secret_access_key) {
        creds_wipe(&call->creds);
        return GW_ENOMEM;
    }
    return 0;
}

void aws_call_refresh_creds(struct aws_call *call)
{
    const struct aws_sigv4_creds *cr;

    if (!call->hooks || !call->hooks->refresh || !call->creds.access_key_id)
        return;
    cr = call->hooks->refresh(call, call->owner);
    if (cr && cr->access_key_id &&
        strcmp(cr->access_key_id, call->creds.access_key_id) != 0 &&
        call_set_creds(call, cr) < 0)
        log_warn("aws: %s: out of memory for fresh credentials", call->action);
}

static int call_set_req(struct aws_call *call, const struct aws_req *r)
{
    size_t n = 0;
    int bad = 0;

    if (!r->svc || !r->action || strlen(r->action) >= sizeof(call->action) ||
        !r->url)
        return GW_EINVAL;
    call->svc = r->svc;
    snprintf(call->action, sizeof(call->action), "%s", r->action);
    call->method = dup_or_null(r->method ? r->method : "POST", &bad);
    call->url = dup_or_null(r->url, &bad);
    call->signing_region = dup_or_null(r->signing_region, &bad);
    call->signing_name = dup_or_null(r->signing_name, &bad);
    call->ca_file = dup_or_null(r->ca_file, &bad);
    call->rate_scope = dup_or_null(r->rate_scope, &bad);
    while (r->headers && r->headers[n])
        n++;
    if (n > AWS_CALL_HEADERS_MAX)
        return GW_ETOO_BIG;
    call->headers = calloc(n + 1, sizeof(char *));
    if (!call->headers)
        return GW_ENOMEM;
    for (size_t i = 0; i < n; i++)
        call->headers[i] = dup_or_null(r->headers[i], &bad);
    if (r->body_len) {
        call->body = malloc(r->body_len + 1);
        if (call->body) {
            memcpy(call->body, r->body, r->body_len);
            call->body[r->body_len] = '\0';
            call->body_len = r->body_len;
        } else {
            bad = 1;
        }
    }
    if (bad)
        return GW_ENOMEM;
    call->have_req = 1;
    return 0;
}

struct aws_call *aws_call_send(struct aws_call_ctx *x, const struct aws_req *r,
                               const struct aws_sigv4_creds *creds,
                               aws_done_cb *done, void *arg)
{
    struct aws_call *call;

    if (!done)
        return NULL;
    call = aws_call_new(x, NULL, NULL, done, arg);
    if (!call)
        return NULL;
    if (call_set_req(call, r) < 0 || call_set_creds(call, creds) < 0) {
        call->finished = 1; /* never started: no cleanup, no callback */
        call_destroy(call);
        return NULL;
    }
    return call;
}

struct aws_call *aws_call_send_failed(struct aws_call_ctx *x, int status,
                                      const char *message, aws_done_cb *done,
                                      void *arg)
{
    struct aws_call *call;

    if (!done || status >= 0)
        return NULL;
    call = aws_call_new(x, NULL, NULL, done, arg);
    if (call) {
        call->early = status;
        set_msg(&call->err, "%s", message ? message : "");
    }
    return call;
}

void aws_call_resume(struct aws_call *call, const struct aws_req *r,
                     const struct aws_sigv4_creds *creds)
{
    int rc = 0;

    if (r && !call->have_req)
        rc = call_set_req(call, r);
    if (rc == 0)
        rc = call_set_creds(call, creds);
    if (rc == 0 && !call->have_req)
        rc = GW_EINVAL;
    if (rc < 0) {
        set_msg(&call->err, "cannot build the %s request: %s",
                r && r->action ? r->action : call->action, gw_strerror(rc));
        call_finish(call, rc, NULL);
        return;
    }
    aws_call_send_limited(call);
}

void aws_call_fail(struct aws_call *call, int status, const char *message)
{
    if (message)
        set_msg(&call->err, "%s", message);
    call_finish(call, status, NULL);
}

/* ---- sending ---------------------------------------------------------------
 */

static void call_http_done(struct http_req *req,
                           const struct http_response *resp, void *arg);

static int call_send(struct aws_call *call)
{
    struct aws_call_ctx *x = call->x;
    const struct aws_sigv4_creds *cr = &call->creds;
    struct aws_sigv4_header sh[2];
    struct aws_sigv4_result sig;
    char h_target[160], h_date[64], h_auth[AWS_SIGV4_AUTH_MAX + 32];
    char h_req[64], h_inv[80];
    char *h_token = NULL;
    const char *headers[AWS_CALL_HEADERS_MAX + 8];
    const char *ctype = NULL;
    size_t nh = 0, nsh = 0;
    struct http_request_opts o;
    uint64_t now = uv_now(x->loop), left;
    int rc;

    memset(&o, 0, sizeof(o));
    call->attempt++;
    snprintf(h_inv, sizeof(h_inv), "amz-sdk-invocation-id: %s",
             call->invocation_id);
    snprintf(h_req, sizeof(h_req), "amz-sdk-request: attempt=%d; max=%d",
             call->attempt, x->max_attempts);
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
    for (size_t i = 0; call->headers && call->headers[i]; i++)
        headers[nh++] = call->headers[i];
    if (cr->access_key_id) {
        struct aws_sigv4_request sr;
        memset(&sr, 0, sizeof(sr));
        sr.method = call->method;
        sr.url = call->url;
        sr.headers = sh;
        sr.n_headers = nsh;
        sr.body = call->body;
        sr.body_len = call->body_len;
        rc = aws_sigv4_sign(&sr, cr, call->signing_region, call->signing_name,
                            time(NULL) + x->skew, &sig, NULL, NULL);
        if (rc < 0)
            goto out;
        snprintf(h_date, sizeof(h_date), "X-Amz-Date: %s", sig.amz_date);
        snprintf(h_auth, sizeof(h_auth), "Authorization: %s",
                 sig.authorization);
        secret_wipe(&sig, sizeof(sig));
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
    o.method = call->method;
    o.url = call->url;
    o.headers = headers;
    o.body = call->body;
    o.body_len = call->body_len;
    o.timeout_ms = (long)GW_MIN(left, (uint64_t)AWS_ATTEMPT_TIMEOUT_MS);
    o.connect_timeout_ms = AWS_CONNECT_TIMEOUT_MS;
    o.ca_file = call->ca_file;
    call->req = http_request(x->http, &o, call_http_done, call);
    rc = call->req ? 0 : GW_ENOMEM;
out:
    secret_free_str(h_token);
    secret_wipe(h_auth, sizeof(h_auth));
    return rc;
}

void aws_call_send_attempt(struct aws_call *call)
{
    int rc = call_send(call);

    if (rc < 0) {
        set_msg(&call->err, "cannot send %s: %s", call->action,
                gw_strerror(rc));
        call_finish(call, rc, NULL);
    }
}

static void call_retry_timer(uv_timer_t *t)
{
    aws_call_send_limited(CONTAINER_OF(t, struct aws_call, timer));
}

static int is_expired_token(const struct aws_error *e)
{
    return strcmp(e->code, "ExpiredToken") == 0 ||
           strcmp(e->code, "ExpiredTokenException") == 0;
}

/* A 2xx answer: the JSON (or the Query Result) to the callback. */
static void call_success(struct aws_call *call,
                         const struct http_response *resp)
{
    json_t *out;

    if (call->svc->proto == AWS_PROTO_QUERY)
        out = aws_proto_query_result(call->svc, call->action, resp->body,
                                     resp->body_len);
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
    aws_retry_quota_release(&call->x->quota, call->last_cost);
    call_finish(call, 0, out);
    json_decref(out);
}

/* A throttle answered to a call in a limiter's line is the service's
 * word that the line goes too fast, and the limiter has just slowed it
 * for every call in it: such a call may wait for its turn again, past
 * max_attempts, while its deadline allows (a connect queues instead of
 * failing when others in the account share its rate). */
#define AWS_THROTTLE_EXTRA_ATTEMPTS 4

static int call_attempts_max(const struct aws_call *call,
                             enum aws_retry_kind kind)
{
    if (kind == AWS_RETRY_THROTTLE && call->tw.b != NULL)
        return call->x->max_attempts + AWS_THROTTLE_EXTRA_ATTEMPTS;
    return call->x->max_attempts;
}

/* Whether a retry was scheduled for this failed attempt. */
static int call_retry(struct aws_call *call, const struct http_response *resp,
                      enum aws_retry_kind kind)
{
    struct aws_call_ctx *x = call->x;
    long delay;
    int cost;

    if (kind == AWS_RETRY_NO || call->attempt >= call_attempts_max(call, kind))
        return 0;
    delay = aws_retry_delay_ms(call->attempt, kind, x->new_retries, rand01());
    if (x->new_retries && resp->retry_after && resp->retry_after[0]) {
        long ra = atol(resp->retry_after);
        if (ra >= 0 && ra <= delay + 5000)
            delay = ra;
    }
    if (uv_now(x->loop) + (uint64_t)delay >= call->deadline) {
        log_debug("aws: %s: no time left to retry", call->action);
        return 0;
    }
    if (!(cost = aws_retry_quota_take(&x->quota, kind, x->new_retries))) {
        log_warn("aws: %s: retry quota exhausted", call->action);
        return 0;
    }
    call->last_cost = cost;
    log_debug("aws: %s attempt %d failed (%s); retry in %ld ms", call->action,
              call->attempt,
              call->err.code[0] ? call->err.code
                                : gw_strerror(call->err.transport),
              delay);
    uv_timer_start(&call->timer, call_retry_timer, (uint64_t)delay, 0);
    return 1;
}

/* One request went out and this is what came of it (call->err holds the
 * parsed error of an error answer). */
static void call_count(const struct aws_call *call,
                       const struct http_response *resp)
{
    char code[24];
    const char *what = code;
    if (resp->transport_error)
        what = resp->transport_error == GW_ETIMEOUT ? "timeout" : "network";
    else if (resp->status >= 200 && resp->status < 300)
        what = "ok";
    else if (call->err.code[0] != '\0')
        what = call->err.code;
    else
        snprintf(code, sizeof(code), "http_%ld", (long)resp->status);
    stats_api_call(call->x->stats, call->action, what);
}

/* *b: the limiter told of the answer, to run its line afterwards. */
static void call_answered(struct aws_call *call,
                          const struct http_response *resp,
                          struct aws_throttle_bucket **b)
{
    uint64_t now = uv_now(call->x->loop);
    enum aws_retry_kind kind;
    time_t server_now;
    long skew;

    call->err.attempts = call->attempt;
    if (!resp->transport_error && resp->status >= 200 && resp->status < 300) {
        call_count(call, resp);
        *b = aws_throttle_answer(&call->tw, now, AWS_THROTTLE_ANSWERED);
        call_success(call, resp);
        return;
    }
    if (resp->transport_error) {
        memset(call->err.code, 0, sizeof(call->err.code));
        call->err.transport = resp->transport_error;
        call->err.http_status = 0;
        set_msg(&call->err, "%s %s: %s", call->action, call->url,
                resp->error_text ? resp->error_text : "");
    } else {
        call->err.transport = 0;
        aws_parse_error(call->svc->proto, resp->status, resp->body,
                        resp->body_len, resp->request_id, resp->error_type,
                        &call->err);
    }
    call_count(call, resp);
    kind =
        aws_retry_classify(resp->status, call->err.code, resp->transport_error);
    call->err.retryable = kind != AWS_RETRY_NO;
    *b = aws_throttle_answer(&call->tw, now,
                             resp->transport_error ? AWS_THROTTLE_NO_ANSWER
                             : kind == AWS_RETRY_THROTTLE
                                 ? AWS_THROTTLE_THROTTLED
                                 : AWS_THROTTLE_ANSWERED);
    if (is_expired_token(&call->err)) {
        call_finish(call, GW_EEXPIRED, NULL);
        return;
    }
    if (!call->skew_fixed && aws_is_skew_error(&call->err) &&
        aws_parse_http_date(resp->date, &server_now) == 0) {
        skew = (long)(server_now - time(NULL));
        log_warn("aws: clock differs from %s by %ld s; correcting", call->url,
                 skew);
        call->x->skew = skew;
        call->skew_fixed = 1;
        aws_call_send_limited(call);
        return;
    }
    if (call_retry(call, resp, kind))
        return;
    call_finish(call, resp->transport_error ? resp->transport_error : GW_EAWS,
                NULL);
}

static void call_http_done(struct http_req *req,
                           const struct http_response *resp, void *arg)
{
    struct aws_call *call = arg;
    struct aws_throttle_bucket *b = NULL;
    uint64_t now = uv_now(call->x->loop);

    (void)req;
    call->req = NULL;
    call_answered(call, resp, &b); /* the call may be gone after this */
    aws_throttle_run(b, now);
}

/* aws_call_again: the same call with the next input, from the loop. */
static int call_rearm(struct aws_call *call)
{
    json_t *input = call->again;
    int rc;

    call->again = NULL;
    free(call->body);
    call->body = NULL;
    call->body_len = 0;
    call->attempt = 0;
    call->last_cost = 0;
    call->finished = 0;
    memset(&call->err, 0, sizeof(call->err));
    call->deadline = uv_now(call->x->loop) + AWS_CALL_DEADLINE_MS;
    make_uuid(call->invocation_id);
    rc = aws_proto_build_body(call->svc, call->action, input, &call->body,
                              &call->body_len);
    json_decref(input);
    if (rc < 0) {
        set_msg(&call->err, "cannot build the next %s request", call->action);
        call_finish(call, GW_ENOMEM, NULL);
        return rc;
    }
    call_soon(call);
    return 0;
}

static void call_finish(struct aws_call *call, int status, json_t *resp)
{
    struct aws_call_ctx *x = call->x;
    const struct aws_call_hooks *hooks = call->hooks;

    if (call->finished)
        return;
    if (hooks->answer && hooks->answer(call, call->owner, &status))
        return; /* held by its owner; may be gone by now */
    call->finished = 1;
    call->err.attempts = call->attempt;
    if (status < 0 && !call->err.code[0] && !call->err.transport &&
        status != GW_EAWS)
        call->err.transport = status;
    x->busy++;
    call->in_callback = 1;
    if (hooks->report)
        hooks->report(call, call->owner, status,
                      status < 0 ? &call->err : NULL);
    else
        call->done(call->arg, status, status < 0 ? NULL : resp,
                   status < 0 ? &call->err : NULL);
    call->in_callback = 0;
    x->busy--;
    if (call->again && !x->free_requested) {
        call_rearm(call);
        return;
    }
    json_decref(call->again);
    call->again = NULL;
    call_destroy(call);
}
