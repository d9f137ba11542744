/* Unit tests for stats.c: the counters, the API table's bound whatever the
 * service answers, the open-time histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "stats.h"

static const struct stats_api_row *row(const struct stats *st,
                                       const char *action, const char *code)
{
    for (size_t i = 0; i < st->n_api; i++)
        if (strcmp(st->api[i].action, action) == 0 &&
            strcmp(st->api[i].code, code) == 0)
            return &st->api[i];
    return NULL;
}

static void test_null_counts_nothing(void **state)
{
    stats_count(NULL, STATS_WARM_HITS);
    stats_api_call(NULL, "StartSession", "ok");
    stats_tunnel_opened(NULL, 5);
    stats_tunnel_ended(NULL, TUNNEL_OK, 1, 2);
}

static void test_counters_and_tunnels(void **state)
{
    struct stats st;
    memset(&st, 0, sizeof(st));
    stats_count(&st, STATS_WARM_HITS);
    stats_count(&st, STATS_WARM_HITS);
    stats_count(&st, STATS_RESUMES_OK);
    assert_int_equal(st.counter[STATS_WARM_HITS], 2);
    assert_int_equal(st.counter[STATS_RESUMES_OK], 1);
    stats_tunnel_ended(&st, TUNNEL_OK, 10, 20);
    stats_tunnel_ended(&st, TUNNEL_REFUSED, 0, 0);
    stats_tunnel_ended(&st, TUNNEL_OK, 1, 2);
    assert_int_equal(st.tunnels[TUNNEL_OK], 2);
    assert_int_equal(st.tunnels[TUNNEL_REFUSED], 1);
    assert_int_equal(st.bytes_up, 11);
    assert_int_equal(st.bytes_down, 22);
    assert_string_equal(tunnel_outcome_name(TUNNEL_AUTH_FAILED), "auth_failed");
    assert_string_equal(tunnel_outcome_name(TUNNEL_OUTCOME_MAX_), "?");
}

static void test_api_rows(void **state)
{
    struct stats st;
    memset(&st, 0, sizeof(st));
    stats_api_call(&st, "StartSession", "ok");
    stats_api_call(&st, "StartSession", "ok");
    stats_api_call(&st, "StartSession", "ThrottlingException");
    stats_api_call(&st, "DescribeInstances", "InvalidInstanceID.NotFound");
    assert_int_equal(st.n_api, 3);
    assert_int_equal(row(&st, "StartSession", "ok")->n, 2);
    assert_int_equal(row(&st, "StartSession", "ThrottlingException")->n, 1);
    assert_non_null(
        row(&st, "DescribeInstances", "InvalidInstanceID.NotFound"));
    /* What the service sends is not trusted to be a label. */
    stats_api_call(&st, "StartSession", "Bad\"}\ncode");
    stats_api_call(&st, "StartSession", "");
    stats_api_call(&st, "StartSession", NULL);
    assert_int_equal(row(&st, "StartSession", STATS_OTHER)->n, 3);
    char longcode[200];
    memset(longcode, 'A', sizeof(longcode) - 1);
    longcode[sizeof(longcode) - 1] = '\0';
    stats_api_call(&st, "StartSession", longcode);
    assert_int_equal(row(&st, "StartSession", STATS_OTHER)->n, 4);
}

static void test_api_table_is_bounded(void **state)
{
    struct stats st;
    memset(&st, 0, sizeof(st));
    char code[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(code, sizeof(code), "Err%d", i);
        stats_api_call(&st, "StartSession", code);
    }
    assert_int_equal(st.n_api, STATS_API_ROWS);
    /* The last row holds everything past the table; nothing is lost. */
    const struct stats_api_row *other = row(&st, STATS_OTHER, STATS_OTHER);
    assert_non_null(other);
    assert_int_equal(other->n, 1000 - (STATS_API_ROWS - 1));
    uint64_t sum = 0;
    for (size_t i = 0; i < st.n_api; i++)
        sum += st.api[i].n;
    assert_int_equal(sum, 1000);
    /* A pair already in the table still counts in its own row. */
    stats_api_call(&st, "StartSession", "Err3");
    assert_int_equal(row(&st, "StartSession", "Err3")->n, 2);
}

static void test_open_histogram(void **state)
{
    struct stats st;
    memset(&st, 0, sizeof(st));
    const uint64_t *b = stats_open_bounds();
    stats_tunnel_opened(&st, 1);    /* first bucket */
    stats_tunnel_opened(&st, b[0]); /* a bound is inside its bucket */
    stats_tunnel_opened(&st, b[0] + 1);
    stats_tunnel_opened(&st, 999999); /* +Inf */
    assert_int_equal(st.open_bucket[0], 2);
    assert_int_equal(st.open_bucket[1], 1);
    assert_int_equal(st.open_bucket[STATS_OPEN_BUCKETS - 1], 1);
    assert_int_equal(st.open_count, 4);
    assert_int_equal(st.open_ms_sum, 1 + b[0] + b[0] + 1 + 999999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_counts_nothing),
        cmocka_unit_test(test_counters_and_tunnels),
        cmocka_unit_test(test_api_rows),
        cmocka_unit_test(test_api_table_is_bounded),
        cmocka_unit_test(test_open_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
