/* stats.c - the counters; the only input that is not ours is an API
 * error code, and it is bounded before it becomes a label. */
#include "stats.h"

#include <string.h>

#include "common.h"

static const uint64_t open_bounds[] = STATS_OPEN_BOUNDS_MS;
_Static_assert(ARRAY_SIZE(open_bounds) + 1 == STATS_OPEN_BUCKETS,
               "one bucket per bound plus +Inf");

void stats_count(struct stats *st, enum stats_counter c)
{
    if (st != NULL && (unsigned)c < STATS_COUNTER_MAX_)
        st->counter[c]++;
}

void stats_dc_rate(struct stats *st, uint64_t per_second)
{
    if (st != NULL && per_second > st->dc_max_per_second)
        st->dc_max_per_second = per_second;
}

/* An identifier as AWS codes are ("ThrottlingException",
 * "InvalidInstanceID.NotFound"); anything else is not a label of ours. */
static int label_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n >= STATS_LABEL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' ||
              ch == ':'))
            return 0;
    }
    return 1;
}

static struct stats_api_row *api_find(struct stats *st, const char *action,
                                      const char *code)
{
    for (size_t i = 0; i < st->n_api; i++) {
        struct stats_api_row *r = &st->api[i];
        if (strcmp(r->action, action) == 0 && strcmp(r->code, code) == 0)
            return r;
    }
    return NULL;
}

void stats_api_call(struct stats *st, const char *action, const char *code)
{
    if (st == NULL)
        return;
    if (!label_ok(action))
        action = STATS_OTHER;
    if (!label_ok(code))
        code = STATS_OTHER;
    struct stats_api_row *r = api_find(st, action, code);
    /* The last row is kept for everything past the table. */
    if (r == NULL && st->n_api >= STATS_API_ROWS - 1) {
        action = code = STATS_OTHER;
        r = api_find(st, action, code);
    }
    if (r == NULL) {
        r = &st->api[st->n_api++];
        memcpy(r->action, action, strlen(action) + 1);
        memcpy(r->code, code, strlen(code) + 1);
    }
    r->n++;
}

void stats_tunnel_opened(struct stats *st, uint64_t ms)
{
    if (st == NULL)
        return;
    size_t i = 0;
    while (i < ARRAY_SIZE(open_bounds) && ms > open_bounds[i])
        i++;
    st->open_bucket[i]++;
    st->open_count++;
    st->open_ms_sum += ms;
}

void stats_tunnel_ended(struct stats *st, enum tunnel_outcome outcome,
                        uint64_t bytes_up, uint64_t bytes_down)
{
    if (st == NULL)
        return;
    if ((unsigned)outcome < TUNNEL_OUTCOME_MAX_)
        st->tunnels[outcome]++;
    st->bytes_up += bytes_up;
    st->bytes_down += bytes_down;
}

const uint64_t *stats_open_bounds(void)
{
    return open_bounds;
}
