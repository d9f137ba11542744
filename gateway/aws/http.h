/*
 * http.h - libcurl's multi interface driven by the libuv loop.
 *
 * Knows nothing of AWS: a request is a method, URL, headers and body; the
 * response is a status, headers of interest and a body, delivered once to
 * a completion callback on the loop. The only file that includes curl.h.
 * TLS verification is always on; ca_file replaces the trust store when
 * set (AWS_CA_BUNDLE / ca_bundle). The HTTPS proxy is the one core/proxy.h
 * decided, per request host (NO_PROXY), the same decision the WebSocket
 * takes; without one curl follows its own environment rules.
 */
#ifndef SSMGATE_HTTP_H
#define SSMGATE_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "proxy.h"

struct http_client;
struct http_req;

struct http_response {
    long status;            /* 0 when no HTTP response arrived */
    int transport_error;    /* 0, or a gw_err: GW_ETIMEOUT, GW_EIO, ... */
    const char *error_text; /* curl's words for a transport error */
    const char *body;       /* NUL-terminated, may hold NULs; never NULL */
    size_t body_len;
    /* Values of a few headers the AWS layer reads ("" when absent). */
    const char *request_id;  /* x-amzn-RequestId / x-amz-request-id */
    const char *error_type;  /* x-amzn-ErrorType */
    const char *date;        /* Date, for clock skew */
    const char *retry_after; /* x-amz-retry-after */
};

/* The response is valid only during the call. req is freed after it. */
typedef void http_done_cb(struct http_req *req,
                          const struct http_response *resp, void *arg);

/* proxy (copied; NULL = curl's environment rules) decides each request's
 * way unless the request says no_proxy. */
struct http_client *http_client_new(uv_loop_t *loop, const struct proxy *proxy);
/* Cancels every pending request (their callbacks do not run), then frees
 * the client once curl's handles are closed. */
void http_client_free(struct http_client *c);

struct http_request_opts {
    const char *method; /* "GET", "POST", "PUT" */
    const char *url;
    const char *const *headers; /* "Name: value" lines, NULL-terminated */
    const void *body;
    size_t body_len;
    long timeout_ms;         /* whole transfer; 0 = none */
    long connect_timeout_ms; /* 0 = curl default */
    const char *ca_file;     /* NULL = system trust store */
    int no_proxy;            /* 1 = never use a proxy (IMDS, ECS) */
};

/* Starts a request; done runs later on the loop (never inside this call).
 * Returns the request (for http_cancel) or NULL on failure. */
struct http_req *http_request(struct http_client *c,
                              const struct http_request_opts *opts,
                              http_done_cb *done, void *arg);
/* The callback will not run; the request is freed. */
void http_cancel(struct http_req *req);

#endif
