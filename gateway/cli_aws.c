/*
 * cli_aws.c - runs one (or, with --repeat, many) AWS calls on a fresh
 * loop. With --repeat N --concurrency C it keeps C calls in flight until N
 * finished and prints p50/p95/max latency: the figure for "one signed call
 * against the loopback fake", and proof that many calls share the loop.
 */
#include "cli_aws.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aws.h"
#include "common.h"
#include "log.h"

struct run {
    uv_loop_t *loop;
    uv_timer_t end; /* frees the client outside any of its callbacks */
    struct aws_client *client;
    const char *service, *action;
    json_t *input;
    const struct cli_aws_opts *opts;
    int started, finished, failed, status;
    uint64_t *lat_us;
    int print;
};

struct one {
    struct run *run;
    uint64_t t0;
};

static void start_one(struct run *r);

static void run_end(uv_timer_t *t)
{
    struct run *r = CONTAINER_OF(t, struct run, end);
    aws_client_free(r->client);
    uv_close((uv_handle_t *)&r->end, NULL);
}

static void one_done(void *arg, int status, json_t *resp,
                     const struct aws_error *err)
{
    struct one *o = arg;
    struct run *r = o->run;
    r->lat_us[r->finished++] = (uv_hrtime() - o->t0) / 1000;
    free(o);
    if (status != 0) {
        r->failed++;
        r->status = 1;
        char buf[1400];
        if (err != NULL && err->code[0] != '\0')
            fprintf(stderr, "%s: %s\n", err->code, err->message);
        else
            fprintf(stderr, "ssmgate aws-call: %s\n",
                    err ? aws_error_str(err, buf, sizeof(buf))
                        : gw_strerror(status));
    } else if (r->print) {
        char *text = json_dumps(resp, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    }
    if (r->started < r->opts->repeat)
        start_one(r);
    else if (r->finished == r->opts->repeat)
        uv_timer_start(&r->end, run_end, 0, 0);
}

static void start_one(struct run *r)
{
    struct one *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return;
    o->run = r;
    o->t0 = uv_hrtime();
    r->started++;
    if (aws_call_start(r->client, r->service, r->action, r->input,
                       r->opts->profile, r->opts->region, one_done,
                       o) == NULL) {
        fprintf(stderr,
                "ssmgate aws-call: %s is not a JSON 1.1 service "
                "this client speaks (ssm, ec2-instance-connect)\n",
                r->service);
        free(o);
        r->started = r->finished = r->opts->repeat;
        r->status = 2;
        uv_timer_start(&r->end, run_end, 0, 0);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int cli_aws_call(int argc, char **argv, const struct cli_aws_opts *opts_in)
{
    struct cli_aws_opts opts = *opts_in;
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: ssmgate aws-call [--profile P] [--region R] "
                        "SERVICE ACTION [JSON]\n");
        return 2;
    }
    if (opts.repeat < 1)
        opts.repeat = 1;
    if (opts.concurrency < 1)
        opts.concurrency = 1;
    json_error_t jerr;
    json_t *input = argc == 3 ? json_loads(argv[2], 0, &jerr) : json_object();
    if (!json_is_object(input)) {
        fprintf(stderr, "ssmgate aws-call: JSON input must be an object%s%s\n",
                argc == 3 ? ": " : "", argc == 3 ? jerr.text : "");
        json_decref(input);
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct run r = {.loop = &loop,
                    .service = argv[0],
                    .action = argv[1],
                    .input = input,
                    .opts = &opts,
                    .print = opts.repeat == 1};
    struct aws_client_opts copts = {opts.profile, opts.region};
    r.client = aws_client_new(&loop, &copts);
    uv_timer_init(&loop, &r.end);
    r.lat_us = calloc((size_t)opts.repeat, sizeof(*r.lat_us));
    if (r.client == NULL || r.lat_us == NULL) {
        fprintf(stderr, "ssmgate aws-call: out of memory\n");
        return 1;
    }
    for (int i = 0;
         i < opts.concurrency && r.started < opts.repeat && r.status != 2; i++)
        start_one(&r);
    uint64_t t0 = uv_hrtime();
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    if (opts.repeat > 1 && r.finished > 0) {
        qsort(r.lat_us, (size_t)r.finished, sizeof(*r.lat_us), cmp_u64);
        printf("calls %d failed %d concurrency %d wall %.3f s\n"
               "latency p50 %.2f ms p95 %.2f ms max %.2f ms\n",
               r.finished, r.failed, opts.concurrency, secs,
               (double)r.lat_us[r.finished / 2] / 1000.0,
               (double)r.lat_us[(r.finished * 95) / 100 < r.finished
                                    ? (r.finished * 95) / 100
                                    : r.finished - 1] /
                   1000.0,
               (double)r.lat_us[r.finished - 1] / 1000.0);
    }
    json_decref(input);
    free(r.lat_us);
    uv_loop_close(&loop);
    return r.status;
}
