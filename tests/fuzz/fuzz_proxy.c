/* Fuzzes the HTTPS proxy settings: a proxy URL (the config key or the
 * environment), then a NO_PROXY list and a host matched against it. Input:
 * URL '\n' NO_PROXY '\n' HOST. Checks the invariants of what comes out. */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "proxy.h"

static const char *const *fuzz_env;

static const char *env(const char *name)
{
    for (const char *const *e = fuzz_env; *e != NULL; e += 2)
        if (strcmp(e[0], name) == 0)
            return e[1];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[4096];
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *no_proxy = strchr(text, '\n');
    char *host = no_proxy ? strchr(no_proxy + 1, '\n') : NULL;
    if (no_proxy != NULL)
        *no_proxy++ = '\0';
    if (host != NULL)
        *host++ = '\0';
    const char *vars[] = {"HTTPS_PROXY", text, "NO_PROXY",
                          no_proxy ? no_proxy : "", NULL};
    fuzz_env = vars;
    struct proxy p;
    char err[256], name[PROXY_HOST_MAX + 32];
    int rc = proxy_resolve(NULL, env, &p, err, sizeof(err));
    if (rc != 0) {
        CHECK(rc == GW_EINVAL && (strncmp(err, "HTTPS_PROXY: ", 13) == 0 ||
                                  strncmp(err, "NO_PROXY: ", 10) == 0));
        return 0;
    }
    if (!p.set) {
        CHECK(text[0] == '\0');
        return 0;
    }
    CHECK(p.port != 0 && p.host[0] != '\0');
    CHECK(strlen(p.user) + 1 + strlen(p.pass) < PROXY_CRED_MAX);
    proxy_display(&p, name, sizeof(name));
    CHECK(strncmp(name, "http://", 7) == 0 && strchr(name, '@') == NULL);
    if (host != NULL) {
        int direct = proxy_bypass(&p, host);
        CHECK(direct == 0 || direct == 1);
        if (strcmp(p.no_proxy, "*") == 0)
            CHECK(direct);
    }
    proxy_wipe(&p);
    CHECK(p.pass[0] == '\0');
    return 0;
}
