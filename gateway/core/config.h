/*
 * config.h - the daemon's configuration: defaults, the INI file, flags.
 *
 * A loaded struct config is immutable and refcounted: a SIGHUP reload
 * builds a new one and swaps it in; live connections keep a reference to
 * the one they started with and drop it when they end.
 *
 * File: $XDG_CONFIG_HOME/ssmgate/config.ini (else ~/.config/ssmgate/
 * config.ini), or --config FILE. No file at the default path is fine
 * (defaults apply); a missing --config file is an error.
 */
#ifndef SSMGATE_CONFIG_H
#define SSMGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define CONFIG_MAX_LISTEN 16
#define CONFIG_NAME_MAX   64
#define CONFIG_ADDR_MAX   80 /* "ADDR:PORT", IPv6 as "[::1]:1080" */
#define CONFIG_PATH_MAX   1024
#define CONFIG_STR_MAX    256

/* A yes/no a section may leave to [gateway]'s. */
enum { CONFIG_UNSET = 0, CONFIG_NO = 1, CONFIG_YES = 2 };

/* One [forward NAME] section: a static local port to one target. */
struct config_forward {
    char name[CONFIG_NAME_MAX];
    char listen[CONFIG_ADDR_MAX];     /* required, e.g. 127.0.0.1:2222 */
    char target[CONFIG_STR_MAX];      /* i-..., mi-... or a Name; or "direct" */
    uint16_t port;                    /* on target, or on remote_host */
    char remote_host[CONFIG_STR_MAX]; /* "" = the target itself */
    char user[CONFIG_NAME_MAX];
    char profile[CONFIG_NAME_MAX];
    char region[CONFIG_NAME_MAX];
    char account[CONFIG_NAME_MAX]; /* an [account] name: its profile etc. */
    int start_stopped;             /* CONFIG_UNSET, CONFIG_NO, CONFIG_YES */
    int sessions_per_target;       /* 0 = [gateway]'s */
};

/* One [route NAME] section: SOCKS hostnames matching a glob go via. */
struct config_route {
    char name[CONFIG_NAME_MAX];
    char match[CONFIG_STR_MAX]; /* fnmatch glob on the hostname */
    char via[CONFIG_STR_MAX];   /* i-..., a Name, or "direct" */
    char user[CONFIG_NAME_MAX];
    char profile[CONFIG_NAME_MAX];
    char region[CONFIG_NAME_MAX];
    char account[CONFIG_NAME_MAX]; /* an [account] name for via */
    int start_stopped;             /* CONFIG_UNSET, CONFIG_NO, CONFIG_YES */
    int sessions_per_target;       /* 0 = [gateway]'s */
};

/*
 * One [account NAME] section: host names ending in suffix (".NAME" by
 * default) are resolved with this profile and region, the suffix taken
 * off (core/account.h has the grammar and the matching).
 */
struct config_account {
    char name[CONFIG_NAME_MAX];
    char suffix[CONFIG_NAME_MAX];  /* ".prod", ".eu.prod"; starts with '.' */
    char user[CONFIG_NAME_MAX];    /* "" = default_user */
    char profile[CONFIG_NAME_MAX]; /* required */
    char region[CONFIG_NAME_MAX];  /* "" = the profile's */
    int start_stopped;             /* CONFIG_UNSET, CONFIG_NO, CONFIG_YES */
};

/* ssh_document: which SSM document carries ssh. */
enum config_ssh_document {
    CONFIG_SSH_DOC_AUTO,         /* port forward; AWS-StartSSHSession on
                                    AccessDenied, remembered */
    CONFIG_SSH_DOC_SSH,          /* AWS-StartSSHSession, one per connection */
    CONFIG_SSH_DOC_PORT_FORWARD, /* AWS-StartPortForwardingSession only */
};

struct config {
    int refs;
    char path[CONFIG_PATH_MAX]; /* "" when running on defaults */

    /* [gateway] */
    char listen[CONFIG_MAX_LISTEN][CONFIG_ADDR_MAX]; /* SOCKS/HTTP ports */
    int n_listen;
    enum log_level log_level;
    char runtime_dir[CONFIG_PATH_MAX];  /* default $XDG_RUNTIME_DIR/ssmgate
                                           else /tmp/ssmgate-<uid> */
    char default_user[CONFIG_NAME_MAX]; /* default "ec2-user" */
    char profile[CONFIG_NAME_MAX];      /* "" = AWS_PROFILE / default */
    char region[CONFIG_NAME_MAX];       /* "" = AWS_REGION / profile */
    char socks_user[CONFIG_NAME_MAX];   /* both set = RFC 1929 required */
    char socks_password[CONFIG_STR_MAX];
    int max_connections;    /* default 1024 */
    int request_timeout_ms; /* idle client before its request: 10000 */
    int connect_timeout_ms; /* backend open: 30000 */
    int drain_timeout_ms;   /* on SIGINT/SIGTERM: 5000 */
    uint16_t ssh_port;      /* default 22 */
    int key_file;           /* write the key in OpenSSH format too */
    int key_rotation_s;     /* default 3600 */
    int resume_budget_ms;   /* default 60000 */
    int message_rate;       /* data messages/s per session: 990; 0 = off */
    int payload_size;       /* bytes per data message: 1024 */
    /* ms a client EOF waits for a quiet far end: 2000; 0 = at once */
    int half_close_linger_ms;
    /* ms after the agent acked a stream's SYN to wait for a refusal
     * before the client hears "open": 100; 0 = at once */
    int open_confirm_ms;
    /* ms an idle session waits for the next connection to its target:
     * 300000; 0 = it ends with its last connection */
    int session_linger_ms;
    /* The document ssh rides on (enum config_ssh_document): auto */
    int ssh_document;
    /* Sessions one target's connections spread over: 4; 1 = one */
    int sessions_per_target;
    /* The HTTPS proxy for AWS traffic (proxy.h): "" = the environment's,
     * "none" = none. May hold credentials: wiped when freed. */
    char https_proxy[CONFIG_STR_MAX];
    /* One JSON line per ended connection; "" = off. An absolute path. */
    char audit_log[CONFIG_PATH_MAX];
    /* GET /metrics (Prometheus text) on ADDR:PORT; "" = off. */
    char metrics_listen[CONFIG_ADDR_MAX];
    /* A connect to a stopped instance starts it (StartInstances) and
     * waits for its agent, up to start_timeout_ms (300000). */
    int start_stopped;
    int start_timeout_ms;

    struct config_forward *forwards;
    int n_forwards;
    struct config_route *routes;
    int n_routes;
    struct config_account *accounts; /* in file order */
    int n_accounts;
};

/* Command-line flags, applied on top of the file. NULL/0 = not given. */
struct config_overrides {
    const char *listen[CONFIG_MAX_LISTEN];
    int n_listen;
    const char *log_level;
    const char *runtime_dir;
};

/*
 * Loads path (NULL = the default path, where a missing file means
 * defaults), applies ov (may be NULL) and returns a config with one ref.
 * On error returns GW_ECONFIG or GW_ENOMEM with a message naming file,
 * line and key in err.
 */
int config_load(const char *path, const struct config_overrides *ov,
                struct config **out, char *err, size_t errlen);
/* The default file path into buf; returns buf. */
const char *config_default_path(char *buf, size_t len);

struct config *config_ref(struct config *cfg);
void config_unref(struct config *cfg);

/* Same as config_load, from text in memory (tests, fuzzing); name is
 * used in error messages. */
int config_load_string(const char *text, size_t len, const char *name,
                       const struct config_overrides *ov, struct config **out,
                       char *err, size_t errlen);

const struct config_forward *config_find_forward(const struct config *cfg,
                                                 const char *name);
const struct config_account *config_find_account(const struct config *cfg,
                                                 const char *name);

/*
 * Who applies a [gateway] key when SIGHUP loads a new config: a column of
 * the directive table in config.c, so every key is placed once.
 */
enum config_apply {
    CONFIG_APPLY_SERVER,  /* server_reload: listeners, routes, limits, auth
                             and timeouts, read by every new conn */
    CONFIG_APPLY_LOG,     /* log_set_level */
    CONFIG_APPLY_SSM,     /* backend_ssm_set_opts: new sessions, and the
                             resume budget of open ones */
    CONFIG_APPLY_KEYS,    /* the rotation timer and the key files */
    CONFIG_APPLY_OBSERVE, /* the audit log file and the metrics listener */
    CONFIG_APPLY_RESTART, /* read once at start-up (the runtime dir, the
                             AWS client's default profile, region, CA
                             bundle and HTTPS proxy): only a restart
                             applies it */
};
#define CONFIG_APPLY_BIT(apply) (1u << (apply))

typedef void config_change_fn(const char *key, enum config_apply apply,
                              void *arg);

/*
 * Compares the [gateway] keys of old and fresh: calls fn (may be NULL)
 * once per key whose value differs, in table order, and returns the OR of
 * their CONFIG_APPLY_BIT()s. [forward], [route] and [account] sections
 * are not compared: server_reload takes them whole.
 */
unsigned config_diff(const struct config *old, const struct config *fresh,
                     config_change_fn *fn, void *arg);

#endif
