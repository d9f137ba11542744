/*
 * aws_chain.h - which credential provider a profile and the environment
 * select, in AWS CLI v2 order. Pure: the decision only; aws_creds.c runs
 * the provider it names.
 */
#ifndef SSMGATE_AWS_CHAIN_H
#define SSMGATE_AWS_CHAIN_H

#include "aws_profile.h"

enum aws_chain_step {
    AWS_CHAIN_ENV,
    AWS_CHAIN_ASSUME_ROLE,
    AWS_CHAIN_WEB_IDENTITY,
    AWS_CHAIN_SSO,
    AWS_CHAIN_STATIC, /* credentials file, then config file keys */
    AWS_CHAIN_PROCESS,
    AWS_CHAIN_CONTAINER,
    AWS_CHAIN_IMDS,
    AWS_CHAIN_CLI, /* aws configure export-credentials, if installed */
    AWS_CHAIN_END,
};

/* One resolution's view: the profile, the environment, and where in a
 * role chain it stands. */
struct aws_chain_view {
    const struct aws_profiles *p;
    const char *profile;
    const struct aws_env *env; /* NULL = getenv */
    int explicit_profile;      /* named, not from AWS_PROFILE: no env keys */
    int source_mode;           /* a role's source_profile: static keys first */
    int forced; /* credential_source: env, IMDS, container only */
    int depth;  /* roles above this one */
};

/* The first step at or after from that v selects, or AWS_CHAIN_END. */
enum aws_chain_step aws_chain_next(const struct aws_chain_view *v,
                                   enum aws_chain_step from);

/* The provider's name for logs ("environment", "SSO", ...). */
const char *aws_chain_step_name(enum aws_chain_step s);

#endif
