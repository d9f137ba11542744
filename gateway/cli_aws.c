/*
 * cli_aws.c - the aws-call sub-command. Prints the response JSON on
 * stdout (exit 0); an AWS error as "CODE: message" on stderr (exit 1);
 * any other failure as one line on stderr (exit 1). With --repeat it
 * also prints "aws-call: N calls, C concurrent: p50 X ms p95 Y ms max Z
 * ms" on stderr. Service "ssmgate" runs the typed wrappers instead
 * (start-session, resume-session, terminate-session, find-by-name,
 * describe-instance, send-ssh-public-key) with a JSON of their arguments.
 */
#include "cli_aws.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aws.h"
#include "aws_ec2ic.h"
#include "aws_ssm.h"
#include "common.h"
#include "defer.h"
#include "log.h"
#include "proxy.h"

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

/* ---- typed wrappers: `aws-call ssmgate OP '{...}'` ------------------------
 */

static void report_err(struct cli_run *run, int status,
                       const struct aws_error *err)
{
    char eb[1600];

    run->exit_code = 1;
    if (status == GW_EAWS && err && err->code[0])
        fprintf(stderr, "%s: %s\n", err->code, err->message);
    else if (err)
        fprintf(stderr, "aws-call: %s\n", aws_error_str(err, eb, sizeof(eb)));
    else
        fprintf(stderr, "aws-call: %s\n", gw_strerror(status));
}

static void w_session(void *arg, int status, const struct aws_ssm_session *s,
                      const struct aws_error *err)
{
    struct cli_run *run = arg;

    if (status < 0) {
        report_err(run, status, err);
        return;
    }
    /* The token is a secret: say only whether there is one. */
    printf("{\"session_id\":\"%s\",\"has_token\":%s,\"stream_url\":\"%s\"}\n",
           s->session_id, s->token[0] ? "true" : "false", s->stream_url);
}

static void w_done(void *arg, int status, const struct aws_error *err)
{
    struct cli_run *run = arg;

    if (status < 0)
        report_err(run, status, err);
    else
        printf("{\"ok\":true}\n");
}

static void w_instances(void *arg, int status,
                        const struct aws_ssm_instance *in, size_t n,
                        const struct aws_error *err)
{
    struct cli_run *run = arg;
    json_t *arr;
    char *txt;

    if (status < 0) {
        report_err(run, status, err);
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "instance_id",
                      in[i].instance_id, "ping_status", in[i].ping_status,
                      "agent_version", in[i].agent_version, "platform_type",
                      in[i].platform_type, "name", in[i].name));
    txt = json_dumps(arr, JSON_COMPACT);
    printf("%s\n", txt ? txt : "[]");
    free(txt);
    json_decref(arr);
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Starts one typed wrapper call; 0 or -1 (unknown op / bad input). */
static int start_wrapper(struct cli_run *run)
{
    const char *op = run->action, *p = run->profile, *r = run->region;
    json_t *in = run->input;
    struct aws_call *call = NULL;

    if (strcmp(op, "start-session") == 0) {
        struct aws_ssm_start st = {jstr(in, "target"), jstr(in, "document"),
                                   jstr(in, "port"), jstr(in, "host"),
                                   jstr(in, "reason")};
        call = aws_ssm_start_session(run->client, p, r, &st, w_session, run);
    } else if (strcmp(op, "resume-session") == 0) {
        call = aws_ssm_resume_session(run->client, p, r, jstr(in, "session_id"),
                                      w_session, run);
    } else if (strcmp(op, "terminate-session") == 0) {
        call = aws_ssm_terminate_session(run->client, p, r,
                                         jstr(in, "session_id"), w_done, run);
    } else if (strcmp(op, "find-by-name") == 0) {
        call = aws_ssm_find_by_name(run->client, p, r, jstr(in, "name"),
                                    w_instances, run);
    } else if (strcmp(op, "describe-instance") == 0) {
        call = aws_ssm_describe_instance(
            run->client, p, r, jstr(in, "instance_id"), w_instances, run);
    } else if (strcmp(op, "send-ssh-public-key") == 0) {
        call = aws_ec2ic_send_ssh_public_key(
            run->client, p, r, jstr(in, "instance_id"), jstr(in, "os_user"),
            jstr(in, "public_key"), w_done, run);
    }
    return call ? 0 : -1;
}

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
    char eb[1600];

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
            else if (err)
                fprintf(stderr, "aws-call: %s\n",
                        aws_error_str(err, eb, sizeof(eb)));
            else
                fprintf(stderr, "aws-call: %s\n", gw_strerror(status));
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

void cli_aws_loop_end(struct aws_client *client, uv_loop_t *loop)
{
    aws_client_free(client);
    uv_run(loop, UV_RUN_DEFAULT);
    defer_shutdown();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(loop) == 0);
}

int cli_aws_call(const struct cli_aws_opts *o)
{
    struct cli_run run;
    uv_loop_t loop;
    json_error_t jerr;

    memset(&run, 0, sizeof(run));
    run.service = o->service;
    run.action = o->action;
    run.profile = o->profile;
    run.region = o->region;
    run.repeat = o->repeat;
    run.concurrency = o->concurrency;
    const char *json_text = o->json != NULL ? o->json : "{}";
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
    /* The daemon's HTTPS proxy rules, from the environment (no config). */
    struct proxy proxy;
    char perr[256];
    if (proxy_resolve(NULL, proxy_getenv, &proxy, perr, sizeof(perr)) != 0) {
        fprintf(stderr, "aws-call: %s\n", perr);
        run.exit_code = 2;
        goto out;
    }
    struct aws_client_opts ao = {NULL, NULL, 0, &proxy, NULL};
    run.client = aws_client_new(&loop, &ao);
    proxy_wipe(&proxy);
    if (!run.client) {
        fprintf(stderr, "aws-call: cannot create the AWS client\n");
        run.exit_code = 1;
        goto out;
    }
    if (strcmp(run.service, "ssmgate") == 0) {
        if (start_wrapper(&run) < 0) {
            fprintf(stderr,
                    "aws-call: unknown ssmgate operation %s or bad "
                    "input\n",
                    run.action);
            run.exit_code = 2;
        }
    } else {
        for (long i = 0; i < run.concurrency && run.started < run.repeat; i++)
            start_one(&run);
    }
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
    cli_aws_loop_end(run.client, &loop);
    json_decref(run.input);
    free(run.lat_us);
    return run.exit_code;
}
