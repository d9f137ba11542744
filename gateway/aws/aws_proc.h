/*
 * aws_proc.h - run a program (argv, no shell) on the loop and capture its
 * stdout and stderr, each up to a cap, with a timeout: credential_process
 * and `aws configure export-credentials`.
 */
#ifndef SSMGATE_AWS_PROC_H
#define SSMGATE_AWS_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct aws_proc;

struct aws_proc_result {
    int timed_out;       /* killed after the timeout */
    int too_big;         /* an output passed the cap (then cut) */
    int64_t exit_status; /* 128 + signal when killed by one */
    const char *out;     /* NUL-terminated; wiped after the callback */
    size_t out_len;
    const char *err;
    size_t err_len;
};

/* r is valid during the call only; the process is gone afterwards. */
typedef void aws_proc_done_cb(void *arg, const struct aws_proc_result *r);

/* Starts argv[0] with argv. Returns 0 and *out (for aws_proc_abandon), or
 * a libuv error when it could not be spawned (done will not run). */
int aws_proc_run(uv_loop_t *loop, char **argv, size_t cap, uint64_t timeout_ms,
                 aws_proc_done_cb *done, void *arg, struct aws_proc **out);
/* done will not run; the child is killed. */
void aws_proc_abandon(struct aws_proc *p);

#endif
