/*
 * aws_creds.h - the credential provider chain, cached per profile.
 *
 * Order as the AWS CLI v2: environment keys (skipped when a profile was
 * named explicitly), the credentials file's keys, credential_process, the
 * config file's keys, and as a last resort `aws configure
 * export-credentials --profile P --format process` (which covers SSO,
 * assume-role and console logins through the user's own CLI). Results are
 * cached per profile and refreshed ahead of expiry; concurrent requests
 * for the same profile share one refresh.
 */
#ifndef SSMGATE_AWS_CREDS_H
#define SSMGATE_AWS_CREDS_H

#include <time.h>
#include <uv.h>

#include "aws_sigv4.h"

struct aws_profiles;
struct aws_creds_cache;
struct aws_creds_wait;

/* creds valid during the callback only; why names the problem on error
 * (never a secret). */
typedef void aws_creds_done_cb(void *arg, int status,
                               const struct aws_sigv4_creds *creds,
                               const char *why);

struct aws_creds_cache *aws_creds_cache_new(uv_loop_t *loop);
/* Cancels waiters (no callbacks) and kills running processes; frees once
 * their handles closed. */
void aws_creds_cache_free(struct aws_creds_cache *c);

/*
 * Credentials for profile (explicit: named by the caller rather than
 * defaulted). Calls done later, never from inside; *out lets the caller
 * cancel. Returns 0 or GW_ENOMEM.
 */
int aws_creds_get(struct aws_creds_cache *c, const struct aws_profiles *p,
                  const char *profile, int explicit_profile,
                  aws_creds_done_cb *done, void *arg,
                  struct aws_creds_wait **out);
void aws_creds_cancel(struct aws_creds_wait *w);
/* Drops the cached entry for profile (after ExpiredToken). */
void aws_creds_invalidate(struct aws_creds_cache *c, const char *profile);

/* ISO 8601 (Z, +00:00, "UTC", fractions) to epoch; -1 when unparseable. */
time_t aws_parse_time(const char *s);
/*
 * Parses credential_process output (Version 1 JSON). On success fills the
 * strings (malloc'd) and *expiration (0 = never). Returns 0 or GW_EPROTO
 * with why set.
 */
int aws_creds_parse_process(const char *json, char **akid, char **secret,
                            char **token, time_t *expiration,
                            const char **why);
/* Splits a command line like a POSIX shell (quotes, backslashes; no
 * expansion). argv is NULL-terminated; free with aws_argv_free. */
int aws_split_command(const char *cmd, char ***argv);
void aws_argv_free(char **argv);

#endif
