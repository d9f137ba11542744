/*
 * aws_parse.c - pure helpers of the AWS layer (see aws_parse.h).
 *
 * Query (XML) error bodies are read through aws_xml.h (libxml2).
 */
#include "aws_parse.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws_xml.h"
#include "common.h"
#include "secret.h"

static void copy_str(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    /* Error text goes to logs and terminals: no control characters. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)dst[i] < 0x20)
            dst[i] = ' ';
}

/* The "__type" rules: after the last '#', before the first ':'. */
static void set_code(struct aws_error *err, const char *t)
{
    const char *hash = strrchr(t, '#');
    size_t len;

    if (hash)
        t = hash + 1;
    len = strcspn(t, ":");
    copy_str(err->code, sizeof(err->code), t, len);
}

static const char *json_str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *json_message(json_t *o)
{
    const char *m = json_str(o, "message");
    if (!m)
        m = json_str(o, "Message");
    if (!m)
        m = json_str(o, "error_description");
    return m;
}

void aws_parse_error(enum aws_proto proto, long status, const char *body,
                     size_t body_len, const char *request_id_hdr,
                     const char *error_type_hdr, struct aws_error *err)
{
    json_t *doc = NULL;
    const char *code = NULL, *msg = NULL;

    err->code[0] = err->message[0] = '\0';
    err->http_status = status;
    if (request_id_hdr && request_id_hdr[0])
        copy_str(err->request_id, sizeof(err->request_id), request_id_hdr,
                 strlen(request_id_hdr));
    if (proto == AWS_PROTO_QUERY) {
        json_t *e, *root;
        doc = aws_xml_to_json(body, body_len);
        root = json_object_get(doc, "ErrorResponse");
        if (!root)
            root = json_object_get(doc, "Response"); /* EC2 */
        e = json_object_get(root, "Error");
        if (!e)
            e = json_object_get(json_object_get(root, "Errors"), "Error");
        code = json_str(e, "Code");
        msg = json_str(e, "Message");
        if (!err->request_id[0]) {
            const char *rid = json_str(root, "RequestId");
            if (!rid)
                rid = json_str(root, "RequestID");
            if (rid)
                copy_str(err->request_id, sizeof(err->request_id), rid,
                         strlen(rid));
        }
    } else {
        doc = json_loadb(body, body_len, JSON_DISABLE_EOF_CHECK, NULL);
        if (!json_is_object(doc)) {
            json_decref(doc);
            doc = NULL;
        }
        if (proto == AWS_PROTO_REST_JSON && error_type_hdr && error_type_hdr[0])
            code = error_type_hdr;
        if (!code)
            code = json_str(doc, "__type");
        if (!code && proto == AWS_PROTO_REST_JSON) {
            code = json_str(doc, "code");
            if (!code)
                code = json_str(doc, "Code");
            if (!code)
                code = json_str(doc, "error");
        }
        msg = json_message(doc);
    }
    if (code && code[0])
        set_code(err, code);
    if (!err->code[0]) /* none, or "#" / ":x" shapes that leave nothing */
        snprintf(err->code, sizeof(err->code), "%ld", status);
    if (msg) {
        copy_str(err->message, sizeof(err->message), msg, strlen(msg));
    } else if (!doc && body_len) {
        /* Not JSON/XML: the body itself is the message. */
        copy_str(err->message, sizeof(err->message), body, body_len);
    }
    json_decref(doc);
}

/* ---- retries ------------------------------------------------------------ */

enum aws_retry_kind aws_retry_classify(long status, const char *code,
                                       int transport)
{
    static const char *const throttle[] = {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    };
    static const char *const transient[] = {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "IDPCommunicationError",
    };
    size_t i;

    if (transport == GW_ETIMEOUT)
        return AWS_RETRY_TIMEOUT;
    if (transport == GW_ETOO_BIG || transport == GW_ECRYPTO ||
        transport == GW_ENOMEM)
        return AWS_RETRY_NO;
    if (transport)
        return AWS_RETRY_TRANSIENT;
    if (code) {
        for (i = 0; i < ARRAY_SIZE(throttle); i++)
            if (strcmp(code, throttle[i]) == 0)
                return AWS_RETRY_THROTTLE;
        for (i = 0; i < ARRAY_SIZE(transient); i++)
            if (strcmp(code, transient[i]) == 0)
                return AWS_RETRY_TRANSIENT;
    }
    if (status == 500 || status == 502 || status == 503 || status == 504)
        return AWS_RETRY_TRANSIENT;
    return AWS_RETRY_NO;
}

long aws_retry_delay_ms(int n, enum aws_retry_kind kind, int new_retries,
                        double rand01)
{
    double base_ms = 1000.0, cap_ms = 20000.0, d;

    if (new_retries && kind != AWS_RETRY_THROTTLE)
        base_ms = 50.0;
    if (n < 1)
        n = 1;
    if (n > 30)
        n = 30;
    d = base_ms * ldexp(1.0, n - 1);
    if (d > cap_ms)
        d = cap_ms;
    if (rand01 < 0 || rand01 >= 1)
        rand01 = 0;
    return (long)(rand01 * d);
}

int aws_retry_quota_take(int *quota, enum aws_retry_kind kind, int new_retries)
{
    int cost =
        kind == AWS_RETRY_TIMEOUT ? AWS_RETRY_COST_TIMEOUT : AWS_RETRY_COST;

    if (kind == AWS_RETRY_NO)
        return 0;
    /* The 2026 opt-in charges 14 for transient errors, 5 for throttles. */
    if (new_retries)
        cost = kind == AWS_RETRY_THROTTLE ? AWS_RETRY_COST : 14;
    if (*quota < cost)
        return 0;
    *quota -= cost;
    return cost;
}

void aws_retry_quota_release(int *quota, int last_cost)
{
    *quota += last_cost > 0 ? last_cost : AWS_RETRY_NO_RETRY_REFUND;
    if (*quota > AWS_RETRY_QUOTA_MAX)
        *quota = AWS_RETRY_QUOTA_MAX;
}

/* ---- time --------------------------------------------------------------- */

static int digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int aws_parse_iso8601(const char *s, time_t *out)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, off = 0;

    if (!s)
        return GW_EINVAL;
    memset(&tm, 0, sizeof(tm));
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
        digits(&s, 2, &d) || (*s != 'T' && *s != ' '))
        return GW_EINVAL;
    s++;
    if (digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
        digits(&s, 2, &sec))
        return GW_EINVAL;
    if (*s == '.' || *s == ',') {
        s++;
        if (!isdigit((unsigned char)*s))
            return GW_EINVAL;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (strcmp(s, "UTC") == 0 || strcmp(s, " UTC") == 0) {
        s += strlen(s);
    } else if (*s == '+' || *s == '-') {
        int sign = *s == '-' ? -1 : 1, oh, om;
        s++;
        if (digits(&s, 2, &oh))
            return GW_EINVAL;
        if (*s == ':')
            s++;
        if (digits(&s, 2, &om))
            return GW_EINVAL;
        if (oh > 23 || om > 59)
            return GW_EINVAL;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return GW_EINVAL;
    }
    if (*s)
        return GW_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        y < 1970)
        return GW_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = timegm(&tm) - off;
    return 0;
}

int aws_parse_json_time(const json_t *v, int ms, time_t *out)
{
    double x;

    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        /* Some writers put epoch numbers in strings. */
        x = strtod(s, &end);
        if (*s && !*end && end != s)
            goto number;
        return aws_parse_iso8601(s, out);
    }
    if (!json_is_number(v))
        return GW_EINVAL;
    x = json_number_value(v);
number:
    if (ms)
        x /= 1000.0;
    if (!isfinite(x) || x < 0 || x > 253402300799.0)
        return GW_EINVAL;
    *out = (time_t)x;
    return 0;
}

int aws_parse_http_date(const char *date, time_t *out)
{
    struct tm tm;
    const char *end;

    if (!date || !date[0])
        return GW_EINVAL;
    memset(&tm, 0, sizeof(tm));
    end = strptime(date, "%a, %d %b %Y %H:%M:%S", &tm);
    if (!end)
        return GW_EINVAL;
    while (*end == ' ')
        end++;
    if (strcmp(end, "GMT") != 0 && strcmp(end, "UTC") != 0 &&
        strcmp(end, "+0000") != 0)
        return GW_EINVAL;
    *out = timegm(&tm);
    return 0;
}

int aws_is_skew_error(const struct aws_error *e)
{
    if (strcmp(e->code, "RequestTimeTooSkewed") == 0 ||
        strcmp(e->code, "RequestExpired") == 0)
        return 1;
    if ((strcmp(e->code, "InvalidSignatureException") == 0 ||
         strcmp(e->code, "SignatureDoesNotMatch") == 0) &&
        strstr(e->message, "Signature expired"))
        return 1;
    return 0;
}

/* ---- credentials JSON -----------------------------------------------------
 */

void aws_creds_parsed_clear(struct aws_creds_parsed *p)
{
    free(p->access_key_id);
    secret_free_str(p->secret_access_key);
    secret_free_str(p->session_token);
    memset(p, 0, sizeof(*p));
}

int aws_creds_parsed_set(struct aws_creds_parsed *p, const char *ak,
                         const char *sk, const char *tk)
{
    p->access_key_id = strdup(ak);
    p->secret_access_key = strdup(sk);
    if (tk && tk[0])
        p->session_token = strdup(tk);
    if (!p->access_key_id || !p->secret_access_key ||
        (tk && tk[0] && !p->session_token)) {
        aws_creds_parsed_clear(p);
        return GW_ENOMEM;
    }
    return 0;
}

static int creds_from_json(json_t *doc, const char *token_key,
                           struct aws_creds_parsed *out, char *why,
                           size_t why_len)
{
    const char *ak = json_str(doc, "AccessKeyId");
    const char *sk = json_str(doc, "SecretAccessKey");
    const char *tk = json_str(doc, token_key);
    json_t *exp = json_object_get(doc, "Expiration");

    memset(out, 0, sizeof(*out));
    if (!ak || !ak[0] || !sk || !sk[0]) {
        snprintf(why, why_len, "AccessKeyId and SecretAccessKey required");
        return GW_EPROTO;
    }
    if (exp && !json_is_null(exp) &&
        aws_parse_json_time(exp, 0, &out->expiration) < 0) {
        snprintf(why, why_len, "bad Expiration");
        return GW_EPROTO;
    }
    if (aws_creds_parsed_set(out, ak, sk, tk) != 0) {
        snprintf(why, why_len, "out of memory");
        return GW_ENOMEM;
    }
    return 0;
}

int aws_parse_process_creds(const char *text, size_t len,
                            struct aws_creds_parsed *out, char *why,
                            size_t why_len)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    json_t *ver;
    int rc = GW_EPROTO;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(doc)) {
        snprintf(why, why_len, "output is not a JSON object");
        goto out;
    }
    ver = json_object_get(doc, "Version");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
        snprintf(why, why_len, "unsupported Version (must be 1)");
        goto out;
    }
    rc = creds_from_json(doc, "SessionToken", out, why, why_len);
out:
    json_decref(doc);
    return rc;
}

int aws_parse_metadata_creds(const char *text, size_t len,
                             struct aws_creds_parsed *out, char *why,
                             size_t why_len)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    int rc = GW_EPROTO;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(doc)) {
        snprintf(why, why_len, "response is not a JSON object");
        goto out;
    }
    if (json_str(doc, "Code") && strcmp(json_str(doc, "Code"), "Success")) {
        snprintf(why, why_len, "metadata service said %.64s",
                 json_str(doc, "Code"));
        goto out;
    }
    rc = creds_from_json(doc, "Token", out, why, why_len);
out:
    json_decref(doc);
    return rc;
}

/* ---- shell words -------------------------------------------------------- */

void aws_shell_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

int aws_shell_split(const char *line, char ***argv_out)
{
    size_t len = strlen(line), n = 0, cap = 8;
    char **argv = calloc(cap, sizeof(*argv));
    char *word = malloc(len + 1);
    const char *p = line;
    int rc = GW_ENOMEM;

    *argv_out = NULL;
    if (!argv || !word)
        goto out;
    for (;;) {
        size_t w = 0;
        int have = 0;
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            have = 1;
            if (*p == '\'') {
                const char *q = strchr(p + 1, '\'');
                if (!q) {
                    rc = GW_EINVAL;
                    goto out;
                }
                memcpy(word + w, p + 1, (size_t)(q - p - 1));
                w += (size_t)(q - p - 1);
                p = q + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    /* Inside double quotes a backslash escapes only
                     * these. */
                    if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1]))
                        p++;
                    word[w++] = *p++;
                }
                if (*p != '"') {
                    rc = GW_EINVAL;
                    goto out;
                }
                p++;
            } else if (*p == '\\') {
                p++;
                if (!*p)
                    break;
                word[w++] = *p++;
            } else {
                word[w++] = *p++;
            }
        }
        if (!have)
            continue;
        if (n + 2 > cap) {
            char **na = realloc(argv, cap * 2 * sizeof(*argv));
            if (!na)
                goto out;
            argv = na;
            cap *= 2;
        }
        argv[n] = strndup(word, w);
        if (!argv[n])
            goto out;
        argv[++n] = NULL;
    }
    if (n == 0) {
        rc = GW_EINVAL;
        goto out;
    }
    *argv_out = argv;
    argv = NULL;
    rc = 0; /* success */
out:
    aws_shell_free(argv);
    free(word);
    return rc;
}
