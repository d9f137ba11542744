/*
 * daemon.c - the composition root: start-up order, signals, teardown.
 *
 * Start-up: runtime dir -> key ring (+ .pub, optional key file) -> agent
 * socket -> control socket -> backends -> listeners. Teardown runs the
 * same list backwards after the loop drained, so LeakSanitizer sees every
 * handle closed and every allocation freed.
 *
 * SIGHUP loads the file again and applies what can change without
 * dropping a tunnel; which key goes where is the apply column of the
 * directive table in config.c (config_diff), and every key that only a
 * restart applies gets one warning naming it.
 */
#include "daemon.h"

#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "agent.h"
#include "aws.h"
#include "aws_ec2ic.h"
#include "backend_ssm.h"
#include "common.h"
#include "control.h"
#include "defer.h"
#include "key.h"
#include "keypush.h"
#include "log.h"
#include "observe.h"
#include "proxy.h"
#include "rundir.h"
#include "server.h"
#include "stats.h"
#include "ws.h"

struct daemon {
    uv_loop_t *loop;
    struct config *cfg; /* our ref; replaced by a reload */
    const char *config_path;
    struct config_overrides ov;
    struct rundir rundir;
    struct key_ring keys;
    int keys_ready;
    struct agent *agent;
    struct control *control;
    struct server *server;
    struct aws_client *aws;
    struct ws_ctx *ws;
    struct keypush *keypush;
    struct backend_ssm *ssm;
    struct observe *obs; /* counters, audit log, metrics */
    uv_timer_t settle;   /* lets TerminateSession calls finish at exit */
    uint64_t settle_until;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t rotate_timer;
    uv_timer_t trim_timer;
    uint64_t trim_ended; /* tunnels ended, at the last look */
    int trim_sessions;   /* SSM sessions, at the last look */
    int stopping;
};

/* ---- key files ---- */

static int daemon_write_keys(struct daemon *d)
{
    int rc = rundir_write_pubkey(&d->rundir, d->keys.line);
    if (rc != 0 || !d->cfg->key_file)
        return rc;
    char *text = NULL;
    size_t len = 0;
    rc = key_private_file(d->keys.current, d->keys.comment, 0, &text, &len);
    if (rc != 0)
        return rc;
    char path[RUNDIR_PATH_MAX + 32];
    rc = rundir_write_key(&d->rundir, text, len, d->keys.line, path,
                          sizeof(path));
    key_private_file_free(text, len);
    if (rc == 0)
        log_info("key file %s (0600)", path);
    return rc;
}

static void on_rotate(uv_timer_t *t)
{
    struct daemon *d = t->data;
    int rc = key_ring_rotate(&d->keys, uv_now(d->loop));
    if (rc == 0)
        rc = daemon_write_keys(d);
    if (rc != 0)
        log_error_r(rc, "key rotation failed; keeping the current key");
    else
        log_info("rotated the ephemeral key (generation %llu)",
                 (unsigned long long)d->keys.generation);
}

/* ---- memory back to the system ---- */

/* glibc keeps the heap pages that ended tunnels and sessions freed among
 * live allocations, for reuse: a daemon that churns through tunnels then
 * only grows (measured: 28 -> 39 MB RSS over 8 rounds of 200 sessions,
 * live heap flat; trimmed, 19-20 MB). So when something ended since the
 * last look, the free pages go back: malloc_trim walks the heap once
 * (well under a millisecond at 1,000 tunnels), at most every
 * DAEMON_TRIM_MS, never while nothing ends. */
#define DAEMON_TRIM_MS 10000

static void on_trim(uv_timer_t *t)
{
    struct daemon *d = t->data;
    const struct stats *st = observe_stats(d->obs);
    uint64_t ended = 0;
    for (int i = 0; i < TUNNEL_OUTCOME_MAX_; i++)
        ended += st->tunnels[i];
    int sessions = d->ssm ? backend_ssm_sessions(d->ssm) : 0;
    if (ended == d->trim_ended && sessions >= d->trim_sessions) {
        d->trim_sessions = sessions;
        return;
    }
    d->trim_ended = ended;
    d->trim_sessions = sessions;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* ---- the real SendSSHPublicKey behind struct keypush_api ---- */

static struct aws_call *
daemon_keypush_send(void *ctx, const char *profile, const char *region,
                    const char *instance_id, const char *os_user,
                    const char *public_key, aws_ec2ic_done_cb *done, void *arg)
{
    return aws_ec2ic_send_ssh_public_key(ctx, profile, region, instance_id,
                                         os_user, public_key, done, arg);
}

static void daemon_keypush_cancel(void *ctx, struct aws_call *call)
{
    aws_call_cancel(call);
}

/* ---- the SSM backend ---- */

/* The SSM options from cfg; reason (the StartSession Reason prefix) is
 * the caller's buffer. */
static struct ssm_opts daemon_ssm_opts(const struct daemon *d,
                                       const struct config *cfg, char *reason,
                                       size_t len)
{
    const char *user = getenv("USER");
    snprintf(reason, len, "ssmgate %s by %s", SSMGATE_VERSION,
             user && user[0] ? user : "unknown user");
    struct ssm_opts so = {
        .message_rate = cfg->message_rate,
        .payload_size = cfg->payload_size,
        .resume_budget_ms = cfg->resume_budget_ms,
        .handshake_timeout_ms = 20000,
        .half_close_linger_ms = cfg->half_close_linger_ms,
        .open_confirm_ms = cfg->open_confirm_ms,
        .session_linger_ms = cfg->session_linger_ms,
        .ssh_document = cfg->ssh_document == CONFIG_SSH_DOC_SSH
                            ? SSM_SSH_DOC_SSH
                        : cfg->ssh_document == CONFIG_SSH_DOC_PORT_FORWARD
                            ? SSM_SSH_DOC_PORT_FORWARD
                            : SSM_SSH_DOC_AUTO,
        .sessions_per_target = cfg->sessions_per_target,
        .reason_prefix = reason,
        .stats = observe_stats(d->obs),
    };
    return so;
}

static void daemon_stop_backends(struct daemon *d)
{
    if (d->obs != NULL)
        observe_set_backends(d->obs, NULL, NULL);
    backend_ssm_free(d->ssm);
    d->ssm = NULL;
    keypush_free(d->keypush);
    d->keypush = NULL;
    aws_client_free(d->aws);
    d->aws = NULL;
    ws_ctx_free(d->ws); /* finished after the loop: ws_ctx_finish */
}

/* The HTTPS proxy for every AWS connection (core/proxy.h), said once. */
static int daemon_proxy(struct daemon *d, struct proxy *p)
{
    char err[256], name[PROXY_HOST_MAX + 32];
    if (proxy_resolve(d->cfg->https_proxy, proxy_getenv, p, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "ssmgate: %s\n", err);
        return GW_ECONFIG;
    }
    if (!p->set)
        return 0;
    proxy_display(p, name, sizeof(name));
    log_info("AWS API calls and data channels go through the HTTPS proxy "
             "%s%s (%s); NO_PROXY: %s",
             name, p->user[0] ? " with Basic auth" : "", p->source,
             p->no_proxy[0] ? p->no_proxy : "(none)");
    return 0;
}

static int daemon_start_backends(struct daemon *d)
{
    struct proxy proxy;
    int rc = daemon_proxy(d, &proxy);
    if (rc != 0)
        return rc;
    struct aws_client_opts ao = {d->cfg->profile, d->cfg->region,
                                 d->cfg->connect_timeout_ms, &proxy,
                                 observe_stats(d->obs)};
    d->aws = aws_client_new(d->loop, &ao);
    if (d->aws == NULL) {
        proxy_wipe(&proxy);
        return GW_ENOMEM;
    }
    rc = ws_ctx_new(d->loop, aws_ca_bundle(d->aws, d->cfg->profile), &proxy,
                    &d->ws);
    proxy_wipe(&proxy);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: cannot start libwebsockets%s\n",
                d->ws != NULL ? " with the HTTPS proxy"
                              : " (is libwebsockets-evlib-uv installed?)");
        return rc;
    }
    struct keypush_api api = {daemon_keypush_send, daemon_keypush_cancel,
                              d->aws};
    struct keypush_opts ko = {.stats = observe_stats(d->obs)};
    rc = keypush_new(d->loop, &d->keys, &api, &ko, &d->keypush);
    if (rc != 0)
        return rc;
    char reason[128];
    struct ssm_opts so = daemon_ssm_opts(d, d->cfg, reason, sizeof(reason));
    rc = backend_ssm_new(d->loop, d->aws, d->ws, d->keypush, &so, &d->ssm);
    if (rc == 0) {
        server_set_ssm_backend(d->server, backend_ssm_backend(d->ssm));
        observe_set_backends(d->obs, d->aws, d->ssm);
    }
    return rc;
}

/* ---- signals ---- */

/* Closed tunnels send TerminateSession; give those calls a moment so no
 * session lingers on the AWS side, then stop the backends. */
static void settle_check(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->aws != NULL &&
        (aws_client_pending(d->aws) > 0 ||
         backend_ssm_terminating(d->ssm) > 0) &&
        uv_now(d->loop) < d->settle_until)
        return;
    uv_close((uv_handle_t *)&d->settle, NULL);
    daemon_stop_backends(d);
}

static void shutdown_done(void *arg)
{
    struct daemon *d = arg;
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    uv_close((uv_handle_t *)&d->rotate_timer, NULL);
    uv_close((uv_handle_t *)&d->trim_timer, NULL);
    agent_stop(d->agent);
    d->agent = NULL;
    control_stop(d->control);
    d->control = NULL;
    observe_stop(d->obs);
    if (d->ssm != NULL)
        backend_ssm_close_idle(d->ssm);
    uv_timer_init(d->loop, &d->settle);
    d->settle.data = d;
    d->settle_until = uv_now(d->loop) + 3000;
    uv_timer_start(&d->settle, settle_check, 0, 50);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (d->stopping) {
        log_info("second signal: closing every tunnel now");
        return;
    }
    d->stopping = 1;
    log_info("%s: stopping (draining live tunnels)",
             signum == SIGINT ? "SIGINT" : "SIGTERM");
    server_shutdown(d->server, shutdown_done, d);
}

/* ---- SIGHUP ---- */

/* (Re)arms the rotation timer for cfg's period; 0 = never rotate. */
static void daemon_arm_rotation(struct daemon *d)
{
    uint64_t period = (uint64_t)d->cfg->key_rotation_s * 1000;
    uv_timer_stop(&d->rotate_timer);
    if (period > 0)
        uv_timer_start(&d->rotate_timer, on_rotate, period, period);
}

static void daemon_apply_log(struct daemon *d)
{
    log_set_level(d->cfg->log_level);
}

static void daemon_apply_ssm(struct daemon *d)
{
    char reason[128];
    struct ssm_opts so = daemon_ssm_opts(d, d->cfg, reason, sizeof(reason));
    if (d->ssm == NULL)
        return;
    backend_ssm_set_opts(d->ssm, &so);
    log_info("SIGHUP: new SSM sessions use message_rate %d, payload_size "
             "%d, resume_budget_ms %d; half_close_linger_ms %d, "
             "session_linger_ms %d, sessions_per_target %d, ssh_document %s",
             so.message_rate, so.payload_size, so.resume_budget_ms,
             so.half_close_linger_ms, so.session_linger_ms,
             so.sessions_per_target,
             so.ssh_document == SSM_SSH_DOC_SSH            ? "ssh"
             : so.ssh_document == SSM_SSH_DOC_PORT_FORWARD ? "port-forward"
                                                           : "auto");
}

static void daemon_apply_keys(struct daemon *d)
{
    daemon_arm_rotation(d);
    /* key_file turned on: write it now, not at the next rotation. */
    int rc = daemon_write_keys(d);
    if (rc != 0)
        log_error_r(rc, "SIGHUP: cannot write the key files");
}

static void daemon_apply_observe(struct daemon *d)
{
    observe_apply(d->obs, d->cfg);
}

/* What applies each class of key once d->cfg is the new config, indexed
 * by enum config_apply. The server took its part before the swap (it can
 * refuse a config); a restart class has nothing to run. */
static void (*const daemon_appliers[])(struct daemon *d) = {
    [CONFIG_APPLY_SERVER] = NULL,
    [CONFIG_APPLY_LOG] = daemon_apply_log,
    [CONFIG_APPLY_SSM] = daemon_apply_ssm,
    [CONFIG_APPLY_KEYS] = daemon_apply_keys,
    [CONFIG_APPLY_OBSERVE] = daemon_apply_observe,
    [CONFIG_APPLY_RESTART] = NULL,
};

static void daemon_log_change(const char *key, enum config_apply apply,
                              void *arg)
{
    if (apply == CONFIG_APPLY_RESTART)
        log_warn("SIGHUP: %s changed; restart ssmgate to apply", key);
    else
        log_info("SIGHUP: %s changed", key);
}

static void on_hup(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    char err[512];
    struct config *fresh = NULL;
    (void)signum;
    /* Rotation (rename, then SIGHUP) must work even when the new
     * configuration does not load. */
    observe_reopen(d->obs);
    int rc = config_load(d->config_path, &d->ov, &fresh, err, sizeof(err));
    if (rc != 0) {
        log_error("SIGHUP: keeping the old configuration: %s", err);
        return;
    }
    rc = server_reload(d->server, fresh);
    if (rc != 0) {
        log_error_r(rc, "SIGHUP: cannot apply the new listeners; keeping "
                        "the old configuration");
        config_unref(fresh);
        return;
    }
    unsigned changed = config_diff(d->cfg, fresh, daemon_log_change, NULL);
    config_unref(d->cfg);
    d->cfg = fresh;
    for (size_t i = 0; i < ARRAY_SIZE(daemon_appliers); i++)
        if ((changed & CONFIG_APPLY_BIT(i)) && daemon_appliers[i] != NULL)
            daemon_appliers[i](d);
    log_info("SIGHUP: configuration reloaded");
}

/* ---- `ssmgate proxy` and `ssh-config` ask where a port 0 went ---- */

static void daemon_listener_json(const struct server_listener_info *l,
                                 void *arg)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "kind", l->kind, "name",
                          l->name, "listen", l->listen, "address", l->bound);
    if (o != NULL)
        json_array_append_new(arg, o);
}

/* control_answer_fn: {"listeners": [...]}. */
static json_t *daemon_listeners(void *arg)
{
    struct daemon *d = arg;
    json_t *list = json_array();
    if (list != NULL)
        server_foreach_listener(d->server, daemon_listener_json, list);
    return list != NULL ? json_pack("{s:o}", "listeners", list) : NULL;
}

/* ---- run ---- */

static int daemon_start(struct daemon *d)
{
    char err[512], path[RUNDIR_PATH_MAX + 32];
    int rc = rundir_open(&d->rundir, d->cfg->runtime_dir, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ssmgate: runtime dir: %s\n", err);
        return rc;
    }
    rc = key_ring_init(&d->keys, "ssmgate", KEY_GRACE_MS_DEFAULT);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: cannot make a key: %s\n", gw_strerror(rc));
        return rc;
    }
    d->keys_ready = 1;
    if ((rc = daemon_write_keys(d)) != 0) {
        fprintf(stderr, "ssmgate: cannot write key files: %s\n",
                gw_strerror(rc));
        return rc;
    }
    rc = rundir_socket_path(&d->rundir, RUNDIR_AGENT_SOCK, path, sizeof(path));
    if (rc == 0)
        rc = agent_start(d->loop, path, &d->keys, "ssmgate", &d->agent);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: agent socket %s: %s\n", path,
                gw_strerror(rc));
        return rc;
    }
    fprintf(stderr, "ssmgate: agent socket %s\n", path);
    if (observe_new(d->loop, d->cfg, &d->obs) != 0)
        return GW_EIO;
    rc =
        rundir_socket_path(&d->rundir, RUNDIR_CONTROL_SOCK, path, sizeof(path));
    if (rc == 0)
        rc = server_new(d->loop, d->cfg, &d->server);
    if (rc == 0) {
        observe_attach(d->obs, d->server);
        rc = control_start(d->loop, path, observe_status, d->obs, &d->control);
    }
    if (rc == 0)
        rc = control_add(d->control, "listeners", daemon_listeners, d);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: control socket %s: %s\n", path,
                gw_strerror(rc));
        return rc;
    }
    rc = daemon_start_backends(d);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: cannot start the SSM backend: %s\n",
                gw_strerror(rc));
        return rc;
    }
    rc = observe_listen(d->obs, d->cfg);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: metrics_listen %s: %s\n",
                d->cfg->metrics_listen, gw_strerror(rc));
        return rc;
    }
    rc = server_listen(d->server);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: cannot listen: %s\n", gw_strerror(rc));
        return rc;
    }
    uv_signal_init(d->loop, &d->sigint);
    uv_signal_init(d->loop, &d->sigterm);
    uv_signal_init(d->loop, &d->sighup);
    d->sigint.data = d->sigterm.data = d->sighup.data = d;
    uv_signal_start(&d->sigint, on_stop_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&d->sighup, on_hup, SIGHUP);
    uv_timer_init(d->loop, &d->rotate_timer);
    d->rotate_timer.data = d;
    daemon_arm_rotation(d);
    uv_timer_init(d->loop, &d->trim_timer);
    d->trim_timer.data = d;
    uv_timer_start(&d->trim_timer, on_trim, DAEMON_TRIM_MS, DAEMON_TRIM_MS);
    uv_unref((uv_handle_t *)&d->trim_timer); /* never keeps the loop alive */
    return 0;
}

/* Every tunnel holds two descriptors (client and WebSocket); the usual
 * soft limit of 1024 would cap the daemon near 500 tunnels. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the open-file limit above %llu",
                 (unsigned long long)was);
}

static int cmd_run(struct daemon *d)
{
    int status = 0;
    raise_fd_limit();
    /* Per-tunnel buffers (windows, socket queues) are large and mostly
     * untouched while a tunnel idles. A fixed mmap threshold keeps them
     * in their own mappings, where untouched pages cost nothing and a
     * closed tunnel's memory goes back at once; glibc would otherwise
     * raise the threshold after the first free and carve them from a
     * heap whose pages are already dirty. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    d->loop = uv_default_loop();
    if (daemon_start(d) != 0) {
        status = 1;
        /* Close whatever started, then fall through to teardown. */
        if (d->server != NULL && !d->stopping) {
            d->stopping = 1;
            server_shutdown(d->server, NULL, NULL);
        }
        agent_stop(d->agent);
        control_stop(d->control);
        observe_stop(d->obs);
        d->agent = NULL;
        d->control = NULL;
        daemon_stop_backends(d);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    ws_ctx_finish(d->ws);
    d->ws = NULL;
    defer_shutdown();
    uv_run(d->loop, UV_RUN_DEFAULT);
    server_free(d->server);
    observe_free(d->obs);
    if (d->keys_ready)
        key_ring_free(&d->keys);
    rundir_close(&d->rundir);
    if (uv_loop_close(d->loop) != 0)
        log_warn("event loop closed with handles still open");
    if (status == 0)
        log_info("stopped");
    return status;
}

int daemon_run(struct config *cfg, const char *config_path,
               const struct config_overrides *ov)
{
    struct daemon d;
    memset(&d, 0, sizeof(d));
    d.rundir.dirfd = -1;
    d.cfg = config_ref(cfg);
    d.config_path = config_path;
    if (ov != NULL)
        d.ov = *ov;
    int status = cmd_run(&d);
    config_unref(d.cfg);
    return status;
}
