/*
 * aws_sigv4.c - AWS Signature Version 4 (header form), pure.
 *
 * Model: a request is parsed from its URL into host/path/query views, the
 * six-part canonical request is written into one growing string, hashed,
 * wrapped in the string to sign and HMACed with the day's signing key.
 * Nothing here logs; secrets stay in the caller's memory and in the
 * per-thread signing-key cache below.
 *
 * Path canonicalisation has two flavours (see enum aws_sigv4_path_mode):
 *  - normalize (botocore SigV4Auth): RFC 3986 remove-dot-segments, empty
 *    segments collapsed, then UriEncode keeping '/'. Used for the API
 *    calls, whose path is always "/" anyway.
 *  - as is (Go SDK v2 signer, used by session-manager-plugin for the data
 *    channel): the path exactly as it appears in the URL, UriEncoded
 *    keeping '/'. MGS accepts what the official plugin sends, so the
 *    ssmmessages StreamUrl GET is signed this way (the default for service
 *    "ssmmessages"). For real StreamUrls ("/v1/data-channel/<session-id>")
 *    both flavours give the same string; they differ only for "//", "."
 *    and ".." segments.
 * Both double-encode an existing %XX ('%' becomes %25), as non-S3 SigV4
 * requires.
 *
 * Query canonicalisation is the Go signer's (ssm-data-channel.md 2.2 item
 * 5): split on '&', skip empty pairs, form-decode ('+' is space, %XX a
 * byte; a malformed escape stays literal, as Python's unquote does),
 * UriEncode name and value, sort by encoded name then value, join. For an
 * already canonical query this equals botocore's; for the raw StreamUrl
 * "cell-number=ab+c/d==" it gives "cell-number=ab%20c%2Fd%3D%3D".
 * Two deliberate choices where Go and botocore differ: pairs are sorted
 * by the ENCODED name (the SigV4 spec and botocore; Go sorts raw names),
 * and pairs containing ';' are kept (Python; Go drops them). Neither
 * occurs in a StreamUrl.
 */
#include "aws_sigv4.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "common.h"

static const char EMPTY_SHA256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* A growing NUL-terminated string; err latches the first failure. */
struct sb {
    char *s;
    size_t len;
    size_t cap;
    int err;
};

static void sb_add(struct sb *b, const char *p, size_t n)
{
    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->err = GW_ENOMEM;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_chr(struct sb *b, char c)
{
    sb_add(b, &c, 1);
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

static void sb_uri_encode(struct sb *b, const char *src, size_t len,
                          int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            sb_chr(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_add(b, e, 3);
        }
    }
}

char *aws_uri_encode(const char *src, size_t len, int keep_slash)
{
    struct sb b = {0};
    sb_add(&b, "", 0);
    sb_uri_encode(&b, src, len, keep_slash);
    if (b.err) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void aws_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data ? data : (const void *)"", len, md);
    hex_encode(md, sizeof(md), out);
}

static int hmac(const void *key, size_t keylen, const void *data, size_t len,
                unsigned char out[32])
{
    unsigned int outlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) ||
        outlen != 32)
        return GW_ECRYPTO;
    return 0;
}

/*
 * kSigning depends only on (secret, day, region, service): keep the last
 * one per thread. The secret itself is not stored, only its SHA-256.
 */
struct key_cache {
    int valid;
    unsigned char secret_hash[32];
    char date[9];
    char region[64];
    char service[64];
    unsigned char key[32];
};
static _Thread_local struct key_cache key_cache;

int aws_sigv4_signing_key(const char *secret, const char *date8,
                          const char *region, const char *service,
                          unsigned char out[32])
{
    struct key_cache *kc = &key_cache;
    unsigned char sh[32];
    size_t slen = strlen(secret);
    SHA256((const unsigned char *)secret, slen, sh);
    if (kc->valid && memcmp(kc->secret_hash, sh, 32) == 0 &&
        strcmp(kc->date, date8) == 0 && strcmp(kc->region, region) == 0 &&
        strcmp(kc->service, service) == 0) {
        memcpy(out, kc->key, 32);
        return 0;
    }

    int rc = GW_ENOMEM;
    unsigned char k[32];
    char *kstart = malloc(slen + 5);
    if (!kstart)
        goto out;
    memcpy(kstart, "AWS4", 4);
    memcpy(kstart + 4, secret, slen + 1);
    if ((rc = hmac(kstart, slen + 4, date8, strlen(date8), k)) < 0 ||
        (rc = hmac(k, 32, region, strlen(region), k)) < 0 ||
        (rc = hmac(k, 32, service, strlen(service), k)) < 0 ||
        (rc = hmac(k, 32, "aws4_request", 12, k)) < 0)
        goto out;
    memcpy(out, k, 32);
    if (strlen(date8) < sizeof(kc->date) &&
        strlen(region) < sizeof(kc->region) &&
        strlen(service) < sizeof(kc->service)) {
        memcpy(kc->secret_hash, sh, 32);
        strcpy(kc->date, date8);
        strcpy(kc->region, region);
        strcpy(kc->service, service);
        memcpy(kc->key, k, 32);
        kc->valid = 1;
    }
    rc = 0; /* success */
out:
    if (kstart) {
        OPENSSL_cleanse(kstart, slen + 5);
        free(kstart);
    }
    OPENSSL_cleanse(k, sizeof(k));
    return rc;
}

/* Views into the URL. */
struct url_parts {
    const char *host; /* as written; IPv6 keeps its brackets */
    size_t host_len;
    long port; /* -1 = none */
    int default_port;
    const char *path;
    size_t path_len;
    const char *query; /* after '?', may be NULL */
    size_t query_len;
};

static int url_split(const char *url, struct url_parts *u)
{
    const char *p = strstr(url, "://");
    if (!p || p == url)
        return GW_EINVAL;
    size_t slen = (size_t)(p - url);
    if (slen == 5 && strncasecmp(url, "https", 5) == 0)
        u->default_port = 443;
    else if (slen == 4 && strncasecmp(url, "http", 4) == 0)
        u->default_port = 80;
    else if (slen == 3 && strncasecmp(url, "wss", 3) == 0)
        u->default_port = 443;
    else if (slen == 2 && strncasecmp(url, "ws", 2) == 0)
        u->default_port = 80;
    else
        return GW_EINVAL;
    const char *auth = p + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *aend = auth + alen;
    /* Drop userinfo (never signed). */
    const char *at = memrchr(auth, '@', alen);
    if (at)
        auth = at + 1;
    const char *hend;
    if (*auth == '[') {
        const char *rb = memchr(auth, ']', (size_t)(aend - auth));
        if (!rb)
            return GW_EINVAL;
        hend = rb + 1;
    } else {
        hend = memchr(auth, ':', (size_t)(aend - auth));
        if (!hend)
            hend = aend;
    }
    u->host = auth;
    u->host_len = (size_t)(hend - auth);
    if (u->host_len == 0)
        return GW_EINVAL;
    u->port = -1;
    if (hend < aend) {
        if (*hend != ':')
            return GW_EINVAL;
        long port = 0;
        const char *d = hend + 1;
        if (d == aend)
            return GW_EINVAL;
        for (; d < aend; d++) {
            if (*d < '0' || *d > '9')
                return GW_EINVAL;
            port = port * 10 + (*d - '0');
            if (port > 65535)
                return GW_EINVAL;
        }
        u->port = port;
    }
    const char *rest = aend;
    size_t plen = strcspn(rest, "?#");
    u->path = rest;
    u->path_len = plen;
    u->query = NULL;
    u->query_len = 0;
    if (rest[plen] == '?') {
        u->query = rest + plen + 1;
        u->query_len = strcspn(u->query, "#");
    }
    return 0;
}

/* Host header value: lower-case host, ":port" unless the default. */
static int host_value(const struct url_parts *u, char *out, size_t outlen)
{
    if (u->host_len + 8 > outlen)
        return GW_ETOO_BIG;
    for (size_t i = 0; i < u->host_len; i++)
        out[i] = (char)tolower((unsigned char)u->host[i]);
    out[u->host_len] = '\0';
    if (u->port >= 0 && u->port != u->default_port)
        snprintf(out + u->host_len, outlen - u->host_len, ":%ld", u->port);
    return 0;
}

/* botocore's remove_dot_segments: drops "", "." and pops on "..". */
static void sb_path_normalized(struct sb *b, const char *path, size_t len)
{
    size_t nseg = 0;
    const char **seg = NULL;
    size_t *seglen = NULL;
    size_t maxseg = len + 1;
    seg = malloc(maxseg * sizeof(*seg));
    seglen = malloc(maxseg * sizeof(*seglen));
    if (!seg || !seglen) {
        b->err = GW_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 0 || (n == 1 && path[i] == '.')) {
            /* skip */
        } else if (n == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (nseg)
                nseg--;
        } else {
            seg[nseg] = path + i;
            seglen[nseg] = n;
            nseg++;
        }
        i = j + 1;
    }
    if (len > 0 && path[0] == '/')
        sb_chr(b, '/');
    for (size_t k = 0; k < nseg; k++) {
        if (k)
            sb_chr(b, '/');
        sb_uri_encode(b, seg[k], seglen[k], 0);
    }
    if (len > 0 && path[len - 1] == '/' && nseg)
        sb_chr(b, '/');
out:
    free(seg);
    free(seglen);
}

/* Form-decodes src[0..n) into dst (at most n bytes); returns length. */
static size_t form_decode(const char *src, size_t n, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '+') {
            dst[o++] = ' ';
        } else if (src[i] == '%' && i + 2 < n &&
                   gw_hex_value(src[i + 1]) >= 0 &&
                   gw_hex_value(src[i + 2]) >= 0) {
            dst[o++] = (char)(gw_hex_value(src[i + 1]) * 16 +
                              gw_hex_value(src[i + 2]));
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    return o;
}

struct qpair {
    char *enc; /* "name=value" encoded */
    size_t name_len;
};

static int qpair_cmp(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    size_t n = GW_MIN(x->name_len, y->name_len);
    int c = memcmp(x->enc, y->enc, n);
    if (c)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return strcmp(x->enc + x->name_len + 1, y->enc + y->name_len + 1);
}

static void sb_query(struct sb *b, const char *q, size_t len)
{
    struct qpair *pairs = NULL;
    size_t np = 0;
    char *tmp = NULL;
    if (!q || !len)
        return;
    size_t maxp = 1;
    for (size_t i = 0; i < len; i++)
        maxp += q[i] == '&';
    pairs = calloc(maxp, sizeof(*pairs));
    tmp = malloc(len + 1);
    if (!pairs || !tmp) {
        b->err = GW_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && q[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(q + i, '=', j - i);
            size_t nlen = eq ? (size_t)(eq - (q + i)) : j - i;
            struct sb e = {0};
            size_t d = form_decode(q + i, nlen, tmp);
            sb_add(&e, "", 0);
            sb_uri_encode(&e, tmp, d, 0);
            size_t enc_name_len = e.len;
            sb_chr(&e, '=');
            if (eq) {
                d = form_decode(eq + 1, (size_t)(q + j - eq - 1), tmp);
                sb_uri_encode(&e, tmp, d, 0);
            }
            if (e.err) {
                free(e.s);
                b->err = e.err;
                goto out;
            }
            pairs[np].enc = e.s;
            pairs[np].name_len = enc_name_len;
            np++;
        }
        i = j + 1;
    }
    qsort(pairs, np, sizeof(*pairs), qpair_cmp);
    for (size_t k = 0; k < np; k++) {
        if (k)
            sb_chr(b, '&');
        sb_str(b, pairs[k].enc);
    }
out:
    if (pairs)
        for (size_t k = 0; k < np; k++)
            free(pairs[k].enc);
    free(pairs);
    free(tmp);
}

struct hdr {
    char *name;  /* lower-case, owned */
    char *value; /* trimmed, folded, owned */
    size_t idx;  /* input order, for stable sort */
};

static int hdr_cmp(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* Trimall: strip, and fold each internal whitespace run to one space. */
static char *trimall(const char *v)
{
    size_t n = strlen(v);
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    int pend = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_ws(v[i])) {
            pend = k > 0;
            continue;
        }
        if (pend)
            o[k++] = ' ';
        pend = 0;
        o[k++] = v[i];
    }
    o[k] = '\0';
    return o;
}

static char *lower_dup(const char *s)
{
    size_t n = strlen(s);
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        o[i] = (char)tolower((unsigned char)s[i]);
    return o;
}

static int valid_header_name(const char *n)
{
    if (!*n)
        return 0;
    for (; *n; n++)
        if ((unsigned char)*n <= ' ' || *n == ':' || (unsigned char)*n >= 127)
            return 0;
    return 1;
}

static int reserved_header(const char *lname)
{
    return strcmp(lname, "host") == 0 || strcmp(lname, "x-amz-date") == 0 ||
           strcmp(lname, "x-amz-security-token") == 0 ||
           strcmp(lname, "authorization") == 0;
}

static int path_as_is(const struct aws_sigv4_request *req, const char *service)
{
    switch (req->path_mode) {
    case AWS_SIGV4_PATH_AS_IS:
        return 1;
    case AWS_SIGV4_PATH_NORMALIZE:
        return 0;
    case AWS_SIGV4_PATH_AUTO:
    default:
        return strcmp(service, "ssmmessages") == 0;
    }
}

int aws_sigv4_url_is_presigned(const char *url)
{
    static const char *const names[] = {
        "X-Amz-Algorithm",     "X-Amz-Credential",    "X-Amz-Date",
        "X-Amz-Expires",       "X-Amz-SignedHeaders", "X-Amz-Signature",
        "X-Amz-Security-Token"};
    const char *q = url ? strpbrk(url, "?#") : NULL;
    if (!q || *q == '#')
        return 0;
    size_t len = strcspn(++q, "#");
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && q[j] != '&')
            j++;
        size_t nl = 0;
        while (i + nl < j && q[i + nl] != '=')
            nl++;
        for (size_t k = 0; k < ARRAY_SIZE(names); k++)
            if (strlen(names[k]) == nl && strncmp(q + i, names[k], nl) == 0)
                return 1;
        i = j + 1;
    }
    return 0;
}

int aws_sigv4_sign(const struct aws_sigv4_request *req,
                   const struct aws_sigv4_creds *creds, const char *region,
                   const char *service, time_t now,
                   struct aws_sigv4_result *out, char **canonical_out,
                   char **string_to_sign_out)
{
    int rc;
    struct sb cr = {0}, sts = {0};
    struct hdr *h = NULL;
    size_t nh = 0;
    char host[300];
    char date8[9];
    struct url_parts u;
    struct tm tm;
    const char *token = creds && creds->session_token && *creds->session_token
                            ? creds->session_token
                            : NULL;
    unsigned char key[32], sig[32];
    char sighex[65], crhash[65], payload[65];

    if (canonical_out)
        *canonical_out = NULL;
    if (string_to_sign_out)
        *string_to_sign_out = NULL;
    if (!req || !req->method || !req->url || !creds || !creds->access_key_id ||
        !creds->secret_access_key || !region || !*region || !service ||
        !*service || !out || (req->n_headers && !req->headers))
        return GW_EINVAL;
    if ((rc = url_split(req->url, &u)) < 0)
        return rc;
    if ((rc = host_value(&u, host, sizeof(host))) < 0)
        return rc;
    if (!gmtime_r(&now, &tm) ||
        strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm) !=
            AWS_SIGV4_AMZDATE_LEN - 1)
        return GW_EINVAL;
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';

    /* Headers: the caller's plus host, x-amz-date, x-amz-security-token. */
    h = calloc(req->n_headers + 3, sizeof(*h));
    if (!h)
        return GW_ENOMEM;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct aws_sigv4_header *in = &req->headers[i];
        if (!in->name || !in->value || !valid_header_name(in->name)) {
            rc = GW_EINVAL;
            goto out;
        }
        h[nh].name = lower_dup(in->name);
        h[nh].value = trimall(in->value);
        h[nh].idx = nh;
        nh++;
        if (!h[nh - 1].name || !h[nh - 1].value) {
            rc = GW_ENOMEM;
            goto out;
        }
        if (reserved_header(h[nh - 1].name)) {
            rc = GW_EINVAL;
            goto out;
        }
    }
    const char *extra[3][2] = {{"host", host},
                               {"x-amz-date", out->amz_date},
                               {"x-amz-security-token", token}};
    for (size_t i = 0; i < 3; i++) {
        if (!extra[i][1])
            continue;
        h[nh].name = strdup(extra[i][0]);
        h[nh].value = trimall(extra[i][1]);
        h[nh].idx = nh;
        nh++;
        if (!h[nh - 1].name || !h[nh - 1].value) {
            rc = GW_ENOMEM;
            goto out;
        }
    }
    qsort(h, nh, sizeof(*h), hdr_cmp);

    /* 1-3: method, canonical URI, canonical query. */
    sb_str(&cr, req->method);
    sb_chr(&cr, '\n');
    if (u.path_len == 0)
        sb_chr(&cr, '/');
    else if (path_as_is(req, service))
        sb_uri_encode(&cr, u.path, u.path_len, 1);
    else
        sb_path_normalized(&cr, u.path, u.path_len);
    sb_chr(&cr, '\n');
    sb_query(&cr, u.query, u.query_len);
    sb_chr(&cr, '\n');
    /* 4: canonical headers, repeated names joined with ','. */
    for (size_t i = 0; i < nh; i++) {
        if (i && strcmp(h[i].name, h[i - 1].name) == 0) {
            sb_chr(&cr, ',');
        } else {
            if (i)
                sb_chr(&cr, '\n');
            sb_str(&cr, h[i].name);
            sb_chr(&cr, ':');
        }
        sb_str(&cr, h[i].value);
    }
    sb_str(&cr, "\n\n");
    /* 5: signed headers. */
    size_t signed_start = cr.len;
    for (size_t i = 0; i < nh; i++) {
        if (i && strcmp(h[i].name, h[i - 1].name) == 0)
            continue;
        if (i)
            sb_chr(&cr, ';');
        sb_str(&cr, h[i].name);
    }
    size_t signed_len = cr.len - signed_start;
    sb_chr(&cr, '\n');
    /* 6: payload hash. */
    if (req->body && req->body_len)
        aws_sha256_hex(req->body, req->body_len, payload);
    else
        memcpy(payload, EMPTY_SHA256, sizeof(payload));
    sb_str(&cr, payload);
    if (cr.err) {
        rc = cr.err;
        goto out;
    }

    aws_sha256_hex(cr.s, cr.len, crhash);
    sb_str(&sts, "AWS4-HMAC-SHA256\n");
    sb_str(&sts, out->amz_date);
    sb_chr(&sts, '\n');
    size_t scope_start = sts.len;
    sb_str(&sts, date8);
    sb_chr(&sts, '/');
    sb_str(&sts, region);
    sb_chr(&sts, '/');
    sb_str(&sts, service);
    sb_str(&sts, "/aws4_request");
    size_t scope_len = sts.len - scope_start;
    sb_chr(&sts, '\n');
    sb_str(&sts, crhash);
    if (sts.err) {
        rc = sts.err;
        goto out;
    }

    if ((rc = aws_sigv4_signing_key(creds->secret_access_key, date8, region,
                                    service, key)) < 0)
        goto out;
    rc = hmac(key, sizeof(key), sts.s, sts.len, sig);
    OPENSSL_cleanse(key, sizeof(key));
    if (rc < 0)
        goto out;
    hex_encode(sig, sizeof(sig), sighex);

    int n = snprintf(out->authorization, sizeof(out->authorization),
                     "AWS4-HMAC-SHA256 Credential=%s/%.*s, SignedHeaders=%.*s, "
                     "Signature=%s",
                     creds->access_key_id, (int)scope_len, sts.s + scope_start,
                     (int)signed_len, cr.s + signed_start, sighex);
    if (n < 0 || (size_t)n >= sizeof(out->authorization)) {
        out->authorization[0] = '\0';
        rc = GW_ETOO_BIG;
        goto out;
    }
    if (canonical_out) {
        *canonical_out = cr.s; /* transferred */
        cr.s = NULL;
    }
    if (string_to_sign_out) {
        *string_to_sign_out = sts.s; /* transferred */
        sts.s = NULL;
    }
    rc = 0; /* success */
out:
    for (size_t i = 0; i < nh; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    free(cr.s);
    free(sts.s);
    return rc;
}
