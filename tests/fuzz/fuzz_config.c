/* Fuzzes the config loader on arbitrary text: it must load or fail with a
 * message, never crash or leak. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    char err[512];
    int rc = config_load_string((const char *)data, size, "fuzz", NULL, &cfg,
                                err, sizeof(err));
    if (rc == 0) {
        CHECK(cfg->n_listen >= 1 && cfg->n_listen <= CONFIG_MAX_LISTEN);
        config_unref(cfg);
    } else {
        CHECK(err[0] != '\0');
    }
    return 0;
}
