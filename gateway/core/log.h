/*
 * log.h - leveled, printf-checked logging to stderr.
 *
 * A line about one object starts with its id ("conn 12: ..."); callers put
 * it in the format. Secrets (secret keys, session tokens, data channel
 * tokens, private keys, signatures) are never passed to these functions;
 * log_redact() gives a safe stand-in when a line must mention one.
 */
#ifndef SSMGATE_LOG_H
#define SSMGATE_LOG_H

#include <stddef.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns 0 or GW_EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

#define LOG_PRINTF(f, a) __attribute__((format(printf, f, a)))
void log_msg(enum log_level level, const char *func, const char *fmt, ...)
    LOG_PRINTF(3, 4);
/* Same, with ": <gw_strerror(rc)>" appended. */
void log_msg_r(enum log_level level, const char *func, int rc, const char *fmt,
               ...) LOG_PRINTF(4, 5);

#define log_enabled(level) ((level) <= log_get_level())

#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...)                                                         \
    do {                                                                       \
        if (log_enabled(LOG_DEBUG))                                            \
            log_msg(LOG_DEBUG, NULL, __VA_ARGS__);                             \
    } while (0)

/* _f: prefix the function name (for lines a developer reads). */
#define log_error_f(...) log_msg(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn_f(...)  log_msg(LOG_WARN, __func__, __VA_ARGS__)
#define log_debug_f(...)                                                       \
    do {                                                                       \
        if (log_enabled(LOG_DEBUG))                                            \
            log_msg(LOG_DEBUG, __func__, __VA_ARGS__);                         \
    } while (0)

/* _r: append the error's name. */
#define log_error_r(rc, ...) log_msg_r(LOG_ERROR, NULL, rc, __VA_ARGS__)
#define log_warn_r(rc, ...)  log_msg_r(LOG_WARN, NULL, rc, __VA_ARGS__)
#define log_info_r(rc, ...)  log_msg_r(LOG_INFO, NULL, rc, __VA_ARGS__)
#define log_debug_r(rc, ...)                                                   \
    do {                                                                       \
        if (log_enabled(LOG_DEBUG))                                            \
            log_msg_r(LOG_DEBUG, NULL, rc, __VA_ARGS__);                       \
    } while (0)

/*
 * Writes a loggable stand-in for a secret into out: "<redacted N bytes>"
 * plus, for values of 8 bytes or more, the first 4 characters of an access
 * key id style value only when is_key_id is set (AKIA...). Returns out.
 */
const char *log_redact(const char *secret, int is_key_id, char *out,
                       size_t outlen);

#endif
