/* Fuzzes endpoint_pick, the reading of the daemon's "listeners" answer
 * (ssmgate proxy and ssh-config dial what it says): whatever the answer,
 * what it picks is a short numeric ADDR:PORT with a real port. */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "endpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
    const char *which[] = {NULL, "ide"};
    for (size_t i = 0; i < ARRAY_SIZE(which); i++) {
        char out[ENDPOINT_MAX];
        memset(out, 'x', sizeof(out));
        if (endpoint_pick(doc, which[i], out, sizeof(out)) != 0)
            continue;
        CHECK(memchr(out, '\0', sizeof(out)) != NULL);
        CHECK(endpoint_port(out) > 0);
        CHECK(strspn(out, "0123456789abcdefABCDEF.:[]") == strlen(out));
    }
    json_decref(doc);
    return 0;
}
