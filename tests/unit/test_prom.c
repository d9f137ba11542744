/* Unit tests for prom.c: the exposition format's lines, escaping, and the
 * bounded buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common.h"
#include "prom.h"

static char text[4096];

static const char *render(struct prom *w)
{
    size_t n = buf_len(w->b);
    memcpy(text, buf_rptr(w->b), n);
    text[n] = '\0';
    return text;
}

static void test_family_and_samples(void **state)
{
    struct buf b;
    assert_int_equal(buf_init(&b, 4096), 0);
    struct prom w = {&b, 0};
    prom_family(&w, "x_total", "counter", "Things.");
    struct prom_label l[2] = {{"action", "StartSession"}, {"code", "ok"}};
    prom_u64(&w, "x_total", l, 2, 18446744073709551615ull);
    prom_u64(&w, "x_total", NULL, 0, 0);
    prom_double(&w, "y", NULL, 0, 0.25);
    assert_int_equal(w.err, 0);
    assert_string_equal(render(&w),
                        "# HELP x_total Things.\n"
                        "# TYPE x_total counter\n"
                        "x_total{action=\"StartSession\",code=\"ok\"} "
                        "18446744073709551615\n"
                        "x_total 0\n"
                        "y 0.25\n");
    buf_free(&b);
}

static void test_escaping(void **state)
{
    struct buf b;
    assert_int_equal(buf_init(&b, 4096), 0);
    struct prom w = {&b, 0};
    prom_family(&w, "z", "gauge", "a \\ b\nc \"q\"");
    struct prom_label l = {"v", "x\"} 1\nfake_metric 9\\"};
    prom_u64(&w, "z", &l, 1, 1);
    /* HELP escapes backslash and newline; a label value also the quote:
     * no value can end its line or its quotes. */
    assert_string_equal(render(&w),
                        "# HELP z a \\\\ b\\nc \"q\"\n"
                        "# TYPE z gauge\n"
                        "z{v=\"x\\\"} 1\\nfake_metric 9\\\\\"} 1\n");
    buf_free(&b);
}

static void test_overflow_is_sticky(void **state)
{
    uint8_t mem[40];
    struct buf b;
    buf_wrap(&b, mem, sizeof(mem));
    struct prom w = {&b, 0};
    prom_family(&w, "a_metric_with_a_long_name", "counter", "Help text.");
    assert_int_equal(w.err, GW_ETOO_BIG);
    size_t len = buf_len(&b);
    prom_u64(&w, "a", NULL, 0, 1);
    assert_int_equal(buf_len(&b), len); /* nothing after the first failure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_overflow_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
