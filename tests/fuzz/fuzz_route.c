/* Fuzzes route_resolve against a config with overlapping account
 * suffixes and routes (one naming an account); checks invariants of the
 * spec it gives or the refusal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "common.h"
#include "config.h"
#include "route.h"

static const char conf[] =
    "[gateway]\nprofile = dev\n"
    "[account prod]\nprofile = prod-p\nregion = eu-west-1\nuser = ubuntu\n"
    "[account eu]\nprofile = eu-p\nsuffix = .eu.prod\n"
    "[route db]\nmatch = *.internal\nvia = bastion\n"
    "[route shared]\nmatch = *.shared\nvia = i-0123456789abcdef0\n"
    "account = eu\n"
    "[route out]\nmatch = *.direct\nvia = direct\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config *cfg;
    char err[256], host[TUNNEL_HOST_MAX + 8];
    if (cfg == NULL)
        CHECK(config_load_string(conf, strlen(conf), "fuzz", NULL, &cfg, err,
                                 sizeof(err)) == 0);
    if (size >= sizeof(host))
        size = sizeof(host) - 1;
    memcpy(host, data, size);
    host[size] = '\0';
    struct tunnel_spec s;
    const char *reason = NULL;
    int rc = route_resolve(cfg, host, 22, &s, &reason);
    if (rc != 0) {
        CHECK((rc == GW_EINVAL || rc == GW_ENO_ROUTE) && reason != NULL);
        return 0;
    }
    CHECK(s.port == 22);
    CHECK(s.kind == TUNNEL_DIRECT ? s.host[0] != '\0' : s.target[0] != '\0');
    CHECK(strlen(s.user) < sizeof(s.user) && s.user[0] != '\0');
    /* Whatever resolved, no account suffix is left on the target. */
    size_t rest;
    CHECK(account_match(cfg, s.target, strlen(s.target), &rest) == NULL ||
          s.kind == TUNNEL_DIRECT);
    return 0;
}
