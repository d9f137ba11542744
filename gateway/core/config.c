/*
 * config.c - the INI file through inih, driven by one directive table.
 *
 * Each row names a section kind, a key, a parser and where the value goes
 * (an offset into struct config, config_forward or config_route). Loading
 * fills defaults, parses, applies command-line overrides, then validates
 * the whole; any problem is one message "FILE:LINE: [section] key: why".
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "account.h"
#include "common.h"
#include "proxy.h"
#include "secret.h"
#include "target.h"

enum section_kind { SEC_GATEWAY, SEC_FORWARD, SEC_ROUTE, SEC_ACCOUNT };

struct directive;
typedef int parse_fn(const struct directive *d, const char *value, void *dst,
                     const char **why);

struct directive {
    enum section_kind sec;
    const char *key;
    parse_fn *parse;
    size_t offset;
    size_t size;      /* string fields: capacity */
    long min, max;    /* numbers */
    const char *dflt; /* [gateway] defaults; NULL = none */
    enum config_apply apply;
};

static int parse_string(const struct directive *d, const char *v, void *dst,
                        const char **why)
{
    if (strlen(v) >= d->size) {
        *why = "value too long";
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int parse_int(const struct directive *d, const char *v, void *dst,
                     const char **why)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0) {
        *why = "not a whole number";
        return -1;
    }
    if (n < d->min || n > d->max) {
        *why = "out of range";
        return -1;
    }
    *(int *)dst = (int)n;
    return 0;
}

static int parse_port(const struct directive *d, const char *v, void *dst,
                      const char **why)
{
    int n;
    if (parse_int(d, v, &n, why) != 0)
        return -1;
    *(uint16_t *)dst = (uint16_t)n;
    return 0;
}

static int parse_bool(const struct directive *d, const char *v, void *dst,
                      const char **why)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *(int *)dst = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *(int *)dst = 0;
            return 0;
        }
    }
    *why = "expected yes or no";
    return -1;
}

/* A section's yes/no that [gateway] supplies when unset. */
static int parse_yes_no_set(const struct directive *d, const char *v, void *dst,
                            const char **why)
{
    int b;
    if (parse_bool(d, v, &b, why) != 0)
        return -1;
    *(int *)dst = b ? CONFIG_YES : CONFIG_NO;
    return 0;
}

static int parse_level(const struct directive *d, const char *v, void *dst,
                       const char **why)
{
    if (log_level_parse(v, dst) != 0) {
        *why = "expected error, warn, info or debug";
        return -1;
    }
    return 0;
}

static int parse_ssh_document(const struct directive *d, const char *v,
                              void *dst, const char **why)
{
    static const char *const names[] = {
        [CONFIG_SSH_DOC_AUTO] = "auto",
        [CONFIG_SSH_DOC_SSH] = "ssh",
        [CONFIG_SSH_DOC_PORT_FORWARD] = "port-forward",
    };
    (void)d;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(v, names[i]) == 0) {
            *(int *)dst = (int)i;
            return 0;
        }
    *why = "expected auto, ssh or port-forward";
    return -1;
}

/* "ADDR:PORT", "[v6]:PORT"; port 0-65535. */
static int addr_valid(const char *v)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v || colon[1] == '\0')
        return 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return 0;
    if (v[0] == '[')
        return colon[-1] == ']' && colon - v > 2;
    return memchr(v, ':', (size_t)(colon - v)) == NULL;
}

static int parse_addr(const struct directive *d, const char *v, void *dst,
                      const char **why)
{
    if (!addr_valid(v)) {
        *why = "expected ADDR:PORT (IPv6 as [::1]:PORT)";
        return -1;
    }
    return parse_string(d, v, dst, why);
}

/* "" (off) or ADDR:PORT. */
static int parse_addr_or_off(const struct directive *d, const char *v,
                             void *dst, const char **why)
{
    if (v[0] == '\0')
        return parse_string(d, v, dst, why);
    return parse_addr(d, v, dst, why);
}

/* "" (off) or an absolute path: the daemon's working directory is
 * nobody's choice, and a relative file would move with it. */
static int parse_abs_path(const struct directive *d, const char *v, void *dst,
                          const char **why)
{
    if (v[0] != '\0' && v[0] != '/') {
        *why = "expected an absolute path (or nothing: off)";
        return -1;
    }
    return parse_string(d, v, dst, why);
}

static int parse_user(const struct directive *d, const char *v, void *dst,
                      const char **why)
{
    if (!target_user_valid(v, strlen(v))) {
        *why = "not a valid OS user name";
        return -1;
    }
    return parse_string(d, v, dst, why);
}

static int parse_region(const struct directive *d, const char *v, void *dst,
                        const char **why)
{
    if (!target_region_valid(v, strlen(v))) {
        *why = "not a region name (like eu-west-1)";
        return -1;
    }
    return parse_string(d, v, dst, why);
}

static int parse_suffix(const struct directive *d, const char *v, void *dst,
                        const char **why)
{
    if (!account_suffix_valid(v, why))
        return -1;
    return parse_string(d, v, dst, why);
}

/* https_proxy: a proxy URL proxy.c can use, "none", or "" (the env). */
static int parse_proxy(const struct directive *d, const char *v, void *dst,
                       const char **why)
{
    struct proxy p;
    if (v[0] != '\0' && strcmp(v, "none") != 0) {
        int rc = proxy_parse(v, &p, why);
        proxy_wipe(&p);
        if (rc != 0)
            return -1;
    }
    return parse_string(d, v, dst, why);
}

/* listen = A, B (and repeated lines) append to the list. */
static int parse_listen_list(const struct directive *d, const char *v,
                             void *dst, const char **why)
{
    struct config *cfg = dst;
    char tmp[CONFIG_MAX_LISTEN * CONFIG_ADDR_MAX];
    if (strlen(v) >= sizeof(tmp)) {
        *why = "value too long";
        return -1;
    }
    strcpy(tmp, v);
    if (strspn(tmp, " \t,") == strlen(tmp)) {
        *why = "expected ADDR:PORT (IPv6 as [::1]:PORT)";
        return -1;
    }
    char *save = NULL;
    for (char *tok = strtok_r(tmp, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t n = strlen(tok);
        while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            tok[--n] = '\0';
        if (!addr_valid(tok) || n >= CONFIG_ADDR_MAX) {
            *why = "expected ADDR:PORT (IPv6 as [::1]:PORT)";
            return -1;
        }
        if (cfg->n_listen >= CONFIG_MAX_LISTEN) {
            *why = "too many listen addresses";
            return -1;
        }
        strcpy(cfg->listen[cfg->n_listen++], tok);
    }
    return 0;
}

#define DIRECTIVE(sec, type, key, fn, field, min, max, dflt, apply)            \
    {                                                                          \
        sec, key, fn, offsetof(type, field), sizeof(((type *)0)->field), min,  \
            max, dflt, apply                                                   \
    }
#define G(key, fn, field, min, max, dflt, apply)                               \
    DIRECTIVE(SEC_GATEWAY, struct config, key, fn, field, min, max, dflt,      \
              CONFIG_APPLY_##apply)
#define F(key, fn, field)                                                      \
    DIRECTIVE(SEC_FORWARD, struct config_forward, key, fn, field, 1, 65535,    \
              NULL, CONFIG_APPLY_SERVER)
#define R(key, fn, field)                                                      \
    DIRECTIVE(SEC_ROUTE, struct config_route, key, fn, field, 0, 0, NULL,      \
              CONFIG_APPLY_SERVER)
#define A(key, fn, field)                                                      \
    DIRECTIVE(SEC_ACCOUNT, struct config_account, key, fn, field, 0, 0, NULL,  \
              CONFIG_APPLY_SERVER)

/* Who a [forward] or [route] tunnel runs as: the same three keys in both,
 * written out once. */
#define WHO(M)                                                                 \
    M("user", parse_user, user), M("profile", parse_string, profile),          \
        M("region", parse_region, region),                                     \
        M("start_stopped", parse_yes_no_set, start_stopped)

/* The last column says who applies a key on SIGHUP (config.h, enum
 * config_apply); config_diff reads it. */
static const struct directive directives[] = {
    {SEC_GATEWAY, "listen", parse_listen_list, 0, 0, 0, 0, NULL,
     CONFIG_APPLY_SERVER},
    G("log_level", parse_level, log_level, 0, 0, "info", LOG),
    G("runtime_dir", parse_string, runtime_dir, 0, 0, NULL, RESTART),
    G("default_user", parse_user, default_user, 0, 0, "ec2-user", SERVER),
    G("profile", parse_string, profile, 0, 0, "", RESTART),
    G("region", parse_region, region, 0, 0, NULL, RESTART),
    G("socks_user", parse_string, socks_user, 0, 0, "", SERVER),
    G("socks_password", parse_string, socks_password, 0, 0, "", SERVER),
    G("max_connections", parse_int, max_connections, 1, 1000000, "1024",
      SERVER),
    G("request_timeout_ms", parse_int, request_timeout_ms, 100, 3600000,
      "10000", SERVER),
    G("connect_timeout_ms", parse_int, connect_timeout_ms, 100, 3600000,
      "30000", SERVER),
    G("drain_timeout_ms", parse_int, drain_timeout_ms, 0, 3600000, "5000",
      SERVER),
    G("ssh_port", parse_port, ssh_port, 1, 65535, "22", SERVER),
    G("key_file", parse_bool, key_file, 0, 0, "no", KEYS),
    G("key_rotation_s", parse_int, key_rotation_s, 0, 86400 * 30, "3600", KEYS),
    G("resume_budget_ms", parse_int, resume_budget_ms, 0, 86400000, "60000",
      SSM),
    G("message_rate", parse_int, message_rate, 0, 1000000, "990", SSM),
    G("payload_size", parse_int, payload_size, 1, 65536, "1024", SSM),
    G("half_close_linger_ms", parse_int, half_close_linger_ms, 0, 3600000,
      "2000", SSM),
    G("open_confirm_ms", parse_int, open_confirm_ms, 0, 10000, "100", SSM),
    G("session_linger_ms", parse_int, session_linger_ms, 0, 3600000, "300000",
      SSM),
    G("ssh_document", parse_ssh_document, ssh_document, 0, 0, "auto", SSM),
    G("sessions_per_target", parse_int, sessions_per_target, 1, 64, "4", SSM),
    G("https_proxy", parse_proxy, https_proxy, 0, 0, "", RESTART),
    G("audit_log", parse_abs_path, audit_log, 0, 0, "", OBSERVE),
    G("metrics_listen", parse_addr_or_off, metrics_listen, 0, 0, "", OBSERVE),
    G("start_stopped", parse_bool, start_stopped, 0, 0, "no", SERVER),
    G("start_timeout_ms", parse_int, start_timeout_ms, 1000, 3600000, "300000",
      SERVER),
    F("listen", parse_addr, listen),
    F("target", parse_string, target),
    F("port", parse_port, port),
    F("remote_host", parse_string, remote_host),
    WHO(F),
    F("account", parse_string, account),
    DIRECTIVE(SEC_FORWARD, struct config_forward, "sessions_per_target",
              parse_int, sessions_per_target, 1, 64, NULL, CONFIG_APPLY_SERVER),
    R("match", parse_string, match),
    R("via", parse_string, via),
    WHO(R),
    R("account", parse_string, account),
    DIRECTIVE(SEC_ROUTE, struct config_route, "sessions_per_target", parse_int,
              sessions_per_target, 1, 64, NULL, CONFIG_APPLY_SERVER),
    A("suffix", parse_suffix, suffix),
    WHO(A),
};

struct loader {
    struct config *cfg;
    const char *name; /* file name for messages */
    char *err;
    size_t errlen;
    int failed;
    int file_listen; /* the file set listen (replaces the default) */
    enum section_kind sec;
    void *sec_obj; /* current forward/route, or cfg */
    char section[CONFIG_NAME_MAX + 16];
    int line;
    int new_section; /* the reader saw a [header] since the last key */
};

static void loader_error(struct loader *ld, int line, const char *key,
                         const char *why)
{
    if (ld->failed)
        return;
    ld->failed = 1;
    if (line == 0) /* a whole-file check: no single line to name */
        snprintf(ld->err, ld->errlen, "%s: [%s] %s: %s", ld->name, ld->section,
                 key ? key : "-", why);
    else if (key != NULL)
        snprintf(ld->err, ld->errlen, "%s:%d: [%s] %s: %s", ld->name, line,
                 ld->section, key, why);
    else
        snprintf(ld->err, ld->errlen, "%s:%d: [%s]: %s", ld->name, line,
                 ld->section, why);
}

static void *grow(void *arr, int n, size_t size)
{
    void *p = realloc(arr, (size_t)(n + 1) * size);
    if (p != NULL)
        memset((char *)p + (size_t)n * size, 0, size);
    return p;
}

/* [forward], [route] and [account] entries all open with their name. */
_Static_assert(offsetof(struct config_forward, name) == 0, "name first");
_Static_assert(offsetof(struct config_route, name) == 0, "name first");
_Static_assert(offsetof(struct config_account, name) == 0, "name first");

/* The element of arr (n of size bytes, each opening with its name) called
 * name, or NULL. */
static const void *find_named(const void *arr, int n, size_t size,
                              const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp((const char *)arr + (size_t)i * size, name) == 0)
            return (const char *)arr + (size_t)i * size;
    return NULL;
}

/* arr (n elements of size bytes) grown by one zeroed element called name;
 * NULL when out of memory or when name is taken (then with a message). */
static void *add_named(struct loader *ld, int line, void *arr, int n,
                       size_t size, const char *name, const char *dup_why)
{
    if (find_named(arr, n, size, name) != NULL) {
        loader_error(ld, line, NULL, dup_why);
        return NULL;
    }
    char *p = grow(arr, n, size);
    if (p != NULL)
        strcpy(p + (size_t)n * size, name);
    return p;
}

/* "[forward NAME]" -> kind + name; 0 or -1 with a reason. */
static int open_section(struct loader *ld, const char *section, int line)
{
    struct config *cfg = ld->cfg;
    snprintf(ld->section, sizeof(ld->section), "%s", section);
    if (strcmp(section, "gateway") == 0) {
        ld->sec = SEC_GATEWAY;
        ld->sec_obj = cfg;
        return 0;
    }
    const char *name = NULL;
    if (strncmp(section, "forward", 7) == 0 &&
        (section[7] == ' ' || section[7] == '\0')) {
        ld->sec = SEC_FORWARD;
        name = section + 7;
    } else if (strncmp(section, "route", 5) == 0 &&
               (section[5] == ' ' || section[5] == '\0')) {
        ld->sec = SEC_ROUTE;
        name = section + 5;
    } else if (strncmp(section, "account", 7) == 0 &&
               (section[7] == ' ' || section[7] == '\0')) {
        ld->sec = SEC_ACCOUNT;
        name = section + 7;
    } else {
        loader_error(ld, line, NULL,
                     "unknown section (expected gateway, forward NAME, "
                     "route NAME or account NAME)");
        return -1;
    }
    while (*name == ' ')
        name++;
    if (*name == '\0' || strlen(name) >= CONFIG_NAME_MAX ||
        strpbrk(name, " \t\"'[]") != NULL) {
        loader_error(ld, line, NULL, "bad or missing section name");
        return -1;
    }
    /* Each named kind: its array, count and element size. */
    void *arr[] = {NULL, cfg->forwards, cfg->routes, cfg->accounts};
    int *count[] = {NULL, &cfg->n_forwards, &cfg->n_routes, &cfg->n_accounts};
    static const size_t size[] = {0, sizeof(struct config_forward),
                                  sizeof(struct config_route),
                                  sizeof(struct config_account)};
    static const char *const dup[] = {NULL, "duplicate forward name",
                                      "duplicate route name",
                                      "duplicate account name"};
    char *p = add_named(ld, line, arr[ld->sec], *count[ld->sec], size[ld->sec],
                        name, dup[ld->sec]);
    if (p == NULL)
        return -1;
    if (ld->sec == SEC_FORWARD)
        cfg->forwards = (struct config_forward *)(void *)p;
    else if (ld->sec == SEC_ROUTE)
        cfg->routes = (struct config_route *)(void *)p;
    else
        cfg->accounts = (struct config_account *)(void *)p;
    ld->sec_obj = p + (size_t)(*count[ld->sec])++ * size[ld->sec];
    return 0;
}

static int config_ini_line(void *user, const char *section, const char *key,
                           const char *value)
{
    struct loader *ld = user;
    int line = ld->line;
    if (ld->failed)
        return 1;
    if (ld->new_section || strcmp(section, ld->section) != 0 ||
        ld->sec_obj == NULL) {
        ld->new_section = 0;
        if (section[0] == '\0') {
            snprintf(ld->section, sizeof(ld->section), "%s", "");
            loader_error(ld, line, key, "key outside any section");
            return 1;
        }
        if (open_section(ld, section, line) != 0)
            return 1;
    }
    for (size_t i = 0; i < ARRAY_SIZE(directives); i++) {
        const struct directive *d = &directives[i];
        if (d->sec != ld->sec || strcmp(d->key, key) != 0)
            continue;
        const char *why = NULL;
        void *dst = (char *)ld->sec_obj + d->offset;
        if (d->parse == parse_listen_list) {
            if (!ld->file_listen) {
                ld->cfg->n_listen = 0;
                ld->file_listen = 1;
            }
            dst = ld->cfg;
        }
        if (d->parse(d, value, dst, &why) != 0)
            loader_error(ld, line, key, why ? why : "bad value");
        return 1;
    }
    loader_error(ld, line, key, "unknown key");
    return 1;
}

/*
 * The line reader inih calls once per physical line: it counts lines
 * (Debian's inih gives the handler no line numbers) and refuses lines
 * longer than inih's fixed 200-byte buffer instead of letting the rest of
 * the line be parsed as a line of its own.
 */
struct line_source {
    struct loader *ld;
    const char *p, *end; /* memory source */
};

static char *read_line(char *str, int num, void *stream)
{
    struct line_source *src = stream;
    if (src->p >= src->end)
        return NULL;
    const char *nl = memchr(src->p, '\n', (size_t)(src->end - src->p));
    size_t len = nl ? (size_t)(nl - src->p) + 1 : (size_t)(src->end - src->p);
    src->ld->line++;
    if (len >= (size_t)num) {
        snprintf(src->ld->section, sizeof(src->ld->section), "%s",
                 src->ld->section[0] ? src->ld->section : "-");
        loader_error(src->ld, src->ld->line, NULL, "line too long");
        len = 0;
    }
    memcpy(str, src->p, len);
    str[len] = '\0';
    /* A header line, even one repeating the current section's name. */
    const char *t = str + strspn(str, " \t");
    if (*t == '[')
        src->ld->new_section = 1;
    src->p += nl ? (size_t)(nl - src->p) + 1 : (size_t)(src->end - src->p);
    /* NUL bytes would end the line early inside inih: refuse them. */
    if (strlen(str) != len)
        loader_error(src->ld, src->ld->line, NULL, "NUL byte in line");
    return str;
}

static int parse_text(struct loader *ld, const char *text, size_t len)
{
    struct line_source src = {ld, text, text + len};
    return ini_parse_stream(read_line, &src, config_ini_line, ld);
}

static void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->forwards);
    free(cfg->routes);
    free(cfg->accounts);
    /* The SOCKS password and the proxy's credentials are secrets. */
    secret_wipe(cfg->socks_password, sizeof(cfg->socks_password));
    secret_wipe(cfg->https_proxy, sizeof(cfg->https_proxy));
    free(cfg);
}

static void set_defaults(struct config *cfg)
{
    for (size_t i = 0; i < ARRAY_SIZE(directives); i++) {
        const struct directive *d = &directives[i];
        const char *why;
        if (d->sec == SEC_GATEWAY && d->dflt != NULL)
            d->parse(d, d->dflt, (char *)cfg + d->offset, &why);
    }
    strcpy(cfg->listen[0], "127.0.0.1:1080");
    cfg->n_listen = 1;
}

static void default_runtime_dir(char *out, size_t len)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg != NULL && xdg[0] == '/')
        snprintf(out, len, "%s/ssmgate", xdg);
    else
        snprintf(out, len, "/tmp/ssmgate-%u", (unsigned)getuid());
}

/* An [account]'s profile is required; its suffix defaults to ".NAME" and
 * no two suffixes may be the same host-name ending. */
static int validate_accounts(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    for (int i = 0; i < cfg->n_accounts; i++) {
        struct config_account *a = &cfg->accounts[i];
        const char *why = NULL;
        snprintf(ld->section, sizeof(ld->section), "account %s", a->name);
        if (a->profile[0] == '\0') {
            loader_error(ld, 0, "profile", "required key is missing");
            return -1;
        }
        if (a->suffix[0] == '\0') {
            size_t n = strlen(a->name);
            a->suffix[0] = '.';
            memcpy(a->suffix + 1, a->name,
                   n < sizeof(a->suffix) - 2 ? n + 1 : 0);
            if (n >= sizeof(a->suffix) - 2 ||
                !account_suffix_valid(a->suffix, &why)) {
                loader_error(ld, 0, "suffix",
                             "the name does not make a host-name suffix; set "
                             "suffix = .LABEL");
                return -1;
            }
        }
        for (int j = 0; j < i; j++)
            if (strcasecmp(cfg->accounts[j].suffix, a->suffix) == 0) {
                loader_error(ld, 0, "suffix", "another account has it");
                return -1;
            }
    }
    return 0;
}

/* A [forward] or [route] naming an account: it must exist, and it names
 * the profile, so the section may not name one too. */
static int validate_account_ref(struct loader *ld, const char *account,
                                const char *profile)
{
    if (account[0] == '\0')
        return 0;
    if (config_find_account(ld->cfg, account) == NULL) {
        loader_error(ld, 0, "account", "no [account] section has this name");
        return -1;
    }
    if (profile[0] != '\0') {
        loader_error(ld, 0, "profile",
                     "set account or profile, not both (the account names "
                     "its profile)");
        return -1;
    }
    return 0;
}

/* Whole-config checks that no single line can make. */
static int validate(struct loader *ld)
{
    struct config *cfg = ld->cfg;
    if (validate_accounts(ld) != 0)
        return -1;
    for (int i = 0; i < cfg->n_forwards; i++) {
        struct config_forward *f = &cfg->forwards[i];
        const char *missing = f->listen[0] == '\0'   ? "listen"
                              : f->target[0] == '\0' ? "target"
                              : f->port == 0         ? "port"
                                                     : NULL;
        snprintf(ld->section, sizeof(ld->section), "forward %s", f->name);
        if (missing != NULL) {
            loader_error(ld, 0, missing, "required key is missing");
            return -1;
        }
        if (strcmp(f->target, "direct") == 0 && f->remote_host[0] == '\0') {
            loader_error(ld, 0, "remote_host",
                         "target = direct needs remote_host");
            return -1;
        }
        if (validate_account_ref(ld, f->account, f->profile) != 0)
            return -1;
    }
    for (int i = 0; i < cfg->n_routes; i++) {
        struct config_route *r = &cfg->routes[i];
        snprintf(ld->section, sizeof(ld->section), "route %s", r->name);
        const char *missing = r->match[0] == '\0' ? "match"
                              : r->via[0] == '\0' ? "via"
                                                  : NULL;
        if (missing != NULL) {
            loader_error(ld, 0, missing, "required key is missing");
            return -1;
        }
        if (validate_account_ref(ld, r->account, r->profile) != 0)
            return -1;
    }
    if ((cfg->socks_user[0] == '\0') != (cfg->socks_password[0] == '\0')) {
        snprintf(ld->section, sizeof(ld->section), "gateway");
        loader_error(ld, 0, "socks_user",
                     "socks_user and socks_password go together");
        return -1;
    }
    return 0;
}

static int apply_overrides(struct loader *ld, const struct config_overrides *ov)
{
    struct config *cfg = ld->cfg;
    if (ov == NULL)
        return 0;
    snprintf(ld->section, sizeof(ld->section), "command line");
    if (ov->n_listen > 0) {
        cfg->n_listen = 0;
        for (int i = 0; i < ov->n_listen; i++) {
            if (!addr_valid(ov->listen[i]) ||
                strlen(ov->listen[i]) >= CONFIG_ADDR_MAX) {
                snprintf(ld->err, ld->errlen, "--listen %s: expected ADDR:PORT",
                         ov->listen[i]);
                return -1;
            }
            strcpy(cfg->listen[cfg->n_listen++], ov->listen[i]);
        }
    }
    if (ov->log_level != NULL &&
        log_level_parse(ov->log_level, &cfg->log_level) != 0) {
        snprintf(ld->err, ld->errlen,
                 "--log-level %s: expected error, warn, "
                 "info or debug",
                 ov->log_level);
        return -1;
    }
    if (ov->runtime_dir != NULL) {
        if (strlen(ov->runtime_dir) >= sizeof(cfg->runtime_dir)) {
            snprintf(ld->err, ld->errlen, "--runtime-dir: path too long");
            return -1;
        }
        strcpy(cfg->runtime_dir, ov->runtime_dir);
    }
    return 0;
}

/* Shared tail of both loaders; takes ownership of cfg. */
static int finish(struct loader *ld, int ini_rc,
                  const struct config_overrides *ov, struct config **out)
{
    if (ini_rc > 0 && !ld->failed) {
        snprintf(ld->err, ld->errlen,
                 "%s:%d: syntax error (expected "
                 "[section] or key = value)",
                 ld->name, ini_rc);
        ld->failed = 1;
    } else if (ini_rc < 0 && !ld->failed) {
        snprintf(ld->err, ld->errlen, "%s: cannot read", ld->name);
        ld->failed = 1;
    }
    if (!ld->failed && validate(ld) != 0)
        ld->failed = 1;
    if (!ld->failed && apply_overrides(ld, ov) != 0)
        ld->failed = 1;
    if (ld->failed) {
        config_free(ld->cfg);
        return GW_ECONFIG;
    }
    if (ld->cfg->runtime_dir[0] == '\0')
        default_runtime_dir(ld->cfg->runtime_dir, sizeof(ld->cfg->runtime_dir));
    *out = ld->cfg;
    return 0;
}

static int loader_init(struct loader *ld, const char *name, char *err,
                       size_t errlen)
{
    memset(ld, 0, sizeof(*ld));
    ld->cfg = calloc(1, sizeof(*ld->cfg));
    if (ld->cfg == NULL)
        return GW_ENOMEM;
    ld->cfg->refs = 1;
    set_defaults(ld->cfg);
    ld->name = name;
    ld->err = err;
    ld->errlen = errlen;
    err[0] = '\0';
    return 0;
}

const char *config_default_path(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (xdg != NULL && xdg[0] == '/')
        snprintf(buf, len, "%s/ssmgate/config.ini", xdg);
    else if (home != NULL && home[0] != '\0')
        snprintf(buf, len, "%s/.config/ssmgate/config.ini", home);
    else
        snprintf(buf, len, "/etc/ssmgate/config.ini");
    return buf;
}

int config_load(const char *path, const struct config_overrides *ov,
                struct config **out, char *err, size_t errlen)
{
    char dflt[CONFIG_PATH_MAX];
    int explicit = path != NULL;
    if (!explicit)
        path = config_default_path(dflt, sizeof(dflt));
    struct loader ld;
    if (loader_init(&ld, path, err, errlen) != 0)
        return GW_ENOMEM;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (!explicit && errno == ENOENT)
            return finish(&ld, 0, ov, out); /* no file: defaults */
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        config_free(ld.cfg);
        return GW_ECONFIG;
    }
    snprintf(ld.cfg->path, sizeof(ld.cfg->path), "%s", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            char *p =
                cap < (1u << 20) ? realloc(text, cap = cap * 2 + 4096) : NULL;
            if (p == NULL) {
                free(text);
                fclose(f);
                snprintf(err, errlen, "%s: file too large", path);
                config_free(ld.cfg);
                return GW_ECONFIG;
            }
            text = p;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    int rc = parse_text(&ld, text ? text : "", len);
    free(text);
    return finish(&ld, rc, ov, out);
}

int config_load_string(const char *text, size_t len, const char *name,
                       const struct config_overrides *ov, struct config **out,
                       char *err, size_t errlen)
{
    struct loader ld;
    if (loader_init(&ld, name, err, errlen) != 0)
        return GW_ENOMEM;
    return finish(&ld, parse_text(&ld, text, len), ov, out);
}

struct config *config_ref(struct config *cfg)
{
    cfg->refs++;
    return cfg;
}

void config_unref(struct config *cfg)
{
    if (cfg != NULL && --cfg->refs == 0)
        config_free(cfg);
}

const struct config_forward *config_find_forward(const struct config *cfg,
                                                 const char *name)
{
    return find_named(cfg->forwards, cfg->n_forwards, sizeof(*cfg->forwards),
                      name);
}

const struct config_account *config_find_account(const struct config *cfg,
                                                 const char *name)
{
    return find_named(cfg->accounts, cfg->n_accounts, sizeof(*cfg->accounts),
                      name);
}

/* Text fields compare as strings: bytes after the NUL may differ. */
static int is_text(const struct directive *d)
{
    return d->parse == parse_string || d->parse == parse_addr ||
           d->parse == parse_user || d->parse == parse_region ||
           d->parse == parse_suffix || d->parse == parse_proxy ||
           d->parse == parse_addr_or_off || d->parse == parse_abs_path;
}

static int value_changed(const struct directive *d, const struct config *a,
                         const struct config *b)
{
    if (d->parse == parse_listen_list) {
        if (a->n_listen != b->n_listen)
            return 1;
        for (int i = 0; i < a->n_listen; i++)
            if (strcmp(a->listen[i], b->listen[i]) != 0)
                return 1;
        return 0;
    }
    const char *pa = (const char *)a + d->offset;
    const char *pb = (const char *)b + d->offset;
    if (is_text(d))
        return strcmp(pa, pb) != 0;
    return memcmp(pa, pb, d->size) != 0;
}

unsigned config_diff(const struct config *old, const struct config *fresh,
                     config_change_fn *fn, void *arg)
{
    unsigned changed = 0;
    for (size_t i = 0; i < ARRAY_SIZE(directives); i++) {
        const struct directive *d = &directives[i];
        if (d->sec != SEC_GATEWAY || !value_changed(d, old, fresh))
            continue;
        changed |= CONFIG_APPLY_BIT(d->apply);
        if (fn != NULL)
            fn(d->key, d->apply, arg);
    }
    return changed;
}
