/*
 * aws_sigv4.h - AWS Signature Version 4, pure (OpenSSL HMAC/SHA-256).
 *
 * Signs one HTTP request: JSON 1.1 and Query POSTs to "/", and the GET of
 * a data channel StreamUrl (service "ssmmessages"). The caller sends the
 * request exactly as described here plus the headers this returns.
 */
#ifndef SSMGATE_AWS_SIGV4_H
#define SSMGATE_AWS_SIGV4_H

#include <stddef.h>
#include <time.h>

struct aws_sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" for long-term keys */
};

struct aws_sigv4_header {
    const char *name; /* any case; signed lower-cased */
    const char *value;
};

/*
 * How the URL path is canonicalised. AUTO: AS_IS for service
 * "ssmmessages" (what the Go signer of session-manager-plugin sends and
 * MGS accepts), NORMALIZE otherwise (botocore: remove "." / ".." / empty
 * segments). Both then UriEncode the path keeping '/' (so %XX is encoded
 * again, the non-S3 rule).
 */
enum aws_sigv4_path_mode {
    AWS_SIGV4_PATH_AUTO = 0,
    AWS_SIGV4_PATH_NORMALIZE,
    AWS_SIGV4_PATH_AS_IS,
};

struct aws_sigv4_request {
    const char *method; /* "POST", "GET" */
    /*
     * Full URL as sent: scheme://host[:port]/path[?query]. Host and port
     * give the signed Host (port only when not the scheme's default).
     * The path is canonicalised with the non-S3 double encoding; the query
     * is form-decoded and re-encoded, sorted (what the Go signer does for
     * StreamUrls with raw '+', '/', '=').
     */
    const char *url;
    /* Headers the caller will send and wants signed (e.g. content-type,
     * x-amz-target). host, x-amz-date and x-amz-security-token are added
     * by the signer; do not list them. */
    const struct aws_sigv4_header *headers;
    size_t n_headers;
    const void *body; /* NULL = empty */
    size_t body_len;
    enum aws_sigv4_path_mode path_mode; /* 0 = AUTO */
};

#define AWS_SIGV4_AMZDATE_LEN 17 /* "20150830T123600Z" + NUL */
#define AWS_SIGV4_AUTH_MAX    1024

struct aws_sigv4_result {
    char amz_date[AWS_SIGV4_AMZDATE_LEN];   /* send as X-Amz-Date */
    char authorization[AWS_SIGV4_AUTH_MAX]; /* send as Authorization */
    /* Send X-Amz-Security-Token: creds->session_token when it is set. */
};

/*
 * Signs req for (region, service) at time now. Returns 0 or GW_EINVAL
 * (bad URL, or a header host / x-amz-date / x-amz-security-token /
 * authorization in req->headers) / GW_ENOMEM / GW_ECRYPTO / GW_ETOO_BIG
 * (Authorization longer than AWS_SIGV4_AUTH_MAX). Never logs anything.
 * If canonical_out is not NULL it receives a malloc'd copy of the canonical
 * request and string_to_sign_out of the string to sign (for tests).
 */
int aws_sigv4_sign(const struct aws_sigv4_request *req,
                   const struct aws_sigv4_creds *creds, const char *region,
                   const char *service, time_t now,
                   struct aws_sigv4_result *out, char **canonical_out,
                   char **string_to_sign_out);

/*
 * SigV4 UriEncode of src[0..len) into a malloc'd string: unreserved bytes
 * kept, everything else %XX upper-case; '/' kept when keep_slash.
 */
char *aws_uri_encode(const char *src, size_t len, int keep_slash);

/*
 * kSigning for (secret, YYYYMMDD, region, service) into out[32]; the last
 * key is cached per thread (keyed by a hash of the secret). 0 or
 * GW_ENOMEM / GW_ECRYPTO.
 */
int aws_sigv4_signing_key(const char *secret, const char *date8,
                          const char *region, const char *service,
                          unsigned char out[32]);

/*
 * 1 when url's query already carries a presigned-URL parameter
 * (X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders,
 * -Signature, -Security-Token): such a StreamUrl is used as is, unsigned
 * (ssm-data-channel.md 2.2 item 1). 0 otherwise.
 */
int aws_sigv4_url_is_presigned(const char *url);

/* Lower-case hex SHA-256 of data into out[65]. */
void aws_sha256_hex(const void *data, size_t len, char out[65]);

#endif
