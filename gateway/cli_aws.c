/*
 * cli_aws.c - the aws-call sub-command. Prints the response JSON on
 * stdout (exit 0); an AWS error as "CODE: message" on stderr (exit 1);
 * any other failure as one line on stderr (exit 1). With --repeat it
 * also prints "aws-call: N calls, C concurrent: p50 X ms p95 Y ms max Z
 * ms" on stderr.
 */
#include "cli_aws.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aws.h"
#include "common.h"
#include "log.h"

struct cli_run {
    uv_loop_t *loop;
    struct aws_client *client;
    const char *service, *action, *profile, *region;
    json_t *input;
    long repeat, concurrency, started, finished, failed;
    uint64_t *lat_us;
    int printed;
    int exit_code;
};

struct cli_one {
    struct cli_run *run;
    uint64_t t0;
};

static void start_one(struct cli_run *run);

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void one_done(void *arg, int status, json_t *resp,
                     const struct aws_error *err)
{
    struct cli_one *one = arg;
    struct cli_run *run = one->run;

    run->lat_us[run->finished++] = (uv_hrtime() - one->t0) / 1000;
    free(one);
    if (status == 0) {
        if (run->repeat == 1 || run->finished == run->repeat) {
            char *s = json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS);
            if (s)
                printf("%s\n", s);
            free(s);
        }
    } else {
        run->failed++;
        run->exit_code = 1;
        if (!run->printed) {
            run->printed = 1;
            if (status == GW_EAWS && err && err->code[0])
                fprintf(stderr, "%s: %s\n", err->code, err->message);
            else
                fprintf(stderr, "aws-call: %s: %s\n", gw_strerror(status),
                        err && err->message[0] ? err->message : "failed");
        }
    }
    if (run->started < run->repeat)
        start_one(run);
}

static void start_one(struct cli_run *run)
{
    struct cli_one *one = calloc(1, sizeof(*one));

    CHECK(one != NULL);
    one->run = run;
    one->t0 = uv_hrtime();
    run->started++;
    if (!aws_call_start(run->client, run->service, run->action, run->input,
                        run->profile, run->region, one_done, one)) {
        free(one);
        run->lat_us[run->finished++] = 0;
        run->failed++;
        run->exit_code = 1;
        if (!run->printed) {
            run->printed = 1;
            fprintf(stderr,
                    "aws-call: cannot start %s %s (unknown service "
                    "or bad input)\n",
                    run->service, run->action);
        }
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: ssmgate aws-call SERVICE ACTION [JSON] "
                    "[--profile P] [--region R] [--repeat N] "
                    "[--concurrency C] [--debug]\n");
    return 2;
}

int cli_aws_call(int argc, char **argv)
{
    struct cli_run run;
    const char *json_text = "{}";
    int pos = 0;
    uv_loop_t loop;
    json_error_t jerr;

    memset(&run, 0, sizeof(run));
    run.repeat = 1;
    run.concurrency = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc) {
            run.profile = argv[++i];
        } else if (strcmp(argv[i], "--region") == 0 && i + 1 < argc) {
            run.region = argv[++i];
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            run.repeat = atol(argv[++i]);
        } else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc) {
            run.concurrency = atol(argv[++i]);
        } else if (strcmp(argv[i], "--debug") == 0) {
            log_set_level(LOG_DEBUG);
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return usage();
        } else if (pos == 0) {
            run.service = argv[i];
            pos++;
        } else if (pos == 1) {
            run.action = argv[i];
            pos++;
        } else if (pos == 2) {
            json_text = argv[i];
            pos++;
        } else {
            return usage();
        }
    }
    if (pos < 2 || run.repeat < 1 || run.repeat > 1000000 ||
        run.concurrency < 1)
        return usage();
    run.input = json_loads(json_text, 0, &jerr);
    if (!json_is_object(run.input)) {
        fprintf(stderr, "aws-call: input must be a JSON object: %s\n",
                jerr.text);
        json_decref(run.input);
        return 2;
    }
    run.lat_us = calloc((size_t)run.repeat, sizeof(*run.lat_us));
    CHECK(run.lat_us != NULL);
    CHECK(uv_loop_init(&loop) == 0);
    run.loop = &loop;
    run.client = aws_client_new(&loop, NULL);
    if (!run.client) {
        fprintf(stderr, "aws-call: cannot create the AWS client\n");
        run.exit_code = 1;
        goto out;
    }
    for (long i = 0; i < run.concurrency && run.started < run.repeat; i++)
        start_one(&run);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (run.repeat > 1) {
        qsort(run.lat_us, (size_t)run.finished, sizeof(*run.lat_us), cmp_u64);
        fprintf(stderr,
                "aws-call: %ld calls, %ld concurrent, %ld failed: p50 %.1f ms "
                "p95 %.1f ms max %.1f ms\n",
                run.finished, run.concurrency, run.failed,
                run.lat_us[run.finished / 2] / 1000.0,
                run.lat_us[(run.finished * 95) / 100 < run.finished
                               ? (run.finished * 95) / 100
                               : run.finished - 1] /
                    1000.0,
                run.lat_us[run.finished - 1] / 1000.0);
    }
out:
    aws_client_free(run.client);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    json_decref(run.input);
    free(run.lat_us);
    return run.exit_code;
}
