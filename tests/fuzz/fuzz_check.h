/*
 * fuzz_check.h - the fuzz targets' shared invariant on parsed text: it
 * ends within its array and holds no control character (it reaches logs
 * and terminals). Aborts otherwise, which is how a target reports.
 */
#ifndef SSMGATE_FUZZ_CHECK_H
#define SSMGATE_FUZZ_CHECK_H

#include <stdlib.h>
#include <string.h>

static inline void check_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n >= cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            abort();
}

#endif
