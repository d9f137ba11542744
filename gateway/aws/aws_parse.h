/*
 * aws_parse.h - the pure parts of the AWS layer: error bodies of every
 * protocol, retry
 * classification and backoff, timestamp formats, credential JSON, and
 * POSIX-shell word splitting for credential_process. No I/O, no libuv.
 */
#ifndef SSMGATE_AWS_PARSE_H
#define SSMGATE_AWS_PARSE_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "aws_error.h"

enum aws_proto {
    AWS_PROTO_JSON,      /* JSON 1.1: ssm, ec2-instance-connect */
    AWS_PROTO_QUERY,     /* sts (XML responses) */
    AWS_PROTO_REST_JSON, /* sso portal, sso oidc */
};

/*
 * Fills err->code/message/request_id from a non-2xx response (section
 * 2.0 rules). request_id_hdr and error_type_hdr may be "" or NULL.
 */
void aws_parse_error(enum aws_proto proto, long status, const char *body,
                     size_t body_len, const char *request_id_hdr,
                     const char *error_type_hdr, struct aws_error *err);

enum aws_retry_kind {
    AWS_RETRY_NO = 0,
    AWS_RETRY_TRANSIENT = 1, /* 5xx, transport, RequestTimeout... */
    AWS_RETRY_THROTTLE = 2,
    AWS_RETRY_TIMEOUT = 3, /* transient, costs more quota */
};

/* transport: 0 or gw_err of the attempt; code: the parsed error code. */
enum aws_retry_kind aws_retry_classify(long status, const char *code,
                                       int transport);

/* Full-jitter delay before retry n (1 = first retry) in ms, rand01 in
 * [0,1). new_retries: AWS_NEW_RETRIES_2026 (50 ms base for non-throttle). */
long aws_retry_delay_ms(int n, enum aws_retry_kind kind, int new_retries,
                        double rand01);

#define AWS_RETRY_QUOTA_MAX       500
#define AWS_RETRY_COST            5
#define AWS_RETRY_COST_TIMEOUT    10
#define AWS_RETRY_NO_RETRY_REFUND 1

/* Takes the cost of one retry of this kind from *quota. Returns the cost
 * taken, or 0 (nothing taken) when the quota cannot pay for it. */
int aws_retry_quota_take(int *quota, enum aws_retry_kind kind, int new_retries);
/* A call succeeded: give back last_cost (its latest retry), or the
 * no-retry refund when it never retried. Capped at the maximum. */
void aws_retry_quota_release(int *quota, int last_cost);

/* ISO 8601 (Z, +00:00, UTC suffix, fractional seconds) into *out.
 * Returns 0 or GW_EINVAL. */
int aws_parse_iso8601(const char *s, time_t *out);
/* A JSON timestamp: number (epoch seconds, or ms when ms is set; may be
 * fractional or exponent form) or ISO 8601 string. */
int aws_parse_json_time(const json_t *v, int ms, time_t *out);

/* An HTTP Date header ("Sun, 06 Nov 1994 08:49:37 GMT"). 0 or GW_EINVAL. */
int aws_parse_http_date(const char *date, time_t *out);
/* The error says our clock is off (RequestTimeTooSkewed, RequestExpired,
 * a signature error saying "Signature expired"). */
int aws_is_skew_error(const struct aws_error *e);

/* Credentials as the parsers deliver them (all strings malloc'd). */
struct aws_creds_parsed {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL when none */
    time_t expiration;   /* 0 = never expires */
};
void aws_creds_parsed_clear(struct aws_creds_parsed *p);
/* Copies the strings into p (tk NULL or "" = no token); on failure p is
 * cleared. Returns 0 or GW_ENOMEM. */
int aws_creds_parsed_set(struct aws_creds_parsed *p, const char *ak,
                         const char *sk, const char *tk);

/* credential_process stdout (Version 1). On error writes a reason to
 * why. Returns 0 or GW_EPROTO. */
int aws_parse_process_creds(const char *text, size_t len,
                            struct aws_creds_parsed *out, char *why,
                            size_t why_len);
/* Container / IMDS credential JSON (AccessKeyId, SecretAccessKey, Token,
 * Expiration). */
int aws_parse_metadata_creds(const char *text, size_t len,
                             struct aws_creds_parsed *out, char *why,
                             size_t why_len);

/* Splits a command line like a POSIX shell (quotes, backslashes; no
 * expansions). *argv_out is a malloc'd NULL-terminated array of malloc'd
 * words; free with aws_shell_free. Returns 0, GW_EINVAL (unterminated
 * quote, empty) or GW_ENOMEM. */
int aws_shell_split(const char *line, char ***argv_out);
void aws_shell_free(char **argv);

#endif
