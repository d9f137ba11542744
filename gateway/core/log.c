/*
 * log.c - stderr logging and the error-name table.
 *
 * One line per call, written with a single fputs so lines from one process
 * never interleave mid-line. Timestamps are UTC with milliseconds.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>

#include "common.h"

static enum log_level current_level = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return GW_EINVAL;
}

const char *log_level_name(enum log_level level)
{
    if ((size_t)level < ARRAY_SIZE(level_names))
        return level_names[level];
    return "?";
}

/* fmt is checked at every caller through the LOG_PRINTF attribute. */
static void log_vwrite(enum log_level level, const char *func, int rc,
                       int with_rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void log_vwrite(enum log_level level, const char *func, int rc,
                       int with_rc, const char *fmt, va_list ap)
{
    if (level > current_level)
        return;
    char line[GW_REASON_MAX + 1024]; /* a whole reason plus its context */
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(
        line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s ",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, (int)(tv.tv_usec / 1000), level_names[level]);
    if (func != NULL && n < (int)sizeof(line))
        n += snprintf(line + n, sizeof(line) - n, "%s: ", func);
    if (n < (int)sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (with_rc && n < (int)sizeof(line))
        n += snprintf(line + n, sizeof(line) - n, ": %s", gw_strerror(rc));
    if (n >= (int)sizeof(line) - 1)
        n = sizeof(line) - 2;
    /* Log lines carry outside text; keep each one a single line. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n] = '\n';
    line[n + 1] = '\0';
    fputs(line, stderr);
}

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, func, 0, 0, fmt, ap);
    va_end(ap);
}

void log_msg_r(enum log_level level, const char *func, int rc, const char *fmt,
               ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, func, rc, 1, fmt, ap);
    va_end(ap);
}

const char *log_redact(const char *secret, int is_key_id, char *out,
                       size_t outlen)
{
    size_t len = secret ? strlen(secret) : 0;
    if (is_key_id && len >= 8)
        snprintf(out, outlen, "%.4s…(%zu chars)", secret, len);
    else
        snprintf(out, outlen, "<redacted %zu bytes>", len);
    return out;
}

static const char *const gw_err_names[] = {
#define GW_ERR_NAME(name, msg) msg,
    GW_ERR_MAP(GW_ERR_NAME)
#undef GW_ERR_NAME
};

const char *gw_strerror(int err)
{
    if (err > GW_ERR_BASE_ && err < GW_ERR_END_)
        return gw_err_names[err - GW_ERR_BASE_ - 1];
    if (err < 0 && err > -4096)
        return uv_strerror(err);
    if (err == 0)
        return "success";
    return "unknown error";
}
