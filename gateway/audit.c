/*
 * audit.c - the audit log's file and its lines.
 *
 * A line is a JSON object built with jansson: every string the client or
 * the service chose (the requested host, a reason quoting an AWS message)
 * is escaped by the encoder, and bytes that are not UTF-8 are written as
 * \xNN text first, so the object always encodes. Fields that do not apply
 * are null, so every line has the same keys. No secret reaches a line:
 * the proxy password, keys and tokens are never in a struct conn_info.
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "log.h"

#define AUDIT_UID_CACHE 16

struct audit_uid {
    long uid;
    char name[64];
};

struct audit {
    int fd;
    char path[CONFIG_PATH_MAX];
    int failing; /* a write failed and was logged; quiet until one works */
    struct audit_uid uids[AUDIT_UID_CACHE];
    size_t n_uids, next_uid;
};

static int open_file(const char *path)
{
    int fd =
        open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    return fd >= 0 ? fd : -errno;
}

int audit_open(const char *path, struct audit **out)
{
    struct audit *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    if (strlen(path) >= sizeof(a->path)) {
        free(a);
        return -ENAMETOOLONG;
    }
    a->fd = open_file(path);
    if (a->fd < 0) {
        int rc = a->fd;
        free(a);
        return rc;
    }
    snprintf(a->path, sizeof(a->path), "%s", path);
    *out = a;
    return 0;
}

int audit_reopen(struct audit *a, const char *path)
{
    if (path == NULL)
        path = a->path;
    if (strlen(path) >= sizeof(a->path))
        return -ENAMETOOLONG;
    int fd = open_file(path);
    if (fd < 0)
        return fd;
    close(a->fd);
    a->fd = fd;
    if (path != a->path)
        snprintf(a->path, sizeof(a->path), "%s", path);
    a->failing = 0;
    return 0;
}

const char *audit_path(const struct audit *a)
{
    return a->path;
}

void audit_close(struct audit *a)
{
    if (a == NULL)
        return;
    close(a->fd);
    free(a);
}

/* ---- the line ---- */

static void iso_time(uint64_t ms, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
}

/* s as a JSON string; "" and NULL are null. Bytes that are not UTF-8
 * (a hostile SOCKS host name) become \xNN text. */
static json_t *str_or_null(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return json_null();
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    size_t n = strlen(s);
    char *safe = malloc(n * 4 + 1), *o = safe;
    if (safe == NULL)
        return json_null();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80)
            *o++ = (char)*p;
        else
            o += sprintf(o, "\\x%02x", *p);
    }
    *o = '\0';
    j = json_string(safe);
    free(safe);
    return j != NULL ? j : json_null();
}

static void set(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v != NULL ? v : json_null());
}

static json_t *int_or_null(uint64_t v, int known)
{
    return known ? json_integer((json_int_t)v) : json_null();
}

char *audit_line(const struct conn_info *t, const struct audit_who *who,
                 const char *local_user)
{
    char now[64], start[64], request[TUNNEL_HOST_MAX + 8];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    iso_time((uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000, now,
             sizeof(now));
    iso_time(t->started_wall_ms, start, sizeof(start));
    request[0] = '\0';
    if (t->request[0] != '\0')
        snprintf(request, sizeof(request), "%s:%u", t->request,
                 t->request_port);
    const char *profile = t->profile[0] ? t->profile : who->default_profile;
    int ssm = t->document[0] != '\0' && strcmp(t->document, "direct") != 0;
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    /* Order: when and how it ended, who, what, where through, how much. */
    set(o, "time", json_string(now));
    set(o, "event", json_string("tunnel"));
    set(o, "conn", json_integer((json_int_t)t->id));
    set(o, "outcome", json_string(tunnel_outcome_name(t->outcome)));
    set(o, "reason", str_or_null(t->reason));
    set(o, "start", json_string(start));
    set(o, "duration_ms", json_integer((json_int_t)t->duration_ms));
    set(o, "open_ms", int_or_null(t->open_ms, t->open_ms != 0));
    set(o, "gateway_user", str_or_null(who->gateway_user));
    set(o, "local_uid",
        int_or_null((uint64_t)t->client_uid, t->client_uid >= 0));
    set(o, "local_user", str_or_null(local_user));
    set(o, "client", str_or_null(t->client));
    set(o, "listener", str_or_null(t->listener));
    set(o, "protocol", str_or_null(t->protocol));
    set(o, "proxy_user", str_or_null(t->proxy_user));
    set(o, "request", str_or_null(request));
    set(o, "target", str_or_null(t->target));
    set(o, "instance", str_or_null(t->stream.instance));
    set(o, "host", str_or_null(t->host));
    set(o, "port", int_or_null(t->port, t->port != 0));
    set(o, "os_user",
        str_or_null(t->kind[0] && !strcmp(t->kind, "ssh") ? t->user : NULL));
    set(o, "kind", str_or_null(t->kind));
    set(o, "document", str_or_null(t->document));
    set(o, "route", str_or_null(t->label));
    set(o, "profile", str_or_null(ssm ? profile : NULL));
    set(o, "region", str_or_null(ssm ? t->region : NULL));
    set(o, "session_id", str_or_null(t->stream.session_id));
    set(o, "joined_session",
        ssm ? json_boolean(t->stream.joined) : json_null());
    set(o, "resumes", int_or_null((uint64_t)t->stream.resumes, ssm));
    set(o, "bytes_up", json_integer((json_int_t)t->bytes_up));
    set(o, "bytes_down", json_integer((json_int_t)t->bytes_down));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (line == NULL) {
        free(text);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

/* The name of uid, remembered: the lookup may ask NSS (files, or a
 * directory service) and happens once per user. */
static const char *uid_name(struct audit *a, long uid)
{
    if (uid < 0)
        return NULL;
    for (size_t i = 0; i < a->n_uids; i++)
        if (a->uids[i].uid == uid)
            return a->uids[i].name[0] ? a->uids[i].name : NULL;
    struct audit_uid *u = &a->uids[a->next_uid];
    a->next_uid = (a->next_uid + 1) % AUDIT_UID_CACHE;
    if (a->n_uids < AUDIT_UID_CACHE)
        a->n_uids++;
    u->uid = uid;
    u->name[0] = '\0';
    struct passwd pw, *res = NULL;
    char buf[2048];
    if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
        snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
    return u->name[0] ? u->name : NULL;
}

void audit_write(struct audit *a, const struct conn_info *t,
                 const struct audit_who *who)
{
    char *line = audit_line(t, who, uid_name(a, t->client_uid));
    if (line == NULL) {
        log_warn("audit log: out of memory for the line of conn %llu",
                 (unsigned long long)t->id);
        return;
    }
    size_t n = strlen(line);
    ssize_t w;
    do
        w = write(a->fd, line, n);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)n) {
        a->failing = 0;
    } else if (!a->failing) {
        a->failing = 1;
        log_warn("audit log %s: %s (conn %llu not recorded; further "
                 "failures are not logged until a write succeeds)",
                 a->path, w < 0 ? strerror(errno) : "short write",
                 (unsigned long long)t->id);
    }
    free(line);
}
