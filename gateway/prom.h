/*
 * prom.h - the Prometheus text exposition format (version 0.0.4), written
 * into a bounded struct buf. Pure: names, labels and values in, text out.
 *
 * A family is "# HELP" and "# TYPE" lines followed by its samples; label
 * values are escaped (backslash, double quote, newline) and HELP text too
 * (backslash, newline), so no value can break a line or forge a metric.
 * The first write that does not fit sets w->err and every later write is
 * a no-op: check it once at the end.
 */
#ifndef SSMGATE_PROM_H
#define SSMGATE_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct prom {
    struct buf *b;
    int err; /* 0, or GW_ETOO_BIG once something did not fit */
};

struct prom_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*: ours, not escaped */
    const char *value; /* anything */
};

/* type: "counter", "gauge" or "histogram". */
void prom_family(struct prom *w, const char *name, const char *type,
                 const char *help);
void prom_u64(struct prom *w, const char *name, const struct prom_label *l,
              size_t n, uint64_t value);
void prom_double(struct prom *w, const char *name, const struct prom_label *l,
                 size_t n, double value);

#endif
