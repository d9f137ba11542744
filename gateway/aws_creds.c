/*
 * aws_creds.c - per-profile cache entries, each either holding
 * credentials or refreshing them. A refresh walks the chain; the only
 * asynchronous sources are processes (credential_process and the AWS CLI
 * fallback), run with uv_spawn so the loop never blocks.
 */
#include "aws_creds.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws_profile.h"
#include "common.h"
#include "log.h"

#define PROC_OUT_MAX    (64 * 1024)
#define PROC_TIMEOUT_MS 60000
/* Credentials closer to expiry than this are refreshed before use (the
 * SDKs' mandatory window), so a call never goes out with keys that die
 * in flight. */
#define MANDATORY_AHEAD_S (10 * 60)

struct aws_creds_wait {
    struct aws_creds_wait *next;
    struct creds_entry *entry;
    aws_creds_done_cb *done;
    void *arg;
};

/* One running credential process. */
struct creds_proc {
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int handles;
    char *outbuf, *errbuf;
    size_t outlen, errlen;
    int exited;
    int64_t status;
    int streams_open;
    int timed_out;
    struct creds_entry *entry; /* NULL once the entry gave up on it */
    int fallback;              /* this is `aws configure export-credentials` */
};

struct creds_entry {
    struct creds_entry *next;
    struct aws_creds_cache *cache;
    char profile[128];
    int explicit_profile;
    char *akid, *secret, *token;
    time_t expiration; /* 0 = never */
    int have;
    struct creds_proc *running;
    struct aws_creds_wait *waiters;
    uv_timer_t notify; /* delivers results from the loop, never inline */
    int notify_open;
    int status;
    char why[512];
};

struct aws_creds_cache {
    uv_loop_t *loop;
    struct creds_entry *entries;
    int closing;
    int open; /* handles still closing */
};

static void secret_free(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void entry_clear(struct creds_entry *e)
{
    free(e->akid);
    secret_free(e->secret);
    secret_free(e->token);
    e->akid = e->secret = e->token = NULL;
    e->have = 0;
}

/* ---- parsing helpers ---- */

time_t aws_parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int n = 0;
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    const char *rest = s + n;
    if (*rest == '.') /* fractions of a second */
        for (rest++; isdigit((unsigned char)*rest); rest++)
            ;
    long offset = 0;
    if (*rest == 'Z' || strcmp(rest, "UTC") == 0 || *rest == '\0') {
        /* UTC */
    } else if (*rest == '+' || *rest == '-') {
        int hh = 0, mm = 0;
        if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) < 1)
            return -1;
        offset = (hh * 3600L + mm * 60L) * (*rest == '+' ? 1 : -1);
    } else {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t == (time_t)-1 ? -1 : t - offset;
}

int aws_creds_parse_process(const char *json, char **akid, char **secret,
                            char **token, time_t *expiration, const char **why)
{
    json_error_t jerr;
    json_t *doc = json_loads(json, 0, &jerr);
    int rc = GW_EPROTO;
    *akid = *secret = *token = NULL;
    *expiration = 0;
    if (!json_is_object(doc)) {
        *why = "output is not a JSON object";
        goto out;
    }
    json_t *version = json_object_get(doc, "Version");
    if (!json_is_integer(version) || json_integer_value(version) != 1) {
        *why = "Version must be the number 1";
        goto out;
    }
    const char *a = json_string_value(json_object_get(doc, "AccessKeyId"));
    const char *s = json_string_value(json_object_get(doc, "SecretAccessKey"));
    const char *t = json_string_value(json_object_get(doc, "SessionToken"));
    json_t *exp = json_object_get(doc, "Expiration");
    if (a == NULL || s == NULL || a[0] == '\0' || s[0] == '\0') {
        *why = "AccessKeyId and SecretAccessKey are required";
        goto out;
    }
    if (exp != NULL && !json_is_null(exp)) {
        *expiration = aws_parse_time(json_string_value(exp));
        if (*expiration <= 0) {
            *why = "Expiration is not an ISO 8601 time";
            goto out;
        }
    }
    *akid = strdup(a);
    *secret = strdup(s);
    *token = t != NULL && t[0] != '\0' ? strdup(t) : NULL;
    if (*akid == NULL || *secret == NULL) {
        free(*akid);
        secret_free(*secret);
        secret_free(*token);
        *akid = *secret = *token = NULL;
        rc = GW_ENOMEM;
        *why = "out of memory";
        goto out;
    }
    rc = 0; /* success */
out:
    json_decref(doc);
    return rc;
}

int aws_split_command(const char *cmd, char ***argv_out)
{
    size_t cap = 8, n = 0, len = strlen(cmd);
    char **argv = calloc(cap, sizeof(*argv));
    char *word = malloc(len + 1);
    if (argv == NULL || word == NULL)
        goto nomem;
    const char *p = cmd;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (*p == '\0')
            break;
        size_t w = 0;
        char quote = 0;
        for (; *p != '\0'; p++) {
            if (quote == '\'') {
                if (*p == '\'')
                    quote = 0;
                else
                    word[w++] = *p;
            } else if (quote == '"') {
                if (*p == '"')
                    quote = 0;
                else if (*p == '\\' && (p[1] == '"' || p[1] == '\\' ||
                                        p[1] == '$' || p[1] == '`'))
                    word[w++] = *++p;
                else
                    word[w++] = *p;
            } else if (*p == '\'' || *p == '"') {
                quote = *p;
            } else if (*p == '\\' && p[1] != '\0') {
                word[w++] = *++p;
            } else if (*p == ' ' || *p == '\t' || *p == '\n') {
                break;
            } else {
                word[w++] = *p;
            }
        }
        if (quote != 0) {
            free(word);
            aws_argv_free(argv);
            return GW_EINVAL;
        }
        if (n + 2 > cap) {
            char **g = realloc(argv, (cap *= 2) * sizeof(*argv));
            if (g == NULL)
                goto nomem;
            argv = g;
        }
        argv[n] = strndup(word, w);
        if (argv[n] == NULL)
            goto nomem;
        argv[++n] = NULL;
    }
    free(word);
    if (n == 0) {
        aws_argv_free(argv);
        return GW_EINVAL;
    }
    *argv_out = argv;
    return 0;
nomem:
    free(word);
    aws_argv_free(argv);
    return GW_ENOMEM;
}

void aws_argv_free(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

/* ---- delivery ---- */

static void entry_notify_cb(uv_timer_t *t)
{
    struct creds_entry *e = t->data;
    struct aws_creds_wait *w = e->waiters;
    e->waiters = NULL;
    struct aws_sigv4_creds creds = {e->akid, e->secret, e->token};
    while (w != NULL) {
        struct aws_creds_wait *next = w->next;
        w->done(w->arg, e->status, e->status == 0 ? &creds : NULL,
                e->status == 0 ? NULL : e->why);
        free(w);
        w = next;
    }
}

static void entry_finish(struct creds_entry *e, int status, const char *why)
{
    e->status = status;
    snprintf(e->why, sizeof(e->why), "%s", why ? why : "");
    if (status == 0)
        e->have = 1;
    uv_timer_start(&e->notify, entry_notify_cb, 0, 0);
}

static int set_static(struct creds_entry *e, const char *akid,
                      const char *secret, const char *token, time_t exp)
{
    entry_clear(e);
    e->akid = strdup(akid);
    e->secret = strdup(secret);
    e->token = token != NULL && token[0] != '\0' ? strdup(token) : NULL;
    e->expiration = exp;
    if (e->akid == NULL || e->secret == NULL)
        return GW_ENOMEM;
    return 0;
}

/* ---- processes ---- */

static void proc_handle_closed(uv_handle_t *h)
{
    struct creds_proc *cp = h->data;
    if (--cp->handles > 0)
        return;
    free(cp->outbuf);
    free(cp->errbuf);
    free(cp);
}

static void proc_close(struct creds_proc *cp)
{
    uv_close((uv_handle_t *)&cp->out, proc_handle_closed);
    uv_close((uv_handle_t *)&cp->err, proc_handle_closed);
    uv_close((uv_handle_t *)&cp->timer, proc_handle_closed);
    uv_close((uv_handle_t *)&cp->proc, proc_handle_closed);
}

static void proc_finish(struct creds_proc *cp)
{
    struct creds_entry *e = cp->entry;
    if (!cp->exited || cp->streams_open > 0)
        return;
    uv_timer_stop(&cp->timer);
    if (e != NULL) {
        e->running = NULL;
        const char *what = cp->fallback ? "aws configure export-credentials"
                                        : "credential_process";
        char why[256];
        if (cp->timed_out) {
            snprintf(why, sizeof(why), "%s timed out", what);
            entry_finish(e, GW_ETIMEOUT, why);
        } else if (cp->status != 0) {
            /* stderr is the tool's message; cut it to one short line. */
            char msg[160] = "";
            if (cp->errbuf != NULL) {
                snprintf(msg, sizeof(msg), "%s", cp->errbuf);
                msg[strcspn(msg, "\r\n")] = '\0';
            }
            snprintf(why, sizeof(why), "%s exited with %lld%s%s", what,
                     (long long)cp->status, msg[0] ? ": " : "", msg);
            entry_finish(e, GW_ENO_CREDS, why);
        } else {
            char *a, *s, *t;
            time_t exp;
            const char *perr;
            int rc = aws_creds_parse_process(cp->outbuf ? cp->outbuf : "", &a,
                                             &s, &t, &exp, &perr);
            if (rc != 0) {
                snprintf(why, sizeof(why), "%s: %s", what, perr);
                entry_finish(e, GW_ENO_CREDS, why);
            } else {
                entry_clear(e);
                e->akid = a;
                e->secret = s;
                e->token = t;
                e->expiration = exp;
                log_debug("credentials for profile %s from %s", e->profile,
                          what);
                entry_finish(e, 0, NULL);
            }
        }
    }
    if (cp->outbuf != NULL)
        OPENSSL_cleanse(cp->outbuf, cp->outlen);
    proc_close(cp);
}

static void proc_exit(uv_process_t *p, int64_t status, int sig)
{
    struct creds_proc *cp = p->data;
    cp->exited = 1;
    cp->status = sig ? 128 + sig : status;
    proc_finish(cp);
}

static void proc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char scratch[8192];
    b->base = scratch;
    b->len = sizeof(scratch);
}

static void proc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct creds_proc *cp = s->data;
    int is_out = s == (uv_stream_t *)&cp->out;
    char **buf = is_out ? &cp->outbuf : &cp->errbuf;
    size_t *len = is_out ? &cp->outlen : &cp->errlen;
    if (n < 0) {
        uv_read_stop(s);
        cp->streams_open--;
        proc_finish(cp);
        return;
    }
    if (*len + (size_t)n + 1 > PROC_OUT_MAX) {
        uv_process_kill(&cp->proc, SIGKILL);
        return; /* drop the excess; the exit reports the failure */
    }
    char *g = realloc(*buf, *len + (size_t)n + 1);
    if (g == NULL)
        return;
    memcpy(g + *len, b->base, (size_t)n);
    *len += (size_t)n;
    g[*len] = '\0';
    *buf = g;
}

static void proc_timeout(uv_timer_t *t)
{
    struct creds_proc *cp = t->data;
    cp->timed_out = 1;
    uv_process_kill(&cp->proc, SIGKILL);
}

static int proc_start(struct creds_entry *e, char **argv, int fallback)
{
    uv_loop_t *loop = e->cache->loop;
    struct creds_proc *cp = calloc(1, sizeof(*cp));
    if (cp == NULL)
        return GW_ENOMEM;
    cp->entry = e;
    cp->fallback = fallback;
    uv_pipe_init(loop, &cp->out, 0);
    uv_pipe_init(loop, &cp->err, 0);
    uv_timer_init(loop, &cp->timer);
    cp->out.data = cp->err.data = cp->timer.data = cp->proc.data = cp;
    cp->handles = 3;
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&cp->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&cp->err;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.file = argv[0];
    opts.args = argv;
    opts.exit_cb = proc_exit;
    opts.stdio = stdio;
    opts.stdio_count = 3;
    int rc = uv_spawn(loop, &cp->proc, &opts);
    if (rc != 0) {
        /* uv_spawn leaves the process handle to be closed too. */
        cp->handles++;
        cp->entry = NULL;
        proc_close(cp);
        return rc;
    }
    cp->handles++;
    cp->streams_open = 2;
    uv_read_start((uv_stream_t *)&cp->out, proc_alloc, proc_read);
    uv_read_start((uv_stream_t *)&cp->err, proc_alloc, proc_read);
    uv_timer_start(&cp->timer, proc_timeout, PROC_TIMEOUT_MS, 0);
    e->running = cp;
    return 0;
}

/* Is an executable named name on PATH? */
static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    char buf[1024];
    while (path != NULL && *path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* ---- the chain ---- */

static void entry_refresh(struct creds_entry *e, const struct aws_profiles *p)
{
    const char *prof = e->profile;
    char why[512];
    const char *ak = getenv("AWS_ACCESS_KEY_ID");
    if (!e->explicit_profile && ak != NULL && ak[0] != '\0') {
        const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
        const char *tok = getenv("AWS_SESSION_TOKEN");
        if (tok == NULL || tok[0] == '\0')
            tok = getenv("AWS_SECURITY_TOKEN");
        if (sk == NULL || sk[0] == '\0') {
            entry_finish(e, GW_ENO_CREDS,
                         "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY "
                         "is not");
            return;
        }
        time_t exp = 0;
        const char *envexp = getenv("AWS_CREDENTIAL_EXPIRATION");
        if (envexp != NULL && envexp[0] != '\0')
            exp = aws_parse_time(envexp);
        int rc = set_static(e, ak, sk, tok, exp > 0 ? exp : 0);
        entry_finish(e, rc, rc ? "out of memory" : NULL);
        return;
    }
    if (aws_profile_get(p, prof, "mfa_serial") != NULL &&
        aws_profile_get(p, prof, "role_arn") != NULL) {
        snprintf(why, sizeof(why),
                 "profile %s uses mfa_serial, which needs an interactive "
                 "code: configure credential_process (for example `aws "
                 "configure export-credentials --profile %s --format "
                 "process`) instead",
                 prof, prof);
        entry_finish(e, GW_ENO_CREDS, why);
        return;
    }
    /* Keys in the credentials file, then credential_process, then keys
     * in the config file; the lookup already prefers the credentials
     * file, so the config keys come after the process only when the
     * credentials file has none. */
    const char *akid = aws_profile_get(p, prof, "aws_access_key_id");
    const char *sk = aws_profile_get(p, prof, "aws_secret_access_key");
    const char *proc = aws_profile_get(p, prof, "credential_process");
    if (proc == NULL && akid != NULL && sk != NULL) {
        const char *tok = aws_profile_get(p, prof, "aws_session_token");
        if (tok == NULL)
            tok = aws_profile_get(p, prof, "aws_security_token");
        int rc = set_static(e, akid, sk, tok, 0);
        entry_finish(e, rc, rc ? "out of memory" : NULL);
        return;
    }
    char **argv = NULL;
    int fallback = 0;
    if (proc != NULL) {
        int rc = aws_split_command(proc, &argv);
        if (rc != 0) {
            snprintf(why, sizeof(why),
                     "profile %s: credential_process is not a valid command "
                     "line",
                     prof);
            entry_finish(e, GW_ENO_CREDS, why);
            return;
        }
    } else if (aws_profile_exists(p, prof) && on_path("aws")) {
        /* SSO, assume-role and login profiles through the user's CLI. */
        const char *args[] = {"aws",       "configure", "export-credentials",
                              "--profile", prof,        "--format",
                              "process",   NULL};
        argv = calloc(ARRAY_SIZE(args), sizeof(*argv));
        for (size_t i = 0; argv != NULL && args[i] != NULL; i++)
            argv[i] = strdup(args[i]);
        fallback = 1;
    } else {
        snprintf(why, sizeof(why),
                 "no credentials for profile %s (environment, credentials "
                 "file, credential_process, config file)",
                 prof);
        entry_finish(e, GW_ENO_CREDS, why);
        return;
    }
    int rc = argv != NULL ? proc_start(e, argv, fallback) : GW_ENOMEM;
    if (rc != 0) {
        snprintf(why, sizeof(why), "cannot run %s: %s",
                 argv && argv[0] ? argv[0] : "credential process",
                 gw_strerror(rc));
        entry_finish(e, GW_ENO_CREDS, why);
    }
    aws_argv_free(argv);
}

struct aws_creds_cache *aws_creds_cache_new(uv_loop_t *loop)
{
    struct aws_creds_cache *c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->loop = loop;
    return c;
}

static void entry_timer_closed(uv_handle_t *h)
{
    struct creds_entry *e = h->data;
    struct aws_creds_cache *c = e->cache;
    entry_clear(e);
    free(e);
    if (--c->open == 0 && c->closing)
        free(c);
}

void aws_creds_cache_free(struct aws_creds_cache *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    int any = 0;
    for (struct creds_entry *e = c->entries, *next; e != NULL; e = next) {
        next = e->next;
        while (e->waiters != NULL) {
            struct aws_creds_wait *w = e->waiters;
            e->waiters = w->next;
            free(w);
        }
        if (e->running != NULL) {
            e->running->entry = NULL;
            uv_process_kill(&e->running->proc, SIGKILL);
        }
        uv_close((uv_handle_t *)&e->notify, entry_timer_closed);
        any = 1;
    }
    if (!any)
        free(c);
}

static struct creds_entry *entry_find(struct aws_creds_cache *c,
                                      const char *profile, int explicit_profile)
{
    for (struct creds_entry *e = c->entries; e != NULL; e = e->next)
        if (strcmp(e->profile, profile) == 0 &&
            e->explicit_profile == explicit_profile)
            return e;
    struct creds_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->cache = c;
    snprintf(e->profile, sizeof(e->profile), "%s", profile);
    e->explicit_profile = explicit_profile;
    uv_timer_init(c->loop, &e->notify);
    e->notify.data = e;
    c->open++;
    e->next = c->entries;
    c->entries = e;
    return e;
}

int aws_creds_get(struct aws_creds_cache *c, const struct aws_profiles *p,
                  const char *profile, int explicit_profile,
                  aws_creds_done_cb *done, void *arg,
                  struct aws_creds_wait **out)
{
    struct creds_entry *e = entry_find(c, profile, explicit_profile);
    struct aws_creds_wait *w = calloc(1, sizeof(*w));
    if (e == NULL || w == NULL) {
        free(w);
        return GW_ENOMEM;
    }
    w->entry = e;
    w->done = done;
    w->arg = arg;
    w->next = e->waiters;
    e->waiters = w;
    if (out != NULL)
        *out = w;
    time_t now = time(NULL);
    int fresh = e->have &&
                (e->expiration == 0 || e->expiration - now > MANDATORY_AHEAD_S);
    if (e->running != NULL)
        return 0; /* joins the refresh under way */
    if (fresh) {
        e->status = 0;
        uv_timer_start(&e->notify, entry_notify_cb, 0, 0);
        return 0;
    }
    entry_refresh(e, p);
    return 0;
}

void aws_creds_cancel(struct aws_creds_wait *w)
{
    if (w == NULL)
        return;
    struct aws_creds_wait **pp = &w->entry->waiters;
    while (*pp != NULL && *pp != w)
        pp = &(*pp)->next;
    if (*pp == w)
        *pp = w->next;
    free(w);
}

void aws_creds_invalidate(struct aws_creds_cache *c, const char *profile)
{
    for (struct creds_entry *e = c->entries; e != NULL; e = e->next)
        if (strcmp(e->profile, profile) == 0 && e->running == NULL)
            e->have = 0;
}
