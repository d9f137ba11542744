/*
 * backend_direct.h - the `direct` backend: a plain TCP connection to
 * host:port. Used by `[route] via = direct` and by the tests.
 */
#ifndef SSMGATE_BACKEND_DIRECT_H
#define SSMGATE_BACKEND_DIRECT_H

#include "backend.h"

/* ctx: a struct backend_direct_ctx (connect timeout). */
struct backend_direct_ctx {
    int connect_timeout_ms;
};

extern const struct backend_ops backend_direct_ops;

#endif
