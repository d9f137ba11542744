/* Fuzzes the shared-file parser: the input is split in two at its first
 * NUL-free half and used as both files; lookups must not crash. */
#include <stdint.h>
#include <string.h>

#include "aws_profile.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    size_t half = size / 2;
    struct aws_profiles *p = aws_profiles_load_mem(
        (const char *)data, half, (const char *)data + half, size - half, err,
        sizeof(err));
    if (p == NULL)
        return 0;
    const char *v = aws_profile_get(p, "default", "aws_session_token");
    if (v != NULL)
        CHECK(strlen(v) <= size);
    aws_services_get(p, "local", "ssm", "endpoint_url");
    aws_profiles_free(p);
    return 0;
}
