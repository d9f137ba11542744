/* Fuzzes the instance-name grammar; checks invariants of a parse. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct target t;
    const char *reason;
    int rc = target_parse((const char *)data, size, &t, &reason);
    if (rc == 0) {
        CHECK(strncmp(t.id, "i-", 2) == 0 || strncmp(t.id, "mi-", 3) == 0);
        CHECK(strlen(t.id) == 10 || strlen(t.id) == 19 || strlen(t.id) == 20);
        CHECK(t.user[0] == '\0' || target_user_valid(t.user, strlen(t.user)));
        CHECK(strlen(t.region) < sizeof(t.region));
    } else {
        CHECK(rc == GW_ENOT_FOUND || (rc == GW_EINVAL && reason != NULL));
    }
    return 0;
}
