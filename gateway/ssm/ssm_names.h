/*
 * ssm_names.h - the Name tag -> instance id cache, pure (clock handed in).
 *
 * A fixed ring of SSM_NAMES_N entries keyed by (name, profile, region);
 * an entry answers for SSM_NAMES_TTL_MS after it was put, and the oldest
 * put is overwritten first.
 */
#ifndef SSMGATE_SSM_NAMES_H
#define SSMGATE_SSM_NAMES_H

#include <stdint.h>

#include "tunnel.h"

#define SSM_NAMES_TTL_MS 30000
#define SSM_NAMES_N      32

struct ssm_names {
    struct ssm_name {
        char name[TUNNEL_TARGET_MAX];
        char profile[TUNNEL_PROFILE_MAX];
        char region[TUNNEL_REGION_MAX];
        char instance[TUNNEL_TARGET_MAX];
        uint64_t until_ms;
    } e[SSM_NAMES_N];
    int next;
};

/* The cached instance id, or NULL (unknown or expired at now_ms). */
const char *ssm_names_get(const struct ssm_names *c, const char *name,
                          const char *profile, const char *region,
                          uint64_t now_ms);
void ssm_names_put(struct ssm_names *c, const char *name, const char *profile,
                   const char *region, const char *instance, uint64_t now_ms);
/* Drops what name resolved to for (profile, region): the instance it named
 * is gone or not connected, so the next connect asks again. */
void ssm_names_forget(struct ssm_names *c, const char *name,
                      const char *profile, const char *region);

#endif
