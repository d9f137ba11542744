/*
 * main.c - argv and sub-command dispatch: the options, the config they
 * select, then one of run (daemon.c), ssh-config, proxy, status, ls or
 * aws-call.
 *
 * Options go before or after the command, in any order (`ssmgate --config
 * F proxy HOST PORT` and `ssmgate proxy HOST PORT --config F` are the
 * same): getopt_long in "-" mode hands the words in order, the first word
 * names the command and the rest are its arguments. An option that no
 * command of its kind takes is an error, not silently ignored.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "cli_aws.h"
#include "cli_ls.h"
#include "cli_proxy.h"
#include "cli_status.h"
#include "common.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "sshconfig.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: ssmgate [COMMAND] [OPTIONS] (options before or after COMMAND)\n"
        "\n"
        "commands:\n"
        "  run                   run the gateway in the foreground (default)\n"
        "  ssh-config [--named]  print a ~/.ssh/config block: Host patterns\n"
        "                        for i-*, mi-* and each [account] suffix\n"
        "                        (*.prod); --named adds a Host per ssh\n"
        "                        [forward]\n"
        "  proxy HOST PORT       stdio ProxyCommand through the running "
        "daemon\n"
        "                        (asks it for its port; sends socks_user)\n"
        "  status [--json]       list the daemon's live tunnels and SSM "
        "sessions\n"
        "  status --watch [--interval S] [--count N] [--json]\n"
        "                        a live view, redrawn in place every S "
        "seconds\n"
        "                        (default 1; q or Ctrl-C quits); into a "
        "pipe: a frame\n"
        "                        after another (N of them), or a JSON "
        "document per line\n"
        "  ls [FILTER] [--json]  the instances each profile and region of "
        "the config\n"
        "                        reaches (SSM joined with EC2: id, Name, "
        "ping,\n"
        "                        platform, agent, IP, state, profile, "
        "region);\n"
        "                        FILTER: a glob on Name or id, or "
        "tag:Key=Value;\n"
        "                        a table on a terminal, tab-separated "
        "into a pipe,\n"
        "                        --json: an object per line\n"
        "  aws-call SERVICE ACTION [JSON] [--profile P] [--region R]\n"
        "           [--account NAME] [--repeat N] [--concurrency C]\n"
        "           [--verbose] [--debug]\n"
        "                        one AWS API call through ssmgate's AWS layer\n"
        "\n"
        "host names (SOCKS, HTTP CONNECT, proxy, ssh):\n"
        "  [user@]i-0123...[.REGION]     an instance id\n"
        "  [user@]NAME[.REGION]          an instance Name tag\n"
        "  HOST.SUFFIX                   any of the above, or a [route] "
        "match,\n"
        "                                in the [account] with that suffix\n"
        "                                (web-1.prod, "
        "i-0123....us-west-2.prod)\n"
        "  a [route] glob match          through the route's instance\n"
        "\n"
        "options:\n"
        "  --config FILE         config file (default "
        "$XDG_CONFIG_HOME/ssmgate/config.ini)\n"
        "  --listen ADDR:PORT    SOCKS/HTTP listener (repeatable; port 0 = "
        "any):\n"
        "                        SOCKS5, SOCKS4a, HTTP CONNECT and plain HTTP "
        "proxy\n"
        "                        requests (curl -x, http_proxy=, a browser's "
        "HTTP proxy);\n"
        "                        for proxy and ssh-config: where the daemon "
        "is\n"
        "  --log-level LEVEL     error, warn, info or debug\n"
        "  --runtime-dir DIR     directory for the agent and control sockets\n"
        "  --account NAME        aws-call: the [account]'s profile and region\n"
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
        "http://ADDR:PORT/metrics\n"
        "  start_stopped = yes   start a stopped instance on connect "
        "(also per\n"
        "                        [account], [route], [forward]); "
        "start_timeout_ms\n"
        "                        bounds the wait (default 300000)\n"
        "\n"
        "environment:\n"
        "  HTTPS_PROXY, https_proxy, ALL_PROXY, all_proxy\n"
        "                        the HTTP proxy (http://[user:pass@]host:port) "
        "for\n"
        "                        every AWS API call and data channel; "
        "https_proxy = URL\n"
        "                        (or none) in [gateway] beats them\n"
        "  NO_PROXY, no_proxy    hosts that skip it (as curl matches "
        "them)\n"
        "  AWS_*                 the usual AWS settings (profile, region, "
        "credentials,\n"
        "                        AWS_CA_BUNDLE, endpoints)\n");
}

/* ---- argv ---- */

enum cmd {
    CMD_RUN = 1 << 0,
    CMD_SSH_CONFIG = 1 << 1,
    CMD_PROXY = 1 << 2,
    CMD_STATUS = 1 << 3,
    CMD_AWS = 1 << 4,
    CMD_LS = 1 << 5,
    CMD_ALL = 0x3f,
};

static const struct {
    const char *name;
    enum cmd cmd;
} commands[] = {
    {"run", CMD_RUN},      {"ssh-config", CMD_SSH_CONFIG},
    {"proxy", CMD_PROXY},  {"status", CMD_STATUS},
    {"aws-call", CMD_AWS}, {"ls", CMD_LS},
};

enum {
    OPT_CONFIG = 256,
    OPT_LISTEN,
    OPT_LOG_LEVEL,
    OPT_RUNTIME_DIR,
    OPT_VERSION,
    OPT_HELP,
    OPT_NAMED,
    OPT_JSON,
    OPT_PROFILE,
    OPT_REGION,
    OPT_ACCOUNT,
    OPT_REPEAT,
    OPT_CONCURRENCY,
    OPT_VERBOSE,
    OPT_DEBUG,
    OPT_WATCH,
    OPT_INTERVAL,
    OPT_COUNT,
};

/* Which commands take each option (indexed by OPT_ - OPT_CONFIG; -t is
 * for run). */
static const unsigned option_cmds[] = {
    CMD_ALL,                              /* --config */
    CMD_RUN | CMD_PROXY | CMD_SSH_CONFIG, /* --listen */
    CMD_ALL,                              /* --log-level */
    CMD_ALL,                              /* --runtime-dir */
    CMD_ALL,
    CMD_ALL,
    CMD_SSH_CONFIG,
    CMD_STATUS | CMD_LS, /* --json */
    CMD_AWS,
    CMD_AWS,
    CMD_AWS,
    CMD_AWS,
    CMD_AWS,
    CMD_AWS,
    CMD_AWS,
    CMD_STATUS, /* --watch */
    CMD_STATUS, /* --interval */
    CMD_STATUS, /* --count */
};

static const struct option longopts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"runtime-dir", required_argument, NULL, OPT_RUNTIME_DIR},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {"named", no_argument, NULL, OPT_NAMED},
    {"json", no_argument, NULL, OPT_JSON},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"region", required_argument, NULL, OPT_REGION},
    {"account", required_argument, NULL, OPT_ACCOUNT},
    {"repeat", required_argument, NULL, OPT_REPEAT},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"debug", no_argument, NULL, OPT_DEBUG},
    {"watch", no_argument, NULL, OPT_WATCH},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"count", required_argument, NULL, OPT_COUNT},
    {NULL, 0, NULL, 0},
};

_Static_assert(ARRAY_SIZE(option_cmds) + 1 == ARRAY_SIZE(longopts),
               "one option_cmds row per long option, in OPT_ order");

#define N_OPTS ((int)ARRAY_SIZE(option_cmds))

struct args {
    struct config_overrides ov;
    const char *command;
    const char *pos[8]; /* the command's own words */
    int n_pos;
    int check_only;
    unsigned given;          /* bits of the OPT_ seen, for the check */
    const char *val[N_OPTS]; /* each option's (last) value; "" = a flag */
    struct cli_aws_opts aws;
    struct status_opts status;
};

#define OPT(a, opt) ((a)->val[(opt)-OPT_CONFIG])

/* A word that is not an option: the command, then its arguments. */
static int add_word(struct args *a, const char *w)
{
    if (a->command == NULL)
        a->command = w;
    else if (a->n_pos < (int)ARRAY_SIZE(a->pos))
        a->pos[a->n_pos++] = w;
    else
        return -1;
    return 0;
}

/* --interval S: seconds, fractions allowed, within the live view's range. */
static double parse_interval(const char *v, int *bad)
{
    char *end;
    double s = strtod(v, &end);
    if (end == v || *end != '\0' || !(s >= STATUS_INTERVAL_MIN) ||
        s > STATUS_INTERVAL_MAX) {
        fprintf(stderr,
                "ssmgate: --interval %s: expected seconds from %g to %g\n", v,
                STATUS_INTERVAL_MIN, STATUS_INTERVAL_MAX);
        *bad = 1;
    }
    return s;
}

static long parse_count(const char *opt, const char *v, int *bad)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1 || n > 1000000) {
        fprintf(stderr, "ssmgate: %s: '%s' is not a count 1-1000000\n", opt, v);
        *bad = 1;
    }
    return n;
}

/* The values that need more than keeping: checked and converted. */
static int convert(struct args *a)
{
    int bad = 0;
    enum log_level level;
    const char *v = OPT(a, OPT_LOG_LEVEL);
    if (v != NULL && log_level_parse(v, &level) != 0) {
        fprintf(stderr,
                "ssmgate: --log-level: '%s' is not one of error, warn, info, "
                "debug\n",
                v);
        bad = 1;
    }
    a->ov.log_level = v;
    a->ov.runtime_dir = OPT(a, OPT_RUNTIME_DIR);
    a->aws.profile = OPT(a, OPT_PROFILE);
    a->aws.region = OPT(a, OPT_REGION);
    a->aws.repeat = a->aws.concurrency = 1;
    if ((v = OPT(a, OPT_REPEAT)) != NULL)
        a->aws.repeat = parse_count("--repeat", v, &bad);
    if ((v = OPT(a, OPT_CONCURRENCY)) != NULL)
        a->aws.concurrency = parse_count("--concurrency", v, &bad);
    a->status.json = OPT(a, OPT_JSON) != NULL;
    a->status.watch = OPT(a, OPT_WATCH) != NULL;
    a->status.interval_s = STATUS_INTERVAL_DEFAULT;
    if ((v = OPT(a, OPT_INTERVAL)) != NULL)
        a->status.interval_s = parse_interval(v, &bad);
    if ((v = OPT(a, OPT_COUNT)) != NULL)
        a->status.count = parse_count("--count", v, &bad);
    return bad;
}

/* 0, 1 (stop with status 0: --help, --version) or 2 (usage error). */
static int parse_args(int argc, char **argv, struct args *a)
{
    int opt, bad = 0;
    /* "-": every word in order (opt 1), whatever POSIXLY_CORRECT says. */
    while ((opt = getopt_long(argc, argv, "-t", longopts, NULL)) != -1) {
        if (opt == 1) {
            bad |= add_word(a, optarg) != 0;
        } else if (opt == 't') {
            a->check_only = 1;
        } else if (opt < OPT_CONFIG) {
            bad = 1;
        } else {
            a->given |= 1u << (opt - OPT_CONFIG);
            OPT(a, opt) = optarg != NULL ? optarg : "";
        }
        /* --listen repeats: each one counts. */
        if (opt == OPT_LISTEN && a->ov.n_listen >= CONFIG_MAX_LISTEN) {
            fprintf(stderr, "ssmgate: at most %d --listen\n",
                    CONFIG_MAX_LISTEN);
            return 2;
        }
        if (opt == OPT_LISTEN)
            a->ov.listen[a->ov.n_listen++] = optarg;
    }
    /* Words after "--" are the command's too. */
    for (; optind < argc; optind++)
        bad |= add_word(a, argv[optind]) != 0;
    if (OPT(a, OPT_HELP) != NULL) {
        usage(stdout);
        return 1;
    }
    if (OPT(a, OPT_VERSION) != NULL) {
        printf("ssmgate %s\n", SSMGATE_VERSION);
        return 1;
    }
    bad |= convert(a);
    if (bad) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* The command's bit; 0 (with a message) for an unknown one or an option
 * it does not take. */
static enum cmd check_command(const struct args *a)
{
    const char *name = a->command != NULL ? a->command : "run";
    enum cmd cmd = 0;
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            cmd = commands[i].cmd;
    if (cmd == 0) {
        fprintf(stderr, "ssmgate: unknown command '%s'\n", name);
        return 0;
    }
    for (int i = 0; i < (int)ARRAY_SIZE(option_cmds); i++)
        if ((a->given & (1u << i)) && !(option_cmds[i] & cmd)) {
            fprintf(stderr,
                    "ssmgate %s: --%s is not an option of %s (see "
                    "ssmgate --help)\n",
                    name, longopts[i].name, name);
            return 0;
        }
    if (!a->status.watch &&
        (OPT(a, OPT_INTERVAL) != NULL || OPT(a, OPT_COUNT) != NULL)) {
        fprintf(stderr,
                "ssmgate %s: --interval and --count go with "
                "`ssmgate status --watch`\n",
                name);
        return 0;
    }
    if (a->check_only && cmd != CMD_RUN) {
        fprintf(stderr, "ssmgate %s: -t is for run\n", name);
        return 0;
    }
    int max_pos = cmd == CMD_PROXY ? 2 : cmd == CMD_AWS ? 3 : cmd == CMD_LS;
    if (a->n_pos > max_pos || (cmd == CMD_AWS && a->n_pos < 2)) {
        fprintf(stderr, "ssmgate %s: wrong number of arguments\n", name);
        return 0;
    }
    return cmd;
}

static int run_aws_call(struct args *a, const struct config *cfg)
{
    struct cli_aws_opts o = a->aws;
    o.service = a->pos[0];
    o.action = a->pos[1];
    o.json = a->n_pos > 2 ? a->pos[2] : NULL;
    const char *account = OPT(a, OPT_ACCOUNT);
    if (account != NULL) {
        const struct config_account *acct = config_find_account(cfg, account);
        if (acct == NULL) {
            fprintf(stderr, "ssmgate aws-call: no [account %s] in %s\n",
                    account, cfg->path[0] ? cfg->path : "(defaults)");
            return 2;
        }
        if (o.profile == NULL)
            o.profile = acct->profile;
        if (o.region == NULL && acct->region[0] != '\0')
            o.region = acct->region;
    }
    /* stderr carries the one error line; --verbose / --debug for more. */
    log_set_level(OPT(a, OPT_DEBUG)     ? LOG_DEBUG
                  : OPT(a, OPT_VERBOSE) ? LOG_INFO
                                        : LOG_WARN);
    if (a->ov.log_level != NULL)
        log_set_level(cfg->log_level);
    return cli_aws_call(&o);
}

static int run_ssh_config(const struct args *a, const struct config *cfg)
{
    char self[1024], config_abs[CONFIG_PATH_MAX], rundir_abs[CONFIG_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    struct sshconfig_opts o = {NULL, NULL, NULL,
                               a->ov.n_listen > 0 ? a->ov.listen[0] : NULL,
                               OPT(a, OPT_NAMED) != NULL};
    if (n > 0) {
        self[n] = '\0';
        o.self = self;
    }
    /* The ProxyCommand runs from any directory: absolute paths. */
    const char *path = OPT(a, OPT_CONFIG);
    if (path != NULL)
        o.config_path = realpath(path, config_abs) ? config_abs : path;
    if (a->ov.runtime_dir != NULL)
        o.runtime_dir = realpath(a->ov.runtime_dir, rundir_abs)
                            ? rundir_abs
                            : a->ov.runtime_dir;
    return sshconfig_write(stdout, cfg, &o) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct args a;
    struct config *cfg = NULL;
    memset(&a, 0, sizeof(a));
    signal(SIGPIPE, SIG_IGN);
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    enum cmd cmd = check_command(&a);
    if (cmd == 0)
        return 2;

    char err[512];
    const char *config_path = OPT(&a, OPT_CONFIG);
    rc = config_load(config_path, &a.ov, &cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ssmgate: %s\n", err);
        return 1;
    }
    if (cmd != CMD_AWS)
        log_set_level(cfg->log_level);
    int status;
    if (a.check_only) {
        printf("ssmgate: configuration %s is valid\n",
               cfg->path[0] ? cfg->path : "(defaults)");
        status = 0;
    } else if (cmd == CMD_RUN) {
        status = daemon_run(cfg, config_path, &a.ov);
    } else if (cmd == CMD_SSH_CONFIG) {
        status = run_ssh_config(&a, cfg);
    } else if (cmd == CMD_PROXY) {
        status = cli_proxy(cfg, a.ov.n_listen == 0, a.n_pos, (char **)a.pos);
    } else if (cmd == CMD_STATUS) {
        status = cli_status(cfg, &a.status);
    } else if (cmd == CMD_LS) {
        /* stderr carries the sources' errors; --log-level for more. */
        if (a.ov.log_level == NULL)
            log_set_level(LOG_WARN);
        struct ls_opts lo = {a.status.json, a.n_pos > 0 ? a.pos[0] : NULL};
        status = cli_ls(cfg, &lo);
    } else {
        status = run_aws_call(&a, cfg);
    }
    config_unref(cfg);
    return status;
}
