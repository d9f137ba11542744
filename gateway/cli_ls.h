/*
 * cli_ls.h - `ssmgate ls [FILTER] [--json]`: the instances every profile
 * and region of the config can reach, from SSM DescribeInstanceInformation
 * joined with EC2 DescribeInstances (Name tag, state), on a loop of its
 * own.
 */
#ifndef SSMGATE_CLI_LS_H
#define SSMGATE_CLI_LS_H

#include "config.h"

struct ls_opts {
    int json;           /* one JSON object per instance per line */
    const char *filter; /* NULL, a glob on Name or id, or tag:Key=Value */
};

/* Returns the exit code: 0 when at least one source answered, 1 when every
 * one failed, 2 for a bad filter. */
int cli_ls(const struct config *cfg, const struct ls_opts *o);

#endif
