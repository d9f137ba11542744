/*
 * ssm_start.h - a stopped instance started and waited for, once for every
 * connection that wants it.
 *
 * StartSession answered TargetNotConnected: a session asks here why.
 * One start per (instance, profile, region) finds the state
 * (DescribeInstances), waits for a stopping instance to stop, calls
 * StartInstances once, waits for "running" and then for the SSM Agent to
 * report Online (DescribeInstanceInformation: TargetNotConnected is normal
 * for a minute or more after boot), all within the first waiter's
 * timeout. Every change of a start's state is one log line. A waiter that
 * may not start instances hears at once that the instance is stopped.
 */
#ifndef SSMGATE_SSM_START_H
#define SSMGATE_SSM_START_H

#include <stdint.h>
#include <uv.h>

struct aws_client;
struct ssm_starts;
struct ssm_start_wait;

/*
 * status 0: the instance runs and its agent is Online: start the session
 * again. GW_ENOT_FOUND: the instance is not stopped, stopping or starting
 * (or its state could not be read; why says so), so the caller's own
 * error stands. Otherwise (GW_EUNREACHABLE: stopped and not to be
 * started, or a start that failed; GW_ETIMEOUT) why is the reason.
 */
typedef void ssm_start_cb(void *arg, int status, const char *why);

struct ssm_starts *ssm_starts_new(uv_loop_t *loop, struct aws_client *aws);
/* Fails nothing: call once no session waits any more. */
void ssm_starts_free(struct ssm_starts *st);

/* Waits on instance; may_start: this connection may start it. cb runs
 * once, from the loop, unless ssm_start_cancel ran first. */
int ssm_start_wait(struct ssm_starts *st, const char *instance,
                   const char *profile, const char *region, int may_start,
                   int timeout_ms, ssm_start_cb *cb, void *arg,
                   struct ssm_start_wait **out);
void ssm_start_cancel(struct ssm_start_wait *w);

/* Each start in progress: its instance, state name and age. */
typedef void ssm_start_fn(void *arg, const char *instance, const char *state,
                          uint64_t elapsed_ms, int waiters);
void ssm_starts_foreach(const struct ssm_starts *st, ssm_start_fn *fn,
                        void *arg);

#endif
