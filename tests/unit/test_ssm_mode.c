/* Unit tests for ssm_mode.c: the agent versions around each threshold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ssm_mode.h"

static const char PORT[] = "LocalPortForwarding";

static const struct {
    const char *type, *version;
    int mux, basic, keepalive, terminate_flag;
} cases[] = {
    /* basic up to 3.0.196.0, smux above */
    {PORT, "3.0.195.0", 0, 1, 0, 1},
    {PORT, "3.0.196.0", 0, 1, 0, 1},
    {PORT, "3.0.196.1", 1, 0, 1, 1},
    {PORT, "3.0.197.0", 1, 0, 1, 1},
    /* NOPs up to 3.1.1511.0 */
    {PORT, "3.1.1510.0", 1, 0, 1, 1},
    {PORT, "3.1.1511.0", 1, 0, 1, 1},
    {PORT, "3.1.1511.1", 1, 0, 0, 1},
    {PORT, "3.1.1512.0", 1, 0, 0, 1},
    {PORT, "3.3.2299.0", 1, 0, 0, 1},
    /* basic agents up to 2.3.722.0 do not know the TerminateSession flag */
    {PORT, "2.3.721.0", 0, 1, 0, 0},
    {PORT, "2.3.722.0", 0, 1, 0, 0},
    {PORT, "2.3.722.1", 0, 1, 0, 1},
    {PORT, "2.3.723.0", 0, 1, 0, 1},
    /* fewer or more parts */
    {PORT, "3.0.196", 0, 1, 0, 1},
    {PORT, "3.1", 1, 0, 1, 1},
    {PORT, "3.1.1511.0.1", 1, 0, 0, 1},
    {PORT, "4", 1, 0, 0, 1},
    /* malformed: a part that is no number compares as older than anything
     * from there on ("3.x" is still newer than 2.3.722.0) */
    {PORT, "", 0, 1, 0, 0},
    {PORT, "x", 0, 1, 0, 0},
    {PORT, "3.x", 0, 1, 0, 1},
    {PORT, "3.1.x", 1, 0, 1, 1},
    /* not a port forward: a plain stream */
    {"Standard_Stream", "3.0.195.0", 0, 0, 0, 1},
    {"Standard_Stream", "3.3.2299.0", 0, 0, 0, 1},
    {"", "3.1.1511.0", 0, 0, 0, 1},
    {"localportforwarding", "3.1.1511.0", 0, 0, 0, 1},
};

static void test_thresholds(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ssm_mode m;
        ssm_mode_for(cases[i].type, cases[i].version, &m);
        print_message("%s %s\n", cases[i].type, cases[i].version);
        assert_int_equal(m.mux, cases[i].mux);
        assert_int_equal(m.basic, cases[i].basic);
        assert_int_equal(m.keepalive, cases[i].keepalive);
        assert_int_equal(m.terminate_flag, cases[i].terminate_flag);
    }
}

static void test_names(void **state)
{
    (void)state;
    struct ssm_mode m = SSM_MODE_INIT;
    assert_string_equal(ssm_mode_name(&m), "stream");
    assert_int_equal(m.terminate_flag, 1);
    ssm_mode_for(PORT, "3.0.196.0", &m);
    assert_string_equal(ssm_mode_name(&m), "basic");
    ssm_mode_for(PORT, "3.0.196.1", &m);
    assert_string_equal(ssm_mode_name(&m), "smux");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thresholds),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
