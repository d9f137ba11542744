/*
 * observe.c - the counters, the audit log and the metrics page, wired.
 *
 * Connections report here through the server's observer (opened, ended):
 * an ended one is counted by outcome and written to the audit log. The
 * metrics page and the status document are built on request from the
 * counters plus what is live (tunnels, sessions, pending API calls), so a
 * long tunnel's bytes show while it runs: a counter moves from the live
 * sum to the ended total in the same loop pass, never twice.
 */
#include "observe.h"

#include <dirent.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "audit.h"
#include "aws.h"
#include "backend_ssm.h"
#include "common.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "server.h"
#include "ssm_session.h"
#include "stats.h"

struct observe {
    uv_loop_t *loop;
    struct stats stats;
    struct audit *audit;
    struct metrics *metrics;
    char metrics_conf[CONFIG_ADDR_MAX]; /* as configured; "" = off */
    struct server *server;
    struct aws_client *aws;
    struct backend_ssm *ssm;
    double start_s; /* the epoch, seconds */
    uint64_t start_ms;
    char gateway_user[64];
    char default_profile[CONFIG_NAME_MAX];
};

/* ---- connections ---- */

static void observe_opened(const struct conn_info *t, void *arg)
{
    struct observe *o = arg;
    stats_tunnel_opened(&o->stats, t->open_ms);
}

static void observe_ended(const struct conn_info *t, void *arg)
{
    struct observe *o = arg;
    stats_tunnel_ended(&o->stats, t->outcome, t->bytes_up, t->bytes_down);
    if (o->audit != NULL) {
        struct audit_who who = {o->gateway_user, o->default_profile};
        audit_write(o->audit, t, &who);
    }
}

/* ---- what is live ---- */

struct live {
    uint64_t tunnels, bytes_up, bytes_down;
};

static void live_add(const struct conn_info *t, void *arg)
{
    struct live *l = arg;
    l->tunnels++;
    l->bytes_up += t->bytes_up;
    l->bytes_down += t->bytes_down;
}

static struct live live_now(const struct observe *o)
{
    struct live l = {0, 0, 0};
    if (o->server != NULL)
        server_foreach_tunnel(o->server, live_add, &l);
    return l;
}

/* ---- the metrics page ---- */

static size_t open_fds(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

static void family_u64(struct prom *w, const char *name, const char *type,
                       const char *help, uint64_t v)
{
    prom_family(w, name, type, help);
    prom_u64(w, name, NULL, 0, v);
}

/* One family with one label and a value per label value. */
static void family_by(struct prom *w, const char *name, const char *help,
                      const char *label, const char *const *values,
                      const uint64_t *counts, size_t n)
{
    prom_family(w, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        struct prom_label l = {label, values[i]};
        prom_u64(w, name, &l, 1, counts[i]);
    }
}

static void render_tunnels(struct prom *w, const struct observe *o,
                           const struct live *live)
{
    const struct stats *st = &o->stats;
    const char *outcomes[TUNNEL_OUTCOME_MAX_];
    for (int i = 0; i < TUNNEL_OUTCOME_MAX_; i++)
        outcomes[i] = tunnel_outcome_name((enum tunnel_outcome)i);
    family_u64(w, "ssmgate_connections", "gauge",
               "Client connections, from accept to close (negotiating, "
               "opening or open).",
               o->server ? server_conn_count(o->server) : 0);
    family_u64(w, "ssmgate_tunnels_open", "gauge",
               "Tunnels whose bytes flow now.", live->tunnels);
    family_by(w, "ssmgate_tunnels_total",
              "Client connections that ended, by outcome.", "outcome", outcomes,
              st->tunnels, TUNNEL_OUTCOME_MAX_);
    const char *name = "ssmgate_tunnel_open_seconds";
    prom_family(w, name, "histogram",
                "Time from accept to an open tunnel (API calls, key push, "
                "data channel, handshake).");
    const uint64_t *bounds = stats_open_bounds();
    uint64_t cum = 0;
    for (int i = 0; i < STATS_OPEN_BUCKETS; i++) {
        char le[32];
        cum += st->open_bucket[i];
        if (i + 1 < STATS_OPEN_BUCKETS)
            snprintf(le, sizeof(le), "%g", (double)bounds[i] / 1000.0);
        else
            snprintf(le, sizeof(le), "+Inf");
        struct prom_label l = {"le", le};
        prom_u64(w, "ssmgate_tunnel_open_seconds_bucket", &l, 1, cum);
    }
    prom_double(w, "ssmgate_tunnel_open_seconds_sum", NULL, 0,
                (double)st->open_ms_sum / 1000.0);
    prom_u64(w, "ssmgate_tunnel_open_seconds_count", NULL, 0, st->open_count);
    const char *dirs[] = {"up", "down"};
    uint64_t bytes[] = {st->bytes_up + live->bytes_up,
                        st->bytes_down + live->bytes_down};
    family_by(w, "ssmgate_bytes_total",
              "Tunnel bytes: up = client to destination, down = back.",
              "direction", dirs, bytes, 2);
}

static void render_aws(struct prom *w, const struct observe *o)
{
    const struct stats *st = &o->stats;
    const char *name = "ssmgate_api_calls_total";
    prom_family(w, name, "counter",
                "AWS API requests sent, by action and answer: ok, the "
                "service's error code, http_NNN, timeout or network.");
    for (size_t i = 0; i < st->n_api; i++) {
        struct prom_label l[2] = {{"action", st->api[i].action},
                                  {"code", st->api[i].code}};
        prom_u64(w, name, l, 2, st->api[i].n);
    }
    family_u64(w, "ssmgate_api_calls_pending", "gauge",
               "AWS API calls started and not yet answered.",
               o->aws ? (uint64_t)aws_client_pending(o->aws) : 0);
    const char *results[] = {"ok", "failed"};
    uint64_t resumes[] = {st->counter[STATS_RESUMES_OK],
                          st->counter[STATS_RESUMES_FAILED]};
    family_by(w, "ssmgate_resumes_total",
              "Dropped data channels resumed (ok) or given up (failed).",
              "result", results, resumes, 2);
    const char *push_results[] = {"ok", "failed", "reused"};
    uint64_t pushes[] = {st->counter[STATS_KEY_PUSH_OK],
                         st->counter[STATS_KEY_PUSH_FAILED],
                         st->counter[STATS_KEY_PUSH_REUSED]};
    family_by(w, "ssmgate_key_pushes_total",
              "EC2 Instance Connect key pushes: SendSSHPublicKey ok or "
              "failed, or a fresh push reused without a call.",
              "result", push_results, pushes, 3);
    family_u64(w, "ssmgate_warm_hits_total", "counter",
               "Connections that joined an SSM session already started "
               "instead of calling StartSession.",
               st->counter[STATS_WARM_HITS]);
    family_u64(w, "ssmgate_data_channel_max_messages_per_second", "gauge",
               "The most data messages one data channel sent in any one "
               "second (its own send times; the service allows 1000).",
               st->dc_max_per_second);
    family_u64(w, "ssmgate_ssm_sessions", "gauge",
               "SSM sessions: starting, open, resuming or lingering idle.",
               o->ssm ? (uint64_t)backend_ssm_sessions(o->ssm) : 0);
}

static void render_process(struct prom *w, const struct observe *o)
{
    struct rusage ru;
    struct rlimit rl;
    size_t rss = 0;
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    uv_resident_set_memory(&rss);
    prom_family(w, "process_cpu_seconds_total", "counter",
                "User and system CPU time spent in seconds.");
    prom_double(w, "process_cpu_seconds_total", NULL, 0, cpu);
    family_u64(w, "process_resident_memory_bytes", "gauge",
               "Resident memory size in bytes.", rss);
    family_u64(w, "process_open_fds", "gauge",
               "Number of open file descriptors.", open_fds());
    family_u64(w, "process_max_fds", "gauge",
               "Maximum number of open file descriptors.",
               getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0);
    prom_family(w, "process_start_time_seconds", "gauge",
                "Start time of the process since the epoch in seconds.");
    prom_double(w, "process_start_time_seconds", NULL, 0, o->start_s);
}

static int observe_render(void *arg, struct buf *out)
{
    struct observe *o = arg;
    struct prom w = {out, 0};
    struct live live = live_now(o);
    struct prom_label v = {"version", SSMGATE_VERSION};
    prom_family(&w, "ssmgate_build_info", "gauge",
                "The running ssmgate's version (always 1).");
    prom_u64(&w, "ssmgate_build_info", &v, 1, 1);
    render_tunnels(&w, o, &live);
    render_aws(&w, o);
    render_process(&w, o);
    return w.err;
}

/* ---- the status document ---- */

static void tunnel_json(const struct conn_info *t, void *arg)
{
    json_t *o = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "id",
        (json_int_t)t->id, "client", t->client, "target", t->target, "user",
        t->user, "document", t->document, "kind", t->kind, "age_s",
        (json_int_t)t->age_s, "bytes_up", (json_int_t)t->bytes_up, "bytes_down",
        (json_int_t)t->bytes_down, "listener", t->listener, "session_id",
        t->stream.session_id, "region", t->region);
    if (o == NULL)
        return;
    if (t->streams > 0)
        json_object_set_new(o, "streams", json_integer(t->streams));
    if (t->port != 0)
        json_object_set_new(o, "port", json_integer(t->port));
    if (t->client_uid >= 0)
        json_object_set_new(o, "local_uid", json_integer(t->client_uid));
    if (t->stream.instance[0] != '\0')
        json_object_set_new(o, "instance", json_string(t->stream.instance));
    json_array_append_new(arg, o);
}

static void start_json(void *arg, const char *instance, const char *state,
                       uint64_t elapsed_ms, int waiters)
{
    json_array_append_new(arg, json_pack("{s:s, s:s, s:I, s:i}", "instance",
                                         instance, "state", state, "elapsed_ms",
                                         (json_int_t)elapsed_ms, "connections",
                                         waiters));
}

/* A session as `ssmgate status` lists it; idle_since (wall clock, s)
 * and idle_s only for a session with no connection (a warm one). */
static void session_json(const struct ssm_session_info *i, void *arg)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "id",
                  (json_int_t)i->id, "target", i->target, "document",
                  i->document ? i->document : "", "profile", i->profile,
                  "region", i->region, "session_id", i->session_id, "state",
                  i->state, "streams", i->streams, "busy", i->busy);
    if (o == NULL)
        return;
    if (i->streams == 0) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        json_object_set_new(o, "idle_s",
                            json_integer((json_int_t)(i->idle_ms / 1000)));
        json_object_set_new(o, "idle_since",
                            json_real((double)tv.tv_sec +
                                      (double)tv.tv_usec / 1e6 -
                                      (double)i->idle_ms / 1000.0));
    }
    json_array_append_new(arg, o);
}

void observe_status(void *arg, json_t *doc)
{
    struct observe *o = arg;
    const struct stats *st = &o->stats;
    json_t *tunnels = json_array();
    if (o->server != NULL)
        server_foreach_tunnel(o->server, tunnel_json, tunnels);
    json_object_set_new(doc, "tunnels", tunnels);
    json_t *starts = json_array();
    if (o->ssm != NULL)
        backend_ssm_foreach_start(o->ssm, start_json, starts);
    json_object_set_new(doc, "starts", starts);
    json_t *sessions = json_array();
    if (o->ssm != NULL)
        backend_ssm_foreach_session(o->ssm, session_json, sessions);
    json_object_set_new(doc, "sessions", sessions);
    struct live live = live_now(o);
    json_t *ended = json_object();
    for (int i = 0; i < TUNNEL_OUTCOME_MAX_; i++)
        json_object_set_new(ended, tunnel_outcome_name((enum tunnel_outcome)i),
                            json_integer((json_int_t)st->tunnels[i]));
    uint64_t calls = 0, errors = 0;
    for (size_t i = 0; i < st->n_api; i++) {
        calls += st->api[i].n;
        errors += strcmp(st->api[i].code, "ok") != 0 ? st->api[i].n : 0;
    }
    json_t *g = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:I}",
        "version", SSMGATE_VERSION, "pid", (json_int_t)getpid(), "uptime_s",
        (json_int_t)((uv_now(o->loop) - o->start_ms) / 1000), "connections",
        (json_int_t)(o->server ? server_conn_count(o->server) : 0),
        "tunnels_open", (json_int_t)live.tunnels, "ssm_sessions",
        (json_int_t)(o->ssm ? backend_ssm_sessions(o->ssm) : 0), "ended", ended,
        "bytes_up", (json_int_t)(st->bytes_up + live.bytes_up), "bytes_down",
        (json_int_t)(st->bytes_down + live.bytes_down), "api_calls",
        (json_int_t)calls, "api_errors", (json_int_t)errors, "resumes",
        (json_int_t)st->counter[STATS_RESUMES_OK], "resumes_failed",
        (json_int_t)st->counter[STATS_RESUMES_FAILED], "key_pushes",
        (json_int_t)st->counter[STATS_KEY_PUSH_OK], "key_pushes_failed",
        (json_int_t)st->counter[STATS_KEY_PUSH_FAILED], "key_pushes_reused",
        (json_int_t)st->counter[STATS_KEY_PUSH_REUSED], "warm_hits",
        (json_int_t)st->counter[STATS_WARM_HITS]);
    if (g != NULL) {
        json_object_set_new(g, "max_messages_per_second",
                            json_integer((json_int_t)st->dc_max_per_second));
        json_object_set_new(g, "audit_log",
                            o->audit ? json_string(audit_path(o->audit))
                                     : json_null());
        json_object_set_new(g, "metrics",
                            o->metrics ? json_string(metrics_addr(o->metrics))
                                       : json_null());
        json_object_set_new(doc, "gateway", g);
    }
}

/* ---- life ---- */

int observe_new(uv_loop_t *loop, const struct config *cfg, struct observe **out)
{
    struct observe *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return GW_ENOMEM;
    o->loop = loop;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    o->start_s = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
    o->start_ms = uv_now(loop);
    struct passwd pw, *res = NULL;
    char pwbuf[2048];
    const char *user = getenv("USER");
    if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 &&
        res != NULL)
        user = pw.pw_name;
    snprintf(o->gateway_user, sizeof(o->gateway_user), "%s", user ? user : "");
    const char *profile =
        cfg->profile[0] ? cfg->profile : getenv("AWS_PROFILE");
    snprintf(o->default_profile, sizeof(o->default_profile), "%s",
             profile ? profile : "");
    if (cfg->audit_log[0] != '\0') {
        int rc = audit_open(cfg->audit_log, &o->audit);
        if (rc != 0) {
            fprintf(stderr, "ssmgate: audit log %s: %s\n", cfg->audit_log,
                    strerror(-rc));
            free(o);
            return GW_EIO;
        }
        log_info("audit log %s", cfg->audit_log);
    }
    *out = o;
    return 0;
}

struct stats *observe_stats(struct observe *o)
{
    return &o->stats;
}

void observe_attach(struct observe *o, struct server *s)
{
    o->server = s;
    server_set_observer(s, observe_opened, observe_ended, o);
}

void observe_set_backends(struct observe *o, struct aws_client *aws,
                          struct backend_ssm *ssm)
{
    o->aws = aws;
    o->ssm = ssm;
}

int observe_listen(struct observe *o, const struct config *cfg)
{
    snprintf(o->metrics_conf, sizeof(o->metrics_conf), "%s",
             cfg->metrics_listen);
    if (cfg->metrics_listen[0] == '\0')
        return 0;
    return metrics_start(o->loop, cfg->metrics_listen, observe_render, o,
                         &o->metrics);
}

void observe_reopen(struct observe *o)
{
    if (o->audit == NULL)
        return;
    int rc = audit_reopen(o->audit, NULL);
    if (rc != 0)
        log_error("SIGHUP: audit log %s: cannot reopen: %s; still writing "
                  "to the file open before",
                  audit_path(o->audit), strerror(-rc));
}

static void apply_audit(struct observe *o, const char *path)
{
    if (path[0] == '\0') {
        if (o->audit != NULL)
            log_info("SIGHUP: audit log %s closed", audit_path(o->audit));
        audit_close(o->audit);
        o->audit = NULL;
        return;
    }
    if (o->audit != NULL && strcmp(audit_path(o->audit), path) == 0)
        return;
    int rc = o->audit != NULL ? audit_reopen(o->audit, path)
                              : audit_open(path, &o->audit);
    if (rc != 0)
        log_error("SIGHUP: audit log %s: %s; %s", path, strerror(-rc),
                  o->audit ? "keeping the old one" : "no audit log");
    else
        log_info("SIGHUP: audit log %s", path);
}

static void apply_metrics(struct observe *o, const char *addr)
{
    if (strcmp(o->metrics_conf, addr) == 0)
        return;
    struct metrics *fresh = NULL;
    if (addr[0] != '\0' &&
        metrics_start(o->loop, addr, observe_render, o, &fresh) != 0) {
        log_error("SIGHUP: metrics_listen %s: keeping %s", addr,
                  o->metrics_conf[0] ? o->metrics_conf : "none");
        return;
    }
    if (fresh == NULL && o->metrics != NULL)
        log_info("SIGHUP: metrics on %s closed", metrics_addr(o->metrics));
    metrics_stop(o->metrics);
    o->metrics = fresh;
    snprintf(o->metrics_conf, sizeof(o->metrics_conf), "%s", addr);
}

void observe_apply(struct observe *o, const struct config *cfg)
{
    apply_audit(o, cfg->audit_log);
    apply_metrics(o, cfg->metrics_listen);
}

void observe_stop(struct observe *o)
{
    if (o == NULL)
        return;
    metrics_stop(o->metrics);
    o->metrics = NULL;
}

void observe_free(struct observe *o)
{
    if (o == NULL)
        return;
    audit_close(o->audit);
    free(o);
}
