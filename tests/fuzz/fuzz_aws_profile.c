/*
 * fuzz_aws_profile.c - the AWS shared-file parser on arbitrary bytes.
 *
 * Input: the first byte picks how the rest splits into the config file
 * and the credentials file. Every loaded result is queried for the usual
 * keys and run through endpoint and region resolution with an empty
 * environment; values must be NUL-free strings of the reported length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws_endpoint.h"
#include "aws_profile.h"
#include "common.h"

static const char *no_env(const char *name, void *arg)
{
    (void)name;
    (void)arg;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t rest = size - 1;
    size_t cut = rest * data[0] / 255;
    const char *cfg = (const char *)data + 1;
    const char *cred = cfg + cut;
    struct aws_profiles *p = NULL;
    char err[256];
    int rc =
        aws_profiles_load_mem(cfg, cut, cred, rest - cut, &p, err, sizeof(err));
    if (rc != 0) {
        CHECK(p == NULL);
        CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        return 0;
    }
    static const char *const profiles[] = {"default", "dev", "a b", "x", ""};
    static const char *const keys[] = {"region", "services", "endpoint_url",
                                       "aws_session_token", "k"};
    struct aws_env env = {no_env, NULL};
    for (size_t i = 0; i < ARRAY_SIZE(profiles); i++) {
        (void)aws_profile_exists(p, profiles[i]);
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
            const char *v = aws_profile_get(p, profiles[i], keys[k]);
            if (v)
                CHECK(strlen(v) <= size);
            v = aws_sso_session_get(p, profiles[i], keys[k]);
            if (v)
                CHECK(strlen(v) <= size);
        }
        const char *svc = aws_profile_get(p, profiles[i], "services");
        if (svc)
            (void)aws_services_get(p, svc, "ssm", "endpoint_url");
        char region[64];
        if (aws_resolve_region(&env, NULL, p, profiles[i], region,
                               sizeof(region)) == 0) {
            for (int s = 0; s < AWS_SVC_COUNT_; s++) {
                struct aws_endpoint ep;
                if (aws_endpoint_resolve((enum aws_service)s, region, p,
                                         profiles[i], &env, &ep) == 0)
                    CHECK((ep.url[0] | 0x20) == 'h' && ep.signing_name != NULL);
            }
        }
    }
    aws_profiles_free(p);
    return 0;
}
