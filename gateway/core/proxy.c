/*
 * proxy.c - the HTTPS proxy decision (see proxy.h). NO_PROXY is matched
 * as curl 7.88 matches it (lib/noproxy.c), so the API calls, which curl
 * makes, and the WebSocket, which libwebsockets makes, take the same way.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "secret.h"

/* Percent-decodes s[0..n) into out (cap bytes); 0 or -1. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = gw_hex_value(s[i + 1]);
            int lo = gw_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int proxy_parse(const char *url, struct proxy *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *s = url;
    const char *scheme_end = strstr(s, "://");
    if (scheme_end != NULL) {
        size_t n = (size_t)(scheme_end - s);
        if (n != 4 || strncasecmp(s, "http", 4) != 0) {
            *why = "only http:// proxies are supported (CONNECT over plain "
                   "TCP; not https:// or socks)";
            return GW_EINVAL;
        }
        s = scheme_end + 3;
    }
    size_t len = strcspn(s, "/?#");
    if (s[len] != '\0' && strcmp(s + len, "/") != 0) {
        *why = "a proxy URL has no path";
        return GW_EINVAL;
    }
    /* user info: everything before the last '@' (a password may hold
     * one; an encoded one is %40) */
    const char *at = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '@')
            at = s + i;
    if (at != NULL) {
        size_t ulen = (size_t)(at - s);
        const char *colon = memchr(s, ':', ulen);
        size_t name_len = colon ? (size_t)(colon - s) : ulen;
        if (pct_decode(s, name_len, out->user, sizeof(out->user)) != 0 ||
            out->user[0] == '\0' || strchr(out->user, ':') != NULL) {
            *why = "bad user name in the proxy URL";
            return GW_EINVAL;
        }
        size_t plen = colon ? ulen - name_len - 1 : 0;
        if (pct_decode(colon ? colon + 1 : "", plen, out->pass,
                       sizeof(out->pass)) != 0 ||
            strlen(out->user) + 1 + strlen(out->pass) >= PROXY_CRED_MAX) {
            proxy_wipe(out);
            *why = "bad or too long (95 bytes) credentials in the proxy URL";
            return GW_EINVAL;
        }
        len -= ulen + 1;
        s = at + 1;
    }
    const char *host = s, *port = NULL;
    size_t hlen;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            *why = "bad IPv6 address in the proxy URL";
            goto fail;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < s + len) {
            if (close[1] != ':') {
                *why = "bad proxy host";
                goto fail;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
        port = colon ? colon + 1 : NULL;
    }
    for (size_t i = 0; i < hlen; i++)
        if (!isalnum((unsigned char)host[i]) && !strchr("-._:", host[i])) {
            *why = "bad proxy host";
            goto fail;
        }
    if (hlen == 0 || hlen >= sizeof(out->host)) {
        *why = "no proxy host, or a too long one";
        goto fail;
    }
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    out->port = PROXY_DEFAULT_PORT;
    if (port != NULL) {
        size_t plen = (size_t)(s + len - port);
        unsigned long v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (!isdigit((unsigned char)port[i]) || i >= 5)
                v = 0x10000;
            else
                v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (plen == 0 || v == 0 || v > 65535) {
            *why = "bad proxy port";
            goto fail;
        }
        out->port = (uint16_t)v;
    }
    out->set = 1;
    return 0;
fail:
    proxy_wipe(out);
    return GW_EINVAL;
}

const char *proxy_getenv(const char *name)
{
    return getenv(name);
}

int proxy_resolve(const char *config_value, proxy_env_fn *env,
                  struct proxy *out, char *err, size_t errlen)
{
    static const char *const vars[] = {"https_proxy", "HTTPS_PROXY",
                                       "all_proxy", "ALL_PROXY"};
    const char *value = NULL, *source = NULL, *why = NULL;
    memset(out, 0, sizeof(*out));
    if (config_value != NULL && config_value[0] != '\0') {
        if (strcmp(config_value, "none") == 0)
            return 0;
        value = config_value;
        source = "https_proxy in [gateway]";
    }
    for (size_t i = 0; value == NULL && i < ARRAY_SIZE(vars); i++) {
        const char *v = env(vars[i]);
        if (v != NULL && v[0] != '\0') {
            value = v;
            source = vars[i];
        }
    }
    if (value == NULL)
        return 0;
    if (proxy_parse(value, out, &why) != 0) {
        snprintf(err, errlen, "%s: %s", source, why);
        return GW_EINVAL;
    }
    out->source = source;
    const char *np = env("no_proxy");
    if (np == NULL || np[0] == '\0')
        np = env("NO_PROXY");
    if (np != NULL && strlen(np) >= sizeof(out->no_proxy)) {
        proxy_wipe(out);
        snprintf(err, errlen, "NO_PROXY: longer than %d bytes",
                 PROXY_NOPROXY_MAX - 1);
        return GW_EINVAL;
    }
    snprintf(out->no_proxy, sizeof(out->no_proxy), "%s", np ? np : "");
    return 0;
}

/* host within token/bits ("10.0.0.0/8", "fd00::/8"); token has no
 * spaces. */
static int cidr_match(const char *token, size_t tlen, const char *host,
                      int family)
{
    char addr[64];
    unsigned char want[16], got[16];
    const char *slash = memchr(token, '/', tlen);
    size_t alen = slash ? (size_t)(slash - token) : tlen;
    int max = family == AF_INET ? 32 : 128;
    long bits = max;
    if (alen == 0 || alen >= sizeof(addr))
        return 0;
    memcpy(addr, token, alen);
    addr[alen] = '\0';
    if (slash != NULL) {
        char *end;
        char num[8];
        size_t nlen = tlen - alen - 1;
        if (nlen == 0 || nlen >= sizeof(num))
            return 0;
        memcpy(num, slash + 1, nlen);
        num[nlen] = '\0';
        bits = strtol(num, &end, 10);
        if (*end != '\0' || bits < 0 || bits > max)
            return 0;
    }
    if (inet_pton(family, addr, want) != 1 || inet_pton(family, host, got) != 1)
        return 0;
    size_t whole = (size_t)bits / 8;
    if (memcmp(want, got, whole) != 0)
        return 0;
    if (bits % 8 == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
    return (want[whole] & mask) == (got[whole] & mask);
}

static int name_match(const char *token, size_t tlen, const char *name,
                      size_t nlen)
{
    if (tlen > 0 && token[0] == '.') /* ".example.com" = "example.com" */
        token++, tlen--;
    if (tlen == 0 || tlen > nlen)
        return 0;
    if (tlen == nlen)
        return strncasecmp(token, name, nlen) == 0;
    return name[nlen - tlen - 1] == '.' &&
           strncasecmp(token, name + nlen - tlen, tlen) == 0;
}

int proxy_bypass(const struct proxy *p, const char *host)
{
    char name[256];
    unsigned char tmp[16];
    if (p == NULL || !p->set)
        return 1;
    /* [v6] as a URL writes it, and a trailing dot, are not the name. */
    size_t nlen = strlen(host);
    if (nlen > 1 && host[0] == '[' && host[nlen - 1] == ']')
        host++, nlen -= 2;
    if (nlen > 0 && host[nlen - 1] == '.')
        nlen--;
    if (nlen >= sizeof(name)) /* no such name: only "*" matches it */
        nlen = 0;
    memcpy(name, host, nlen);
    name[nlen] = '\0';
    int family = inet_pton(AF_INET, name, tmp) == 1    ? AF_INET
                 : inet_pton(AF_INET6, name, tmp) == 1 ? AF_INET6
                                                       : 0;
    const char *s = p->no_proxy;
    while (*s != '\0') {
        while (*s == ',' || *s == ' ' || *s == '\t')
            s++;
        size_t tlen = strcspn(s, ", \t");
        if (tlen == 1 && s[0] == '*')
            return 1;
        if (tlen > 0 && (family != 0 ? cidr_match(s, tlen, name, family)
                                     : name_match(s, tlen, name, nlen)))
            return 1;
        s += tlen;
    }
    return 0;
}

void proxy_display(const struct proxy *p, char *out, size_t len)
{
    int v6 = strchr(p->host, ':') != NULL;
    snprintf(out, len, "http://%s%s%s:%u", v6 ? "[" : "", p->host,
             v6 ? "]" : "", p->port);
}

void proxy_wipe(struct proxy *p)
{
    secret_wipe(p->user, sizeof(p->user));
    secret_wipe(p->pass, sizeof(p->pass));
}
