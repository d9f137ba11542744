/*
 * aws_cli_cache.c - reading and writing the AWS CLI's credential cache
 * files (see aws_cli_cache.h). The key is built with jansson, whose
 * default separators (", " and ": ") and ASCII escaping are Python's
 * json.dumps defaults for the strings a role profile can hold. The file
 * buffers and the dumped text hold secrets and are wiped.
 */
#include "aws_cli_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws_profile.h"
#include "common.h"
#include "secret.h"

#define CLI_CACHE_MAX (64 * 1024)

void aws_cli_cache_sha1_hex(const char *s, char out[AWS_CLI_CACHE_KEY_MAX])
{
    unsigned char md[SHA_DIGEST_LENGTH];

    SHA1((const unsigned char *)s, strlen(s), md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int aws_cli_cache_load(const char *path, size_t max, json_t **doc)
{
    char *buf;
    size_t n;
    FILE *f;

    *doc = NULL;
    f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? GW_ENOT_FOUND : GW_EIO;
    buf = malloc(max + 1);
    n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf)
        return GW_ENOMEM;
    if (n <= max)
        *doc = json_loadb(buf, n, 0, NULL);
    secret_wipe(buf, n);
    free(buf);
    return n <= max ? 0 : GW_ETOO_BIG;
}

int aws_cli_cache_replace(const char *path, const char *text)
{
    char tmp[1120];
    size_t len = strlen(text);
    int fd, ok;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= sizeof(tmp))
        return GW_ETOO_BIG;
    fd = mkstemp(tmp); /* 0600 */
    if (fd < 0)
        return GW_EIO;
    ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return GW_EIO;
    }
    return 0;
}

int aws_cli_cache_role_key(const struct aws_cli_role_args *a,
                           char key[AWS_CLI_CACHE_KEY_MAX])
{
    json_t *args = json_object();
    char *text = NULL;
    int rc = GW_ENOMEM;

    key[0] = '\0';
    if (!a->role_arn || !a->role_arn[0]) {
        rc = GW_EINVAL;
        goto out;
    }
    /* AssumeRoleProvider's extra_args, then RoleArn. */
    if (!args ||
        json_object_set_new(args, "RoleArn", json_string(a->role_arn)) < 0)
        goto out;
    if (a->session_name &&
        json_object_set_new(args, "RoleSessionName",
                            json_string(a->session_name)) < 0)
        goto out;
    if (a->external_id && json_object_set_new(args, "ExternalId",
                                              json_string(a->external_id)) < 0)
        goto out;
    if (a->mfa_serial && json_object_set_new(args, "SerialNumber",
                                             json_string(a->mfa_serial)) < 0)
        goto out;
    if (a->duration_seconds &&
        json_object_set_new(args, "DurationSeconds",
                            json_integer(a->duration_seconds)) < 0)
        goto out;
    text = json_dumps(args, JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!text)
        goto out;
    aws_cli_cache_sha1_hex(text, key);
    rc = 0;
out:
    free(text);
    json_decref(args);
    return rc;
}

static int cache_path(const char *dir, const char *key, char *out, size_t cap)
{
    char base[1024];

    if (!dir) {
        if (aws_expand_path(NULL, "~/.aws/cli/cache", base, sizeof(base)) < 0)
            return GW_ETOO_BIG;
        dir = base;
    }
    if (strlen(key) != AWS_CLI_CACHE_KEY_MAX - 1 ||
        strspn(key, "0123456789abcdef") != strlen(key))
        return GW_EINVAL;
    if ((size_t)snprintf(out, cap, "%s/%s.json", dir, key) >= cap)
        return GW_ETOO_BIG;
    return 0;
}

static const char *str_of(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v && v[0] ? v : NULL;
}

int aws_cli_cache_read(const char *dir, const char *key, long min_valid_s,
                       struct aws_creds_parsed *out)
{
    char path[1100];
    json_t *doc = NULL, *c;
    time_t exp;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = cache_path(dir, key, path, sizeof(path))) < 0)
        return rc;
    if ((rc = aws_cli_cache_load(path, CLI_CACHE_MAX, &doc)) < 0)
        return rc;
    rc = GW_EPROTO;
    c = json_object_get(doc, "Credentials");
    if (!json_is_object(c) || !str_of(c, "AccessKeyId") ||
        !str_of(c, "SecretAccessKey") || !str_of(c, "SessionToken") ||
        aws_parse_json_time(json_object_get(c, "Expiration"), 0, &exp) < 0)
        goto out;
    if (exp - time(NULL) < min_valid_s) {
        rc = GW_EEXPIRED;
        goto out;
    }
    rc = aws_creds_parsed_set(out, str_of(c, "AccessKeyId"),
                              str_of(c, "SecretAccessKey"),
                              str_of(c, "SessionToken"));
    out->expiration = exp;
out:
    json_decref(doc);
    return rc;
}

/* botocore's JSONFileCache: a datetime as strftime('%Y-%m-%dT%H:%M:%S%Z'),
 * which reads "...UTC" for STS's UTC times. */
static json_t *cache_doc(const struct aws_creds_parsed *pc)
{
    json_t *doc = json_object(), *c = json_object();
    char exp[40];
    struct tm tm;

    gmtime_r(&pc->expiration, &tm);
    strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SUTC", &tm);
    if (!doc || !c || json_object_set_new(doc, "Credentials", c) < 0) {
        json_decref(c);
        json_decref(doc);
        return NULL;
    }
    if (json_object_set_new(c, "AccessKeyId", json_string(pc->access_key_id)) <
            0 ||
        json_object_set_new(c, "SecretAccessKey",
                            json_string(pc->secret_access_key)) < 0 ||
        json_object_set_new(c, "SessionToken", json_string(pc->session_token)) <
            0 ||
        json_object_set_new(c, "Expiration", json_string(exp)) < 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int aws_cli_cache_write(const char *dir, const char *key,
                        const struct aws_creds_parsed *pc)
{
    char path[1100], *slash;
    json_t *doc = NULL;
    char *text = NULL;
    int rc;

    if (!pc->session_token || !pc->expiration)
        return GW_EINVAL;
    if ((rc = cache_path(dir, key, path, sizeof(path))) < 0)
        return rc;
    /* The directory, as os.makedirs would (private, though). */
    slash = strrchr(path, '/');
    for (char *p = path + 1; p <= slash; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            rc = GW_EIO;
        *p = '/';
    }
    if (rc < 0)
        return rc;
    rc = GW_ENOMEM;
    doc = cache_doc(pc);
    text = doc ? json_dumps(doc, 0) : NULL;
    if (text)
        rc = aws_cli_cache_replace(path, text);
    secret_free_str(text);
    json_decref(doc);
    return rc;
}
