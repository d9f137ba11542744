/*
 * ssm_names.c - a ring of recent DescribeInstanceInformation answers, so
 * a burst of connections to one Name costs one API call.
 */
#include "ssm_names.h"

#include <stdio.h>
#include <string.h>

static struct ssm_name *find(const struct ssm_names *c, const char *name,
                             const char *profile, const char *region,
                             uint64_t now_ms)
{
    for (int i = 0; i < SSM_NAMES_N; i++) {
        const struct ssm_name *n = &c->e[i];
        if (n->until_ms > now_ms && strcmp(n->name, name) == 0 &&
            strcmp(n->profile, profile) == 0 && strcmp(n->region, region) == 0)
            return (struct ssm_name *)n;
    }
    return NULL;
}

const char *ssm_names_get(const struct ssm_names *c, const char *name,
                          const char *profile, const char *region,
                          uint64_t now_ms)
{
    const struct ssm_name *n = find(c, name, profile, region, now_ms);
    return n != NULL ? n->instance : NULL;
}

void ssm_names_forget(struct ssm_names *c, const char *name,
                      const char *profile, const char *region)
{
    struct ssm_name *n;
    /* until_ms 0 is expired at any time; a put may repeat a name. */
    while ((n = find(c, name, profile, region, 0)) != NULL)
        n->until_ms = 0;
}

void ssm_names_put(struct ssm_names *c, const char *name, const char *profile,
                   const char *region, const char *instance, uint64_t now_ms)
{
    struct ssm_name *n = &c->e[c->next];
    c->next = (c->next + 1) % SSM_NAMES_N;
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->profile, sizeof(n->profile), "%s", profile);
    snprintf(n->region, sizeof(n->region), "%s", region);
    snprintf(n->instance, sizeof(n->instance), "%s", instance);
    n->until_ms = now_ms + SSM_NAMES_TTL_MS;
}
