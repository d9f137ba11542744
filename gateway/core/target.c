/*
 * target.c - instance hostnames. Instance ids are lower-case hex as AWS
 * prints them; an upper-case id is not an id (it may still be a Name tag
 * or match a [route]), which keeps the grammar exact.
 */
#include "target.h"

#include <ctype.h>
#include <string.h>

#include "common.h"

static int all_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]) && (p[i] < 'a' || p[i] > 'f'))
            return 0;
    return 1;
}

/* EC2 Instance Connect's InstanceOSUser: starts with a letter or '_',
 * then letters, digits, '@', '.', '_', '-', optionally ending in '$';
 * 1-32 characters. */
int target_user_valid(const char *user, size_t len)
{
    if (len == 0 || len > 32)
        return 0;
    if (!isalpha((unsigned char)user[0]) && user[0] != '_')
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c == '$' && i == len - 1)
            continue;
        if (!isalnum(c) && c != '@' && c != '.' && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

/* Region shape: lower-case words joined by '-', ending in a number:
 * eu-west-1, us-gov-west-1, cn-north-1, us-isob-east-1. */
int target_region_valid(const char *region, size_t len)
{
    if (len < 4 || len >= TARGET_REGION_MAX)
        return 0;
    int parts = 1;
    for (size_t i = 0; i < len; i++) {
        char c = region[i];
        if (c == '-') {
            if (i == 0 || region[i - 1] == '-')
                return 0;
            parts++;
        } else if (!(c >= 'a' && c <= 'z') && !isdigit((unsigned char)c)) {
            return 0;
        }
    }
    size_t last = len;
    while (last > 0 && region[last - 1] != '-')
        last--;
    if (parts < 3 || last == len)
        return 0;
    for (size_t i = last; i < len; i++)
        if (!isdigit((unsigned char)region[i]))
            return 0;
    return 1;
}

int target_parse(const char *name, size_t len, struct target *out,
                 const char **reason)
{
    memset(out, 0, sizeof(*out));
    *reason = NULL;
    if (memchr(name, '\0', len) != NULL) {
        *reason = "NUL byte in host name";
        return GW_EINVAL;
    }
    const char *at = memchr(name, '@', len);
    const char *host = at ? at + 1 : name;
    size_t hlen = len - (size_t)(host - name);
    /* The id: i- + 8 or 17 hex, mi- + 17 hex. */
    size_t idlen = 0;
    if (hlen >= 2 + 8 && memcmp(host, "i-", 2) == 0) {
        size_t n = 0;
        while (2 + n < hlen && host[2 + n] != '.')
            n++;
        if ((n == 8 || n == 17) && all_hex(host + 2, n))
            idlen = 2 + n;
    } else if (hlen >= 3 + 17 && memcmp(host, "mi-", 3) == 0) {
        size_t n = 0;
        while (3 + n < hlen && host[3 + n] != '.')
            n++;
        if (n == 17 && all_hex(host + 3, n)) {
            idlen = 3 + n;
            out->managed = 1;
        }
    }
    if (idlen == 0)
        return GW_ENOT_FOUND;
    memcpy(out->id, host, idlen);
    if (at != NULL) {
        size_t ulen = (size_t)(at - name);
        if (!target_user_valid(name, ulen)) {
            *reason = "bad user name before '@'";
            return GW_EINVAL;
        }
        memcpy(out->user, name, ulen);
    }
    if (idlen < hlen) {
        const char *region = host + idlen + 1;
        size_t rlen = hlen - idlen - 1;
        if (!target_region_valid(region, rlen)) {
            *reason = "bad region after the instance id";
            return GW_EINVAL;
        }
        memcpy(out->region, region, rlen);
    }
    return 0;
}
