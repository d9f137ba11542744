/*
 * account.h - [account NAME] suffixes, pure: which account a host name is
 * in, and what a suffix may look like.
 *
 *   web-1.prod            -> "web-1" in account prod (suffix ".prod")
 *   i-0123abcd.eu.prod    -> the longest suffix wins: ".eu.prod" over ".prod"
 *
 * A suffix is '.' and one or more DNS-like labels; its last label may not be
 * region-shaped, so "i-0123abcd.us-west-2" always keeps meaning a region.
 */
#ifndef SSMGATE_ACCOUNT_H
#define SSMGATE_ACCOUNT_H

#include <stddef.h>

struct config;
struct config_account;

/* 1 when suffix is usable; else 0 with *why a static sentence. */
int account_suffix_valid(const char *suffix, const char **why);

/*
 * The account whose suffix ends host[0..len) (letters compared without
 * case), the longest suffix first; NULL when none does. *rest_len is len
 * less the suffix (0 when the host is the bare suffix).
 */
const struct config_account *account_match(const struct config *cfg,
                                           const char *host, size_t len,
                                           size_t *rest_len);

#endif
