/* prom.c - the exposition format's lines; see prom.h. */
#include "prom.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

static void put(struct prom *w, const char *p, size_t n)
{
    if (w->err == 0 && buf_put(w->b, p, n) != 0)
        w->err = GW_ETOO_BIG;
}

static void puts_(struct prom *w, const char *s)
{
    put(w, s, strlen(s));
}

/* s with backslash and newline escaped, and the double quote when in a
 * label value. */
static void put_escaped(struct prom *w, const char *s, int quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            puts_(w, "\\\\");
        else if (*s == '\n')
            puts_(w, "\\n");
        else if (*s == '"' && quote)
            puts_(w, "\\\"");
        else
            put(w, s, 1);
    }
}

void prom_family(struct prom *w, const char *name, const char *type,
                 const char *help)
{
    puts_(w, "# HELP ");
    puts_(w, name);
    puts_(w, " ");
    put_escaped(w, help, 0);
    puts_(w, "\n# TYPE ");
    puts_(w, name);
    puts_(w, " ");
    puts_(w, type);
    puts_(w, "\n");
}

static void put_name(struct prom *w, const char *name,
                     const struct prom_label *l, size_t n)
{
    puts_(w, name);
    for (size_t i = 0; i < n; i++) {
        puts_(w, i == 0 ? "{" : ",");
        puts_(w, l[i].name);
        puts_(w, "=\"");
        put_escaped(w, l[i].value ? l[i].value : "", 1);
        puts_(w, "\"");
    }
    if (n > 0)
        puts_(w, "}");
}

void prom_u64(struct prom *w, const char *name, const struct prom_label *l,
              size_t n, uint64_t value)
{
    char v[32];
    put_name(w, name, l, n);
    snprintf(v, sizeof(v), " %llu\n", (unsigned long long)value);
    puts_(w, v);
}

void prom_double(struct prom *w, const char *name, const struct prom_label *l,
                 size_t n, double value)
{
    char v[48];
    put_name(w, name, l, n);
    snprintf(v, sizeof(v), " %.15g\n", value);
    puts_(w, v);
}
