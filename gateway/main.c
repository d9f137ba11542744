/*
 * main.c - argv, sub-command dispatch, start-up order, signals, teardown.
 *
 * Start-up: config -> runtime dir -> key ring (+ .pub, optional key file)
 * -> agent socket -> control socket -> backends -> listeners. Teardown
 * runs the same list backwards after the loop drained, so LeakSanitizer
 * sees every handle closed and every allocation freed.
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "agent.h"
#include "aws.h"
#include "backend_ssm.h"
#include "cli_aws.h"
#include "cli_proxy.h"
#include "common.h"
#include "config.h"
#include "control.h"
#include "defer.h"
#include "key.h"
#include "keypush.h"
#include "log.h"
#include "rundir.h"
#include "server.h"
#include "sshconfig.h"
#include "ws.h"

struct daemon {
    uv_loop_t *loop;
    struct config *cfg;
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
    uv_timer_t settle; /* lets TerminateSession calls finish at exit */
    uint64_t settle_until;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t rotate_timer;
    int stopping;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ssmgate [COMMAND] [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  run                   run the gateway in the foreground "
            "(default)\n"
            "  ssh-config [--named]  print a ~/.ssh/config block\n"
            "  proxy HOST PORT       stdio ProxyCommand through the running "
            "daemon\n"
            "  status [--json]       list the daemon's live tunnels\n"
            "  aws-call [--profile P] [--region R] SERVICE ACTION [JSON]\n"
            "                        one AWS API call through ssmgate's AWS "
            "layer\n"
            "\n"
            "options:\n"
            "  --config FILE         config file (default "
            "$XDG_CONFIG_HOME/ssmgate/config.ini)\n"
            "  --listen ADDR:PORT    SOCKS/HTTP listener (repeatable)\n"
            "  --log-level LEVEL     error, warn, info or debug\n"
            "  --runtime-dir DIR     directory for the agent and control "
            "sockets\n"
            "  -t                    check the configuration and exit\n"
            "  --version             print the version\n"
            "  --help                this text\n");
}

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

/* ---- the SSM backend ---- */

static void daemon_stop_backends(struct daemon *d)
{
    backend_ssm_free(d->ssm);
    d->ssm = NULL;
    keypush_free(d->keypush);
    d->keypush = NULL;
    aws_client_free(d->aws);
    d->aws = NULL;
    ws_ctx_free(d->ws); /* finished after the loop: ws_ctx_finish */
}

static int daemon_start_backends(struct daemon *d)
{
    struct aws_client_opts ao = {d->cfg->profile, d->cfg->region};
    d->aws = aws_client_new(d->loop, &ao);
    if (d->aws == NULL)
        return GW_ENOMEM;
    int rc =
        ws_ctx_new(d->loop, aws_ca_bundle(d->aws, d->cfg->profile), &d->ws);
    if (rc != 0) {
        fprintf(stderr, "ssmgate: cannot start libwebsockets (is "
                        "libwebsockets-evlib-uv installed?)\n");
        return rc;
    }
    struct keypush_api api = keypush_aws_api(d->aws);
    rc = keypush_new(d->loop, &d->keys, &api, NULL, &d->keypush);
    if (rc != 0)
        return rc;
    char reason[128];
    const char *user = getenv("USER");
    snprintf(reason, sizeof(reason), "ssmgate %s by %s", SSMGATE_VERSION,
             user && user[0] ? user : "unknown user");
    struct backend_ssm_opts so = {
        .message_rate = d->cfg->message_rate,
        .payload_size = d->cfg->payload_size,
        .resume_budget_ms = d->cfg->resume_budget_ms,
        .handshake_timeout_ms = 20000,
        .reason_prefix = reason,
    };
    rc = backend_ssm_new(d->loop, d->aws, d->ws, d->keypush, &so, &d->ssm);
    if (rc == 0)
        server_set_ssm_backend(d->server, backend_ssm_backend(d->ssm));
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
    agent_stop(d->agent);
    d->agent = NULL;
    control_stop(d->control);
    d->control = NULL;
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

static void on_hup(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    char err[512];
    struct config *fresh = NULL;
    (void)signum;
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
    log_set_level(fresh->log_level);
    config_unref(d->cfg);
    d->cfg = fresh;
    log_info("SIGHUP: configuration reloaded");
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
    rc =
        rundir_socket_path(&d->rundir, RUNDIR_CONTROL_SOCK, path, sizeof(path));
    if (rc == 0)
        rc = server_new(d->loop, d->cfg, &d->server);
    if (rc == 0)
        rc = control_start(d->loop, path, server_list, d->server, &d->control);
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
    uint64_t period = (uint64_t)d->cfg->key_rotation_s * 1000;
    if (period > 0)
        uv_timer_start(&d->rotate_timer, on_rotate, period, period);
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
    if (d->keys_ready)
        key_ring_free(&d->keys);
    rundir_close(&d->rundir);
    if (uv_loop_close(d->loop) != 0)
        log_warn("event loop closed with handles still open");
    if (status == 0)
        log_info("stopped");
    return status;
}

/* ---- argv ---- */

enum {
    OPT_CONFIG = 256,
    OPT_LISTEN,
    OPT_LOG_LEVEL,
    OPT_RUNTIME_DIR,
    OPT_VERSION,
    OPT_HELP,
    OPT_NAMED,
    OPT_JSON,
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},
        {"named", no_argument, NULL, OPT_NAMED},
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    struct daemon d;
    memset(&d, 0, sizeof(d));
    d.rundir.dirfd = -1;
    int check_only = 0, named = 0, json = 0, opt;
    const char *command = "run";

    signal(SIGPIPE, SIG_IGN);
    /* aws-call has its own options (the AWS layer's debugging tool). */
    if (argc > 1 && strcmp(argv[1], "aws-call") == 0)
        return cli_aws_call(argc - 1, argv + 1);
    /* The sub-command may come first; options may follow it. */
    if (argc > 1 && argv[1][0] != '-') {
        command = argv[1];
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    while ((opt = getopt_long(argc, argv, "t", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            check_only = 1;
            break;
        case OPT_CONFIG:
            d.config_path = optarg;
            break;
        case OPT_LISTEN:
            if (d.ov.n_listen >= CONFIG_MAX_LISTEN) {
                fprintf(stderr, "ssmgate: at most %d --listen\n",
                        CONFIG_MAX_LISTEN);
                return 2;
            }
            d.ov.listen[d.ov.n_listen++] = optarg;
            break;
        case OPT_LOG_LEVEL: {
            enum log_level level;
            if (log_level_parse(optarg, &level) != 0) {
                fprintf(stderr,
                        "ssmgate: --log-level: '%s' is not one of "
                        "error, warn, info, debug\n",
                        optarg);
                return 2;
            }
            d.ov.log_level = optarg;
            break;
        }
        case OPT_RUNTIME_DIR:
            d.ov.runtime_dir = optarg;
            break;
        case OPT_VERSION:
            printf("ssmgate %s\n", SSMGATE_VERSION);
            return 0;
        case OPT_HELP:
            usage(stdout);
            return 0;
        case OPT_NAMED:
            named = 1;
            break;
        case OPT_JSON:
            json = 1;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    argc -= optind;
    argv += optind;

    char err[512];
    int rc = config_load(d.config_path, &d.ov, &d.cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ssmgate: %s\n", err);
        return 1;
    }
    log_set_level(d.cfg->log_level);
    int status;
    if (check_only) {
        printf("ssmgate: configuration %s is valid\n",
               d.cfg->path[0] ? d.cfg->path : "(defaults)");
        status = 0;
    } else if (strcmp(command, "run") == 0) {
        status = cmd_run(&d);
    } else if (strcmp(command, "ssh-config") == 0) {
        char self[1024];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0)
            self[n] = '\0';
        status = sshconfig_write(stdout, d.cfg, NULL, named) == 0 ? 0 : 1;
        if (n > 0)
            printf("\n# Without nc: replace the ProxyCommand lines with\n"
                   "#   ProxyCommand %s proxy %%r@%%h %%p\n",
                   self);
    } else if (strcmp(command, "proxy") == 0) {
        status = cli_proxy(d.cfg, argc, argv);
    } else if (strcmp(command, "status") == 0) {
        char *args[1] = {"--json"};
        status = cli_status(d.cfg, json ? 1 : 0, args);
    } else {
        fprintf(stderr, "ssmgate: unknown command '%s'\n", command);
        usage(stderr);
        status = 2;
    }
    config_unref(d.cfg);
    return status;
}
