/*
 * aws_call_int.h - the request engine's own structs, shared by its two
 * files only: aws_call.c (the call's life, sending, retrying) and
 * aws_call_limit.c (the adaptive limiter's line in front of a send).
 * Nothing outside aws_call*.c includes this.
 */
#ifndef SSMGATE_AWS_CALL_INT_H
#define SSMGATE_AWS_CALL_INT_H

#include <stdint.h>
#include <uv.h>

#include "aws_call.h"
#include "aws_throttle.h"
#include "defer.h"
#include "list.h"

#define AWS_CALL_DEADLINE_MS 60000
#define AWS_CALL_HEADERS_MAX 8

struct aws_call_ctx {
    uv_loop_t *loop;
    struct http_client *http; /* borrowed */
    struct list calls;        /* live calls */
    int n_calls;              /* not yet freed */
    int n_live;               /* not yet destroyed */
    int quota;                /* retry tokens (standard mode) */
    long skew;                /* seconds to add to our clock */
    int max_attempts;
    int new_retries;
    int adaptive;                  /* retry_mode = adaptive: limit all */
    struct aws_throttle *throttle; /* NULL: no limiter (out of memory) */
    uint64_t seq;                  /* calls made: their FIFO rank */
    int queue_ms;                  /* 0: a queued call waits to its deadline */
    struct stats *stats;           /* NULL: not counted */
    int busy; /* inside a callback we run: defer the free */
    int free_requested;
    void (*idle)(void *arg);
    void *idle_arg;
};

/* Owned by its context's list until destroyed, then by its timer's close
 * callback. */
struct aws_call {
    struct aws_call_ctx *x;
    struct list node;
    const struct aws_call_hooks *hooks;
    void *owner;
    aws_done_cb *done;
    void *arg;
    void (*cleanup)(void *arg);
    uv_timer_t timer;
    struct defer soon; /* BEGIN or the next page, from the loop */
    struct http_req *req;
    struct aws_throttle_waiter tw;
    /* The request, copied. */
    int have_req;
    const struct aws_svc *svc;
    char action[64];
    char *method, *url, *signing_region, *signing_name, *ca_file;
    char *rate_scope;
    char **headers; /* may hold a bearer token: wiped */
    char *body;
    size_t body_len;
    struct aws_sigv4_creds creds; /* own copy; all NULL = unsigned */
    char invocation_id[40];
    int attempt;
    int last_cost; /* quota taken by the latest retry */
    int skew_fixed;
    uint64_t deadline;
    int finished;
    int in_callback;
    json_t *again; /* aws_call_again: next input */
    int early;     /* aws_call_send_failed: status to report at BEGIN */
    struct aws_error err;
};

extern const struct aws_throttle_ops aws_call_throttle_ops;

/* Takes the owner's fresher credentials, if any (hooks->refresh). */
void aws_call_refresh_creds(struct aws_call *call);
/* Signs and sends the next attempt now (aws_call.c); a failure is
 * reported through the call. */
void aws_call_send_attempt(struct aws_call *call);
/* Sends the next attempt, after its limiter's line when it has one
 * (aws_call_limit.c). */
void aws_call_send_limited(struct aws_call *call);

#endif
