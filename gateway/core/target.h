/*
 * target.h - the grammar of instance hostnames, pure.
 *
 *   [user@](i-<8 or 17 hex> | mi-<17 hex>)[.<region>]
 *
 * e.g. "ec2-user@i-0123456789abcdef0.eu-west-1". Anything else is not an
 * instance name (GW_ENOT_FOUND) and goes to the [route] rules.
 */
#ifndef SSMGATE_TARGET_H
#define SSMGATE_TARGET_H

#include <stddef.h>

#define TARGET_ID_MAX     24 /* "mi-" + 17 hex + NUL fits */
#define TARGET_USER_MAX   33
#define TARGET_REGION_MAX 32

struct target {
    char user[TARGET_USER_MAX];     /* "" when absent */
    char id[TARGET_ID_MAX];         /* i-... or mi-... */
    char region[TARGET_REGION_MAX]; /* "" when absent */
    int managed;                    /* mi- (no EC2 Instance Connect) */
};

/*
 * Parses name[0..len). Returns 0 for an instance name, GW_ENOT_FOUND when
 * it is not one (a routed hostname), GW_EINVAL when it is one but
 * malformed (bad user, bad region) with *reason set to a static sentence.
 */
int target_parse(const char *name, size_t len, struct target *out,
                 const char **reason);

/* Checks an OS user name as EC2 Instance Connect accepts it. */
int target_user_valid(const char *user, size_t len);
/* Checks a region name shape ("eu-west-1", "us-gov-west-1", "cn-north-1"). */
int target_region_valid(const char *region, size_t len);

#endif
