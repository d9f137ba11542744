/*
 * testutil.h - small helpers shared by unit tests. Header-only and static
 * inline: every tests/unit/test_*.c is an executable of its own.
 */
#ifndef SSMGATE_TESTUTIL_H
#define SSMGATE_TESTUTIL_H

#include <stdio.h>
#include <string.h>

/* Whether the file at path holds exactly text (up to 4 KiB); says what it
 * holds instead on stderr when not. */
static inline int testutil_file_equals(const char *path, const char *text)
{
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strcmp(buf, text) != 0) {
        fprintf(stderr, "%s: got [%s] want [%s]\n", path, buf, text);
        return 0;
    }
    return 1;
}

#endif
