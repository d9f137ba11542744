/*
 * aws_sigv4.c - SigV4 over OpenSSL HMAC-SHA256.
 *
 * Canonicalisation follows the AWS rules for every service but S3: the
 * path as sent is normalised and encoded once more; the query is split on
 * '&', each name and value form-decoded ('+' is a space, %XX a byte) and
 * re-encoded with the SigV4 rule, then sorted. That query rule is what the
 * Go signer in the Session Manager plugin does for the data channel
 * StreamUrl (raw '+', '/', '=' in cell-number), which MGS accepts.
 */
#include "aws_sigv4.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"

/* A growable string for building canonical text (not on a hot path). */
struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
};

static void sb_add(struct sbuf *s, const char *p, size_t n)
{
    if (s->failed)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *q = realloc(s->p, cap);
        if (q == NULL) {
            s->failed = 1;
            return;
        }
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void sb_str(struct sbuf *s, const char *p)
{
    sb_add(s, p, strlen(p));
}

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

static void sb_encode(struct sbuf *s, const char *src, size_t len,
                      int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            sb_add(s, (const char *)&c, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_add(s, esc, 3);
        }
    }
}

char *aws_uri_encode(const char *src, size_t len, int keep_slash)
{
    struct sbuf s = {0};
    sb_encode(&s, src, len, keep_slash);
    sb_add(&s, "", 0);
    if (s.failed) {
        free(s.p);
        return NULL;
    }
    return s.p;
}

void aws_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    static const char hex[] = "0123456789abcdef";
    SHA256(data, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static int hmac(const void *key, size_t keylen, const void *data, size_t len,
                unsigned char out[32])
{
    unsigned int outlen = 32;
    return HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) == NULL
               ? GW_ECRYPTO
               : 0;
}

/* ---- URL pieces ---- */

struct url_parts {
    char scheme[8];
    char host[256];   /* lower-case, with :port when not the default */
    const char *path; /* points into the URL; "" = "/" */
    size_t path_len;
    const char *query; /* after '?', may be NULL */
    size_t query_len;
};

static int split_url(const char *url, struct url_parts *u)
{
    memset(u, 0, sizeof(*u));
    const char *sep = strstr(url, "://");
    if (sep == NULL || (size_t)(sep - url) >= sizeof(u->scheme))
        return GW_EINVAL;
    for (size_t i = 0; url + i < sep; i++)
        u->scheme[i] = (char)tolower((unsigned char)url[i]);
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?#");
    if (auth_len == 0 || auth_len >= sizeof(u->host))
        return GW_EINVAL;
    if (memchr(auth, '@', auth_len) != NULL)
        return GW_EINVAL; /* no userinfo in AWS endpoints */
    for (size_t i = 0; i < auth_len; i++)
        u->host[i] = (char)tolower((unsigned char)auth[i]);
    /* Drop a default port: the Host header curl/lws send omits it too. */
    char *colon = strrchr(u->host, ':');
    if (colon != NULL && strchr(colon, ']') == NULL) {
        int https =
            strcmp(u->scheme, "https") == 0 || strcmp(u->scheme, "wss") == 0;
        if ((https && strcmp(colon, ":443") == 0) ||
            (!https && strcmp(colon, ":80") == 0))
            *colon = '\0';
    }
    const char *rest = auth + auth_len;
    size_t path_len = strcspn(rest, "?#");
    u->path = rest;
    u->path_len = path_len;
    if (rest[path_len] == '?') {
        u->query = rest + path_len + 1;
        u->query_len = strcspn(u->query, "#");
    }
    return 0;
}

/* Normalises the path (RFC 3986 dot segments, empty segments collapsed)
 * and encodes the URL's already-encoded segments once more (the non-S3
 * rule: a raw '@' becomes %40, an existing %2F becomes %252F). */
static int canonical_path(const char *path, size_t len, struct sbuf *out)
{
    const char *segs[256];
    size_t lens[256];
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && path[i] == '/')
            i++;
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        size_t seglen = i - start;
        if (seglen == 0)
            break;
        if (seglen == 1 && path[start] == '.')
            continue;
        if (seglen == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (n > 0)
                n--;
            continue;
        }
        if (n == (int)ARRAY_SIZE(segs))
            return GW_ETOO_BIG;
        segs[n] = path + start;
        lens[n++] = seglen;
    }
    int trailing = len > 0 && path[len - 1] == '/' && n > 0;
    if (n == 0) {
        sb_str(out, "/");
        return 0;
    }
    for (int k = 0; k < n; k++) {
        sb_str(out, "/");
        sb_encode(out, segs[k], lens[k], 0);
    }
    if (trailing)
        sb_str(out, "/");
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Form-decodes src[0..len) into a malloc'd buffer; *outlen its length. */
static char *form_decode(const char *src, size_t len, size_t *outlen)
{
    char *out = malloc(len + 1);
    size_t n = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '+') {
            out[n++] = ' ';
        } else if (src[i] == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 &&
                   hexval(src[i + 2]) >= 0) {
            out[n++] = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        } else {
            out[n++] = src[i];
        }
    }
    out[n] = '\0';
    *outlen = n;
    return out;
}

struct qparam {
    char *name; /* encoded */
    char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : strcmp(x->value, y->value);
}

static char *encode_decoded(const char *src, size_t len)
{
    size_t dlen;
    char *dec = form_decode(src, len, &dlen);
    if (dec == NULL)
        return NULL;
    char *enc = aws_uri_encode(dec, dlen, 0);
    free(dec);
    return enc;
}

static int canonical_query(const char *q, size_t len, struct sbuf *out)
{
    if (q == NULL || len == 0)
        return 0;
    size_t count = 1;
    for (size_t i = 0; i < len; i++)
        count += q[i] == '&';
    struct qparam *params = calloc(count, sizeof(*params));
    if (params == NULL)
        return GW_ENOMEM;
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i <= len && rc == 0;) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(q + i, '=', end - i);
            size_t nlen = eq ? (size_t)(eq - (q + i)) : end - i;
            params[n].name = encode_decoded(q + i, nlen);
            params[n].value =
                eq ? encode_decoded(eq + 1, (size_t)(q + end - eq - 1))
                   : strdup("");
            if (params[n].name == NULL || params[n].value == NULL)
                rc = GW_ENOMEM;
            n++;
        }
        i = end + 1;
    }
    if (rc == 0) {
        qsort(params, n, sizeof(*params), qparam_cmp);
        for (size_t k = 0; k < n; k++) {
            if (k > 0)
                sb_str(out, "&");
            sb_str(out, params[k].name);
            sb_str(out, "=");
            sb_str(out, params[k].value);
        }
    }
    for (size_t k = 0; k < n; k++) {
        free(params[k].name);
        free(params[k].value);
    }
    free(params);
    return rc;
}

/* ---- headers ---- */

struct chdr {
    char name[64];
    const char *value;
};

static int chdr_cmp(const void *a, const void *b)
{
    return strcmp(((const struct chdr *)a)->name,
                  ((const struct chdr *)b)->name);
}

/* Value with outer whitespace trimmed and inner runs folded to one space. */
static void sb_trimmed(struct sbuf *s, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    int pending_space = 0;
    for (; *v != '\0'; v++) {
        if (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') {
            pending_space = 1;
            continue;
        }
        if (pending_space)
            sb_add(s, " ", 1);
        pending_space = 0;
        sb_add(s, v, 1);
    }
}

int aws_sigv4_sign(const struct aws_sigv4_request *req,
                   const struct aws_sigv4_creds *creds, const char *region,
                   const char *service, time_t now,
                   struct aws_sigv4_result *out, char **canonical_out,
                   char **string_to_sign_out)
{
    struct url_parts u;
    struct sbuf creq = {0}, sts = {0}, signed_names = {0};
    struct chdr *hdrs = NULL;
    int rc = split_url(req->url, &u);
    if (rc != 0)
        return rc;
    if (creds == NULL || creds->access_key_id == NULL ||
        creds->secret_access_key == NULL)
        return GW_EINVAL;

    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm);
    char date[9];
    memcpy(date, out->amz_date, 8);
    date[8] = '\0';
    int with_token = creds->session_token && creds->session_token[0];

    size_t nh = req->n_headers + 3;
    hdrs = calloc(nh, sizeof(*hdrs));
    if (hdrs == NULL)
        return GW_ENOMEM;
    nh = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name;
        size_t len = strlen(name);
        if (len >= sizeof(hdrs[0].name)) {
            rc = GW_EINVAL;
            goto out;
        }
        for (size_t k = 0; k <= len; k++)
            hdrs[nh].name[k] = (char)tolower((unsigned char)name[k]);
        hdrs[nh++].value = req->headers[i].value;
    }
    strcpy(hdrs[nh].name, "host");
    hdrs[nh++].value = u.host;
    strcpy(hdrs[nh].name, "x-amz-date");
    hdrs[nh++].value = out->amz_date;
    if (with_token) {
        strcpy(hdrs[nh].name, "x-amz-security-token");
        hdrs[nh++].value = creds->session_token;
    }
    qsort(hdrs, nh, sizeof(*hdrs), chdr_cmp);

    sb_str(&creq, req->method);
    sb_str(&creq, "\n");
    if ((rc = canonical_path(u.path, u.path_len, &creq)) != 0)
        goto out;
    sb_str(&creq, "\n");
    if ((rc = canonical_query(u.query, u.query_len, &creq)) != 0)
        goto out;
    sb_str(&creq, "\n");
    for (size_t i = 0; i < nh; i++) {
        /* Repeated names join their values with ',' in the given order. */
        if (i > 0 && strcmp(hdrs[i].name, hdrs[i - 1].name) == 0) {
            sb_str(&creq, ",");
        } else {
            if (i > 0)
                sb_str(&creq, "\n");
            sb_str(&creq, hdrs[i].name);
            sb_str(&creq, ":");
            if (signed_names.len > 0)
                sb_str(&signed_names, ";");
            sb_str(&signed_names, hdrs[i].name);
        }
        sb_trimmed(&creq, hdrs[i].value);
    }
    sb_str(&creq, "\n\n");
    sb_str(&creq, signed_names.p ? signed_names.p : "");
    sb_str(&creq, "\n");
    char payload_hash[65];
    aws_sha256_hex(req->body ? req->body : "", req->body ? req->body_len : 0,
                   payload_hash);
    sb_str(&creq, payload_hash);
    if (creq.failed || signed_names.failed) {
        rc = GW_ENOMEM;
        goto out;
    }

    char scope[128];
    snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", date, region,
             service);
    char creq_hash[65];
    aws_sha256_hex(creq.p, creq.len, creq_hash);
    sb_str(&sts, "AWS4-HMAC-SHA256\n");
    sb_str(&sts, out->amz_date);
    sb_str(&sts, "\n");
    sb_str(&sts, scope);
    sb_str(&sts, "\n");
    sb_str(&sts, creq_hash);
    if (sts.failed) {
        rc = GW_ENOMEM;
        goto out;
    }

    /* kSigning = HMAC chain over date, region, service, "aws4_request". */
    unsigned char k[32];
    size_t slen = strlen(creds->secret_access_key);
    char *secret = malloc(slen + 5);
    if (secret == NULL) {
        rc = GW_ENOMEM;
        goto out;
    }
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, creds->secret_access_key, slen + 1);
    rc = hmac(secret, slen + 4, date, 8, k);
    OPENSSL_cleanse(secret, slen + 4);
    free(secret);
    if (rc == 0)
        rc = hmac(k, 32, region, strlen(region), k);
    if (rc == 0)
        rc = hmac(k, 32, service, strlen(service), k);
    if (rc == 0)
        rc = hmac(k, 32, "aws4_request", 12, k);
    unsigned char sig[32];
    if (rc == 0)
        rc = hmac(k, 32, sts.p, sts.len, sig);
    OPENSSL_cleanse(k, sizeof(k));
    if (rc != 0)
        goto out;
    char sighex[65];
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        sighex[2 * i] = hex[sig[i] >> 4];
        sighex[2 * i + 1] = hex[sig[i] & 15];
    }
    sighex[64] = '\0';
    int n = snprintf(out->authorization, sizeof(out->authorization),
                     "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                     "Signature=%s",
                     creds->access_key_id, scope, signed_names.p, sighex);
    if (n < 0 || (size_t)n >= sizeof(out->authorization)) {
        rc = GW_ETOO_BIG;
        goto out;
    }
    if (canonical_out != NULL) {
        *canonical_out = creq.p;
        creq.p = NULL;
    }
    if (string_to_sign_out != NULL) {
        *string_to_sign_out = sts.p;
        sts.p = NULL;
    }
    rc = 0; /* success */
out:
    free(creq.p);
    free(sts.p);
    free(signed_names.p);
    free(hdrs);
    return rc;
}
