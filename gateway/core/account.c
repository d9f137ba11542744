/*
 * account.c - account suffixes. Host names are compared as DNS compares
 * them (ASCII letters without case); a suffix must match at a label
 * boundary, which its leading '.' guarantees.
 */
#include "account.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "target.h"

static int label_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_';
}

int account_suffix_valid(const char *suffix, const char **why)
{
    size_t len = strlen(suffix);
    if (len < 2 || suffix[0] != '.') {
        *why = "a suffix is '.' and a host-name label, e.g. .prod";
        return 0;
    }
    size_t label = 1; /* start of the current label */
    for (size_t i = 1; i <= len; i++) {
        if (i < len && label_char((unsigned char)suffix[i]))
            continue;
        if (i < len && suffix[i] != '.') {
            *why = "a suffix may hold only letters, digits, '-', '_' and "
                   "dots";
            return 0;
        }
        if (i == label) {
            *why = "empty label in the suffix";
            return 0;
        }
        if (i == len && target_region_valid(suffix + label, len - label)) {
            *why = "a suffix may not end in a region name (it would hide "
                   "the i-....REGION form)";
            return 0;
        }
        label = i + 1;
    }
    return 1;
}

const struct config_account *account_match(const struct config *cfg,
                                           const char *host, size_t len,
                                           size_t *rest_len)
{
    const struct config_account *best = NULL;
    size_t best_len = 0;
    for (int i = 0; i < cfg->n_accounts; i++) {
        const struct config_account *a = &cfg->accounts[i];
        size_t n = strlen(a->suffix);
        if (n > len || n <= best_len ||
            strncasecmp(host + len - n, a->suffix, n) != 0)
            continue;
        best = a;
        best_len = n;
    }
    *rest_len = best != NULL ? len - best_len : len;
    return best;
}
