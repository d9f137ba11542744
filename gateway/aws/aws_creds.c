/*
 * aws_creds.c - the credential chain and the per-profile cache.
 *
 * Cache: one entry per (profile, explicit) pair. aws_creds_get() serves
 * fresh keys at once; inside the advisory window (< 15 min left) it also
 * starts a background refresh; inside the mandatory window (< 10 min) or
 * with nothing cached the caller becomes a waiter of the entry's single
 * refresh job. Keys STS or SSO just issued for less than twice the
 * advisory window (a 15-minute role session, a test's seconds) get
 * windows of a half and a quarter of their lifetime: the fixed ones would
 * call STS again at nearly every call (botocore does). Keys a process,
 * a container or IMDS hands out may be part-used: botocore's windows.
 *
 * A job walks the providers in AWS CLI v2 order from job->step, each
 * either answering at once (environment, static keys) or asynchronously
 * (STS, SSO, a process, container / IMDS over HTTP) and then calling
 * job_done(). "Not configured here" moves to the next step; a configured
 * provider that fails ends the chain with its error, except IMDS and the
 * CLI fallback, which are best-effort.
 */
#include "aws_creds.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "aws_creds_job.h"
#include "common.h"
#include "list.h"
#include "log.h"
#include "secret.h"

#define PROC_OUT_MAX    (64 * 1024)
#define PROC_TIMEOUT_MS 60000

struct entry {
    struct list node; /* in the cache's entries */
    char profile[128];
    int explicit_profile;
    struct aws_creds creds;
    time_t lifetime; /* STS / SSO just issued them for this long; 0 = not */
    int have;
    struct job *refresh;
    struct list waiters;     /* of struct aws_creds_wait */
    char why[GW_REASON_MAX]; /* last failure */
};

struct aws_creds_wait {
    struct list node; /* in its entry's waiters while waiting */
    struct entry *e;
    aws_creds_ready_cb *cb;
    void *arg;
    int delivering; /* detached; entry_job_done frees it */
    int cancelled;
};

const char *aws_creds_penv(const char *name)
{
    const char *v = aws_env_get(NULL, name);
    return v && v[0] ? v : NULL;
}

const char *aws_creds_pget(struct job *j, const char *key)
{
    const char *v = aws_profile_get(j->cc->p, j->profile, key);
    return v && v[0] ? v : NULL;
}

/* Seconds left on e's keys, and the advisory and mandatory windows. */
static time_t entry_left(const struct entry *e, time_t *advisory,
                         time_t *mandatory)
{
    *advisory = ADVISORY_S;
    *mandatory = MANDATORY_S;
    if (!e->creds.expiration)
        return INT32_MAX;
    if (e->lifetime > 0 && e->lifetime / 2 < ADVISORY_S) {
        *advisory = e->lifetime / 2;
        *mandatory = GW_MIN(e->lifetime / 4, (time_t)MANDATORY_S);
    }
    return e->creds.expiration - time(NULL);
}

static void creds_clear(struct aws_creds *cr)
{
    free(cr->access_key_id);
    secret_free_str(cr->secret_access_key);
    secret_free_str(cr->session_token);
    memset(cr, 0, sizeof(*cr));
}

int aws_creds_parsed_dup(const char *ak, const char *sk, const char *tk,
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
    list_init(&cc->entries);
    return cc;
}

void aws_creds_cache_free(struct aws_creds_cache *cc)
{
    if (!cc)
        return;
    while (!list_empty(&cc->entries)) {
        struct entry *e = CONTAINER_OF(cc->entries.next, struct entry, node);
        list_remove(&e->node);
        while (!list_empty(&e->waiters))
            aws_creds_wait_cancel(
                CONTAINER_OF(e->waiters.next, struct aws_creds_wait, node));
        if (e->refresh)
            aws_creds_job_free(e->refresh);
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
    list_remove(&w->node);
    free(w);
}

struct job *aws_creds_job_new(struct aws_creds_cache *cc, const char *profile,
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
    struct list taken;

    e->refresh = NULL;
    if (status == 0) {
        creds_clear(&e->creds);
        e->creds.access_key_id = pc->access_key_id;
        e->creds.secret_access_key = pc->secret_access_key;
        e->creds.session_token = pc->session_token;
        e->creds.expiration = pc->expiration;
        e->lifetime = j->issued && e->creds.expiration
                          ? e->creds.expiration - time(NULL)
                          : 0;
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
        /* Advisory failure: keys still outside the mandatory window stay. */
        time_t adv, mand;
        if (e->have && entry_left(e, &adv, &mand) > mand)
            status = 0;
    }
    /* Take the whole list first: a callback may add a waiter. */
    list_init(&taken);
    while (!list_empty(&e->waiters)) {
        w = CONTAINER_OF(e->waiters.next, struct aws_creds_wait, node);
        list_remove(&w->node);
        list_insert_tail(&taken, &w->node);
        w->delivering = 1;
    }
    /* A callback may free the whole cache (aws_client_free); it cancels
     * the remaining waiters first, so e is not read after that. */
    while (!list_empty(&taken)) {
        w = CONTAINER_OF(taken.next, struct aws_creds_wait, node);
        list_remove(&w->node);
        if (w->cancelled)
            ;
        else if (status == 0)
            w->cb(w->arg, 0, &e->creds, NULL);
        else
            w->cb(w->arg, status, NULL, why);
        free(w);
    }
    aws_creds_job_free(j);
}

static struct entry *entry_find(struct aws_creds_cache *cc, const char *profile,
                                int explicit_profile)
{
    struct list *n, *tmp;

    LIST_FOREACH_SAFE (n, tmp, &cc->entries) {
        struct entry *e = CONTAINER_OF(n, struct entry, node);
        if (e->explicit_profile == explicit_profile &&
            strcmp(e->profile, profile) == 0)
            return e;
    }
    return NULL;
}

int aws_creds_get(struct aws_creds_cache *cc, const char *profile,
                  int explicit_profile, int force, const struct aws_creds **now,
                  struct aws_creds_wait **wait, aws_creds_ready_cb *cb,
                  void *arg, char *why, size_t why_len)
{
    struct entry *e;
    struct aws_creds_wait *w;
    time_t left = 0, adv = ADVISORY_S, mand = MANDATORY_S;

    *now = NULL;
    *wait = NULL;
    e = entry_find(cc, profile, explicit_profile);
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return GW_ENOMEM;
        snprintf(e->profile, sizeof(e->profile), "%s", profile);
        e->explicit_profile = explicit_profile;
        list_init(&e->waiters);
        list_insert_head(&cc->entries, &e->node);
    }
    if (force && e->have && !e->refresh)
        e->have = 0;
    if (e->have) {
        left = entry_left(e, &adv, &mand);
        if (left > adv) {
            *now = &e->creds;
            return 0;
        }
    }
    if (!e->refresh) {
        e->refresh =
            aws_creds_job_new(cc, profile, explicit_profile, entry_job_done, e);
        if (!e->refresh)
            return GW_ENOMEM;
        aws_creds_job_next(e->refresh);
        /* aws_creds_job_next may have finished synchronously (static keys). */
        if (!e->refresh && e->have) {
            left = entry_left(e, &adv, &mand);
            if (left > mand) {
                *now = &e->creds;
                return 0;
            }
        }
    }
    if (e->have && left > mand) {
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
    list_insert_head(&e->waiters, &w->node);
    *wait = w;
    return 0;
}

int aws_creds_job_fail(struct job *j, int status, const char *fmt, ...)
{
    char why[GW_REASON_MAX];
    va_list ap;
    int n = snprintf(why, sizeof(why), "profile %s: ", j->profile);

    va_start(ap, fmt);
    vsnprintf(why + n, sizeof(why) - (size_t)n, fmt, ap);
    va_end(ap);
    j->done(j, status, NULL, why);
    return 1;
}

/* ---- processes (credential_process, aws CLI) -------------------------------
 */

static const char *proc_what(const struct job *j)
{
    return j->cli_fallback ? "aws configure export-credentials"
                           : "credential_process";
}

static void proc_done(void *arg, const struct aws_proc_result *r)
{
    struct job *j = arg;
    struct aws_creds_parsed pc;
    char why[GW_REASON_MAX], errtxt[256]; /* stderr: its first 200 bytes */
    int rc;

    j->proc = NULL;
    snprintf(errtxt, sizeof(errtxt), "%.*s", (int)GW_MIN(r->err_len, 200),
             r->err);
    for (char *s = errtxt; *s; s++)
        if ((unsigned char)*s < 0x20)
            *s = ' ';
    if (r->timed_out) {
        snprintf(why, sizeof(why), "%s timed out after 60 s", proc_what(j));
        rc = GW_ETIMEOUT;
    } else if (r->too_big) {
        snprintf(why, sizeof(why), "credential_process output too big");
        rc = GW_ETOO_BIG;
    } else if (r->exit_status != 0) {
        snprintf(why, sizeof(why), "%s exited with %lld: %s", proc_what(j),
                 (long long)r->exit_status, errtxt);
        rc = GW_EIO;
    } else {
        char pwhy[200] = "";
        rc = aws_parse_process_creds(r->out, r->out_len, &pc, pwhy,
                                     sizeof(pwhy));
        if (rc != 0)
            snprintf(why, sizeof(why), "credential_process output: %s", pwhy);
    }
    if (rc == 0) {
        j->done(j, 0, &pc, NULL);
        aws_creds_parsed_clear(&pc);
        return;
    }
    if (j->cli_fallback) {
        j->step = AWS_CHAIN_END;
        log_debug("aws: %s", why);
        aws_creds_job_next(j);
        return;
    }
    j->done(j, rc, NULL, why);
}

static int proc_start(struct job *j, char **argv)
{
    return aws_proc_run(aws_call_ctx_loop(j->cc->x), argv, PROC_OUT_MAX,
                        PROC_TIMEOUT_MS, proc_done, j, &j->proc);
}

/* ---- HTTP metadata (container, IMDS) ---------------------------------------
 */

static void metadata_done(void *arg, int status, struct aws_creds_parsed *pc,
                          const char *why)
{
    struct job *j = arg;

    j->imds = NULL;
    if (status == GW_ENOT_FOUND) {
        /* No instance metadata here: the chain goes on. */
        j->step = AWS_CHAIN_CLI;
        aws_creds_job_next(j);
        return;
    }
    j->done(j, status, pc, why);
}

static int process_start(struct job *j, const char *cmdline)
{
    char **argv = NULL;
    char why[GW_REASON_MAX];
    int rc = aws_shell_split(cmdline, &argv);

    if (rc < 0)
        return aws_creds_job_fail(j, GW_ECONFIG,
                                  "credential_process cannot be split into "
                                  "words (unbalanced quotes?)");
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

    if (aws_creds_parsed_dup(ak, sk, tk, &pc) < 0) {
        j->done(j, GW_ENOMEM, NULL, "out of memory");
        return;
    }
    pc.expiration = exp;
    j->done(j, 0, &pc, NULL);
    aws_creds_parsed_clear(&pc);
}

/* Runs the provider at j->step. Returns 1 when it took over (it then
 * calls j->done exactly once, maybe before this returns), 0 to go on. */
static int job_try(struct job *j)
{
    char why[GW_REASON_MAX], path[1024];
    const char *ak, *sk, *tk;
    int rc;

    switch (j->step) {
    case AWS_CHAIN_ENV: {
        const char *ex = aws_creds_penv("AWS_CREDENTIAL_EXPIRATION");
        time_t exp = 0;
        ak = aws_creds_penv("AWS_ACCESS_KEY_ID");
        sk = aws_creds_penv("AWS_SECRET_ACCESS_KEY");
        tk = aws_creds_penv("AWS_SESSION_TOKEN");
        if (!sk) {
            j->done(j, GW_ENO_CREDS, NULL,
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY "
                    "is not");
            return 1;
        }
        if (!tk)
            tk = aws_creds_penv("AWS_SECURITY_TOKEN");
        if (ex && aws_parse_iso8601(ex, &exp) < 0)
            exp = 0;
        j->step = AWS_CHAIN_END;
        job_static(j, ak, sk, tk, exp);
        return 1;
    }
    case AWS_CHAIN_ASSUME_ROLE:
        j->step++;
        aws_creds_role_start(j);
        return 1;
    case AWS_CHAIN_WEB_IDENTITY:
    case AWS_CHAIN_SSO:
        j->step++;
        if (j->step - 1 == AWS_CHAIN_SSO ? aws_creds_sso_start(j)
                                         : aws_creds_web_identity_start(j))
            return 1;
        j->step--;
        return 0;
    case AWS_CHAIN_STATIC:
        ak = aws_creds_pget(j, "aws_access_key_id");
        sk = aws_creds_pget(j, "aws_secret_access_key");
        tk = aws_creds_pget(j, "aws_session_token");
        if (!sk)
            return aws_creds_job_fail(j, GW_ENO_CREDS,
                                      "aws_access_key_id without "
                                      "aws_secret_access_key");
        if (!tk)
            tk = aws_creds_pget(j, "aws_security_token");
        j->step = AWS_CHAIN_END;
        job_static(j, ak, sk, tk, 0);
        return 1;
    case AWS_CHAIN_PROCESS:
        j->step++;
        process_start(j, aws_creds_pget(j, "credential_process"));
        return 1;
    case AWS_CHAIN_CONTAINER:
        j->step++;
        rc = aws_imds_container_start(
            j->cc->http,
            aws_creds_penv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            aws_creds_penv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), metadata_done,
            j, &j->imds);
        if (rc < 0) {
            snprintf(why, sizeof(why), "container credentials: %s%s",
                     gw_strerror(rc),
                     rc == GW_EDENIED
                         ? " (AWS_CONTAINER_CREDENTIALS_FULL_URI must be "
                           "https, or http to loopback / 169.254.170.2)"
                         : "");
            j->done(j, GW_ENO_CREDS, NULL, why);
        }
        return 1;
    case AWS_CHAIN_IMDS:
        j->step++;
        j->imds = aws_imds_start(j->cc->http, metadata_done, j);
        if (!j->imds)
            j->done(j, GW_ENOMEM, NULL, "out of memory");
        return 1;
    case AWS_CHAIN_CLI: {
        /* Last resort: the AWS CLI resolves what we cannot (login
         * sessions, MFA caches). The CLI guards recursion itself too. */
        char *argv[] = {path,        "configure", "export-credentials",
                        "--profile", j->profile,  "--format",
                        "process",   NULL};
        if (!have_aws_cli(path, sizeof(path)))
            return 0;
        j->step++;
        j->cli_fallback = 1;
        if (proc_start(j, argv) == 0)
            return 1;
        j->cli_fallback = 0;
        return 0;
    }
    default:
        return 0;
    }
}

/* Tries providers from j->step on until one takes over. */
void aws_creds_job_next(struct job *j)
{
    struct aws_chain_view v = {
        .p = j->cc->p,
        .profile = j->profile,
        .explicit_profile = j->explicit_profile,
        .source_mode = j->source_mode,
        .forced = j->forced,
        .depth = j->depth,
    };
    char why[GW_REASON_MAX];

    for (;; j->step++) {
        j->step = aws_chain_next(&v, j->step);
        if (j->step == AWS_CHAIN_END)
            break;
        j->source = aws_chain_step_name(j->step);
        if (job_try(j))
            return;
    }
    snprintf(why, sizeof(why),
             "no credentials found for profile %s (environment, shared "
             "files, SSO, credential_process, container and instance "
             "metadata were tried)",
             j->profile);
    j->done(j, GW_ENO_CREDS, NULL, why);
}

void aws_creds_job_free(struct job *j)
{
    if (!j)
        return;
    if (j->sub)
        aws_creds_job_free(j->sub);
    if (j->call)
        aws_call_cancel(j->call);
    aws_imds_cancel(j->imds);
    aws_proc_abandon(j->proc);
    aws_sso_token_clear(&j->sso_tok);
    free(j);
}
