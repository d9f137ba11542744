/*
 * aws_creds.c - the credential chain and the per-profile cache.
 *
 * Cache: one entry per (profile, explicit) pair. aws_creds_get() serves
 * fresh keys at once; inside the advisory window (< 15 min left) it also
 * starts a background refresh; inside the mandatory window (< 10 min) or
 * with nothing cached the caller becomes a waiter of the entry's single
 * refresh job.
 *
 * A job walks the providers in AWS CLI v2 order from job->step, each
 * either answering at once (environment, static keys) or asynchronously
 * (STS, SSO, a process, container / IMDS over HTTP) and then calling
 * job_done(). "Not configured here" moves to the next step; a configured
 * provider that fails ends the chain with its error, except IMDS and the
 * CLI fallback, which are best-effort.
 */
#include "aws_creds.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aws_endpoint.h"
#include "aws_sso.h"
#include "aws_sts.h"
#include "common.h"
#include "http.h"
#include "log.h"

#define ADVISORY_S      (15 * 60)
#define MANDATORY_S     (10 * 60)
#define PROC_OUT_MAX    (64 * 1024)
#define PROC_TIMEOUT_MS 60000
#define IMDS_TIMEOUT_MS 1000
#define ECS_TIMEOUT_MS  2000
#define CHAIN_DEPTH_MAX 8

enum step {
    STEP_ENV,
    STEP_ASSUME_ROLE,
    STEP_WEB_IDENTITY,
    STEP_SSO,
    STEP_STATIC, /* credentials file, then config file keys */
    STEP_PROCESS,
    STEP_CONTAINER,
    STEP_IMDS,
    STEP_CLI,
    STEP_END,
};

struct job;
typedef void job_cb(struct job *j, int status, struct aws_creds_parsed *pc,
                    const char *why);

struct proc {
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int open; /* handles not yet closed */
    int exited, out_eof, err_eof, timed_out;
    int64_t exit_status;
    char *buf_out, *buf_err;
    size_t len_out, len_err;
    int too_big;
    struct job *owner; /* NULL once the job let go */
};

/* One resolution of one profile; owned by its entry (or its parent job
 * for a role's source). */
struct job {
    struct aws_creds_cache *cc;
    char profile[128];
    int explicit_profile;
    int depth;
    char chain[CHAIN_DEPTH_MAX][128]; /* profiles above, for loops */
    enum step step;
    int forced;      /* credential_source: only this step */
    int source_mode; /* a role's source_profile: static keys first */
    job_cb *done;
    void *owner;
    struct job *sub; /* a role's source job */
    struct aws_call *call;
    struct aws_sts_req sts;
    struct http_req *http;
    struct proc *proc;
    int imds_stage;
    char imds_token[256];
    char role_name[256];
    int cli_fallback;
    const char *source; /* provider that took over, for the log */
    struct aws_sso_token sso_tok;
    struct aws_sso_refresh_req sso_ref;
    const char *sso_region, *sso_acct, *sso_role; /* live as long as p */
};

struct entry {
    struct entry *next;
    char profile[128];
    int explicit_profile;
    struct aws_creds creds;
    int have;
    struct job *refresh;
    struct aws_creds_wait *waiters;
    char why[700]; /* last failure */
};

struct aws_creds_wait {
    struct aws_creds_wait *prev, *next;
    struct entry *e;
    aws_creds_ready_cb *cb;
    void *arg;
    int delivering; /* detached; entry_job_done frees it */
    int cancelled;
};

struct aws_creds_cache {
    struct aws_call_ctx *x;
    struct http_client *http;
    const struct aws_profiles *p;
    struct entry *entries;
};

static void job_next(struct job *j);
static void job_free(struct job *j);

static const char *penv(const char *name)
{
    const char *v = aws_env_get(NULL, name);
    return v && v[0] ? v : NULL;
}

static const char *pget(struct job *j, const char *key)
{
    const char *v = aws_profile_get(j->cc->p, j->profile, key);
    return v && v[0] ? v : NULL;
}

static void creds_clear(struct aws_creds *cr)
{
    if (cr->secret_access_key)
        memset(cr->secret_access_key, 0, strlen(cr->secret_access_key));
    if (cr->session_token)
        memset(cr->session_token, 0, strlen(cr->session_token));
    free(cr->access_key_id);
    free(cr->secret_access_key);
    free(cr->session_token);
    memset(cr, 0, sizeof(*cr));
}

static int parsed_static(const char *ak, const char *sk, const char *tk,
                         struct aws_creds_parsed *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->access_key_id = strdup(ak);
    pc->secret_access_key = strdup(sk);
    if (tk && tk[0])
        pc->session_token = strdup(tk);
    if (!pc->access_key_id || !pc->secret_access_key ||
        (tk && tk[0] && !pc->session_token)) {
        aws_creds_parsed_clear(pc);
        return GW_ENOMEM;
    }
    return 0;
}

/* ---- cache ------------------------------------------------------------------
 */

struct aws_creds_cache *aws_creds_cache_new(struct aws_call_ctx *x,
                                            struct http_client *http,
                                            const struct aws_profiles *p)
{
    struct aws_creds_cache *cc = calloc(1, sizeof(*cc));

    if (!cc)
        return NULL;
    cc->x = x;
    cc->http = http;
    cc->p = p;
    return cc;
}

void aws_creds_cache_free(struct aws_creds_cache *cc)
{
    if (!cc)
        return;
    while (cc->entries) {
        struct entry *e = cc->entries;
        cc->entries = e->next;
        while (e->waiters)
            aws_creds_wait_cancel(e->waiters);
        if (e->refresh)
            job_free(e->refresh);
        creds_clear(&e->creds);
        free(e);
    }
    free(cc);
}

void aws_creds_wait_cancel(struct aws_creds_wait *w)
{
    if (!w)
        return;
    if (w->delivering) {
        w->cancelled = 1;
        return;
    }
    if (w->prev)
        w->prev->next = w->next;
    else
        w->e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
}

static struct job *job_new(struct aws_creds_cache *cc, const char *profile,
                           int explicit_profile, job_cb *done, void *owner)
{
    struct job *j = calloc(1, sizeof(*j));

    if (!j)
        return NULL;
    j->cc = cc;
    snprintf(j->profile, sizeof(j->profile), "%s", profile);
    j->explicit_profile = explicit_profile;
    j->done = done;
    j->owner = owner;
    return j;
}

static void entry_job_done(struct job *j, int status,
                           struct aws_creds_parsed *pc, const char *why)
{
    struct entry *e = j->owner;
    struct aws_creds_wait *w;

    e->refresh = NULL;
    if (status == 0) {
        creds_clear(&e->creds);
        e->creds.access_key_id = pc->access_key_id;
        e->creds.secret_access_key = pc->secret_access_key;
        e->creds.session_token = pc->session_token;
        e->creds.expiration = pc->expiration;
        memset(pc, 0, sizeof(*pc)); /* transferred */
        e->have = 1;
        char kid[64];
        log_redact(e->creds.access_key_id, 1, kid, sizeof(kid));
        if (e->creds.expiration)
            log_info("aws: profile %s: credentials from %s (key %s), expire "
                     "in %lld s",
                     e->profile, j->source ? j->source : "?", kid,
                     (long long)(e->creds.expiration - time(NULL)));
        else
            log_info("aws: profile %s: credentials from %s (key %s)",
                     e->profile, j->source ? j->source : "?", kid);
    } else {
        snprintf(e->why, sizeof(e->why), "%s", why ? why : gw_strerror(status));
        log_debug("aws: credentials for profile %s: %s", e->profile, e->why);
        /* Advisory failure: keys still valid for > 10 min stay. */
        if (e->have && e->creds.expiration &&
            e->creds.expiration - time(NULL) > MANDATORY_S)
            status = 0;
    }
    /* Take the whole list first: a callback may add a waiter. */
    w = e->waiters;
    e->waiters = NULL;
    for (struct aws_creds_wait *x = w; x; x = x->next)
        x->delivering = 1;
    /* A callback may free the whole cache (aws_client_free); it cancels
     * the remaining waiters first, so e is not read after that. */
    while (w) {
        struct aws_creds_wait *n = w->next;
        if (w->cancelled)
            ;
        else if (status == 0)
            w->cb(w->arg, 0, &e->creds, NULL);
        else
            w->cb(w->arg, status, NULL, why);
        free(w);
        w = n;
    }
    job_free(j);
}

int aws_creds_get(struct aws_creds_cache *cc, const char *profile,
                  int explicit_profile, int force, const struct aws_creds **now,
                  struct aws_creds_wait **wait, aws_creds_ready_cb *cb,
                  void *arg, char *why, size_t why_len)
{
    struct entry *e;
    struct aws_creds_wait *w;
    time_t left = 0;

    *now = NULL;
    *wait = NULL;
    for (e = cc->entries; e; e = e->next)
        if (e->explicit_profile == explicit_profile &&
            strcmp(e->profile, profile) == 0)
            break;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return GW_ENOMEM;
        snprintf(e->profile, sizeof(e->profile), "%s", profile);
        e->explicit_profile = explicit_profile;
        e->next = cc->entries;
        cc->entries = e;
    }
    if (force && e->have && !e->refresh)
        e->have = 0;
    if (e->have) {
        left =
            e->creds.expiration ? e->creds.expiration - time(NULL) : INT32_MAX;
        if (left > ADVISORY_S) {
            *now = &e->creds;
            return 0;
        }
    }
    if (!e->refresh) {
        e->refresh = job_new(cc, profile, explicit_profile, entry_job_done, e);
        if (!e->refresh)
            return GW_ENOMEM;
        job_next(e->refresh);
        /* job_next may have finished synchronously (static keys). */
        if (!e->refresh && e->have) {
            left = e->creds.expiration ? e->creds.expiration - time(NULL)
                                       : INT32_MAX;
            if (left > MANDATORY_S) {
                *now = &e->creds;
                return 0;
            }
        }
    }
    if (e->have && left > MANDATORY_S) {
        *now = &e->creds; /* advisory: refresh runs in the background */
        return 0;
    }
    if (!e->refresh && !e->have) {
        snprintf(why, why_len, "%s", e->why); /* chain failed at once */
        return GW_ENO_CREDS;
    }
    w = calloc(1, sizeof(*w));
    if (!w)
        return GW_ENOMEM;
    w->e = e;
    w->cb = cb;
    w->arg = arg;
    w->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = w;
    e->waiters = w;
    *wait = w;
    return 0;
}

/* ---- processes (credential_process, aws CLI)
 * --------------------------------- */

static void proc_closed(uv_handle_t *h)
{
    struct proc *p = h->data;

    if (--p->open == 0) {
        free(p->buf_out);
        free(p->buf_err);
        free(p);
    }
}

static void proc_close_all(struct proc *p)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&p->proc, (uv_handle_t *)&p->out,
                         (uv_handle_t *)&p->err, (uv_handle_t *)&p->timer};

    for (size_t i = 0; i < ARRAY_SIZE(hs); i++)
        if (hs[i]->data && !uv_is_closing(hs[i]))
            uv_close(hs[i], proc_closed);
}

static void proc_maybe_done(struct job *j)
{
    struct proc *p = j->proc;
    struct aws_creds_parsed pc;
    char why[600], errtxt[256];
    int rc;

    if (!p->timed_out && !(p->exited && p->out_eof && p->err_eof))
        return;
    j->proc = NULL;
    p->owner = NULL;
    if (p->exited == 0)
        uv_process_kill(&p->proc, SIGKILL);
    snprintf(errtxt, sizeof(errtxt), "%.*s", (int)GW_MIN(p->len_err, 200),
             p->buf_err ? p->buf_err : "");
    for (char *s = errtxt; *s; s++)
        if ((unsigned char)*s < 0x20)
            *s = ' ';
    if (p->timed_out) {
        snprintf(why, sizeof(why), "%s timed out after 60 s",
                 j->cli_fallback ? "aws configure export-credentials"
                                 : "credential_process");
        rc = GW_ETIMEOUT;
    } else if (p->too_big) {
        snprintf(why, sizeof(why), "credential_process output too big");
        rc = GW_ETOO_BIG;
    } else if (p->exit_status != 0) {
        snprintf(why, sizeof(why), "%s exited with %lld: %s",
                 j->cli_fallback ? "aws configure export-credentials"
                                 : "credential_process",
                 (long long)p->exit_status, errtxt);
        rc = GW_EIO;
    } else {
        char pwhy[200];
        rc = aws_parse_process_creds(p->buf_out ? p->buf_out : "", p->len_out,
                                     &pc, pwhy, sizeof(pwhy));
        snprintf(why, sizeof(why), "credential_process output: %s", pwhy);
    }
    if (p->buf_out)
        memset(p->buf_out, 0, p->len_out);
    proc_close_all(p);
    if (rc == 0) {
        j->done(j, 0, &pc, NULL);
        aws_creds_parsed_clear(&pc);
        return;
    }
    if (j->cli_fallback) {
        j->step = STEP_END;
        log_debug("aws: %s", why);
        job_next(j);
        return;
    }
    j->done(j, rc, NULL, why);
}

static void proc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char slab[16384];

    (void)h;
    (void)hint;
    /* Reads are copied into the per-stream buffer at once. */
    b->base = slab;
    b->len = sizeof(slab);
}

static struct job *proc_job(struct proc *p);

static void proc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proc *p = s->data;
    int is_out = s == (uv_stream_t *)&p->out;
    char **buf = is_out ? &p->buf_out : &p->buf_err;
    size_t *len = is_out ? &p->len_out : &p->len_err;
    struct job *j = proc_job(p);

    if (n < 0) {
        uv_read_stop(s);
        if (is_out)
            p->out_eof = 1;
        else
            p->err_eof = 1;
        if (j)
            proc_maybe_done(j);
        return;
    }
    if (n == 0)
        return;
    if (*len + (size_t)n > PROC_OUT_MAX) {
        p->too_big = 1;
        n = (ssize_t)(PROC_OUT_MAX - *len);
    }
    if (n > 0) {
        char *nb = realloc(*buf, *len + (size_t)n + 1);
        if (nb) {
            memcpy(nb + *len, b->base, (size_t)n);
            *len += (size_t)n;
            nb[*len] = '\0';
            *buf = nb;
        }
    }
}

/* The job that owns a live process (NULL once it let go). */
static struct job *proc_job(struct proc *p)
{
    return p->owner;
}

static void proc_exit_cb(uv_process_t *h, int64_t status, int sig)
{
    struct proc *p = CONTAINER_OF(h, struct proc, proc);
    struct job *j = proc_job(p);

    p->exited = 1;
    p->exit_status = sig ? 128 + sig : status;
    if (j)
        proc_maybe_done(j);
}

static void proc_timeout(uv_timer_t *t)
{
    struct proc *p = CONTAINER_OF(t, struct proc, timer);
    struct job *j = proc_job(p);

    p->timed_out = 1;
    if (j)
        proc_maybe_done(j);
}

/* Runs argv without a shell, stdout/stderr into pipes. */
static int proc_start(struct job *j, char **argv)
{
    uv_loop_t *loop = aws_call_ctx_loop(j->cc->x);
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    struct proc *p = calloc(1, sizeof(*p));
    int rc;

    if (!p)
        return GW_ENOMEM;
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    uv_timer_init(loop, &p->timer);
    p->out.data = p->err.data = p->timer.data = p;
    p->owner = j;
    p->open = 3;
    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;
    o.file = argv[0];
    o.args = argv;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = proc_exit_cb;
    rc = uv_spawn(loop, &p->proc, &o);
    if (rc < 0) {
        /* libuv initialised the process handle anyway: close it too. */
        p->proc.data = p;
        p->open = 4;
        uv_close((uv_handle_t *)&p->proc, proc_closed);
        uv_close((uv_handle_t *)&p->out, proc_closed);
        uv_close((uv_handle_t *)&p->err, proc_closed);
        uv_close((uv_handle_t *)&p->timer, proc_closed);
        return rc;
    }
    p->proc.data = p;
    p->open = 4;
    j->proc = p;
    uv_read_start((uv_stream_t *)&p->out, proc_alloc, proc_read);
    uv_read_start((uv_stream_t *)&p->err, proc_alloc, proc_read);
    uv_timer_start(&p->timer, proc_timeout, PROC_TIMEOUT_MS, 0);
    return 0;
}

static void proc_abandon(struct proc *p)
{
    /* The job goes away: kill the child, close everything. */
    if (!p->exited)
        uv_process_kill(&p->proc, SIGKILL);
    p->owner = NULL;
    proc_close_all(p);
}

/* ---- HTTP metadata (container, IMDS)
 * ------------------------------------------ */

static void imds_step(struct job *j);

static void metadata_creds_done(struct job *j, const struct http_response *resp,
                                const char *what)
{
    struct aws_creds_parsed pc;
    char why[300], pwhy[200];

    if (resp->transport_error || resp->status != 200) {
        snprintf(why, sizeof(why), "%s credentials: %s", what,
                 resp->transport_error ? resp->error_text : "HTTP error");
        if (!resp->transport_error)
            snprintf(why, sizeof(why), "%s credentials: HTTP %ld", what,
                     resp->status);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return;
    }
    if (aws_parse_metadata_creds(resp->body, resp->body_len, &pc, pwhy,
                                 sizeof(pwhy)) < 0) {
        snprintf(why, sizeof(why), "%s credentials: %s", what, pwhy);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return;
    }
    j->done(j, 0, &pc, NULL);
    aws_creds_parsed_clear(&pc);
}

static void container_done(struct http_req *req,
                           const struct http_response *resp, void *arg)
{
    struct job *j = arg;

    (void)req;
    j->http = NULL;
    metadata_creds_done(j, resp, "container");
}

/* botocore's rule: https to any host; plain http only to loopback and
 * the ECS / EKS link-local addresses. */
static int container_url_allowed(const char *url)
{
    static const char *const hosts[] = {
        "127.0.0.1",     "localhost",      "[::1]",
        "169.254.170.2", "169.254.170.23", "[fd00:ec2::23]",
    };
    const char *h, *end;
    size_t hl;

    if (strncasecmp(url, "https://", 8) == 0)
        return 1;
    if (strncasecmp(url, "http://", 7) != 0)
        return 0;
    h = url + 7;
    if (*h == '[')
        end = strchr(h, ']') ? strchr(h, ']') + 1 : h;
    else
        end = h + strcspn(h, ":/?#");
    hl = (size_t)(end - h);
    if (hl >= 4 && strncmp(h, "127.", 4) == 0)
        return 1;
    for (size_t i = 0; i < ARRAY_SIZE(hosts); i++)
        if (strlen(hosts[i]) == hl && strncasecmp(h, hosts[i], hl) == 0)
            return 1;
    return 0;
}

static int container_start(struct job *j, const char *rel, const char *full)
{
    char url[1024], auth[2100], tok[2048];
    const char *headers[3] = {"Accept: application/json", NULL, NULL};
    const char *tfile = penv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tval = penv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    struct http_request_opts o;

    if (rel)
        snprintf(url, sizeof(url), "http://169.254.170.2%s", rel);
    else if (container_url_allowed(full))
        snprintf(url, sizeof(url), "%s", full);
    else
        return GW_EDENIED;
    tok[0] = '\0';
    if (tfile) {
        FILE *f = fopen(tfile, "rb");
        size_t n = f ? fread(tok, 1, sizeof(tok) - 1, f) : 0;
        if (f)
            fclose(f);
        tok[n] = '\0';
        while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
            tok[--n] = '\0';
    } else if (tval) {
        snprintf(tok, sizeof(tok), "%s", tval);
    }
    if (strpbrk(tok, "\r\n"))
        return GW_EINVAL;
    if (tok[0]) {
        snprintf(auth, sizeof(auth), "Authorization: %s", tok);
        headers[1] = auth;
    }
    memset(&o, 0, sizeof(o));
    o.method = "GET";
    o.url = url;
    o.headers = headers;
    o.timeout_ms = ECS_TIMEOUT_MS;
    o.no_proxy = 1;
    j->http = http_request(j->cc->http, &o, container_done, j);
    memset(auth, 0, sizeof(auth));
    memset(tok, 0, sizeof(tok));
    return j->http ? 0 : GW_ENOMEM;
}

static void imds_done(struct http_req *req, const struct http_response *resp,
                      void *arg)
{
    struct job *j = arg;

    (void)req;
    j->http = NULL;
    switch (j->imds_stage) {
    case 0: /* token PUT */
        if (resp->status == 200 && resp->body_len > 0 &&
            resp->body_len < sizeof(j->imds_token)) {
            memcpy(j->imds_token, resp->body, resp->body_len);
            j->imds_token[resp->body_len] = '\0';
        } else if (resp->transport_error ||
                   !(resp->status == 403 || resp->status == 404 ||
                     resp->status == 405)) {
            /* No IMDS here (timeout, refused): the chain goes on. */
            log_debug("aws: IMDS not reachable: %s",
                      resp->transport_error ? resp->error_text : "status");
            j->step = STEP_CLI;
            job_next(j);
            return;
        }
        j->imds_stage = 1;
        imds_step(j);
        return;
    case 1: /* role name */
        if (resp->status != 200 || resp->body_len == 0 ||
            resp->body_len >= sizeof(j->role_name)) {
            j->step = STEP_CLI;
            job_next(j);
            return;
        }
        memcpy(j->role_name, resp->body, resp->body_len);
        j->role_name[resp->body_len] = '\0';
        j->role_name[strcspn(j->role_name, "\r\n")] = '\0';
        j->imds_stage = 2;
        imds_step(j);
        return;
    default:
        metadata_creds_done(j, resp, "instance metadata");
        return;
    }
}

static void imds_step(struct job *j)
{
    const char *base = penv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char url[1024], tokh[300];
    const char *headers[2] = {NULL, NULL};
    struct http_request_opts o;
    size_t bl;

    if (!base)
        base = "http://169.254.169.254";
    bl = strlen(base);
    if (bl && base[bl - 1] == '/')
        bl--;
    memset(&o, 0, sizeof(o));
    o.no_proxy = 1;
    o.timeout_ms = IMDS_TIMEOUT_MS;
    o.headers = headers;
    if (j->imds_stage == 0) {
        snprintf(url, sizeof(url), "%.*s/latest/api/token", (int)bl, base);
        o.method = "PUT";
        headers[0] = "X-aws-ec2-metadata-token-ttl-seconds: 21600";
    } else {
        if (j->imds_stage == 1)
            snprintf(url, sizeof(url),
                     "%.*s/latest/meta-data/iam/security-credentials/", (int)bl,
                     base);
        else
            snprintf(url, sizeof(url),
                     "%.*s/latest/meta-data/iam/security-credentials/%s",
                     (int)bl, base, j->role_name);
        o.method = "GET";
        if (j->imds_token[0]) {
            snprintf(tokh, sizeof(tokh), "X-aws-ec2-metadata-token: %s",
                     j->imds_token);
            headers[0] = tokh;
        }
    }
    o.url = url;
    j->http = http_request(j->cc->http, &o, imds_done, j);
    if (!j->http)
        j->done(j, GW_ENOMEM, NULL, "out of memory");
}

/* ---- STS / SSO steps
 * ------------------------------------------------------------ */

static void sts_creds_done(void *arg, int status,
                           const struct aws_creds_parsed *pc,
                           const struct aws_error *err)
{
    struct job *j = arg;
    char why[1400], eb[1300];
    struct aws_creds_parsed copy;

    j->call = NULL;
    if (status < 0) {
        snprintf(why, sizeof(why), "profile %s: %s", j->profile,
                 err ? aws_error_str(err, eb, sizeof(eb))
                     : gw_strerror(status));
        j->done(j, GW_ENO_CREDS, NULL, why);
        return;
    }
    if (parsed_static(pc->access_key_id, pc->secret_access_key,
                      pc->session_token, &copy) < 0) {
        j->done(j, GW_ENOMEM, NULL, "out of memory");
        return;
    }
    copy.expiration = pc->expiration;
    j->done(j, 0, &copy, NULL);
    aws_creds_parsed_clear(&copy);
}

static void role_region(struct job *j, char *out, size_t len)
{
    if (aws_resolve_region(NULL, NULL, j->cc->p, j->profile, out, len) < 0)
        snprintf(out, len, "us-east-1");
}

/* The source credentials of a role are ready: call AssumeRole. */
static void role_source_done(struct job *sub, int status,
                             struct aws_creds_parsed *pc, const char *why)
{
    struct job *j = sub->owner;
    const char *dur = pget(j, "duration_seconds");
    const char *sname = pget(j, "role_session_name");
    char region[64], defname[64];
    struct aws_sts_role role;
    struct aws_sigv4_creds src;

    j->sub = NULL;
    if (status < 0) {
        char w[1200];
        snprintf(w, sizeof(w), "%s", why ? why : gw_strerror(status));
        job_free(sub);
        j->done(j, status, NULL, w);
        return;
    }
    src.access_key_id = pc->access_key_id;
    src.secret_access_key = pc->secret_access_key;
    src.session_token = pc->session_token;
    if (!sname) {
        snprintf(defname, sizeof(defname), "botocore-session-%lld",
                 (long long)time(NULL));
        sname = defname;
    }
    memset(&role, 0, sizeof(role));
    role.role_arn = pget(j, "role_arn");
    role.session_name = sname;
    role.external_id = pget(j, "external_id");
    role.duration_seconds = dur ? atoi(dur) : 0;
    role_region(j, region, sizeof(region));
    j->sts.done = sts_creds_done;
    j->sts.arg = j;
    j->call = aws_sts_assume_role(j->cc->x, j->cc->p, j->profile, region, &src,
                                  &role, &j->sts);
    job_free(sub);
    if (!j->call)
        j->done(j, GW_ENOMEM, NULL, "cannot start AssumeRole");
}

static int assume_role_start(struct job *j)
{
    const char *src = pget(j, "source_profile");
    const char *csrc = pget(j, "credential_source");
    char why[512];
    struct job *sub;

    if (pget(j, "mfa_serial")) {
        snprintf(why, sizeof(why),
                 "profile %s: mfa_serial needs an interactive MFA code, "
                 "which ssmgate cannot prompt for; use credential_process "
                 "(e.g. `aws configure export-credentials --profile %s "
                 "--format process`) in a profile of its own",
                 j->profile, j->profile);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return 1;
    }
    if (!!src == !!csrc) {
        snprintf(why, sizeof(why),
                 "profile %s: role_arn needs exactly one of source_profile "
                 "and credential_source",
                 j->profile);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    if (j->depth + 1 >= CHAIN_DEPTH_MAX) {
        snprintf(why, sizeof(why), "profile %s: role chain too deep",
                 j->profile);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    sub = job_new(j->cc, src ? src : j->profile, 1, role_source_done, j);
    if (!sub) {
        j->done(j, GW_ENOMEM, NULL, "out of memory");
        return 1;
    }
    sub->depth = j->depth + 1;
    memcpy(sub->chain, j->chain, sizeof(sub->chain));
    snprintf(sub->chain[j->depth], sizeof(sub->chain[0]), "%s", j->profile);
    if (src) {
        /* A loop: the source was already on the way here, and it is not
         * the self-reference with static keys (rule 2). */
        for (int i = 0; i <= j->depth; i++) {
            if (strcmp(sub->chain[i], src) == 0 &&
                !aws_profile_get(j->cc->p, src, "aws_access_key_id")) {
                snprintf(why, sizeof(why),
                         "profile %s: source_profile loop through %s",
                         j->profile, src);
                job_free(sub);
                j->done(j, GW_ECONFIG, NULL, why);
                return 1;
            }
        }
        sub->source_mode = 1;
        sub->step = STEP_ENV;
    } else if (strcmp(csrc, "Environment") == 0) {
        sub->step = STEP_ENV;
        sub->forced = 1;
        sub->explicit_profile = 0;
    } else if (strcmp(csrc, "Ec2InstanceMetadata") == 0) {
        sub->step = STEP_IMDS;
        sub->forced = 1;
    } else if (strcmp(csrc, "EcsContainer") == 0) {
        sub->step = STEP_CONTAINER;
        sub->forced = 1;
    } else {
        snprintf(why, sizeof(why),
                 "profile %s: unknown credential_source %.64s", j->profile,
                 csrc);
        job_free(sub);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    j->sub = sub;
    job_next(sub);
    return 1;
}

static int read_small_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return GW_EIO;
    n = fread(buf, 1, cap, f);
    fclose(f);
    if (n >= cap)
        return GW_ETOO_BIG;
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return n ? 0 : GW_EINVAL;
}

static int web_identity_start(struct job *j)
{
    const char *file = NULL, *arn = NULL, *sname = NULL;
    char token[20001], region[64], defname[64], why[600];
    struct aws_sts_role role;
    int rc;

    if (!j->explicit_profile && penv("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        file = penv("AWS_WEB_IDENTITY_TOKEN_FILE");
        arn = penv("AWS_ROLE_ARN");
        sname = penv("AWS_ROLE_SESSION_NAME");
    } else if (pget(j, "web_identity_token_file")) {
        file = pget(j, "web_identity_token_file");
        arn = pget(j, "role_arn");
        sname = pget(j, "role_session_name");
    }
    if (!file)
        return 0;
    if (!arn) {
        j->done(j, GW_ECONFIG, NULL,
                "web identity token file set but no role ARN");
        return 1;
    }
    rc = read_small_file(file, token, sizeof(token));
    if (rc < 0) {
        snprintf(why, sizeof(why), "cannot read web identity token %s: %s",
                 file, gw_strerror(rc));
        j->done(j, GW_ENO_CREDS, NULL, why);
        return 1;
    }
    if (!sname) {
        snprintf(defname, sizeof(defname), "botocore-session-%lld",
                 (long long)time(NULL));
        sname = defname;
    }
    memset(&role, 0, sizeof(role));
    role.role_arn = arn;
    role.session_name = sname;
    role_region(j, region, sizeof(region));
    j->sts.done = sts_creds_done;
    j->sts.arg = j;
    j->call = aws_sts_assume_role_web_identity(j->cc->x, j->cc->p, j->profile,
                                               region, &role, token, &j->sts);
    memset(token, 0, sizeof(token));
    if (!j->call)
        j->done(j, GW_ENOMEM, NULL, "cannot start AssumeRoleWithWebIdentity");
    return 1;
}

/* GetRoleCredentials with the (maybe refreshed) cached token. */
static void sso_get_role(struct job *j)
{
    char why[400];

    if (j->sso_tok.expires_at <= time(NULL)) {
        snprintf(why, sizeof(why),
                 "SSO token for profile %s has expired; run `aws sso login "
                 "--profile %s`",
                 j->profile, j->profile);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return;
    }
    j->sts.done = sts_creds_done;
    j->sts.arg = j;
    j->call = aws_sso_get_role_credentials(
        j->cc->x, j->cc->p, j->profile, j->sso_region, j->sso_tok.access_token,
        j->sso_acct, j->sso_role, &j->sts);
    if (!j->call)
        j->done(j, GW_ENOMEM, NULL, "cannot start GetRoleCredentials");
}

static void sso_refresh_done(void *arg, int status, const struct aws_error *err)
{
    struct job *j = arg;
    char eb[1300];

    j->call = NULL;
    if (status < 0)
        log_warn("aws: profile %s: SSO token refresh failed: %s", j->profile,
                 err ? aws_error_str(err, eb, sizeof(eb))
                     : gw_strerror(status));
    else
        log_info("aws: profile %s: SSO token refreshed", j->profile);
    sso_get_role(j);
}

static int sso_start(struct job *j)
{
    const char *acct = pget(j, "sso_account_id");
    const char *role = pget(j, "sso_role_name");
    const char *sess = pget(j, "sso_session");
    const char *url = pget(j, "sso_start_url");
    const char *region = pget(j, "sso_region");
    char why[700];
    int rc;

    if (!acct && !role && !sess && !url)
        return 0;
    if (sess) {
        const char *su = aws_sso_session_get(j->cc->p, sess, "sso_start_url");
        const char *sr = aws_sso_session_get(j->cc->p, sess, "sso_region");
        if (!su || !sr) {
            snprintf(why, sizeof(why),
                     "profile %s: [sso-session %s] needs sso_start_url and "
                     "sso_region",
                     j->profile, sess);
            j->done(j, GW_ECONFIG, NULL, why);
            return 1;
        }
        region = sr;
    }
    if (!acct || !role || !region || (!sess && !url)) {
        snprintf(why, sizeof(why),
                 "profile %s: incomplete SSO settings (sso_account_id, "
                 "sso_role_name, sso_region and sso_session or "
                 "sso_start_url)",
                 j->profile);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    rc = aws_sso_load_token(NULL, sess ? sess : url, &j->sso_tok, why,
                            sizeof(why));
    if (rc < 0) {
        char w2[900];
        snprintf(w2, sizeof(w2), "%s; run `aws sso login --profile %s`", why,
                 j->profile);
        j->done(j, GW_ENO_CREDS, NULL, w2);
        return 1;
    }
    j->sso_region = region;
    j->sso_acct = acct;
    j->sso_role = role;
    /* Refresh through SSO OIDC when under 15 minutes remain and the file
     * allows it (botocore's rule); else use the token as it is. */
    if (j->sso_tok.expires_at - time(NULL) < ADVISORY_S &&
        aws_sso_token_refreshable(&j->sso_tok)) {
        j->sso_ref.done = sso_refresh_done;
        j->sso_ref.arg = j;
        j->sso_ref.token = &j->sso_tok;
        j->call = aws_sso_refresh_token(j->cc->x, j->cc->p, j->profile, region,
                                        &j->sso_ref);
        if (j->call)
            return 1;
    }
    sso_get_role(j);
    return 1;
}

static int process_start(struct job *j, const char *cmdline)
{
    char **argv = NULL;
    char why[600];
    int rc = aws_shell_split(cmdline, &argv);

    if (rc < 0) {
        snprintf(why, sizeof(why),
                 "profile %s: credential_process cannot be split into "
                 "words (unbalanced quotes?)",
                 j->profile);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    rc = proc_start(j, argv);
    if (rc < 0) {
        snprintf(why, sizeof(why), "profile %s: cannot run %s: %s", j->profile,
                 argv[0], gw_strerror(rc));
        aws_shell_free(argv);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return 1;
    }
    aws_shell_free(argv);
    return 1;
}

static int have_aws_cli(char *path, size_t len)
{
    const char *p = getenv("PATH");

    while (p && *p) {
        size_t n = strcspn(p, ":");
        if (n && (size_t)snprintf(path, len, "%.*s/aws", (int)n, p) < len &&
            access(path, X_OK) == 0)
            return 1;
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

/* ---- the chain
 * ------------------------------------------------------------------- */

static void job_static(struct job *j, const char *ak, const char *sk,
                       const char *tk, time_t exp)
{
    struct aws_creds_parsed pc;

    if (parsed_static(ak, sk, tk, &pc) < 0) {
        j->done(j, GW_ENOMEM, NULL, "out of memory");
        return;
    }
    pc.expiration = exp;
    j->done(j, 0, &pc, NULL);
    aws_creds_parsed_clear(&pc);
}

/* Tries providers from j->step on until one takes over (it then calls
 * j->done exactly once, maybe before this returns). */
static void job_next(struct job *j)
{
    char why[600], path[1024];

    static const char *const names[] = {
        "environment", "assume role",       "web identity",
        "SSO",         "shared files",      "credential_process",
        "container",   "instance metadata", "aws configure export-credentials",
    };

    for (; j->step < STEP_END; j->step++) {
        enum step s = j->step;
        j->source = names[s];
        if (j->forced && s != STEP_ENV && s != STEP_IMDS && s != STEP_CONTAINER)
            break;
        switch (s) {
        case STEP_ENV: {
            const char *ak = penv("AWS_ACCESS_KEY_ID");
            const char *sk = penv("AWS_SECRET_ACCESS_KEY");
            const char *tk = penv("AWS_SESSION_TOKEN");
            const char *ex = penv("AWS_CREDENTIAL_EXPIRATION");
            time_t exp = 0;
            if (j->explicit_profile || !ak)
                break;
            if (!sk) {
                j->done(j, GW_ENO_CREDS, NULL,
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY "
                        "is not");
                return;
            }
            if (!tk)
                tk = penv("AWS_SECURITY_TOKEN");
            if (ex && aws_parse_iso8601(ex, &exp) < 0)
                exp = 0;
            j->step = STEP_END;
            job_static(j, ak, sk, tk, exp);
            return;
        }
        case STEP_ASSUME_ROLE:
            /* A role's source with static keys uses them (rule 2). */
            if (j->source_mode && pget(j, "aws_access_key_id"))
                break;
            if (!pget(j, "role_arn") || pget(j, "web_identity_token_file"))
                break;
            j->step++;
            assume_role_start(j);
            return;
        case STEP_WEB_IDENTITY:
            j->step++;
            if (web_identity_start(j))
                return;
            j->step--;
            break;
        case STEP_SSO:
            if (j->source_mode && pget(j, "aws_access_key_id"))
                break;
            j->step++;
            if (sso_start(j))
                return;
            j->step--;
            break;
        case STEP_STATIC: {
            const char *ak = pget(j, "aws_access_key_id");
            const char *sk = pget(j, "aws_secret_access_key");
            const char *tk = pget(j, "aws_session_token");
            if (!ak)
                break;
            if (!sk) {
                snprintf(why, sizeof(why),
                         "profile %s: aws_access_key_id without "
                         "aws_secret_access_key",
                         j->profile);
                j->done(j, GW_ENO_CREDS, NULL, why);
                return;
            }
            if (!tk)
                tk = pget(j, "aws_security_token");
            j->step = STEP_END;
            job_static(j, ak, sk, tk, 0);
            return;
        }
        case STEP_PROCESS: {
            const char *cmd = pget(j, "credential_process");
            if (!cmd)
                break;
            j->step++;
            process_start(j, cmd);
            return;
        }
        case STEP_CONTAINER: {
            const char *rel = penv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
            const char *full = penv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
            int rc;
            if (!rel && !full)
                break;
            j->step++;
            rc = container_start(j, rel, full);
            if (rc < 0) {
                snprintf(why, sizeof(why), "container credentials: %s%s",
                         gw_strerror(rc),
                         rc == GW_EDENIED
                             ? " (AWS_CONTAINER_CREDENTIALS_FULL_URI must be "
                               "https, or http to loopback / 169.254.170.2)"
                             : "");
                j->done(j, GW_ENO_CREDS, NULL, why);
            }
            return;
        }
        case STEP_IMDS:
            if (aws_env_is_true(aws_env_get(NULL, "AWS_EC2_METADATA_DISABLED")))
                break;
            j->step++;
            j->imds_stage = 0;
            j->imds_token[0] = '\0';
            imds_step(j);
            return;
        case STEP_CLI: {
            /* Last resort: the AWS CLI resolves what we cannot (login
             * sessions, MFA caches). Never from inside a CLI-run process
             * chain (the CLI guards recursion itself too). */
            char *argv[] = {path,        "configure", "export-credentials",
                            "--profile", j->profile,  "--format",
                            "process",   NULL};
            if (j->source_mode || j->depth > 0 ||
                !aws_profile_exists(j->cc->p, j->profile) ||
                !have_aws_cli(path, sizeof(path)))
                break;
            j->step++;
            j->cli_fallback = 1;
            if (proc_start(j, argv) == 0)
                return;
            j->cli_fallback = 0;
            break;
        }
        default:
            break;
        }
    }
    snprintf(why, sizeof(why),
             "no credentials found for profile %s (environment, shared "
             "files, SSO, credential_process, container and instance "
             "metadata were tried)",
             j->profile);
    j->done(j, GW_ENO_CREDS, NULL, why);
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->sub)
        job_free(j->sub);
    if (j->call)
        aws_call_cancel(j->call);
    if (j->http)
        http_cancel(j->http);
    if (j->proc)
        proc_abandon(j->proc);
    memset(j->imds_token, 0, sizeof(j->imds_token));
    aws_sso_token_clear(&j->sso_tok);
    free(j);
}
