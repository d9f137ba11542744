/*
 * common.h - the few macros every module uses and the one error list.
 *
 * Functions return 0 or a negative enum gw_err (or a negative libuv error
 * where they wrap libuv directly: both are negative ints and gw_strerror()
 * names either).
 */
#ifndef SSMGATE_COMMON_H
#define SSMGATE_COMMON_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define CONTAINER_OF(ptr, type, field)                                         \
    ((type *)((char *)(ptr)-offsetof(type, field)))

#define GW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GW_MAX(a, b) ((a) > (b) ? (a) : (b))

/* The value of hex digit c, or -1. */
static inline int gw_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Room for one failure reason, carried whole from where it happened (an AWS
 * code and message, a protocol error) to the log line and the client's
 * reply: every buffer a reason passes through has this size, so nothing on
 * the way cuts it. An AWS message is at most 1024 bytes (struct aws_error)
 * plus its code and our prefixes. */
#define GW_REASON_MAX 2048

/* Always on: fires only when our own code is wrong, never on input. */
#define CHECK(expr)                                                            \
    do {                                                                       \
        if (!(expr)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #expr);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define UNREACHABLE() CHECK(!"unreachable")

/*
 * The error list. Values start far below libuv's (which stay above -4096)
 * so a negative int is unambiguous.
 */
#define GW_ERR_MAP(X)                                                          \
    X(NOMEM, "out of memory")                                                  \
    X(INVAL, "invalid argument")                                               \
    X(AGAIN, "try again later")                                                \
    X(NEED_MORE, "need more input")                                            \
    X(TOO_BIG, "input exceeds limit")                                          \
    X(PROTO, "protocol error")                                                 \
    X(NOT_FOUND, "not found")                                                  \
    X(EXISTS, "already exists")                                                \
    X(TIMEOUT, "timed out")                                                    \
    X(CANCELED, "canceled")                                                    \
    X(CLOSED, "closed")                                                        \
    X(IO, "input/output error")                                                \
    X(CONFIG, "configuration error")                                           \
    X(CRYPTO, "cryptographic failure")                                         \
    X(NO_ROUTE, "no route for target")                                         \
    X(REFUSED, "connection refused")                                           \
    X(UNREACHABLE, "host unreachable")                                         \
    X(DENIED, "not allowed")                                                   \
    X(NO_CREDS, "no credentials")                                              \
    X(NO_REGION, "no region")                                                  \
    X(AWS, "AWS API error")                                                    \
    X(UNSUPPORTED, "not supported")                                            \
    X(LIMIT, "limit reached")                                                  \
    X(EXPIRED, "credentials expired")

enum gw_err {
    GW_ERR_BASE_ = -20000,
#define GW_ERR_ENUM(name, msg) GW_E##name,
    GW_ERR_MAP(GW_ERR_ENUM)
#undef GW_ERR_ENUM
        GW_ERR_END_
};

/* Names a negative gw_err or libuv error; never returns NULL. */
const char *gw_strerror(int err);

#endif
