/*
 * aws_creds_role.c - the providers that call AWS for credentials: assume
 * role (the source resolved by a sub-job, then STS AssumeRole signed with
 * it), web identity (AssumeRoleWithWebIdentity, unsigned) and SSO (the
 * cached token, refreshed through SSO OIDC when under 15 minutes remain,
 * then GetRoleCredentials). Each ends in j->done exactly once. Assume
 * role and web identity share the AWS CLI's cache (aws_cli_cache.h): a
 * cached answer with 15 minutes left is used without calling STS, and a
 * new one is written there for the CLI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws_creds_job.h"
#include "common.h"
#include "log.h"
#include "secret.h"

/* ---- STS / SSO steps
 * ------------------------------------------------------------ */

static void sts_creds_done(void *arg, int status,
                           const struct aws_creds_parsed *pc,
                           const struct aws_error *err)
{
    struct job *j = arg;
    char why[GW_REASON_MAX];
    struct aws_creds_parsed copy;
    size_t n;

    j->call = NULL;
    if (status < 0) {
        /* "profile P: " and the AWS error after it, whole. */
        n = (size_t)snprintf(why, sizeof(why), "profile %.128s: ", j->profile);
        if (err)
            aws_error_str(err, why + n, sizeof(why) - n);
        else
            snprintf(why + n, sizeof(why) - n, "%s", gw_strerror(status));
        j->done(j, GW_ENO_CREDS, NULL, why);
        return;
    }
    if (aws_creds_parsed_dup(pc->access_key_id, pc->secret_access_key,
                             pc->session_token, &copy) < 0) {
        j->done(j, GW_ENOMEM, NULL, "out of memory");
        return;
    }
    copy.expiration = pc->expiration;
    j->issued = 1;
    if (j->cli_key[0]) {
        int rc = aws_cli_cache_write(NULL, j->cli_key, &copy);
        if (rc < 0)
            log_warn("aws: profile %s: cannot write the AWS CLI cache "
                     "~/.aws/cli/cache/%s.json: %s",
                     j->profile, j->cli_key, gw_strerror(rc));
    }
    j->done(j, 0, &copy, NULL);
    aws_creds_parsed_clear(&copy);
}

static void role_region(struct job *j, char *out, size_t len)
{
    if (aws_resolve_region(NULL, NULL, j->cc->p, j->profile, out, len) < 0)
        snprintf(out, len, "us-east-1");
}

/* The source credentials of a role are ready: call AssumeRole. */
static void role_source_done(struct job *sub, int status,
                             struct aws_creds_parsed *pc, const char *why)
{
    struct job *j = sub->owner;
    const char *dur = aws_creds_pget(j, "duration_seconds");
    const char *sname = aws_creds_pget(j, "role_session_name");
    char region[64], defname[64];
    struct aws_sts_role role;
    struct aws_sigv4_creds src;

    j->sub = NULL;
    if (status < 0) {
        char w[GW_REASON_MAX];
        snprintf(w, sizeof(w), "%s", why ? why : gw_strerror(status));
        aws_creds_job_free(sub);
        j->done(j, status, NULL, w);
        return;
    }
    src.access_key_id = pc->access_key_id;
    src.secret_access_key = pc->secret_access_key;
    src.session_token = pc->session_token;
    if (!sname) {
        snprintf(defname, sizeof(defname), "botocore-session-%lld",
                 (long long)time(NULL));
        sname = defname;
    }
    memset(&role, 0, sizeof(role));
    role.role_arn = aws_creds_pget(j, "role_arn");
    role.session_name = sname;
    role.external_id = aws_creds_pget(j, "external_id");
    role.duration_seconds = dur ? atoi(dur) : 0;
    role_region(j, region, sizeof(region));
    j->sts.done = sts_creds_done;
    j->sts.arg = j;
    j->call = aws_sts_assume_role(j->cc->x, j->cc->p, j->profile, region, &src,
                                  &role, &j->sts);
    aws_creds_job_free(sub);
    if (!j->call)
        j->done(j, GW_ENOMEM, NULL, "cannot start AssumeRole");
}

/* botocore's cache key of a's arguments into j->cli_key (where the
 * answer is written later), then a cached answer with 15 minutes left: 1
 * when j is done with it. what: "role", "web identity", for the log. */
static int from_cli_cache(struct job *j, const struct aws_cli_role_args *a,
                          const char *what, const char *source)
{
    struct aws_creds_parsed pc;

    if (aws_cli_cache_role_key(a, j->cli_key) < 0 ||
        aws_cli_cache_read(NULL, j->cli_key, ADVISORY_S, &pc) < 0)
        return 0;
    log_info("aws: profile %s: %s credentials from the AWS CLI cache "
             "(%s.json)",
             j->profile, what, j->cli_key);
    j->source = source;
    j->done(j, 0, &pc, NULL);
    aws_creds_parsed_clear(&pc);
    return 1;
}

static int role_from_cli_cache(struct job *j)
{
    const char *dur = aws_creds_pget(j, "duration_seconds");
    struct aws_cli_role_args a = {
        .role_arn = aws_creds_pget(j, "role_arn"),
        .session_name = aws_creds_pget(j, "role_session_name"),
        .external_id = aws_creds_pget(j, "external_id"),
        .duration_seconds = dur ? atoi(dur) : 0,
    };
    return from_cli_cache(j, &a, "role", "assume-role (the AWS CLI cache)");
}

int aws_creds_role_start(struct job *j)
{
    const char *src = aws_creds_pget(j, "source_profile");
    const char *csrc = aws_creds_pget(j, "credential_source");
    char why[GW_REASON_MAX];
    struct job *sub;

    if (aws_creds_pget(j, "mfa_serial")) {
        snprintf(why, sizeof(why),
                 "profile %s: mfa_serial needs an interactive MFA code, "
                 "which ssmgate cannot prompt for; use credential_process "
                 "(e.g. `aws configure export-credentials --profile %s "
                 "--format process`) in a profile of its own",
                 j->profile, j->profile);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return 1;
    }
    if (!!src == !!csrc)
        return aws_creds_job_fail(j, GW_ECONFIG,
                                  "role_arn needs exactly one of "
                                  "source_profile and credential_source");
    if (j->depth + 1 >= CHAIN_DEPTH_MAX) {
        snprintf(why, sizeof(why), "profile %s: role chain too deep",
                 j->profile);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    if (role_from_cli_cache(j))
        return 1;
    sub = aws_creds_job_new(j->cc, src ? src : j->profile, 1, role_source_done,
                            j);
    if (!sub) {
        j->done(j, GW_ENOMEM, NULL, "out of memory");
        return 1;
    }
    sub->depth = j->depth + 1;
    memcpy(sub->chain, j->chain, sizeof(sub->chain));
    snprintf(sub->chain[j->depth], sizeof(sub->chain[0]), "%s", j->profile);
    if (src) {
        /* A loop: the source was already on the way here, and it is not
         * the self-reference with static keys (rule 2). */
        for (int i = 0; i <= j->depth; i++) {
            if (strcmp(sub->chain[i], src) == 0 &&
                !aws_profile_get(j->cc->p, src, "aws_access_key_id")) {
                snprintf(why, sizeof(why),
                         "profile %s: source_profile loop through %s",
                         j->profile, src);
                aws_creds_job_free(sub);
                j->done(j, GW_ECONFIG, NULL, why);
                return 1;
            }
        }
        sub->source_mode = 1;
        sub->step = AWS_CHAIN_ENV;
    } else if (strcmp(csrc, "Environment") == 0) {
        sub->step = AWS_CHAIN_ENV;
        sub->forced = 1;
        sub->explicit_profile = 0;
    } else if (strcmp(csrc, "Ec2InstanceMetadata") == 0) {
        sub->step = AWS_CHAIN_IMDS;
        sub->forced = 1;
    } else if (strcmp(csrc, "EcsContainer") == 0) {
        sub->step = AWS_CHAIN_CONTAINER;
        sub->forced = 1;
    } else {
        snprintf(why, sizeof(why),
                 "profile %s: unknown credential_source %.64s", j->profile,
                 csrc);
        aws_creds_job_free(sub);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    j->sub = sub;
    aws_creds_job_next(sub);
    return 1;
}

static int read_small_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return GW_EIO;
    n = fread(buf, 1, cap, f);
    fclose(f);
    if (n >= cap)
        return GW_ETOO_BIG;
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return n ? 0 : GW_EINVAL;
}

int aws_creds_web_identity_start(struct job *j)
{
    const char *file = NULL, *arn = NULL, *sname = NULL;
    char token[20001], region[64], defname[64], why[GW_REASON_MAX];
    struct aws_sts_role role;
    int rc;

    if (!j->explicit_profile && aws_creds_penv("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        file = aws_creds_penv("AWS_WEB_IDENTITY_TOKEN_FILE");
        arn = aws_creds_penv("AWS_ROLE_ARN");
        sname = aws_creds_penv("AWS_ROLE_SESSION_NAME");
    } else if (aws_creds_pget(j, "web_identity_token_file")) {
        file = aws_creds_pget(j, "web_identity_token_file");
        arn = aws_creds_pget(j, "role_arn");
        sname = aws_creds_pget(j, "role_session_name");
    }
    if (!file)
        return 0;
    if (!arn) {
        j->done(j, GW_ECONFIG, NULL,
                "web identity token file set but no role ARN");
        return 1;
    }
    /* The AWS CLI caches these too, keyed like a role without its
     * generated session name (botocore's web identity fetcher). */
    struct aws_cli_role_args a = {.role_arn = arn, .session_name = sname};
    if (from_cli_cache(j, &a, "web identity",
                       "web identity (the AWS CLI cache)"))
        return 1;
    rc = read_small_file(file, token, sizeof(token));
    if (rc < 0) {
        snprintf(why, sizeof(why), "cannot read web identity token %s: %s",
                 file, gw_strerror(rc));
        j->done(j, GW_ENO_CREDS, NULL, why);
        return 1;
    }
    if (!sname) {
        snprintf(defname, sizeof(defname), "botocore-session-%lld",
                 (long long)time(NULL));
        sname = defname;
    }
    memset(&role, 0, sizeof(role));
    role.role_arn = arn;
    role.session_name = sname;
    role_region(j, region, sizeof(region));
    j->sts.done = sts_creds_done;
    j->sts.arg = j;
    j->call = aws_sts_assume_role_web_identity(j->cc->x, j->cc->p, j->profile,
                                               region, &role, token, &j->sts);
    secret_wipe(token, sizeof(token));
    if (!j->call)
        j->done(j, GW_ENOMEM, NULL, "cannot start AssumeRoleWithWebIdentity");
    return 1;
}

/* GetRoleCredentials with the (maybe refreshed) cached token. */
static void sso_get_role(struct job *j)
{
    char why[GW_REASON_MAX];

    if (j->sso_tok.expires_at <= time(NULL)) {
        snprintf(why, sizeof(why),
                 "SSO token for profile %s has expired; run `aws sso login "
                 "--profile %s`",
                 j->profile, j->profile);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return;
    }
    j->sts.done = sts_creds_done;
    j->sts.arg = j;
    j->call = aws_sso_get_role_credentials(
        j->cc->x, j->cc->p, j->profile, j->sso_region, j->sso_tok.access_token,
        j->sso_acct, j->sso_role, &j->sts);
    if (!j->call)
        j->done(j, GW_ENOMEM, NULL, "cannot start GetRoleCredentials");
}

static void sso_refresh_done(void *arg, int status, const struct aws_error *err)
{
    struct job *j = arg;
    char eb[GW_REASON_MAX];

    j->call = NULL;
    if (status < 0)
        log_warn("aws: profile %s: SSO token refresh failed: %s", j->profile,
                 err ? aws_error_str(err, eb, sizeof(eb))
                     : gw_strerror(status));
    else
        log_info("aws: profile %s: SSO token refreshed", j->profile);
    sso_get_role(j);
}

int aws_creds_sso_start(struct job *j)
{
    const char *acct = aws_creds_pget(j, "sso_account_id");
    const char *role = aws_creds_pget(j, "sso_role_name");
    const char *sess = aws_creds_pget(j, "sso_session");
    const char *url = aws_creds_pget(j, "sso_start_url");
    const char *region = aws_creds_pget(j, "sso_region");
    char why[GW_REASON_MAX];
    int rc;

    if (!acct && !role && !sess && !url)
        return 0;
    if (sess) {
        const char *su = aws_sso_session_get(j->cc->p, sess, "sso_start_url");
        const char *sr = aws_sso_session_get(j->cc->p, sess, "sso_region");
        if (!su || !sr) {
            snprintf(why, sizeof(why),
                     "profile %s: [sso-session %s] needs sso_start_url and "
                     "sso_region",
                     j->profile, sess);
            j->done(j, GW_ECONFIG, NULL, why);
            return 1;
        }
        region = sr;
    }
    if (!acct || !role || !region || (!sess && !url)) {
        snprintf(why, sizeof(why),
                 "profile %s: incomplete SSO settings (sso_account_id, "
                 "sso_role_name, sso_region and sso_session or "
                 "sso_start_url)",
                 j->profile);
        j->done(j, GW_ECONFIG, NULL, why);
        return 1;
    }
    rc = aws_sso_load_token(NULL, sess ? sess : url, &j->sso_tok, why,
                            sizeof(why));
    if (rc < 0) {
        size_t n = strlen(why);
        snprintf(why + n, sizeof(why) - n, "; run `aws sso login --profile %s`",
                 j->profile);
        j->done(j, GW_ENO_CREDS, NULL, why);
        return 1;
    }
    j->sso_region = region;
    j->sso_acct = acct;
    j->sso_role = role;
    /* Refresh through SSO OIDC when under 15 minutes remain and the file
     * allows it (botocore's rule); else use the token as it is. */
    if (j->sso_tok.expires_at - time(NULL) < ADVISORY_S &&
        aws_sso_token_refreshable(&j->sso_tok)) {
        j->sso_ref.done = sso_refresh_done;
        j->sso_ref.arg = j;
        j->sso_ref.token = &j->sso_tok;
        j->call = aws_sso_refresh_token(j->cc->x, j->cc->p, j->profile, region,
                                        &j->sso_ref);
        if (j->call)
            return 1;
    }
    sso_get_role(j);
    return 1;
}
