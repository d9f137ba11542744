/*
 * main.c - argv and sub-command dispatch: the options, the config they
 * select, then one of run (daemon.c), ssh-config, proxy, status or
 * aws-call.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_aws.h"
#include "cli_proxy.h"
#include "cli_status.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "sshconfig.h"

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
            "  status --watch [--interval S] [--count N] [--json]\n"
            "                        a live view, redrawn in place every S "
            "seconds\n"
            "                        (default 1; q or Ctrl-C quits); into a "
            "pipe: a frame\n"
            "                        after another (N of them), or a JSON "
            "document per line\n"
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
            "  --help                this text\n"
            "\n"
            "config keys that show what happened ([gateway]; "
            "config/example.ini):\n"
            "  audit_log = PATH      a JSON line per connection when it "
            "ends\n"
            "  metrics_listen = ADDR:PORT\n"
            "                        Prometheus metrics at "
            "http://ADDR:PORT/metrics\n");
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
    OPT_WATCH,
    OPT_INTERVAL,
    OPT_COUNT,
};

/* --interval S: seconds, fractions allowed, within the live view's range. */
static int parse_interval(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= STATUS_INTERVAL_MIN) ||
        v > STATUS_INTERVAL_MAX) {
        fprintf(stderr,
                "ssmgate: --interval %s: expected seconds from %g to %g\n",
                text, STATUS_INTERVAL_MIN, STATUS_INTERVAL_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_count(const char *text, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 1) {
        fprintf(stderr, "ssmgate: --count %s: expected a whole number >= 1\n",
                text);
        return -1;
    }
    *out = v;
    return 0;
}

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
        {"watch", no_argument, NULL, OPT_WATCH},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"count", required_argument, NULL, OPT_COUNT},
        {NULL, 0, NULL, 0},
    };
    struct config_overrides ov;
    memset(&ov, 0, sizeof(ov));
    struct config *cfg = NULL;
    const char *config_path = NULL;
    int check_only = 0, named = 0, json = 0, watch_opts = 0, opt;
    struct status_opts so = {0, 0, STATUS_INTERVAL_DEFAULT, 0};
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
            config_path = optarg;
            break;
        case OPT_LISTEN:
            if (ov.n_listen >= CONFIG_MAX_LISTEN) {
                fprintf(stderr, "ssmgate: at most %d --listen\n",
                        CONFIG_MAX_LISTEN);
                return 2;
            }
            ov.listen[ov.n_listen++] = optarg;
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
            ov.log_level = optarg;
            break;
        }
        case OPT_RUNTIME_DIR:
            ov.runtime_dir = optarg;
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
        case OPT_WATCH:
            so.watch = 1;
            watch_opts = 1;
            break;
        case OPT_INTERVAL:
            if (parse_interval(optarg, &so.interval_s) != 0)
                return 2;
            watch_opts = 1;
            break;
        case OPT_COUNT:
            if (parse_count(optarg, &so.count) != 0)
                return 2;
            watch_opts = 1;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (watch_opts && (strcmp(command, "status") != 0 || !so.watch)) {
        fprintf(stderr, "ssmgate: --watch, --interval and --count go with "
                        "`ssmgate status --watch`\n");
        return 2;
    }

    char err[512];
    int rc = config_load(config_path, &ov, &cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ssmgate: %s\n", err);
        return 1;
    }
    log_set_level(cfg->log_level);
    int status;
    if (check_only) {
        printf("ssmgate: configuration %s is valid\n",
               cfg->path[0] ? cfg->path : "(defaults)");
        status = 0;
    } else if (strcmp(command, "run") == 0) {
        status = daemon_run(cfg, config_path, &ov);
    } else if (strcmp(command, "ssh-config") == 0) {
        char self[1024];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0)
            self[n] = '\0';
        status = sshconfig_write(stdout, cfg, NULL, named) == 0 ? 0 : 1;
        if (n > 0)
            printf("\n# Without nc: replace the ProxyCommand lines with\n"
                   "#   ProxyCommand %s proxy %%r@%%h %%p\n",
                   self);
    } else if (strcmp(command, "proxy") == 0) {
        status = cli_proxy(cfg, argc, argv);
    } else if (strcmp(command, "status") == 0) {
        so.json = json;
        status = cli_status(cfg, &so);
    } else {
        fprintf(stderr, "ssmgate: unknown command '%s'\n", command);
        usage(stderr);
        status = 2;
    }
    config_unref(cfg);
    return status;
}
