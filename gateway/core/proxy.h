/*
 * proxy.h - the HTTPS proxy that AWS traffic goes through on networks that
 * reach AWS only that way: which proxy, and which hosts skip it.
 *
 * One decision for both users of the network, so they never disagree: the
 * API calls (aws/http.c, libcurl) and the data channel's WebSocket
 * (ssm/ws.c, libwebsockets), both HTTP CONNECT tunnels to the proxy with
 * TLS to the AWS endpoint inside (verification stays on end to end).
 *
 * Where it comes from, first match wins: `https_proxy = URL` in
 * [gateway] ("none" = no proxy, whatever the environment says); else the
 * environment as curl reads it for https URLs: https_proxy, HTTPS_PROXY,
 * all_proxy, ALL_PROXY. no_proxy / NO_PROXY lists the hosts that go
 * direct, as curl matches them (proxy_bypass). The instance metadata and
 * container credential endpoints never use it (aws_imds.c).
 *
 * Pure: the environment comes in as a function.
 */
#ifndef SSMGATE_PROXY_H
#define SSMGATE_PROXY_H

#include <stddef.h>
#include <stdint.h>

#define PROXY_HOST_MAX     128 /* libwebsockets' proxy address field */
#define PROXY_CRED_MAX     96  /* user:pass, libwebsockets' limit */
#define PROXY_NOPROXY_MAX  1024
#define PROXY_DEFAULT_PORT 1080 /* curl's, for a URL without a port */

struct proxy {
    int set;                   /* 0: every host goes direct */
    char host[PROXY_HOST_MAX]; /* IPv6 without brackets */
    uint16_t port;
    char user[PROXY_CRED_MAX]; /* percent-decoded; "" = no Basic auth */
    char pass[PROXY_CRED_MAX]; /* a secret: wiped by proxy_wipe */
    char no_proxy[PROXY_NOPROXY_MAX];
    const char *source; /* "https_proxy in [gateway]", "HTTPS_PROXY", ... */
};

/* Reads a variable; NULL when unset. */
typedef const char *proxy_env_fn(const char *name);
/* The process environment (getenv). */
const char *proxy_getenv(const char *name);

/*
 * Parses "http://[user[:pass]@]host[:port][/]" (no scheme = http://, as
 * curl reads it) into *out. Only http:// proxies: the data channel's
 * libwebsockets speaks CONNECT over plain TCP. 0 or GW_EINVAL with *why.
 */
int proxy_parse(const char *url, struct proxy *out, const char **why);

/*
 * The proxy for AWS traffic from the config value (NULL or "" = take the
 * environment; "none" = direct) and env. 0 with *out (set = 0 when there
 * is none), or GW_EINVAL with a message naming the setting in err (never
 * the credentials).
 */
int proxy_resolve(const char *config_value, proxy_env_fn *env,
                  struct proxy *out, char *err, size_t errlen);

/* Whether a connection to host must skip the proxy: no proxy set, or the
 * NO_PROXY list matches ("*"; a name and its subdomains, a leading dot
 * ignored; an IP address; an IP/prefix range). */
int proxy_bypass(const struct proxy *p, const char *host);

/* "http://host:port" for logs and curl's CURLOPT_PROXY: no credentials. */
void proxy_display(const struct proxy *p, char *out, size_t len);

void proxy_wipe(struct proxy *p);

#endif
