/*
 * aws_creds_job.h - one resolution of one profile (struct job), shared by
 * the chain runner and cache (aws_creds.c) and the providers that call
 * AWS (aws_creds_role.c). Internal to aws_creds*.c.
 */
#ifndef SSMGATE_AWS_CREDS_JOB_H
#define SSMGATE_AWS_CREDS_JOB_H

#include "aws_call.h"
#include "aws_chain.h"
#include "aws_cli_cache.h"
#include "aws_creds.h"
#include "aws_imds.h"
#include "aws_proc.h"
#include "aws_sso.h"
#include "aws_sts.h"
#include "list.h"
#include "log.h"

#define ADVISORY_S      (15 * 60)
#define MANDATORY_S     (10 * 60)
#define CHAIN_DEPTH_MAX 8

struct job;
typedef void job_cb(struct job *j, int status, struct aws_creds_parsed *pc,
                    const char *why);

/* One resolution of one profile; owned by its entry (or its parent job
 * for a role's source). */
struct job {
    struct aws_creds_cache *cc;
    char profile[128];
    int explicit_profile;
    int depth;
    char chain[CHAIN_DEPTH_MAX][128]; /* profiles above, for loops */
    enum aws_chain_step step;
    int forced;      /* credential_source: only this step */
    int source_mode; /* a role's source_profile: static keys first */
    job_cb *done;
    void *owner;
    struct job *sub; /* a role's source job */
    struct aws_call *call;
    struct aws_sts_req sts;
    struct aws_imds *imds;
    struct aws_proc *proc;
    int cli_fallback;
    const char *source; /* provider that took over, for the log */
    struct aws_sso_token sso_tok;
    struct aws_sso_refresh_req sso_ref;
    const char *sso_region, *sso_acct, *sso_role; /* live as long as p */
    char cli_key[AWS_CLI_CACHE_KEY_MAX]; /* assume role: the CLI's cache */
    int issued; /* STS or SSO issued these keys just now: whole lifetime */
};

struct aws_creds_cache {
    struct aws_call_ctx *x;
    struct http_client *http;
    const struct aws_profiles *p;
    struct list entries;
};

struct job *aws_creds_job_new(struct aws_creds_cache *cc, const char *profile,
                              int explicit_profile, job_cb *done, void *owner);
/* Tries providers from j->step on until one takes over. */
void aws_creds_job_next(struct job *j);
void aws_creds_job_free(struct job *j);
/* Non-empty profile setting / environment variable, or NULL. */
const char *aws_creds_pget(struct job *j, const char *key);
const char *aws_creds_penv(const char *name);
/* Copies of the three strings (tk may be NULL). */
int aws_creds_parsed_dup(const char *ak, const char *sk, const char *tk,
                         struct aws_creds_parsed *pc);

/* j->done(j, status, NULL, "profile P: " + the formatted reason); returns
 * 1 (the provider took over, and failed). */
int aws_creds_job_fail(struct job *j, int status, const char *fmt, ...)
    LOG_PRINTF(3, 4);

/* The providers of aws_creds_role.c; each returns 1 when it took over
 * (j->done then runs once), 0 when not configured here. */
int aws_creds_role_start(struct job *j);
int aws_creds_web_identity_start(struct job *j);
int aws_creds_sso_start(struct job *j);

#endif
